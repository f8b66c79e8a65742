//! The JSON face's connection loop: axum's `serve`, plus the timeouts it leaves out. A client that opens a
//! connection and sends its request line and headers a byte at a time is cut off after [`HEADER_TIMEOUT`]
//! (hyper's own header-read timeout, which needs a timer axum does not give it); the body has
//! [`BODY_TIMEOUT`] (the extractor's) and the whole call [`crate::limit::CALL_DEADLINE`] (the router's
//! middleware). Each connection gets the peer's address as axum's `ConnectInfo`, as `into_make_service_with_
//! connect_info` gives it, and shutdown lets calls in progress finish.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client may take to send a request's line and headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body once its headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the connections' calls to end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (closing, closed) = tokio::sync::watch::channel(());
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of descriptors and the like: the listener stays, the next accept may succeed.
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // As for gRPC: no Nagle delay on small JSON replies.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = TowerToHyperService::new(tower::service_fn(move |request: http::Request<_>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        }));
        let mut closed = closed.clone();
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result, peer),
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await, peer);
                }
            }
        });
        // Reap the finished ones as we go, so a long-lived gateway does not keep a handle per connection.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(());
    while connections.join_next().await.is_some() {}
    Ok(())
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>, peer: SocketAddr) {
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
    }
}
