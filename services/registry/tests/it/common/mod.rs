//! What every registry test starts with: a migrated registry on the test's own database, served on a
//! loopback port, with a client of each of its services.

use kit::testing::AuthedChannel as Channel;
use kit::testing::TestInfra;
use proto::registry::v1::geo_client::GeoClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;

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

/// A time `days` from now, as the services write times.

pub fn in_days(days: i64) -> String {
    kit::time::local(chrono::Utc::now() + chrono::Duration::days(days))
}

/// A directive from the center `issuer` to the subtree at `target`, due in three days.

pub fn issue(issuer: &str, target: &str) -> proto::registry::v1::IssueDirectiveRequest {
    proto::registry::v1::IssueDirectiveRequest {
        issuer_center_code: issuer.into(),
        target_code: target.into(),
        title: "汛期地质灾害隐患排查".into(),
        body: "请各村（社区）于三日内完成排查并报告。".into(),
        due_at: in_days(3),
    }
}
