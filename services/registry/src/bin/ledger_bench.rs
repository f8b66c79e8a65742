//! `cargo run --release -p registry --bin ledger_bench [CASES]`: loads synthetic cases across Dali's villages
//! into a scratch database through the consumer's own apply function, then times GetLedger and ListLedger at
//! the prefecture, and drops the database. TEST_DATABASE_URL names the server (default local postgres).

use proto::vocab::v1::CaseKind;
use std::time::Instant;

use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseClosed, CaseRegistered, DeadlineMissed, Envelope};
use sqlx::Connection as _;
use uuid::Uuid;

const PREFECTURE: &str = "532900000000";
const BATCH: usize = 500;
const QUERIES: u32 = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help("usage: ledger_bench [CASES]   (default 20000; TEST_DATABASE_URL names the server)");
    let cases: usize = std::env::args().nth(1).map_or(Ok(20_000), |a| a.parse())?;
    let admin_url = kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let db = format!("zz_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let result = run(&admin_url, &db, cases).await;
    // The scratch database goes whatever happened.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    println!("dropped scratch database {db}");
    result
}

async fn run(admin_url: &str, db: &str, cases: usize) -> anyhow::Result<()> {
    let url = match admin_url.rfind('/') {
        Some(i) => format!("{}/{db}", &admin_url[..i]),
        None => anyhow::bail!("TEST_DATABASE_URL needs a database path"),
    };
    // Only the database part is used: registry::connect migrates; nothing here listens or touches NATS.
    let config = kit::Config {
        service: registry::NAME,
        grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database: kit::config::DbConfig::new(url, "registry", 4),
        nats: kit::config::NatsConfig::local("", "", ""),
        auth: keys()?.auth(registry::NAME),
        pii_key: kit::pii::DEV_KEY,
        pii_retired: vec![],
        audit_key: kit::audit::AuditKey::dev(),
    };
    let pool = registry::connect(&config).await?;
    registry::import_dali(&pool).await?;
    load(&pool, cases).await?;
    in_process(&pool).await?;
    over_grpc(&pool).await?;
    directive_to_dali(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Every village's path from the shipped tree, and `cases` synthetic cases' events applied in batches as the
/// ledger's consumer applies them; prints the rate.
async fn load(pool: &sqlx::PgPool, cases: usize) -> anyhow::Result<()> {
    let villages: Vec<Vec<String>> = sqlx::query_scalar(
        "SELECT ARRAY[v.code, t.code, c.code, p.code, r.code] FROM divisions v \
         JOIN divisions t ON t.code = v.parent_code JOIN divisions c ON c.code = t.parent_code \
         JOIN divisions p ON p.code = c.parent_code JOIN divisions r ON r.code = p.parent_code \
         WHERE v.level = 5 ORDER BY v.code",
    )
    .fetch_all(pool)
    .await?;

    let events = synthetic(&villages, cases);
    let started = Instant::now();
    for batch in events.chunks(BATCH) {
        let mut tx = pool.begin().await?;
        for e in batch {
            registry::ledger::service::apply_event(&mut tx, e).await?;
        }
        tx.commit().await?;
    }
    let load = started.elapsed();
    println!(
        "loaded {cases} cases ({} events) over {} villages in {:.1}s ({:.0} events/s, batches of {BATCH})",
        events.len(),
        villages.len(),
        load.as_secs_f64(),
        events.len() as f64 / load.as_secs_f64()
    );

    Ok(())
}

/// GetLedger and ListLedger called in the process, QUERIES times each; prints the prefecture and the means.
async fn in_process(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let node = registry::ledger::service::get(pool, PREFECTURE).await?;
    println!(
        "prefecture: risks open {} overdue {} closed {}; other cases open {} overdue {} closed {}",
        node.risk_open, node.risk_overdue, node.risk_closed, node.case_open, node.case_overdue, node.case_closed
    );
    let started = Instant::now();
    for _ in 0..QUERIES {
        registry::ledger::service::get(pool, PREFECTURE).await?;
    }
    let get = started.elapsed().as_secs_f64() * 1000.0 / f64::from(QUERIES);
    let started = Instant::now();
    let mut rows = 0;
    for _ in 0..QUERIES {
        rows = registry::ledger::service::children(pool, &node, "", 1000).await?.len();
    }
    let list = started.elapsed().as_secs_f64() * 1000.0 / f64::from(QUERIES);
    println!(
        "in process: GetLedger({PREFECTURE}) {get:.3} ms, ListLedger {list:.3} ms ({rows} children), mean of {QUERIES}"
    );
    Ok(())
}

/// The same two queries through the Ledger service on a loopback socket, as a client sees them, behind the
/// server every service runs (kit::grpc::serve, with TCP_NODELAY since this bench showed a 40 ms delayed-ACK
/// stall on multi-segment replies without it).
async fn over_grpc(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    use proto::registry::v1::ledger_server::LedgerServer;
    let service = LedgerServer::new(registry::grpc::LedgerService(pool.clone()));
    let listener = kit::grpc::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (trigger, shutdown) = kit::shutdown::channel();
    let routes = tonic::service::Routes::new(service);
    let verifier = std::sync::Arc::new(kit::auth::Verifier::new(&keys()?.auth(registry::NAME).trust)?);
    // Queries only, and no audit trail: this measures the ledger, not the audit writer.
    let guard = kit::auth::layer::Guard {
        verifier,
        audit: None,
        forwards: &[],
        deadline: None,
        trusted_proxies: kit::proxies::Proxies::default(),
        tls: None,
    };
    let server = tokio::spawn(kit::grpc::serve(listener, routes, &["zongzhi.registry.v1.Ledger"], guard, shutdown));
    time_client("over gRPC", &url).await?;
    trigger.fire();
    server.await??;
    Ok(())
}

async fn time_client(label: &str, url: &str) -> anyhow::Result<()> {
    use proto::registry::v1::ledger_client::LedgerClient;
    use proto::registry::v1::{GetLedgerRequest, ListLedgerRequest};
    let token = keys()?.token("bench", &[(kit::auth::Role::CenterLeader, PREFECTURE)])?;
    let mut client = LedgerClient::new(kit::grpc::channel_with_token(url, &token)?);
    let started = Instant::now();
    for _ in 0..QUERIES {
        client.get_ledger(GetLedgerRequest { code: PREFECTURE.into() }).await?;
    }
    let get = started.elapsed().as_secs_f64() * 1000.0 / f64::from(QUERIES);
    let started = Instant::now();
    for _ in 0..QUERIES {
        client.list_ledger(ListLedgerRequest { code: PREFECTURE.into(), ..Default::default() }).await?;
    }
    let list = started.elapsed().as_secs_f64() * 1000.0 / f64::from(QUERIES);
    println!("{label}: GetLedger({PREFECTURE}) {get:.3} ms, ListLedger {list:.3} ms, mean of {QUERIES}");
    Ok(())
}

/// One directive to the whole prefecture: the set-wise recipient insert, then the per-county roll-up.
async fn directive_to_dali(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    use registry::ledger::domain::NewDirective;
    use registry::ledger::service as directive;
    let new = NewDirective {
        issued_by: "bench",
        issuer: PREFECTURE,
        target: PREFECTURE,
        title: "bench",
        body: "bench",
        due_at: chrono::Utc::now() + chrono::Duration::days(3),
    };
    let started = Instant::now();
    let (d, recipients) = directive::issue(pool, &new).await?;
    let issue = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let (_, totals, branches) = directive::get_directive(pool, d.id).await?;
    let get = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "IssueDirective to all of Dali: {recipients} recipients in {issue:.1} ms; GetDirective {get:.1} ms \
         ({} branches, {} pending)",
        branches.len(),
        totals.pending
    );
    Ok(())
}

/// Each case registered in a village chosen round-robin; a third of them closed, a fifth overdue (some of those
/// then closed), one in four a risk.
fn synthetic(villages: &[Vec<String>], cases: usize) -> Vec<Envelope> {
    let kinds = [CaseKind::Dispute, CaseKind::Demand, CaseKind::Inquiry, CaseKind::Risk];
    let mut out = Vec::with_capacity(cases * 3 / 2);
    let envelope = |case_id: Uuid, body: Body| Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: case_id.to_string(),
        occurred_at_ms: chrono::Utc::now().timestamp_millis(),
        actor: "ledger_bench".into(),
        body: Some(body),
    };
    for i in 0..cases {
        let id = Uuid::new_v4();
        let path = &villages[i % villages.len()];
        let reg = CaseRegistered {
            kind: kinds[i % kinds.len()].into(),
            village_code: path[0].clone(),
            area_path: path.clone(),
            ..Default::default()
        };
        out.push(envelope(id, Body::CaseRegistered(reg)));
        if i % 5 == 0 {
            out.push(envelope(
                id,
                Body::DeadlineMissed(DeadlineMissed {
                    stage: proto::vocab::v1::Stage::Resolve.into(),
                    ..Default::default()
                }),
            ));
        }
        if i % 3 == 0 {
            out.push(envelope(id, Body::CaseClosed(CaseClosed { round: 1, ..Default::default() })));
        }
    }
    out
}

/// The bench's own keys: the server trusts them and the client's token is signed with them.
fn keys() -> anyhow::Result<&'static kit::auth::KeySet> {
    static KEYS: std::sync::OnceLock<kit::auth::KeySet> = std::sync::OnceLock::new();
    if let Some(k) = KEYS.get() {
        return Ok(k);
    }
    let set = kit::auth::KeySet::generate("bench", "zongzhi", "zongzhi")?;
    Ok(KEYS.get_or_init(|| set))
}
