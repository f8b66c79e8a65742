//! Routing's one error type and its one mapping to gRPC status.

use kit::FieldError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    /// Outside the caller's role or scope, for something they may see.
    #[error("not permitted: {0}")]
    Denied(String),
    /// A peer routing must ask did not answer.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// The task's state does not allow what was asked.
    #[error("{0}")]
    WrongState(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(e.into())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(f) => kit::grpc::invalid(&f),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Denied(what) => kit::auth::denied(&what),
            Error::WrongState(why) => Status::failed_precondition(why),
            Error::Unavailable(what) => Status::unavailable(format!("{what} is unavailable; retry")),
            Error::Internal(cause) => kit::grpc::failure("routing failed", &cause),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
