//! `cargo run --release -p intake --bin duplicates_bench [OPEN_CASES] [PROBES]`: fills a scratch database with
//! OPEN_CASES (default 1,000,000) open cases spread over Dali's villages and the last 180 days, each
//! with one party whose phone is sealed and blind-indexed as registration does, plus a tenth as many closed
//! and merged ones the partial index must skip; then times the likely-duplicate search a registration runs
//! (`intake::service::likely_duplicates`, the same function) for PROBES (default 2,000) cases picked at random,
//! and prints p50/p99. Rows go in by `INSERT … SELECT FROM UNNEST` in batches, with progress. The scratch
//! database is dropped at the end. TEST_DATABASE_URL names the server (default local postgres).

use std::time::{Duration, Instant};

use chrono::Utc;
use intake::domain::duplicates::phone_index;
use kit::auth::ScopeSet;
use kit::pii::{Binding, Sealer};
use sqlx::Connection as _;
use uuid::Uuid;

const BATCH: usize = 20_000;
const DIVISIONS: &str = include_str!("../../../registry/data/dali_532900_divisions_2023.csv");
const PEOPLE: [&str; 12] =
    ["张某", "李某", "王某", "赵某", "杨某", "段某", "杜某", "尹某", "字某", "苏某", "何某", "李大妈"];
const MATTERS: [&str; 16] = [
    "院墙搭建雨棚影响采光",
    "楼上长期漏水",
    "宅基地界址不清",
    "灌溉用水分配",
    "承包地边界",
    "饲养家禽噪音扰民",
    "楼道堆放杂物",
    "排水沟堵塞污水外溢",
    "借款到期不还",
    "客栈装修噪音",
    "山林权属",
    "停车位被占",
    "婚后财产分割",
    "工地拖欠工资",
    "树木遮挡阳光",
    "围墙倒塌损坏庄稼",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help(
        "usage: duplicates_bench [OPEN_CASES] [PROBES]   (defaults 1000000 and 2000; TEST_DATABASE_URL names the server)",
    );
    let open: usize = std::env::args().nth(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let probes: usize = std::env::args().nth(2).map_or(Ok(2_000), |a| a.parse())?;
    let admin_url = kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let db = format!("zz_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    println!("scratch database {db}");
    let result = run(&admin_url, &db, open, probes).await;
    // The scratch database goes whatever happened.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    println!("dropped scratch database {db}");
    result
}

/// xorshift64*: the same data every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// One batch of cases and their parties, column by column, as UNNEST takes them.
#[derive(Default)]
struct Batch {
    id: Vec<Uuid>,
    case_no: Vec<String>,
    center: Vec<String>,
    category: Vec<String>,
    title: Vec<String>,
    description: Vec<String>,
    grid: Vec<String>,
    village: Vec<String>,
    path: Vec<String>,
    state: Vec<String>,
    at: Vec<chrono::DateTime<Utc>>,
    phone_sealed: Vec<Vec<u8>>,
    phone_masked: Vec<String>,
    phone_index: Vec<Vec<u8>>,
}

async fn run(admin_url: &str, db: &str, open: usize, probes: usize) -> anyhow::Result<()> {
    let url = match admin_url.rfind('/') {
        Some(i) => format!("{}/{db}", &admin_url[..i]),
        None => anyhow::bail!("TEST_DATABASE_URL needs a database path"),
    };
    let pool = intake::connect(&bench_config(url)?).await?;
    // code,name,level,parent_code: the villages are level 5.
    let villages: Vec<&str> = DIVISIONS
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() == 4 && f[2] == "5").then_some(f[0])
        })
        .collect();
    anyhow::ensure!(!villages.is_empty(), "no villages in the division table");
    fill(&pool, &villages, open).await?;
    probe(&pool, &villages, open, probes).await
}

