//! `cargo run --release -p suite --bin storm_bench [CALLS] [ROUNDS]`: the same-key storm. CALLS (default 200)
//! concurrent RegisterCase calls through the gateway carrying one idempotency key, against intake's pool of 5
//! (the suite's `max_connections`), ROUNDS times (default 5), each round with a fresh key. Prints per round the
//! calls answered, cases created, errors and elapsed time, then the cases in intake's table (one per round if
//! idempotency holds). Runs the suite on a scratch database and stream it removes afterwards;
//! TEST_DATABASE_URL and TEST_NATS_URL name the servers (default local).

use kit::auth::{KeySet, Role};
use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::{PartyInput, RegisterCaseRequest};
use sqlx::Connection as _;
use suite::{Suite, SuiteConfig};

const TOWNSHIP: &str = "532901003000";
const GRID: &str = "532901003001001";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::args().nth(1).map_or(Ok(200), |a| a.parse())?;
    let rounds: usize = std::env::args().nth(2).map_or(Ok(5), |a| a.parse())?;
    println!("$ cargo run --release -p suite --bin storm_bench {calls} {rounds}");
    let admin_url = kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let nats_url = kit::config::string_or("TEST_NATS_URL", "nats://127.0.0.1:4222");
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let db = format!("zz_bench_{tag}");
    let nats = kit::config::NatsConfig {
        url: nats_url,
        prefix: format!("zzb_{tag}"),
        stream: format!("ZZB_{tag}"),
        events: Default::default(),
    };
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let result = run(&admin_url, &db, &nats, calls, rounds).await;
    // The scratch database and stream go whatever happened.
    if let Ok(client) = async_nats::connect(&nats.url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(&nats.stream).await;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    println!("dropped scratch database {db} and stream {}", nats.stream);
    result
}

async fn run(
    admin_url: &str,
    db: &str,
    nats: &kit::config::NatsConfig,
    calls: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let database_url = match admin_url.rfind('/') {
        Some(i) => format!("{}/{db}", &admin_url[..i]),
        None => anyhow::bail!("TEST_DATABASE_URL needs a database path"),
    };
    let keys = KeySet::generate("bench-issuer", "zongzhi", "zongzhi")?;
    let cfg = SuiteConfig {
        database_url: database_url.clone(),
        nats: nats.clone(),
        host: [127, 0, 0, 1].into(),
        base_port: 0,
        http_port: 0,
        keys: keys.clone(),
        pii_key: kit::pii::DEV_KEY,
        audit_key: kit::audit::AuditKey::new([7; 32]),
    };
    let suite = Suite::start(&cfg).await?;
    let result = storms(&suite, &cfg, &keys, &database_url, calls, rounds).await;
    suite.stop().await?;
    result
}

async fn storms(
    suite: &Suite,
    cfg: &SuiteConfig,
    keys: &KeySet,
    database_url: &str,
    calls: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let pool = registry::connect(&Suite::registry_config(cfg)).await?;
    let seeder = keys.token("seed", &[(Role::BusinessAdmin, "*")])?;
    let (registry, routing) = (format!("http://{}", suite.registry), format!("http://{}", suite.routing));
    suite::seed::seed(&pool, &registry, &routing, &seeder, &mut |_| {}).await?;
    let token = keys.token("storm-clerk", &[(Role::IntakeClerk, TOWNSHIP)])?;
    let desk = DeskClient::new(kit::grpc::channel_with_token(&format!("http://{}", suite.gateway_grpc), &token)?);
    let mut errors = 0;
    for round in 1..=rounds {
        let request = registration(&format!("storm-{round}"));
        let storm = suite::storm::same_key(calls, || {
            let (mut desk, request) = (desk.clone(), request.clone());
            async move { desk.register_case(request).await.map(tonic::Response::into_inner) }
        })
        .await;
        println!("round {round}: {storm}");
        for e in storm.errors.iter().take(3) {
            println!("  error: {e}");
        }
        errors += storm.errors.len();
    }
    let mut intake = sqlx::PgConnection::connect(&format!("{database_url}?options=-csearch_path%3Dintake")).await?;
    let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM cases").fetch_one(&mut intake).await?;
    println!("{rounds} storms of {calls}: {cases} case(s) in intake (want {rounds}), {errors} error(s) (want 0)");
    Ok(())
}

fn registration(key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: TOWNSHIP.into(),
        channel: "walk_in".into(),
        kind: "dispute".into(),
        category_code: "0102".into(),
        urgency: "normal".into(),
        title: "楼上漏水引发邻里纠纷".into(),
        description: "三楼住户反映楼上长期漏水, 协商未果".into(),
        location_code: GRID.into(),
        parties: vec![PartyInput {
            name: "张三".into(),
            phone: "13812345678".into(),
            id_number: String::new(),
            role: "applicant".into(),
        }],
        reporter_id: String::new(),
        operator_id: String::new(),
    }
}
