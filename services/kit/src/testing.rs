//! Test harnesses: every test gets its own database and its own stream and subject prefix, both removed when
//! the harness is dropped (even when the test panics), so tests never see each other's data or leftovers.
//! The bus is a nats-server that the test process starts with the project's own configuration
//! (deploy/nats/nats.conf), so every service under test connects as its own user with its own permissions.

mod certs;
mod channel;
mod nats;
mod pg_count;
mod rng;
mod template;
pub use certs::TestCerts;
pub use channel::{AuthedChannel, ROOT_PERSON, RootTokens};
pub use nats::{TestNats, test_nats};
pub use pg_count::PgCounter;
pub use rng::Rng;

use crate::config::{Config, DbConfig, NatsConfig};
use sqlx::Connection as _;

/// One test's private infrastructure on the real PostgreSQL and NATS.
#[derive(Debug)]
pub struct TestInfra {
    admin_url: String,
    pub db_name: String,
    pub db_url: String,
    /// The test's stream, as the `ops` user (who may do everything): for injecting and reading events.
    pub nats: NatsConfig,
    origin: Origin,
}

/// Where the database came from, which decides what dropping the harness does with it.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Made empty for this test: dropped with it.
    Fresh,
    /// Copied from the template of a kind: dropped with it, and the template's use ends.
    Copy(&'static str),
    /// A template being made: kept (the template's last copy drops it).
    Template,
}

impl TestInfra {
    /// Creates a fresh, empty database and names a fresh stream (services create it on connect).
    pub async fn new() -> Self {
        let infra = Self::named("zz_test_", Origin::Fresh);
        infra.create(None).await;
        infra
    }