/// The intake settings the bench connects with: its own database, no bus, the development keys.
fn bench_config(url: String) -> anyhow::Result<kit::Config> {
    Ok(kit::Config {
        service: intake::NAME,
        grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database: kit::config::DbConfig::new(url, "intake", 4),
        nats: kit::config::NatsConfig::local("", "", ""),
        auth: kit::auth::KeySet::generate("bench", "zongzhi", "zongzhi")?.auth(intake::NAME),
        pii_key: kit::pii::DEV_KEY,
        pii_retired: vec![],
        audit_key: kit::audit::AuditKey::dev(),
    })
}

/// Loads `open` open cases, and a tenth more closed or merged, with one party each, over the villages.
async fn fill(pool: &sqlx::PgPool, villages: &[&str], open: usize) -> anyhow::Result<()> {
    let categories: Vec<String> =
        sqlx::query_scalar("SELECT code FROM categories WHERE version = 1 ORDER BY code").fetch_all(pool).await?;
    // A tenth more that are closed or merged: the search must step over none of them.
    let total = open + open / 10;
    let sealer = Sealer::new(kit::pii::DEV_KEY);
    println!("filling {total} cases ({open} open) over {} villages, {} categories …", villages.len(), categories.len());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let now = Utc::now();
    let started = Instant::now();
    let mut batch = Batch::default();
    for n in 0..total {
        let village = villages[rng.below(villages.len())];
        batch.add(n, open, &mut rng, &sealer, village, &categories, now);
        if batch.id.len() == BATCH || n + 1 == total {
            insert(pool, &std::mem::take(&mut batch)).await?;
            let done = n + 1;
            if done % 100_000 < BATCH || done == total {
                let secs = started.elapsed().as_secs_f64();
                println!("  {done:>9} cases  {secs:6.1}s  {:.0} rows/s", done as f64 / secs);
            }
        }
    }
    let load = started.elapsed();
    sqlx::query("ANALYZE cases").execute(pool).await?;
    sqlx::query("ANALYZE case_parties").execute(pool).await?;
    println!("loaded {total} cases and parties in {:.1}s", load.as_secs_f64());

    Ok(())
}

