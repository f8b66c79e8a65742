//! 三率 and rankings on real PostgreSQL, NATS and gRPC: a fixed scenario of six cases, two units and two
//! villages, written by publishing routing's events with chosen times (deadlines run from the events' own
//! times), verified and followed up over gRPC, with every figure worked out by hand below.
//!
//! The clock: every time is counted from B, local midnight four days before today, and the period asked for
//! is [today − 5 days, today + 2 days) (local dates), so every stage of the scenario falls in it except where
//! said, and the visits and cards, which supervision stamps with the server's clock, fall in it too. Time
//! limits are calendar hours: 签收 10 h, 办结 20 h (reminder at 80 %, yellow at 100 %, red at 200 %).
//!
//! The deadline scheduler is left idle (an hour's poll) and called by hand ([`Suite::grade`]), so exactly the
//! cards the scenario wants are issued, while the stage they belong to is still open.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use common::{Node, accepted, await_handled, client, dispatched, resolved};
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, assert_refused, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseRegistered, CaseReturned, Envelope};
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::supervision::v1::{
    ExportRatesRequest, FollowUpRequest, GetRatesRequest, GetRatesResponse, RateRow, VerifyCaseRequest,
};
use tonic::Code;
use uuid::Uuid;

const TOWNSHIP: &str = "532901001000";
const V1: &str = "532901001001";
const V2: &str = "532901001002";
const U1: &str = "532901001-SFS";
const U2: &str = "532901001-PCS";

struct Suite {
    infra: TestInfra,
    node: Node,
    supervision: SupervisionClient<Channel>,
    /// Local midnight four days before today.
    b: DateTime<Utc>,
    from: String,
    to: String,
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

impl Suite {
    async fn boot() -> Self {
        let infra = common::infra().await;
        let mut settings = supervision::Settings::new(infra.config(supervision::NAME));
        settings.deadline_poll = Duration::from_secs(3600);
        let node = Node::start(supervision::build(settings).await.expect("supervision starts"));
        let pool = infra.pool(supervision::NAME).await;
        use supervision::domain::Stage;
        use supervision::service::clocks::with_stage_limit;
        with_stage_limit(&pool, Stage::Accept, "calendar_hours", "10h", "test").await.unwrap();
        with_stage_limit(&pool, Stage::Resolve, "calendar_hours", "20h", "test").await.unwrap();
        let today = (Utc::now() + hours(8)).date_naive();
        let day = |n: i64| today + chrono::Duration::days(n);
        let midnight = |d: NaiveDate| (d.and_hms_opt(0, 0, 0).unwrap() - hours(8)).and_utc();
        Suite {
            supervision: client(&node).await,
            infra,
            node,
            b: midnight(day(-4)),
            from: day(-5).to_string(),
            to: day(2).to_string(),
        }
    }

    /// Publishes an event of the case as having happened at B + `h` hours, and waits until it is applied.
    async fn at(&self, case_id: Uuid, h: i64, body: Body) {
        self.at_time(case_id, self.b + hours(h), body).await;
    }

    async fn at_time(&self, case_id: Uuid, t: DateTime<Utc>, body: Body) {
        let envelope = Envelope {
            event_id: Uuid::new_v4().to_string(),
            case_id: case_id.to_string(),
            occurred_at_ms: t.timestamp_millis(),
            actor: "handler-1".into(),
            body: Some(body),
        };
        self.infra.publish_envelope(&envelope).await;
        await_handled(&self.infra, &envelope.event_id).await;
    }

    /// A case registered in `village`, at B − 48 h (before any clock).
    async fn case(&self, village: &str) -> Uuid {
        let case_id = Uuid::new_v4();
        let registered = CaseRegistered {
            case_no: format!("532901001-20250807-{:05}", case_id.as_u128() % 100_000),
            channel: proto::vocab::v1::Channel::WalkIn.into(),
            kind: proto::vocab::v1::CaseKind::Dispute.into(),
            category_code: "0104".into(),
            urgency: proto::vocab::v1::Urgency::Normal.into(),
            grid_code: format!("{village}001"),
            village_code: village.into(),
            area_path: [village, TOWNSHIP, "532901000000", "532900000000", "530000000000"].map(String::from).into(),
            center_code: TOWNSHIP.into(),
            reporter_id: String::new(),
            ..Default::default()
        };
        self.at(case_id, -48, Body::CaseRegistered(registered)).await;
        case_id
    }

    /// Runs the deadline scheduler's pass `times` times: each pass issues the next due grade of every open
    /// deadline past it.
    async fn grade(&self, times: usize) {
        let pool = self.infra.pool(supervision::NAME).await;
        let (outbox, sealer) = (kit::events::Outbox::new(), kit::pii::Sealer::new(kit::pii::DEV_KEY));
        for _ in 0..times {
            supervision::service::scheduler::issue_due(&pool, &outbox, &sealer).await.unwrap();
        }
    }

