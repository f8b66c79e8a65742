//! Intake: registration (受理登记) and the case file.

pub mod board;
pub mod cases;
pub mod categories;
pub mod db;
pub mod domain;
pub mod duplicates;
pub mod error;
pub mod events;
pub mod grpc;
pub mod inflight;
pub mod scope;

use kit::Config;
use kit::app::{Foundation, Running};
use proto::intake::v1::intake_server::IntakeServer;
use proto::registry::v1::registry_client::RegistryClient;

pub const NAME: &str = "intake";
pub const DEFAULT_PORT: u16 = kit::config::ports::INTAKE;
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where intake finds the services it calls.
#[derive(Debug, Clone)]
pub struct Peers {
    pub registry_url: String,
}

impl Peers {
    pub fn from_env() -> Self {
        Self { registry_url: kit::config::peer_url("REGISTRY_URL", kit::config::ports::REGISTRY) }
    }
}

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown.
pub async fn build(config: Config, peers: Peers) -> anyhow::Result<Running> {
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, &config, &MIGRATIONS).await?;
    let cases = cases::Cases {
        pool: pool.clone(),
        outbox: outbox.clone(),
        registry: RegistryClient::new(kit::grpc::service_channel(&peers.registry_url, config.auth.identity(NAME)?)?),
        sealer: kit::pii::Sealer::new(config.pii_key).with_retired(&config.pii_retired),
        unmask_per_hour: kit::config::parse_or("UNMASK_PER_HOUR", 30)?,
        inflight: inflight::InFlight::default(),
    };
    let routes = tonic::service::Routes::new(IntakeServer::new(grpc::IntakeService(cases)));
    app.spawn("grpc", kit::grpc::serve(listener, routes, &["zongzhi.intake.v1.Intake"], guard, app.shutdown()));
    app.spawn("outbox", outbox.relay(pool.clone(), bus.clone(), app.shutdown()));
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::CaseFileHandler, app.shutdown()));
    Ok(app)
}
