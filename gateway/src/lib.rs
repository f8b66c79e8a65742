//! The gateway: one API for client apps, as gRPC (`zongzhi.gateway.v1.Desk`) and as JSON over HTTP.

pub mod desk;
pub mod http;
pub mod limit;

use std::net::SocketAddr;

use kit::app::Running;
use kit::config::{parse_or, peer_url, ports};
use proto::gateway::v1::desk_server::DeskServer;

pub const NAME: &str = "gateway";

/// Room for a busy county's bursts (a call takes milliseconds, so this many in flight is thousands of calls a
/// second), small enough that the last admitted call still answers well within a client's deadline.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Where the HTTP face listens unless HTTP_ADDR says otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The gateway's settings: where it listens, where each backend is, whose tokens it trusts and how many calls
/// it admits at once. Read from the environment once, in `main` ([`Settings::from_env`]); the suite and tests
/// start from [`Settings::new`], which holds the defaults. The gateway has no database or bus, so it has no
/// `kit::Config`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where GET /metrics is served (METRICS_ADDR; by default the gRPC port plus 1000).
    pub metrics_addr: SocketAddr,
    pub backends: Backends,
    pub auth: kit::auth::AuthConfig,
    /// The most calls in flight across both faces before more are shed (see [`limit`]).
    pub max_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct Backends {
    pub intake: String,
    pub routing: String,
    pub registry: String,
    pub supervision: String,
    pub subsidy: String,
}

impl Settings {
    /// Listening on `grpc_addr` and `http_addr`, metrics beside the gRPC port, with the default limit.
    pub fn new(grpc_addr: SocketAddr, http_addr: SocketAddr, backends: Backends, auth: kit::auth::AuthConfig) -> Self {
        Self {
            grpc_addr,
            http_addr,
            metrics_addr: kit::metrics::default_addr(grpc_addr),
            backends,
            auth,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// GRPC_ADDR (default 0.0.0.0:50060), HTTP_ADDR (0.0.0.0:8080), METRICS_ADDR (0.0.0.0:51060), INTAKE_URL, ROUTING_URL, REGISTRY_URL,
    /// SUPERVISION_URL, SUBSIDY_URL, GATEWAY_MAX_INFLIGHT (256), and the trust settings of [`kit::auth::AuthConfig::from_env`].
    pub fn from_env() -> anyhow::Result<Self> {
        let grpc_addr = parse_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], ports::GATEWAY)))?;
        let http_addr = parse_or("HTTP_ADDR", SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)))?;
        let backends = Backends {
            intake: peer_url("INTAKE_URL", ports::INTAKE),
            routing: peer_url("ROUTING_URL", ports::ROUTING),
            registry: peer_url("REGISTRY_URL", ports::REGISTRY),
            supervision: peer_url("SUPERVISION_URL", ports::SUPERVISION),
            subsidy: peer_url("SUBSIDY_URL", ports::SUBSIDY),
        };
        Ok(Self {
            metrics_addr: parse_or("METRICS_ADDR", kit::metrics::default_addr(grpc_addr))?,
            max_in_flight: parse_or("GATEWAY_MAX_INFLIGHT", DEFAULT_MAX_IN_FLIGHT)?,
            ..Self::new(grpc_addr, http_addr, backends, kit::auth::AuthConfig::from_env()?)
        })
    }
}

/// A running gateway: the gRPC address is the app's, the HTTP address is beside it.
pub struct Gateway {
    pub app: Running,
    pub http_addr: SocketAddr,
}

pub async fn build(config: Settings) -> anyhow::Result<Gateway> {
    let verifier = std::sync::Arc::new(kit::auth::Verifier::load(&config.auth.trust).await?);
    let desk = desk::DeskService::connect(&config.backends, verifier.clone())?;
    let grpc = kit::grpc::bind(config.grpc_addr).await?;
    let http = kit::grpc::bind(config.http_addr).await?;
    let http_addr = http.local_addr()?;
    let mut app = Running::new(NAME, grpc.local_addr()?);
    app.serve_metrics(kit::grpc::bind(config.metrics_addr).await?)?;
    app.spawn("jwks", verifier.clone().follow(app.shutdown()));
    let limit = limit::InFlight::new(config.max_in_flight);
    // The limit wraps the Desk's routes only: health and reflection, added by the scaffold, are never shed.
    let routes = tonic::service::Routes::from(
        tonic::service::Routes::new(DeskServer::new(desk.clone()))
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(limit.clone(), limit::grpc)),
    );
    app.spawn(
        "grpc",
        kit::grpc::serve(
            grpc,
            routes,
            &["zongzhi.gateway.v1.Desk"],
            // The gateway keeps no records of its own: every call it forwards is recorded by the service.
            kit::auth::layer::Guard { verifier, audit: None },
            app.shutdown(),
        ),
    );
    let mut shutdown = app.shutdown();
    let router = http::router(desk, limit);
    // As for gRPC: no Nagle delay on small JSON replies.
    let http = axum::serve::ListenerExt::tap_io(http, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    app.spawn("http", async move {
        axum::serve(http, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await?;
        Ok(())
    });
    Ok(Gateway { app, http_addr })
}