    /// Like [`TestInfra::new`], but the database starts as a copy of the template of `kind`, which this process
    /// makes once with `build` (given the template's own harness: migrate, import, then close every pool) and
    /// keeps while a copy of it is in use (see `template`).
    pub async fn from_template<B, F>(kind: &'static str, build: B) -> Self
    where
        B: FnOnce(TestInfra) -> F,
        F: Future<Output = ()>,
    {
        let infra = Self::named("zz_test_", Origin::Copy(kind));
        let template = template::lease(&infra.admin_url, kind, || async {
            let template = Self::named(&format!("{}{}_", template::PREFIX, std::process::id()), Origin::Template);
            let name = template.db_name.clone();
            template.create(None).await;
            build(template).await;
            name
        })
        .await;
        infra.create(Some(&template)).await;
        infra
    }

    /// A harness for a database named `prefix` and a fresh tag, not made yet; TEST_DATABASE_URL (an existing
    /// database to connect to for CREATE DATABASE) overrides the local default; for the bus see [`test_nats`].
    fn named(prefix: &str, origin: Origin) -> Self {
        let admin_url = crate::env::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let bus = test_nats();
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db_name = format!("{prefix}{tag}");
        let db_url = match admin_url.rfind('/') {
            Some(i) => format!("{}/{db_name}", &admin_url[..i]),
            None => panic!("TEST_DATABASE_URL needs a database path"),
        };
        let nats = NatsConfig::local(bus.url.clone(), format!("zzt_{tag}"), format!("ZZT_{tag}"))
            .as_user(crate::bus_access::OPS_USER, bus.password(crate::bus_access::OPS_USER))
            // Retries fast enough that a test sees a poison event become a dead letter in about six seconds,
            // and slow enough that a peer restarting within a few seconds is waited for.
            .with_events(crate::events::Settings {
                max_attempts: 6,
                retry_base: std::time::Duration::from_millis(200),
                // Many suites run side by side in one test process; each consumer keeps to one connection.
                consumer_connections: 1,
                // JetStream reserves a file stream's max_bytes against the server's store (by default 75% of
                // the disk's free space) when the stream is created: with production's 8 GiB, a handful of
                // suites at once on a machine with 40 GB free were refused "insufficient storage resources".
                stream_max_bytes: 64 << 20,
                ..Default::default()
            });
        Self { admin_url, db_name, db_url, nats, origin }
    }

    /// Creates the database, empty or as a copy of `template`.
    async fn create(&self, template: Option<&str>) {
        let admin_url = &self.admin_url;
        let mut admin = sqlx::PgConnection::connect_with(
            &admin_url.parse::<sqlx::postgres::PgConnectOptions>().expect("TEST_DATABASE_URL parses"),
        )
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {admin_url}: {e}"));
        let from = template.map(|t| format!(" TEMPLATE {t}")).unwrap_or_default();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {}{from}", self.db_name)))
            .execute(&mut admin)
            .await
            .expect("create test database");
    }

    pub fn db(&self, schema: &str) -> DbConfig {
        DbConfig::new(self.db_url.clone(), schema, 5)
    }

    /// This test's stream as `user` (a service's name, or `ops`), with that user's password.
    pub fn nats_as(&self, user: &str) -> NatsConfig {
        self.nats.as_user(user, test_nats().password(user))
    }

    /// A service configuration on this infrastructure, listening on a free loopback port, on the bus as the
    /// service's own user.
    pub fn config(&self, service: &'static str) -> Config {
        Config {
            service,
            grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            database: self.db(service),
            nats: self.nats_as(service),
            auth: keys().auth(service),
            pii_key: crate::pii::DEV_KEY,
            pii_retired: vec![],
            audit_key: crate::audit::AuditKey::dev(),
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

impl Drop for TestInfra {
    fn drop(&mut self) {
        let origin = self.origin;
        if let Origin::Template = origin {
            return;
        }
        let admin_url = self.admin_url.clone();
        let db_name = self.db_name.clone();
        let nats = self.nats.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived thread with its own
        // runtime does the cleanup and is joined.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(client) = crate::events::connect_options(&nats).connect(&nats.url).await {
                    let _ = async_nats::jetstream::new(client).delete_stream(&nats.stream).await;
                }
                if let Ok(opts) = admin_url.parse::<sqlx::postgres::PgConnectOptions>()
                    && let Ok(mut admin) = sqlx::PgConnection::connect_with(&opts).await
                {
                    let sql = format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    // Roles are the cluster's, not the database's: the test's own goes once the database has.
                    let sql = format!("DROP ROLE IF EXISTS {db_name}_runtime");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                }
                if let Origin::Copy(kind) = origin {
                    template::release(&admin_url, kind).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl TestInfra {
    /// A login role of this test's own (`<database>_runtime`) holding no privileges, and this database's URL
    /// as that role: a service run as it, migrated by the owner ([`DbConfig::migration_url`]), has only what
    /// the owner grants. The role is dropped with the database.
    pub async fn runtime_role(&self) -> String {
        let role = format!("{}_runtime", self.db_name);
        let opts = self.admin_url.parse::<sqlx::postgres::PgConnectOptions>().expect("admin url");
        let mut admin = sqlx::PgConnection::connect_with(&opts).await.expect("admin connection");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
            .execute(&mut admin)
            .await
            .expect("create the runtime role");
        let host = self.db_url.rsplit_once('@').map_or(self.db_url.as_str(), |(_, h)| h);
        let host = host.strip_prefix("postgres://").unwrap_or(host);
        format!("postgres://{role}@{host}")
    }

    /// A client as `ops`.
    pub async fn connect(&self) -> async_nats::Client {
        crate::events::connect_options(&self.nats).connect(&self.nats.url).await.expect("nats as ops")
    }

    /// Publishes an event as an upstream service would (its id as the message id), so a consumer can be
    /// tested without that service running. Returns the envelope's event id.
    pub async fn publish(&self, case_id: uuid::Uuid, actor: &str, body: proto::events::v1::envelope::Body) -> String {
        let event_id = uuid::Uuid::new_v4().to_string();
        let envelope = proto::events::v1::Envelope {
            event_id: event_id.clone(),
            case_id: case_id.to_string(),
            occurred_at_ms: chrono::Utc::now().timestamp_millis(),
            actor: actor.to_owned(),
            body: Some(body),
        };
        self.publish_envelope(&envelope).await;
        event_id
    }

    /// Publishes a given envelope (again, to test redelivery: JetStream's own de-duplication is bypassed by
    /// giving each publish a fresh message id, so the consumer's inbox is what must catch it).
    pub async fn publish_envelope(&self, envelope: &proto::events::v1::Envelope) {
        self.publish_envelope_as(crate::bus_access::OPS_USER, envelope).await.expect("publish as ops");
    }

    /// Publishes an envelope on the bus as `user` (a service's name, or `ops`), as that service's relay would.
    /// Err when the bus refuses it: a refused message is dropped without an answer, so the acknowledgement
    /// is given up on after two seconds.
    pub async fn publish_envelope_as(&self, user: &str, envelope: &proto::events::v1::Envelope) -> Result<(), String> {
        use prost::Message as _;
        let Some(body) = &envelope.body else { panic!("envelope without body") };
        let subject = format!("{}.{}", self.nats.prefix, crate::events::subject_for(body, &envelope.case_id));
        let cfg = self.nats_as(user);
        let client = crate::events::connect_options(&cfg).connect(&cfg.url).await.map_err(|e| e.to_string())?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(std::time::Duration::from_secs(2))
            .ack_timeout(std::time::Duration::from_secs(2))
            .build(client);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, uuid::Uuid::new_v4().to_string().as_str());
        let ack = js.publish_with_headers(subject, headers, envelope.encode_to_vec().into()).await;
        ack.map_err(|e| e.to_string())?.await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Every envelope on this test's stream so far, in order (read with an ephemeral consumer).
    pub async fn events(&self) -> Vec<proto::events::v1::Envelope> {
        use async_nats::jetstream::consumer::pull;
        use futures::StreamExt;
        use prost::Message as _;
        let js = async_nats::jetstream::new(self.connect().await);
        let Ok(stream) = js.get_stream(&self.nats.stream).await else { return vec![] };
        let consumer = stream
            .create_consumer(pull::Config {
                ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .expect("ephemeral consumer");
        let info = stream.get_info().await.expect("stream info");
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return out;
        }
        let mut batch = consumer
            .fetch()
            .max_messages(usize::try_from(info.state.messages).unwrap_or(usize::MAX))
            .expires(std::time::Duration::from_secs(2))
            .messages()
            .await
            .expect("fetch");
        while let Some(Ok(msg)) = batch.next().await {
            out.push(proto::events::v1::Envelope::decode(msg.payload.as_ref()).expect("envelope"));
        }
        out
    }
}

impl TestInfra {
    /// Waits until the service's consumer has applied everything on the stream: every partition's consumer
    /// exists with nothing pending or unacknowledged, and nothing is parked for a retry (dead letters stay).
    pub async fn drained(&self, service: &str) {
        let pool = self.pool(service).await;
        let bus = crate::events::Bus::connect(&self.nats).await.expect("bus");
        eventually(&format!("{service}'s consumer drained"), 30, || async {
            let s = crate::events::ops::status(&pool, &bus, service).await.ok()?;
            (s.partitions.iter().all(|p| p.exists) && s.lag() == 0 && s.parked == 0).then_some(())
        })
        .await;
    }

    /// Waits until the service's consumer has applied the event (recorded it and not parked it). Only for an
    /// event the consumer applies: one its handler cannot apply leaves no inbox row (use [`Self::drained`]).
    pub async fn handled(&self, service: &str, event_id: &str) {
        let pool = self.pool(service).await;
        eventually(&format!("event {event_id} applied by {service}"), 30, || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM inbox WHERE message_id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM parked_event WHERE event_id = $1)",
            )
            .bind(event_id)
            .fetch_one(&pool)
            .await
            .ok()?;
            (n > 0).then_some(())
        })
        .await;
    }
}

/// The metric lines of calls that committed a change without staging their audit record in its transaction
/// (see [`crate::audit::staged`]), in this test process so far: empty when every changing handler stages.
pub fn unstaged_changes() -> Vec<String> {
    crate::metrics::render(&[])
        .lines()
        .filter(|l| l.starts_with("zongzhi_audit_unstaged_total{"))
        .map(str::to_owned)
        .collect()
}

/// Polls `check` until it returns Some, or panics after `secs` seconds saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {secs}s waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Logs and trace propagation for tests: logs captured with each test's output (shown only when it fails),
/// `warn` unless RUST_LOG says otherwise; spans get W3C trace context exactly as in production (no exporter).
pub fn init_tracing() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = std::sync::OnceLock::new();
    let provider = PROVIDER.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        opentelemetry_sdk::trace::SdkTracerProvider::builder().build()
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tests")))
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(filter))
        .try_init();
}

/// Runs a built service in the background, as its binary would until a signal; returns its URL and the handle
/// that stops it.
pub fn spawn(app: crate::app::Running) -> (String, crate::app::StopHandle) {
    let url = format!("http://{}", app.addr());
    let stop = app.stop_handle();
    tokio::spawn(app.run_until(std::future::pending()));
    (url, stop)
}

/// Asserts a refusal: its code, and the one field its bad-request details name (`""`: none), with `case` in
/// every failure message so a table of bad inputs says which row failed.
pub fn assert_refused(case: &str, status: &tonic::Status, code: tonic::Code, field: &str) {
    assert_eq!(status.code(), code, "{case}: {}", status.message());
    let want: Vec<String> = if field.is_empty() { vec![] } else { vec![field.to_owned()] };
    assert_eq!(crate::status::violated_fields(status), want, "{case}: {}", status.message());
}

/// Signing keys for tests: one key set per test process (the issuer's and each service's), and tokens signed
/// by its issuer.
pub struct TestKeys {
    pub set: crate::auth::KeySet,
    pub issuer: crate::auth::Signer,
    root_tokens: std::sync::Arc<RootTokens>,
}

pub const TEST_ISSUER: &str = "zongzhi";

/// The test persons the tests' security policy lets hold handler grants over every unit (see
/// [`crate::auth::policy::duties_broken`]): the root, and the officers the service tests handle any task as.
pub const WIDE_GRANT_PERSONS: &[&str] = &[ROOT_PERSON, "officer-1", "officer-2", "h-1"];
pub const TEST_AUDIENCE: &str = "zongzhi";

pub fn keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut set = crate::auth::KeySet::generate("test-issuer", TEST_ISSUER, TEST_AUDIENCE).expect("test keys");
        // The security policy of the tests names the persons whose tokens hold handler grants over every unit.
        set.wide_grant_subjects = WIDE_GRANT_PERSONS.iter().map(|p| format!("person:{p}")).collect();
        let mut keys = TestKeys { issuer: set.issuer_signer(), set, root_tokens: std::sync::Arc::default() };
        keys.root_tokens = std::sync::Arc::new(RootTokens::new(&keys));
        keys
    })
}