/// Open cases picked at random, each searched as its registration would be; prints the times and the plan.
async fn probe(pool: &sqlx::PgPool, villages: &[&str], open: usize, probes: usize) -> anyhow::Result<()> {
    let picked: Vec<kit::ids::CaseId> = sqlx::query_scalar(
        "SELECT id FROM cases TABLESAMPLE SYSTEM (1) WHERE state NOT IN ('closed', 'merged') LIMIT $1",
    )
    .bind(i64::try_from(probes).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    let all = ScopeSet { all: true, ..ScopeSet::default() };
    let mut conn = pool.acquire().await?;
    let mut cases = Vec::with_capacity(picked.len());
    for id in &picked {
        if let Some(c) = intake::db::case_by_ref(&mut conn, &kit::ids::CaseRef::Id(*id)).await? {
            cases.push(c);
        }
    }
    drop(conn);
    // Warm the cache as a running service would be.
    for c in cases.iter().take(50) {
        intake::service::likely_duplicates(pool, c, &all).await?;
    }
    let mut took: Vec<Duration> = Vec::with_capacity(cases.len());
    let (mut found, mut by_phone) = (0usize, 0usize);
    for c in &cases {
        let t = Instant::now();
        let d = intake::service::likely_duplicates(pool, c, &all).await?;
        took.push(t.elapsed());
        found += d.len();
        by_phone += d.iter().filter(|x| x.candidate.same_phone).count();
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
    let per_village = open as f64 / villages.len() as f64;
    println!(
        "likely duplicates against {open} open cases (~{per_village:.0} per village over 180 days; window ±30 days): \
         {} probes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} candidates per probe ({by_phone} by phone)",
        took.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        found as f64 / took.len().max(1) as f64,
    );
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM cases c WHERE c.village_code = $1 AND c.state NOT IN ('closed', 'merged') \
         AND c.registered_at >= now() - interval '30 days' AND left(c.category_code, 2) = '01'",
    )
    .bind(villages[0])
    .fetch_all(pool)
    .await?;
    println!("plan of the narrowing query:\n  {}", plan.join("\n  "));
    Ok(())
}

impl Batch {
    /// The `n`th case (open when `n < open`) in `village`, with a party whose phone is sealed, masked and indexed.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        n: usize,
        open: usize,
        rng: &mut Rng,
        sealer: &Sealer,
        village: &str,
        categories: &[String],
        now: chrono::DateTime<Utc>,
    ) {
        let who = PEOPLE[rng.below(PEOPLE.len())];
        let other = PEOPLE[rng.below(PEOPLE.len())];
        let matter = MATTERS[rng.below(MATTERS.len())];
        let id = Uuid::from_u128(u128::from(rng.next()) << 64 | n as u128);
        // One phone in 200,000: a village sees a repeat caller now and then, as a real one does.
        let phone = format!("138{:08}", rng.below(200_000));
        let row = format!("{id}/0");
        self.phone_sealed.push(sealer.seal(&phone, &Binding { table: "case_parties", column: "phone", row: &row }));
        self.phone_masked.push(kit::pii::mask_phone(&phone));
        self.phone_index.push(phone_index(sealer, &phone).unwrap_or_default());
        self.id.push(id);
        self.case_no.push(format!("B-{n:08}"));
        self.center.push(format!("{}000", &village[..9]));
        self.category.push(categories[rng.below(categories.len())].clone());
        self.title.push(format!("{who}与{other}因{matter}发生纠纷"));
        self.description.push(format!("{who}反映{matter}, 多次协商未果, 请求调解"));
        self.grid.push(format!("{village}{:03}", 1 + rng.below(3)));
        self.village.push(village.to_owned());
        self.path.push(format!(
            "{{{village},{}000,{}000000,{}00000000,{}0000000000}}",
            &village[..9],
            &village[..6],
            &village[..4],
            &village[..2]
        ));
        self.state.push(match n {
            n if n < open => ["registered", "dispatched", "accepted", "resolved"][rng.below(4)].to_owned(),
            n if n % 2 == 0 => "closed".to_owned(),
            _ => "merged".to_owned(),
        });
        let secs = i64::try_from(rng.below(180 * 86_400)).unwrap_or(0);
        self.at.push(now - chrono::Duration::seconds(secs));
    }
}

async fn insert(pool: &sqlx::PgPool, b: &Batch) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO cases (id, case_no, idempotency_key, center_code, channel, kind, category_code, category_version, \
         urgency, title, description, grid_code, village_code, area_path, reporter_id, operator_id, state, \
         registered_at, updated_at) \
         SELECT id, no, no, center, 'hotline', 'dispute', cat, 1, 'normal', title, descr, grid, village, \
                path::text[], '', 'bench', state, at, at \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                     $9::text[], $10::text[], $11::timestamptz[]) \
              AS t(id, no, center, cat, title, descr, grid, village, path, state, at)",
    )
    .bind(&b.id)
    .bind(&b.case_no)
    .bind(&b.center)
    .bind(&b.category)
    .bind(&b.title)
    .bind(&b.description)
    .bind(&b.grid)
    .bind(&b.village)
    .bind(&b.path)
    .bind(&b.state)
    .bind(&b.at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO case_parties (case_id, ordinal, name, role, phone_sealed, phone_masked, id_number_masked, \
         phone_index, registered_at) \
         SELECT id, 0, '报告人', 'reporter', sealed, masked, '', idx, at \
         FROM UNNEST($1::uuid[], $2::bytea[], $3::text[], $4::bytea[], $5::timestamptz[]) \
              AS t(id, sealed, masked, idx, at)",
    )
    .bind(&b.id)
    .bind(&b.phone_sealed)
    .bind(&b.phone_masked)
    .bind(&b.phone_index)
    .bind(&b.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
