//! Configuration from the environment only, so the Kubernetes manifests are the one visible source of truth.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// What every service needs to run: where to listen, its database, its broker. It is the `common` part of each
/// service's `Settings`. `Debug` prints no secret (the keys show as `***`), so settings can be logged whole.
#[derive(Clone)]
pub struct Config {
    pub service: &'static str,
    pub grpc_addr: SocketAddr,
    /// Where GET /metrics is served (METRICS_ADDR; by default the gRPC port plus 1000).
    pub metrics_addr: SocketAddr,
    pub database: DbConfig,
    pub nats: NatsConfig,
    pub auth: crate::auth::AuthConfig,
    /// The SM4 key sealing personal data (PII_KEY), and earlier keys that still open old values
    /// (PII_RETIRED_KEYS).
    pub pii_key: [u8; 16],
    pub pii_retired: Vec<[u8; 16]>,
    /// The key of the audit hash chain (AUDIT_KEY).
    pub audit_key: crate::audit::AuditKey,
}

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

/// The defaults of the shared settings, in one place: the services' `from_env` and the demo suite both use them.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/zongzhi";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_EVENT_PREFIX: &str = "zongzhi";
pub const DEFAULT_EVENT_STREAM: &str = "ZONGZHI";

const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 30;
const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    /// Every subject starts with this prefix; tests use their own to stay apart.
    pub prefix: String,
    pub stream: String,
    /// Retries and retention of the event backbone.
    pub events: crate::events::Settings,
    /// Who the service is on the bus (NATS_USER, NATS_PASSWORD). The server's configuration
    /// (deploy/nats/users.conf) lets each user publish only its own event kinds and read only through its own
    /// consumers; `None` connects anonymously, which only the demo's local server accepts.
    pub credentials: Option<NatsCredentials>,
    pub tls: NatsTls,
    /// Copies of the stream kept by a NATS cluster (NATS_STREAM_REPLICAS); 1 on a single server, 3 in
    /// production so the loss of one server loses no acknowledged event. Applied when the stream is created.
    pub replicas: usize,
}

impl NatsConfig {
    /// An anonymous, plain-text connection with one stream replica: the local development server.
    pub fn local(url: impl Into<String>, prefix: impl Into<String>, stream: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            stream: stream.into(),
            credentials: None,
            tls: NatsTls::default(),
            replicas: 1,
            events: crate::events::Settings::default(),
        }
    }

    /// The same bus with other retry and retention settings.
    pub fn with_events(self, events: crate::events::Settings) -> Self {
        Self { events, ..self }
    }

    /// The same bus as another user.
    pub fn as_user(&self, user: &str, password: &str) -> Self {
        Self {
            credentials: Some(NatsCredentials { user: user.to_owned(), password: Secret::new(password.to_owned()) }),
            ..self.clone()
        }
    }

    /// Reads NATS_URL, EVENT_PREFIX, EVENT_STREAM, NATS_USER (default: the service's name), NATS_PASSWORD,
    /// NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY, NATS_TLS_REQUIRED and NATS_STREAM_REPLICAS. Without a
    /// password the service refuses to start: an anonymous connection could publish any event. NATS_ANONYMOUS=true
    /// connects without one, for a development server that has no users.
    pub fn from_env(service: &str) -> anyhow::Result<Self> {
        let password = string_or("NATS_PASSWORD", "");
        let credentials = match (password.is_empty(), parse_or("NATS_ANONYMOUS", false)?) {
            (false, _) => Some(NatsCredentials { user: string_or("NATS_USER", service), password: Secret::new(password) }),
            (true, true) => None,
            (true, false) => Err(ConfigError {
                name: "NATS_PASSWORD".into(),
                reason: "required: the service's own password on the bus (or NATS_ANONYMOUS=true for a development server without users)".into(),
            })?,
        };
        let path = |name: &str| Some(string_or(name, "")).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        let (ca, cert, key) = (path("NATS_TLS_CA"), path("NATS_TLS_CERT"), path("NATS_TLS_KEY"));
        if cert.is_some() != key.is_some() {
            Err(ConfigError {
                name: "NATS_TLS_CERT".into(),
                reason: "NATS_TLS_CERT and NATS_TLS_KEY go together".into(),
            })?;
        }
        let any_tls = ca.is_some() || cert.is_some();
        let client = cert.zip(key);
        Ok(Self {
            url: string_or("NATS_URL", DEFAULT_NATS_URL),
            prefix: string_or("EVENT_PREFIX", DEFAULT_EVENT_PREFIX),
            stream: string_or("EVENT_STREAM", DEFAULT_EVENT_STREAM),
            credentials,
            tls: NatsTls { ca, client, required: parse_or("NATS_TLS_REQUIRED", any_tls)? },
            replicas: parse_or("NATS_STREAM_REPLICAS", 1)?,
            events: crate::events::Settings::from_env()?,
        })
    }
}

