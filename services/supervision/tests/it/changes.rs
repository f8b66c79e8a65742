//! 延期 and 挂账 against real PostgreSQL, NATS and gRPC: the unit asks, the center decides once, an extension
//! moves the due time (capped by the policy), a pause holds every grade until resumed and gives the time back;
//! and the 《工作任务交办单》 each dispatch carries.

#![allow(clippy::unwrap_used)]

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::{Node, await_handled, dispatched, supervision};
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, assert_refused, eventually, keys};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseDispatched, CaseRegistered, Envelope};
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::supervision::v1::{
    AcknowledgeSlipRequest, DecideClockChangeRequest, GetSlipPdfRequest, ListClockChangesRequest, ListSlipsRequest,
    RequestClockChangeRequest, ResumeClockRequest,
};
use tonic::Code;
use uuid::Uuid;

const CENTER: &str = "532901003000";
const VILLAGE: &str = "532901003001";
const UNIT: &str = "532901003000-SFS";

async fn as_(node: &Node, person: &str, grants: &[(&str, &str)]) -> SupervisionClient<Channel> {
    SupervisionClient::new(kit::testing::connect_as(&node.url(), &keys().token(person, grants)).await)
}

/// A handler of the unit.
async fn as_handler(node: &Node, person: &str) -> SupervisionClient<Channel> {
    let grant = kit::auth::Grant { role: "handler".into(), scope: String::new(), unit: UNIT.into() };
    SupervisionClient::new(kit::testing::connect_as(&node.url(), &keys().token_with(person, vec![grant])).await)
}

