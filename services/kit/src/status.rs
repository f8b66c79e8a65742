//! The statuses every layer answers with: a refused field (INVALID_ARGUMENT naming it), an internal failure
//! that reveals nothing, a busy database as UNAVAILABLE with "retry", and the canonical names of the codes.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::FieldError;

/// The most of a field name or reason a status carries, in characters.
const MAX_DETAIL_CHARS: usize = 300;

/// A parse result as a handler's answer: a refused field becomes [`invalid`], so a handler writes
/// `let id = parsed(field::uuid("task_id", &r.task_id))?;`.
pub fn parsed<T>(result: Result<T, FieldError>) -> Result<T, Status> {
    result.map_err(|e| invalid(&e))
}

/// INVALID_ARGUMENT with a bad-request field violation naming the field.
///
/// Message and details travel in HTTP/2 trailers, which peers cap at a few kilobytes: a longer status does not
/// arrive as an error but breaks the call ("h2 protocol error"). Parsers already quote only short excerpts; the
/// cut here is the last guard, so no parser's slip can turn a refusal into a broken connection.
pub fn invalid(err: &FieldError) -> Status {
    let (field, reason) = (shorten(&err.field), shorten(&err.reason));
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid {field}: {reason}"),
        ErrorDetails::with_bad_request_violation(field, reason),
    )
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The fields named in a status's bad-request details (for clients and tests).
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The canonical name of a gRPC code, as the gRPC spec and google.rpc.Code spell it (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Logs an internal cause with its context and returns a status that reveals nothing of it.
pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %err, "{context}");
    Status::internal("internal error; see the service log")
}

/// The status for a failure the caller cannot fix: UNAVAILABLE with "retry" when its cause is the database
/// being busy or briefly gone ([`crate::db::retryable`]: no pooled connection within the acquire timeout, a
/// statement timeout, a broken connection), since a retry shortly, or at another replica, will likely succeed;
/// otherwise INTERNAL, logged with its context as [`internal`]. Every service's error mapping ends here, so an
/// exhausted pool answers the same everywhere.
pub fn failure(context: &str, cause: &anyhow::Error) -> Status {
    if cause.chain().filter_map(|e| e.downcast_ref::<sqlx::Error>()).any(crate::db::retryable) {
        tracing::warn!(error = %cause, "{context}: database unavailable");
        return Status::unavailable("the database is busy or unreachable; retry");
    }
    internal(context, cause)
}
