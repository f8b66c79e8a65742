//! `cargo run --release -p suite --bin loop_bench [HOLD_SECONDS] [RATE ...]`: how fast the event backbone
//! carries the loop, on a scratch database and stream it removes afterwards.
//!
//! 1. Events handled per second by one consumer (a one-row insert per event, so the figure is the backbone's
//!    own cost): every event in one partition, then spread over all partitions.
//! 2. The full loop through the gateway: registrations offered at each RATE per second (default 100 200 300
//!    400 500 600 800) for HOLD_SECONDS (default 60) each, stopping at the first rate not kept; for each, the
//!    lag from the client's answer to `dispatched` in intake's case file (p50, p99; the step's
//!    `recorded_at`), once every case got there, and RegisterCase's own p99. A
//!    rate is kept when the offered rate was achieved (95 %), every case reached `dispatched`, and lag p99 is
//!    at most 1 s. Then the lag at half the highest kept rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kit::auth::{KeySet, Role};
use kit::events::{Bus, Event, Handler};
use prost::Message as _;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseAccepted, Envelope};
use sqlx::{PgConnection, PgPool};
use suite::bench::{Desk, Scratch, desks, percentile, registration};

const EVENTS: usize = 20_000;
const CLIENTS: usize = 64;
const IN_FLIGHT: usize = 512;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help(
        "usage: loop_bench [HOLD_SECONDS] [RATE ...]   (TEST_DATABASE_URL and TEST_NATS_URL name the servers)",
    );
    if std::env::var_os("RUST_LOG").is_some() {
        kit::telemetry::init("loop_bench");
    }
    let mut args = std::env::args().skip(1);
    let hold: u64 = args.next().map_or(Ok(60), |a| a.parse())?;
    let mut rates: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if rates.is_empty() {
        rates = vec![100, 200, 300, 400, 500, 600, 800];
    }
    println!(
        "$ cargo run --release -p suite --bin loop_bench {hold} {}",
        rates.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    );
    let one = consumer_rate(false).await?;
    let all = consumer_rate(true).await?;
    println!(
        "consumer, {EVENTS} events: one partition {one:.0} events/s; all {} partitions {all:.0} events/s ({:.1}x)",
        kit::events::PARTITIONS,
        all / one
    );

    let scratch = Scratch::create("loop_bench").await?;
    let yardstick = pgbench_inserts(&scratch).await;
    let result = full_loop(&scratch, Duration::from_secs(hold), &rates).await;
    scratch.drop_all().await?;
    match (yardstick, &result) {
        (Ok(tps), Ok(Some(best))) => println!(
            "pgbench, a single-row INSERT from {CLIENTS} clients on the same box: {tps:.0} tps; the loop kept {best}/s, \
             {:.4} of it",
            *best as f64 / tps
        ),
        (Ok(tps), _) => println!("pgbench, a single-row INSERT from {CLIENTS} clients on the same box: {tps:.0} tps"),
        (Err(e), _) => println!("pgbench did not run ({e:#}); no ratio"),
    }
    result.map(|_| ())
}