    async fn verify_and_visit(&mut self, case_id: Uuid, satisfaction: &str) {
        let id = case_id.to_string();
        let verify = VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            closure_reason: "resolved".into(),
            ..Default::default()
        };
        self.supervision.verify_case(verify).await.unwrap();
        let visit = FollowUpRequest {
            case_id: id,
            satisfaction: proto::json::wire::<proto::vocab::v1::Satisfaction>(satisfaction),
            ..Default::default()
        };
        self.supervision.follow_up(visit).await.unwrap();
    }

    fn request(&self, node: &str, by: &str) -> GetRatesRequest {
        GetRatesRequest { node_code: node.into(), by: by.into(), from: self.from.clone(), to: self.to.clone() }
    }

    async fn rates(&mut self, node: &str, by: &str) -> GetRatesResponse {
        self.supervision.get_rates(self.request(node, by)).await.unwrap().into_inner()
    }
}

/// (rank, key, accept due/on time/bp, resolve due/on time/bp, visits/satisfied/basically/bp, yellow, red, score)
type Figures = (u32, String, [u64; 2], Option<u32>, [u64; 2], Option<u32>, [u64; 3], Option<u32>, [u64; 2], i64);

fn figures(r: &RateRow) -> Figures {
    (
        r.rank,
        r.key.clone(),
        [r.accept_due, r.accept_on_time],
        r.accept_on_time_bp,
        [r.resolve_due, r.resolve_on_time],
        r.resolve_on_time_bp,
        [r.visits, r.satisfied, r.basically_satisfied],
        r.satisfaction_bp,
        [r.yellow, r.red],
        r.score,
    )
}

