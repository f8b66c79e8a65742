//! `cargo run -p suite`: the five services and the gateway in one process on the local PostgreSQL and NATS,
//! with the Dali demo seeded. Ctrl-C stops everything cleanly.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use kit::config::{self, NatsConfig, parse_or, string_or};
use sqlx::Connection;

#[tokio::main]
async fn main() {
    kit::cli::help(
        "usage: cargo run -p suite   the five services and the gateway with the Dali demo seeded; Ctrl-C stops it\n\
         DATABASE_URL, NATS_URL, EVENT_STREAM, EVENT_PREFIX, SUITE_HOST, SUITE_BASE_PORT (50060), SUITE_HTTP_PORT (8080)",
    );
    kit::telemetry::init("suite");
    // A person reads this: the cause chain on one line, no backtrace.
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cfg = suite_config()?;
    println!(
        "DEMO MODE: signing keys made for this run only; personal data and the audit chain keyed with the development keys."
    );
    ensure_database(&cfg.database_url).await?;
    ensure_nats(&cfg.nats.url).await?;

    let suite = suite::Suite::start(&cfg).await?;
    let registry_pool = registry::connect(&suite::Suite::registry_config(&cfg)).await?;
    let seed_token = cfg.keys.token("demo-seed", &[(kit::auth::Role::BusinessAdmin, "*")])?;
    let demo = suite::seed::seed(
        &registry_pool,
        &format!("http://{}", suite.registry),
        &format!("http://{}", suite.routing),
        &seed_token,
        &mut |step| println!("seeded {step}"),
    )
    .await
    .context("seeding the demo")?;

    banner(&suite, &demo);

    kit::shutdown::signal().await;
    suite.stop().await?;
    kit::telemetry::flush();
    println!("stopped");
    Ok(())
}

/// Checks PostgreSQL answers (and says how to start it if not), and creates the suite's database if missing.
async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("DATABASE_URL needs a database name")?;
    let admin = format!("{server}/postgres");
    let connect = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin)).await;
    let mut conn = match connect {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => anyhow::bail!(
            "PostgreSQL does not answer at {} ({e}).\nStart it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\nor set DATABASE_URL.",
            kit::db::redact(&admin)
        ),
        Err(_) => anyhow::bail!(
            "PostgreSQL at {} did not answer within 5 s; is it running? Set DATABASE_URL to point elsewhere.",
            kit::db::redact(&admin)
        ),
    };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            anyhow::bail!("database name {name:?} must be letters, digits and underscores");
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        println!("created database {name}");
    }
    Ok(())
}

async fn ensure_nats(url: &str) -> anyhow::Result<()> {
    let connect = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(3)).connect(url),
    )
    .await;
    match connect {
        Ok(Ok(_)) => Ok(()),
        _ => anyhow::bail!(
            "NATS does not answer at {url}.\nStart it with JetStream: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server\nor set NATS_URL."
        ),
    }
}

/// The suite's own environment, read here once; every service's settings are composed from it (see
/// `suite::Suite::start`), never read again from the environment. The defaults are the services' own.
fn suite_config() -> anyhow::Result<suite::SuiteConfig> {
    Ok(suite::SuiteConfig {
        database_url: string_or("DATABASE_URL", config::DEFAULT_DATABASE_URL),
        // The demo runs on the open local server (README: `nats-server -js`), anonymously.
        nats: NatsConfig::local(
            string_or("NATS_URL", config::DEFAULT_NATS_URL),
            string_or("EVENT_PREFIX", config::DEFAULT_EVENT_PREFIX),
            string_or("EVENT_STREAM", config::DEFAULT_EVENT_STREAM),
        )
        .with_events(kit::events::Settings::from_env()?),
        nats_passwords: Default::default(),
        host: parse_or("SUITE_HOST", IpAddr::from([127, 0, 0, 1]))?,
        base_port: parse_or("SUITE_BASE_PORT", config::ports::GATEWAY)?,
        http_port: parse_or("SUITE_HTTP_PORT", gateway::DEFAULT_HTTP_PORT)?,
        // The demo makes its keys on the spot and seals personal data with the development key; a deployment
        // runs each service with its own keys and PII_KEY (see deploy/), and refuses to start without them.
        keys: kit::auth::KeySet::generate("zongzhi-demo", "zongzhi", "zongzhi")?,
        pii_key: kit::pii::DEV_KEY,
        audit_key: kit::audit::AuditKey::dev(),
    })
}

/// What the suite prints once it runs: where to point clients, the demo's places and users, and a first try.
fn banner(suite: &suite::Suite, demo: &suite::seed::Demo) {
    println!();
    println!("Zongzhi is running. Point clients at the gateway:");
    println!(
        "  gRPC  {}   (zongzhi.gateway.v1.Desk; reflection on, try: grpcurl -plaintext {} list)",
        suite.gateway_grpc, suite.gateway_grpc
    );
    println!("  HTTP  http://{}/v1/...", suite.gateway_http);
    println!(
        "Services: registry {}, routing {}, intake {}, supervision {}, subsidy {}",
        suite.registry, suite.routing, suite.intake, suite.supervision, suite.subsidy
    );
    println!(
        "Demo: center {} (下关街道), grids {}, grid workers {}",
        demo.center_code,
        demo.grids.join(" "),
        demo.grid_workers.join(" ")
    );
    println!("Demo users (password {}):", suite::seed::DEMO_PASSWORD);
    for u in &demo.users {
        // A handler acts for a unit: the tasks dispatched to it are the ones it sees and handles.
        let unit = if u.unit.is_empty() { String::new() } else { format!("  unit {}", u.unit) };
        let otp = if u.totp_secret.is_empty() { String::new() } else { format!("  TOTP secret {}", u.totp_secret) };
        // Role displays without padding; its code string pads.
        println!("  {:<14} {:<16} {}{unit}{otp}", u.username, u.role.as_str(), u.scope);
    }
    let http = suite.gateway_http;
    println!("Try (sign in as the 下关 dispatcher, register a case, then open the dispatch board):");
    println!(
        "  TOKEN=$(curl -s -XPOST http://{http}/v1/auth/sign-in -H 'content-type: application/json' -d '{{\"username\":\"xg-dispatcher\",\"password\":\"{}\"}}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
        suite::seed::DEMO_PASSWORD
    );
    println!(
        "  curl -s -XPOST http://{http}/v1/cases -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"idempotency_key\":\"demo-1\",\"center_code\":\"{}\",\"channel\":\"CHANNEL_WALK_IN\",\"kind\":\"CASE_KIND_DISPUTE\",\"category_code\":\"0102\",\"urgency\":\"URGENCY_NORMAL\",\"title\":\"邻里噪音纠纷\",\"location_code\":\"{}\"}}'",
        demo.center_code, demo.grids[0]
    );
    println!(
        "  curl -s -H \"authorization: Bearer $TOKEN\" 'http://{http}/v1/queues/board?center_code={}'",
        demo.center_code
    );
    println!("Ctrl-C stops everything.");
}
