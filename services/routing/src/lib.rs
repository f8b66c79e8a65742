//! Routing: the routing table and dispatch (分流交办), task slips, 签收, 退单 and 办结.

pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod scope;
pub mod service;
pub mod settings;
pub mod units;

use kit::app::{Foundation, Running};
use proto::registry::v1::registry_client::RegistryClient;
use proto::routing::v1::routing_server::RoutingServer;

pub const NAME: &str = "routing";
pub const DEFAULT_PORT: u16 = kit::config::ports::ROUTING;
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use settings::Settings;

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown.
pub async fn build(settings: Settings) -> anyhow::Result<Running> {
    let config = &settings.common;
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, config, &MIGRATIONS).await?;
    let registry =
        RegistryClient::new(kit::grpc::service_channel(&settings.registry_url, config.auth.identity(NAME)?)?);
    let units = std::sync::Arc::new(units::Units::new(registry.clone(), settings.registry_cache));
    let planner = std::sync::Arc::new(units::Planner::new(pool.clone(), units));
    let tasks = service::Tasks { pool: pool.clone(), outbox: outbox.clone(), registry, planner: planner.clone() };
    let routes = tonic::service::Routes::new(RoutingServer::new(grpc::RoutingService(tasks)));
    app.spawn("grpc", kit::grpc::serve(listener, routes, &["zongzhi.routing.v1.Routing"], guard, app.shutdown()));
    app.spawn("outbox", outbox.clone().relay(pool.clone(), bus.clone(), app.shutdown()));
    let handler = events::DispatchHandler { outbox, planner };
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, handler, app.shutdown()));
    Ok(app)
}
