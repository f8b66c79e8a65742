//! Working-day clocks against real PostgreSQL, NATS and gRPC: the calendar imported per center and inherited
//! down the tree, deadlines counted in working days from the case's policy version, and a rejected return
//! restarting the accept clock.

#![allow(clippy::unwrap_used)]

use crate::common;

use chrono::{TimeZone, Utc};
use common::{Node, await_deadlines, await_handled, dispatched, supervision};
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, assert_refused, keys};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseRegistered, CaseReturned, Envelope, ReturnRejected};
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::supervision::v1::{AcknowledgeSlipRequest, GetSlipPdfRequest, ImportCalendarRequest, ListSlipsRequest};
use tonic::Code;
use uuid::Uuid;

const COUNTY: &str = "532901000000";
const VILLAGE: &str = "532901003001";

async fn as_(node: &Node, person: &str, grants: &[(&str, &str)]) -> SupervisionClient<Channel> {
    SupervisionClient::new(kit::testing::connect_as(&node.url(), &keys().token(person, grants)).await)
}

/// A handler of `unit` (a unit-scoped grant).
async fn as_unit(node: &Node, person: &str, unit: &str) -> SupervisionClient<Channel> {
    let grant = kit::auth::Grant { role: "handler".into(), scope: String::new(), unit: unit.into() };
    SupervisionClient::new(kit::testing::connect_as(&node.url(), &keys().token_with(person, vec![grant])).await)
}

async fn calendar_rows(infra: &TestInfra, center: &str) -> i64 {
    let pool = infra.pool(supervision::NAME).await;
    sqlx::query_scalar("SELECT count(*) FROM calendar_days WHERE center_code = $1")
        .bind(center)
        .fetch_one(&pool)
        .await
        .unwrap()
}

fn import(center: &str, rows: &str) -> ImportCalendarRequest {
    ImportCalendarRequest { center_code: center.into(), csv: format!("date,kind,name\n{rows}") }
}

#[tokio::test]
async fn calendars_import_whole_or_not_at_all_within_scope() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    assert_eq!(calendar_rows(&infra, "").await, 72, "the shipped 2025–2026 schedule seeds the national calendar");
    let mut prefecture = as_(&node, "pref-admin", &[("business_admin", "532900000000")]).await;

    // A duplicate day on line 3 refuses the file, naming the line; nothing is written.
    let bad = import(COUNTY, "2025-03-03,holiday,三月街\n2025-03-03,holiday,三月街");
    let refused = prefecture.import_calendar(bad).await.unwrap_err();
    assert_refused("duplicate", &refused, Code::InvalidArgument, "csv");
    assert!(refused.message().contains("line 3"), "{refused:?}");
    for (name, rows) in [
        ("weekday make-up", "2025-10-09,workday,国庆节"),
        ("bad date", "2025-02-30,holiday,x"),
        ("nul", "2025-03-03,holiday,三月\0街"),
        ("empty", ""),
    ] {
        let status = prefecture.import_calendar(import(COUNTY, rows)).await.unwrap_err();
        assert_refused(name, &status, Code::InvalidArgument, "csv");
    }
    let status = prefecture.import_calendar(import("5329", "2025-03-03,holiday,x")).await.unwrap_err();
    assert_refused("center", &status, Code::InvalidArgument, "center_code");
    assert_eq!(calendar_rows(&infra, COUNTY).await, 0);

    // 三月街民族节, Dali's own holiday: the county's rows for 2025, then replaced whole by a corrected file.
    let done = prefecture.import_calendar(import(COUNTY, "2025-04-11,holiday,三月街 🎉")).await.unwrap().into_inner();
    assert_eq!((done.rows, done.years.clone(), done.replaced), (1, vec![2025], 0));
    let fixed = "2025-04-11,holiday,三月街\n2025-04-12,holiday,三月街\n2025-04-13,workday,三月街调休";
    let done = prefecture.import_calendar(import(COUNTY, fixed)).await.unwrap().into_inner();
    assert_eq!((done.rows, done.replaced), (3, 1));
    assert_eq!(calendar_rows(&infra, COUNTY).await, 3);

    // A county's administrator keeps to the county; the national calendar needs the prefecture or above.
    let mut county = as_(&node, "county-admin", &[("business_admin", COUNTY)]).await;
    county.import_calendar(import(COUNTY, "2026-04-30,holiday,三月街")).await.unwrap();
    let national = county.import_calendar(import("", "2026-04-30,holiday,三月街")).await.unwrap_err();
    assert_eq!(national.code(), Code::PermissionDenied, "{national:?}");
    let other = county.import_calendar(import("532922000000", "2026-04-30,holiday,x")).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    let mut clerk = as_(&node, "clerk", &[("intake_clerk", "532901003000")]).await;
    let status = clerk.import_calendar(import(COUNTY, "2026-05-01,holiday,x")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(calendar_rows(&infra, "").await, 72, "the national calendar is untouched");
    node.stop().await;
}

