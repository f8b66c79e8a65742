//! A case merged into another (case.merged): its open task is superseded in supervision's view, its pending
//! deadlines are cancelled, and it can be neither verified nor followed up itself, so it is never closed or
//! credited; case.unmerged lifts the refusal.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{accepted, await_deadlines, await_handled, await_task, client, dispatched, resolved, supervision};
use kit::testing::TestInfra;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseMerged, CaseRegistered, CaseUnmerged};
use proto::supervision::v1::{FollowUpRequest, VerifyCaseRequest};
use tonic::Code;
use uuid::Uuid;

const UNIT: &str = "532901003-SFS";
const RESOLVER: &str = "handler-3";

async fn register(infra: &TestInfra) -> (Uuid, String) {
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
    infra.publish(case_id, "operator-1", Body::CaseRegistered(registered)).await;
    let task_id = Uuid::new_v4().to_string();
    infra.publish(case_id, "routing", dispatched(&task_id, UNIT, 1)).await;
    await_task(infra, &task_id, "dispatched").await;
    (case_id, task_id)
}

fn merged() -> Body {
    Body::CaseMerged(CaseMerged {
        into_case_id: Uuid::new_v4().to_string(),
        into_case_no: "532901-20250807-00001".into(),
        reason: "同一纠纷".into(),
    })
}

#[tokio::test]
async fn a_merged_case_has_its_task_superseded_and_its_deadlines_cancelled() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let (case_id, task_id) = register(&infra).await;
    infra.publish(case_id, RESOLVER, accepted(&task_id, RESOLVER)).await;
    await_deadlines(&infra, case_id, &[("accept", "met"), ("resolve", "pending")]).await;

    let id = infra.publish(case_id, "dispatcher-1", merged()).await;
    await_handled(&infra, &id).await;
    await_deadlines(&infra, case_id, &[("accept", "met"), ("resolve", "cancelled")]).await;
    assert_eq!(await_task(&infra, &task_id, "superseded").await.state, "superseded");
    // Once more under another id: nothing else changes.
    let again = infra.publish(case_id, "dispatcher-1", merged()).await;
    await_handled(&infra, &again).await;
    await_deadlines(&infra, case_id, &[("accept", "met"), ("resolve", "cancelled")]).await;
    node.stop().await;
}

#[tokio::test]
async fn a_merged_case_is_never_verified_or_followed_up_until_unmerged() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let mut s = client(&node).await;
    let (case_id, task_id) = register(&infra).await;
    infra.publish(case_id, RESOLVER, accepted(&task_id, RESOLVER)).await;
    infra.publish(case_id, RESOLVER, resolved(&task_id, RESOLVER)).await;
    await_task(&infra, &task_id, "resolved").await;
    let id = infra.publish(case_id, "dispatcher-1", merged()).await;
    await_handled(&infra, &id).await;

    let verify = VerifyCaseRequest {
        case_id: case_id.to_string(),
        verifier_id: String::new(),
        passed: true,
        closure_reason: "mediated".into(),
        note: String::new(),
    };
    let refused = s.verify_case(verify.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().starts_with("case_id is merged into 532901-20250807-00001"), "{}", refused.message());
    let visit = FollowUpRequest {
        case_id: case_id.to_string(),
        visitor_id: String::new(),
        satisfaction: proto::vocab::v1::Satisfaction::Satisfied.into(),
        note: String::new(),
    };
    assert_eq!(s.follow_up(visit).await.unwrap_err().code(), Code::FailedPrecondition);

    let unmerged =
        Body::CaseUnmerged(CaseUnmerged { from_case_id: Uuid::new_v4().to_string(), reason: "误并".into() });
    let id = infra.publish(case_id, "dispatcher-1", unmerged).await;
    await_handled(&infra, &id).await;
    // Unmerged, the refusal is lifted: what decides now is the case's own handling (its resolved task).
    let closure = s.verify_case(verify).await.unwrap().into_inner().closure.unwrap();
    assert_eq!(closure.state().code(), "closed");
    node.stop().await;
}
