//! Deadlines (督办) against real PostgreSQL and NATS: projected from routing's events, fired from the
//! database by the scheduler.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{await_deadlines, bodies, client, deadline_states, set_policy, supervision};
use kit::testing::eventually;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseAccepted, CaseDispatched, CaseResolved, CaseReturned};
use proto::supervision::v1::ListDeadlinesRequest;
use uuid::Uuid;

fn dispatched(task_id: &str) -> Body {
    Body::CaseDispatched(CaseDispatched {
        task_id: task_id.into(),
        case_no: "532901-20250807-00042".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        category_code: "0104".into(),
        unit_kind: proto::vocab::v1::UnitKind::Center.into(),
        attempt: 1,
        ..Default::default()
    })
}

fn overdue_count(events: &[Body]) -> usize {
    events.iter().filter(|b| matches!(b, Body::DeadlineMissed(_))).count()
}

#[tokio::test]
async fn a_deadline_fires_exactly_once_across_a_restart() {
    let infra = common::infra().await;
    let first = supervision(&infra).await;
    set_policy(&infra, "accept", 3).await;
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    infra.publish(case_id, "routing", dispatched(&task_id)).await;
    await_deadlines(&infra, case_id, &[("accept", "pending")]).await;
    first.stop().await;
    assert_eq!(
        deadline_states(&infra, case_id).await,
        [("accept".to_owned(), "pending".to_owned())],
        "stopped before due"
    );

    // Nothing runs while the deadline passes.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let second = supervision(&infra).await;
    await_deadlines(&infra, case_id, &[("accept", "fired")]).await;
    let missed = eventually("case.overdue on the stream", 20, || async {
        bodies(&infra, case_id).await.into_iter().find_map(|b| match b {
            Body::DeadlineMissed(m) => Some(m),
            _ => None,
        })
    })
    .await;
    assert_eq!((missed.task_id.as_str(), missed.stage), (task_id.as_str(), proto::vocab::v1::Stage::Accept as i32));

    // A few more polls fire nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(overdue_count(&bodies(&infra, case_id).await), 1, "exactly one case.overdue");
    let listed = client(&second).await.list_deadlines(ListDeadlinesRequest { case_id: case_id.to_string() }).await;
    let listed = listed.expect("list deadlines").into_inner().deadlines;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].state().code(), listed[0].id.as_str()), ("fired", missed.deadline_id.as_str()));
    assert!(!listed[0].fired_at.is_empty(), "fired_at shown");
    second.stop().await;
}

#[tokio::test]
async fn accepting_before_the_deadline_fires_nothing() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    set_policy(&infra, "accept", 2).await;
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    infra.publish(case_id, "routing", dispatched(&task_id)).await;
    await_deadlines(&infra, case_id, &[("accept", "pending")]).await;
    let accepted = CaseAccepted { task_id: task_id.clone(), handler_id: "h-1".into() };
    infra.publish(case_id, "h-1", Body::CaseAccepted(accepted)).await;
    await_deadlines(&infra, case_id, &[("accept", "met"), ("resolve", "pending")]).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(overdue_count(&bodies(&infra, case_id).await), 0, "no case.overdue");
    assert_eq!(
        deadline_states(&infra, case_id).await,
        [("accept".to_owned(), "met".to_owned()), ("resolve".to_owned(), "pending".to_owned())]
    );
    let resolved = CaseResolved {
        task_id: task_id.clone(),
        outcome: proto::vocab::v1::Outcome::Handled.into(),
        resolver_id: "r-1".into(),
    };
    infra.publish(case_id, "r-1", Body::CaseResolved(resolved)).await;
    await_deadlines(&infra, case_id, &[("accept", "met"), ("resolve", "met")]).await;
    node.stop().await;
}

#[tokio::test]
async fn a_returned_task_cancels_its_accept_deadline_and_a_redelivery_adds_none() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let (case_id, task_id) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    infra.publish(case_id, "routing", dispatched(&task_id)).await;
    infra.publish(case_id, "routing", dispatched(&task_id)).await;
    await_deadlines(&infra, case_id, &[("accept", "pending")]).await;
    let returned = CaseReturned { task_id, reason_code: "not_local".into(), reason: "属地不符".into() };
    infra.publish(case_id, "h-1", Body::CaseReturned(returned)).await;
    await_deadlines(&infra, case_id, &[("accept", "cancelled")]).await;
    node.stop().await;
}

#[tokio::test]
async fn list_deadlines_rejects_bad_input() {
    let infra = common::infra().await;
    let node = supervision(&infra).await;
    let mut client = client(&node).await;
    for (name, case_id) in [("empty", ""), ("blank", "  "), ("not a uuid", "532901-20250807-00042")] {
        let status = client.list_deadlines(ListDeadlinesRequest { case_id: case_id.into() }).await.expect_err(name);
        kit::testing::assert_refused(name, &status, tonic::Code::InvalidArgument, "case_id");
    }
    node.stop().await;
}
