//! Intake's one error type and its one mapping to gRPC status.

use kit::FieldError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("case {0} not found")]
    NotFound(String),
    #[error("idempotency_key was already used for a different registration")]
    KeyReused,
    /// A write outside the caller's role or scope.
    #[error("not permitted: {0}")]
    Denied(String),
    /// Too many of one kind of request from one principal.
    #[error("{0}")]
    RateLimited(String),
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
            Error::KeyReused => Status::already_exists(e.to_string()),
            Error::Denied(why) => kit::auth::denied(&why),
            Error::RateLimited(why) => Status::resource_exhausted(why),
            Error::Unavailable(what) => Status::unavailable(format!("{what} is unavailable; retry")),
            Error::Internal(cause) => kit::grpc::failure("intake failed", &cause),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