/// An event of the case as if it happened at `at`.
async fn publish_at(infra: &TestInfra, case_id: Uuid, body: Body, at: chrono::DateTime<Utc>) -> String {
    let envelope = Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: case_id.to_string(),
        occurred_at_ms: at.timestamp_millis(),
        actor: "routing".into(),
        body: Some(body),
    };
    infra.publish_envelope(&envelope).await;
    envelope.event_id
}

fn registered() -> Body {
    Body::CaseRegistered(CaseRegistered {
        case_no: "532901003-20250930-00001".into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        village_code: VILLAGE.into(),
        area_path: vec![
            VILLAGE.into(),
            "532901003000".into(),
            COUNTY.into(),
            "532900000000".into(),
            "530000000000".into(),
        ],
        center_code: "532901003000".into(),
        ..Default::default()
    })
}

/// (clock, due_at in Beijing time, policy version) of the task's accept deadline.
async fn accept_deadline(infra: &TestInfra, task_id: &str) -> (String, String, i32) {
    let pool = infra.pool(supervision::NAME).await;
    let (clock, due, version): (String, chrono::DateTime<Utc>, i32) =
        sqlx::query_as("SELECT clock, due_at, policy_version FROM deadlines WHERE task_id = $1 AND stage = 'accept'")
            .bind(task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    (clock, kit::time::local(due), version)
}

#[tokio::test]
async fn the_accept_clock_counts_working_days_of_the_cases_place() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    // Tuesday 30 September 2025, 10:00 in Dali: 1–8 October are the National Day holiday.
    let at = kit::time::shanghai().with_ymd_and_hms(2025, 9, 30, 10, 0, 0).unwrap().with_timezone(&Utc);
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    publish_at(&infra, case_id, registered(), at).await;
    let seen = publish_at(&infra, case_id, dispatched(&task_id, "532901003000", 1), at).await;
    await_handled(&infra, &seen).await;
    let deadline = accept_deadline(&infra, &task_id).await;
    assert_eq!(deadline, ("working_days".into(), "2025-10-09T10:00:00+08:00".into(), 1));

    // The county makes Thursday 9 October a local holiday: a case of its village is due a day later; the
    // first case keeps the deadline its clock started with.
    let mut admin = as_(&node, "county-admin", &[("business_admin", COUNTY)]).await;
    admin.import_calendar(import(COUNTY, "2025-10-09,holiday,地方节日")).await.unwrap();
    let (second, second_task) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    publish_at(&infra, second, registered(), at).await;
    let seen = publish_at(&infra, second, dispatched(&second_task, "532901003000", 1), at).await;
    await_handled(&infra, &seen).await;
    assert_eq!(accept_deadline(&infra, &second_task).await.1, "2025-10-10T10:00:00+08:00");
    assert_eq!(accept_deadline(&infra, &task_id).await.1, "2025-10-09T10:00:00+08:00");
    node.stop().await;
}

#[tokio::test]
async fn a_rejected_return_restarts_the_accept_clock() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    let start = Utc::now() - chrono::Duration::days(3);
    publish_at(&infra, case_id, registered(), start).await;
    publish_at(&infra, case_id, dispatched(&task_id, "532901003000", 1), start).await;
    let returned =
        CaseReturned { task_id: task_id.clone(), reason_code: "not_local".into(), reason: "属地不符".into() };
    publish_at(&infra, case_id, Body::CaseReturned(returned), start + chrono::Duration::hours(1)).await;
    await_deadlines(&infra, case_id, &[("accept", "cancelled")]).await;
    let rejected_at = Utc::now();
    let rejected = ReturnRejected { task_id: task_id.clone(), note: "属地明确，请办理".into() };
    publish_at(&infra, case_id, Body::ReturnRejected(rejected), rejected_at).await;
    await_deadlines(&infra, case_id, &[("accept", "pending")]).await;
    let pool = infra.pool(supervision::NAME).await;
    let started: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT started_at FROM deadlines WHERE task_id = $1 AND stage = 'accept'")
            .bind(&task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(started.timestamp_millis(), rejected_at.timestamp_millis(), "the clock restarts at the rejection");
    node.stop().await;
}

