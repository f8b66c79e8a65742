//! 吹哨报到 against real PostgreSQL, NATS and gRPC: the dispatcher summons co-handling units to the live task,
//! each reports in and contributes (or is released), and the lead's 办结 waits for every one.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{CENTER, boot};
use kit::testing::{AuthedChannel, assert_refused, keys};
use proto::events::v1::envelope::Body;
use proto::routing::v1::routing_client::RoutingClient;
use proto::routing::v1::{
    AcceptTaskRequest, CoUnit, ListCoHandlersRequest, RecordContributionRequest, ReleaseCoHandlerRequest,
    ReportInRequest, ResolveTaskRequest, SummonCoHandlersRequest,
};
use tonic::Code;

/// A handler of `unit` (a unit-scoped grant).
async fn handler(h: &common::Harness, person: &str, unit: &str) -> RoutingClient<AuthedChannel> {
    let grant = kit::auth::Grant { role: "handler".into(), scope: String::new(), unit: unit.into() };
    h.as_(&keys().token_with(person, vec![grant])).await
}

fn unit(code: &str, name: &str) -> CoUnit {
    CoUnit { kind: proto::vocab::v1::UnitKind::Department.into(), code: code.into(), name: name.into() }
}

fn summon(task_id: &str, co: Vec<CoUnit>) -> SummonCoHandlersRequest {
    SummonCoHandlersRequest { task_id: task_id.into(), co_units: co, reason: "涉及多部门 🚨".into() }
}

