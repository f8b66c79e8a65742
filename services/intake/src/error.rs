//! Intake's errors are the core kinds of [`kit::Error`]: not found, invalid, denied, already exists (a reused
//! idempotency key), rate limited, unavailable, internal.

pub use kit::error::{Error, Result};