/// (grade, number) of the case's slips, in issue order.
async fn slips(infra: &TestInfra, case_id: Uuid) -> Vec<(String, String)> {
    let pool = infra.pool(supervision::NAME).await;
    sqlx::query_as("SELECT grade, number FROM slips WHERE case_id = $1 ORDER BY issued_at, number")
        .bind(case_id)
        .fetch_all(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_grade_is_issued_once_in_order_across_a_restart() {
    let infra = common::infra().await;
    let first = supervision(&infra).await;
    // 4 s to accept: the reminder at 80 % (3.2 s), the yellow card at 4 s, the red card at 8 s.
    common::set_policy(&infra, "accept", 4).await;
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    let now = Utc::now();
    publish_at(&infra, case_id, registered(), now).await;
    publish_at(&infra, case_id, dispatched(&task_id, "532901003000", 1), now).await;
    kit::testing::eventually("the yellow card", 20, || async {
        (slips(&infra, case_id).await.len() == 2).then_some(())
    })
    .await;
    // Down across the red card's due time; started again, it issues the red card once.
    first.stop().await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let second = supervision(&infra).await;
    kit::testing::eventually("the red card", 20, || async { (slips(&infra, case_id).await.len() == 3).then_some(()) })
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let issued = slips(&infra, case_id).await;
    let grades: Vec<&str> = issued.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(grades, ["reminder", "yellow", "red"]);
    let year = Utc::now().with_timezone(&kit::time::shanghai()).format("%Y").to_string();
    let numbers: Vec<String> = (1..=3).map(|n| format!("532901003-督-{year}-{n:05}")).collect();
    assert_eq!(issued.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(), numbers, "numbered per center and year");
    let overdue = common::bodies(&infra, case_id).await.iter().filter(|b| matches!(b, Body::DeadlineMissed(_))).count();
    assert_eq!(overdue, 1, "the yellow card alone is the missed deadline");

    // The unit lists, prints and acknowledges its slips; another unit sees none of them.
    let mut unit = as_unit(&second, "h-1", "532901003000").await;
    let listed = unit.list_slips(ListSlipsRequest { case_id: case_id.to_string() }).await.unwrap().into_inner();
    let red = listed.slips.last().unwrap().clone();
    assert_eq!((red.grade().code(), red.copy_to.as_str()), ("red", COUNTY), "the red card goes up a level");
    let pdf = unit.get_slip_pdf(GetSlipPdfRequest { number: red.number.clone() }).await.unwrap().into_inner();
    let again = unit.get_slip_pdf(GetSlipPdfRequest { number: red.number.clone() }).await.unwrap().into_inner();
    assert_eq!(pdf.pdf, again.pdf, "the same bytes each time");
    let text = common::pdf_text(&pdf.pdf);
    let due_day = red.due_at.get(..10).unwrap().replacen('-', "年", 1).replacen('-', "月", 1);
    for expected in [red.number.as_str(), "532901003000", "红牌督办", "督办提示单", &red.verification_code, &due_day]
    {
        assert!(text.contains(expected), "{expected:?} not in the printed slip:\n{text}");
    }
    let ack = unit.acknowledge_slip(AcknowledgeSlipRequest { number: red.number.clone() }).await.unwrap().into_inner();
    assert_eq!(ack.slip.unwrap().acknowledged_by, "h-1");
    let twice = unit.acknowledge_slip(AcknowledgeSlipRequest { number: red.number.clone() }).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    let mut other = as_unit(&second, "h-2", "532901004000").await;
    let refused = other.acknowledge_slip(AcknowledgeSlipRequest { number: red.number.clone() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let hidden = other.get_slip_pdf(GetSlipPdfRequest { number: red.number.clone() }).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    for bad in ["", "\0", &"9".repeat(100)] {
        let status = unit.get_slip_pdf(GetSlipPdfRequest { number: bad.into() }).await.unwrap_err();
        assert_refused("number", &status, Code::InvalidArgument, "number");
    }
    let unknown = unit.get_slip_pdf(GetSlipPdfRequest { number: "532901003-督-1999-00001".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    second.stop().await;
}

#[tokio::test]
async fn a_stage_done_late_stops_the_red_card() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    // 8 s to accept: the yellow card at 8 s, the red card at 16 s; the task is accepted in between.
    common::set_policy(&infra, "accept", 8).await;
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    let started = Utc::now();
    publish_at(&infra, case_id, registered(), started).await;
    publish_at(&infra, case_id, dispatched(&task_id, "532901003000", 1), started).await;
    kit::testing::eventually("the yellow card", 30, || async {
        (slips(&infra, case_id).await.len() == 2).then_some(())
    })
    .await;
    publish_at(&infra, case_id, common::accepted(&task_id, "h-1"), Utc::now()).await;
    await_deadlines(&infra, case_id, &[("accept", "fired"), ("resolve", "pending")]).await;
    let red_due = started + chrono::Duration::seconds(16);
    let wait = (red_due - Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_secs(3);
    tokio::time::sleep(wait).await;
    let grades: Vec<String> = slips(&infra, case_id).await.into_iter().map(|(g, _)| g).collect();
    assert_eq!(grades, ["reminder", "yellow"], "no red card once the stage is done");
    let pool = infra.pool(supervision::NAME).await;
    let done: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT done_at FROM deadlines WHERE task_id = $1 AND stage = 'accept'")
            .bind(&task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(done.is_some(), "a late 签收 is recorded, for the on-time rate");
    node.stop().await;
}

#[tokio::test]
async fn policy_versions_are_added_whole_by_the_prefecture_and_new_cases_take_them() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let header = "category_prefix,urgency,stage,clock,amount";
    let rules = format!(
        "{header}\n,*,accept,working_days,2d\n,*,resolve,working_days,10d\n0102,urgent,resolve,calendar_hours,12h"
    );
    let request = |rules: &str| proto::supervision::v1::AddTimePolicyRequest {
        rules: rules.into(),
        score_yellow: Some(-3),
        max_extensions: Some(1),
        ..Default::default()
    };
    let mut county = as_(&node, "county-admin", &[("business_admin", COUNTY)]).await;
    let denied = county.add_time_policy(request(&rules)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "the policy is the deployment's: {denied:?}");
    let mut prefecture = as_(&node, "pref-admin", &[("business_admin", "532900000000")]).await;
    for (name, bad) in [
        ("bad line", format!("{header}\n,*,accept,working_days,2d\n,*,resolve,fortnights,1")),
        ("no fallback", format!("{header}\n,*,accept,working_days,2d\n01,*,resolve,working_days,5d")),
        ("nul", format!("{header}\n,*,accept,working_days,2d\0")),
    ] {
        let status = prefecture.add_time_policy(request(&bad)).await.unwrap_err();
        assert_refused(name, &status, Code::InvalidArgument, "rules");
    }
    let out_of_bounds =
        proto::supervision::v1::AddTimePolicyRequest { remind_at_percent: Some(100), ..request(&rules) };
    let status = prefecture.add_time_policy(out_of_bounds).await.unwrap_err();
    assert_refused("percent", &status, Code::InvalidArgument, "remind_at_percent");

    let added = prefecture.add_time_policy(request(&rules)).await.unwrap().into_inner().policy.unwrap();
    assert_eq!((added.version, added.score_yellow, added.max_extensions, added.remind_at_percent), (2, -3, 1, 80));
    let listed = prefecture.list_time_policies(proto::supervision::v1::ListTimePoliciesRequest {}).await.unwrap();
    let versions: Vec<i32> = listed.into_inner().policies.iter().map(|p| p.version).collect();
    assert_eq!(versions, [2, 1]);

    // A case dispatched now runs on version 2: two working days to accept.
    let at = kit::time::shanghai().with_ymd_and_hms(2025, 9, 29, 10, 0, 0).unwrap().with_timezone(&Utc);
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    publish_at(&infra, case_id, registered(), at).await;
    let seen = publish_at(&infra, case_id, dispatched(&task_id, "532901003000", 1), at).await;
    await_handled(&infra, &seen).await;
    // Monday 29 September 10:00 + 2 working days: Tuesday the 30th is one, then the holiday runs to 8 October.
    assert_eq!(accept_deadline(&infra, &task_id).await, ("working_days".into(), "2025-10-09T10:00:00+08:00".into(), 2));
    node.stop().await;
}
