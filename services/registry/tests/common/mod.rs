//! What every registry test file starts with: a migrated registry on the test's own database, served on a
//! loopback port.

use kit::testing::AuthedChannel as Channel;
use kit::testing::TestInfra;

pub struct Registry {
    pub channel: Channel,
    /// Where it listens, for connecting with another principal's token.
    #[allow(dead_code)] // each test file compiles this module; only some connect as someone else
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
    Registry { channel, url, pool, stop }
}