#[tokio::test]
async fn the_three_rates_scores_and_ranks_of_a_fixed_scenario() {
    let mut s = Suite::boot().await;

    // Case 2 (V1, U1) first, so its cards are the only ones the scheduler can issue: dispatched at B (签收 due
    // B+10), graded twice (reminder, yellow) while unaccepted, accepted late at B+12 (办结 due B+32), resolved
    // on time at B+30, visited 基本满意.
    let c2 = s.case(V1).await;
    let t2 = Uuid::new_v4().to_string();
    s.at(c2, 0, dispatched(&t2, U1, 1)).await;
    s.grade(2).await;
    s.at(c2, 12, accepted(&t2, "handler-1")).await;
    s.at(c2, 30, resolved(&t2, "handler-1")).await;

    // Case 3 (V2, U2): dispatched at B, graded three times (reminder, yellow, red: red falls at B+20), accepted
    // late at B+24 (办结 due B+44), resolved on time at B+40, visited 不满意 → reopened. Round 2: a new task
    // dispatched at B+48 (签收 due B+58), accepted on time at B+50 (办结 due B+70), resolved late at B+75.
    let c3 = s.case(V2).await;
    let t3 = Uuid::new_v4().to_string();
    s.at(c3, 0, dispatched(&t3, U2, 1)).await;
    s.grade(3).await;
    s.at(c3, 24, accepted(&t3, "handler-1")).await;
    s.at(c3, 40, resolved(&t3, "handler-1")).await;

    // Case 1 (V1, U1): dispatched at B (签收 due B+10), accepted at B+2 (办结 due B+22), resolved at B+12: both
    // on time; visited 满意.
    let c1 = s.case(V1).await;
    let t1 = Uuid::new_v4().to_string();
    s.at(c1, 0, dispatched(&t1, U1, 1)).await;
    s.at(c1, 2, accepted(&t1, "handler-1")).await;
    s.at(c1, 12, resolved(&t1, "handler-1")).await;

    // Case 4 (V2): dispatched to U2 at B and returned at B+1 (its 签收 deadline cancelled: never counted), sent
    // to U1 at B+3 (签收 due B+13), accepted on time at B+5 (办结 due B+25) and never resolved: due and late.
    let c4 = s.case(V2).await;
    let (t4a, t4b) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    s.at(c4, 0, dispatched(&t4a, U2, 1)).await;
    let returned =
        CaseReturned { task_id: t4a.clone(), reason_code: "not_competent".into(), reason: "属地不符".into() };
    s.at(c4, 1, Body::CaseReturned(returned)).await;
    s.at(c4, 3, dispatched(&t4b, U1, 2)).await;
    s.at(c4, 5, accepted(&t4b, "handler-1")).await;

    // Case 5 (V1, U2): dispatched just now, so its 签收 is due ten hours from now: not yet due, not counted.
    let c5 = s.case(V1).await;
    s.at_time(c5, Utc::now(), dispatched(&Uuid::new_v4().to_string(), U2, 1)).await;

    // Case 6 (V2, U2): dispatched at B−40 (签收 due B−30, before the period: not counted), accepted at B−35
    // (办结 due B−15, in the period), resolved on time at B−16; visited 满意.
    let c6 = s.case(V2).await;
    let t6 = Uuid::new_v4().to_string();
    s.at(c6, -40, dispatched(&t6, U2, 1)).await;
    s.at(c6, -35, accepted(&t6, "handler-1")).await;
    s.at(c6, -16, resolved(&t6, "handler-1")).await;

    s.verify_and_visit(c1, "satisfied").await;
    s.verify_and_visit(c2, "basically_satisfied").await;
    s.verify_and_visit(c6, "satisfied").await;
    s.verify_and_visit(c3, "unsatisfied").await;
    // The reopening comes back through the bus and closes round 1; round 2 starts once it has been applied.
    let reopened = eventually("case.reopened of case 3", 20, || async {
        let events = s.infra.events().await;
        events
            .into_iter()
            .find(|e| e.case_id == c3.to_string() && matches!(e.body, Some(Body::CaseReopened(_))))
            .map(|e| e.event_id)
    })
    .await;
    await_handled(&s.infra, &reopened).await;
    let t3b = Uuid::new_v4().to_string();
    s.at(c3, 48, dispatched(&t3b, U2, 2)).await;
    s.at(c3, 50, accepted(&t3b, "handler-1")).await;
    s.at(c3, 75, resolved(&t3b, "handler-1")).await;

    // By unit under the township. Score = on-time stages × 1 + yellow × (−5) + red × (−10).
    // U1: 签收 case 1 on time, case 2 late, case 4b on time → 2/3 = 66.67 %; 办结 case 1, case 2 on time,
    //     case 4b due and undone → 2/3; visits case 1 满意, case 2 基本满意 → 2/2 = 100 %; yellow 1 (case 2);
    //     score 4 − 5 = −1.
    // U2: 签收 case 3 late, case 3 round 2 on time (case 4a cancelled, case 5 not yet due, case 6 before the
    //     period) → 1/2 = 50 %; 办结 case 3 on time, round 2 late, case 6 on time → 2/3; visits case 3 不满意,
    //     case 6 满意 → 1/2; yellow 1, red 1 (case 3); score 3 − 5 − 10 = −12.
    let by_unit = s.rates(TOWNSHIP, "unit").await;
    let rows: Vec<Figures> = by_unit.rows.iter().map(figures).collect();
    assert_eq!(
        rows,
        [
            (1, U1.into(), [3, 2], Some(6667), [3, 2], Some(6667), [2, 1, 1], Some(10_000), [1, 0], -1),
            (2, U2.into(), [2, 1], Some(5000), [3, 2], Some(6667), [2, 1, 0], Some(5000), [1, 1], -12),
        ]
    );
    // The total: 签收 3/5 = 60 %, 办结 4/6 = 66.67 %, satisfaction 3/4 = 75 %, 2 yellow, 1 red, 7 − 10 − 10.
    let total = (0, String::new(), [5, 3], Some(6000), [6, 4], Some(6667), [4, 2, 1], Some(7500), [2, 1], -13);
    assert_eq!(figures(by_unit.total.as_ref().unwrap()), total);
    assert_eq!((by_unit.score_on_time, by_unit.score_yellow, by_unit.score_red), (1, -5, -10));

    // By area under the township: one row per village.
    // V1 (cases 1, 2, 5): 签收 1/2, 办结 2/2, visits 2/2, yellow 1 → 3 − 5 = −2.
    // V2 (cases 3, 4, 6): 签收 2/3 (case 3 late, round 2 and 4b on time), 办结 2/4 (case 3 and 6 on time, round
    //     2 late, 4b undone), visits 1/2, yellow 1, red 1 → 4 − 15 = −11.
    let by_area = s.rates(TOWNSHIP, "area").await;
    let rows: Vec<Figures> = by_area.rows.iter().map(figures).collect();
    assert_eq!(
        rows,
        [
            (1, V1.into(), [2, 1], Some(5000), [2, 2], Some(10_000), [2, 1, 1], Some(10_000), [1, 0], -2),
            (2, V2.into(), [3, 2], Some(6667), [4, 2], Some(5000), [2, 1, 0], Some(5000), [1, 1], -11),
        ]
    );
    assert_eq!(figures(by_area.total.as_ref().unwrap()), total);
    // One level up, the township is the county's only child, with the same total.
    let county = s.rates("532901000000", "area").await;
    assert_eq!(county.rows.len(), 1);
    assert_eq!(figures(&county.rows[0]).2, [5, 3]);
    assert_eq!(figures(&county.rows[0]).9, -13);
    // Below a village, rows are its grids.
    let village = s.rates(V1, "area").await;
    assert_eq!(village.rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), [format!("{V1}001")]);

    // The CSV parses back to the same figures.
    let csv = s
        .supervision
        .export_rates(ExportRatesRequest {
            node_code: TOWNSHIP.into(),
            by: "unit".into(),
            from: s.from.clone(),
            to: s.to.clone(),
            format: "csv".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert_eq!(csv.filename, format!("rates-{TOWNSHIP}-unit-{}-{}.csv", s.from, s.to));
    assert!(csv.content.starts_with("\u{feff}".as_bytes()), "a byte-order mark for Excel");
    let text = String::from_utf8(csv.content).unwrap();
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), supervision::export::HEADERS);
    let records: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    let line = |rank: &str, key: &str, f: &RateRow| {
        let pct = |bp: Option<u32>| bp.map_or("—".to_owned(), |bp| format!("{}.{:02}%", bp / 100, bp % 100));
        vec![
            rank.to_owned(),
            key.to_owned(),
            f.accept_due.to_string(),
            f.accept_on_time.to_string(),
            pct(f.accept_on_time_bp),
            f.resolve_due.to_string(),
            f.resolve_on_time.to_string(),
            pct(f.resolve_on_time_bp),
            f.visits.to_string(),
            f.satisfied.to_string(),
            f.basically_satisfied.to_string(),
            pct(f.satisfaction_bp),
            f.yellow.to_string(),
            f.red.to_string(),
            f.score.to_string(),
        ]
    };
    let mut want: Vec<Vec<String>> = by_unit.rows.iter().map(|r| line(&r.rank.to_string(), &r.key, r)).collect();
    want.push(line("", supervision::export::TOTAL, by_unit.total.as_ref().unwrap()));
    assert_eq!(records, want);
    assert_eq!(records[0][4], "66.67%");

    // The XLSX is a workbook: a zip holding the first worksheet.
    let xlsx = s
        .supervision
        .export_rates(ExportRatesRequest {
            node_code: TOWNSHIP.into(),
            by: "area".into(),
            from: s.from.clone(),
            to: s.to.clone(),
            format: "xlsx".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(xlsx.content.starts_with(b"PK"), "a zip");
    assert!(xlsx.filename.ends_with(".xlsx"));
    let zip = zip::ZipArchive::new(std::io::Cursor::new(xlsx.content)).unwrap();
    let names: Vec<String> = zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    assert!(names.iter().any(|n| n == "xl/worksheets/sheet1.xml"), "{names:?}");

    let Suite { node, .. } = s;
    node.stop().await;
}

#[tokio::test]
async fn bad_requests_name_their_field_and_a_node_outside_scope_is_refused() {
    let mut s = Suite::boot().await;
    let ok = s.request(TOWNSHIP, "unit");
    for (case, request, field) in [
        ("from = to", GetRatesRequest { to: ok.from.clone(), ..ok.clone() }, "to"),
        ("from after to", GetRatesRequest { from: ok.to.clone(), to: ok.from.clone(), ..ok.clone() }, "to"),
        ("over a year", GetRatesRequest { from: "2024-01-01".into(), to: "2025-01-03".into(), ..ok.clone() }, "to"),
        ("no date", GetRatesRequest { from: "yesterday".into(), ..ok.clone() }, "from"),
        ("short node", GetRatesRequest { node_code: "5329".into(), ..ok.clone() }, "node_code"),
        ("letters", GetRatesRequest { node_code: "53290100100x".into(), ..ok.clone() }, "node_code"),
        ("by", GetRatesRequest { by: "grid".into(), ..ok.clone() }, "by"),
    ] {
        let status = s.supervision.get_rates(request).await.expect_err(case);
        assert_refused(case, &status, Code::InvalidArgument, field);
    }
    let export = ExportRatesRequest {
        node_code: TOWNSHIP.into(),
        by: "unit".into(),
        from: ok.from.clone(),
        to: ok.to.clone(),
        format: "pdf".into(),
    };
    let status = s.supervision.export_rates(export).await.expect_err("pdf");
    assert_refused("format", &status, Code::InvalidArgument, "format");

    // A supervisor of another county may not see this township's rates; one of the township may.
    let url = s.node.url();
    let token = kit::testing::keys().token("p-1", &[("supervisor", "532902000000")]);
    let mut other = SupervisionClient::new(kit::testing::connect_as(&url, &token).await);
    let status = other.get_rates(ok.clone()).await.expect_err("another county");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let token = kit::testing::keys().token("p-2", &[("supervisor", TOWNSHIP)]);
    let mut own = SupervisionClient::new(kit::testing::connect_as(&url, &token).await);
    let table = own.get_rates(ok).await.unwrap().into_inner();
    assert!(table.rows.is_empty(), "nothing happened yet");
    assert_eq!(table.total.unwrap().accept_on_time_bp, None, "a rate over nothing is absent");

    let Suite { node, .. } = s;
    node.stop().await;
}
