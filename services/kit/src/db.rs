//! The PostgreSQL pool and forward-only migrations, each service in a schema of its own.

use std::borrow::Cow;

use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _, PgPool};

use std::time::Duration;

use crate::env::{ConfigError, Secret, parse_or, string_or};

/// Where a service's database is and how its pool behaves.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Connection URL; it may carry a password, so it is never printed (read it with `.expose()`).
    pub url: Secret<String>,
    /// The schema owner's URL (DATABASE_MIGRATION_URL), when migrations run as a role of their own: the
    /// service then runs as `url`'s role with only the privileges the owner grants it (see
    /// [`crate::db::connect_and_migrate`]). None: one role does both (the demo and tests).
    pub migration_url: Option<Secret<String>>,
    /// The schema the service owns; its tables, outbox and migration history live there.
    pub schema: String,
    pub max_connections: u32,
    /// How long a call waits for a pooled connection before it is answered UNAVAILABLE. Short, so an
    /// exhausted pool refuses at once and the client retries (perhaps at another replica) instead of stalling.
    pub acquire_timeout: Duration,
    /// The longest one statement may run (PostgreSQL `statement_timeout`): a runaway query is cancelled rather
    /// than holding its connection and locks indefinitely.
    pub statement_timeout: Duration,
    /// The longest a transaction may sit idle between statements (`idle_in_transaction_session_timeout`):
    /// PostgreSQL ends the session of a transaction left open, releasing its locks and its connection.
    pub idle_in_transaction_timeout: Duration,
}

impl DbConfig {
    /// The settings with the default timeouts.
    pub fn new(url: impl Into<String>, schema: impl Into<String>, max_connections: u32) -> Self {
        Self {
            url: Secret::new(url.into()),
            migration_url: None,
            schema: schema.into(),
            max_connections,
            acquire_timeout: Duration::from_millis(DEFAULT_ACQUIRE_TIMEOUT_MS),
            statement_timeout: Duration::from_secs(DEFAULT_STATEMENT_TIMEOUT_SECS),
            idle_in_transaction_timeout: Duration::from_secs(DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_SECS),
        }
    }

    /// Reads DATABASE_URL, DATABASE_MIGRATION_URL (unset), DATABASE_SCHEMA (default: the service's name), DATABASE_MAX_CONNECTIONS (10),
    /// DATABASE_ACQUIRE_TIMEOUT_MS (2000), DATABASE_STATEMENT_TIMEOUT_SECS (30) and
    /// DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECS (60).
    pub fn from_env(service: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            acquire_timeout: Duration::from_millis(parse_or(
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                DEFAULT_ACQUIRE_TIMEOUT_MS,
            )?),
            statement_timeout: Duration::from_secs(parse_or(
                "DATABASE_STATEMENT_TIMEOUT_SECS",
                DEFAULT_STATEMENT_TIMEOUT_SECS,
            )?),
            idle_in_transaction_timeout: Duration::from_secs(parse_or(
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECS",
                DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_SECS,
            )?),
            migration_url: Some(string_or("DATABASE_MIGRATION_URL", "")).filter(|u| !u.is_empty()).map(Secret::new),
            ..Self::new(
                string_or("DATABASE_URL", DEFAULT_DATABASE_URL),
                string_or("DATABASE_SCHEMA", service),
                parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            )
        })
    }
}

/// The shared default, which the demo suite uses too.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/zongzhi";

const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 30;
const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_SECS: u64 = 60;

/// The outbox and inbox tables, run before the service's own migrations (whose versions start above 1000).
static EVENT_TABLES: Migrator = sqlx::migrate!("./migrations");

/// A pooled connection idle longer than this is pinged before it is handed out (see [`connect`]).
const PING_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Connects with the service's schema first on the search path, creates the schema if needed and runs the
/// event-table and service migrations. sqlx takes an advisory lock while migrating, so replicas starting
/// together are safe.
///
/// Migrations run on a connection of their own without the pool's timeouts: waiting for another replica's
/// migration, or building an index, may rightly take longer than any call should. With a migration URL they
/// run as the schema's owner, who then grants the runtime role what it needs and no more ([`RUNTIME_GRANTS`]):
/// the role a compromised service holds cannot drop the audit triggers, rewrite a record or delete one.
pub async fn connect_and_migrate(cfg: &DbConfig, service: &Migrator) -> anyhow::Result<PgPool> {
    let owner = match &cfg.migration_url {
        Some(url) => with_schema(url.expose(), &cfg.schema, "DATABASE_MIGRATION_URL")?,
        None => options(cfg)?,
    };
    let mut migrating = owner.connect().await.map_err(|e| cannot(cfg, &e))?;
    let schema = &cfg.schema;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).execute(&mut migrating).await?;
    migrator(service).run(&mut migrating).await?;
    if cfg.migration_url.is_some() {
        let runtime = options(cfg)?.get_username().to_owned();
        let role: String =
            sqlx::query_scalar("SELECT quote_ident($1)").bind(&runtime).fetch_one(&mut migrating).await?;
        let grants = RUNTIME_GRANTS.replace("{schema}", schema).replace("{role}", &role);
        sqlx::raw_sql(sqlx::AssertSqlSafe(grants)).execute(&mut migrating).await?;
    }
    migrating.close().await?;
    connect(cfg).await
}

