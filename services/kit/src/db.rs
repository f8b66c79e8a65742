//! The PostgreSQL pool and forward-only migrations, each service in a schema of its own.

use std::borrow::Cow;

use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DbConfig;

/// The outbox and inbox tables, run before the service's own migrations (whose versions start above 1000).
static EVENT_TABLES: Migrator = sqlx::migrate!("./migrations");

/// Connects with the service's schema first on the search path, creates the schema if needed and runs the
/// event-table and service migrations. sqlx takes an advisory lock while migrating, so replicas starting
/// together are safe.
pub async fn connect_and_migrate(cfg: &DbConfig, service: &Migrator) -> anyhow::Result<PgPool> {
    let pool = connect(cfg).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {}", cfg.schema))).execute(&pool).await?;
    migrator(service).run(&pool).await?;
    Ok(pool)
}

/// Connects with the service's schema first on the search path, without migrating (operator commands).
pub async fn connect(cfg: &DbConfig) -> anyhow::Result<PgPool> {
    let schema = &cfg.schema;
    if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        anyhow::bail!("DATABASE_SCHEMA must be lowercase letters, digits and underscores, got {schema:?}");
    }
    let options: PgConnectOptions = cfg
        .url
        .parse::<PgConnectOptions>()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL does not parse: {e}"))?
        .options([("search_path", schema.as_str())])
        .log_statements(tracing::log::LevelFilter::Trace);
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {}: {e}", redact(&cfg.url)))?;
    Ok(pool)
}

fn migrator(service: &Migrator) -> Migrator {
    let migrations: Vec<Migration> = EVENT_TABLES.iter().chain(service.iter()).cloned().collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// The URL without its password, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The constraint a statement violated, when it was a unique (23505), foreign-key (23503) or check (23514)
/// violation: services map these to domain errors by constraint name.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    let db = err.as_database_error()?;
    match db.code().as_deref() {
        Some("23505" | "23503" | "23514" | "23P01") => db.constraint(),
        _ => None,
    }
}
