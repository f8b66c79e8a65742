//! Verification (核查/销号) and follow-up (回访) on real PostgreSQL and NATS. Routing's side of each case is
//! published as events, as routing would publish it; no routing service runs, since supervision decides on
//! its own projection of the case's tasks.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{
    Node, accepted, await_event, await_handled, await_task, client, dispatched, publish_stale, resolved, supervision,
    task_view,
};
use kit::testing::AuthedChannel as Channel;
use kit::testing::TestInfra;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseRegistered, CaseReopened, CaseReturned, ReturnRejected};
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::supervision::v1::{FollowUpRequest, VerifyCaseRequest};
use tonic::Code;
use uuid::Uuid;

struct Suite {
    infra: TestInfra,
    supervision_node: Node,
    supervision: SupervisionClient<Channel>,
}

/// Accepts and resolves (and so is credited): never the verifier, who is the all-roles test principal.
const RESOLVER: &str = "handler-3";
const UNIT: &str = "532901003-SFS";

async fn boot() -> Suite {
    let infra = common::infra().await;
    let supervision_node = supervision(&infra).await;
    Suite { supervision: client(&supervision_node).await, infra, supervision_node }
}

impl Suite {
    /// Registers a case as intake would and dispatches its first task as routing would; returns once
    /// supervision has seen the dispatch.
    async fn registered(&mut self) -> (Uuid, String) {
        let case_id = Uuid::new_v4();
        let registered = CaseRegistered {
            case_no: "532901-20250807-00042".into(),
            channel: proto::vocab::v1::Channel::WalkIn.into(),
            kind: proto::vocab::v1::CaseKind::Dispute.into(),
            category_code: "0104".into(),
            urgency: proto::vocab::v1::Urgency::Normal.into(),
            grid_code: "532901001001001".into(),
            village_code: "532901001001".into(),
            area_path: vec!["532901001001".into(), "532901001000".into(), "532901000000".into()],
            center_code: "532901001000".into(),
            reporter_id: String::new(),
            ..Default::default()
        };
        self.infra.publish(case_id, "operator-1", Body::CaseRegistered(registered)).await;
        let task_id = Uuid::new_v4().to_string();
        self.infra.publish(case_id, "routing", dispatched(&task_id, UNIT, 1)).await;
        await_task(&self.infra, &task_id, "dispatched").await;
        (case_id, task_id)
    }

    /// A case whose task RESOLVER accepted and resolved, once supervision has seen the resolution.
    async fn resolved(&mut self) -> (Uuid, String) {
        let (case_id, task_id) = self.registered().await;
        self.infra.publish(case_id, RESOLVER, accepted(&task_id, RESOLVER)).await;
        self.infra.publish(case_id, RESOLVER, resolved(&task_id, RESOLVER)).await;
        await_task(&self.infra, &task_id, "resolved").await;
        (case_id, task_id)
    }

    async fn verify(
        &mut self,
        case_id: Uuid,
        passed: bool,
        reason: &str,
        note: &str,
    ) -> Result<proto::supervision::v1::Closure, tonic::Status> {
        let request = VerifyCaseRequest {
            case_id: case_id.to_string(),
            verifier_id: String::new(),
            passed,
            closure_reason: reason.into(),
            note: note.into(),
        };
        Ok(self.supervision.verify_case(request).await?.into_inner().closure.expect("closure"))
    }

    async fn follow_up(
        &mut self,
        case_id: Uuid,
        satisfaction: &str,
    ) -> Result<(proto::supervision::v1::Closure, bool), tonic::Status> {
        let request = FollowUpRequest {
            case_id: case_id.to_string(),
            visitor_id: String::new(),
            satisfaction: proto::json::wire::<proto::vocab::v1::Satisfaction>(satisfaction),
            note: String::new(),
        };
        let r = self.supervision.follow_up(request).await?.into_inner();
        Ok((r.closure.expect("closure"), r.reopened))
    }

    async fn stop(self) {
        self.supervision_node.stop().await;
    }
}

/// No routing runs in these tests. Where the latest task supervision has seen is not resolved, it asks routing
/// whether the resolution is only late (`service::resolution`); routing not answering, it cannot tell a late
/// resolution from none, so it says retry rather than "not resolved". (With routing there, the real refusal is
/// FAILED_PRECONDITION: `tests/tests/e2e/lifecycle.rs`.)
fn routing_asked(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "routing is unavailable; retry");
}