/// What the schema's owner grants the runtime role after every migration (so tables a migration adds are
/// covered): the service's own tables to read and write, but of the audit trail only appending records and
/// moving the head, and nothing of the migration history. It owns nothing, so it can neither drop nor alter a
/// table or trigger, nor switch triggers off (`session_replication_role` needs a superuser).
pub const RUNTIME_GRANTS: &str = "\
    GRANT USAGE ON SCHEMA {schema} TO {role}; \
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; \
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}; \
    REVOKE ALL ON {schema}._sqlx_migrations FROM {role}; \
    REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.audit_log FROM {role}; \
    REVOKE INSERT, DELETE, TRUNCATE ON {schema}.audit_head FROM {role}; \
    REVOKE UPDATE, TRUNCATE ON {schema}.audit_pending FROM {role};";

/// Connects with the service's schema first on the search path, without migrating (operator commands).
/// Pooled connections carry the statement and idle-in-transaction timeouts, and the pool refuses after the
/// acquire timeout (answered UNAVAILABLE, see `kit::status::failure`).
pub async fn connect(cfg: &DbConfig) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(cfg.acquire_timeout)
        // sqlx pings a connection (a round trip) at every acquire by default, and again at every release. The
        // release ping stays, so a connection that went back to the pool worked then; only one idle for longer
        // than `PING_IDLE` (a database restarted meanwhile) is pinged again before it is handed out. Under load
        // that is one round trip fewer per acquire, about a fifth of the loop's round trips.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options(cfg)?.options([
            ("statement_timeout", cfg.statement_timeout.as_millis()),
            ("idle_in_transaction_session_timeout", cfg.idle_in_transaction_timeout.as_millis()),
        ]))
        .await
        .map_err(|e| cannot(cfg, &e))?;
    Ok(pool)
}

/// The connection options: the URL with the service's schema first on the search path.
fn options(cfg: &DbConfig) -> anyhow::Result<PgConnectOptions> {
    with_schema(cfg.url.expose(), &cfg.schema, "DATABASE_URL")
}

fn with_schema(url: &str, schema: &str, var: &str) -> anyhow::Result<PgConnectOptions> {
    if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        anyhow::bail!("DATABASE_SCHEMA must be lowercase letters, digits and underscores, got {schema:?}");
    }
    Ok(url
        .parse::<PgConnectOptions>()
        .map_err(|e| anyhow::anyhow!("{var} does not parse: {e}"))?
        .options([("search_path", schema)])
        .log_statements(tracing::log::LevelFilter::Trace))
}

fn cannot(cfg: &DbConfig, e: &sqlx::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot connect to PostgreSQL at {}: {e}", redact(cfg.url.expose()))
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

/// True when the error says the database cannot serve the call now but may on a retry: the pool had no
/// connection within its acquire timeout or is closed (shutting down), the connection broke, the statement
/// was cancelled by `statement_timeout`, or the server is shutting down or out of connections. Anything else
/// is a fault of the call or of the code.
pub fn retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // 57014 query_canceled (statement_timeout), 57P01–57P03 admin/crash shutdown and cannot connect now,
        // 53300 too_many_connections, 25P03 idle_in_transaction_session_timeout.
        _ => err
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| matches!(code.as_ref(), "57014" | "57P01" | "57P02" | "57P03" | "53300" | "25P03")),
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

#[cfg(test)]
mod tests {
    use tonic::Code;

    #[test]
    fn an_exhausted_pool_is_unavailable_and_a_fault_is_internal() {
        let status = |e: anyhow::Error| crate::status::failure("test", &e).code();
        assert_eq!(status(sqlx::Error::PoolTimedOut.into()), Code::Unavailable);
        assert_eq!(status(sqlx::Error::PoolClosed.into()), Code::Unavailable);
        // Found however deep in the chain a service's context put it.
        assert_eq!(
            status(anyhow::Error::from(sqlx::Error::PoolTimedOut).context("reading the case")),
            Code::Unavailable
        );
        assert_eq!(status(sqlx::Error::RowNotFound.into()), Code::Internal);
        assert_eq!(status(anyhow::anyhow!("a bug")), Code::Internal);
    }
}
