//! Every RPC rejects bad input with INVALID_ARGUMENT naming the field, before touching any task.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{CENTER, boot};
use proto::routing::v1::{
    AcceptTaskRequest, GetTaskRequest, ListTasksRequest, PutRuleRequest, ResolveTaskRequest, ReturnTaskRequest,
    ReviewReturnRequest, Rule,
};
use tonic::{Code, Response, Status};

const TASK: &str = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";

fn expect_invalid<T>(case: &str, result: Result<Response<T>, Status>, field: &str) {
    let status = match result {
        Ok(_) => panic!("{case}: accepted, expected INVALID_ARGUMENT on {field}"),
        Err(s) => s,
    };
    kit::testing::assert_refused(case, &status, Code::InvalidArgument, field);
}

#[tokio::test]
async fn bad_inputs_name_the_field_for_every_rpc() {
    let h = boot().await;
    let mut client = h.client.clone();

    let nul_id = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789a\0";
    for (case, task_id, field) in
        [("empty id", "", "task_id"), ("not a uuid", "T-1", "task_id"), ("NUL", nul_id, "task_id")]
    {
        expect_invalid(case, client.get_task(GetTaskRequest { task_id: task_id.into() }).await, field);
    }
    for (case, case_id) in [("empty case id", ""), ("case number instead of id", "532901-20250807-00001")] {
        expect_invalid(case, client.list_tasks(ListTasksRequest { case_id: case_id.into() }).await, "case_id");
    }

    let ok = AcceptTaskRequest { task_id: TASK.into(), handler_id: "officer-1".into() };
    let accepts = [
        ("accept: no task id", AcceptTaskRequest { task_id: String::new(), ..ok.clone() }, "task_id"),
        ("accept: handler too long", AcceptTaskRequest { handler_id: "x".repeat(65), ..ok.clone() }, "handler_id"),
        ("accept: NUL in handler", AcceptTaskRequest { handler_id: "h\0".into(), ..ok.clone() }, "handler_id"),
    ];
    for (case, request, field) in accepts {
        expect_invalid(case, client.accept_task(request).await, field);
    }

    let ok = ReturnTaskRequest {
        task_id: TASK.into(),
        handler_id: "officer-1".into(),
        reason_code: "not_local".into(),
        reason: "不在本辖区".into(),
    };
    let returns = [
        ("return: bad task id", ReturnTaskRequest { task_id: "42".into(), ..ok.clone() }, "task_id"),
        ("return: no reason code", ReturnTaskRequest { reason_code: String::new(), ..ok.clone() }, "reason_code"),
        ("return: unknown reason code", ReturnTaskRequest { reason_code: "busy".into(), ..ok.clone() }, "reason_code"),
        ("return: no reason text", ReturnTaskRequest { reason: " ".into(), ..ok.clone() }, "reason"),
        ("return: NUL in reason", ReturnTaskRequest { reason: "不在\0本辖区".into(), ..ok.clone() }, "reason"),
        ("return: NUL in handler", ReturnTaskRequest { handler_id: "h\0".into(), ..ok.clone() }, "handler_id"),
        (
            "return: 10 KB reason code",
            ReturnTaskRequest { reason_code: "x".repeat(10 << 10), ..ok.clone() },
            "reason_code",
        ),
    ];
    for (case, request, field) in returns {
        expect_invalid(case, client.return_task(request).await, field);
    }

    let ok = ReviewReturnRequest {
        task_id: TASK.into(),
        reviewer_id: "center-op".into(),
        approve: false,
        note: "请办理".into(),
    };
    let reviews = [
        ("review: bad task id", ReviewReturnRequest { task_id: "x".into(), ..ok.clone() }, "task_id"),
        ("review: reviewer too long", ReviewReturnRequest { reviewer_id: "r".repeat(65), ..ok.clone() }, "reviewer_id"),
        ("review: rejection without a note", ReviewReturnRequest { note: String::new(), ..ok.clone() }, "note"),
        ("review: note too long", ReviewReturnRequest { note: "长".repeat(1001), ..ok.clone() }, "note"),
        ("review: NUL in note", ReviewReturnRequest { note: "请\0办理".into(), ..ok.clone() }, "note"),
    ];
    for (case, request, field) in reviews {
        expect_invalid(case, client.review_return(request).await, field);
    }

    let ok = ResolveTaskRequest {
        task_id: TASK.into(),
        resolver_id: "mediator-3".into(),
        outcome: proto::vocab::v1::Outcome::Handled.into(),
        note: String::new(),
    };
    let resolves = [
        ("resolve: bad task id", ResolveTaskRequest { task_id: "?".into(), ..ok.clone() }, "task_id"),
        ("resolve: no outcome", ResolveTaskRequest { outcome: 0, ..ok.clone() }, "outcome"),
        ("resolve: unknown outcome", ResolveTaskRequest { outcome: 99, ..ok.clone() }, "outcome"),
        ("resolve: negative outcome", ResolveTaskRequest { outcome: -1, ..ok.clone() }, "outcome"),
        ("resolve: NUL in note", ResolveTaskRequest { note: "办结\0".into(), ..ok.clone() }, "note"),
        ("resolve: NUL in resolver", ResolveTaskRequest { resolver_id: "\0".into(), ..ok.clone() }, "resolver_id"),
        (
            "resolve: 不予受理 without a reason",
            ResolveTaskRequest { outcome: proto::vocab::v1::Outcome::NotAccepted.into(), ..ok.clone() },
            "note",
        ),
    ];
    for (case, request, field) in resolves {
        expect_invalid(case, client.resolve_task(request).await, field);
    }
}

