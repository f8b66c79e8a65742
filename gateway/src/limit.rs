//! Load shedding: at most GATEWAY_MAX_INFLIGHT calls in flight across both faces. A call over the limit is
//! refused at once (gRPC RESOURCE_EXHAUSTED, HTTP 429 with Retry-After) instead of queueing behind the others
//! until everyone's deadline passes: under overload a quick "come back in a second" keeps the calls already
//! admitted fast, and a client or load balancer can retry elsewhere. Health checks are never shed, so a busy
//! gateway is not mistaken for a dead one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The seconds a refused client is told to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The shared budget of calls in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max)), max }
    }

    /// A permit, held for the call's life, or None when the budget is spent.
    fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    fn refused(&self) -> tonic::Status {
        tracing::warn!(max_in_flight = self.max, "gateway overloaded: call shed");
        tonic::Status::resource_exhausted(format!(
            "the gateway is at its limit of {} calls in flight; retry in {RETRY_AFTER_SECS} s",
            self.max
        ))
    }
}

/// Middleware for the gRPC face's routes.
pub async fn grpc(State(limit): State<InFlight>, request: Request, next: Next) -> Response {
    let Some(_permit) = limit.admit() else {
        let mut refused = limit.refused().into_http::<axum::body::Body>();
        refused.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(RETRY_AFTER_SECS));
        return refused.into_response();
    };
    next.run(request).await
}

/// Middleware for the JSON face.
pub async fn http(State(limit): State<InFlight>, request: Request, next: Next) -> Response {
    let Some(_permit) = limit.admit() else {
        let mut refused = crate::http::error_response(&limit.refused());
        refused.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(RETRY_AFTER_SECS));
        return refused;
    };
    next.run(request).await
}
