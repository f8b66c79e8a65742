//! Subsidy's one error type and its one mapping to gRPC status.

use kit::FieldError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A write outside the caller's role or scope.
    #[error("not permitted: {0}")]
    Denied(String),
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
            Error::Denied(why) => kit::auth::denied(&why),
            Error::Internal(cause) => kit::grpc::failure("subsidy failed", &cause),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
