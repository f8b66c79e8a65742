//! The same-key storm: many concurrent registrations carrying one idempotency key, as a client retrying
//! impatiently (or a flaky network duplicating a request) sends them. Every call must be answered, with the one
//! case the first of them registered; the end-to-end test asserts it and `storm_bench` prints it.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use proto::intake::v1::RegisterCaseResponse;

/// What a storm came to.
#[derive(Debug, Default)]
pub struct Storm {
    pub calls: usize,
    /// Calls answered OK, whether they registered or replayed.
    pub answered: usize,
    /// Answers that say they registered (`replayed: false`): one, if idempotency holds.
    pub created: usize,
    /// The distinct case ids the answers named.
    pub case_ids: BTreeSet<String>,
    /// Each failed call's code and message.
    pub errors: Vec<String>,
    pub elapsed: Duration,
    /// The slowest answer: a pool that stalls shows here long before it shows as errors.
    pub slowest: Duration,
}

/// Starts `calls` registrations at once (`register` makes each call) and waits for all of them.
pub async fn same_key<F, Fut>(calls: usize, register: F) -> Storm
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<RegisterCaseResponse, tonic::Status>> + Send + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..calls)
        .map(|_| {
            let call = register();
            tokio::spawn(async move {
                let at = Instant::now();
                (call.await, at.elapsed())
            })
        })
        .collect();
    let mut storm = Storm { calls, ..Storm::default() };
    for handle in handles {
        let (result, took) = match handle.await {
            Ok(done) => done,
            Err(e) => (Err(tonic::Status::internal(format!("the call's task failed: {e}"))), Duration::ZERO),
        };
        storm.slowest = storm.slowest.max(took);
        match result {
            Ok(r) => {
                storm.answered += 1;
                storm.created += usize::from(!r.replayed);
                storm.case_ids.extend(r.case.map(|c| c.id));
            }
            Err(s) => storm.errors.push(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    storm.elapsed = started.elapsed();
    storm
}

impl std::fmt::Display for Storm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} same-key calls: {} answered, {} case(s) created, {} distinct case id(s), {} error(s); {:.0} ms \
             elapsed, slowest call {:.0} ms",
            self.calls,
            self.answered,
            self.created,
            self.case_ids.len(),
            self.errors.len(),
            self.elapsed.as_secs_f64() * 1000.0,
            self.slowest.as_secs_f64() * 1000.0,
        )
    }
}
