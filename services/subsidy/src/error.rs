//! Subsidy's errors are all kinds of the shared core: a refused field `Invalid`, a tariff write outside the
//! caller's reach `Denied`, anything else `Internal`.

pub use kit::error::{Error, Result};
