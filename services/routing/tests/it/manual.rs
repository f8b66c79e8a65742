//! A dispatcher's hand on a case: dispatch and re-dispatch by hand (each hop its own 交办单), 召回, 上报 and 下派
//! (越级 only for urgent categories), the scope and registry checks, a closed case left alone, fifty
//! dispatchers racing on one case; and dispatch by rule skipping departments that are retired or off duty.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{CENTER, Harness, VILLAGE, boot, registered};
use kit::auth::Grant;
use kit::testing::{assert_refused, eventually, keys};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseClosed, CaseEscalated, CaseRecalled};
use proto::routing::v1::routing_client::RoutingClient;
use proto::routing::v1::{DispatchCaseRequest, EscalateCaseRequest, PutRuleRequest, RecallTaskRequest, Rule, Task};
use tonic::Code;
use uuid::Uuid;

const TOWNSHIP: &str = "532901003000";
const PREFECTURE: &str = "532900000000";

/// A client for a dispatcher (or another role) scoped at `node`.
async fn as_role(h: &Harness, person: &str, role: &str, node: &str) -> RoutingClient<kit::testing::AuthedChannel> {
    let grant = Grant { role: role.into(), scope: node.into(), unit: String::new() };
    h.as_(&keys().token_with(person, vec![grant])).await
}

fn by_hand(case_id: Uuid, kind: &str, unit: &str, expected: &str) -> DispatchCaseRequest {
    DispatchCaseRequest {
        case_id: case_id.to_string(),
        unit_kind: proto::json::wire::<proto::vocab::v1::UnitKind>(kind),
        unit_code: unit.into(),
        reason: "领导批示, 改由专门部门办理".into(),
        expected_task_id: expected.into(),
    }
}

fn hop(case_id: Uuid, direction: &str, to: &str, expected: &str) -> EscalateCaseRequest {
    EscalateCaseRequest {
        case_id: case_id.to_string(),
        direction: direction.into(),
        to_center_code: to.into(),
        reason: "超出本级处置权限".into(),
        expected_task_id: expected.into(),
    }
}

/// Registers a case of `category` at the village's own center, and waits for its first task.
async fn register_at_village(h: &Harness, category: &str) -> (Uuid, Task) {
    let case_id = Uuid::new_v4();
    let Body::CaseRegistered(mut e) = registered("532901003001-20250807-00001", category, "normal") else {
        unreachable!()
    };
    e.center_code = VILLAGE.into();
    h.infra.publish(case_id, "intake", Body::CaseRegistered(e)).await;
    (case_id, h.task_no(case_id, 1).await)
}

