//! RED metrics (rate, errors, duration) of every call a server answers: a tower layer for gRPC servers, and a
//! recorder for HTTP faces that know their matched route.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;

/// Counts each gRPC call by service, method and status code, and times it, in `grpc_server_handled_total` and
/// `grpc_server_handling_seconds`. `known` tells a method of the deployment from a made-up path (the server
/// passes its method table's lookup, so metrics need not know the table).
#[derive(Debug, Clone, Copy)]
pub struct GrpcMetricsLayer {
    pub known: fn(&str) -> bool,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics(inner, self.known)
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S>(S, fn(&str) -> bool);

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let known = (self.1)(&path);
        let start = Instant::now();
        let call = self.0.call(req);
        Box::pin(async move {
            let result = call.await;
            let code = match &result {
                Ok(response) => status_of(response.headers()),
                Err(_) => Code::Unknown,
            };
            record_grpc(&path, known, code, start);
            result
        })
    }
}

/// The call's status as its response headers tell it. A refusal or failure of a unary call is sent
/// trailers-only, so its `grpc-status` is in the headers; a reply with a body carries its status in the
/// trailers, which for a unary call is OK (a handler's error never comes after its message).
fn status_of(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

fn record_grpc(path: &str, known: bool, code: Code, start: Instant) {
    // A path not in the method table is a scanner or a stale client: one series for all of them, however they
    // were answered (UNIMPLEMENTED, or throttled), never one per path. The table bounds the rest.
    let (service, method) = match (code, path.trim_start_matches('/').split_once('/')) {
        (Code::Unimplemented, _) | (_, None) => ("unrouted", "unrouted"),
        (_, Some(_)) if !known => ("unrouted", "unrouted"),
        (_, Some(parts)) => parts,
    };
    let at = [("grpc_service", service), ("grpc_method", method)];
    super::histogram("grpc_server_handling_seconds", &at).observe_since(start);
    let coded = [("grpc_service", service), ("grpc_method", method), ("grpc_code", crate::status::code_name(code))];
    super::counter("grpc_server_handled_total", &coded).inc();
}

/// Records one HTTP request answered on `route` (the router's pattern, e.g. `/v1/cases/{case_ref}`, never
/// the raw path, so ids do not become series) in `http_server_requests_total` and
/// `http_server_request_duration_seconds`.
pub fn record_http(method: &str, route: &str, status: u16, start: Instant) {
    super::histogram("http_server_request_duration_seconds", &[("method", method), ("route", route)])
        .observe_since(start);
    let status = status.to_string();
    super::counter("http_server_requests_total", &[("method", method), ("route", route), ("status", &status)]).inc();
}