#[tokio::test]
async fn the_lead_resolves_only_when_every_co_unit_has_contributed_or_been_released() {
    let h = boot().await;
    h.put_rule("sfs", 10, "", "", "dali-sfs").await;
    let (case_id, task) = h.register("0102", "normal").await;
    let dispatcher = h.as_(&keys().token("d-1", &[("dispatcher", CENTER)])).await;
    let mut root = h.client.clone();
    // The units a whistle reaches are the registry's: 住建局 stationed at the case's center, 自然资源局 on call
    // there; a retired department and one of another county answer no whistle here.
    h.department("zjj", CENTER, "resident", false).await;
    h.department("gtj", CENTER, "on_call", false).await;
    h.department("old-bureau", CENTER, "resident", true).await;
    h.department("yb-sfj", "532922000000", "resident", false).await;
    for (why, co) in [
        ("a unit the registry does not know", unit("nowhere", "不存在的局")),
        ("a retired department", unit("old-bureau", "撤销的局")),
        ("a department of another county", unit("yb-sfj", "漾濞县司法局")),
        (
            "a center of another county",
            CoUnit {
                kind: proto::vocab::v1::UnitKind::Center.into(),
                code: "532922000000".into(),
                name: String::new(),
            },
        ),
        (
            "a center the registry does not have",
            CoUnit {
                kind: proto::vocab::v1::UnitKind::Center.into(),
                code: "532901999000".into(),
                name: String::new(),
            },
        ),
    ] {
        let status = dispatcher.clone().summon_co_handlers(summon(&task.id, vec![unit("zjj", "住建局"), co])).await;
        assert_refused(why, &status.unwrap_err(), Code::InvalidArgument, "co_units[1].code");
    }
    let listed = root.list_co_handlers(ListCoHandlersRequest { task_id: task.id.clone() }).await.unwrap();
    assert!(listed.into_inner().co_handlers.is_empty(), "a refused whistle summons nobody, not even its good units");

    // Bad summons name their field; a dispatcher of another county is refused.
    for (field, req) in [
        ("co_units", summon(&task.id, vec![])),
        ("co_units[1].code", summon(&task.id, vec![unit("zjj", "住建局"), unit("zjj", "住建局")])),
        ("co_units[0].code", summon(&task.id, vec![unit("dali-sfs", "司法所")])),
        ("co_units[0].code", summon(&task.id, vec![unit("z\0", "x")])),
        ("reason", SummonCoHandlersRequest { reason: String::new(), ..summon(&task.id, vec![unit("a", "a")]) }),
        ("task_id", summon("nope", vec![unit("a", "a")])),
    ] {
        let status = dispatcher.clone().summon_co_handlers(req).await.unwrap_err();
        assert_refused(field, &status, Code::InvalidArgument, field);
    }
    let mut elsewhere = h.as_(&keys().token("d-9", &[("dispatcher", "532922000000")])).await;
    let denied = elsewhere.summon_co_handlers(summon(&task.id, vec![unit("zjj", "住建局")])).await.unwrap_err();
    assert!(matches!(denied.code(), Code::PermissionDenied | Code::NotFound), "{denied:?}");

    let summoned = dispatcher
        .clone()
        .summon_co_handlers(summon(&task.id, vec![unit("zjj", "住建局"), unit("gtj", "自然资源局")]))
        .await
        .unwrap()
        .into_inner()
        .co_handlers;
    assert_eq!(summoned.iter().map(|c| c.state().code()).collect::<Vec<_>>(), ["summoned", "summoned"]);
    let (zjj, gtj) = (summoned[0].id.clone(), summoned[1].id.clone());
    let again = dispatcher.clone().summon_co_handlers(summon(&task.id, vec![unit("zjj", "住建局")])).await.unwrap_err();
    assert_refused("summoned twice", &again, Code::InvalidArgument, "co_units[0].code");

    // The lead accepts; it cannot resolve while a co-unit owes its part.
    let mut lead = handler(&h, "h-lead", "dali-sfs").await;
    lead.accept_task(AcceptTaskRequest { task_id: task.id.clone(), handler_id: String::new() }).await.unwrap();
    let resolve = || ResolveTaskRequest {
        task_id: task.id.clone(),
        resolver_id: String::new(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "调解成功".into(),
    };
    let owed = lead.resolve_task(resolve()).await.unwrap_err();
    assert_eq!(owed.code(), Code::FailedPrecondition);
    assert!(owed.message().contains("zjj") && owed.message().contains("gtj"), "{owed:?}");

    // 住建局 reports in and contributes; it cannot contribute before reporting in, nor report in twice; another
    // unit cannot act for it.
    let mut zjj_unit = handler(&h, "h-zjj", "zjj").await;
    let early = zjj_unit.record_contribution(RecordContributionRequest { id: zjj.clone(), note: "x".into() }).await;
    assert_eq!(early.unwrap_err().code(), Code::FailedPrecondition);
    let mut gtj_unit = handler(&h, "h-gtj", "gtj").await;
    let not_yours = gtj_unit.report_in(ReportInRequest { id: zjj.clone() }).await.unwrap_err();
    assert!(matches!(not_yours.code(), Code::PermissionDenied | Code::NotFound), "{not_yours:?}");
    zjj_unit.report_in(ReportInRequest { id: zjj.clone() }).await.unwrap();
    let twice = zjj_unit.report_in(ReportInRequest { id: zjj.clone() }).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let bare = zjj_unit.record_contribution(RecordContributionRequest { id: zjj.clone(), note: " ".into() }).await;
    assert_refused("empty contribution", &bare.unwrap_err(), Code::InvalidArgument, "note");
    let done = zjj_unit
        .record_contribution(RecordContributionRequest { id: zjj.clone(), note: "出具房屋鉴定意见".into() })
        .await
        .unwrap()
        .into_inner()
        .co_handler
        .unwrap();
    assert_eq!(done.state().code(), "contributed");
    let still = lead.resolve_task(resolve()).await.unwrap_err();
    assert!(still.message().contains("gtj") && !still.message().contains("zjj"), "{still:?}");

    // The unit cannot release itself; the dispatcher releases 自然资源局; the lead resolves.
    let own = gtj_unit.release_co_handler(ReleaseCoHandlerRequest { id: gtj.clone(), reason: "不涉及".into() }).await;
    assert!(matches!(own.unwrap_err().code(), Code::PermissionDenied | Code::NotFound));
    dispatcher
        .clone()
        .release_co_handler(ReleaseCoHandlerRequest { id: gtj.clone(), reason: "不涉及".into() })
        .await
        .unwrap();
    lead.resolve_task(resolve()).await.unwrap();

    let listed = root.list_co_handlers(ListCoHandlersRequest { task_id: task.id.clone() }).await.unwrap().into_inner();
    let states: Vec<(String, String)> = listed
        .co_handlers
        .into_iter()
        .map(|c| (c.state().code().to_owned(), c.unit_code))
        .map(|(s, u)| (u, s))
        .collect();
    assert_eq!(states, [("zjj".into(), "contributed".into()), ("gtj".into(), "released".into())]);
    let seen: Vec<String> = gtj_unit
        .list_co_handlers(ListCoHandlersRequest { task_id: task.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .co_handlers
        .into_iter()
        .map(|c| c.unit_code)
        .collect();
    assert_eq!(seen, ["gtj"], "a co-unit sees its own summons only");

    // Every step is a case.joint event, in order.
    let actions = kit::testing::eventually("the case.joint events", 10, || async {
        let a: Vec<String> = h
            .infra
            .events()
            .await
            .into_iter()
            .filter(|e| e.case_id == case_id.to_string())
            .filter_map(|e| match e.body {
                Some(Body::CaseJoint(j)) => Some(format!("{} {}", j.unit_code, j.action)),
                _ => None,
            })
            .collect();
        (a.len() == 5).then_some(a)
    })
    .await;
    assert_eq!(actions, ["zjj summoned", "gtj summoned", "zjj reported_in", "zjj contributed", "gtj released"]);
}
