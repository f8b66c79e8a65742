//! One case driven around the whole closed loop through the gateway only, each step by the person whose job it
//! is, signed in with the demo accounts: the grid worker registers, the 司法所 handler returns it, the
//! dispatcher approves the return, the 自然资源局 handler accepts and resolves, the supervisor verifies, the
//! follow-up clerk's unsatisfied 回访 reopens it, the second round closes with a satisfied 回访, and the single
//! 以案定补 credit goes to the grid worker — with the timeline and its actors checked step by step.

#![allow(clippy::unwrap_used)]

use kit::testing::eventually;
use proto::intake::v1::{Case, GetCaseRequest, ListCasesRequest, PartyInput, RegisterCaseRequest};
use proto::registry::v1::GetLedgerRequest;
use proto::routing::v1::{
    AcceptTaskRequest, GetTaskRequest, ResolveTaskRequest, ReturnTaskRequest, ReviewReturnRequest,
};
use proto::subsidy::v1::ListCreditsRequest;
use proto::supervision::v1::{FollowUpRequest, VerifyCaseRequest};
use tests::World;
use tonic::Code;

fn registration(world: &World, key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: world.demo.center_code.clone(),
        channel: proto::vocab::v1::Channel::GridApp.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "楼上漏水引发邻里纠纷".into(),
        description: "三楼住户反映楼上长期漏水, 协商未果".into(),
        location_code: world.demo.grids[0].clone(),
        parties: vec![
            PartyInput {
                name: "张三".into(),
                phone: "13812345678".into(),
                id_number: "11010519491231002X".into(),
                role: proto::vocab::v1::PartyRole::Applicant.into(),
            },
            PartyInput {
                name: "李四".into(),
                phone: "13987654321".into(),
                id_number: String::new(),
                role: proto::vocab::v1::PartyRole::Respondent.into(),
            },
        ],
        reporter_id: world.demo.grid_workers[0].clone(),
        operator_id: String::new(),
    }
}

async fn case_when(world: &World, id: &str, what: &str, ok: impl Fn(&Case) -> bool) -> Case {
    let desk = world.desk.clone();
    eventually(what, 20, || {
        let mut desk = desk.clone();
        let id = id.to_owned();
        let ok = &ok;
        async move {
            let case = desk.get_case(GetCaseRequest { case_ref: id }).await.ok()?.into_inner().case?;
            ok(&case).then_some(case)
        }
    })
    .await
}