/// A user and password on the bus; the password is never printed.
#[derive(Debug, Clone)]
pub struct NatsCredentials {
    pub user: String,
    pub password: Secret<String>,
}

/// TLS to the bus: the CA that signed the server's certificate (NATS_TLS_CA, else the system's roots), a
/// client certificate and key for servers that verify clients (NATS_TLS_CERT, NATS_TLS_KEY), and whether
/// plain text is refused (NATS_TLS_REQUIRED, on whenever a CA or client certificate is given; a `tls://` URL
/// also requires it).
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    pub ca: Option<std::path::PathBuf>,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub required: bool,
}

/// A variable that is missing or does not parse, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SM4 keys are plain byte arrays (the sealer takes them as they are); they print as `***`.
        f.debug_struct("Config")
            .field("service", &self.service)
            .field("grpc_addr", &self.grpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("database", &self.database)
            .field("nats", &self.nats)
            .field("auth", &self.auth)
            .field("pii_key", &"***")
            .field("pii_retired", &format_args!("[{} keys]", self.pii_retired.len()))
            .field("audit_key", &self.audit_key)
            .finish()
    }
}

impl Config {
    /// Reads the common settings: GRPC_ADDR, METRICS_ADDR, the database's ([`DbConfig::from_env`]),
    /// NATS_URL, EVENT_PREFIX, EVENT_STREAM, PII_KEY, PII_RETIRED_KEYS, AUDIT_KEY, and the trust settings of [`crate::auth::AuthConfig::from_env`].
    pub fn from_env(service: &'static str, default_port: u16) -> anyhow::Result<Self> {
        let grpc_addr = parse_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], default_port)))?;
        Ok(Self {
            service,
            grpc_addr,
            metrics_addr: parse_or("METRICS_ADDR", crate::metrics::default_addr(grpc_addr))?,
            database: DbConfig::from_env(service)?,
            nats: NatsConfig::from_env(service)?,
            auth: crate::auth::AuthConfig::from_env()?,
            pii_key: crate::pii::Sealer::key_from_env()?,
            pii_retired: crate::pii::Sealer::retired_from_env()?,
            audit_key: crate::audit::AuditKey::from_env()?,
        })
    }
}

/// The variable's value, or the default when it is unset or empty.
pub fn string_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_owned(),
    }
}

/// The variable parsed as `T`, or the default when unset; a value that does not parse is an error, not a
/// silent fallback.
pub fn parse_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError { name: name.to_owned(), reason: format!("cannot parse {v:?}: {e}") }),
        _ => Ok(default),
    }
}

/// Default gRPC ports, in one place: each service listens on its own, and its peers dial it there unless
/// told otherwise.
pub mod ports {
    pub const GATEWAY: u16 = 50060;
    pub const INTAKE: u16 = 50061;
    pub const ROUTING: u16 = 50062;
    pub const REGISTRY: u16 = 50063;
    pub const SUPERVISION: u16 = 50064;
    pub const SUBSIDY: u16 = 50065;
}

/// A peer's URL from `var`, by default the peer's port on this host.
pub fn peer_url(var: &str, port: u16) -> String {
    string_or(var, &local_url(port))
}

/// A peer on this host at `port`: the default of every peer URL.
pub fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A setting that must never be printed (a database URL with its password, a key): `Debug` shows `Secret(***)`,
/// so a settings struct can derive `Debug` and be logged whole. Read it with [`Secret::expose`], only where it is
/// used.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn settings_print_no_secret() {
        let mut db = super::DbConfig::new("postgres://zz:hunter2@db/zongzhi", "intake", 5);
        db.schema = "intake".into();
        let nats = super::NatsConfig::local("nats://127.0.0.1:4222", "zongzhi", "ZONGZHI").as_user("intake", "s3cret");
        let printed = format!("{db:?} {nats:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn a_secret_never_prints() {
        let url = Secret::new("postgres://zz:hunter2@db/zongzhi".to_owned());
        assert_eq!(format!("{url:?}"), "Secret(***)");
        assert_eq!(url.expose(), "postgres://zz:hunter2@db/zongzhi");
    }
}
