//! Verification (核查/销号) and follow-up (回访) against a real routing service, PostgreSQL and NATS.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Node, await_event, client, routing, supervision};
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, eventually};
use proto::events::v1::CaseRegistered;
use proto::events::v1::envelope::Body;
use proto::routing::v1::routing_client::RoutingClient;
use proto::routing::v1::{AcceptTaskRequest, ListTasksRequest, ResolveTaskRequest, Task};
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::supervision::v1::{FollowUpRequest, VerifyCaseRequest};
use tonic::Code;
use uuid::Uuid;

struct Suite {
    infra: TestInfra,
    routing_node: Node,
    supervision_node: Node,
    routing: RoutingClient<Channel>,
    /// A handler of every unit, who accepts and resolves (and so is credited): never the verifier.
    handler: RoutingClient<Channel>,
    supervision: SupervisionClient<Channel>,
}

const RESOLVER: &str = "handler-3";

async fn boot() -> Suite {
    let infra = TestInfra::new().await;
    let routing_node = routing(&infra).await;
    let supervision_node = supervision(&infra, &routing_node.url()).await;
    Suite {
        routing: RoutingClient::new(kit::testing::connect(&routing_node.url()).await),
        handler: RoutingClient::new(
            kit::testing::connect_as(&routing_node.url(), &kit::testing::keys().token(RESOLVER, &[("handler", "*")]))
                .await,
        ),
        supervision: client(&supervision_node).await,
        infra,
        routing_node,
        supervision_node,
    }
}

impl Suite {
    /// Registers a case as intake would and waits for routing to dispatch it.
    async fn registered(&mut self) -> (Uuid, Task) {
        let case_id = Uuid::new_v4();
        let registered = CaseRegistered {
            case_no: "532901-20250807-00042".into(),
            channel: "walk_in".into(),
            kind: "dispute".into(),
            category_code: "0104".into(),
            urgency: "normal".into(),
            grid_code: "532901001001001".into(),
            village_code: "532901001001".into(),
            area_path: vec!["532901001001".into(), "532901001000".into(), "532901000000".into()],
            center_code: "532901001000".into(),
            reporter_id: String::new(),
        };
        self.infra.publish(case_id, "operator-1", Body::CaseRegistered(registered)).await;
        let task = self.task_in(case_id, "dispatched", 1).await;
        (case_id, task)
    }

    /// Waits until the case has `count` tasks, the latest in `state`.
    async fn task_in(&mut self, case_id: Uuid, state: &str, count: usize) -> Task {
        let routing = self.routing.clone();
        eventually(&format!("task {count} {state}"), 20, || {
            let mut routing = routing.clone();
            async move {
                let tasks = routing.list_tasks(ListTasksRequest { case_id: case_id.to_string() }).await.ok()?;
                let tasks = tasks.into_inner().tasks;
                tasks.last().filter(|t| tasks.len() == count && t.state == state).cloned()
            }
        })
        .await
    }

    /// A case that routing has dispatched, accepted and resolved.
    async fn resolved(&mut self) -> (Uuid, Task) {
        let (case_id, task) = self.registered().await;
        let accept = AcceptTaskRequest { task_id: task.id.clone(), handler_id: String::new() };
        self.handler.accept_task(accept).await.expect("accept");
        let resolve = ResolveTaskRequest {
            task_id: task.id.clone(),
            resolver_id: String::new(),
            outcome: "dispute_resolved".into(),
            note: "双方达成调解协议".into(),
        };
        let task = self.handler.resolve_task(resolve).await.expect("resolve").into_inner().task.expect("task");
        (case_id, task)
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
            satisfaction: satisfaction.into(),
            note: String::new(),
        };
        let r = self.supervision.follow_up(request).await?.into_inner();
        Ok((r.closure.expect("closure"), r.reopened))
    }

    async fn stop(self) {
        self.supervision_node.stop().await;
        self.routing_node.stop().await;
    }
}

#[tokio::test]
async fn verifying_a_case_never_resolved_fails_and_an_unknown_case_is_not_found() {
    let mut s = boot().await;
    let (case_id, _) = s.registered().await;
    let status = s.verify(case_id, true, "resolved", "").await.expect_err("never resolved");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("closing a case never resolved"), "{}", status.message());
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
    assert_eq!((closure.round, closure.state.as_str(), closure.closure_reason.as_str()), (1, "closed", "mediated"));
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
    assert_eq!((closure.state.as_str(), closure.satisfaction.as_str()), ("followed_up", "satisfied"));
    let followed = await_event(&s.infra, case_id, "case.followed_up", |b| match b {
        Body::CaseFollowedUp(f) => Some(f.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (followed.round, followed.satisfaction.as_str(), followed.resolver_id.as_str(), followed.case_no.as_str()),
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
    assert_eq!(closure.satisfaction, "unsatisfied");
    let reopen = await_event(&s.infra, case_id, "case.reopened", |b| match b {
        Body::CaseReopened(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!((reopen.round, reopen.reason.as_str()), (2, "回访不满意"));
    // Routing dispatches the reopened case again; the new round is not closable until it is resolved.
    s.task_in(case_id, "dispatched", 2).await;
    let status = s.verify(case_id, true, "resolved", "").await.expect_err("round 2 not resolved");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_failed_verification_reopens_the_case() {
    let mut s = boot().await;
    let (case_id, _) = s.resolved().await;
    let closure = s.verify(case_id, false, "", "现场未整改").await.expect("verified");
    assert_eq!((closure.round, closure.state.as_str()), (1, "reopened"));
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
        satisfaction: satisfaction.into(),
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
