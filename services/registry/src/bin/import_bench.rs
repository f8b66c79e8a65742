//! `cargo run --release -p registry --bin import_bench [FILE]`: times the national division import against a
//! raw PostgreSQL COPY of the same rows, then the tree queries on the result, in a scratch database of its own
//! that is dropped at the end. FILE defaults to the national table beside the repository.
//! BENCH_DATABASE_URL (or TEST_DATABASE_URL) names an existing database to connect to for CREATE DATABASE.

use std::io::Read;
use std::time::Instant;

use anyhow::Context;
use registry::shared::NATION;
use registry::tree::domain::{ImportOptions, ImportReport};
use registry::tree::import;
use registry::tree::service as tree_queries;
use sqlx::Connection;

const DEFAULT_FILE: &str = "../shared/data/divisions/cn_divisions_2023_5level.csv.gz";
const PROVINCE: &str = "530000000000";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help(
        "usage: import_bench [FILE]   (default: the national table beside the repository; BENCH_DATABASE_URL or TEST_DATABASE_URL)",
    );
    let path = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_FILE.to_owned());
    let admin_url = kit::config::string_or(
        "BENCH_DATABASE_URL",
        &kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    );
    let db_name = format!("zz_bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.context("connect for CREATE DATABASE")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).execute(&mut admin).await?;
    let db_url = match admin_url.rfind('/') {
        Some(i) => format!("{}/{db_name}", &admin_url[..i]),
        None => anyhow::bail!("the database URL needs a database path"),
    };
    let result = run(&db_url, &path).await;
    // The scratch database goes whatever happened.
    let drop = format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await?;
    println!("scratch database {db_name} dropped");
    result
}

async fn run(db_url: &str, path: &str) -> anyhow::Result<()> {
    println!("file: {path}");
    let bare_secs = raw_copy(db_url, path, "bare", "(code TEXT, name TEXT, level SMALLINT, parent_code TEXT)").await?;

    let config = kit::Config {
        service: registry::NAME,
        grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database: kit::config::DbConfig::new(db_url, "registry", 4),
        nats: kit::config::NatsConfig::local("", "", ""),
        // Only the database is used; nothing here listens, but a config carries its keys.
        auth: kit::auth::KeySet::generate("bench", "zongzhi", "zongzhi")?.auth(registry::NAME),
        pii_key: kit::pii::DEV_KEY,
        pii_retired: vec![],
        audit_key: kit::audit::AuditKey::dev(),
    };
    let pool = registry::connect(&config).await?;
    // The same COPY into a table shaped like the registry's own (its key, checks and indexes): what PostgreSQL
    // itself needs to store these rows so they can be queried.
    let copy_secs = raw_copy(db_url, path, "shaped", "(LIKE registry.divisions INCLUDING ALL)").await?;
    let opts = ImportOptions { edition: "2023".into(), retire_missing: true, establish_centers: false };
    println!("registry import options: edition 2023, retire_missing, no centers");
    let (first, first_secs) = timed_import(&pool, path, &opts).await?;
    print_import("(b) registry import", first, first_secs);
    println!(
        "    ratio import / COPY into the same table shape: {:.2}x (target <= 2x); / COPY into a bare table: {:.2}x",
        first_secs / copy_secs,
        first_secs / bare_secs
    );
    let (again, again_secs) = timed_import(&pool, path, &opts).await?;
    print_import("(c) re-import (no-op)", again, again_secs);
    println!("    ratio re-import / COPY into the same table shape: {:.2}x", again_secs / copy_secs);

    println!("(d) queries, median of 5 runs:");
    let counts = tree_queries::count_by_level(&pool, NATION).await?;
    println!("    nation per level: {counts:?}");
    let ms = median_ms(|| async { tree_queries::count_by_level(&pool, NATION).await.map(|_| ()) }).await?;
    println!("    CountByLevel nation root           {ms:8.2} ms");
    let ms = median_ms(|| async { tree_queries::count_by_level(&pool, PROVINCE).await.map(|_| ()) }).await?;
    println!("    CountByLevel province {PROVINCE} {ms:8.2} ms");
    let ms = median_ms(|| async { tree_queries::descendants(&pool, NATION, 5, "", 100).await.map(|_| ()) }).await?;
    println!("    ListDescendants nation, villages, first page of 100 {ms:8.2} ms");
    let ms = median_ms(|| async { tree_queries::descendants(&pool, NATION, 2, "", 100).await.map(|_| ()) }).await?;
    println!("    ListDescendants nation, prefectures, first page of 100 {ms:8.2} ms");
    let ms = median_ms(|| async { tree_queries::descendants(&pool, PROVINCE, 4, "", 100).await.map(|_| ()) }).await?;
    println!("    ListDescendants province, townships, first page of 100 {ms:8.2} ms");
    let hits = tree_queries::search_names(&pool, PROVINCE, "新村", 50).await?.len();
    let ms = median_ms(|| async { tree_queries::search_names(&pool, PROVINCE, "新村", 50).await.map(|_| ()) }).await?;
    println!("    SearchNames \"新村\" in province ({hits} hits, limit 50) {ms:8.2} ms");
    let ms =
        median_ms(|| async { tree_queries::search_names(&pool, PROVINCE, "不存在的名字", 50).await.map(|_| ()) })
            .await?;
    println!("    SearchNames with no hit in province (whole subtree read) {ms:8.2} ms");
    pool.close().await;
    Ok(())
}

