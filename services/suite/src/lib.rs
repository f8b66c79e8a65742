//! The whole suite in one process: every service and the gateway started from their libraries exactly as
//! their binaries start them, and the demo data seeded through their APIs. `cargo run -p suite` uses it for
//! local work; the end-to-end tests use it on their own database and stream.

pub mod audit_cli;
pub mod bench;
pub mod faults;
pub mod seed;
pub mod storm;

use std::net::{IpAddr, SocketAddr};

use kit::app::{Running, StopHandle};
use kit::config::{Config, DbConfig, NatsConfig};
use tokio::task::JoinHandle;

/// Where the suite's parts listen and what they use.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    pub database_url: String,
    /// The bus; every service connects with these credentials unless `nats_passwords` has its own.
    pub nats: NatsConfig,
    /// Each service's own password on the bus (user = the service's name), for a server running
    /// deploy/nats/nats.conf; empty for the demo's open local server.
    pub nats_passwords: std::collections::BTreeMap<String, String>,
    pub host: IpAddr,
    /// Base port: the gateway's gRPC is `base`, intake `base + 1` … subsidy `base + 5`; 0 picks free ports.
    pub base_port: u16,
    pub http_port: u16,
    /// The deployment's keys (made on the spot for the demo and tests).
    pub keys: kit::auth::KeySet,
    pub pii_key: [u8; 16],
    pub audit_key: kit::audit::AuditKey,
}

