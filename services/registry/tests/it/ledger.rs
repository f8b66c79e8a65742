//! The tree ledger against real PostgreSQL, real NATS and gRPC over a socket: case events published as the
//! upstream services would, duplicates included, counted once at every node up to the root.

// A test's unwrap is its assertion.
#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseClosed, CaseRegistered, CaseReopened, CaseSupervised, DeadlineMissed, Envelope};
use proto::registry::v1::ledger_client::LedgerClient;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::*;
use tonic::Code;
use uuid::Uuid;

const A: &str = "532901003001"; // 龙溪社区, 下关街道, 大理市
const B: &str = "532901003002"; // 兴盛社区, 下关街道
const C: &str = "532901004001"; // 关迤社区, 太和街道
const D: &str = "532922101001"; // 漾濞县
const TOWNSHIP: &str = "532901003000";
const COUNTY: &str = "532901000000";
const PREFECTURE: &str = "532900000000";
const PROVINCE: &str = "530000000000";

async fn start(
    infra: &TestInfra,
) -> (
    LedgerClient<kit::testing::AuthedChannel>,
    RegistryClient<kit::testing::AuthedChannel>,
    sqlx::PgPool,
    kit::app::StopHandle,
) {
    let r = common::start(infra, true).await;
    (LedgerClient::new(r.channel.clone()), RegistryClient::new(r.channel), r.pool, r.stop)
}

/// Village, township, county, prefecture, province: statistical codes nest by prefix.
fn area_path(village: &str) -> Vec<String> {
    vec![
        village.to_owned(),
        format!("{}000", &village[..9]),
        format!("{}000000", &village[..6]),
        format!("{}00000000", &village[..4]),
        format!("{}0000000000", &village[..2]),
    ]
}

fn envelope(case_id: Uuid, body: Body) -> Envelope {
    Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: case_id.to_string(),
        occurred_at_ms: chrono::Utc::now().timestamp_millis(),
        actor: "test".into(),
        body: Some(body),
    }
}

fn registered(case_id: Uuid, kind: &str, village: &str, grid: &str) -> Envelope {
    let body = CaseRegistered {
        kind: <proto::vocab::v1::CaseKind as proto::json::ProtoEnum>::number_of(kind).unwrap_or_default(),
        village_code: village.into(),
        grid_code: grid.into(),
        area_path: area_path(village),
        ..Default::default()
    };
    envelope(case_id, Body::CaseRegistered(body))
}

fn overdue(case_id: Uuid, stage: &str) -> Envelope {
    envelope(
        case_id,
        Body::DeadlineMissed(DeadlineMissed {
            stage: proto::json::wire::<proto::vocab::v1::Stage>(stage),
            ..Default::default()
        }),
    )
}

fn card(case_id: Uuid, grade: &str) -> Envelope {
    let body =
        CaseSupervised { action: grade.into(), stage: proto::vocab::v1::Stage::Accept.into(), ..Default::default() };
    envelope(case_id, Body::CaseSupervised(body))
}

/// (yellow, red) cards of the risks and of the other cases at a node.
async fn cards_at(client: &mut LedgerClient<kit::testing::AuthedChannel>, code: &str) -> ((u64, u64), (u64, u64)) {
    let row = client.get_ledger(GetLedgerRequest { code: code.into() }).await.expect("get ledger").into_inner().row;
    let row = row.expect("row");
    let c = |c: &Option<LedgerCounts>| c.as_ref().map_or((0, 0), |c| (c.yellow, c.red));
    (c(&row.risks), c(&row.cases))
}

fn closed(case_id: Uuid) -> Envelope {
    envelope(
        case_id,
        Body::CaseClosed(CaseClosed { round: 1, closure_reason: "resolved".into(), ..Default::default() }),
    )
}

fn reopened(case_id: Uuid) -> Envelope {
    envelope(case_id, Body::CaseReopened(CaseReopened { round: 2, reason: "unsatisfied".into() }))
}

