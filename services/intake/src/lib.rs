//! Intake: registration (受理登记) and the case file.

pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod inflight;
pub mod scope;
pub mod service;
pub mod settings;
pub mod status_view;

use kit::app::{Foundation, Running};
use proto::intake::v1::intake_server::IntakeServer;
use proto::registry::v1::registry_client::RegistryClient;

pub const NAME: &str = "intake";
pub const DEFAULT_PORT: u16 = kit::config::ports::INTAKE;
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use settings::Settings;

/// Connects and migrates, serving nothing: for tools and benchmarks that work on intake's tables.
pub async fn connect(config: &kit::Config) -> anyhow::Result<sqlx::PgPool> {
    kit::db::connect_and_migrate(&config.database, &MIGRATIONS).await
}

/// Connects, migrates, binds and starts every task; the caller runs it until shutdown.
pub async fn build(settings: Settings) -> anyhow::Result<Running> {
    let config = &settings.common;
    let Foundation { pool, bus, listener, mut app, outbox, guard } =
        Foundation::start(NAME, config, &MIGRATIONS).await?;
    let cases = service::Cases {
        pool: pool.clone(),
        outbox: outbox.clone(),
        registry: RegistryClient::new(kit::grpc::service_channel(&settings.registry_url, config.auth.identity(NAME)?)?),
        sealer: kit::pii::Sealer::new(config.pii_key).with_retired(&config.pii_retired),
        unmask_per_hour: settings.unmask_per_hour,
        inflight: inflight::InFlight::default(),
    };
    let routes = tonic::service::Routes::new(IntakeServer::new(grpc::IntakeService(cases)));
    app.spawn("grpc", kit::grpc::serve(listener, routes, &["zongzhi.intake.v1.Intake"], guard, app.shutdown()));
    app.spawn("outbox", outbox.relay(pool.clone(), bus.clone(), app.shutdown()));
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::CaseFileHandler, app.shutdown()));
    Ok(app)
}