#[tokio::test]
async fn verifying_a_case_never_resolved_fails_and_an_unknown_case_is_not_found() {
    let mut s = boot().await;
    let (case_id, _) = s.registered().await;
    let status = s.verify(case_id, true, "resolved", "").await.expect_err("never resolved");
    routing_asked(&status);
    let status = s.follow_up(case_id, "satisfied").await.expect_err("not closed");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = s.verify(Uuid::new_v4(), true, "resolved", "").await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_verified_case_is_closed_then_followed_up_satisfied() {
    let mut s = boot().await;
    let (case_id, _) = s.resolved().await;
    let closure = s.verify(case_id, true, "mediated", "回访核实").await.expect("verified");
    assert_eq!((closure.round, closure.state().code(), closure.closure_reason.as_str()), (1, "closed", "mediated"));
    assert_eq!(closure.resolver_id, RESOLVER);
    let closed = await_event(&s.infra, case_id, "case.closed", |b| match b {
        Body::CaseClosed(c) => Some(c.clone()),
        _ => None,
    })
    .await;
    assert_eq!((closed.round, closed.resolver_id.as_str(), closed.category_code.as_str()), (1, RESOLVER, "0104"));
    let again = s.verify(case_id, true, "resolved", "").await.expect_err("already closed");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    let (closure, reopened) = s.follow_up(case_id, "satisfied").await.expect("followed up");
    assert!(!reopened);
    assert_eq!((closure.state().code(), closure.satisfaction().code()), ("followed_up", "satisfied"));
    let followed = await_event(&s.infra, case_id, "case.followed_up", |b| match b {
        Body::CaseFollowedUp(f) => Some(f.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (followed.round, followed.satisfaction().code(), followed.resolver_id.as_str(), followed.case_no.as_str()),
        (1, "satisfied", RESOLVER, "532901-20250807-00042")
    );
    assert_eq!(followed.category_code, "0104");
    let again = s.follow_up(case_id, "satisfied").await.expect_err("already followed up");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    s.stop().await;
}

#[tokio::test]
async fn an_unsatisfied_follow_up_reopens_the_case_for_another_round() {
    let mut s = boot().await;
    let (case_id, _) = s.resolved().await;
    s.verify(case_id, true, "resolved", "").await.expect("verified");
    let (closure, reopened) = s.follow_up(case_id, "unsatisfied").await.expect("followed up");
    assert!(reopened, "unsatisfied reopens");
    assert_eq!(closure.satisfaction().code(), "unsatisfied");
    let reopen = await_event(&s.infra, case_id, "case.reopened", |b| match b {
        Body::CaseReopened(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!((reopen.round, reopen.reason.as_str()), (2, "回访不满意"));
    // Until routing dispatches the new round, the latest task is the one already verified.
    let status = s.verify(case_id, true, "resolved", "").await.expect_err("round 2 has no task yet");
    routing_asked(&status);
    // Routing dispatches the reopened case again; the new round is not closable until it is resolved.
    let second = Uuid::new_v4().to_string();
    s.infra.publish(case_id, "routing", dispatched(&second, UNIT, 2)).await;
    assert_eq!(await_task(&s.infra, &second, "dispatched").await.round, 2, "dispatched in the reopened round");
    let status = s.verify(case_id, true, "resolved", "").await.expect_err("round 2 not resolved");
    routing_asked(&status);
    s.stop().await;
}

#[tokio::test]
async fn a_failed_verification_reopens_the_case() {
    let mut s = boot().await;
    let (case_id, _) = s.resolved().await;
    let closure = s.verify(case_id, false, "", "现场未整改").await.expect("verified");
    assert_eq!((closure.round, closure.state().code()), (1, "reopened"));
    let reopen = await_event(&s.infra, case_id, "case.reopened", |b| match b {
        Body::CaseReopened(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!((reopen.round, reopen.reason.as_str()), (2, "verification failed: 现场未整改"));
    let status = s.follow_up(case_id, "satisfied").await.expect_err("round 2 not closed");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    s.stop().await;
}

#[tokio::test]
async fn verify_and_follow_up_reject_bad_input() {
    let s = boot().await;
    let mut client = s.supervision.clone();
    let id = Uuid::new_v4().to_string();
    let verify = |case_id: &str, verifier: &str, passed: bool, reason: &str, note: &str| VerifyCaseRequest {
        case_id: case_id.into(),
        verifier_id: verifier.into(),
        passed,
        closure_reason: reason.into(),
        note: note.into(),
    };
    let cases = [
        ("no case", verify("", "v", true, "resolved", ""), "case_id"),
        ("bad case", verify("x", "v", true, "resolved", ""), "case_id"),
        ("verifier too long", verify(&id, &"v".repeat(65), true, "resolved", ""), "verifier_id"),
        ("no reason", verify(&id, "v", true, "", ""), "closure_reason"),
        ("unknown reason", verify(&id, "v", true, "fixed", ""), "closure_reason"),
        ("failed without note", verify(&id, "v", false, "", ""), "note"),
        ("note too long", verify(&id, "v", true, "resolved", &"长".repeat(2001)), "note"),
        ("NUL in note", verify(&id, "v", false, "", "核查\0不过"), "note"),
        ("NUL in verifier", verify(&id, "v\0", true, "resolved", ""), "verifier_id"),
        ("10 KB reason", verify(&id, "v", true, &"r".repeat(10 << 10), ""), "closure_reason"),
    ];
    for (name, request, field) in cases {
        let status = client.verify_case(request).await.expect_err(name);
        kit::testing::assert_refused(name, &status, Code::InvalidArgument, field);
    }
    let follow = |case_id: &str, visitor: &str, satisfaction: &str| FollowUpRequest {
        case_id: case_id.into(),
        visitor_id: visitor.into(),
        satisfaction: proto::json::wire::<proto::vocab::v1::Satisfaction>(satisfaction),
        note: String::new(),
    };
    let cases = [
        ("no case", follow("", "v", "satisfied"), "case_id"),
        ("bad case", follow("42", "v", "satisfied"), "case_id"),
        ("visitor too long", follow(&id, &"v".repeat(65), "satisfied"), "visitor_id"),
        ("no satisfaction", follow(&id, "v", ""), "satisfaction"),
        ("unknown satisfaction", follow(&id, "v", "happy"), "satisfaction"),
        ("10 KB satisfaction", follow(&id, "v", &"满意".repeat(2000)), "satisfaction"),
        ("NUL in satisfaction", follow(&id, "v", "satisfied\0"), "satisfaction"),
        ("NUL in visitor", follow(&id, "\0", "satisfied"), "visitor_id"),
        ("NUL in note", FollowUpRequest { note: "很好\0".into(), ..follow(&id, "v", "satisfied") }, "note"),
    ];
    for (name, request, field) in cases {
        let status = client.follow_up(request).await.expect_err(name);
        kit::testing::assert_refused(name, &status, Code::InvalidArgument, field);
    }
    s.stop().await;
}

#[tokio::test]
async fn verification_waits_for_the_resolution_to_be_seen_and_needs_no_routing() {
    // No routing service exists in this test at all: a resolution supervision has seen is verified on the events
    // alone.
    let mut s = boot().await;
    let (case_id, task_id) = s.registered().await;
    s.infra.publish(case_id, "handler-1", accepted(&task_id, "handler-1")).await;
    await_task(&s.infra, &task_id, "accepted").await;
    // Routing may already have resolved the task; until case.resolved reaches supervision it is not closable.
    let status = s.verify(case_id, true, "mediated", "").await.expect_err("resolution not seen yet");
    routing_asked(&status);

    // Resolved by another member of the unit, crediting a grid worker.
    s.infra.publish(case_id, "handler-2", resolved(&task_id, "grid-worker-7")).await;
    let task = await_task(&s.infra, &task_id, "resolved").await;
    assert_eq!(
        (task.handler_id.as_str(), task.resolved_by.as_str(), task.resolver_id.as_str()),
        ("handler-1", "handler-2", "grid-worker-7")
    );
    let closure = s.verify(case_id, true, "mediated", "").await.expect("verified once the resolution is seen");
    assert_eq!((closure.state().code(), closure.resolver_id.as_str()), ("closed", "grid-worker-7"));
    // The closure names the verified task and whoever resolved it, whom the follow-up keeps apart.
    let pool = s.infra.pool(supervision::NAME).await;
    let recorded: (String, String, String) =
        sqlx::query_as("SELECT task_id, handler_id, case_no FROM closures WHERE case_id = $1 AND round = 1")
            .bind(case_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, (task_id, "handler-2".to_owned(), "532901-20250807-00042".to_owned()));
    s.stop().await;
}

#[tokio::test]
async fn stale_events_after_the_resolution_do_not_move_the_task_back() {
    let mut s = boot().await;
    let (case_id, task_id) = s.resolved().await;
    let before = task_view(&s.infra, &task_id).await.unwrap();
    // Copies from before the resolution under new event ids (the inbox does not recognise them): an
    // acceptance by someone else, a return, and the dispatch again with other values.
    let stale = [
        publish_stale(&s.infra, case_id, "late-handler", accepted(&task_id, "late-handler"), 60_000).await,
        publish_stale(
            &s.infra,
            case_id,
            RESOLVER,
            Body::CaseReturned(CaseReturned { task_id: task_id.clone(), ..Default::default() }),
            60_000,
        )
        .await,
        publish_stale(&s.infra, case_id, "routing", dispatched(&task_id, "532901-RSJ", 7), 120_000).await,
    ];
    for id in &stale {
        await_handled(&s.infra, id).await;
    }
    let after = task_view(&s.infra, &task_id).await.unwrap();
    assert_eq!(after, before, "stale events changed the resolved task");
    assert_eq!((after.state.as_str(), after.handler_id.as_str(), after.attempt), ("resolved", RESOLVER, 1));
    let closure = s.verify(case_id, true, "resolved", "").await.expect("still verifiable");
    assert_eq!(closure.resolver_id, RESOLVER);
    s.stop().await;
}

#[tokio::test]
async fn the_task_projection_follows_routing_s_moves() {
    let mut s = boot().await;
    let (case_id, first) = s.registered().await;
    let second = Uuid::new_v4().to_string();
    let third = Uuid::new_v4().to_string();
    let returned = |t: &str| Body::CaseReturned(CaseReturned { task_id: t.into(), ..Default::default() });
    let rejected = |t: &str| Body::ReturnRejected(ReturnRejected { task_id: t.into(), note: String::new() });
    let reopened = |round| Body::CaseReopened(CaseReopened { round, reason: "回访不满意".into() });
    // (step, event, the states of the first, second and third task after it; "" for a task not yet seen)
    let steps: Vec<(&str, Body, [&str; 3])> = vec![
        ("returned", returned(&first), ["returned", "", ""]),
        ("return rejected", rejected(&first), ["dispatched", "", ""]),
        ("rejection seen again", rejected(&first), ["dispatched", "", ""]),
        ("returned again", returned(&first), ["returned", "", ""]),
        ("return rejected again", rejected(&first), ["dispatched", "", ""]),
        ("returned a third time", returned(&first), ["returned", "", ""]),
        ("return approved: next dispatch", dispatched(&second, "532901-ZRZYJ", 2), ["superseded", "dispatched", ""]),
        ("accepted", accepted(&second, "handler-9"), ["superseded", "accepted", ""]),
        ("a return after acceptance", returned(&second), ["superseded", "accepted", ""]),
        ("reopened into round 2", reopened(2), ["superseded", "superseded", ""]),
        ("round 2 dispatched", dispatched(&third, UNIT, 3), ["superseded", "superseded", "dispatched"]),
        ("the reopening seen again", reopened(2), ["superseded", "superseded", "dispatched"]),
        ("a superseded task accepted late", accepted(&second, "handler-9"), ["superseded", "superseded", "dispatched"]),
    ];
    for (step, body, want) in steps {
        let id = s.infra.publish(case_id, "routing", body).await;
        await_handled(&s.infra, &id).await;
        if step == "return rejected again" {
            // A return from before that rejection, replayed after it: the rejection stands.
            let stale = publish_stale(&s.infra, case_id, "routing", returned(&first), 30_000).await;
            await_handled(&s.infra, &stale).await;
        }
        let mut got = Vec::new();
        for t in [&first, &second, &third] {
            got.push(task_view(&s.infra, t).await.map(|v| v.state).unwrap_or_default());
        }
        assert_eq!(got, want, "after {step}");
    }
    let rounds: Vec<i32> = [task_view(&s.infra, &second).await, task_view(&s.infra, &third).await]
        .into_iter()
        .map(|t| t.unwrap().round)
        .collect();
    assert_eq!(rounds, [1, 2], "each task keeps the round it was dispatched in");
    let status = s.verify(case_id, true, "resolved", "").await.expect_err("round 2 not resolved");
    routing_asked(&status);
    s.stop().await;
}
