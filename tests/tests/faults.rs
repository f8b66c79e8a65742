//! The fast subset of the fault suite (F1, F4 with a 10 s outage instead of 60 s, F7, F11): each test starts
//! its own database, nats-server and one process per service (the binaries next to this test's target
//! directory, built first if missing), drives registrations through the gateway while the fault happens, and
//! asserts the counts. The rest run from `cargo run --release -p suite --bin faults -- all`.

#![allow(clippy::unwrap_used)]

use suite::faults::{self, Fault, Options};

/// Two fault worlds at a time: each is six processes with their own connection pools, and the machine's
/// PostgreSQL (100 connections) and two cores are shared with everything else.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn fault(f: Fault) {
    let _slot = SLOTS.acquire().await.unwrap();
    let outcome =
        faults::run(f, Options { short: true }).await.unwrap_or_else(|e| panic!("{f:?} could not run: {e:#}"));
    let table = format!("{}\n{}", faults::header(), faults::row(&outcome));
    println!("{table}");
    assert!(outcome.passed(), "{table}");
    assert!(outcome.counts.cases > 0, "{f:?} registered nothing:\n{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_intake_killed_repeatedly() {
    fault(Fault::F1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_nats_stopped() {
    fault(Fault::F4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_consumer_dies_after_commit_before_ack() {
    fault(Fault::F7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_poison_message_in_a_burst() {
    fault(Fault::F11).await;
}
