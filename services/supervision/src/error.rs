//! Supervision's errors are all kinds of the shared core: an unknown case is `NotFound("case <id>")`, a move
//! the case's state does not allow `FailedPrecondition`, a caller outside their area or duties `Denied`.

pub use kit::error::{Error, Result};
