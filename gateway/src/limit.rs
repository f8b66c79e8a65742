//! What the gateway admits, and when. A call takes its place in flight only once its message is decoded (the
//! Desk method runs after tonic and the JSON extractors have the whole request), so a client that sends its
//! body slowly, or never finishes it, holds no place anyone else needs; the time it may take is bounded by the
//! body and call deadlines instead ([`crate::http::serve`], [`CALL_DEADLINE`]).
//!
//! - At most GATEWAY_MAX_INFLIGHT calls in flight across both faces, and at most
//!   GATEWAY_MAX_INFLIGHT_PER_CLIENT from one client address. A call over either is refused at once (gRPC
//!   RESOURCE_EXHAUSTED with `retry-after`, HTTP 429 with Retry-After) instead of queueing behind the others
//!   until everyone's deadline passes: under overload a quick "come back in a second" keeps the calls already
//!   admitted fast, and a client or load balancer can retry elsewhere.
//! - The public sign-in methods (those the policy table opens to anyone) are throttled per client address
//!   (GATEWAY_AUTH_BURST, then GATEWAY_AUTH_PER_MINUTE): each sign-in costs the registry a password hash.
//!
//! Health checks are never shed, so a busy gateway is not mistaken for a dead one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit::throttle::{Throttle, retry_after_secs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The seconds a client shed for load is told to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The longest a call may take through the gateway, body included, on either face; a client's own shorter
/// `grpc-timeout` wins.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// How many calls, in flight and per client, and the public sign-in budget per client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    pub max_in_flight_per_client: usize,
    pub auth_burst: u32,
    pub auth_per_minute: u32,
}

/// The shared budget of calls in flight, and each client's share of it.
#[derive(Debug)]
pub struct Edge {
    limits: Limits,
    permits: Arc<Semaphore>,
    clients: Mutex<HashMap<IpAddr, usize>>,
    auth: Throttle<IpAddr>,
}

/// A call's place in flight, held until the call ends.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    client: Option<(Arc<Edge>, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((edge, ip)) = &self.client {
            let mut clients = edge.lock();
            if let Some(n) = clients.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    clients.remove(ip);
                }
            }
        }
    }
}

impl Edge {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limits.max_in_flight)),
            clients: Mutex::new(HashMap::new()),
            auth: Throttle::new(limits.auth_burst, limits.auth_per_minute),
            limits,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place in flight for a call from `client` (None when the address is unknown: only the shared budget
    /// applies), or the refusal. `public` marks the sign-in methods, which spend the client's sign-in budget.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>, public: bool) -> Result<Admitted, Status> {
        if let (true, Some(ip)) = (public, client)
            && let Err(wait) = self.auth.take(&ip)
        {
            let secs = retry_after_secs(wait);
            tracing::warn!(client = %ip, "sign-in throttled for a client address");
            return Err(refusal(format!("too many sign-in calls from your address; retry in {secs} s"), secs));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(max_in_flight = self.limits.max_in_flight, "gateway overloaded: call shed");
            let why = format!(
                "the gateway is at its limit of {} calls in flight; retry in {RETRY_AFTER_SECS} s",
                self.limits.max_in_flight
            );
            return Err(refusal(why, RETRY_AFTER_SECS));
        };
        let Some(ip) = client else { return Ok(Admitted { _permit: permit, client: None }) };
        {
            let mut clients = self.lock();
            let n = clients.entry(ip).or_insert(0);
            if *n >= self.limits.max_in_flight_per_client {
                tracing::warn!(client = %ip, max = self.limits.max_in_flight_per_client, "client over its share: call shed");
                let why = format!(
                    "your address has {} calls in flight, its limit; retry in {RETRY_AFTER_SECS} s",
                    self.limits.max_in_flight_per_client
                );
                return Err(refusal(why, RETRY_AFTER_SECS));
            }
            *n += 1;
        }
        Ok(Admitted { _permit: permit, client: Some((self.clone(), ip)) })
    }
}

/// RESOURCE_EXHAUSTED with the wait in `retry-after` (a header on the gRPC face; the JSON face copies it to
/// HTTP's Retry-After).
fn refusal(message: String, retry_after: u64) -> Status {
    let mut status = Status::resource_exhausted(message);
    status.metadata_mut().insert("retry-after", retry_after.into());
    status
}

/// The seconds a refusal asks the client to wait: its `retry-after`, else [`RETRY_AFTER_SECS`].
pub fn retry_after(status: &Status) -> u64 {
    status
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(RETRY_AFTER_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(max: usize, per_client: usize) -> Arc<Edge> {
        Edge::new(Limits {
            max_in_flight: max,
            max_in_flight_per_client: per_client,
            auth_burst: 2,
            auth_per_minute: 1,
        })
    }

    #[test]
    fn a_client_gets_its_share_and_the_others_the_rest() {
        let edge = edge(4, 2);
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let first = edge.admit(Some(a), false).unwrap();
        let _second = edge.admit(Some(a), false).unwrap();
        let over = edge.admit(Some(a), false).unwrap_err();
        assert_eq!((over.code(), retry_after(&over)), (tonic::Code::ResourceExhausted, 1));
        let _other = edge.admit(Some(b), false).unwrap();
        drop(first);
        let _again = edge.admit(Some(a), false).unwrap();
        let _fourth = edge.admit(None, false).unwrap();
        // Four in flight: the shared budget is spent for everyone.
        assert!(edge.admit(None, false).is_err());
        assert!(edge.admit(Some([10, 0, 0, 3].into()), false).is_err());
    }

    #[test]
    fn sign_in_calls_spend_the_address_budget_and_say_when_to_come_back() {
        let edge = edge(10, 10);
        let a: IpAddr = [10, 0, 0, 1].into();
        edge.admit(Some(a), true).unwrap();
        edge.admit(Some(a), true).unwrap();
        let throttled = edge.admit(Some(a), true).unwrap_err();
        assert!(retry_after(&throttled) >= 59, "{throttled:?}");
        assert!(edge.admit(Some(a), false).is_ok(), "other calls are not throttled");
        assert!(edge.admit(Some([10, 0, 0, 2].into()), true).is_ok(), "another address has its own budget");
    }
}