impl TestKeys {
    /// The trust settings and service key a service under test runs with.
    pub fn auth(&self, service: &str) -> crate::auth::AuthConfig {
        let mut auth = self.set.auth(service);
        auth.trust.leeway_secs = 5;
        auth
    }

    /// A person's access token with these grants (role, scope node), valid ten minutes, signed in with a
    /// second factor so administrator grants count.
    pub fn token(&self, person_id: &str, grants: &[(&str, &str)]) -> String {
        let grants = grants.iter().map(|(r, s)| crate::auth::Grant {
            role: (*r).into(),
            scope: (*s).into(),
            unit: if matches!(*r, "handler" | "unit_lead") && *s == "*" { "*".into() } else { String::new() },
        });
        self.token_with(person_id, grants.collect())
    }

    pub fn token_with(&self, person_id: &str, grants: Vec<crate::auth::Grant>) -> String {
        let now = crate::auth::token::now_secs();
        let claims = crate::auth::Claims {
            iss: String::new(),
            aud: String::new(),
            sub: format!("person:{person_id}"),
            exp: now + 600,
            nbf: now - 5,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            person: person_id.to_owned(),
            name: format!("测试用户 {person_id}"),
            grants,
            amr: vec!["pwd".into(), "otp".into()],
            sid: String::new(),
        };
        self.issuer.sign(claims).expect("sign test token")
    }

