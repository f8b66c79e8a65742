//! Who may verify, follow up and read deadlines of which case: each role at each place relative to the case,
//! actors taken from the token, and supervision kept out of the hands that reported or handled the case.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Node, accepted, await_task, dispatched, resolved, supervision};
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, assert_refused, eventually, keys};
use proto::events::v1::CaseRegistered;
use proto::events::v1::envelope::Body;
use proto::supervision::v1::supervision_client::SupervisionClient;
use proto::supervision::v1::{FollowUpRequest, ListDeadlinesRequest, VerifyCaseRequest};
use tonic::Code;
use uuid::Uuid;

const VILLAGE: &str = "532901003001";
const GRID: &str = "532901003001001";
const REPORTER: &str = "reporter-1";
/// The unit every test case is dispatched to (the township center).
const UNIT: &str = "532901003000";

struct Suite {
    infra: TestInfra,
    supervision: Node,
}

async fn boot() -> Suite {
    let infra = common::infra().await;
    let supervision = supervision(&infra).await;
    Suite { infra, supervision }
}

impl Suite {
    async fn as_(&self, person: &str, grants: &[(&str, &str)]) -> SupervisionClient<Channel> {
        SupervisionClient::new(kit::testing::connect_as(&self.supervision.url(), &keys().token(person, grants)).await)
    }

    /// Registers a case in the test grid, reported by REPORTER, dispatches its task to UNIT as routing would,
    /// and waits until supervision knows where the case is and has seen the task.
    async fn registered(&self) -> (Uuid, String) {
        let case_id = Uuid::new_v4();
        let registered = CaseRegistered {
            case_no: "532901003-20250807-00042".into(),
            channel: proto::vocab::v1::Channel::GridApp.into(),
            kind: proto::vocab::v1::CaseKind::Dispute.into(),
            category_code: "0102".into(),
            urgency: proto::vocab::v1::Urgency::Normal.into(),
            grid_code: GRID.into(),
            village_code: VILLAGE.into(),
            area_path: vec![
                VILLAGE.into(),
                "532901003000".into(),
                "532901000000".into(),
                "532900000000".into(),
                "530000000000".into(),
            ],
            center_code: "532901003000".into(),
            reporter_id: REPORTER.into(),
            center_name: "下关街道".into(),
            ..Default::default()
        };
        self.infra.publish(case_id, REPORTER, Body::CaseRegistered(registered)).await;
        let pool = self.infra.pool(supervision::NAME).await;
        eventually("supervision placed the case", 20, || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cases WHERE case_id = $1 AND area_path <> '{}'")
                .bind(case_id)
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 1).then_some(())
        })
        .await;
        let task_id = Uuid::new_v4().to_string();
        self.infra.publish(case_id, "routing", dispatched(&task_id, UNIT, 1)).await;
        await_task(&self.infra, &task_id, "dispatched").await;
        (case_id, task_id)
    }

    /// A registered case accepted and resolved by `handler`, who is credited, once supervision has seen it.
    async fn resolved_by(&self, handler: &str) -> Uuid {
        let (case_id, task_id) = self.registered().await;
        self.infra.publish(case_id, handler, accepted(&task_id, handler)).await;
        self.infra.publish(case_id, handler, resolved(&task_id, handler)).await;
        await_task(&self.infra, &task_id, "resolved").await;
        case_id
    }

    async fn resolved(&self) -> Uuid {
        self.resolved_by("h-1").await
    }

    /// Verified (closed) by the all-roles caller, ready for a follow-up.
    async fn closed(&self) -> Uuid {
        let case_id = self.resolved().await;
        let mut root = SupervisionClient::new(kit::testing::connect(&self.supervision.url()).await);
        root.verify_case(pass(case_id, "")).await.expect("root verifies");
        case_id
    }

    async fn stop(self) {
        self.supervision.stop().await;
    }
}

fn pass(case_id: Uuid, verifier: &str) -> VerifyCaseRequest {
    VerifyCaseRequest {
        case_id: case_id.to_string(),
        verifier_id: verifier.into(),
        passed: true,
        closure_reason: "mediated".into(),
        note: String::new(),
    }
}

