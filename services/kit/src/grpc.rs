//! The gRPC scaffold: one server shape for every service (health, reflection, trace context), and clients that
//! carry trace context.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::net::TcpListener;
use tonic::Status;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tracing::Instrument;

use crate::auth::ServiceIdentity;
use crate::auth::layer::{AuthLayer, Guard};
use crate::shutdown::Shutdown;
use crate::telemetry::{HeaderExtractor, MetadataInjector};

// The statuses live in `status` (below the auth, metrics and audit modules that use them too); services keep
// reading them as `kit::grpc::…`.
pub use crate::status::{code_name, failure, internal, invalid, parsed, violated_fields};

/// Serves `routes` plus standard health checking and reflection on `listener` until shutdown, then reports
/// NOT_SERVING and drains in-flight calls. `services` are the fully-qualified names reported as SERVING.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    services: &[&str],
    guard: Guard,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    // A service with an audit trail also answers for it (zongzhi.audit.v1.Audit, for the audit administrator).
    let mut services = services.to_vec();
    let routes = match &guard.audit {
        Some((_, key, pool)) => {
            services.push(crate::audit::grpc::SERVICE_NAME);
            routes.add_service(crate::audit::grpc::AuditService::new(pool.clone(), key.clone()).server())
        }
        None => routes,
    };
    let services = services.as_slice();
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in services.iter().copied().chain([""]) {
        health.set_service_status(name, ServingStatus::Serving).await;
    }
    let routes = routes
        .add_service(health_service)
        .add_service(reflection(services).build_v1()?)
        .add_service(reflection(services).build_v1alpha()?);
    let names: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
    let drain = async move {
        shutdown.wait().await;
        // Probes see NOT_SERVING first, so the load balancer stops sending before the listener closes.
        for name in names.iter().map(String::as_str).chain([""]) {
            health.set_service_status(name, ServingStatus::NotServing).await;
        }
    };
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &guard.tls {
        server = server.tls_config(tls.config())?;
    }
    if let Some(deadline) = guard.deadline {
        // The shorter of this and the client's own grpc-timeout.
        server = server.timeout(deadline);
    }
    server
        // Outermost, so every call runs to its end in a task of its own, whatever its client does.
        .layer(DetachLayer)
        // Next, so calls the auth layer refuses are counted and timed too.
        .layer(crate::metrics::layer::GrpcMetricsLayer { known: |path| crate::auth::policy::access(path).is_some() })
        .layer(TraceLayer)
        .layer(AuthLayer::new(guard, services))
        .add_routes(routes)
        // Without TCP_NODELAY a reply written in pieces waits ~40 ms for the peer's delayed ACK (Nagle).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), drain)
        .await?;
    Ok(())
}

/// Reflection over the whole suite's descriptors (so every type resolves) that advertises only what this port
/// serves: its own services, health, and both reflection versions (grpcurl and older tools still ask v1alpha).
fn reflection<'b>(services: &[&str]) -> tonic_reflection::server::Builder<'b> {
    let own =
        ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
    services.iter().copied().chain(own).fold(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
        |b, name| b.with_service_name(name),
    )
}

/// Binds the configured address; port 0 picks a free port (tests).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// A client channel that sends the caller's trace context with every call, and a token: the service's own,
/// or (at the gateway) the one the client sent.
pub type Channel = InterceptedService<tonic::transport::Channel, Outgoing>;

/// A channel for calls made in the caller's name: the request must carry its `authorization` already (the
/// gateway forwards the client's token, so each service decides on the client's own principal).
/// Connects lazily, so services can start in any order; calls fail with UNAVAILABLE until the peer answers.
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(InterceptedService::new(endpoint(url)?.connect_lazy(), Outgoing { identity: None, bearer: None }))
}

/// A channel that sends one fixed bearer token (benchmarks and operator tools acting as one principal).
pub fn channel_with_token(url: &str, token: &str) -> anyhow::Result<Channel> {
    let bearer = format!("Bearer {token}").parse().map_err(|_| anyhow::anyhow!("the token is not a header value"))?;
    Ok(InterceptedService::new(endpoint(url)?.connect_lazy(), Outgoing { identity: None, bearer: Some(bearer) }))
}

/// A channel for calls a service makes in its own name (intake asking the registry where a place is).
pub fn service_channel(url: &str, identity: Arc<ServiceIdentity>) -> anyhow::Result<Channel> {
    Ok(InterceptedService::new(endpoint(url)?.connect_lazy(), Outgoing { identity: Some(identity), bearer: None }))
}

/// A peer's endpoint; an `https://` URL is dialed over TLS, the peer checked against GRPC_TLS_CA.
fn endpoint(url: &str) -> anyhow::Result<tonic::transport::Endpoint> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| anyhow::anyhow!("bad gRPC endpoint {url:?}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30));
    if url.starts_with("https://") {
        return Ok(endpoint.tls_config(crate::tls::client_config()?)?);
    }
    Ok(endpoint)
}

#[derive(Debug, Clone)]
pub struct Outgoing {
    identity: Option<Arc<ServiceIdentity>>,
    bearer: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Outgoing {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut MetadataInjector(req.metadata_mut()));
        });
        if let Some(identity) = &self.identity {
            let value = format!("Bearer {}", identity.bearer()?)
                .parse()
                .map_err(|_| Status::internal("service token is not a header value"))?;
            req.metadata_mut().insert("authorization", value);
        }
        if let Some(bearer) = &self.bearer {
            req.metadata_mut().insert("authorization", bearer.clone());
        }
        Ok(req)
    }
}

/// Runs each call in a task of its own. A client that disconnects or gives up makes the server drop the call's
/// future; without this, a handler dropped mid-transaction never runs its commit or rollback to the end (a
/// COMMIT in flight is followed by a stray ROLLBACK: "there is no transaction in progress"), and a call's
/// effects could outlive its audit record or miss waking the relay. Detached, the call finishes exactly as if
/// the client had waited, and only its answer is discarded. A panicking handler answers INTERNAL instead of
/// breaking the connection.
#[derive(Debug, Clone, Copy)]
struct DetachLayer;

impl<S> tower::Layer<S> for DetachLayer {
    type Service = Detach<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Detach(inner)
    }
}

#[derive(Debug, Clone)]
struct Detach<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Detach<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let call = tokio::spawn(self.0.call(req));
        Box::pin(async move {
            match call.await {
                Ok(answer) => answer,
                Err(e) => Ok(internal(&format!("call to {path} failed"), &e).into_http()),
            }
        })
    }
}

/// Opens a server span per call, a child of the trace context the caller sent.
#[derive(Debug, Clone, Copy)]
struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService(inner)
    }
}

#[derive(Debug, Clone)]
struct TraceService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for TraceService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers())));
        let span = tracing::info_span!("grpc", otel.name = %req.uri().path(), otel.kind = "server");
        let _ = span.set_parent(parent);
        Box::pin(self.0.call(req).instrument(span))
    }
}
