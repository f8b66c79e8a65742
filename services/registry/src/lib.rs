//! The grid registry, in rooms by bounded area: the administrative tree and its import (`tree`), grids and
//! people (`grids`), centers and departments (`centers`), location lookup (`geo`), the tree ledger with
//! directives (`ledger`); sign-in is the `identity` crate, served here. Each room has its `domain` (values and parsing), `db` (SQL),
//! `service` (use cases) and `grpc` (its RPCs); `grpc.rs` wires four gRPC services to the rooms.

pub mod centers;
pub mod events;
pub mod geo;
pub mod grids;
pub mod grpc;
pub mod ledger;
pub mod scope;
pub mod settings;
pub mod shared;
pub mod tree;

use kit::app::{Foundation, Running};
use proto::registry::v1::auth_server::AuthServer;
use proto::registry::v1::geo_server::GeoServer;
use proto::registry::v1::ledger_server::LedgerServer;
use proto::registry::v1::registry_server::RegistryServer;
use proto::registry::v1::tree_server::TreeServer;
pub use settings::Settings;

pub const NAME: &str = "registry";
pub const DEFAULT_PORT: u16 = kit::config::ports::REGISTRY;
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The Dali extract shipped with the product, for the demo and tests (see data/README.md).
pub const DALI_CSV: &str = include_str!("../data/dali_532900_divisions_2023.csv");

/// Connects and migrates the registry's database.
pub async fn connect(config: &kit::Config) -> anyhow::Result<sqlx::PgPool> {
    kit::db::connect_and_migrate(&config.database, &MIGRATIONS).await
}

/// Connects, migrates, binds and starts serving; the caller runs it until shutdown.
pub async fn build(settings: Settings) -> anyhow::Result<Running> {
    let config = &settings.common;
    // The registry publishes nothing: the foundation's outbox handle is left untaken and no relay is started.
    let Foundation { pool, bus, listener, mut app, guard, .. } = Foundation::start(NAME, config, &MIGRATIONS).await?;
    let verifier = guard.verifier.clone();
    let geo = geo::Geo::load(pool.clone()).await?;
    let grids = grids::service::Grids {
        pool: pool.clone(),
        sealer: kit::pii::Sealer::new(config.pii_key).with_retired(&config.pii_retired),
        geo: geo.clone(),
    };
    let issuer = identity::issuer(&config.auth, settings.policy.clone(), pool.clone())?;
    let routes = tonic::service::Routes::new(RegistryServer::new(grpc::RegistryService {
        pool: pool.clone(),
        grids: grids.clone(),
    }))
    .add_service(LedgerServer::new(grpc::LedgerService(pool.clone())))
    .add_service(GeoServer::new(grpc::GeoService(geo)))
    .add_service(TreeServer::new(grpc::TreeService { pool: pool.clone(), grids }))
    .add_service(AuthServer::new(identity::AuthService(issuer)));
    app.spawn(
        "grpc",
        kit::grpc::serve(
            listener,
            routes,
            &[
                "zongzhi.registry.v1.Registry",
                "zongzhi.registry.v1.Ledger",
                "zongzhi.registry.v1.Geo",
                "zongzhi.registry.v1.Tree",
                "zongzhi.registry.v1.Auth",
            ],
            guard,
            app.shutdown(),
        ),
    );
    // The registry's own verifier follows the revocation table directly.
    let revoked = pool.clone();
    app.spawn(
        "revocations",
        kit::auth::revocation::follow(
            verifier,
            move |after| {
                let pool = revoked.clone();
                async move { identity::revocations::fetch_local(&pool, after).await }
            },
            config.auth.revocation_poll,
            app.shutdown(),
        ),
    );
    // Case events keep the tree ledger current; the durable consumer is named after the service.
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::LedgerHandler, app.shutdown()));
    Ok(app)
}

/// Imports the shipped Dali extract with centers at every level-2..5 unit (the demo's tree).
pub async fn import_dali(pool: &sqlx::PgPool) -> anyhow::Result<tree::domain::ImportReport> {
    let rows = tree::import::parse(DALI_CSV.as_bytes(), &mut |_| {})?;
    let opts = tree::domain::ImportOptions { edition: "2023".into(), retire_missing: false, establish_centers: true };
    Ok(tree::import::import(pool, &rows, &opts, &mut |_| {}).await?)
}