fn visit(case_id: Uuid, visitor: &str) -> FollowUpRequest {
    FollowUpRequest {
        case_id: case_id.to_string(),
        visitor_id: visitor.into(),
        satisfaction: proto::vocab::v1::Satisfaction::Satisfied.into(),
        note: String::new(),
    }
}

fn check<T>(row: &str, what: &str, r: Result<tonic::Response<T>, tonic::Status>, want: Option<Code>) {
    match (r, want) {
        (Ok(_), None) => {}
        (Ok(_), Some(c)) => panic!("{row}: {what} succeeded, expected {c:?}"),
        (Err(s), None) => panic!("{row}: {what} refused: {s:?}"),
        (Err(s), Some(c)) => assert_refused(&format!("{row}: {what}"), &s, c, ""),
    }
}

/// Grants as (role, scope node).
type Grants = &'static [(&'static str, &'static str)];

const OK: Option<Code> = None;
const NF: Option<Code> = Some(Code::NotFound);
const PD: Option<Code> = Some(Code::PermissionDenied);

#[tokio::test]
async fn verification_and_deadlines_follow_the_grant_s_place() {
    let s = boot().await;
    // (row, grants, verify, list deadlines)
    let rows: &[(&str, Grants, Option<Code>, Option<Code>)] = &[
        ("supervisor, same village", &[("supervisor", VILLAGE)], OK, OK),
        ("supervisor, parent township", &[("supervisor", "532901003000")], OK, OK),
        ("center leader, county", &[("center_leader", "532901000000")], OK, OK),
        ("supervisor, sibling village", &[("supervisor", "532901003002")], NF, NF),
        ("supervisor, other county", &[("supervisor", "532922000000")], NF, NF),
        (
            "supervisor elsewhere who reads here as a dispatcher",
            &[("supervisor", "532922000000"), ("dispatcher", VILLAGE)],
            PD,
            OK,
        ),
        ("grid worker, same grid (no verify role)", &[("grid_worker", GRID)], PD, OK),
        ("grid worker, sibling grid", &[("grid_worker", "532901003001002")], PD, NF),
    ];
    for (i, (row, grants, verify, read)) in rows.iter().enumerate() {
        let case_id = s.resolved().await;
        let mut client = s.as_(&format!("person-{i}"), grants).await;
        let deadlines = client.list_deadlines(ListDeadlinesRequest { case_id: case_id.to_string() }).await;
        check(row, "list deadlines", deadlines, *read);
        check(row, "verify", client.verify_case(pass(case_id, "")).await, *verify);
    }
    s.stop().await;
}

#[tokio::test]
async fn follow_up_follows_the_grant_s_place() {
    let s = boot().await;
    let rows: &[(&str, Grants, Option<Code>)] = &[
        ("follow-up clerk, same village", &[("follow_up_clerk", VILLAGE)], OK),
        ("follow-up clerk, county", &[("follow_up_clerk", "532901000000")], OK),
        ("follow-up clerk, sibling village", &[("follow_up_clerk", "532901003002")], NF),
        ("follow-up clerk, other county", &[("follow_up_clerk", "532922000000")], NF),
        (
            "follow-up clerk elsewhere who reads here as a supervisor",
            &[("follow_up_clerk", "532922000000"), ("supervisor", VILLAGE)],
            PD,
        ),
    ];
    for (i, (row, grants, want)) in rows.iter().enumerate() {
        let case_id = s.closed().await;
        let mut client = s.as_(&format!("clerk-{i}"), grants).await;
        check(row, "follow up", client.follow_up(visit(case_id, "")).await, *want);
    }
    s.stop().await;
}

