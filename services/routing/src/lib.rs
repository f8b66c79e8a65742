//! Routing: the routing table and dispatch (分流交办), task slips, 签收, 退单 and 办结.

pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod tasks;

use kit::Config;
use kit::app::{Foundation, Running};
use proto::routing::v1::routing_server::RoutingServer;

pub const NAME: &str = "routing";
pub const DEFAULT_PORT: u16 = kit::config::ports::ROUTING;
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where routing finds the services it calls: none yet, since every input arrives as an event or a call.
/// Kept so every service builds the same way.
#[derive(Debug, Clone, Default)]
pub struct Peers {}

impl Peers {
    pub fn from_env() -> Self {
        Self {}
    }
}

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown.
pub async fn build(config: Config, _peers: Peers) -> anyhow::Result<Running> {
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, &config, &MIGRATIONS).await?;
    let tasks = tasks::Tasks { pool: pool.clone(), outbox: outbox.clone() };
    let routes = tonic::service::Routes::new(RoutingServer::new(grpc::RoutingService(tasks)));
    app.spawn("grpc", kit::grpc::serve(listener, routes, &["zongzhi.routing.v1.Routing"], guard, app.shutdown()));
    app.spawn("outbox", outbox.clone().relay(pool.clone(), bus.clone(), app.shutdown()));
    let handler = events::DispatchHandler { outbox };
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, handler, app.shutdown()));
    Ok(app)
}
