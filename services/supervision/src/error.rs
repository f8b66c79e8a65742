//! Supervision's one error type and its one mapping to gRPC status.

use kit::FieldError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("case {0} not found")]
    NotFound(String),
    /// Outside the caller's scope or duties, for a case they may see.
    #[error("not permitted: {0}")]
    Denied(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
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
            Error::NotFound(what) => Status::not_found(format!("case {what} not found")),
            Error::Denied(what) => kit::auth::denied(&what),
            Error::Precondition(why) => Status::failed_precondition(why),
            Error::Unavailable(what) => Status::unavailable(format!("{what} is unavailable; retry")),
            Error::Internal(cause) => kit::grpc::failure("supervision failed", &cause),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