#[tokio::test]
async fn a_dispatcher_overrides_the_rules_and_each_hop_has_its_own_slip() {
    let h = boot().await;
    h.put_rule("neighbours", 5, "0102", "", "judicial-office").await;
    h.department("court", CENTER, "resident", false).await;
    let (case_id, first) = h.register("0102", "normal").await;
    assert_eq!((first.unit_code.as_str(), first.via.as_str()), ("judicial-office", "rule"));
    let mut dispatcher = as_role(&h, "d-county", "dispatcher", CENTER).await;

    let r = dispatcher.dispatch_case(by_hand(case_id, "department", "court", &first.id)).await.unwrap().into_inner();
    let (second, old) = (r.task.unwrap(), r.superseded.unwrap());
    assert_eq!((second.unit_code.as_str(), second.via.as_str(), second.attempt), ("court", "manual", 2));
    assert_eq!(second.dispatch_reason, "领导批示, 改由专门部门办理");
    assert_eq!((second.center_code.as_str(), second.holding_center.as_str()), (CENTER, CENTER));
    assert_ne!(second.slip_no, first.slip_no, "a re-dispatch issues its own 交办单");
    assert!(second.slip_no.ends_with("-0002"), "the center's next slip of the day: {}", second.slip_no);
    assert_eq!((old.id.as_str(), old.state().code()), (first.id.as_str(), "superseded"));
    assert_eq!(old.recall_reason, "领导批示, 改由专门部门办理");

    let recalled = h
        .event("case.recalled", |b| match b {
            Body::CaseRecalled(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!((recalled.task_id.as_str(), recalled.redispatch), (first.id.as_str(), true));
    let dispatched = h.dispatched_event(&second.id).await;
    assert_eq!((dispatched.via.as_str(), dispatched.center_code.as_str()), ("manual", CENTER));
    assert_eq!(dispatched.slip_no, second.slip_no);
    assert_eq!(dispatched.reason, second.dispatch_reason);

    // The dispatcher's view is stale now: naming the superseded task is refused.
    let stale = dispatcher.dispatch_case(by_hand(case_id, "department", "court", &first.id)).await.unwrap_err();
    assert_refused("a stale expected task", &stale, Code::FailedPrecondition, "");
    assert_eq!(h.tasks(case_id).await.len(), 2);
}

#[tokio::test]
async fn a_recalled_case_waits_at_its_center_for_a_dispatch_by_hand() {
    let h = boot().await;
    h.put_rule("neighbours", 5, "0102", "", "judicial-office").await;
    let (case_id, first) = h.register("0102", "normal").await;
    let mut dispatcher = as_role(&h, "d-county", "dispatcher", CENTER).await;
    let recall = RecallTaskRequest { task_id: first.id.clone(), reason: "交办错误 ✋".into() };

    let task = dispatcher.recall_task(recall.clone()).await.unwrap().into_inner().task.unwrap();
    assert_eq!((task.state().code(), task.recall_reason.as_str()), ("superseded", "交办错误 ✋"));
    let e: CaseRecalled = h
        .event("case.recalled", |b| match b {
            Body::CaseRecalled(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!((e.center_code.as_str(), e.redispatch), (CENTER, false));
    let again = dispatcher.recall_task(recall).await.unwrap_err();
    assert_refused("recalling a superseded task", &again, Code::FailedPrecondition, "");

    // Nothing is live: a dispatch naming a task is stale, one naming none is the case's next dispatch.
    let stale = dispatcher.dispatch_case(by_hand(case_id, "center", TOWNSHIP, &first.id)).await.unwrap_err();
    assert_refused("naming a recalled task", &stale, Code::FailedPrecondition, "");
    let next = dispatcher.dispatch_case(by_hand(case_id, "center", TOWNSHIP, "")).await.unwrap().into_inner();
    assert!(next.superseded.is_none());
    let next = next.task.unwrap();
    assert_eq!((next.unit_kind().code(), next.unit_code.as_str(), next.attempt), ("center", TOWNSHIP, 2));
    assert!(next.unit_name.contains("综治中心"), "{}", next.unit_name);
}

#[tokio::test]
async fn cases_go_up_level_by_level_and_down_to_a_center_on_their_path() {
    let h = boot().await;
    h.put_rule("county-bureau", 1, "01", "", "bureau").await;
    let (case_id, first) = register_at_village(&h, "0102").await;
    assert_eq!(first.unit_code, "bureau", "at registration every rule applies");
    let mut township = as_role(&h, "d-township", "dispatcher", TOWNSHIP).await;
    let mut county = as_role(&h, "d-county", "dispatcher", CENTER).await;
    let mut village = as_role(&h, "d-village", "dispatcher", VILLAGE).await;

    // 上报 to the township: the county bureau's rule is not the township's, so the township keeps it (兜底).
    let up = township.escalate_case(hop(case_id, "up", TOWNSHIP, &first.id)).await.unwrap().into_inner();
    let at_township = up.task.unwrap();
    assert_eq!((at_township.unit_code.as_str(), at_township.via.as_str()), (TOWNSHIP, "center"));
    assert_eq!(at_township.holding_center, TOWNSHIP);
    assert!(at_township.slip_no.starts_with("JB-532901003-"), "the township issues it: {}", at_township.slip_no);
    assert_eq!(up.superseded.unwrap().state().code(), "superseded");
    let e: CaseEscalated = h
        .event("case.escalated", |b| match b {
            Body::CaseEscalated(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!((e.direction.as_str(), e.from_center.as_str(), e.to_center.as_str()), ("up", VILLAGE, TOWNSHIP));
    assert_eq!((e.superseded_task_id.as_str(), e.skip_level), (first.id.as_str(), false));

    // The village no longer holds it.
    let gone = village.dispatch_case(by_hand(case_id, "center", VILLAGE, &at_township.id)).await.unwrap_err();
    assert_refused("the village after 上报", &gone, Code::PermissionDenied, "");

    // 上报 again, to the county: its own rules route it.
    let at_county = township.escalate_case(hop(case_id, "up", CENTER, &at_township.id)).await.unwrap();
    let at_county = at_county.into_inner().task.unwrap();
    assert_eq!((at_county.unit_code.as_str(), at_county.via.as_str()), ("bureau", "rule"));
    assert_eq!(at_county.holding_center, CENTER);

    // 下派 skips levels freely, but only to a center over the case's place.
    let elsewhere = county.escalate_case(hop(case_id, "down", "532901003002", &at_county.id)).await.unwrap_err();
    assert_refused("下派 off the case's path", &elsewhere, Code::InvalidArgument, "to_center_code");
    let sideways = county.escalate_case(hop(case_id, "up", TOWNSHIP, &at_county.id)).await.unwrap_err();
    assert_refused("上报 downwards", &sideways, Code::InvalidArgument, "to_center_code");
    let down = county.escalate_case(hop(case_id, "down", VILLAGE, &at_county.id)).await.unwrap().into_inner();
    let back = down.task.unwrap();
    // Back at the registering center, the table it registered under applies again.
    assert_eq!((back.unit_code.as_str(), back.holding_center.as_str()), ("bureau", VILLAGE));
    assert!(back.slip_no.starts_with("JB-532901003001-"), "the village issues it: {}", back.slip_no);
    let tasks = h.tasks(case_id).await;
    let states: Vec<&str> = tasks.iter().map(|t| t.state().code()).collect();
    assert_eq!(states, ["superseded", "superseded", "superseded", "dispatched"], "every hop stays in the file");
    assert!(tasks.iter().all(|t| t.holding_center == VILLAGE), "every task shows who holds the case now");
}

#[tokio::test]
async fn only_urgent_categories_skip_a_level_going_up() {
    let h = boot().await;
    let mut county = as_role(&h, "d-county", "dispatcher", CENTER).await;
    let (dispute, task) = register_at_village(&h, "0102").await;
    let refused = county.escalate_case(hop(dispute, "up", CENTER, &task.id)).await.unwrap_err();
    assert_refused("越级 for a neighbour dispute", &refused, Code::InvalidArgument, "to_center_code");
    assert!(refused.message().contains("越级"), "{}", refused.message());
    let too_high = county.escalate_case(hop(dispute, "up", PREFECTURE, &task.id)).await.unwrap_err();
    assert_refused("two levels up", &too_high, Code::InvalidArgument, "to_center_code");

    let (unrest, task) = register_at_village(&h, "0208").await;
    let up = county.escalate_case(hop(unrest, "up", CENTER, &task.id)).await.unwrap().into_inner().task.unwrap();
    assert_eq!(up.holding_center, CENTER, "涉稳线索 goes straight to the county");
    let e: CaseEscalated = h
        .event("case.escalated of the urgent case", |b| match b {
            Body::CaseEscalated(e) if e.skip_level => Some(e),
            _ => None,
        })
        .await;
    assert_eq!((e.from_center.as_str(), e.to_center.as_str()), (VILLAGE, CENTER));
}

#[tokio::test]
async fn dispatch_stays_within_scope_and_the_registry() {
    let h = boot().await;
    h.department("county-court", CENTER, "resident", false).await;
    h.department("closed-bureau", CENTER, "resident", true).await;
    let (case_id, task) = register_at_village(&h, "0102").await;
    let mut township = as_role(&h, "d-township", "dispatcher", TOWNSHIP).await;
    let t = task.id.as_str();
    for (row, request, code, field) in [
        (
            "a department of the county above",
            by_hand(case_id, "department", "county-court", t),
            Code::InvalidArgument,
            "unit_code",
        ),
        (
            "a department the registry does not know",
            by_hand(case_id, "department", "ghost", t),
            Code::InvalidArgument,
            "unit_code",
        ),
        ("the county center above", by_hand(case_id, "center", CENTER, t), Code::InvalidArgument, "unit_code"),
        (
            "a grid, which has no center",
            by_hand(case_id, "center", "532901003001001", t),
            Code::InvalidArgument,
            "unit_code",
        ),
        (
            "NUL in the reason",
            DispatchCaseRequest { reason: "a\0".into(), ..by_hand(case_id, "center", VILLAGE, t) },
            Code::InvalidArgument,
            "reason",
        ),
        ("an unknown case", by_hand(Uuid::new_v4(), "center", VILLAGE, t), Code::NotFound, ""),
    ] {
        let status = township.dispatch_case(request).await.unwrap_err();
        assert_refused(row, &status, code, field);
    }
    let mut county = as_role(&h, "d-county", "dispatcher", CENTER).await;
    let retired = county.dispatch_case(by_hand(case_id, "department", "closed-bureau", t)).await.unwrap_err();
    assert_refused("a retired department", &retired, Code::InvalidArgument, "unit_code");
    let other_county = as_role(&h, "d-eryuan", "dispatcher", "532930000000").await;
    let hidden = other_county.clone().dispatch_case(by_hand(case_id, "center", VILLAGE, t)).await.unwrap_err();
    assert_refused("another county's dispatcher", &hidden, Code::NotFound, "");
    let clerk = as_role(&h, "c-township", "intake_clerk", TOWNSHIP).await;
    let denied = clerk.clone().dispatch_case(by_hand(case_id, "center", VILLAGE, t)).await.unwrap_err();
    assert_refused("an intake clerk", &denied, Code::PermissionDenied, "");
    let ok = township.dispatch_case(by_hand(case_id, "center", VILLAGE, t)).await.unwrap().into_inner();
    assert_eq!(ok.task.unwrap().unit_code, VILLAGE, "the township dispatches within its subtree");
}

#[tokio::test]
async fn a_closed_case_is_neither_dispatched_nor_moved() {
    let h = boot().await;
    let (case_id, task) = h.register("0102", "normal").await;
    h.infra.publish(case_id, "supervision", Body::CaseClosed(CaseClosed { round: 1, ..Default::default() })).await;
    let mut county = as_role(&h, "d-county", "dispatcher", CENTER).await;
    let bogus = Uuid::new_v4().to_string();
    eventually("routing sees the case closed", 10, || {
        let mut c = county.clone();
        let request = by_hand(case_id, "center", CENTER, &bogus);
        async move { c.dispatch_case(request).await.err().filter(|s| s.message().contains("closed")) }
    })
    .await;
    let up = county.escalate_case(hop(case_id, "up", PREFECTURE, &task.id)).await.unwrap_err();
    assert_refused("escalating a closed case", &up, Code::FailedPrecondition, "");
    assert!(up.message().starts_with("case_id"), "{}", up.message());
}

#[tokio::test]
async fn of_fifty_dispatchers_acting_at_once_exactly_one_wins() {
    let h = boot().await;
    h.department("court", CENTER, "resident", false).await;
    let (case_id, first) = h.register("0102", "normal").await;
    let dispatcher = as_role(&h, "d-county", "dispatcher", CENTER).await;
    let calls = (0..50).map(|i| {
        let mut c = dispatcher.clone();
        let unit = if i % 2 == 0 { ("department", "court") } else { ("center", TOWNSHIP) };
        let request = by_hand(case_id, unit.0, unit.1, &first.id);
        tokio::spawn(async move { c.dispatch_case(request).await })
    });
    let results: Vec<_> = futures_join(calls).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost: Vec<Code> = results.iter().filter_map(|r| r.as_ref().err().map(tonic::Status::code)).collect();
    assert_eq!(won, 1, "exactly one dispatcher wins: {lost:?}");
    assert!(lost.iter().all(|c| *c == Code::FailedPrecondition), "the others are told: {lost:?}");
    assert_eq!(h.tasks(case_id).await.len(), 2, "one new 交办单, not fifty");

    let live = h.tasks(case_id).await.pop().unwrap();
    let recalls = (0..50).map(|_| {
        let mut c = dispatcher.clone();
        let request = RecallTaskRequest { task_id: live.id.clone(), reason: "收回".into() };
        tokio::spawn(async move { c.recall_task(request).await })
    });
    let results = futures_join(recalls).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "one recall wins");
}

async fn futures_join<T: Send + 'static>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_retired_or_off_duty_department_gives_way_to_the_fallback_or_the_center() {
    let h = boot().await;
    h.put_rule("police", 5, "0207", "", "police-station").await;
    h.department("mediation", CENTER, "resident", false).await;
    let with_fallback = Rule {
        id: "police".into(),
        priority: 5,
        category_prefix: "0207".into(),
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
        unit_code: "police-station".into(),
        unit_name: "派出所".into(),
        fallback_kind: proto::vocab::v1::UnitKind::Department.into(),
        fallback_code: "mediation".into(),
        fallback_name: "调解委员会".into(),
        ..Default::default()
    };
    h.client.clone().put_rule(PutRuleRequest { rule: Some(with_fallback) }).await.unwrap();
    h.department("patrol", CENTER, "rotating", false).await;
    h.rotation("patrol", false).await;
    let patrol = Rule {
        id: "patrol".into(),
        priority: 5,
        category_prefix: "0204".into(),
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
        unit_code: "patrol".into(),
        unit_name: "交警轮驻".into(),
        ..Default::default()
    };
    h.client.clone().put_rule(PutRuleRequest { rule: Some(patrol) }).await.unwrap();
    // The station closes after its rule was put: dispatch asks the registry, not the rule.
    h.department("police-station", CENTER, "resident", true).await;

    let (_, task) = h.register("0207", "normal").await;
    assert_eq!(
        (task.unit_code.as_str(), task.via.as_str(), task.rule_id.as_str()),
        ("mediation", "fallback", "police")
    );
    let (_, task) = h.register("0204", "normal").await;
    assert_eq!((task.unit_code.as_str(), task.via.as_str()), (CENTER, "center"), "off duty, no fallback: 兜底");
    assert_eq!(task.rule_id, "patrol", "the file says which rule could not be followed");
}
