//! Dispatch (分流交办) driven by events: by the rules, 兜底 to the center, once per case, again on reopening.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{CENTER, boot, envelope, registered};
use proto::events::v1::CaseReopened;
use proto::events::v1::envelope::Body;
use proto::routing::v1::{
    AcceptTaskRequest, ListRulesRequest, ResolveTaskRequest, ReturnTaskRequest, ReviewReturnRequest,
};
use uuid::Uuid;

#[tokio::test]
async fn a_registered_case_goes_to_the_unit_its_best_rule_names() {
    let h = boot().await;
    h.put_rule("any-dispute", 1, "01", "", "mediation").await;
    h.put_rule("neighbours-here", 1, "0102", "532901", "judicial-office").await;
    h.put_rule("neighbours-elsewhere", 5, "0102", "532902", "other-county").await;

    let (case_id, task) = h.register("0102", "normal").await;

    assert_eq!((task.unit_code.as_str(), task.rule_id.as_str()), ("judicial-office", "neighbours-here"));
    assert_eq!(
        (task.state().code(), task.unit_kind().code(), task.attempt, task.round),
        ("dispatched", "department", 1, 1)
    );
    assert_eq!(task.case_id, case_id.to_string());
    let day = &task.dispatched_at[..10].replace('-', "");
    assert_eq!(task.slip_no, format!("JB-532901-{day}-0001"), "slip number of the center's first dispatch today");
    assert!(task.dispatched_at.ends_with("+08:00"), "times are shown in Asia/Shanghai: {}", task.dispatched_at);

    let event = h.dispatched_event(&task.id).await;
    assert_eq!(event.slip_no, task.slip_no);
    assert_eq!(
        (event.unit_code.as_str(), event.unit_kind().code(), event.rule_id.as_str()),
        ("judicial-office", "department", "neighbours-here")
    );
    let normal = proto::vocab::v1::Urgency::Normal as i32;
    assert_eq!((event.category_code.as_str(), event.urgency, event.attempt), ("0102", normal, 1));
    assert_eq!(event.case_no, task.case_no);

    let rules = h.client.clone().list_rules(ListRulesRequest {}).await.expect("list rules").into_inner().rules;
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["neighbours-elsewhere", "neighbours-here", "any-dispute"], "rules in order of preference");
}

#[tokio::test]
async fn without_a_matching_rule_the_center_keeps_the_case() {
    let h = boot().await;
    h.put_rule("fire", 1, "0201", "", "fire-brigade").await;

    let (_, task) = h.register("0106", "urgent").await;

    assert_eq!((task.unit_kind().code(), task.unit_code.as_str()), ("center", CENTER));
    assert_eq!(task.unit_name, format!("属地综治中心 {CENTER}"));
    assert_eq!(task.rule_id, "", "兜底 names no rule");
    let event = h.dispatched_event(&task.id).await;
    assert_eq!((event.unit_kind().code(), event.unit_code.as_str()), ("center", CENTER));
}

#[tokio::test]
async fn a_redelivered_registration_is_dispatched_once() {
    let h = boot().await;
    let case_id = Uuid::new_v4();
    let event = envelope(case_id, registered("532901-20250807-00001", "0102", "normal"));
    h.infra.publish_envelope(&event).await;
    h.infra.publish_envelope(&event).await;
    h.task_no(case_id, 1).await;
    // A second registration afterwards proves the consumer got past the duplicate before we count.
    let (_, later) = h.register("0103", "normal").await;
    h.dispatched_event(&later.id).await;

    let tasks = h.tasks(case_id).await;
    assert_eq!(tasks.len(), 1, "one task for one case, however often the event arrives");
    let dispatched =
        h.infra.events().await.into_iter().filter(|e| matches!(e.body, Some(Body::CaseDispatched(_)))).count();
    assert_eq!(dispatched, 2, "one case.dispatched per registered case");
}

#[tokio::test]
async fn a_reopened_case_is_dispatched_again_in_a_new_round_without_old_exclusions() {
    let h = boot().await;
    h.put_rule("first-choice", 9, "01", "", "judicial-office").await;
    h.put_rule("second-choice", 1, "01", "", "mediation").await;
    let (case_id, first) = h.register("0102", "normal").await;
    let (mut client, mut officer) = (h.client.clone(), h.officer().await);
    officer
        .return_task(ReturnTaskRequest {
            task_id: first.id.clone(),
            handler_id: String::new(),
            reason_code: "overlapping_duties".into(),
            reason: "调解组织更合适".into(),
        })
        .await
        .expect("return");
    let review = ReviewReturnRequest {
        task_id: first.id.clone(),
        reviewer_id: String::new(),
        approve: true,
        note: String::new(),
    };
    let second = client.review_return(review).await.expect("approve").into_inner().next_task.expect("next task");
    assert_eq!(second.unit_code, "mediation");
    officer
        .accept_task(AcceptTaskRequest { task_id: second.id.clone(), handler_id: String::new() })
        .await
        .expect("accept");
    let resolve = ResolveTaskRequest {
        task_id: second.id.clone(),
        resolver_id: String::new(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: String::new(),
    };
    officer.resolve_task(resolve).await.expect("resolve");

    h.infra
        .publish(case_id, "supervision", Body::CaseReopened(CaseReopened { round: 2, reason: "回访不满意".into() }))
        .await;

    let third = h.task_no(case_id, 3).await;
    assert_eq!((third.state().code(), third.round, third.attempt), ("dispatched", 2, 3));
    assert_eq!(third.unit_code, "judicial-office", "a new round forgets the units excluded in the last one");
    h.dispatched_event(&third.id).await;
    let states: Vec<String> = h.tasks(case_id).await.into_iter().map(|t| t.state().code().to_owned()).collect();
    assert_eq!(states, ["superseded", "resolved", "dispatched"], "earlier tasks stay as history");
}

#[tokio::test]
async fn events_for_unknown_cases_are_ignored() {
    let h = boot().await;
    let stranger = Uuid::new_v4();
    h.infra.publish(stranger, "supervision", Body::CaseReopened(CaseReopened { round: 2, reason: "?".into() })).await;
    // The consumer handles events in order: once a later case is dispatched, the reopening was handled.
    h.register("0102", "normal").await;
    assert!(h.tasks(stranger).await.is_empty());
}
