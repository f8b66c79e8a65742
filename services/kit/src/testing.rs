//! Test harnesses: every test gets its own database and its own stream and subject prefix, both removed when
//! the harness is dropped (even when the test panics), so tests never see each other's data or leftovers.

use crate::config::{Config, DbConfig, NatsConfig};

/// One test's private infrastructure on the real PostgreSQL and NATS.
#[derive(Debug)]
pub struct TestInfra {
    admin_url: String,
    pub db_name: String,
    pub db_url: String,
    pub nats: NatsConfig,
}

impl TestInfra {
    /// Creates a fresh database and names a fresh stream (services create it on connect).
    /// TEST_DATABASE_URL (an existing database to connect to for CREATE DATABASE) and TEST_NATS_URL override
    /// the local defaults.
    pub async fn new() -> Self {
        let admin_url = crate::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let nats_url = crate::config::string_or("TEST_NATS_URL", "nats://127.0.0.1:4222");
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db_name = format!("zz_test_{tag}");
        let mut admin = sqlx::PgConnection::connect_with(
            &admin_url.parse::<sqlx::postgres::PgConnectOptions>().expect("TEST_DATABASE_URL parses"),
        )
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {admin_url}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let db_url = match admin_url.rfind('/') {
            Some(i) => format!("{}/{db_name}", &admin_url[..i]),
            None => panic!("TEST_DATABASE_URL needs a database path"),
        };
        Self {
            admin_url,
            db_name,
            db_url,
            nats: NatsConfig { url: nats_url, prefix: format!("zzt_{tag}"), stream: format!("ZZT_{tag}") },
        }
    }

    pub fn db(&self, schema: &str) -> DbConfig {
        DbConfig { url: self.db_url.clone(), schema: schema.to_owned(), max_connections: 5 }
    }

    /// A service configuration on this infrastructure, listening on a free loopback port.
    pub fn config(&self, service: &'static str) -> Config {
        Config {
            service,
            grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            database: self.db(service),
            nats: self.nats.clone(),
        }
    }

    /// A pool on one service's schema, for assertions on its tables.
    pub async fn pool(&self, schema: &str) -> sqlx::PgPool {
        let options = self
            .db_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .expect("test url parses")
            .options([("search_path", schema)]);
        sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_with(options).await.expect("test pool")
    }
}

use sqlx::Connection as _;

impl Drop for TestInfra {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let db_name = self.db_name.clone();
        let nats = self.nats.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived thread with its own
        // runtime does the cleanup and is joined.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(client) = async_nats::connect(&nats.url).await {
                    let _ = async_nats::jetstream::new(client).delete_stream(&nats.stream).await;
                }
                if let Ok(opts) = admin_url.parse::<sqlx::postgres::PgConnectOptions>() {
                    if let Ok(mut admin) = sqlx::PgConnection::connect_with(&opts).await {
                        let sql = format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}
