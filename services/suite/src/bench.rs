//! What the benchmark binaries share: a scratch database and stream they remove afterwards, the suite started
//! on them and seeded, clients of the gateway's desk with their own tokens, and a registration to send.

use std::net::SocketAddr;

use kit::auth::{KeySet, Role};
use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::{PartyInput, RegisterCaseRequest};
use sqlx::Connection as _;

use crate::{Suite, SuiteConfig};

/// The township and grid every benchmark case is registered in (the Dali demo data).
pub const TOWNSHIP: &str = "532901003000";
pub const GRID: &str = "532901003001001";

/// A database and a stream of their own, on TEST_DATABASE_URL and TEST_NATS_URL (default local, the open
/// server on 4222, as the demo uses).
pub struct Scratch {
    pub admin_url: String,
    pub db: String,
    pub database_url: String,
    pub nats: kit::config::NatsConfig,
}

impl Scratch {
    pub async fn create(label: &str) -> anyhow::Result<Self> {
        let admin_url = kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let nats_url = kit::config::string_or("TEST_NATS_URL", "nats://127.0.0.1:4222");
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db = format!("zz_{label}_{tag}");
        let nats = kit::config::NatsConfig::local(nats_url, format!("zzb_{tag}"), format!("ZZB_{tag}"));
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
        let database_url = match admin_url.rfind('/') {
            Some(i) => format!("{}/{db}", &admin_url[..i]),
            None => anyhow::bail!("TEST_DATABASE_URL needs a database path"),
        };
        Ok(Self { admin_url, db, database_url, nats })
    }

    /// A pool on one schema of the scratch database.
    pub async fn pool(&self, schema: &str, max: u32) -> anyhow::Result<sqlx::PgPool> {
        let options = self.database_url.parse::<sqlx::postgres::PgConnectOptions>()?.options([("search_path", schema)]);
        Ok(sqlx::postgres::PgPoolOptions::new().max_connections(max).connect_with(options).await?)
    }

    /// The suite on this scratch space, seeded with the Dali demo data, with the bench's keys.
    pub async fn suite(&self, keys: &KeySet) -> anyhow::Result<(Suite, SuiteConfig)> {
        let cfg = SuiteConfig {
            database_url: self.database_url.clone(),
            nats: self.nats.clone(),
            // The bench runs on the open local server, like the demo.
            nats_passwords: Default::default(),
            host: [127, 0, 0, 1].into(),
            base_port: 0,
            http_port: 0,
            keys: keys.clone(),
            pii_key: kit::pii::DEV_KEY,
            audit_key: kit::audit::AuditKey::new([7; 32]),
        };
        let suite = Suite::start(&cfg).await?;
        let pool = registry::connect(&Suite::registry_config(&cfg)).await?;
        let seeder = keys.token("seed", &[(Role::BusinessAdmin, "*")])?;
        let (registry, routing) = (format!("http://{}", suite.registry), format!("http://{}", suite.routing));
        crate::seed::seed(&pool, &registry, &routing, &seeder, &mut |_| {}).await?;
        Ok((suite, cfg))
    }

    /// Removes the stream and the database, whatever happened before.
    pub async fn drop_all(self) -> anyhow::Result<()> {
        if let Ok(client) = async_nats::connect(&self.nats.url).await {
            let _ = async_nats::jetstream::new(client).delete_stream(&self.nats.stream).await;
        }
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db)))
            .execute(&mut admin)
            .await?;
        println!("dropped scratch database {} and stream {}", self.db, self.nats.stream);
        Ok(())
    }
}

pub type Desk = DeskClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>>;

#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// `n` connections to the gateway, each a different person with `role` over the township.
pub async fn desks(gateway: SocketAddr, keys: &KeySet, role: Role, n: usize) -> anyhow::Result<Vec<Desk>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let token = keys.token(&format!("{role}-{i}"), &[(role, TOWNSHIP)])?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{gateway}"))?.connect().await?;
        let bearer = Bearer(format!("Bearer {token}").parse()?);
        out.push(DeskClient::new(tonic::service::interceptor::InterceptedService::new(channel, bearer)));
    }
    Ok(out)
}

/// A dispute in the township's grid, under the idempotency key `key`.
pub fn registration(key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: TOWNSHIP.into(),
        channel: proto::vocab::v1::Channel::WalkIn.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "楼上漏水引发邻里纠纷".into(),
        description: "三楼住户反映楼上长期漏水, 协商未果".into(),
        location_code: GRID.into(),
        parties: vec![PartyInput {
            name: "张三".into(),
            phone: "13812345678".into(),
            id_number: String::new(),
            role: proto::vocab::v1::PartyRole::Applicant.into(),
        }],
        reporter_id: String::new(),
        operator_id: String::new(),
    }
}

/// The p-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}
