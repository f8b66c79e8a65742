//! GET /metrics on a port of its own, so scrapes never queue behind client calls or pass the auth layer.

use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// The metrics port beside a gRPC address: the gRPC port plus 1000 (intake's 50061 → 51061), or any free port
/// when the gRPC port is (tests). METRICS_ADDR overrides it.
pub fn default_addr(grpc: SocketAddr) -> SocketAddr {
    let port = match grpc.port() {
        0 => 0,
        p => p.saturating_add(1000),
    };
    SocketAddr::new(grpc.ip(), port)
}

/// Serves the Prometheus text format on GET /metrics until shutdown, and GET /healthz: 200 while the service
/// runs, 503 once it is shutting down. The gRPC port has the standard health service, but a kubelet's gRPC
/// probe speaks no TLS: with GRPC_TLS_CERT set the probes ask here instead (deploy/components/grpc-tls).
pub async fn serve(listener: TcpListener, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let state = shutdown.clone();
    let healthz = move || {
        let down = state.is_down();
        async move {
            if down {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
            } else {
                (axum::http::StatusCode::OK, "SERVING")
            }
        }
    };
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .route("/healthz", axum::routing::get(healthz));
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.wait().await }).await?;
    Ok(())
}

async fn scrape() -> impl IntoResponse {
    let samples = super::collect::gather().await;
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], super::render(&samples))
}
