//! A merged case's live task is superseded (case.merged), and an unmerged one is dispatched again by the rules
//! (case.unmerged); a repeated event changes nothing more.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{boot, envelope};
use kit::testing::eventually;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseMerged, CaseUnmerged};
use proto::routing::v1::{AcceptTaskRequest, ResolveTaskRequest};
use tonic::Code;
use uuid::Uuid;

#[tokio::test]
async fn a_merged_case_loses_its_task_and_an_unmerged_one_is_dispatched_again() {
    let h = boot().await;
    h.put_rule("neighbours", 1, "0102", "", "judicial-office").await;
    let (case_id, task) = h.register("0102", "normal").await;
    let mut officer = h.officer().await;
    officer.accept_task(AcceptTaskRequest { task_id: task.id.clone(), handler_id: String::new() }).await.unwrap();

    let merged = Body::CaseMerged(CaseMerged {
        into_case_id: Uuid::new_v4().to_string(),
        into_case_no: "532901003-20261128-00001".into(),
        reason: "同一纠纷".into(),
    });
    let first = envelope(case_id, merged.clone());
    h.infra.publish_envelope(&first).await;
    let state = eventually("the task superseded", 10, || async {
        let t = h.tasks(case_id).await.into_iter().next()?;
        (t.state().code() == "superseded").then_some(t.state().code())
    })
    .await;
    assert_eq!(state, "superseded");
    let resolve = ResolveTaskRequest {
        task_id: task.id.clone(),
        resolver_id: String::new(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "已调解".into(),
    };
    let refused = officer.resolve_task(resolve).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "a superseded task is not resolved: {}", refused.message());

    // The same merge again (redelivered, and once more under another id) supersedes and dispatches nothing.
    h.infra.publish_envelope(&first).await;
    h.infra.publish_envelope(&envelope(case_id, merged)).await;
    h.infra.drained(routing::NAME).await;
    assert_eq!(h.tasks(case_id).await.len(), 1);

    let unmerged =
        Body::CaseUnmerged(CaseUnmerged { from_case_id: Uuid::new_v4().to_string(), reason: "非同一事项".into() });
    h.infra.publish_envelope(&envelope(case_id, unmerged)).await;
    let next = h.task_no(case_id, 2).await;
    assert_eq!((next.state().code(), next.unit_code.as_str(), next.round), ("dispatched", "judicial-office", 1));
    assert_ne!(next.slip_no, task.slip_no, "a new 交办单");
    let event = h.dispatched_event(&next.id).await;
    assert_eq!(event.unit_code, "judicial-office");
    let states: Vec<String> = h.tasks(case_id).await.into_iter().map(|t| t.state().code().to_owned()).collect();
    assert_eq!(states, ["superseded", "dispatched"], "one live task");
}