/// The running suite.
pub struct Suite {
    pub gateway_grpc: SocketAddr,
    pub gateway_http: SocketAddr,
    pub registry: SocketAddr,
    pub routing: SocketAddr,
    pub intake: SocketAddr,
    pub supervision: SocketAddr,
    pub subsidy: SocketAddr,
    /// Each part's GET /metrics address, by name.
    pub metrics: Vec<(&'static str, SocketAddr)>,
    parts: Vec<(&'static str, StopHandle, JoinHandle<anyhow::Result<()>>)>,
}

impl SuiteConfig {
    /// The common part of a service's settings (its `Settings::new` adds the service's own defaults), on its
    /// default port shifted by as much as the base port is from the gateway's.
    fn service(&self, name: &'static str, default_port: u16) -> Config {
        let offset = default_port - kit::config::ports::GATEWAY;
        let port = if self.base_port == 0 { 0 } else { self.base_port + offset };
        let grpc_addr = SocketAddr::new(self.host, port);
        Config {
            service: name,
            grpc_addr,
            metrics_addr: kit::metrics::default_addr(grpc_addr),
            database: DbConfig::new(self.database_url.clone(), name, 5),
            nats: match self.nats_passwords.get(name) {
                Some(password) => self.nats.as_user(name, password),
                None => self.nats.clone(),
            },
            auth: self.keys.auth(name),
            pii_key: self.pii_key,
            pii_retired: vec![],
            audit_key: self.audit_key.clone(),
        }
    }
}

/// Migrates every schema the suite uses (each service's, and the gateway's audit trail) and serves nothing: what
/// the tests' template database is made of. Each part migrates again at start, which then finds nothing to do.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    static KIT_TABLES_ONLY: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
    let schemas = [
        (registry::NAME, &registry::MIGRATIONS),
        (routing::NAME, &routing::MIGRATIONS),
        (intake::NAME, &intake::MIGRATIONS),
        (supervision::NAME, &supervision::MIGRATIONS),
        (subsidy::NAME, &subsidy::MIGRATIONS),
        (gateway::NAME, &KIT_TABLES_ONLY),
    ];
    for (name, migrations) in schemas {
        kit::db::connect_and_migrate(&DbConfig::new(database_url, name, 1), migrations).await?.close().await;
    }
    Ok(())
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The gateway in front of the services (registry, routing, intake, supervision, subsidy), on the suite's ports (any free ones when the base port is 0), with its
/// audit trail in the suite's database; it follows the registry's revocation list.
async fn build_gateway(cfg: &SuiteConfig, services: [SocketAddr; 5]) -> anyhow::Result<gateway::Gateway> {
    let [registry, routing, intake, supervision, subsidy] = services.map(url);
    let backends = gateway::Backends { intake, routing, registry, supervision, subsidy };
    let port = |p: u16| if cfg.base_port == 0 { 0 } else { p };
    let grpc = SocketAddr::new(cfg.host, port(cfg.base_port));
    let http = SocketAddr::new(cfg.host, port(cfg.http_port));
    let mut auth = cfg.keys.auth(gateway::NAME);
    auth.revocations_url = Some(backends.registry.clone());
    gateway::build(gateway::Settings {
        trail: Some(gateway::trail::TrailSettings {
            database: DbConfig::new(cfg.database_url.clone(), gateway::NAME, 5),
            key: cfg.audit_key.clone(),
        }),
        ..gateway::Settings::new(grpc, http, backends, auth)
    })
    .await
}

impl Suite {
    /// Starts the registry first and the gateway last, each pointed at the addresses the others got.
    pub async fn start(cfg: &SuiteConfig) -> anyhow::Result<Self> {
        let (mut parts, mut metrics) = (Vec::new(), Vec::new());
        let mut keep = |name, app: Running| {
            let addr = app.addr();
            if let Some(m) = app.metrics_addr() {
                metrics.push((name, m));
            }
            let stop = app.stop_handle();
            parts.push((name, stop, tokio::spawn(app.run_until(std::future::pending()))));
            addr
        };
        let registry = keep(
            registry::NAME,
            registry::build(registry::Settings::new(cfg.service(registry::NAME, registry::DEFAULT_PORT))).await?,
        );
        // Every part but the registry follows the registry's revocation list.
        let service = |name, port| {
            let mut c = cfg.service(name, port);
            c.auth.revocations_url = Some(url(registry));
            c
        };
        let routing = keep(
            routing::NAME,
            routing::build(routing::Settings {
                registry_url: url(registry),
                ..routing::Settings::new(service(routing::NAME, routing::DEFAULT_PORT))
            })
            .await?,
        );
        let intake = keep(
            intake::NAME,
            intake::build(intake::Settings {
                registry_url: url(registry),
                ..intake::Settings::new(service(intake::NAME, intake::DEFAULT_PORT))
            })
            .await?,
        );
        let supervision = keep(
            supervision::NAME,
            supervision::build(supervision::Settings {
                routing_url: url(routing),
                ..supervision::Settings::new(service(supervision::NAME, supervision::DEFAULT_PORT))
            })
            .await?,
        );
        let subsidy = keep(
            subsidy::NAME,
            subsidy::build(subsidy::Settings {
                registry_url: url(registry),
                ..subsidy::Settings::new(service(subsidy::NAME, subsidy::DEFAULT_PORT))
            })
            .await?,
        );
        let gw = build_gateway(cfg, [registry, routing, intake, supervision, subsidy]).await?;
        let gateway_http = gw.http_addr;
        let gateway_grpc = keep(gateway::NAME, gw.app);
        Ok(Self { gateway_grpc, gateway_http, registry, routing, intake, supervision, subsidy, metrics, parts })
    }

    /// Stops the gateway first and waits for it (no client calls remain), then tells every service to stop at
    /// once and waits for all. Each drains on its own: its consumers finish the pull and batch in hand (up to a
    /// second's wait), which one after another was most of the time a stop took. A consumer batch that needed
    /// a peer already gone fails and is not acknowledged, so the stream delivers it again at the next start.
    pub async fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        let mut parts = self.parts;
        let mut note = |name: &str, joined: Result<anyhow::Result<()>, tokio::task::JoinError>| match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(service = name, error = %e, "stopped with an error");
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow::anyhow!("{name} panicked: {e}"));
            }
        };
        // The gateway started last.
        if let Some((name, stop, join)) = parts.pop() {
            stop.stop();
            note(name, join.await);
        }
        for (_, stop, _) in &parts {
            stop.stop();
        }
        for (name, _, join) in parts.into_iter().rev() {
            note(name, join.await);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The registry's database, for seeding the tree.
    pub fn registry_config(cfg: &SuiteConfig) -> Config {
        cfg.service(registry::NAME, registry::DEFAULT_PORT)
    }
}
