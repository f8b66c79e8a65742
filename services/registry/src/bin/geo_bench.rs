//! Location-lookup benchmark: `cargo run --release -p registry --bin geo_bench`.
//!
//! 1. In-process lookups per second on one core against the shipped Dali county polygons, over a fixed
//!    pseudo-random set of points in the Dali bounding box (target ≥ 200,000/s).
//! 2. ResolvePoint over gRPC: the registry started on a scratch database on 127.0.0.1:0, N sequential calls
//!    then a concurrent run, with p50/p99 and calls/s. The scratch database is dropped at the end.
//!
//! BENCH_DATABASE_URL (an existing database to run CREATE DATABASE from) and NATS_URL override the local
//! defaults; GEO_BENCH_CALLS sets N. The registry also consumes case events, so NATS must be up; its scratch
//! stream is deleted at the end too.

use std::time::{Duration, Instant};

use anyhow::Context;
use proto::registry::v1::ResolvePointRequest;
use proto::registry::v1::geo_client::GeoClient;
use registry::geo::datum::{gcj02_to_wgs84, wgs84_to_gcj02};
use registry::geo::{DALI_COUNTIES_GEOJSON, GeoIndex, Layer, counties_from_geojson};
use sqlx::Connection as _;

/// The Dali prefecture's bounding box (GCJ-02, from the shipped polygon), converted for WGS84 points.
const BOX_GCJ: [f64; 4] = [98.863746, 24.66171, 101.043938, 26.696611];
const POINTS: usize = 100_000;
const ROUNDS: usize = 20;

/// A fixed xorshift sequence, so every run looks up the same points.
fn points(n: usize) -> Vec<[f64; 2]> {
    let (lo_lon, lo_lat) = gcj02_to_wgs84(BOX_GCJ[0], BOX_GCJ[1]);
    let (hi_lon, hi_lat) = gcj02_to_wgs84(BOX_GCJ[2], BOX_GCJ[3]);
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n).map(|_| [lo_lon + next() * (hi_lon - lo_lon), lo_lat + next() * (hi_lat - lo_lat)]).collect()
}

