//! The work queues, each as the person who opens it, through the gateway: seven cases in several states and
//! places (six in 下关, one in 大理镇 outside it), driven forward by the demo's handlers, supervisor and
//! follow-up clerk; one made overdue by its real deadline firing. Then each queue is read by each person,
//! and its members, order and counts checked — and the case outside 下关 never appears in 下关's queues.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use kit::testing::{AuthedChannel, eventually};
use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::{Case, GetCaseRequest, ListCaseBoardRequest, ListCaseBoardResponse, RegisterCaseRequest};
use proto::routing::v1::{AcceptTaskRequest, ListTaskQueueRequest, ListTaskQueueResponse, ResolveTaskRequest};
use proto::supervision::v1::{FollowUpRequest, VerifyCaseRequest};
use tests::World;
use tonic::Code;

type Desk = DeskClient<AuthedChannel>;

const TOWNSHIP: &str = "532901003000";
const COUNTY: &str = "532901000000";
/// 兴盛社区, another village of 下关 (the demo's grids are all in 龙溪社区).
const OTHER_VILLAGE: &str = "532901003002";
/// 五华社区 of 大理镇: in 大理市, outside 下关.
const OUTSIDE_VILLAGE: &str = "532901102001";

fn registration(key: &str, center: &str, location: &str, category: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: center.into(),
        channel: proto::vocab::v1::Channel::WalkIn.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: category.into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: format!("工作台测试 {key}"),
        description: "用于检查各岗位的待办".into(),
        location_code: location.into(),
        parties: vec![],
        reporter_id: String::new(),
        operator_id: String::new(),
    }
}

async fn register(desk: &mut Desk, r: RegisterCaseRequest) -> Case {
    desk.register_case(r).await.unwrap().into_inner().case.unwrap()
}

/// The case once intake's projection satisfies `ok`.
async fn case_when(world: &World, id: &str, what: &str, ok: impl Fn(&Case) -> bool) -> Case {
    eventually(what, 20, || {
        let mut desk = world.desk.clone();
        let id = id.to_owned();
        let ok = &ok;
        async move {
            let case = desk.get_case(GetCaseRequest { case_ref: id }).await.ok()?.into_inner().case?;
            ok(&case).then_some(case)
        }
    })
    .await
}

async fn dispatched(world: &World, id: &str) -> String {
    case_when(world, id, "dispatch", |c| c.state().code() == "dispatched").await.current_task_id
}

fn board(center: &str) -> ListCaseBoardRequest {
    ListCaseBoardRequest { center_code: center.into(), ..Default::default() }
}

/// The cases' letters, in the order given.
struct Names(HashMap<String, &'static str>);

impl Names {
    fn cases(&self, r: &ListCaseBoardResponse) -> Vec<&'static str> {
        r.cases.iter().map(|c| self.0.get(&c.id).copied().unwrap_or("?")).collect()
    }

    fn tasks(&self, r: &ListTaskQueueResponse) -> Vec<&'static str> {
        r.tasks.iter().map(|t| self.0.get(&t.case_id).copied().unwrap_or("?")).collect()
    }
}

async fn read_board(desk: &Desk, r: ListCaseBoardRequest) -> ListCaseBoardResponse {
    desk.clone().list_case_board(r).await.unwrap().into_inner()
}

async fn read_tasks(desk: &Desk, r: ListTaskQueueRequest) -> ListTaskQueueResponse {
    desk.clone().list_task_queue(r).await.unwrap().into_inner()
}

fn counts(r: &[(String, u64)]) -> Vec<(String, u64)> {
    r.iter().filter(|(_, n)| *n > 0).cloned().collect()
}

