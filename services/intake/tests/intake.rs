//! Intake against a real registry, PostgreSQL and NATS: registration, idempotency, case numbers, the
//! case-file consumer, and every bad input naming its field.

#![allow(clippy::unwrap_used)]

use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseAccepted, CaseDispatched};
use proto::intake::v1::intake_client::IntakeClient;
use proto::intake::v1::*;
use tonic::Code;

const VILLAGE: &str = "532901003001";
const TOWNSHIP: &str = "532901003000";

struct Started {
    client: IntakeClient<kit::testing::AuthedChannel>,
    stops: Vec<kit::app::StopHandle>,
}

async fn start(infra: &TestInfra) -> Started {
    let reg_cfg = infra.config(registry::NAME);
    registry::import_dali(&registry::connect(&reg_cfg).await.unwrap()).await.unwrap();
    let reg = registry::build(reg_cfg, registry::Peers::default()).await.unwrap();
    let peers = intake::Peers { registry_url: format!("http://{}", reg.addr()) };
    let app = intake::build(infra.config(intake::NAME), peers).await.unwrap();
    let url = format!("http://{}", app.addr());
    let stops = vec![reg.stop_handle(), app.stop_handle()];
    tokio::spawn(reg.run_until(std::future::pending()));
    tokio::spawn(app.run_until(std::future::pending()));
    Started { client: IntakeClient::new(kit::testing::connect(&url).await), stops }
}

fn request(key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: TOWNSHIP.into(),
        channel: "walk_in".into(),
        kind: "dispute".into(),
        category_code: "0106".into(),
        urgency: "normal".into(),
        title: "工地拖欠工资".into(),
        description: "12 名工人 3 个月工资未结".into(),
        location_code: VILLAGE.into(),
        parties: vec![PartyInput {
            name: "王五".into(),
            phone: "13700001111".into(),
            id_number: "11010519491231002X".into(),
            role: "applicant".into(),
        }],
        reporter_id: String::new(),
        // Empty: the operator is the signed-in principal.
        operator_id: String::new(),
    }
}

