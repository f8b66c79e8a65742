//! Calls the client abandons mid-flight, through the gateway with the suite's pools of 5: the gateway drops its
//! call to intake and intake's server drops the caller, yet whatever was under way commits or rolls back whole.
//! Afterwards every case has its parties, its `registered` step and its one `case.registered` event; no
//! connection was handed back in the middle of a transaction (PostgreSQL's "there is no transaction in
//! progress" / "there is already a transaction in progress" notices); and intake still answers.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message as _;
use proto::events::v1::envelope::Body;
use tests::World;

/// PostgreSQL notices about transaction state, as sqlx logs them (target `sqlx::postgres::notice`).
static TX_NOTICES: AtomicUsize = AtomicUsize::new(0);

struct NoticeCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoticeCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, "{value:?} ");
            }
        }
        if event.metadata().target() == "sqlx::postgres::notice" {
            let mut m = Message(String::new());
            event.record(&mut m);
            if m.0.contains("transaction in progress") {
                TX_NOTICES.fetch_add(1, Ordering::Relaxed);
                eprintln!("notice: {}", m.0);
            }
        }
    }
}

/// Installed before `World::start` installs the usual test logging (which then finds a subscriber and keeps
/// it), so this binary sees every notice whatever RUST_LOG says.
fn count_notices() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(NoticeCounter)
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )))
        .try_init();
}

/// Checks that every case in intake's tables has everything its registration writes (both parties, the
/// `registered` step, exactly one `case.registered` event) and no event lacks its case; returns the count.
async fn whole_cases(world: &World) -> usize {
    let intake = world.infra.pool("intake").await;
    // One snapshot for both reads, or a case committed between them shows as an event without its case.
    let mut tx = intake.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await.unwrap();
    let ids: Vec<sqlx::types::Uuid> = sqlx::query_scalar("SELECT id FROM cases").fetch_all(&mut *tx).await.unwrap();
    // Told apart by the envelope's body, not by subject, which may carry more than the kind.
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox").fetch_all(&mut *tx).await.unwrap();
    let events: Vec<String> = payloads
        .iter()
        .map(|p| proto::events::v1::Envelope::decode(p.as_slice()).unwrap())
        .filter(|e| matches!(e.body, Some(Body::CaseRegistered(_))))
        .map(|e| e.case_id)
        .collect();
    for id in &ids {
        let (parties, steps): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM case_parties WHERE case_id = $1), \
             (SELECT count(*) FROM timeline WHERE case_id = $1 AND action = 'registered')",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!((parties, steps), (2, 1), "case {id} has both parties and its registered step");
        let id = id.to_string();
        assert_eq!(events.iter().filter(|e| **e == id).count(), 1, "case {id} has one case.registered event");
    }
    assert_eq!(events.len(), ids.len(), "no event without its case");
    ids.len()
}

/// Backends of the test database sitting idle inside a transaction for seconds: a connection that went back to
/// its pool mid-transaction stays so. (Consumers busy with the burst's events pass through the state briefly.)
async fn idle_in_transaction(world: &World) -> i64 {
    let pool = world.infra.pool("intake").await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%' AND state_change < now() - interval '3 seconds'",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
}

const CALLS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cancelled_mid_flight_leave_whole_cases_and_a_service_that_answers() {
    count_notices();
    let world = World::start().await;
    let (desk, _) = world.sign_in("gw-001").await;
    // What one call takes here, so the cancellations can be aimed at its inside whatever the build's speed.
    let started = std::time::Instant::now();
    for i in 0..5 {
        desk.clone().register_case(world.dispute(&format!("warm-{i}"))).await.unwrap();
    }
    let typical = started.elapsed() / 5;
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut desk = desk.clone();
        let request = world.dispute(&format!("cancel-{i}"));
        // Patience from a tenth of a typical call to twice one, so cancellations land at every stage: before
        // the registry answers, inside the transaction, during its commit, after it.
        let patience = typical * u32::try_from(i % 20 + 1).unwrap() / 10;
        calls.push(tokio::spawn(async move { tokio::time::timeout(patience, desk.register_case(request)).await }));
        if i % 5 == 4 {
            // In waves of about what intake's pool of 5 serves at once, so the calls reach intake's
            // transactions rather than queueing for a connection.
            tokio::time::sleep(typical * 2).await;
        }
    }
    let (mut cancelled, mut registered, mut shed, mut refused) = (0usize, 0usize, 0usize, Vec::new());
    for call in calls {
        match call.await.unwrap() {
            Err(_) => cancelled += 1,
            Ok(Ok(_)) => registered += 1,
            // Abandoned calls still finish inside (that is the point), so on a slow or busy machine they can fill
            // the gateway's in-flight limit; shedding with RESOURCE_EXHAUSTED and Retry-After is then the
            // designed answer, not a failure. Those keys are registered by the retries below like any other.
            Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => shed += 1,
            Ok(Err(status)) => refused.push(status),
        }
    }
    println!("typical call {typical:?}; of {CALLS} calls {cancelled} cancelled, {registered} answered, {shed} shed");
    assert!(refused.is_empty(), "a call that was not cancelled is answered: {refused:?}");
    assert!(cancelled > 250, "many calls are cancelled mid-flight ({cancelled} of {CALLS})");
    // Work already under way finishes on its own; wait until the count stops moving.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = whole_cases(&world).await;
        if now == last {
            break;
        }
        last = now;
    }
    let abandoned_but_registered = last - 5 - registered;
    println!("{last} whole cases, {abandoned_but_registered} of them from cancelled calls");
    assert!(abandoned_but_registered > 0, "some abandoned calls still registered their case (else nothing was tested)");
    assert_eq!(idle_in_transaction(&world).await, 0, "no connection left idle inside a transaction");
    assert_eq!(TX_NOTICES.load(Ordering::Relaxed), 0, "no transaction-state notices from PostgreSQL");

    // Retrying every key registers the missing ones and replays the rest: the service answers every call. On a
    // fresh connection, as a client would after a thousand resets: h2 servers may end a connection whose client
    // reset that many streams (rapid-reset protection). Each call is bounded, so a stuck call fails the test
    // rather than hanging it.
    use futures::StreamExt as _;
    let (desk, _) = world.sign_in("gw-001").await;
    let retries: Vec<_> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let (mut desk, request) = (desk.clone(), world.dispute(&format!("cancel-{i}")));
            async move { (i, tokio::time::timeout(Duration::from_secs(60), desk.register_case(request)).await) }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (i, answer) in retries {
        answer
            .unwrap_or_else(|_| panic!("retry {i} not answered within 60 s"))
            .unwrap_or_else(|s| panic!("retry {i}: {s:?}"));
    }
    assert_eq!(whole_cases(&world).await, CALLS + 5, "each key one whole case");
    world.stop().await;
}