async fn publish(infra: &TestInfra, case_id: Uuid, body: Body, at: DateTime<Utc>) -> String {
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

/// A case of the village, dispatched to the unit now with a numbered task slip; returns (case, task).
async fn dispatched_case(infra: &TestInfra) -> (Uuid, String) {
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    let now = Utc::now();
    let registered = CaseRegistered {
        case_no: "532901003-20261128-00007".into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        village_code: VILLAGE.into(),
        area_path: vec![VILLAGE.into(), CENTER.into(), "532901000000".into(), "532900000000".into()],
        center_code: CENTER.into(),
        center_name: "平坡镇".into(),
        ..Default::default()
    };
    publish(infra, case_id, Body::CaseRegistered(registered), now).await;
    let Body::CaseDispatched(d) = dispatched(&task_id, UNIT, 1) else { unreachable!() };
    let d = CaseDispatched {
        slip_no: format!("JB-532901003-20261128-{:04}", rand_seq()),
        unit_name: "平坡镇司法所".into(),
        ..d
    };
    let seen = publish(infra, case_id, Body::CaseDispatched(d), now).await;
    await_handled(infra, &seen).await;
    (case_id, task_id)
}

fn rand_seq() -> u16 {
    (Uuid::new_v4().as_u128() % 9000) as u16 + 1
}

/// (due_at, next_grade, paused) of the task's stage.
async fn clock(infra: &TestInfra, task_id: &str, stage: &str) -> (DateTime<Utc>, String, bool) {
    let pool = infra.pool(supervision::NAME).await;
    sqlx::query_as("SELECT due_at, next_grade, paused_at IS NOT NULL FROM deadlines WHERE task_id = $1 AND stage = $2")
        .bind(task_id)
        .bind(stage)
        .fetch_one(&pool)
        .await
        .unwrap()
}

fn ask(task_id: &str, kind: &str, reason: &str, new_due: Option<DateTime<Utc>>) -> RequestClockChangeRequest {
    RequestClockChangeRequest {
        task_id: task_id.into(),
        stage: "accept".into(),
        kind: proto::json::wire::<proto::supervision::v1::ChangeKind>(kind),
        reason: reason.into(),
        new_due_at: new_due.map(|d| d.to_rfc3339()).unwrap_or_default(),
    }
}

fn decide(id: &str, approve: bool, note: &str) -> DecideClockChangeRequest {
    DecideClockChangeRequest { id: id.into(), approve, note: note.into() }
}

/// The `action`s of the case's `case.supervised` events, in order.
async fn supervised(infra: &TestInfra, case_id: Uuid) -> Vec<String> {
    common::bodies(infra, case_id)
        .await
        .into_iter()
        .filter_map(|b| match b {
            Body::CaseSupervised(s) => Some(s.action),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn extensions_are_asked_decided_once_and_capped() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let (case_id, task_id) = dispatched_case(&infra).await;
    let (due, _, _) = clock(&infra, &task_id, "accept").await;
    let mut unit = as_handler(&node, "h-1").await;
    let mut center = as_(&node, "d-1", &[("dispatcher", CENTER)]).await;

    // Bad input names its field; nothing is written.
    for (field, req) in [
        ("new_due_at", ask(&task_id, "extension", "等鉴定", Some(due - Duration::hours(1)))),
        ("new_due_at", ask(&task_id, "extension", "等鉴定", None)),
        ("reason", ask(&task_id, "pause", "", None)),
        ("reason", ask(&task_id, "pause", "等\0鉴定", None)),
        ("kind", ask(&task_id, "later", "x", None)),
        ("task_id", ask("", "pause", "x", None)),
    ] {
        let status = unit.request_clock_change(req).await.unwrap_err();
        assert_refused(field, &status, Code::InvalidArgument, field);
    }
    let unknown = unit.request_clock_change(ask("no-such-task", "pause", "x", None)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let other_unit = kit::auth::Grant { role: "handler".into(), scope: String::new(), unit: "other-unit".into() };
    let mut other = SupervisionClient::new(
        kit::testing::connect_as(&node.url(), &keys().token_with("h-8", vec![other_unit])).await,
    );
    let denied = other.request_clock_change(ask(&task_id, "pause", "x", None)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // The unit asks for two more days; a second request waits for the first.
    let first = ask(&task_id, "extension", "需现场勘验 🏔", Some(due + Duration::days(2)));
    let asked = unit.request_clock_change(first.clone()).await.unwrap().into_inner().change.unwrap();
    assert_eq!((asked.state().code(), asked.kind().code()), ("pending", "extension"));
    let waiting = unit.request_clock_change(ask(&task_id, "pause", "x", None)).await.unwrap_err();
    assert_eq!(waiting.code(), Code::FailedPrecondition, "{waiting:?}");

    // The unit cannot decide; the requester cannot decide their own, even holding the center's role.
    let own = as_(&node, "h-1", &[("dispatcher", CENTER)]).await.decide_clock_change(decide(&asked.id, true, "")).await;
    assert_eq!(own.unwrap_err().code(), Code::PermissionDenied);
    let reject_bare = center.decide_clock_change(decide(&asked.id, false, "")).await.unwrap_err();
    assert_refused("a rejection says why", &reject_bare, Code::InvalidArgument, "note");

    // Approved once: the due time moves by two days; a second decision is refused.
    let approved = center.decide_clock_change(decide(&asked.id, true, "同意")).await.unwrap().into_inner();
    let approved = approved.change.unwrap();
    assert_eq!(approved.state().code(), "approved");
    assert_eq!(clock(&infra, &task_id, "accept").await.0, due + Duration::days(2));
    let again = center.decide_clock_change(decide(&asked.id, false, "改主意")).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    // 50 deciders at once on a fresh request: exactly one decision lands.
    let second = unit
        .request_clock_change(ask(&task_id, "extension", "再延", Some(due + Duration::days(3))))
        .await
        .unwrap()
        .into_inner()
        .change
        .unwrap();
    let calls = (0..50).map(|_| {
        let mut c = center.clone();
        let id = second.id.clone();
        async move { c.decide_clock_change(decide(&id, true, "")).await }
    });
    let results = futures_join(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "one decision: {:?}", results.iter().filter_map(|r| r.as_ref().err()).collect::<Vec<_>>());
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code() == Code::FailedPrecondition));

    // The policy allows two extensions: a third is refused, naming the cap.
    let third = ask(&task_id, "extension", "三延", Some(due + Duration::days(4)));
    let capped = unit.request_clock_change(third).await.unwrap_err();
    assert_eq!(capped.code(), Code::FailedPrecondition);
    assert!(capped.message().contains("max_extensions"), "{capped:?}");

    let history = unit.list_clock_changes(ListClockChangesRequest { case_id: case_id.to_string() }).await.unwrap();
    let states: Vec<String> = history.into_inner().changes.into_iter().map(|c| c.state().code().to_owned()).collect();
    assert_eq!(states, ["approved", "approved"]);
    eventually("the steps in the case's events", 20, || async {
        let got = supervised(&infra, case_id).await;
        (got == ["extension_requested", "extended", "extension_requested", "extended"]).then_some(())
    })
    .await;
    node.stop().await;
}

async fn futures_join<F, T>(calls: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_pause_holds_every_grade_and_resuming_gives_the_time_back() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    // 6 s to accept: the reminder at 4.8 s, the yellow card at 6 s.
    common::set_policy(&infra, "accept", 6).await;
    let (case_id, task_id) = dispatched_case(&infra).await;
    let (due, _, _) = clock(&infra, &task_id, "accept").await;
    let mut unit = as_handler(&node, "h-1").await;
    let mut center = as_(&node, "s-1", &[("supervisor", CENTER)]).await;
    let asked = unit.request_clock_change(ask(&task_id, "pause", "当事人住院", None)).await.unwrap().into_inner();
    let paused_at = Utc::now();
    center.decide_clock_change(decide(&asked.change.unwrap().id, true, "同意挂账")).await.unwrap();
    assert!(clock(&infra, &task_id, "accept").await.2, "paused");
    let extend = ask(&task_id, "extension", "x", Some(due + Duration::days(1)));
    let while_paused = unit.request_clock_change(extend).await.unwrap_err();
    assert_eq!(while_paused.code(), Code::FailedPrecondition);

    // Past the old due time: no grade while the clock stands still.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let pool = infra.pool(supervision::NAME).await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM slips WHERE task_id = $1")
            .bind(&task_id)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 0, "no slip while paused");

    let resume =
        |task: &str| ResumeClockRequest { task_id: task.into(), stage: "accept".into(), note: "已出院".into() };
    let denied = unit.resume_clock(resume(&task_id)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "the center resumes");
    let resumed = center.resume_clock(resume(&task_id)).await.unwrap().into_inner().change.unwrap();
    assert_eq!(resumed.state().code(), "resumed");
    let (new_due, _, paused) = clock(&infra, &task_id, "accept").await;
    assert!(!paused);
    let stood = Utc::now() - paused_at;
    let moved = new_due - due;
    assert!(moved >= Duration::seconds(7) && moved <= stood + Duration::seconds(1), "moved {moved}, stood {stood}");
    let twice = center.resume_clock(resume(&task_id)).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // The time left runs again: the reminder and the yellow card follow, once each.
    eventually("the yellow card after the resume", 30, || async { (count().await == 2).then_some(()) }).await;
    eventually("the steps in the case's events", 20, || async {
        let got = supervised(&infra, case_id).await;
        (got == ["pause_requested", "paused", "resumed", "reminder", "yellow"]).then_some(())
    })
    .await;
    node.stop().await;
}

#[tokio::test]
async fn each_dispatch_carries_a_printable_task_slip() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let (case_id, _task_id) = dispatched_case(&infra).await;
    let mut unit = as_handler(&node, "h-1").await;
    let listed = unit.list_slips(ListSlipsRequest { case_id: case_id.to_string() }).await.unwrap().into_inner();
    assert_eq!(listed.slips.len(), 1);
    let slip = listed.slips[0].clone();
    assert_eq!((slip.kind.as_str(), slip.unit_name.as_str()), ("task", "平坡镇司法所"));
    assert!(slip.number.starts_with("JB-"), "{slip:?}");
    let pdf = unit.get_slip_pdf(GetSlipPdfRequest { number: slip.number.clone() }).await.unwrap().into_inner();
    let again = unit.get_slip_pdf(GetSlipPdfRequest { number: slip.number.clone() }).await.unwrap().into_inner();
    assert_eq!(pdf.pdf, again.pdf, "the same bytes each time");
    let text = common::pdf_text(&pdf.pdf);
    let due_day = slip.due_at.get(..10).unwrap().replacen('-', "年", 1).replacen('-', "月", 1);
    for expected in [
        "工作任务交办单",
        slip.number.as_str(),
        "平坡镇司法所",
        "平坡镇综治中心",
        "5个工作日",
        &due_day,
        &slip.verification_code,
    ] {
        assert!(text.contains(expected), "{expected:?} not in the printed task slip:\n{text}");
    }
    let ack = unit.acknowledge_slip(AcknowledgeSlipRequest { number: slip.number.clone() }).await.unwrap_err();
    assert_eq!(ack.code(), Code::FailedPrecondition, "a task slip is acknowledged by 签收: {ack:?}");
    let mut other = as_(&node, "c-1", &[("intake_clerk", "532922000000")]).await;
    let hidden = other.get_slip_pdf(GetSlipPdfRequest { number: slip.number.clone() }).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    node.stop().await;
}

fn joint(task_id: &str, co_id: &str, unit: &str, action: &str) -> Body {
    Body::CaseJoint(proto::events::v1::CaseJoint {
        task_id: task_id.into(),
        co_id: co_id.into(),
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
        unit_code: unit.into(),
        unit_name: format!("{unit}局"),
        action: action.into(),
        note: String::new(),
    })
}

#[tokio::test]
async fn a_summoned_unit_is_supervised_until_it_reports_in() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    // 3 s to report in (报到): the yellow card at 3 s.
    common::set_policy(&infra, "report", 3).await;
    let (case_id, task_id) = dispatched_case(&infra).await;
    let (late, prompt) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let now = Utc::now();
    publish(&infra, case_id, joint(&task_id, &late, "zjj", "summoned"), now).await;
    publish(&infra, case_id, joint(&task_id, &prompt, "gtj", "summoned"), now).await;
    let seen = publish(&infra, case_id, joint(&task_id, &prompt, "gtj", "reported_in"), now).await;
    await_handled(&infra, &seen).await;
    assert_eq!(clock(&infra, &prompt, "report").await.1, "", "reported in: no grade left");

    // 住建局 never reports in: its yellow card is addressed to it, once.
    let pool = infra.pool(supervision::NAME).await;
    let slips = || async {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT task_id, grade, unit_code FROM slips WHERE case_id = $1 AND stage = 'report' ORDER BY issued_at",
        )
        .bind(case_id)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    eventually("the 报到 yellow card", 20, || async { (slips().await.len() == 2).then_some(()) }).await;
    let got = slips().await;
    assert_eq!(
        got.iter().map(|(t, g, u)| (t.as_str(), g.as_str(), u.as_str())).collect::<Vec<_>>(),
        [(late.as_str(), "reminder", "zjj"), (late.as_str(), "yellow", "zjj")]
    );

    // The task slip lists the lead and the units summoned to co-handle.
    let mut unit = as_handler(&node, "h-1").await;
    let listed = unit.list_slips(ListSlipsRequest { case_id: case_id.to_string() }).await.unwrap().into_inner();
    let task_slip = listed.slips.iter().find(|s| s.kind == "task").unwrap().number.clone();
    let pdf = unit.get_slip_pdf(GetSlipPdfRequest { number: task_slip }).await.unwrap().into_inner();
    let text = common::pdf_text(&pdf.pdf);
    assert!(text.contains("主办") && text.contains("zjj局") && text.contains("gtj局"), "{text}");
    node.stop().await;
}

#[tokio::test]
async fn a_report_in_clock_survives_a_restart_and_fires_once() {
    let infra = common::infra().await;
    let first = supervision(&infra).await;
    // 4 s to report in: reminder at 3.2 s, yellow at 4 s, red at 8 s.
    common::set_policy(&infra, "report", 4).await;
    let (case_id, task_id) = dispatched_case(&infra).await;
    let co = Uuid::new_v4().to_string();
    let seen = publish(&infra, case_id, joint(&task_id, &co, "zjj", "summoned"), Utc::now()).await;
    await_handled(&infra, &seen).await;
    // Down across the reminder, the yellow and the red card's due times; started again, each is issued once.
    first.stop().await;
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    let second = supervision(&infra).await;
    let pool = infra.pool(supervision::NAME).await;
    let grades = || async {
        sqlx::query_scalar::<_, String>("SELECT grade FROM slips WHERE task_id = $1 ORDER BY issued_at, number")
            .bind(&co)
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    eventually("the 报到 red card after the restart", 20, || async { (grades().await.len() == 3).then_some(()) }).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(grades().await, ["reminder", "yellow", "red"], "each grade once");
    second.stop().await;
}
