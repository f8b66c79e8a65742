//! Routing's errors are the core kinds of [`kit::Error`]: not found, invalid, denied, failed precondition (a
//! move the task's state does not allow), unavailable, internal.

pub use kit::error::{Error, Result};
