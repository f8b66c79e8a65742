//! `cargo run --release -p suite --bin audit_bench [RECORDS]`: audit appends per second through the group-
//! committing writer with 1 and with 64 concurrent appenders (each waiting for its own commit, as a request
//! handler does), append latency, then chain verification speed. Works in a scratch database it drops
//! afterwards; TEST_DATABASE_URL names the server (default local postgres).

use std::time::{Duration, Instant};

use kit::audit::{AuditEntry, AuditKey, AuditLog, verify};
use sqlx::Connection as _;
use sqlx::migrate::Migrator;

static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help("usage: audit_bench [RECORDS]   (default 50000; TEST_DATABASE_URL names the server)");
    let records: usize = std::env::args().nth(1).map_or(Ok(50_000), |a| a.parse())?;
    anyhow::ensure!(records >= 100, "RECORDS must be at least 100");
    let admin_url = kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let db = format!("zz_bench_{}", scratch_tag());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let result = run(&admin_url, &db, records).await;
    // The scratch database goes whatever happened.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    println!("dropped scratch database {db}");
    result
}

async fn run(admin_url: &str, db: &str, records: usize) -> anyhow::Result<()> {
    let url = match admin_url.rfind('/') {
        Some(i) => format!("{}/{db}", &admin_url[..i]),
        None => anyhow::bail!("TEST_DATABASE_URL needs a database path"),
    };
    let cfg = kit::config::DbConfig::new(url, "bench", 4);
    let pool = kit::db::connect_and_migrate(&cfg, &NO_MIGRATIONS).await?;
    let key = AuditKey::new([7; 32]);
    let (_stop, shutdown) = kit::shutdown::channel();
    let (log, writer) = AuditLog::start(pool.clone(), key.clone(), shutdown);
    tokio::spawn(writer);

    for appenders in [1, 64] {
        // One appender waits for each commit in turn: the cost of a transaction per record.
        let n = if appenders == 1 { records / 20 } else { records };
        let (elapsed, mut latencies) = appends(&log, appenders, n).await?;
        latencies.sort();
        println!(
            "{appenders:>3} appenders: {n} records in {:.2} s = {:.0} records/s; latency p50 {:.2} ms, p99 {:.2} ms",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            ms(latencies[latencies.len() / 2]),
            ms(latencies[latencies.len() * 99 / 100]),
        );
    }

    let started = Instant::now();
    let report = verify(&pool, &key, |_| {}).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(report.intact(), "chain broken after the bench: {:?}", report.broken);
    println!(
        "verify: {} records in {:.2} s = {:.0} records/s",
        report.checked,
        elapsed.as_secs_f64(),
        report.checked as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// `total` appends spread over `appenders` tasks; wall time and every append's latency.
async fn appends(log: &AuditLog, appenders: usize, total: usize) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..appenders {
        let log = log.clone();
        let share = total / appenders + usize::from(a < total % appenders);
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for i in 0..share {
                let t = Instant::now();
                log.append(entry(a, i)).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((started.elapsed(), all))
}

/// A record of typical size: a read of a case with its grant, address and trace.
fn entry(appender: usize, i: usize) -> AuditEntry {
    AuditEntry {
        actor: format!("operator-{appender:03}"),
        role: "center_operator".into(),
        scope: "532901000000".into(),
        action: "/zongzhi.intake.v1.Intake/GetCase".into(),
        target: format!("case:{appender:08x}-{i:08x}"),
        outcome: "ok".into(),
        reason: String::new(),
        client_addr: "10.0.3.17:52114".into(),
        trace_id: format!("{appender:016x}{i:016x}"),
        detail: String::new(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Unique enough for a scratch database name: the clock in nanoseconds.
fn scratch_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:012x}", nanos & 0xffff_ffff_ffff)
}