#[tokio::test]
async fn a_case_goes_around_the_whole_loop_through_the_gateway() {
    let world = World::start().await;
    let desk = world.desk.clone();
    let worker = world.demo.grid_workers[0].clone();
    let (mut grid_worker, _) = world.sign_in("gw-001").await;
    let (mut dispatcher, _) = world.sign_in("xg-dispatcher").await;
    let (mut sfs, _) = world.sign_in("xg-sfs").await;
    let (mut zrzy, _) = world.sign_in("dl-zrzy").await;
    let (mut supervisor, _) = world.sign_in("xg-supervisor").await;
    let (mut follow_up, _) = world.sign_in("xg-followup").await;
    let person = |mut d: proto::gateway::v1::desk_client::DeskClient<kit::testing::AuthedChannel>| async move {
        d.who_am_i(proto::registry::v1::WhoAmIRequest {}).await.unwrap().into_inner().person_id
    };
    let (zrzy_id, supervisor_id) = (person(zrzy.clone()).await, person(supervisor.clone()).await);

    // 受理登记 from a client that sends W3C trace context, and an idempotent replay that writes nothing new.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut traced = tonic::Request::new(registration(&world, "app-7f3a"));
    traced.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    let first = grid_worker.register_case(traced).await.unwrap().into_inner();
    let case = first.case.unwrap();
    assert!(!first.replayed);
    assert!(case.case_no.starts_with("532901003-") && case.case_no.ends_with("-00001"), "{}", case.case_no);
    assert_eq!(case.parties[0].phone, "138****5678", "phone masked");
    assert_eq!(case.parties[0].id_number, "1101**********002X", "ID number masked");
    let replay = grid_worker.register_case(registration(&world, "app-7f3a")).await.unwrap().into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.case.unwrap().id, case.id);
    let listed = dispatcher
        .list_cases(ListCasesRequest { center_code: world.demo.center_code.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1, "the replay registered nothing new");

    // 分流交办 by rule: a neighbour dispute in 下关 goes to the 司法所.
    let c = case_when(&world, &case.id, "first dispatch", |c| c.state().code() == "dispatched").await;
    let task =
        sfs.get_task(GetTaskRequest { task_id: c.current_task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.unit_code, "532901003-SFS");
    assert!(task.slip_no.starts_with("JB-532901003-"), "{}", task.slip_no);

    // The client's trace went gateway → intake over gRPC, and intake → routing over NATS: both events carry it.
    for service in ["intake", "routing"] {
        let pool = world.infra.pool(service).await;
        let parents: Vec<String> = sqlx::query_scalar("SELECT trace->>'traceparent' FROM outbox ORDER BY seq LIMIT 1")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(parents[0].contains(trace_id), "{service}'s first event continues the client's trace: {parents:?}");
    }

    // Closing a case never resolved is refused.
    let refused = supervisor
        .verify_case(VerifyCaseRequest {
            case_id: case.id.clone(),
            verifier_id: String::new(),
            passed: true,
            closure_reason: "resolved".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // 退单 with a reason; the center approves and the case goes to the next unit by rule.
    sfs.return_task(ReturnTaskRequest {
        task_id: task.id.clone(),
        handler_id: String::new(),
        reason_code: "ownership_unclear".into(),
        reason: "涉及房屋产权, 非调解范围".into(),
    })
    .await
    .unwrap();
    let reviewed = dispatcher
        .review_return(ReviewReturnRequest {
            task_id: task.id.clone(),
            reviewer_id: String::new(),
            approve: true,
            note: "转自然资源局".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let second = reviewed.next_task.unwrap();
    assert_eq!(second.unit_code, "532901-ZRZYJ");
    assert_eq!(second.attempt, 2);

    // 签收 → 办结 → 核查/销号.
    // The 司法所's handler cannot touch another unit's task.
    let other = sfs.accept_task(AcceptTaskRequest { task_id: second.id.clone(), handler_id: String::new() }).await;
    assert_eq!(other.unwrap_err().code(), Code::NotFound, "another unit's task is invisible");
    zrzy.accept_task(AcceptTaskRequest { task_id: second.id.clone(), handler_id: String::new() }).await.unwrap();
    let early = zrzy
        .accept_task(AcceptTaskRequest { task_id: second.id.clone(), handler_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "accepting twice");
    zrzy.resolve_task(ResolveTaskRequest {
        task_id: second.id.clone(),
        resolver_id: worker.clone(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "已调解, 签订协议".into(),
    })
    .await
    .unwrap();
    // Verified at once: supervision has not heard of 办结 yet, asks routing, and waits for the event.
    supervisor
        .verify_case(VerifyCaseRequest {
            case_id: case.id.clone(),
            verifier_id: String::new(),
            passed: true,
            closure_reason: "mediated".into(),
            note: String::new(),
        })
        .await
        .unwrap();

    // 回访 unsatisfied → reopened and dispatched again.
    let visit = follow_up
        .follow_up(FollowUpRequest {
            case_id: case.id.clone(),
            visitor_id: String::new(),
            satisfaction: proto::vocab::v1::Satisfaction::Unsatisfied.into(),
            note: "漏水仍未修复".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(visit.reopened);
    let c = case_when(&world, &case.id, "re-dispatch after reopen", |c| {
        c.state().code() == "dispatched" && c.current_task_id != second.id && c.current_task_id != task.id
    })
    .await;
    let third = c.current_task_id.clone();

    // The second round, closed with a satisfied 回访.
    sfs.accept_task(AcceptTaskRequest { task_id: third.clone(), handler_id: String::new() }).await.unwrap();
    sfs.resolve_task(ResolveTaskRequest {
        task_id: third.clone(),
        resolver_id: worker.clone(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "维修完成".into(),
    })
    .await
    .unwrap();
    supervisor
        .verify_case(VerifyCaseRequest {
            case_id: case.id.clone(),
            verifier_id: String::new(),
            passed: true,
            closure_reason: "resolved".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    let visit = follow_up
        .follow_up(FollowUpRequest {
            case_id: case.id.clone(),
            visitor_id: String::new(),
            satisfaction: proto::vocab::v1::Satisfaction::Satisfied.into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!visit.reopened);

    // 以案定补: one credit to the resolving grid worker, by the default tariff (100 元 = 10000 fen).
    let c = case_when(&world, &case.id, "the credit on the timeline", |c| {
        c.timeline.iter().any(|t| t.action == "credited")
    })
    .await;
    let credits = world
        .desk
        .clone()
        .list_credits(ListCreditsRequest { case_id: case.id.clone(), person_id: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(credits.credits.len(), 1);
    assert_eq!(credits.credits[0].person_id, worker);
    assert_eq!(credits.total_fen, 10_000);

    // The timeline tells the whole story, each step starting where the previous one ended.
    let actions: Vec<&str> = c.timeline.iter().map(|t| t.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "registered",
            "dispatched",
            "returned",
            "dispatched",
            "accepted",
            "resolved",
            "closed",
            "followed_up",
            "reopened",
            "dispatched",
            "accepted",
            "resolved",
            "closed",
            "followed_up",
            "credited"
        ]
    );
    for pair in c.timeline.windows(2) {
        assert_eq!(
            pair[1].from_state, pair[0].to_state,
            "step {} starts where step {} ended",
            pair[1].seq, pair[0].seq
        );
    }
    assert_eq!(c.state().code(), "closed");
    // The actors are the people who signed in, never what a request said.
    let actor = |action: &str| c.timeline.iter().find(|t| t.action == action).map(|t| t.actor.clone()).unwrap();
    assert_eq!(actor("registered"), worker);
    assert_eq!(actor("accepted"), zrzy_id);
    assert_eq!(actor("closed"), supervisor_id);
    assert!(c.timeline.iter().all(|t| t.at.ends_with("+08:00")), "times shown in Asia/Shanghai");
    assert!(!format!("{c:?}").contains("13812345678"), "no full phone number anywhere in the case file");

    // The tree ledger counted the case once, closed, at every level up to the prefecture.
    for code in [world.demo.grids[0].as_str(), "532901003001", "532901003000", "532901000000", "532900000000"] {
        let closed = eventually("the ledger shows the case closed", 20, || {
            let mut desk = desk.clone();
            let code = code.to_owned();
            async move {
                let row = desk.get_ledger(GetLedgerRequest { code }).await.ok()?.into_inner().row?;
                let cases = row.cases?;
                (cases.closed == 1 && cases.open == 0).then_some(cases)
            }
        })
        .await;
        assert_eq!(closed.overdue, 0, "{code}");
    }

    // Still exactly one credit a moment later.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let credits = grid_worker
        .list_credits(ListCreditsRequest { case_id: String::new(), person_id: worker })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(credits.credits.len(), 1);
    world.stop().await;
}
