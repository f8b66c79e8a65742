//! The shared service library: what every Zongzhi service needs and nothing else.
//!
//! Configuration from the environment, telemetry with W3C trace context, the gRPC server scaffold (health,
//! reflection, tracing), Prometheus metrics, shutdown, the PostgreSQL pool and migrations, the outbox/inbox plumbing to
//! JetStream, and the tamper-evident audit trail. The `testing` feature adds harnesses that give each test its own database and stream.

pub mod app;
pub mod audit;
pub mod auth;
pub mod bus_access;
pub mod cli;
pub mod config;
pub mod db;
pub mod division;
pub mod ed25519;
pub mod env;
pub mod error;
pub mod events;
pub mod field;
pub mod grpc;
pub mod ids;
pub mod metrics;
pub mod nats;
pub mod page;
pub mod pii;
pub mod proxies;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod throttle;
pub mod time;
pub mod tls;
pub mod vocab;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::Config;
pub use error::Error;

// For `code_enum!`, whose expansion implements sqlx's traits in the crates that use it.
#[doc(hidden)]
pub use sqlx as __sqlx;
// For `code_enum!`'s tie to a proto enum.
#[doc(hidden)]
pub use proto as __proto;

/// A rejected input field: which one and why. Domain parsers return it; the gRPC layer turns it into
/// INVALID_ARGUMENT with a bad-request field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}