/// The yardstick the loop's rate is read against (the same box, the same PostgreSQL, the same moment): pgbench's
/// transactions per second for a one-row INSERT into a table of the scratch database, over 10 s.
async fn pgbench_inserts(scratch: &Scratch) -> anyhow::Result<f64> {
    let pool = scratch.pool("public", 1).await?;
    sqlx::query("CREATE TABLE pgbench_one (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)").execute(&pool).await?;
    pool.close().await;
    let script = std::env::temp_dir().join(format!("loop_bench_insert_{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO pgbench_one (v) VALUES ('x');\n")?;
    let (path, url) = (script.clone(), scratch.database_url.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args(["-n", "-c", &CLIENTS.to_string(), "-j", "2", "-T", "10", "-f"])
            .arg(&path)
            .arg(&url)
            .output()
    })
    .await?;
    let _ = std::fs::remove_file(&script);
    let out = out.map_err(|e| anyhow::anyhow!("pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("pgbench printed no tps: {}", String::from_utf8_lossy(&out.stderr)))
}

/// A consumer whose handler inserts one row per event.
struct Insert;

impl Handler for Insert {
    type Work = ();
    type Prepared = ();

    fn select(&self, _event: &Event<'_>) -> Option<()> {
        Some(())
    }

    async fn prepare(&self, _event: &Event<'_>, (): &()) -> anyhow::Result<()> {
        Ok(())
    }

    async fn handle(&self, conn: &mut PgConnection, event: &Event<'_>, (): (), (): ()) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO applied (case_id) VALUES ($1)").bind(event.case_id.to_string()).execute(conn).await?;
        Ok(())
    }
}

/// Events per second one consumer applies from a stream filled beforehand.
async fn consumer_rate(spread: bool) -> anyhow::Result<f64> {
    let scratch = Scratch::create("consumer_bench").await?;
    let result = async {
        let pool = kit::db::connect_and_migrate(
            &kit::config::DbConfig::new(scratch.database_url.clone(), "bench", 10),
            &sqlx::migrate::Migrator::DEFAULT,
        )
        .await?;
        sqlx::query("CREATE TABLE applied (id BIGSERIAL PRIMARY KEY, case_id TEXT NOT NULL)").execute(&pool).await?;
        let bus = Bus::connect(&scratch.nats).await?;
        // 1,000 cases, all in partition 0 or anywhere.
        let cases: Vec<String> = std::iter::repeat_with(|| uuid::Uuid::new_v4().to_string())
            .filter(|c| spread || kit::events::partition_of(c) == 0)
            .take(1000)
            .collect();
        let mut acks = Vec::with_capacity(EVENTS);
        for i in 0..EVENTS {
            let case_id = &cases[i % cases.len()];
            let body = Body::CaseAccepted(CaseAccepted { task_id: i.to_string(), handler_id: "bench".into() });
            let subject = bus.subject(&kit::events::subject_for(&body, case_id));
            let envelope = Envelope {
                event_id: uuid::Uuid::new_v4().to_string(),
                case_id: case_id.clone(),
                occurred_at_ms: 0,
                actor: "bench".into(),
                body: Some(body),
            };
            acks.push(bus.jetstream().publish(subject, envelope.encode_to_vec().into()).await?);
            // The client lets only so many acknowledgements be outstanding: collect them as we go.
            if acks.len() == 500 {
                for ack in acks.drain(..) {
                    ack.await?;
                }
            }
        }
        for ack in acks {
            ack.await?;
        }
        let (stop, shutdown) = kit::shutdown::channel();
        let started = Instant::now();
        let task = tokio::spawn(kit::events::consume("bench", pool.clone(), bus.clone(), Insert, shutdown));
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM applied").fetch_one(&pool).await?;
            if n as usize >= EVENTS {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "only {n} of {EVENTS} applied in 300 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rate = EVENTS as f64 / started.elapsed().as_secs_f64();
        stop.fire();
        task.await??;
        anyhow::Ok(rate)
    }
    .await;
    scratch.drop_all().await?;
    result
}

/// The full loop at each rate until one is not kept, then at half the best: the best rate kept, if any.
async fn full_loop(scratch: &Scratch, hold: Duration, rates: &[usize]) -> anyhow::Result<Option<usize>> {
    let keys = KeySet::generate("bench-issuer", "zongzhi", "zongzhi")?;
    let (suite, _) = scratch.suite(&keys).await?;
    let result = async {
        let clerks = desks(suite.gateway_grpc, &keys, Role::IntakeClerk, CLIENTS).await?;
        let intake = scratch.pool("intake", 4).await?;
        println!(
            "{:>6} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8}",
            "offer/s", "achieved", "errors", "dispatched", "lag p50", "lag p99", "kept"
        );
        let mut best = None;
        for &rate in rates {
            let r = run_at(&clerks, &intake, rate, hold).await?;
            r.print(rate);
            if !r.kept(rate) {
                break;
            }
            best = Some(rate);
        }
        match best {
            Some(best) => {
                println!("highest rate kept for {} s: {best} registrations/s", hold.as_secs());
                let half = (best / 2).max(1);
                let r = run_at(&clerks, &intake, half, hold).await?;
                r.print(half);
                println!("at half that rate ({half}/s): lag p50 {:.3} s, p99 {:.3} s", r.p50, r.p99);
            }
            None => println!("no rate was kept"),
        }
        anyhow::Ok(best)
    }
    .await;
    suite.stop().await?;
    result
}

struct RunResult {
    /// RegisterCase's own latency, p99, in seconds.
    call_p99: f64,
    achieved: f64,
    errors: usize,
    registered: usize,
    dispatched: usize,
    p50: f64,
    p99: f64,
}

impl RunResult {
    fn kept(&self, rate: usize) -> bool {
        self.achieved >= 0.95 * rate as f64 && self.dispatched == self.registered && self.p99 <= 1.0 && self.errors == 0
    }

    fn print(&self, rate: usize) {
        println!(
            "{rate:>6} {:>9.0} {:>7} {:>5}/{:<5} {:>7.3}s {:>7.3}s {:>8}   (RegisterCase p99 {:.3} s)",
            self.achieved,
            self.errors,
            self.dispatched,
            self.registered,
            self.p50,
            self.p99,
            if self.kept(rate) { "yes" } else { "no" },
            self.call_p99
        );
    }
}

/// Each acknowledged case's wait from its answer to its dispatch in the case file, in seconds, once every case
/// is dispatched or after 60 s.
async fn dispatch_lags(
    intake: &PgPool,
    acked: &std::collections::HashMap<uuid::Uuid, chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<Vec<f64>> {
    let ids: Vec<uuid::Uuid> = acked.keys().copied().collect();
    let waited = Instant::now();
    loop {
        let dispatched: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT case_id, recorded_at FROM timeline WHERE action = 'dispatched' AND case_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(intake)
        .await?;
        // A case can be dispatched before its client reads the answer: that is no lag at all.
        let lags: Vec<f64> = dispatched
            .iter()
            .filter_map(|(id, at)| Some(((*at - *acked.get(id)?).num_microseconds()? as f64 / 1e6).max(0.0)))
            .collect();
        if lags.len() >= ids.len() || waited.elapsed() > Duration::from_secs(60) {
            return Ok(lags);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Offers `rate` registrations a second for `hold` (open loop: a registration starts on every tick whether or
/// not earlier ones finished, up to IN_FLIGHT at once), then waits up to 60 s for every case to be dispatched.
async fn run_at(clerks: &[Desk], intake: &PgPool, rate: usize, hold: Duration) -> anyhow::Result<RunResult> {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::SeqCst);
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let total = (rate as f64 * hold.as_secs_f64()) as usize;
    for n in 0..total {
        tick.tick().await;
        let slot = slots.clone().acquire_owned().await?;
        let mut desk = clerks[n % clerks.len()].clone();
        let errors = errors.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let sent = Instant::now();
            match desk.register_case(registration(&format!("loop-{run}-{n}"))).await {
                // The lag counts from when the client had its answer: what "registered" means to it.
                Ok(r) => r.into_inner().case.map(|c| (c.id, chrono::Utc::now(), sent.elapsed().as_secs_f64())),
                Err(status) => {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        // The first refusal says which limit the rate ran into (shed load, pool, timeout).
                        eprintln!("first error at {rate}/s: {:?} {}", status.code(), status.message());
                    }
                    None
                }
            }
        });
    }
    let mut ids = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        ids.extend(done?);
    }
    let achieved = ids.len() as f64 / started.elapsed().as_secs_f64();
    let mut calls: Vec<f64> = ids.iter().map(|(_, _, took)| *took).collect();
    calls.sort_by(f64::total_cmp);
    let acked: std::collections::HashMap<uuid::Uuid, chrono::DateTime<chrono::Utc>> =
        ids.iter().filter_map(|(id, at, _)| Some((id.parse().ok()?, *at))).collect();
    let lags = dispatch_lags(intake, &acked).await?;
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(RunResult {
        call_p99: percentile(&calls, 99),
        achieved,
        errors: errors.load(Ordering::Relaxed),
        registered: acked.len(),
        dispatched: lags.len(),
        p50: percentile(&sorted, 50),
        p99: percentile(&sorted, 99),
    })
}
