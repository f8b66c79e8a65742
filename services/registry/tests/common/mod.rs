//! What every registry test file starts with: a migrated registry on the test's own database, served on a
//! loopback port, with a client of each of its services.

use kit::testing::AuthedChannel as Channel;
use kit::testing::TestInfra;
use proto::registry::v1::geo_client::GeoClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;

#[allow(dead_code)] // each test file compiles this module and uses the clients it needs
pub struct Registry {
    pub channel: Channel,
    pub registry: RegistryClient<Channel>,
    pub tree: TreeClient<Channel>,
    pub geo: GeoClient<Channel>,
    /// Where it listens, for connecting with another principal's token.
    pub url: String,
    pub pool: sqlx::PgPool,
    pub stop: kit::app::StopHandle,
}

/// Starts the registry; with `dali`, the shipped Dali tree is imported first.
pub async fn start(infra: &TestInfra, dali: bool) -> Registry {
    let config = infra.config(registry::NAME);
    let pool = registry::connect(&config).await.expect("migrate");
    if dali {
        registry::import_dali(&pool).await.expect("import Dali");
    }
    let app = registry::build(registry::Settings::new(config)).await.expect("build");
    let (url, stop) = kit::testing::spawn(app);
    let channel = kit::testing::connect(&url).await;
    Registry {
        registry: RegistryClient::new(channel.clone()),
        tree: TreeClient::new(channel.clone()),
        geo: GeoClient::new(channel.clone()),
        channel,
        url,
        pool,
        stop,
    }
}
