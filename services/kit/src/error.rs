//! The one error core every service shares, with one name per kind and one mapping to gRPC status.
//!
//! A service's domain and database code return [`Error`]; its gRPC layer turns it into a [`Status`] with `?` (the
//! `From` below). A service that has a kind of its own wraps this core in its own enum rather than repeating
//! these arms.

use tonic::Status;

use crate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field was refused: INVALID_ARGUMENT naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// What was asked for does not exist (or is not visible to the caller): the message names it.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller did not prove who they are.
    #[error("{0}")]
    Unauthenticated(String),
    /// Outside the caller's role or scope, for something they may see.
    #[error("not permitted: {0}")]
    Denied(String),
    /// The thing's state does not allow what was asked (a task already accepted, a grid already staffed).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something with the same identity exists and differs (an idempotency key reused for another request).
    #[error("{0}")]
    AlreadyExists(String),
    /// Too many of one kind of request from one principal.
    #[error("{0}")]
    RateLimited(String),
    /// A peer this service must ask did not answer; the client may retry.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    pub fn denied(why: impl Into<String>) -> Self {
        Error::Denied(why.into())
    }

    pub fn failed_precondition(why: impl Into<String>) -> Self {
        Error::FailedPrecondition(why.into())
    }

    /// A refused field, as an error of this core.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid(FieldError::new(field, reason))
    }
}

/// The verified caller of a request, as an error of this core (UNAUTHENTICATED when the auth layer put none
/// there).
pub fn principal<T>(request: &tonic::Request<T>) -> Result<std::sync::Arc<crate::auth::Principal>> {
    crate::auth::principal(request).map_err(|status| Error::Unauthenticated(status.message().to_owned()))
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(e.into())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(f) => crate::status::invalid(&f),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Unauthenticated(why) => Status::unauthenticated(why),
            Error::Denied(why) => crate::auth::denied(&why),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::AlreadyExists(why) => Status::already_exists(why),
            Error::RateLimited(why) => Status::resource_exhausted(why),
            Error::Unavailable(what) => Status::unavailable(format!("{what} is unavailable; retry")),
            // The request's span names the service and the method; the cause is logged, never sent.
            Error::Internal(cause) => crate::status::failure("request failed", &cause),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_kind_has_its_own_code() {
        let cases = [
            (Error::invalid("title", "is required"), Code::InvalidArgument),
            (Error::not_found("case x"), Code::NotFound),
            (Error::Unauthenticated("no token".into()), Code::Unauthenticated),
            (Error::denied("outside your scope"), Code::PermissionDenied),
            (Error::failed_precondition("already accepted"), Code::FailedPrecondition),
            (Error::AlreadyExists("key reused".into()), Code::AlreadyExists),
            (Error::RateLimited("slow down".into()), Code::ResourceExhausted),
            (Error::Unavailable("registry"), Code::Unavailable),
            (Error::Internal(anyhow::anyhow!("secret detail")), Code::Internal),
        ];
        for (error, code) in cases {
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{status:?}");
            assert!(!status.message().contains("secret detail"), "an internal cause never reaches the client");
        }
        assert_eq!(Status::from(Error::not_found("case x")).message(), "case x not found");
        assert!(Status::from(Error::invalid("title", "is required")).message().contains("title"));
    }
}