/// (risks open, overdue, closed), (other cases open, overdue, closed).
type Counts = ((u64, u64, u64), (u64, u64, u64));

fn counts(row: &LedgerRow) -> Counts {
    let c = |c: &Option<LedgerCounts>| c.as_ref().map_or((0, 0, 0), |c| (c.open, c.overdue, c.closed));
    (c(&row.risks), c(&row.cases))
}

async fn ledger_at(client: &mut LedgerClient<kit::testing::AuthedChannel>, code: &str) -> Counts {
    let row = client.get_ledger(GetLedgerRequest { code: code.into() }).await.expect("get ledger").into_inner().row;
    counts(&row.expect("row"))
}

#[tokio::test]
async fn case_events_are_counted_once_at_every_node_up_to_the_root() {
    let infra = TestInfra::new().await;
    let (mut ledger, mut registry, pool, stop) = start(&infra).await;
    let grid = registry
        .create_grid(CreateGridRequest {
            village_code: A.into(),
            name: "一网格".into(),
            kind: proto::registry::v1::GridKind::Grid.into(),
            ..Default::default()
        })
        .await
        .expect("grid")
        .into_inner()
        .grid
        .expect("grid")
        .code;

    let [a1, a2, a3, b1, b2, c1, d1] = std::array::from_fn(|_| Uuid::new_v4());
    let a1_registered = registered(a1, "risk", A, "");
    let a1_overdue = overdue(a1, "accept");
    let a2_closed = closed(a2);
    let burst = vec![
        a1_registered.clone(),
        registered(a2, "dispute", A, &grid),
        registered(a3, "demand", A, ""),
        a1_overdue.clone(),
        // A second deadline of the same open period is not a second overdue.
        overdue(a1, "resolve"),
        a2_closed.clone(),
        overdue(a3, "resolve"),
        closed(a3),
        registered(b1, "risk", B, ""),
        closed(b1),
        reopened(b1),
        registered(b2, "inquiry", B, ""),
        overdue(b2, "accept"),
        registered(d1, "risk", D, ""),
        overdue(d1, "accept"),
        // Events for a case the ledger never saw registered are ignored.
        closed(Uuid::new_v4()),
        // Redeliveries: the same envelopes again, caught by the inbox.
        a1_registered.clone(),
        a1_overdue,
        a2_closed,
        // A repeated registration under a new event id is caught by the case row.
        registered(a1, "risk", A, ""),
        registered(c1, "dispute", C, ""),
        // 督办 cards count at every node, open or closed; a reminder is the case file's alone.
        card(a1, "reminder"),
        card(a1, "yellow"),
        card(a1, "red"),
        card(a3, "yellow"),
        card(b2, "yellow"),
    ];
    for env in &burst {
        infra.publish_envelope(env).await;
    }
    // Cases are consumed in parallel partitions, so the last event counted says nothing of the others: wait
    // until every distinct event has its inbox row (written in the same transaction as its ledger change).
    // A reminder is not the ledger's, so it is acknowledged without a transaction or an inbox row.
    let reminder = |e: &&Envelope| matches!(&e.body, Some(Body::CaseSupervised(s)) if s.action == "reminder");
    let unique: std::collections::HashSet<&str> =
        burst.iter().filter(|e| !reminder(e)).map(|e| e.event_id.as_str()).collect();
    eventually("every distinct event of the burst is handled", 30, || {
        let pool = pool.clone();
        let want = unique.len() as i64;
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'registry'")
                .fetch_one(&pool)
                .await
                .ok()?;
            (n >= want).then_some(())
        }
    })
    .await;

    let table = [
        ("village A", A, ((1, 1, 0), (0, 0, 2))),
        ("village B", B, ((1, 0, 0), (1, 1, 0))),
        ("village C", C, ((0, 0, 0), (1, 0, 0))),
        ("grid of A", grid.as_str(), ((0, 0, 0), (0, 0, 1))),
        ("township of A and B", TOWNSHIP, ((2, 1, 0), (1, 1, 2))),
        ("county of A, B, C", COUNTY, ((2, 1, 0), (2, 1, 2))),
        ("county of D", "532922000000", ((1, 1, 0), (0, 0, 0))),
        ("prefecture", PREFECTURE, ((3, 2, 0), (2, 1, 2))),
        ("province", PROVINCE, ((3, 2, 0), (2, 1, 2))),
    ];
    for (name, code, want) in table {
        assert_eq!(ledger_at(&mut ledger, code).await, want, "{name} ({code})");
    }
    for (name, code, want) in [
        ("village A", A, ((1, 1), (1, 0))),
        ("village B", B, ((0, 0), (1, 0))),
        ("township", TOWNSHIP, ((1, 1), (2, 0))),
        ("province", PROVINCE, ((1, 1), (2, 0))),
    ] {
        assert_eq!(cards_at(&mut ledger, code).await, want, "cards at {name}");
    }

    let inbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'registry'").fetch_one(&pool).await.unwrap();
    assert_eq!(inbox, unique.len() as i64, "one inbox row per distinct event");
    let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_cases").fetch_one(&pool).await.unwrap();
    assert_eq!(cases, 7);

    // Drill-down: the township's villages (zeros included), the prefecture's counties, the village's grids.
    let list = |code: &str, page_size: u32, page_token: &str| ListLedgerRequest {
        code: code.into(),
        page_size,
        page_token: page_token.into(),
    };
    let township = ledger.list_ledger(list(TOWNSHIP, 0, "")).await.unwrap().into_inner();
    assert_eq!(counts(township.node.as_ref().unwrap()), ((2, 1, 0), (1, 1, 2)));
    assert_eq!(township.children.len(), 22, "every village of 下关街道");
    let by_code = |rows: &[LedgerRow], code: &str| counts(rows.iter().find(|r| r.code == code).expect(code));
    assert_eq!(by_code(&township.children, A), ((1, 1, 0), (0, 0, 2)));
    assert_eq!(by_code(&township.children, B), ((1, 0, 0), (1, 1, 0)));
    assert_eq!(by_code(&township.children, "532901003003"), ((0, 0, 0), (0, 0, 0)));
    let prefecture = ledger.list_ledger(list(PREFECTURE, 0, "")).await.unwrap().into_inner();
    assert_eq!(prefecture.children.len(), 12);
    assert_eq!(by_code(&prefecture.children, COUNTY), ((2, 1, 0), (2, 1, 2)));
    let first = ledger.list_ledger(list(PREFECTURE, 5, "")).await.unwrap().into_inner();
    let second = ledger.list_ledger(list(PREFECTURE, 5, &first.next_page_token)).await.unwrap().into_inner();
    assert_eq!((first.children.len(), second.children.len()), (5, 5));
    assert!(first.children[4].code < second.children[0].code, "pages follow in code order");
    let village = ledger.list_ledger(list(A, 0, "")).await.unwrap().into_inner();
    assert_eq!(village.children.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), vec![grid.as_str()]);

    let bad = [
        (
            "malformed code",
            ledger.get_ledger(GetLedgerRequest { code: "53290".into() }).await.err(),
            Code::InvalidArgument,
            "code",
        ),
        (
            "unknown node",
            ledger.get_ledger(GetLedgerRequest { code: "532999999999".into() }).await.err(),
            Code::NotFound,
            "",
        ),
        ("empty list code", ledger.list_ledger(list("", 0, "")).await.err(), Code::InvalidArgument, "code"),
        ("unknown list node", ledger.list_ledger(list("532901003999", 0, "")).await.err(), Code::NotFound, ""),
    ];
    for (name, status, code, field) in bad {
        let status = status.unwrap_or_else(|| panic!("{name}: accepted"));
        kit::testing::assert_refused(name, &status, code, field);
    }
    stop.stop();
}
