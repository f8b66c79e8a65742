//! `cargo run --release -p suite --bin auth_bench [SECONDS]`: what authentication and tree scope cost.
//! In process: `admit` (token verification and the method's permission) plus a scope check, per call, for
//! first-seen tokens (a signature check each), one repeated token (a cache hit) and 64 tokens round-robin.
//! Through the gateway: authenticated RegisterCase and GetCase with 64 concurrent clients, each with its own
//! token, for SECONDS (default 10) each. Runs the suite on a scratch database and stream it removes
//! afterwards; TEST_DATABASE_URL and TEST_NATS_URL name the servers (default local).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kit::auth::{KeySet, Permission, Role, Verifier};
use proto::intake::v1::GetCaseRequest;
use suite::Suite;
use suite::bench::{Desk, GRID, Scratch, TOWNSHIP, desks, registration};
use tonic::codegen::http;
const CLIENTS: usize = 64;
/// The target for verifying a token and checking its scope, per call on this 2-core box.
const TARGET_MICROS: f64 = 50.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help("usage: auth_bench [SECONDS]   (default 10; TEST_DATABASE_URL and TEST_NATS_URL name the servers)");
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(10), |a| a.parse())?;
    println!("$ cargo run --release -p suite --bin auth_bench {seconds}");
    let keys = KeySet::generate("bench-issuer", "zongzhi", "zongzhi")?;
    in_process(&keys)?;

    let scratch = Scratch::create("auth_bench").await?;
    let result = through_gateway(&scratch, &keys, Duration::from_secs(seconds)).await;
    // The scratch database and stream go whatever happened.
    scratch.drop_all().await?;
    result
}

/// Per-call cost of `admit` plus a scope check, in µs, by how the verifier meets the token.
fn in_process(keys: &KeySet) -> anyhow::Result<()> {
    const FRESH: usize = 4_000;
    const REPEATS: usize = 200_000;
    let verifier = Verifier::new(&keys.auth("intake").trust)?;
    let path = "/zongzhi.intake.v1.Intake/GetCase";
    let area_path: Vec<String> =
        ["532901003001", TOWNSHIP, "532901000000", "532900000000", "530000000000"].map(String::from).to_vec();
    let headers = |token: &str| -> anyhow::Result<http::HeaderMap> {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        Ok(h)
    };
    let call = |h: &http::HeaderMap| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let principal = kit::auth::layer::admit(&verifier, path, h)?.ok_or_else(|| anyhow::anyhow!("public?"))?;
        let covered = principal.scope(Permission::ReadCase).covers_place(&area_path, GRID);
        let elapsed = started.elapsed();
        anyhow::ensure!(covered, "the bench's principal must be in scope");
        Ok(elapsed)
    };
    let fresh: Vec<_> = (0..FRESH)
        .map(|i| headers(&keys.token(&format!("p{i}"), &[(Role::Dispatcher, TOWNSHIP)])?))
        .collect::<anyhow::Result<_>>()?;
    let first_seen = fresh.iter().map(&call).collect::<anyhow::Result<Vec<_>>>()?;
    report(&format!("first-seen tokens (signature check), {FRESH} calls"), first_seen);

    let one = headers(&keys.token("repeat", &[(Role::Dispatcher, TOWNSHIP)])?)?;
    let repeated = (0..REPEATS).map(|_| call(&one)).collect::<anyhow::Result<Vec<_>>>()?;
    report(&format!("one repeated token (cache hit), {REPEATS} calls"), repeated);

    let ring: Vec<_> = (0..CLIENTS)
        .map(|i| headers(&keys.token(&format!("r{i}"), &[(Role::Dispatcher, TOWNSHIP)])?))
        .collect::<anyhow::Result<_>>()?;
    let round_robin = (0..REPEATS).map(|i| call(&ring[i % CLIENTS])).collect::<anyhow::Result<Vec<_>>>()?;
    report(&format!("{CLIENTS} tokens round-robin, {REPEATS} calls (first {CLIENTS} verified)"), round_robin);
    Ok(())
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let p50 = micros(times[times.len() / 2]);
    let verdict = if p50 <= TARGET_MICROS { "within" } else { "OVER" };
    println!(
        "admit + scope, {what}: median {p50:.2} µs, p99 {:.2} µs ({verdict} the {TARGET_MICROS} µs target)",
        micros(times[times.len() * 99 / 100])
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn through_gateway(scratch: &Scratch, keys: &KeySet, duration: Duration) -> anyhow::Result<()> {
    let (suite, _) = scratch.suite(keys).await?;
    let result = drive(&suite, keys, duration).await;
    suite.stop().await?;
    result
}

async fn drive(suite: &Suite, keys: &KeySet, duration: Duration) -> anyhow::Result<()> {
    let clerks = desks(suite.gateway_grpc, keys, Role::IntakeClerk, CLIENTS).await?;
    let (registered, ids) = run(clerks, duration, |mut desk, client, n| async move {
        let response = desk.register_case(registration(&format!("bench-{client}-{n}"))).await?;
        Ok(response.into_inner().case.map(|c| c.id))
    })
    .await?;
    registered.print("RegisterCase");

    let ids = Arc::new(ids);
    anyhow::ensure!(!ids.is_empty(), "nothing was registered");
    let dispatchers = desks(suite.gateway_grpc, keys, Role::Dispatcher, CLIENTS).await?;
    let (read, _) = run(dispatchers, duration, move |mut desk, client, n| {
        let id = ids[(client * 7919 + n * 104_729) % ids.len()].clone();
        async move {
            desk.get_case(GetCaseRequest { case_ref: id }).await?;
            Ok(None)
        }
    })
    .await?;
    read.print("GetCase");
    Ok(())
}

struct Figures {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn print(mut self, what: &str) {
        self.latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{what} via the gateway, {CLIENTS} clients: {} calls in {:.1} s = {:.0} calls/s; p50 {:.2} ms, p99 {:.2} ms",
            self.calls,
            self.elapsed.as_secs_f64(),
            self.calls as f64 / self.elapsed.as_secs_f64(),
            ms(self.latencies[self.latencies.len() / 2]),
            ms(self.latencies[self.latencies.len() * 99 / 100]),
        );
    }
}

/// Each client calls `one(desk, client, n)` back to back until `duration` is up; every call must succeed.
async fn run<F, Fut>(desks: Vec<Desk>, duration: Duration, one: F) -> anyhow::Result<(Figures, Vec<String>)>
where
    F: Fn(Desk, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<String>, tonic::Status>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (client, desk) in desks.into_iter().enumerate() {
        let one = one.clone();
        tasks.spawn(async move {
            let (mut latencies, mut ids) = (Vec::new(), Vec::new());
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let id = one(desk.clone(), client, n).await?;
                latencies.push(t.elapsed());
                ids.extend(id);
                n += 1;
            }
            anyhow::Ok((latencies, ids))
        });
    }
    let (mut latencies, mut ids) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (l, i) = done??;
        latencies.extend(l);
        ids.extend(i);
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(!latencies.is_empty(), "no calls completed");
    Ok((Figures { calls: latencies.len(), elapsed, latencies }, ids))
}