#[tokio::test]
async fn handling_reporting_and_supervising_stay_in_different_hands() {
    let s = boot().await;
    let supervisor = [("supervisor", VILLAGE)];

    let case_id = s.resolved_by("h-s").await;
    let own = s.as_("h-s", &supervisor).await.verify_case(pass(case_id, "")).await;
    check("the resolver verifying", "verify", own, PD);
    let reporter = s.as_(REPORTER, &supervisor).await.verify_case(pass(case_id, "")).await;
    check("the reporter verifying", "verify", reporter, PD);
    let spoofed = s.as_("sup-1", &supervisor).await.verify_case(pass(case_id, "sup-2")).await;
    check("naming another verifier", "verify", spoofed, PD);
    let closure = s.as_("sup-1", &supervisor).await.verify_case(pass(case_id, "sup-1")).await;
    assert_eq!(closure.unwrap().into_inner().closure.unwrap().resolver_id, "h-s", "naming oneself is fine");

    let clerk = [("follow_up_clerk", VILLAGE)];
    let case_id = s.resolved_by("h-f").await;
    SupervisionClient::new(kit::testing::connect(&s.supervision.url()).await)
        .verify_case(pass(case_id, ""))
        .await
        .expect("root verifies");
    check("the resolver visiting", "follow up", s.as_("h-f", &clerk).await.follow_up(visit(case_id, "")).await, PD);
    check("the reporter visiting", "follow up", s.as_(REPORTER, &clerk).await.follow_up(visit(case_id, "")).await, PD);
    let spoofed = s.as_("fu-1", &clerk).await.follow_up(visit(case_id, "fu-2")).await;
    check("naming another visitor", "follow up", spoofed, PD);
    check("another clerk", "follow up", s.as_("fu-1", &clerk).await.follow_up(visit(case_id, "")).await, OK);
    s.stop().await;
}

#[tokio::test]
async fn a_hidden_case_answers_exactly_as_an_unknown_one() {
    let s = boot().await;
    let case_id = s.resolved().await;
    let mut outsider = s.as_("outsider", &[("supervisor", "532922000000")]).await;
    let unknown = Uuid::new_v4();
    for (what, hidden, absent) in [
        (
            "verify",
            outsider.verify_case(pass(case_id, "")).await.unwrap_err(),
            outsider.verify_case(pass(unknown, "")).await.unwrap_err(),
        ),
        (
            "list deadlines",
            outsider.list_deadlines(ListDeadlinesRequest { case_id: case_id.to_string() }).await.unwrap_err(),
            outsider.list_deadlines(ListDeadlinesRequest { case_id: unknown.to_string() }).await.unwrap_err(),
        ),
    ] {
        assert_eq!(
            (hidden.code(), hidden.message().replace(&case_id.to_string(), "ID")),
            (absent.code(), absent.message().replace(&unknown.to_string(), "ID")),
            "{what}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn a_unit_sees_the_deadlines_of_its_own_tasks_only() {
    let s = boot().await;
    let (case_id, _) = s.registered().await;
    let unit = UNIT;
    let handler = |u: &str| {
        keys()
            .token_with("h-1", vec![kit::auth::Grant { role: "handler".into(), scope: String::new(), unit: u.into() }])
    };
    let mut own = SupervisionClient::new(kit::testing::connect_as(&s.supervision.url(), &handler(unit)).await);
    let deadlines = eventually("the accept deadline", 20, || {
        let mut own = own.clone();
        async move {
            let d = own.list_deadlines(ListDeadlinesRequest { case_id: case_id.to_string() }).await.ok()?;
            let d = d.into_inner().deadlines;
            (!d.is_empty()).then_some(d)
        }
    })
    .await;
    assert!(deadlines.iter().all(|d| d.stage == "accept"), "{deadlines:?}");
    let mut other =
        SupervisionClient::new(kit::testing::connect_as(&s.supervision.url(), &handler("532901-RSJ")).await);
    let refused = other.list_deadlines(ListDeadlinesRequest { case_id: case_id.to_string() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "another unit sees nothing of the case");
    let unknown = own.list_deadlines(ListDeadlinesRequest { case_id: Uuid::new_v4().to_string() }).await.unwrap_err();
    assert_eq!((unknown.code(), unknown.message().len() > 10), (Code::NotFound, true));
    s.stop().await;
}
