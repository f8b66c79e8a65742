//! Who sees and moves which task: each role at each place relative to the case (its grid, its village, a
//! sibling village, the parent township, another county, the department it went to), actors taken from the
//! token, the resolver checked with a real registry, returners kept from their own reviews, rules kept within
//! their administrator's area.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Harness, VILLAGE, boot_with_registry};
use kit::auth::Grant;
use kit::testing::{assert_refused, keys};
use proto::registry::v1::CreatePersonRequest;
use proto::routing::v1::{
    AcceptTaskRequest, GetTaskRequest, ListRulesRequest, ListTasksRequest, PutRuleRequest, ResolveTaskRequest,
    ReturnTaskRequest, ReviewReturnRequest, Rule, Task,
};
use tonic::Code;
use uuid::Uuid;

/// The grid the harness registers its cases in.
const GRID: &str = "532901003001001";
const UNIT: &str = "judicial-office";

/// A token for `person` with grants (role, scope node, unit).
fn token(person: &str, grants: &[(&str, &str, &str)]) -> String {
    let grants = grants
        .iter()
        .map(|(role, scope, unit)| Grant { role: (*role).into(), scope: (*scope).into(), unit: (*unit).into() })
        .collect();
    keys().token_with(person, grants)
}

/// A harness whose neighbour disputes in 大理市 go to the judicial office.
async fn boot() -> Harness {
    let h = boot_with_registry().await;
    h.put_rule("neighbours", 5, "0102", "532901", UNIT).await;
    h
}

fn accept(task: &Task, handler: &str) -> AcceptTaskRequest {
    AcceptTaskRequest { task_id: task.id.clone(), handler_id: handler.into() }
}

fn give_back(task: &Task, handler: &str) -> ReturnTaskRequest {
    ReturnTaskRequest {
        task_id: task.id.clone(),
        handler_id: handler.into(),
        reason_code: "not_local".into(),
        reason: "不在本辖区".into(),
    }
}

fn reject(task: &Task, reviewer: &str) -> ReviewReturnRequest {
    ReviewReturnRequest {
        task_id: task.id.clone(),
        reviewer_id: reviewer.into(),
        approve: false,
        note: "请办理".into(),
    }
}