fn board_counts(r: &ListCaseBoardResponse) -> Vec<(String, u64)> {
    counts(&r.counts.iter().map(|c| (c.state().code().to_owned(), c.count)).collect::<Vec<_>>())
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

async fn accept(desk: &mut Desk, task: &str) {
    desk.accept_task(AcceptTaskRequest { task_id: task.into(), handler_id: String::new() }).await.unwrap();
}

async fn resolve(desk: &mut Desk, task: &str) {
    let r = ResolveTaskRequest {
        task_id: task.into(),
        resolver_id: String::new(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        note: "已调解".into(),
    };
    desk.resolve_task(r).await.unwrap();
}

async fn verify(desk: &mut Desk, case: &str) {
    let r = VerifyCaseRequest {
        case_id: case.into(),
        verifier_id: String::new(),
        passed: true,
        closure_reason: "mediated".into(),
        note: String::new(),
    };
    desk.verify_case(r).await.unwrap();
}

#[tokio::test]
async fn each_person_sees_their_own_queue_in_order_with_counts() {
    let world = World::start().await;
    let (mut gw1, _) = world.sign_in("gw-001").await;
    let (mut clerk, _) = world.sign_in("xg-clerk").await;
    let (dispatcher, dispatcher_token) = world.sign_in("xg-dispatcher").await;
    let (mut sfs, sfs_token) = world.sign_in("xg-sfs").await;
    let (mut supervisor, _) = world.sign_in("xg-supervisor").await;
    let (mut follow_up, _) = world.sign_in("xg-followup").await;
    let (leader, _) = world.sign_in("xg-leader").await;
    let (mut county, _) = world.sign_in("dl-dispatcher").await;
    let (rsj, _) = world.sign_in("dl-rsj").await;
    let grid = |i: usize| world.demo.grids[i].clone();

    // Registered in this order; 0101/0102 go to the 司法所 (下关), 0106 to the county's 人社局.
    let a = register(&mut gw1, registration("q-a", TOWNSHIP, &grid(0), "0102")).await;
    let b = register(&mut gw1, registration("q-b", TOWNSHIP, &grid(0), "0101")).await;
    let c = register(&mut clerk, registration("q-c", TOWNSHIP, &grid(1), "0102")).await;
    // D starts a new second, so a registration-time filter at D's (second-precision) time splits C from D.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let d = register(&mut clerk, registration("q-d", TOWNSHIP, &grid(2), "0106")).await;
    let e = register(&mut clerk, registration("q-e", TOWNSHIP, OTHER_VILLAGE, "0101")).await;
    let f = register(&mut clerk, registration("q-f", TOWNSHIP, OTHER_VILLAGE, "0102")).await;
    let x = register(&mut county, registration("q-x", COUNTY, OUTSIDE_VILLAGE, "0106")).await;
    let names = Names(
        [(&a, "A"), (&b, "B"), (&c, "C"), (&d, "D"), (&e, "E"), (&f, "F"), (&x, "X")]
            .into_iter()
            .map(|(case, n)| (case.id.clone(), n))
            .collect(),
    );
    let mut tasks = HashMap::new();
    for case in [&a, &b, &c, &d, &e, &f, &x] {
        tasks.insert(case.id.clone(), dispatched(&world, &case.id).await);
    }
    let task = |case: &Case| tasks[&case.id].clone();

    // A accepted; C resolved (awaiting 核查); E closed (awaiting 回访); F closed and visited.
    accept(&mut sfs, &task(&a)).await;
    for case in [&c, &e, &f] {
        accept(&mut sfs, &task(case)).await;
        resolve(&mut sfs, &task(case)).await;
    }
    for case in [&e, &f] {
        world.resolution_seen(&task(case)).await;
    }
    verify(&mut supervisor, &e.id).await;
    verify(&mut supervisor, &f.id).await;
    let visit = FollowUpRequest {
        case_id: f.id.clone(),
        visitor_id: String::new(),
        satisfaction: proto::vocab::v1::Satisfaction::Satisfied.into(),
        note: String::new(),
    };
    follow_up.follow_up(visit).await.unwrap();

    // B's 签收 deadline is due now, its yellow card next: supervision's scheduler fires it and case.overdue
    // reaches intake and routing.
    let supervision = world.infra.pool("supervision").await;
    let b_task = task(&b);
    eventually("B's accept deadline exists", 20, || {
        let (pool, id) = (supervision.clone(), b_task.clone());
        async move {
            let moved = sqlx::query(
                "UPDATE deadlines SET due_at = now() - interval '1 minute', next_grade = 'yellow', \
                 next_at = now() - interval '1 minute' WHERE task_id = $1 AND stage = 'accept' AND state = 'pending'",
            )
            .bind(id)
            .execute(&pool)
            .await
            .ok()?;
            (moved.rows_affected() == 1).then_some(())
        }
    })
    .await;
    case_when(&world, &a.id, "A accepted", |c| c.state().code() == "accepted").await;
    case_when(&world, &b.id, "B overdue", |c| c.overdue).await;
    case_when(&world, &c.id, "C resolved", |c| c.state().code() == "resolved").await;
    case_when(&world, &e.id, "E closed", |c| c.state().code() == "closed" && c.awaiting_follow_up).await;
    case_when(&world, &f.id, "F visited", |c| c.timeline.iter().any(|t| t.action == "followed_up")).await;
    eventually("B's task overdue in routing", 20, || {
        let sfs = sfs.clone();
        async move { read_tasks(&sfs, ListTaskQueueRequest::default()).await.overdue.eq(&1).then_some(()) }
    })
    .await;

    // The township dispatcher's board: open cases of 下关, overdue first, then oldest; X is the county's.
    let r = read_board(&dispatcher, board(TOWNSHIP)).await;
    assert_eq!(names.cases(&r), ["B", "A", "C", "D"]);
    assert!(r.cases[0].overdue && !r.cases[1].overdue);
    assert_eq!(board_counts(&r), pairs(&[("dispatched", 2), ("accepted", 1), ("resolved", 1), ("closed", 2)]));
    assert_eq!((r.overdue, r.awaiting_verification, r.awaiting_follow_up), (1, 1, 1));
    let r = read_board(&dispatcher, board(COUNTY)).await;
    assert_eq!(names.cases(&r), ["B", "A", "C", "D"], "asking for the county gives only the dispatcher's township");
    let r = read_board(&dispatcher, board("")).await;
    assert_eq!(names.cases(&r), ["B", "A", "C", "D"], "no center: the whole reach");
    let r = read_board(
        &dispatcher,
        ListCaseBoardRequest { state: proto::vocab::v1::CaseState::Closed.into(), ..board(TOWNSHIP) },
    )
    .await;
    assert_eq!(names.cases(&r), ["E", "F"]);

    // Filters, each table row one request.
    let d_time = d.registered_at.clone();
    for (name, request, want) in [
        (
            "dispatched",
            ListCaseBoardRequest { state: proto::vocab::v1::CaseState::Dispatched.into(), ..board(TOWNSHIP) },
            vec!["B", "D"],
        ),
        ("labour disputes", ListCaseBoardRequest { category_prefix: "0106".into(), ..board(TOWNSHIP) }, vec!["D"]),
        (
            "disputes",
            ListCaseBoardRequest { category_prefix: "01".into(), ..board(TOWNSHIP) },
            vec!["B", "A", "C", "D"],
        ),
        ("overdue only", ListCaseBoardRequest { overdue_only: true, ..board(TOWNSHIP) }, vec!["B"]),
        ("since D", ListCaseBoardRequest { registered_after: d_time.clone(), ..board(TOWNSHIP) }, vec!["D"]),
        (
            "before D",
            ListCaseBoardRequest { registered_before: d_time.clone(), ..board(TOWNSHIP) },
            vec!["B", "A", "C"],
        ),
        ("a village", board(OTHER_VILLAGE), vec![]),
    ] {
        assert_eq!(names.cases(&read_board(&dispatcher, request).await), want, "{name}");
    }
    let r = read_board(&dispatcher, ListCaseBoardRequest { category_prefix: "0106".into(), ..board(TOWNSHIP) }).await;
    assert_eq!(board_counts(&r), pairs(&[("dispatched", 1)]), "counts follow the category filter");

    // Pages of two, then the end; a token is refused when garbage or used with other filters.
    let first = read_board(&dispatcher, ListCaseBoardRequest { page_size: 2, ..board(TOWNSHIP) }).await;
    assert_eq!(names.cases(&first), ["B", "A"]);
    let next = ListCaseBoardRequest { page_size: 2, page_token: first.next_page_token.clone(), ..board(TOWNSHIP) };
    let second = read_board(&dispatcher, next).await;
    assert_eq!(names.cases(&second), ["C", "D"]);
    let last = ListCaseBoardRequest { page_size: 2, page_token: second.next_page_token.clone(), ..board(TOWNSHIP) };
    let last = read_board(&dispatcher, last).await;
    assert!(last.cases.is_empty() && last.next_page_token.is_empty());
    for (name, request) in [
        ("garbage", ListCaseBoardRequest { page_token: "garbage".into(), ..board(TOWNSHIP) }),
        (
            "other filters",
            ListCaseBoardRequest {
                state: proto::vocab::v1::CaseState::Dispatched.into(),
                page_token: first.next_page_token.clone(),
                ..board(TOWNSHIP)
            },
        ),
    ] {
        let refused = dispatcher.clone().list_case_board(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{name}");
        assert_eq!(kit::grpc::violated_fields(&refused), ["page_token"], "{name}");
    }

    // The county dispatcher sees the county, X included.
    let r = read_board(&county, board(COUNTY)).await;
    assert_eq!(names.cases(&r), ["B", "A", "C", "D", "X"]);
    assert_eq!(board_counts(&r), pairs(&[("dispatched", 3), ("accepted", 1), ("resolved", 1), ("closed", 2)]));

    // The grid worker of grid 001 sees grid 001's cases only, whichever node is asked for.
    for center in ["", TOWNSHIP, COUNTY] {
        let r = read_board(&gw1, board(center)).await;
        assert_eq!(names.cases(&r), ["B", "A"], "gw-001 at {center:?}");
        assert_eq!(board_counts(&r), pairs(&[("dispatched", 1), ("accepted", 1)]));
    }
    let r = read_board(&gw1, ListCaseBoardRequest { queue: "verification".into(), ..board("") }).await;
    assert!(r.cases.is_empty(), "C is in grid 002");

    // The center head's queues: awaiting 核查 holds exactly the resolved case, awaiting 回访 the unvisited one.
    let r = read_board(&leader, ListCaseBoardRequest { queue: "verification".into(), ..board(TOWNSHIP) }).await;
    assert_eq!(names.cases(&r), ["C"]);
    let r = read_board(&leader, ListCaseBoardRequest { queue: "follow_up".into(), ..board(TOWNSHIP) }).await;
    assert_eq!(names.cases(&r), ["E"]);
    assert!(r.cases[0].awaiting_follow_up);
    let mixed = ListCaseBoardRequest {
        queue: "follow_up".into(),
        state: proto::vocab::v1::CaseState::Closed.into(),
        ..board(TOWNSHIP)
    };
    let refused = leader.clone().list_case_board(mixed).await.unwrap_err();
    assert_eq!(kit::grpc::violated_fields(&refused), ["state"]);

    // The 司法所's handler: the unit's open tasks, overdue first; the county units' tasks are not there.
    let r = read_tasks(&sfs, ListTaskQueueRequest::default()).await;
    assert_eq!(names.tasks(&r), ["B", "A"]);
    assert!(r.tasks[0].overdue && r.tasks[0].overdue_stage == "accept" && r.tasks[0].due_at.ends_with("+08:00"));
    assert!(!r.tasks[1].overdue && r.tasks[1].due_at.is_empty());
    let tabs: Vec<(String, u64)> = r.counts.iter().map(|c| (c.state().code().to_owned(), c.count)).collect();
    assert_eq!(tabs, pairs(&[("dispatched", 1), ("accepted", 1), ("returned", 0)]));
    assert_eq!(r.overdue, 1);
    let mine = read_tasks(&sfs, ListTaskQueueRequest { mine: true, ..Default::default() }).await;
    assert_eq!(names.tasks(&mine), ["A"], "mine: the tasks the handler accepted");
    let accepted = read_tasks(
        &sfs,
        ListTaskQueueRequest { state: proto::vocab::v1::TaskState::Accepted.into(), ..Default::default() },
    )
    .await;
    assert_eq!(names.tasks(&accepted), ["A"]);
    let page = read_tasks(&sfs, ListTaskQueueRequest { page_size: 1, ..Default::default() }).await;
    assert_eq!(names.tasks(&page), ["B"]);
    let rest = ListTaskQueueRequest { page_size: 1, page_token: page.next_page_token, ..Default::default() };
    assert_eq!(names.tasks(&read_tasks(&sfs, rest).await), ["A"]);
    let refused = sfs
        .list_task_queue(ListTaskQueueRequest {
            state: proto::vocab::v1::TaskState::Resolved.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(kit::grpc::violated_fields(&refused), ["state"]);

    // The county's 人社局 handler: D and X, oldest first.
    let r = read_tasks(&rsj, ListTaskQueueRequest::default()).await;
    assert_eq!(names.tasks(&r), ["D", "X"]);
    // A dispatcher handles no tasks: the board is theirs, not this queue.
    let refused = dispatcher.clone().list_task_queue(ListTaskQueueRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // The same through the JSON face, with the people's own tokens.
    let path = format!("/v1/queues/board?center_code={TOWNSHIP}&state=dispatched");
    let (status, body) = world.http_as(Some(&dispatcher_token), "GET", &path, "").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [b.id.as_str(), d.id.as_str()]);
    assert_eq!(body["overdue"], 1);
    let (status, body) = world.http_as(Some(&sfs_token), "GET", "/v1/queues/tasks?mine=true", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tasks"][0]["case_id"], a.id.as_str());
    assert_eq!(body["tasks"].as_array().unwrap().len(), 1);
    for (token, path, field) in [
        (&dispatcher_token, "/v1/queues/board?page_token=garbage", "page_token"),
        (&dispatcher_token, "/v1/queues/board?state=dispatched%00", "state"),
        (&dispatcher_token, "/v1/queues/board?center_code=12345", "center_code"),
        (&sfs_token, "/v1/queues/tasks?page_token=%00", "page_token"),
        (&sfs_token, "/v1/queues/tasks?unit_code=%00", "unit_code"),
    ] {
        let (status, body) = world.http_as(Some(token), "GET", path, "").await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["fields"], serde_json::json!([field]), "{path}");
    }
    world.stop().await;
}
