//! A task's life through the RPCs: 签收, 退单, the center's review, 办结, and the moves its state forbids.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{CENTER, OFFICER, boot};
use proto::events::v1::envelope::Body;
use proto::routing::v1::{
    AcceptTaskRequest, GetTaskRequest, ResolveTaskRequest, ReturnTaskRequest, ReviewReturnRequest,
};
use tonic::Code;

fn accept(task_id: &str) -> AcceptTaskRequest {
    AcceptTaskRequest { task_id: task_id.into(), handler_id: String::new() }
}

fn give_back(task_id: &str) -> ReturnTaskRequest {
    ReturnTaskRequest {
        task_id: task_id.into(),
        handler_id: String::new(),
        reason_code: "not_local".into(),
        reason: "不在本辖区".into(),
    }
}

fn review(task_id: &str, approve: bool) -> ReviewReturnRequest {
    ReviewReturnRequest { task_id: task_id.into(), reviewer_id: String::new(), approve, note: "按职责办理".into() }
}

fn resolve(task_id: &str) -> ResolveTaskRequest {
    ResolveTaskRequest {
        task_id: task_id.into(),
        resolver_id: String::new(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "达成调解协议".into(),
    }
}

#[tokio::test]
async fn an_accepted_task_is_resolved_and_credits_the_resolver() {
    let h = boot().await;
    let (_, task) = h.register("0102", "normal").await;
    let mut client = h.officer().await;

    let accepted = client.accept_task(accept(&task.id)).await.expect("accept").into_inner().task.expect("task");
    assert_eq!((accepted.state().code(), accepted.handler_id.as_str()), ("accepted", OFFICER));
    assert!(!accepted.accepted_at.is_empty(), "签收 starts the clock");

    let resolved = client.resolve_task(resolve(&task.id)).await.expect("resolve").into_inner().task.expect("task");
    assert_eq!((resolved.state().code(), resolved.outcome().code()), ("resolved", "dispute_resolved"));
    assert_eq!((resolved.resolver_id.as_str(), resolved.outcome_note.as_str()), (OFFICER, "达成调解协议"));
    assert!(!resolved.resolved_at.is_empty());

    let fetched = client.get_task(GetTaskRequest { task_id: task.id.clone() }).await.expect("get").into_inner().task;
    assert_eq!(fetched.map(|t| t.state().code().to_owned()).as_deref(), Some("resolved"));
    let accepted_event = h.event("case.accepted", |b| match b {
        Body::CaseAccepted(e) => Some(e),
        _ => None,
    });
    assert_eq!(accepted_event.await.handler_id, OFFICER);
    let event = h.event("case.resolved", |b| match b {
        Body::CaseResolved(e) => Some(e),
        _ => None,
    });
    let event = event.await;
    assert_eq!(
        (event.task_id.as_str(), event.outcome().code(), event.resolver_id.as_str()),
        (task.id.as_str(), "dispute_resolved", OFFICER)
    );
}

#[tokio::test]
async fn an_approved_return_re_dispatches_to_the_next_unit_then_the_center() {
    let h = boot().await;
    h.put_rule("court", 9, "0102", "", "court").await;
    h.put_rule("mediation", 1, "01", "", "mediation").await;
    let (case_id, first) = h.register("0102", "normal").await;
    assert_eq!(first.unit_code, "court");
    let (mut client, mut officer) = (h.client.clone(), h.officer().await);

    let returned = officer.return_task(give_back(&first.id)).await.expect("return").into_inner().task.expect("task");
    assert_eq!((returned.state().code(), returned.return_reason_code.as_str()), ("returned", "not_local"));
    assert_eq!(returned.return_reason, "不在本辖区");
    let reviewed = client.review_return(review(&first.id, true)).await.expect("approve").into_inner();
    let (old, next) = (reviewed.task.expect("task"), reviewed.next_task.expect("next task"));
    assert_eq!(old.state().code(), "superseded");
    assert_eq!(
        (next.state().code(), next.unit_code.as_str(), next.attempt, next.round),
        ("dispatched", "mediation", 2, 1)
    );
    assert_ne!(next.slip_no, first.slip_no, "every dispatch has its own slip");
    let event = h.dispatched_event(&next.id).await;
    assert_eq!((event.unit_code.as_str(), event.attempt), ("mediation", 2));

    officer.return_task(give_back(&next.id)).await.expect("second return");
    let last = client.review_return(review(&next.id, true)).await.expect("approve again").into_inner().next_task;
    let last = last.expect("next task");
    assert_eq!(
        (last.unit_kind().code(), last.unit_code.as_str(), last.rule_id.as_str()),
        ("center", CENTER, ""),
        "兜底 once every rule's unit returned it"
    );
    let units: Vec<String> = h.tasks(case_id).await.into_iter().map(|t| t.unit_code).collect();
    assert_eq!(units, ["court", "mediation", CENTER], "tasks oldest first");
}

#[tokio::test]
async fn a_rejected_return_goes_back_to_the_unit() {
    let h = boot().await;
    let (case_id, task) = h.register("0102", "normal").await;
    let (mut client, mut officer) = (h.client.clone(), h.officer().await);
    officer.return_task(give_back(&task.id)).await.expect("return");

    let reviewed = client.review_return(review(&task.id, false)).await.expect("reject").into_inner();
    assert!(reviewed.next_task.is_none(), "a rejection dispatches nothing new");
    assert_eq!(reviewed.task.map(|t| t.state().code().to_owned()).as_deref(), Some("dispatched"));
    let event = h.event("case.return_rejected", |b| match b {
        Body::ReturnRejected(e) => Some(e),
        _ => None,
    });
    assert_eq!(event.await.note, "按职责办理");
    officer.accept_task(accept(&task.id)).await.expect("the unit must now accept it");
    assert_eq!(h.tasks(case_id).await.len(), 1);
}

/// The status code of a failed call; None when it succeeded.
fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Option<Code> {
    r.err().map(|s| s.code())
}

#[tokio::test]
async fn moves_the_state_does_not_allow_fail_the_precondition() {
    let h = boot().await;
    let (_, task) = h.register("0102", "normal").await;
    let mut client = h.client.clone();

    assert_eq!(
        code(client.resolve_task(resolve(&task.id)).await),
        Some(Code::FailedPrecondition),
        "resolve before 签收"
    );
    assert_eq!(
        code(client.review_return(review(&task.id, true)).await),
        Some(Code::FailedPrecondition),
        "review without a return"
    );
    client.accept_task(accept(&task.id)).await.expect("first accept");
    assert_eq!(code(client.accept_task(accept(&task.id)).await), Some(Code::FailedPrecondition), "accept twice");
    assert_eq!(
        code(client.return_task(give_back(&task.id)).await),
        Some(Code::FailedPrecondition),
        "return after 签收"
    );
    client.resolve_task(resolve(&task.id)).await.expect("resolve");
    assert_eq!(code(client.resolve_task(resolve(&task.id)).await), Some(Code::FailedPrecondition), "resolve twice");

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(code(client.accept_task(accept(&unknown)).await), Some(Code::NotFound), "accept an unknown task");
    let get = client.get_task(GetTaskRequest { task_id: unknown }).await;
    assert_eq!(code(get), Some(Code::NotFound), "get an unknown task");
}

#[tokio::test]
async fn of_racing_moves_on_one_task_exactly_one_wins() {
    let h = boot().await;
    let (_, task) = h.register("0102", "normal").await;
    let other = kit::testing::keys().token("officer-2", &[("handler", "*")]);
    let (mut a, mut b, mut c) = (h.officer().await, h.as_(&other).await, h.officer().await);

    let (x, y, z) = tokio::join!(
        a.accept_task(accept(&task.id)),
        b.accept_task(accept(&task.id)),
        c.return_task(give_back(&task.id))
    );

    let codes = [code(x), code(y), code(z)];
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1, "exactly one wins: {codes:?}");
    assert!(codes.iter().flatten().all(|c| *c == Code::FailedPrecondition), "the others see the new state: {codes:?}");
}
