//! The registry's one error type and its one mapping to gRPC status.

use kit::FieldError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match kit::db::violated_constraint(&e) {
            // The database refused a second active grid worker that slipped past the row lock.
            Some("one_active_worker_per_grid") => {
                Error::FailedPrecondition("the grid already has an active primary grid worker".into())
            }
            _ => Error::Internal(e.into()),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(f) => kit::grpc::invalid(&f),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::Unauthenticated(why) => Status::unauthenticated(why),
            Error::Denied(why) => Status::permission_denied(why),
            Error::Internal(cause) => kit::grpc::failure("registry failed", &cause),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
