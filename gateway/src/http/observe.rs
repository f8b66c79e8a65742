//! Each HTTP request as a server span that joins the caller's trace (W3C `traceparent`/`tracestate`), and
//! counted and timed by route. The Desk calls made inside run in this span, so the owning service's span is
//! its child and the whole request is one trace.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub async fn observe(request: Request, next: Next) -> Response {
    // The router's pattern, not the path: ids in paths would make a series, and a span name, per case.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    kit::telemetry::set_parent(&span, kit::telemetry::context_from_headers(request.headers()));
    let start = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    kit::metrics::layer::record_http(&method, &route, status, start);
    response
}