#[tokio::test]
async fn registration_numbers_cases_and_replays_by_key() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let a = s.client.register_case(request("k-1")).await.unwrap().into_inner();
    let b = s.client.register_case(request("k-2")).await.unwrap().into_inner();
    let (a, b) = (a.case.unwrap(), b.case.unwrap());
    let day = &a.case_no[10..18];
    assert_eq!(a.case_no, format!("532901003-{day}-00001"));
    assert_eq!(b.case_no, format!("532901003-{day}-00002"));
    assert_eq!(a.village_code, VILLAGE);
    assert_eq!(a.parties[0].phone, "137****1111");

    let again = s.client.register_case(request("k-1")).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.case.unwrap().case_no, a.case_no);
    let mut other = request("k-1");
    other.category_code = "0102".into();
    let reused = s.client.register_case(other).await.unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "a key reused for a different case");
    // Any difference at all is another registration, not a retry.
    type Edit = fn(&mut RegisterCaseRequest);
    let differences: Vec<(&str, Edit)> = vec![
        ("title", |r| r.title = "另一件事".into()),
        ("description", |r| r.description.push('!')),
        ("channel", |r| r.channel = "hotline".into()),
        ("urgency", |r| r.urgency = "urgent".into()),
        ("reporter", |r| r.reporter_id = "p-9".into()),
        ("party name", |r| r.parties[0].name = "王六".into()),
        ("party phone", |r| r.parties[0].phone = "13700002222".into()),
        ("party role", |r| r.parties[0].role = "respondent".into()),
        ("no parties", |r| r.parties.clear()),
        ("one more party", |r| r.parties.push(r.parties[0].clone())),
    ];
    for (what, edit) in differences {
        let mut r = request("k-1");
        edit(&mut r);
        let status = s.client.register_case(r).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "key reused with another {what}: {}", status.message());
    }
    // Normalization is not a difference: the same registration with padding and a lower-case check letter.
    let mut padded = request("k-1");
    padded.title = format!("  {}  ", padded.title);
    padded.parties[0].id_number = padded.parties[0].id_number.to_lowercase();
    let again = s.client.register_case(padded).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.case.unwrap().case_no, a.case_no);

    // Concurrent registrations with one key: one case, the others replay it.
    let mut handles = Vec::new();
    for _ in 0..6 {
        let mut c = s.client.clone();
        handles.push(tokio::spawn(async move { c.register_case(request("k-race")).await.unwrap().into_inner() }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut fresh = 0;
    for h in handles {
        let r = h.await.unwrap();
        fresh += usize::from(!r.replayed);
        ids.insert(r.case.unwrap().id);
    }
    assert_eq!((ids.len(), fresh), (1, 1));

    let pool = infra.pool("intake").await;
    let events: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM outbox ORDER BY seq").fetch_all(&pool).await.unwrap();
    assert_eq!(events, vec!["case.registered"; 3], "one event per case, none for replays");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT phone_sealed FROM case_parties LIMIT 1").fetch_one(&pool).await.unwrap();
    assert!(!stored.windows(11).any(|w| w == b"13700001111"), "phone sealed at rest");
    let on_stream = eventually("registered events on the stream", 10, || async {
        let n = infra.events().await.len();
        (n == 3).then_some(n)
    })
    .await;
    assert_eq!(on_stream, 3);
    for stop in s.stops {
        stop.stop();
    }
}

#[tokio::test]
async fn the_case_file_follows_events_once_each() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let case = s.client.register_case(request("k-file")).await.unwrap().into_inner().case.unwrap();
    let case_id = uuid::Uuid::parse_str(&case.id).unwrap();
    let dispatched = Body::CaseDispatched(CaseDispatched {
        task_id: "t-1".into(),
        slip_no: "JB-532901003-20250807-0001".into(),
        unit_code: "532901-RSJ".into(),
        unit_name: "大理市人社局".into(),
        unit_kind: "department".into(),
        attempt: 1,
        ..Default::default()
    });
    let id = infra.publish(case_id, "routing", dispatched.clone()).await;
    // The same event delivered again (as after a crash before the ack) must not add a step.
    let envelope = proto::events::v1::Envelope {
        event_id: id,
        case_id: case.id.clone(),
        occurred_at_ms: chrono::Utc::now().timestamp_millis(),
        actor: "routing".into(),
        body: Some(dispatched),
    };
    infra.publish_envelope(&envelope).await;
    infra
        .publish(case_id, "h-1", Body::CaseAccepted(CaseAccepted { task_id: "t-1".into(), handler_id: "h-1".into() }))
        .await;
    let file = eventually("accepted in the case file", 10, || {
        let mut c = s.client.clone();
        let id = case.id.clone();
        async move {
            let case = c.get_case(GetCaseRequest { case_ref: id }).await.ok()?.into_inner().case?;
            (case.state == "accepted").then_some(case)
        }
    })
    .await;
    let steps: Vec<(&str, &str, &str)> =
        file.timeline.iter().map(|t| (t.action.as_str(), t.from_state.as_str(), t.to_state.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            ("registered", "", "registered"),
            ("dispatched", "registered", "dispatched"),
            ("accepted", "dispatched", "accepted")
        ]
    );
    assert_eq!(file.current_unit_code, "532901-RSJ");
    let by_number = s.client.get_case(GetCaseRequest { case_ref: file.case_no.clone() }).await.unwrap().into_inner();
    assert_eq!(by_number.case.unwrap().id, file.id, "found by case number too");
    for stop in s.stops {
        stop.stop();
    }
}

#[tokio::test]
async fn bad_registrations_name_their_field_and_write_nothing() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    type Edit = fn(&mut RegisterCaseRequest);
    let cases: Vec<(&str, Edit, Code, &str)> = vec![
        ("no key", |r| r.idempotency_key.clear(), Code::InvalidArgument, "idempotency_key"),
        ("center not 12 digits", |r| r.center_code = "5329".into(), Code::InvalidArgument, "center_code"),
        ("center not over the place", |r| r.center_code = "532931000000".into(), Code::InvalidArgument, "center_code"),
        ("channel", |r| r.channel = "fax".into(), Code::InvalidArgument, "channel"),
        ("kind", |r| r.kind = "gossip".into(), Code::InvalidArgument, "kind"),
        ("category shape", |r| r.category_code = "01".into(), Code::InvalidArgument, "category_code"),
        ("category unknown", |r| r.category_code = "0999".into(), Code::InvalidArgument, "category_code"),
        ("category of another kind", |r| r.category_code = "0201".into(), Code::InvalidArgument, "category_code"),
        ("urgency", |r| r.urgency = "asap".into(), Code::InvalidArgument, "urgency"),
        ("title", |r| r.title = " ".into(), Code::InvalidArgument, "title"),
        ("location shape", |r| r.location_code = "abc".into(), Code::InvalidArgument, "location_code"),
        ("location unknown", |r| r.location_code = "532901003999".into(), Code::InvalidArgument, "location_code"),
        ("location not a village", |r| r.location_code = TOWNSHIP.into(), Code::InvalidArgument, "location_code"),
        ("party phone", |r| r.parties[0].phone = "138".into(), Code::InvalidArgument, "parties[0].phone"),
        (
            "party id",
            |r| r.parties[0].id_number = "110105194912310021".into(),
            Code::InvalidArgument,
            "parties[0].id_number",
        ),
        ("party name", |r| r.parties[0].name.clear(), Code::InvalidArgument, "parties[0].name"),
        ("someone else as operator", |r| r.operator_id = "op-2".into(), Code::PermissionDenied, ""),
    ];
    for (name, edit, code, field) in cases {
        let mut req = request(&format!("bad-{name}"));
        edit(&mut req);
        let status = s.client.register_case(req).await.unwrap_err();
        kit::testing::assert_refused(name, &status, code, field);
    }
    let missing = s.client.get_case(GetCaseRequest { case_ref: "532901003-20250101-00001".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let empty = s.client.get_case(GetCaseRequest::default()).await.unwrap_err();
    assert_eq!(kit::grpc::violated_fields(&empty), vec!["case_ref"]);
    let token = s
        .client
        .list_cases(ListCasesRequest { center_code: TOWNSHIP.into(), page_size: 5, page_token: "garbage".into() })
        .await
        .unwrap_err();
    assert_eq!(kit::grpc::violated_fields(&token), vec!["page_token"]);

    let pool = infra.pool("intake").await;
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM cases) + (SELECT count(*) FROM outbox) + (SELECT count(*) FROM case_numbers)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(written, 0, "nothing half-written by a refused registration");
    for stop in s.stops {
        stop.stop();
    }
}

#[tokio::test]
async fn huge_and_nul_bearing_values_are_refused_by_name() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    // A 10 KB value used to be echoed whole into the status, whose trailer then broke the HTTP/2 connection.
    let mut req = request("k-huge");
    req.channel = "\u{1f4a5}garbage".repeat(1000);
    let status = s.client.register_case(req).await.unwrap_err();
    kit::testing::assert_refused("10 KB channel", &status, Code::InvalidArgument, "channel");
    assert!(status.message().len() < 300, "a short message: {} bytes", status.message().len());

    type Edit = fn(&mut RegisterCaseRequest);
    let nul: Vec<(&str, Edit)> = vec![
        ("idempotency_key", |r| r.idempotency_key.push('\0')),
        ("center_code", |r| r.center_code.push('\0')),
        ("channel", |r| r.channel.push('\0')),
        ("kind", |r| r.kind = "\0".into()),
        ("category_code", |r| r.category_code.insert(0, '\0')),
        ("urgency", |r| r.urgency.push('\0')),
        ("title", |r| r.title.push_str("\0漏水")),
        ("description", |r| r.description.push('\0')),
        ("location_code", |r| r.location_code.push('\0')),
        ("parties[0].name", |r| r.parties[0].name.push('\0')),
        ("parties[0].role", |r| r.parties[0].role.push('\0')),
        ("parties[0].phone", |r| r.parties[0].phone.push('\0')),
        ("parties[0].id_number", |r| r.parties[0].id_number.push('\0')),
        ("reporter_id", |r| r.reporter_id = "a\0".into()),
        ("operator_id", |r| r.operator_id.push('\0')),
    ];
    for (field, edit) in nul {
        let mut req = request(&format!("nul-{field}"));
        edit(&mut req);
        let status = s.client.register_case(req).await.unwrap_err();
        kit::testing::assert_refused(&format!("NUL in {field}"), &status, Code::InvalidArgument, field);
    }
    let status = s.client.get_case(GetCaseRequest { case_ref: "532901003-\0".into() }).await.unwrap_err();
    kit::testing::assert_refused("NUL in case_ref", &status, Code::InvalidArgument, "case_ref");
    let list = |token: &str| ListCasesRequest { center_code: TOWNSHIP.into(), page_size: 5, page_token: token.into() };
    for token in ["1|\0", "\0", &"9".repeat(10_000)] {
        let status = s.client.list_cases(list(token)).await.unwrap_err();
        kit::testing::assert_refused("bad page_token", &status, Code::InvalidArgument, "page_token");
    }

    // Emoji are text like any other.
    let mut emoji = request("k-emoji");
    emoji.title = "漏水 🚰💧".into();
    emoji.parties[0].name = "王五🙂".into();
    let case = s.client.register_case(emoji).await.unwrap().into_inner().case.unwrap();
    assert_eq!((case.title.as_str(), case.parties[0].name.as_str()), ("漏水 🚰💧", "王五🙂"));
    for stop in s.stops {
        stop.stop();
    }
}
