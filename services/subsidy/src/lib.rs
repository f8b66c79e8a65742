//! Subsidy: tariffs and the ledger of credits (以案定补). Money is integer fen.

pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod scope;
pub mod service;
pub mod settings;

use kit::app::{Foundation, Running};
use proto::registry::v1::registry_client::RegistryClient;
use proto::subsidy::v1::subsidy_server::SubsidyServer;

pub const NAME: &str = "subsidy";
pub const DEFAULT_PORT: u16 = kit::config::ports::SUBSIDY;
pub use settings::Settings;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown.
pub async fn build(settings: Settings) -> anyhow::Result<Running> {
    let Settings { common, registry_url } = settings;
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, &common, &MIGRATIONS).await?;
    let ledger = service::Ledger {
        pool: pool.clone(),
        outbox: outbox.clone(),
        registry: RegistryClient::new(kit::grpc::service_channel(&registry_url, common.auth.identity(NAME)?)?),
    };
    let routes = tonic::service::Routes::new(SubsidyServer::new(grpc::SubsidyService(ledger.clone())));
    app.spawn("grpc", kit::grpc::serve(listener, routes, &["zongzhi.subsidy.v1.Subsidy"], guard, app.shutdown()));
    app.spawn("outbox", outbox.relay(pool.clone(), bus.clone(), app.shutdown()));
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::FollowUpHandler(ledger), app.shutdown()));
    Ok(app)
}
