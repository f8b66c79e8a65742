//! The bus as a service reaches it: where NATS is, who the service is on it, TLS, the stream's replicas, and
//! the event backbone's retries and retention. Settings only, read from the environment; `events` connects with
//! them, and `bus_access` derives each user's permissions from the same partition count.

use std::time::Duration;

use crate::env::{ConfigError, Secret, parse_or, string_or};

/// The shared defaults, which the demo suite uses too.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_EVENT_PREFIX: &str = "zongzhi";
pub const DEFAULT_EVENT_STREAM: &str = "ZONGZHI";

/// How many partitions the stream's subjects are split into. A case's events all carry its partition as the
/// last subject token, so each consumer reads every partition through its own ordered consumer: one case's
/// events in order, different partitions in parallel. Fixed in code because every producer and consumer of a
/// deployment must agree on it; changing it means draining the stream first.
pub const PARTITIONS: u32 = 16;

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    /// Every subject starts with this prefix; tests use their own to stay apart.
    pub prefix: String,
    pub stream: String,
    /// Retries and retention of the event backbone.
    pub events: Settings,
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
            events: Settings::default(),
        }
    }

    /// The same bus with other retry and retention settings.
    pub fn with_events(self, events: Settings) -> Self {
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
            events: Settings::from_env()?,
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

/// Retries and retention, from the environment (see README, "The event backbone").
#[derive(Clone, Debug)]
pub struct Settings {
    /// Attempts at applying one event before it becomes a dead letter (EVENT_MAX_ATTEMPTS).
    pub max_attempts: i32,
    /// The first retry's delay; each further one doubles it, up to five minutes (EVENT_RETRY_BASE_MS).
    pub retry_base: Duration,
    /// How long the stream keeps a message (EVENT_STREAM_MAX_AGE_HOURS) and how many bytes it may hold
    /// (EVENT_STREAM_MAX_BYTES). When full it refuses new messages rather than dropping old ones: the outbox
    /// keeps them and the relay retries, so a full stream delays events and loses none.
    pub stream_max_age: Duration,
    pub stream_max_bytes: i64,
    /// How long published outbox rows and inbox rows are kept (OUTBOX_KEEP_HOURS, INBOX_KEEP_HOURS). The inbox
    /// must remember a message at least as long as the stream can deliver it again.
    pub outbox_keep: Duration,
    pub inbox_keep: Duration,
    /// Pooled connections the consumer's partitions use at once (EVENT_CONSUMER_CONNECTIONS): batches make a
    /// few enough, and the rest of the pool stays free for the service's RPCs.
    pub consumer_connections: usize,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        use crate::env::parse_or;
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let settings = Self {
            max_attempts: parse_or("EVENT_MAX_ATTEMPTS", 8)?,
            retry_base: Duration::from_millis(parse_or("EVENT_RETRY_BASE_MS", 1000)?),
            stream_max_age: hours(parse_or("EVENT_STREAM_MAX_AGE_HOURS", 7 * 24)?),
            stream_max_bytes: parse_or("EVENT_STREAM_MAX_BYTES", 8 << 30)?,
            outbox_keep: hours(parse_or("OUTBOX_KEEP_HOURS", 3 * 24)?),
            inbox_keep: hours(parse_or("INBOX_KEEP_HOURS", 8 * 24)?),
            consumer_connections: parse_or("EVENT_CONSUMER_CONNECTIONS", 3)?,
        };
        settings.check()?;
        Ok(settings)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.max_attempts < 1 {
            anyhow::bail!("EVENT_MAX_ATTEMPTS must be at least 1");
        }
        if self.inbox_keep < self.stream_max_age {
            anyhow::bail!(
                "INBOX_KEEP_HOURS must be at least EVENT_STREAM_MAX_AGE_HOURS: an inbox that forgets a message the \
                 stream can still deliver would apply it twice"
            );
        }
        Ok(())
    }

    /// The delay before attempt `attempts + 1`.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
        (self.retry_base * 2u32.pow(doublings)).min(Duration::from_secs(300))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base: Duration::from_secs(1),
            stream_max_age: Duration::from_secs(7 * 24 * 3600),
            stream_max_bytes: 8 << 30,
            outbox_keep: Duration::from_secs(3 * 24 * 3600),
            inbox_keep: Duration::from_secs(8 * 24 * 3600),
            consumer_connections: 3,
        }
    }
}
