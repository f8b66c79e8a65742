//! The grid registry: the administrative tree, grids, people and their assignments, centers, departments.

pub mod auth;
pub mod centers;
pub mod db;
pub mod directive;
pub mod domain;
pub mod error;
pub mod events;
pub mod geo;
pub mod grpc;
pub mod grpc_auth;
pub mod grpc_geo;
pub mod grpc_ledger;
pub mod grpc_tree;
pub mod import;
pub mod ledger;
pub mod scope;
pub mod tree;
pub mod tree_queries;

use kit::Config;
use kit::app::{Foundation, Running};
use proto::registry::v1::auth_server::AuthServer;
use proto::registry::v1::geo_server::GeoServer;
use proto::registry::v1::ledger_server::LedgerServer;
use proto::registry::v1::registry_server::RegistryServer;
use proto::registry::v1::tree_server::TreeServer;

pub const NAME: &str = "registry";
pub const DEFAULT_PORT: u16 = kit::config::ports::REGISTRY;
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The Dali extract shipped with the product, for the demo and tests (see data/README.md).
pub const DALI_CSV: &str = include_str!("../data/dali_532900_divisions_2023.csv");

/// The registry calls no other service.
#[derive(Debug, Clone, Default)]
pub struct Peers {}

/// Connects and migrates the registry's database.
pub async fn connect(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    kit::db::connect_and_migrate(&config.database, &MIGRATIONS).await
}

/// Connects, migrates, binds and starts serving; the caller runs it until shutdown.
pub async fn build(config: Config, _peers: Peers) -> anyhow::Result<Running> {
    // The registry publishes nothing: its outbox stays unused.
    let Foundation { pool, bus, listener, mut app, outbox: _, guard } =
        Foundation::start(NAME, &config, &MIGRATIONS).await?;
    let ledger = LedgerServer::new(grpc_ledger::LedgerService { pool: pool.clone() });
    let geo_index = geo::Geo::load(pool.clone()).await?;
    let registry = tree::Registry {
        pool: pool.clone(),
        sealer: kit::pii::Sealer::new(config.pii_key).with_retired(&config.pii_retired),
        geo: geo_index.clone(),
    };
    let geo = GeoServer::new(grpc_geo::GeoService(geo_index));
    let routes = tonic::service::Routes::new(RegistryServer::new(grpc::RegistryService(registry))).add_service(ledger);
    let routes = routes.add_service(geo);
    let routes = routes.add_service(TreeServer::new(grpc_tree::TreeService(pool.clone())));
    let routes = routes.add_service(AuthServer::new(grpc_auth::AuthService(issuer(&config, pool.clone())?)));
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
    // Case events keep the tree ledger current; the durable consumer is named after the service.
    app.spawn("consumer", kit::events::consume(NAME, pool, bus, events::LedgerHandler, app.shutdown()));
    Ok(app)
}

/// The embedded issuer, signing when this deployment has AUTH_SIGNING_KEY; it publishes its public key.
fn issuer(config: &Config, pool: sqlx::PgPool) -> anyhow::Result<auth::Issuer> {
    let signer = config.auth.issuer_signer();
    let keys = signer.iter().map(|s| s.jwk()).collect::<anyhow::Result<Vec<_>>>()?;
    let jwks_json = serde_json::to_string(&kit::auth::token::JwkSet { keys })?;
    Ok(auth::Issuer { pool, signer, policy: auth::Policy::from_env()?, jwks_json })
}

/// Imports the shipped Dali extract with centers at every level-2..5 unit (the demo's tree).
pub async fn import_dali(pool: &sqlx::PgPool) -> anyhow::Result<import::ImportReport> {
    let rows = import::parse(DALI_CSV.as_bytes(), &mut |_| {})?;
    let opts = import::ImportOptions { edition: "2023".into(), retire_missing: false, establish_centers: true };
    Ok(import::import(pool, &rows, &opts, &mut |_| {}).await?)
}