    /// The root's business token: every business role over the whole deployment, for tests about something
    /// other than who may do it. Administrator methods take the root's administrator tokens ([`Self::admin`];
    /// a channel from [`connect`] picks the right one per call).
    pub fn root(&self) -> String {
        self.root_tokens.business.clone()
    }

    /// The root's token for one administrator role alone.
    pub fn admin(&self, role: crate::auth::Role) -> String {
        self.root_tokens.admin(role).to_owned()
    }
}

/// Connects to `url` carrying `token`.
pub async fn connect_as(url: &str, token: &str) -> AuthedChannel {
    AuthedChannel::with_token(channel(url).await, token)
}

/// Connects to `url` as the root, with the token of a role each method needs.
pub async fn connect(url: &str) -> AuthedChannel {
    AuthedChannel::as_root(channel(url).await)
}

/// Like [`connect`], but connecting on first use (for a peer that may start later or go away in the test).
pub fn connect_lazy(url: &str) -> AuthedChannel {
    AuthedChannel::as_root(tonic::transport::Endpoint::from_shared(url.to_owned()).expect("url").connect_lazy())
}

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// GET /metrics at `addr`: the body of the Prometheus text exposition.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let request = "GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("send the scrape");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the scrape");
    let text = String::from_utf8(raw).expect("the exposition is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200"), "scrape of {addr}: {head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the series written exactly as `series` (name and label set as the exposition spells them,
/// labels sorted by name), if the scrape has it.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
