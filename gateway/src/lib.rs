//! The gateway: one API for client apps, as gRPC (`zongzhi.gateway.v1.Desk`) and as JSON over HTTP.

pub mod desk;
pub mod http;
pub mod limit;
pub mod trail;

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
/// start from [`Settings::new`], which holds the defaults. The gateway has no bus, and a database only for its
/// audit trail, so it has no `kit::Config`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where GET /metrics is served (METRICS_ADDR; by default the gRPC port plus 1000).
    pub metrics_addr: SocketAddr,
    pub backends: Backends,
    pub auth: kit::auth::AuthConfig,
    /// The most calls in flight across both faces before more are shed, and from one client address (see
    /// [`limit`]).
    pub max_in_flight: usize,
    pub max_in_flight_per_client: usize,
    /// Sign-in calls one client address may make at once, then a minute.
    pub auth_burst: u32,
    pub auth_per_minute: u32,
    /// The proxies in front of the gateway (an ingress) whose X-Forwarded-For names the client
    /// (GATEWAY_TRUSTED_PROXIES, comma-separated addresses; none by default: the peer is the client).
    pub trusted_proxies: kit::proxies::Proxies,
    /// Where the calls the gateway refuses are recorded ([`trail`]): always, from the environment; a test of
    /// the limits alone may leave it out.
    pub trail: Option<trail::TrailSettings>,
}

/// One client address's share of the calls in flight in a deployment (GATEWAY_MAX_INFLIGHT_PER_CLIENT). The
/// suite and the tests, whose clients all come from 127.0.0.1, give one address the whole budget.
pub const DEFAULT_MAX_IN_FLIGHT_PER_CLIENT: usize = 64;

/// Sign-in calls per client address: a burst for a shift change at one office's NAT, then one a second.
pub const DEFAULT_AUTH_BURST: u32 = 30;
pub const DEFAULT_AUTH_PER_MINUTE: u32 = 60;

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
            max_in_flight_per_client: DEFAULT_MAX_IN_FLIGHT,
            auth_burst: DEFAULT_AUTH_BURST,
            auth_per_minute: DEFAULT_AUTH_PER_MINUTE,
            trusted_proxies: kit::proxies::Proxies::default(),
            trail: None,
        }
    }

    /// GRPC_ADDR (default 0.0.0.0:50060), HTTP_ADDR (0.0.0.0:8080), METRICS_ADDR (0.0.0.0:51060), INTAKE_URL, ROUTING_URL, REGISTRY_URL,
    /// SUPERVISION_URL, SUBSIDY_URL, GATEWAY_MAX_INFLIGHT (256), GATEWAY_MAX_INFLIGHT_PER_CLIENT (64),
    /// GATEWAY_AUTH_BURST (30), GATEWAY_AUTH_PER_MINUTE (60), GATEWAY_TRUSTED_PROXIES, the trail's database
    /// ([`kit::config::DbConfig::from_env`], schema `gateway`) and AUDIT_KEY, and the trust settings of
    /// [`kit::auth::AuthConfig::from_env`].
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
            max_in_flight_per_client: parse_or("GATEWAY_MAX_INFLIGHT_PER_CLIENT", DEFAULT_MAX_IN_FLIGHT_PER_CLIENT)?,
            auth_burst: parse_or("GATEWAY_AUTH_BURST", DEFAULT_AUTH_BURST)?,
            auth_per_minute: parse_or("GATEWAY_AUTH_PER_MINUTE", DEFAULT_AUTH_PER_MINUTE)?,
            trusted_proxies: kit::proxies::Proxies::from_env("GATEWAY_TRUSTED_PROXIES")?,
            trail: Some(trail::TrailSettings {
                database: kit::config::DbConfig::from_env(NAME)?,
                key: kit::audit::AuditKey::from_env()?,
            }),
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
    let edge = limit::Edge::new(limit::Limits {
        max_in_flight: config.max_in_flight,
        max_in_flight_per_client: config.max_in_flight_per_client.min(config.max_in_flight),
        auth_burst: config.auth_burst,
        auth_per_minute: config.auth_per_minute,
    });
    let grpc = kit::grpc::bind(config.grpc_addr).await?;
    let http = kit::grpc::bind(config.http_addr).await?;
    let http_addr = http.local_addr()?;
    let mut app = Running::new(NAME, grpc.local_addr()?);
    app.serve_metrics(kit::grpc::bind(config.metrics_addr).await?)?;
    let (trail, guard_audit) = match &config.trail {
        Some(settings) => {
            let started = trail::Trail::start(settings, &mut app).await?;
            (Some(std::sync::Arc::new(started.trail)), Some(started.guard_audit))
        }
        None => (None, None),
    };
    // The limits are taken in the Desk's methods, after decoding: health and reflection, added by the scaffold,
    // are never shed.
    let desk = desk::DeskService::connect(&config.backends, verifier.clone(), edge, &config.trusted_proxies, trail)?;
    // Whether any client still sends an enum's old code, which the JSON face reads for one release only.
    app.hold(kit::metrics::collector(|| async {
        Ok(vec![kit::metrics::Sample::new("zongzhi_json_old_enum_codes", &[], proto::json::old_codes_read() as f64)])
    }));
    app.spawn("jwks", verifier.clone().follow(app.shutdown()));
    app.follow_revocations(&verifier, &config.auth, NAME)?;
    let routes = tonic::service::Routes::new(DeskServer::new(desk.clone()));
    app.spawn(
        "grpc",
        kit::grpc::serve(
            grpc,
            routes,
            &["zongzhi.gateway.v1.Desk"],
            // Every call the gateway forwards is recorded by the service; it records the ones it refuses.
            kit::auth::layer::Guard {
                verifier,
                audit: guard_audit,
                forwards: &["zongzhi.gateway.v1.Desk"],
                deadline: Some(limit::CALL_DEADLINE),
                trusted_proxies: config.trusted_proxies.clone(),
                tls: config.auth.server_tls.clone(),
            },
            app.shutdown(),
        ),
    );
    let mut shutdown = app.shutdown();
    let router = http::router(desk);
    app.spawn("http", http::serve::serve(http, router, async move { shutdown.wait().await }));
    Ok(Gateway { app, http_addr })
}
