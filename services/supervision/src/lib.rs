//! Supervision: deadlines (督办), verification and closure (核查/销号) and the follow-up visit (回访).

pub mod calendar;
pub mod closing;
pub mod db;
pub mod deadlines;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod policy;
pub mod rates;
pub mod scope;
pub mod slip;

use std::time::Duration;

use kit::Config;
use kit::app::{Foundation, Running};
use proto::supervision::v1::supervision_server::SupervisionServer;

pub const NAME: &str = "supervision";
pub const DEFAULT_PORT: u16 = kit::config::ports::SUPERVISION;
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown. DEADLINE_POLL_MS
/// (default 1000) sets how often due deadlines are looked for, so how late past due one may fire.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let poll = Duration::from_millis(kit::config::parse_or("DEADLINE_POLL_MS", 1000u64)?.max(10));
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, &config, &MIGRATIONS).await?;
    let closing = closing::Closing { pool: pool.clone(), outbox: outbox.clone() };
    let routes = tonic::service::Routes::new(SupervisionServer::new(grpc::SupervisionService(closing)));
    app.spawn(
        "grpc",
        kit::grpc::serve(listener, routes, &["zongzhi.supervision.v1.Supervision"], guard, app.shutdown()),
    );
    app.spawn("outbox", outbox.clone().relay(pool.clone(), bus.clone(), app.shutdown()));
    app.hold(deadlines::due_collector(pool.clone()));
    app.spawn("deadlines", deadlines::run(pool.clone(), outbox, poll, app.shutdown()));
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::ProjectionHandler, app.shutdown()));
    Ok(app)
}