fn in_process() -> anyhow::Result<()> {
    let started = Instant::now();
    let counties = std::sync::Arc::new(counties_from_geojson(DALI_COUNTIES_GEOJSON)?);
    println!(
        "index: {} county polygons loaded and converted GCJ-02 -> WGS84 in {:.1} ms",
        counties.len(),
        ms(started.elapsed())
    );
    let index = GeoIndex { counties, grids: Layer::empty() };
    let pts = points(POINTS);
    let mut hits = 0usize;
    for p in &pts {
        hits += usize::from(index.resolve(*p).is_some());
    }
    let started = Instant::now();
    let mut checksum = 0usize;
    for _ in 0..ROUNDS {
        for p in &pts {
            checksum += index.resolve(*p).map_or(0, |c| c.code.len());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = (POINTS * ROUNDS) as f64;
    println!(
        "in-process: {:.0} lookups/s on one core ({:.0} ns each; {} points x {} rounds; {:.1}% inside a county; checksum {})",
        n / secs,
        secs / n * 1e9,
        POINTS,
        ROUNDS,
        hits as f64 * 100.0 / POINTS as f64,
        checksum
    );
    let started = Instant::now();
    for p in &pts {
        let (glon, glat) = wgs84_to_gcj02(p[0], p[1]);
        checksum += index.resolve(gcj_in(glon, glat)).map_or(0, |c| c.code.len());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "in-process with GCJ-02 input: {:.0} lookups/s on one core (inverse transform included)",
        POINTS as f64 / secs
    );
    std::hint::black_box(checksum);
    Ok(())
}

fn gcj_in(lon: f64, lat: f64) -> [f64; 2] {
    let (lon, lat) = gcj02_to_wgs84(lon, lat);
    [lon, lat]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort_unstable();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "grpc {label}: {} calls, p50 {:.3} ms, p99 {:.3} ms, {:.0} calls/s",
        lat.len(),
        ms(pick(0.50)),
        ms(pick(0.99)),
        lat.len() as f64 / wall.as_secs_f64()
    );
}

async fn over_grpc(url: String, token: &str, calls: usize) -> anyhow::Result<()> {
    let pts = points(calls);
    let mut client = GeoClient::new(kit::grpc::channel_with_token(&url, token)?);
    let request = |p: [f64; 2]| ResolvePointRequest { lon: p[0], lat: p[1], datum: "wgs84".into() };
    for p in pts.iter().take(200) {
        let _ = client.resolve_point(request(*p)).await; // warm-up
    }
    let mut lat = Vec::with_capacity(calls);
    let started = Instant::now();
    for p in &pts {
        let t = Instant::now();
        match client.resolve_point(request(*p)).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => anyhow::bail!("ResolvePoint failed: {s}"),
        }
        lat.push(t.elapsed());
    }
    report("sequential (1 client)", lat, started.elapsed());

    let (workers, per) = (32usize, calls / 32);
    let channel = kit::grpc::channel_with_token(&url, token)?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let mut client = GeoClient::new(channel.clone());
        let mine: Vec<[f64; 2]> = pts.iter().skip(w * per).take(per).copied().collect();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(mine.len());
            for p in mine {
                let t = Instant::now();
                let _ = client.resolve_point(request(p)).await;
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut all = Vec::with_capacity(calls);
    while let Some(done) = tasks.join_next().await {
        all.extend(done?);
    }
    report(&format!("concurrent ({workers} in flight, one HTTP/2 connection)"), all, started.elapsed());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help("usage: geo_bench   (lookups per core, then ResolvePoint over gRPC on a scratch database)");
    in_process()?;
    let calls: usize = kit::config::parse_or("GEO_BENCH_CALLS", 20_000)?;
    let admin_url = kit::config::string_or("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let db_name = format!("zz_geo_bench_{}", std::process::id());
    let mut admin =
        sqlx::PgConnection::connect(&admin_url).await.with_context(|| format!("PostgreSQL at {admin_url}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).execute(&mut admin).await?;
    let base = admin_url.rfind('/').map(|i| &admin_url[..i]).context("BENCH_DATABASE_URL needs a database path")?;
    let keys = kit::auth::KeySet::generate("bench", "zongzhi", "zongzhi")?;
    let token = keys.token("bench", &[(kit::auth::Role::GridWorker, "*")])?;
    let config = kit::Config {
        service: registry::NAME,
        grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database: kit::config::DbConfig::new(format!("{base}/{db_name}"), "registry", 10),
        nats: kit::config::NatsConfig::local(
            kit::config::string_or("NATS_URL", "nats://127.0.0.1:4222"),
            format!("zz_geo_bench_{}", std::process::id()),
            format!("ZZ_GEO_BENCH_{}", std::process::id()),
        ),
        auth: keys.auth(registry::NAME),
        pii_key: kit::pii::DEV_KEY,
        pii_retired: vec![],
        audit_key: kit::audit::AuditKey::dev(),
    };
    let nats = config.nats.clone();
    let result = async {
        let app = registry::build(registry::Settings::new(config)).await?;
        let url = format!("http://{}", app.addr());
        let stop = app.stop_handle();
        let running = tokio::spawn(app.run_until(std::future::pending()));
        let outcome = over_grpc(url, &token, calls).await;
        stop.stop();
        let _ = running.await;
        outcome
    }
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    // The registry's case-event consumer made a stream of its own; it goes too.
    if let Ok(bus) = kit::events::Bus::connect(&nats).await {
        let _ = bus.jetstream().delete_stream(bus.stream_name()).await;
    }
    println!("scratch database {db_name} and stream {} dropped", nats.stream);
    result
}