#[tokio::test]
async fn bad_rules_name_the_field_and_are_not_saved() {
    let h = boot().await;
    h.department("hrss-532901", CENTER, "resident", false).await;
    h.department("court-532901", CENTER, "resident", false).await;
    h.department("closed-bureau", CENTER, "resident", true).await;
    let mut client = h.client.clone();
    let ok = Rule {
        id: "labour".into(),
        priority: 5,
        category_prefix: "0106".into(),
        area_prefix: "532901".into(),
        urgency: proto::vocab::v1::Urgency::Urgent.into(),
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
        unit_code: "hrss-532901".into(),
        unit_name: "市人社局".into(),
        ..Default::default()
    };
    let fallback = |kind: &str, code: &str| Rule {
        fallback_kind: proto::json::wire::<proto::vocab::v1::UnitKind>(kind),
        fallback_code: code.into(),
        fallback_name: "备用".into(),
        ..ok.clone()
    };
    let rules = [
        ("no id", Rule { id: String::new(), ..ok.clone() }, "rule.id"),
        ("id with spaces", Rule { id: "labour rule".into(), ..ok.clone() }, "rule.id"),
        ("priority out of range", Rule { priority: 1_000_001, ..ok.clone() }, "rule.priority"),
        ("category prefix not digits", Rule { category_prefix: "01x".into(), ..ok.clone() }, "rule.category_prefix"),
        ("category prefix too long", Rule { category_prefix: "0106011".into(), ..ok.clone() }, "rule.category_prefix"),
        ("area prefix too long", Rule { area_prefix: "5329010030011".into(), ..ok.clone() }, "rule.area_prefix"),
        ("unknown urgency", Rule { urgency: 42, ..ok.clone() }, "rule.urgency"),
        ("no unit kind", Rule { unit_kind: 0, ..ok.clone() }, "rule.unit_kind"),
        ("unknown unit kind", Rule { unit_kind: 99, ..ok.clone() }, "rule.unit_kind"),
        ("no unit code", Rule { unit_code: String::new(), ..ok.clone() }, "rule.unit_code"),
        ("no unit name", Rule { unit_name: " ".into(), ..ok.clone() }, "rule.unit_name"),
        ("NUL in unit name", Rule { unit_name: "市人社局\0".into(), ..ok.clone() }, "rule.unit_name"),
        ("NUL in unit code", Rule { unit_code: "hrss\0".into(), ..ok.clone() }, "rule.unit_code"),
        ("department the registry does not know", Rule { unit_code: "ghost".into(), ..ok.clone() }, "rule.unit_code"),
        ("retired department", Rule { unit_code: "closed-bureau".into(), ..ok.clone() }, "rule.unit_code"),
        ("emoji unit code", Rule { unit_code: "人社🚀".into(), ..ok.clone() }, "rule.unit_code"),
        (
            "a division without a center",
            Rule {
                unit_kind: proto::vocab::v1::UnitKind::Center.into(),
                unit_code: "532901003001001".into(),
                ..ok.clone()
            },
            "rule.unit_code",
        ),
        ("unknown fallback", fallback("department", "ghost"), "rule.fallback_code"),
        ("fallback of no kind", fallback("bureau", "court-532901"), "rule.fallback_kind"),
        ("fallback the unit itself", fallback("department", "hrss-532901"), "rule.fallback_code"),
    ];
    for (case, rule, field) in rules {
        expect_invalid(case, client.put_rule(PutRuleRequest { rule: Some(rule) }).await, field);
    }
    expect_invalid("no rule at all", client.put_rule(PutRuleRequest { rule: None }).await, "rule");
    let listed = client.list_rules(proto::routing::v1::ListRulesRequest {}).await.expect("list").into_inner().rules;
    assert!(listed.is_empty(), "no rejected rule was saved: {listed:?}");

    let saved = client.put_rule(PutRuleRequest { rule: Some(ok.clone()) }).await.expect("valid rule").into_inner();
    let bound = Rule { unit_center: CENTER.into(), ..ok.clone() };
    assert_eq!(saved.rule.as_ref(), Some(&bound), "the registry's station of the unit is recorded");
    let changed = Rule { unit_code: "court-532901".into(), ..fallback("center", "532901003000") };
    let changed = Rule { unit_center: CENTER.into(), ..changed };
    client.put_rule(PutRuleRequest { rule: Some(changed.clone()) }).await.expect("upsert");
    let listed = client.list_rules(proto::routing::v1::ListRulesRequest {}).await.expect("list").into_inner().rules;
    assert_eq!(listed, [changed], "a rule is replaced by id");
}
