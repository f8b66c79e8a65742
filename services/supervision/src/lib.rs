//! Supervision: deadlines (督办), verification and closure (核查/销号) and the follow-up visit (回访).

pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod export;
pub mod grpc;
pub mod scope;
pub mod service;
pub mod settings;
pub mod slip;

use kit::app::{Foundation, Running};
use proto::supervision::v1::supervision_server::SupervisionServer;

pub const NAME: &str = "supervision";
pub const DEFAULT_PORT: u16 = kit::config::ports::SUPERVISION;
pub use settings::Settings;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to supervision's schema and migrates it: what the operator's commands run against.
pub async fn connect(config: &kit::Config) -> anyhow::Result<sqlx::PgPool> {
    kit::db::connect_and_migrate(&config.database, &MIGRATIONS).await
}

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown.
pub async fn build(settings: Settings) -> anyhow::Result<Running> {
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, &settings.common, &MIGRATIONS).await?;
    service::clocks::seed_national(&pool).await?;
    // Keys the slips' verification codes: the deployment's personal-data key, under the slips' own label.
    let sealer = kit::pii::Sealer::new(settings.common.pii_key);
    let slips = std::sync::Arc::new(service::slips::Printer::new(settings.slip_font.clone()));
    let clocks = std::sync::Arc::new(service::clocks::Clocks::default());
    let work = service::Supervision {
        pool: pool.clone(),
        outbox: outbox.clone(),
        slips,
        clocks: clocks.clone(),
        sealer: sealer.clone(),
        routing: service::resolution::Routing::connect(&settings.routing_url)?,
    };
    let routes = tonic::service::Routes::new(SupervisionServer::new(grpc::SupervisionService(work)));
    app.spawn(
        "grpc",
        kit::grpc::serve(listener, routes, &["zongzhi.supervision.v1.Supervision"], guard, app.shutdown()),
    );
    app.spawn("outbox", outbox.clone().relay(pool.clone(), bus.clone(), app.shutdown()));
    app.hold(service::scheduler::due_collector(pool.clone()));
    app.spawn(
        "deadlines",
        service::scheduler::run(pool.clone(), outbox, sealer, settings.deadline_poll, app.shutdown()),
    );
    let projection = events::ProjectionHandler { clocks };
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, projection, app.shutdown()));
    Ok(app)
}