fn resolve(task: &Task, resolver: &str) -> ResolveTaskRequest {
    ResolveTaskRequest {
        task_id: task.id.clone(),
        resolver_id: resolver.into(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: String::new(),
    }
}

/// The code of a call's outcome: None when it succeeded.
fn code<T>(r: &Result<tonic::Response<T>, tonic::Status>) -> Option<Code> {
    r.as_ref().err().map(tonic::Status::code)
}

/// Asserts the outcome of `row`'s `what`: success for None, else exactly that refusal (with no field named).
fn expect<T>(row: &str, what: &str, r: Result<tonic::Response<T>, tonic::Status>, want: Option<Code>) {
    match (r, want) {
        (Ok(_), None) => {}
        (Ok(_), Some(c)) => panic!("{row}: {what} succeeded, expected {c:?}"),
        (Err(s), None) => panic!("{row}: {what} refused: {s:?}"),
        (Err(s), Some(c)) => assert_refused(&format!("{row}: {what}"), &s, c, ""),
    }
}

#[derive(Clone, Copy, Debug)]
enum Act {
    /// 签收 the fresh task.
    Accept,
    /// Reject the task after its unit returned it.
    Review,
}

/// Grants as (role, scope node, unit).
type Grants = &'static [(&'static str, &'static str, &'static str)];
/// A table row's name, grants, read outcome, act and act outcome (None: allowed).
type Row = (&'static str, Grants, Option<Code>, Act, Option<Code>);

const OK: Option<Code> = None;
const NF: Option<Code> = Some(Code::NotFound);
const PD: Option<Code> = Some(Code::PermissionDenied);

#[tokio::test]
async fn each_role_sees_and_moves_tasks_only_where_its_grant_reaches() {
    let h = boot().await;
    // (row, grants, read (get and list), act, act outcome)
    let rows: &[Row] = &[
        ("grid worker, same grid", &[("grid_worker", GRID, "")], OK, Act::Accept, PD),
        ("grid worker, sibling grid", &[("grid_worker", "532901003001002", "")], NF, Act::Accept, NF),
        ("dispatcher, same village", &[("dispatcher", VILLAGE, "")], OK, Act::Review, OK),
        ("dispatcher, parent township", &[("dispatcher", "532901003000", "")], OK, Act::Review, OK),
        ("dispatcher, sibling village", &[("dispatcher", "532901003002", "")], NF, Act::Review, NF),
        ("supervisor, other county", &[("supervisor", "532922000000", "")], NF, Act::Review, NF),
        ("center leader, county", &[("center_leader", "532901000000", "")], OK, Act::Review, OK),
        ("intake clerk, same village (no review role)", &[("intake_clerk", VILLAGE, "")], OK, Act::Review, PD),
        ("handler of the unit", &[("handler", "", UNIT)], OK, Act::Accept, OK),
        ("unit lead of the unit", &[("unit_lead", "", UNIT)], OK, Act::Accept, OK),
        ("handler of another unit", &[("handler", "", "court")], NF, Act::Accept, NF),
        (
            "handler of another unit who is also the grid's worker",
            &[("handler", "", "court"), ("grid_worker", GRID, "")],
            OK,
            Act::Accept,
            PD,
        ),
    ];
    let officer = token("officer-1", &[("handler", "", UNIT)]);
    for (i, (row, grants, read, act, acted)) in rows.iter().enumerate() {
        let (case_id, task) = h.register("0102", "normal").await;
        assert_eq!(task.unit_code, UNIT, "{row}: the rule sent it to the unit");
        if let Act::Review = act {
            h.as_(&officer).await.return_task(give_back(&task, "")).await.expect("the unit returns it");
        }
        let mut client = h.as_(&token(&format!("person-{i}"), grants)).await;

        let got = client.get_task(GetTaskRequest { task_id: task.id.clone() }).await;
        expect(row, "get", got, *read);
        let listed = client.list_tasks(ListTasksRequest { case_id: case_id.to_string() }).await;
        if read.is_none() {
            let ids: Vec<String> = listed.as_ref().unwrap().get_ref().tasks.iter().map(|t| t.id.clone()).collect();
            assert_eq!(ids, std::slice::from_ref(&task.id), "{row}: list");
        }
        expect(row, "list", listed, *read);
        let result = match act {
            Act::Accept => code(&client.accept_task(accept(&task, "")).await),
            Act::Review => code(&client.review_return(reject(&task, "")).await),
        };
        assert_eq!(result, *acted, "{row}: {act:?}");
    }
}

#[tokio::test]
async fn a_hidden_task_answers_exactly_as_an_unknown_one() {
    let h = boot().await;
    let (case_id, task) = h.register("0102", "normal").await;
    let mut outsider = h.as_(&token("outsider", &[("dispatcher", "532922000000", "")])).await;
    let unknown = Uuid::new_v4();
    let hidden = outsider.get_task(GetTaskRequest { task_id: task.id.clone() }).await.unwrap_err();
    let absent = outsider.get_task(GetTaskRequest { task_id: unknown.to_string() }).await.unwrap_err();
    assert_eq!(hidden.message().replace(&task.id, "ID"), absent.message().replace(&unknown.to_string(), "ID"));
    let hidden = outsider.list_tasks(ListTasksRequest { case_id: case_id.to_string() }).await.unwrap_err();
    let absent = outsider.list_tasks(ListTasksRequest { case_id: unknown.to_string() }).await.unwrap_err();
    assert_eq!(
        (hidden.code(), hidden.message().replace(&case_id.to_string(), "ID")),
        (absent.code(), absent.message().replace(&unknown.to_string(), "ID"))
    );
}

#[tokio::test]
async fn a_unit_sees_only_its_own_tasks_of_a_case() {
    let h = boot().await;
    h.put_rule("mediation", 1, "01", "", "mediation").await;
    let (case_id, first) = h.register("0102", "normal").await;
    let judicial = token("h-j", &[("handler", "", UNIT)]);
    h.as_(&judicial).await.return_task(give_back(&first, "")).await.expect("return");
    let approve = ReviewReturnRequest { approve: true, note: String::new(), ..reject(&first, "") };
    let second = h.client.clone().review_return(approve).await.expect("approve").into_inner().next_task.unwrap();
    assert_eq!(second.unit_code, "mediation");

    for (who, unit, visible, hidden) in [("h-j", UNIT, &first, &second), ("h-m", "mediation", &second, &first)] {
        let mut client = h.as_(&token(who, &[("handler", "", unit)])).await;
        let listed = client.list_tasks(ListTasksRequest { case_id: case_id.to_string() }).await.unwrap();
        let ids: Vec<String> = listed.into_inner().tasks.into_iter().map(|t| t.id).collect();
        assert_eq!(ids, std::slice::from_ref(&visible.id), "{unit} lists only its own task");
        let status = client.get_task(GetTaskRequest { task_id: hidden.id.clone() }).await.unwrap_err();
        assert_refused(&format!("{unit} gets the other unit's task"), &status, Code::NotFound, "");
    }
}

#[tokio::test]
async fn nobody_acts_in_someone_elses_name() {
    let h = boot().await;
    let mut handler = h.as_(&token("h-1", &[("handler", "", UNIT)])).await;
    let (_, task) = h.register("0102", "normal").await;

    let spoofed = handler.accept_task(accept(&task, "h-2")).await.unwrap_err();
    assert_refused("accept naming another handler", &spoofed, Code::PermissionDenied, "");
    let spoofed = handler.return_task(give_back(&task, "h-2")).await.unwrap_err();
    assert_refused("return naming another handler", &spoofed, Code::PermissionDenied, "");
    let accepted = handler.accept_task(accept(&task, "h-1")).await.expect("naming oneself is fine");
    assert_eq!(accepted.into_inner().task.unwrap().handler_id, "h-1");
    let resolved = handler.resolve_task(resolve(&task, "")).await.expect("resolve").into_inner().task.unwrap();
    assert_eq!((resolved.handler_id.as_str(), resolved.resolver_id.as_str()), ("h-1", "h-1"), "empty means me");

    let (_, other) = h.register("0102", "normal").await;
    handler.return_task(give_back(&other, "")).await.expect("return");
    let mut dispatcher = h.as_(&token("d-1", &[("dispatcher", VILLAGE, "")])).await;
    let spoofed = dispatcher.review_return(reject(&other, "d-2")).await.unwrap_err();
    assert_refused("review naming another reviewer", &spoofed, Code::PermissionDenied, "");
}

#[tokio::test]
async fn only_the_accepting_handler_or_its_unit_resolves() {
    let h = boot().await;
    let (_, task) = h.register("0102", "normal").await;
    h.as_(&token("h-a", &[("handler", "", UNIT)])).await.accept_task(accept(&task, "")).await.expect("accept");

    let rows: &[(&str, &str, Grants, Option<Code>)] = &[
        ("a handler of another unit", "h-c", &[("handler", "", "court")], NF),
        ("the grid's worker (their own work only)", "gw", &[("grid_worker", GRID, "")], PD),
        ("the accepting handler, since moved to another unit", "h-a", &[("handler", "", "court")], OK),
    ];
    for (row, person, grants, want) in rows {
        let result = h.as_(&token(person, grants)).await.resolve_task(resolve(&task, "")).await;
        expect(row, "resolve", result, *want);
    }

    let (_, second) = h.register("0102", "normal").await;
    h.as_(&token("h-a", &[("handler", "", UNIT)])).await.accept_task(accept(&second, "")).await.expect("accept");
    let colleague = h.as_(&token("h-b", &[("handler", "", UNIT)])).await.resolve_task(resolve(&second, "")).await;
    let resolved = colleague.expect("a member of the unit resolves").into_inner().task.unwrap();
    assert_eq!(resolved.handler_id, "h-b", "whoever resolved is recorded as the handler");
}

/// A person in the registry with this role and home.
async fn person(h: &Harness, role: &str, home: &str) -> String {
    let request = CreatePersonRequest {
        name: "杨调解".into(),
        role: proto::json::wire::<proto::vocab::v1::PersonRole>(role),
        home_code: home.into(),
        ..Default::default()
    };
    let mut registry = h.registry.as_ref().unwrap().0.clone();
    registry.create_person(request).await.expect("person").into_inner().person.unwrap().id
}

#[tokio::test]
async fn the_credited_resolver_is_a_grid_worker_or_mediator_of_the_place() {
    let h = boot().await;
    let rows = [
        ("a mediator of the case's grid", person(&h, "mediator", GRID).await, OK),
        ("the grid worker of a micro-grid in it", person(&h, "grid_worker", "532901003001001001").await, OK),
        ("a grid worker of a sibling grid", person(&h, "grid_worker", "532901003001002").await, PD),
        ("a handler living in the grid", person(&h, "handler", GRID).await, PD),
        ("nobody the registry knows", Uuid::new_v4().to_string(), PD),
    ];
    let mut handler = h.as_(&token("h-1", &[("handler", "", UNIT)])).await;
    for (row, resolver, want) in rows {
        let (_, task) = h.register("0102", "normal").await;
        handler.accept_task(accept(&task, "")).await.expect("accept");
        let result = handler.resolve_task(resolve(&task, &resolver)).await;
        if want.is_none() {
            let resolved = result.as_ref().unwrap().get_ref().task.clone().unwrap();
            assert_eq!((resolved.resolver_id.as_str(), resolved.handler_id.as_str()), (resolver.as_str(), "h-1"));
        }
        expect(row, "resolve crediting them", result, want);
    }
}

#[tokio::test]
async fn a_returner_does_not_review_their_own_return() {
    let h = boot().await;
    let (_, task) = h.register("0102", "normal").await;
    let both = token("dual", &[("handler", "", UNIT), ("dispatcher", VILLAGE, "")]);
    let mut dual = h.as_(&both).await;
    dual.return_task(give_back(&task, "")).await.expect("return");
    let own = dual.review_return(reject(&task, "")).await.unwrap_err();
    assert_refused("reviewing one's own return", &own, Code::PermissionDenied, "");
    let other = h.as_(&token("d-1", &[("dispatcher", VILLAGE, "")])).await.review_return(reject(&task, "")).await;
    assert_eq!(other.expect("another dispatcher reviews").into_inner().task.unwrap().state().code(), "dispatched");
}

fn rule(id: &str, area: &str) -> PutRuleRequest {
    PutRuleRequest {
        rule: Some(Rule {
            id: id.into(),
            priority: 1,
            category_prefix: "03".into(),
            area_prefix: area.into(),
            urgency: 0,
            unit_kind: proto::vocab::v1::UnitKind::Department.into(),
            unit_code: "civil-affairs".into(),
            unit_name: "民政局".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn rules_stay_within_their_administrators_area() {
    let h = boot().await;
    h.department("civil-affairs", "532901000000", "resident", false).await;
    h.client.clone().put_rule(rule("heqing", "532932")).await.expect("another county's rule");
    let mut admin = h.as_(&token("ba", &[("business_admin", "532901000000", "")])).await;
    let rows = [
        ("a township of the county", "xiaguan", "532901003", OK),
        ("the county itself", "dali", "532901", OK),
        ("another county", "eryuan", "532930", PD),
        ("every area", "everywhere", "", PD),
        ("another county's rule, moved into this county", "heqing", "532901", PD),
    ];
    for (row, id, area, want) in rows {
        expect(row, "put rule", admin.put_rule(rule(id, area)).await, want);
    }
    let listed = admin.list_rules(ListRulesRequest {}).await.unwrap().into_inner().rules;
    let mut ids: Vec<String> = listed.into_iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, ["dali", "neighbours", "xiaguan"], "the administrator lists only the county's rules");
    let all = h.client.clone().list_rules(ListRulesRequest {}).await.unwrap().into_inner().rules;
    assert_eq!(all.len(), 4, "the whole deployment's grant lists every rule: {all:?}");
}

#[tokio::test]
async fn no_service_lists_tasks_with_its_own_identity() {
    // Supervision keeps its own view of the tasks from routing's events, so no service identity reads them.
    let h = boot().await;
    let (case_id, task) = h.register("0102", "normal").await;
    let service = |name: &str| keys().auth(name).identity(name).unwrap().bearer().unwrap();
    for name in ["supervision", "subsidy"] {
        let mut client = h.as_(&service(name)).await;
        let status = client.list_tasks(ListTasksRequest { case_id: case_id.to_string() }).await.unwrap_err();
        assert_refused(&format!("{name} listing tasks"), &status, Code::PermissionDenied, "");
        let status = client.get_task(GetTaskRequest { task_id: task.id.clone() }).await.unwrap_err();
        assert_refused(&format!("{name} getting a task"), &status, Code::PermissionDenied, "");
    }
}
