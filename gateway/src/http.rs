//! The same operations as JSON over HTTP, served by calling the gRPC face in-process, so both faces behave
//! identically. A gRPC status becomes an HTTP status with a JSON body naming the code and any bad fields.

mod extract;
mod observe;
mod rates;
pub mod routes;
pub mod serve;
mod slips;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tonic::{Code, Request, Status};

use crate::desk::DeskService;
use extract::{Body, Params};

type Desk_ = State<Arc<DeskService>>;

/// Every route's call but `/healthz`'s takes a place in flight in the Desk, once its body is decoded (see
/// [`crate::limit`]); every route answers within [`crate::limit::CALL_DEADLINE`].
pub fn router(desk: DeskService) -> Router {
    Router::new()
        .merge(routes::routes())
        .merge(rates::routes())
        .merge(slips::routes())
        .layer(axum::middleware::from_fn(deadline))
        .route("/healthz", get(|| async { "ok" }))
        // The routes' OpenAPI document, generated with them; static, so outside the limits and open to all.
        .route(
            "/v1/openapi.json",
            get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], proto::api::OPENAPI) }),
        )
        // Last, so it wraps every route above (a layer applies to the routes present when it is added), the
        // calls the limit sheds included.
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(Arc::new(desk))
}

/// The caller's credentials and address as the HTTP request carried them, put on the in-process gRPC call so
/// the Desk admits it exactly as it admits a gRPC client: the TCP peer in [`crate::desk::PEER`] (a request built
/// here, so no client can set it) and the request's own X-Forwarded-For, which the Desk believes only from a
/// trusted proxy.
struct Caller {
    authorization: Option<axum::http::HeaderValue>,
    peer: Option<axum::http::HeaderValue>,
    forwarded_for: Option<axum::http::HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(Caller {
            authorization: parts.headers.get(axum::http::header::AUTHORIZATION).cloned(),
            peer: peer.and_then(|ip| ip.to_string().parse().ok()),
            forwarded_for: parts.headers.get("x-forwarded-for").cloned(),
        })
    }
}

impl Caller {
    fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut().as_mut();
        if let Some(v) = &self.authorization {
            metadata.insert(axum::http::header::AUTHORIZATION, v.clone());
        }
        if let Some(v) = &self.peer {
            metadata.insert(crate::desk::PEER, v.clone());
        }
        if let Some(v) = &self.forwarded_for {
            metadata.insert("x-forwarded-for", v.clone());
        }
        request
    }
}

fn bad_request(field: &str, reason: &str) -> Response {
    error_response(&kit::grpc::invalid(&kit::FieldError::new(field, reason)))
}

async fn reply<T: Serialize>(result: Result<tonic::Response<T>, Status>) -> Response {
    match result {
        Ok(r) => Json(r.into_inner()).into_response(),
        Err(status) => error_response(&status),
    }
}

#[derive(Serialize)]
struct ErrorBody {
    code: String,
    message: String,
    fields: Vec<String>,
}

/// A call still running at [`crate::limit::CALL_DEADLINE`] is answered 504 DEADLINE_EXCEEDED (and dropped: a
/// backend call in it is cancelled, as a gRPC client's deadline cancels it).
async fn deadline(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(crate::limit::CALL_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let secs = crate::limit::CALL_DEADLINE.as_secs();
            error_response(&Status::deadline_exceeded(format!("the call did not finish within {secs} s; retry")))
        }
    }
}

/// The HTTP equivalent of each gRPC code, as in Google's API design guide.
pub fn error_response(status: &Status) -> Response {
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = ErrorBody {
        code: kit::grpc::code_name(status.code()).to_owned(),
        message: status.message().to_owned(),
        fields: kit::grpc::violated_fields(status),
    };
    let mut response = (http, Json(body)).into_response();
    if status.code() == Code::ResourceExhausted {
        let wait = crate::limit::retry_after(status);
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(wait));
    }
    response
}
