//! Subsidy: tariffs and the ledger of credits (以案定补). Money is integer fen.

pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod ledger;
pub mod scope;

use kit::Config;
use kit::app::{Foundation, Running};
use proto::registry::v1::registry_client::RegistryClient;
use proto::subsidy::v1::subsidy_server::SubsidyServer;

pub const NAME: &str = "subsidy";
pub const DEFAULT_PORT: u16 = kit::config::ports::SUBSIDY;
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where subsidy finds the services it calls.
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
    let ledger = ledger::Ledger {
        pool: pool.clone(),
        outbox: outbox.clone(),
        registry: RegistryClient::new(kit::grpc::service_channel(&peers.registry_url, config.auth.identity(NAME)?)?),
    };
    let routes = tonic::service::Routes::new(SubsidyServer::new(grpc::SubsidyService(ledger.clone())));
    app.spawn("grpc", kit::grpc::serve(listener, routes, &["zongzhi.subsidy.v1.Subsidy"], guard, app.shutdown()));
    app.spawn("outbox", outbox.relay(pool.clone(), bus.clone(), app.shutdown()));
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::FollowUpHandler(ledger), app.shutdown()));
    Ok(app)
}