/// (a) The floor: the same rows COPYed straight from the CSV (decompressed beforehand, so only the database's
/// work is timed) into a table `name` defined by `shape`.
async fn raw_copy(db_url: &str, path: &str, name: &str, shape: &str) -> anyhow::Result<f64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
    let mut csv = Vec::new();
    import::open_reader(file)?.read_to_end(&mut csv)?;
    let mut conn = sqlx::PgConnection::connect(db_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE public.{name} {shape}"))).execute(&mut conn).await?;
    // The file has no edition column; the registry's import supplies one.
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE public.{name} ALTER COLUMN edition SET DEFAULT '2023'"
    )))
    .execute(&mut conn)
    .await;
    let started = Instant::now();
    let statement =
        format!("COPY public.{name} (code, name, level, parent_code) FROM STDIN WITH (FORMAT csv, HEADER true)");
    let mut copy = conn.copy_in_raw(&statement).await?;
    for chunk in csv.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let rows = copy.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    println!("(a) raw COPY into a {name} table {shape}: {rows} rows in {secs:.3} s, {:.0} rows/s", rows as f64 / secs);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE public.{name}"))).execute(&mut conn).await?;
    conn.close().await?;
    Ok(secs)
}

/// The whole import as an operator runs it: gunzip, parse and validate, COPY, merge, rollups.
async fn timed_import(pool: &sqlx::PgPool, path: &str, opts: &ImportOptions) -> anyhow::Result<(ImportReport, f64)> {
    let started = Instant::now();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
    let reader = import::open_reader(file)?;
    let rows =
        tokio::task::block_in_place(|| import::parse(reader, &mut |_| {})).map_err(|e| anyhow::anyhow!("{e}"))?;
    let parsed = started.elapsed().as_secs_f64();
    let mut phases = Vec::new();
    let report = import::import(pool, &rows, opts, &mut |p| phases.push((p.phase, started.elapsed().as_secs_f64())))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    // The last mark of each phase: when it ended.
    let marks: Vec<String> = phases
        .iter()
        .enumerate()
        .filter(|(i, (phase, _))| phases.get(i + 1).is_none_or(|(next, _)| next != phase))
        .map(|(_, (phase, at))| format!("{phase} {at:.2}s"))
        .collect();
    println!("    (gunzip+parse+validate {parsed:.2}s; then {})", marks.join(", "));
    Ok((report, secs))
}

fn print_import(label: &str, r: ImportReport, secs: f64) {
    println!(
        "{label}: {} rows in {secs:.3} s, {:.0} rows/s; added {}, changed {}, retired {}, unchanged {}",
        r.rows,
        r.rows as f64 / secs,
        r.added,
        r.changed,
        r.retired,
        r.unchanged
    );
}

async fn median_ms<F, Fut>(mut f: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kit::error::Result<()>>,
{
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        f().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[2])
}
