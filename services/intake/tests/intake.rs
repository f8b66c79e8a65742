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
    addr: String,
    stops: Vec<kit::app::StopHandle>,
}

async fn start(infra: &TestInfra) -> Started {
    let reg_cfg = infra.config(registry::NAME);
    registry::import_dali(&registry::connect(&reg_cfg).await.unwrap()).await.unwrap();
    let reg = registry::build(registry::Settings::new(reg_cfg)).await.unwrap();
    let registry_url = format!("http://{}", reg.addr());
    let settings = intake::Settings { registry_url, ..intake::Settings::new(infra.config(intake::NAME)) };
    let app = intake::build(settings).await.unwrap();
    let url = format!("http://{}", app.addr());
    let stops = vec![reg.stop_handle(), app.stop_handle()];
    tokio::spawn(reg.run_until(std::future::pending()));
    tokio::spawn(app.run_until(std::future::pending()));
    Started { client: IntakeClient::new(kit::testing::connect(&url).await), addr: url, stops }
}

fn request(key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: TOWNSHIP.into(),
        channel: proto::vocab::v1::Channel::WalkIn.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0106".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "工地拖欠工资".into(),
        description: "12 名工人 3 个月工资未结".into(),
        location_code: VILLAGE.into(),
        parties: vec![PartyInput {
            name: "王五".into(),
            phone: "13700001111".into(),
            id_number: "11010519491231002X".into(),
            role: proto::vocab::v1::PartyRole::Applicant.into(),
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
    // A registration answers from the rows it wrote; reading the file back shows exactly the same.
    let mut two = request("k-file");
    two.parties.push(PartyInput {
        name: "赵六".into(),
        role: proto::vocab::v1::PartyRole::Respondent.into(),
        ..Default::default()
    });
    let answered = s.client.register_case(two).await.unwrap().into_inner().case.unwrap();
    let read = s.client.get_case(GetCaseRequest { case_ref: answered.id.clone() }).await.unwrap();
    let read = read.into_inner().case.unwrap();
    assert_eq!(answered, read);
    assert_eq!((answered.parties.len(), answered.timeline.len(), answered.reporters.len()), (2, 1, 1));
    assert_eq!(answered.reporters[0].parties.len(), 1, "the respondent did not report it");

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
        ("channel", |r| r.channel = proto::vocab::v1::Channel::Hotline.into()),
        ("urgency", |r| r.urgency = proto::vocab::v1::Urgency::Urgent.into()),
        ("reporter", |r| r.reporter_id = "p-9".into()),
        ("party name", |r| r.parties[0].name = "王六".into()),
        ("party phone", |r| r.parties[0].phone = "13700002222".into()),
        ("party role", |r| r.parties[0].role = proto::vocab::v1::PartyRole::Respondent.into()),
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
    // The subject's last token is the case's partition.
    let kinds: Vec<&str> = events.iter().map(|s| s.rsplit_once('.').map_or(s.as_str(), |(kind, _)| kind)).collect();
    assert_eq!(kinds, vec!["case.registered"; 4], "one event per case, none for replays");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT phone_sealed FROM case_parties LIMIT 1").fetch_one(&pool).await.unwrap();
    assert!(!stored.windows(11).any(|w| w == b"13700001111"), "phone sealed at rest");
    let on_stream = eventually("registered events on the stream", 10, || async {
        let n = infra.events().await.len();
        (n == 4).then_some(n)
    })
    .await;
    assert_eq!(on_stream, 4);
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
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
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
            (case.state().code() == "accepted").then_some(case)
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
        ("channel unknown", |r| r.channel = 99, Code::InvalidArgument, "channel"),
        ("channel unset", |r| r.channel = 0, Code::InvalidArgument, "channel"),
        ("kind", |r| r.kind = -3, Code::InvalidArgument, "kind"),
        ("category shape", |r| r.category_code = "01".into(), Code::InvalidArgument, "category_code"),
        ("category unknown", |r| r.category_code = "0999".into(), Code::InvalidArgument, "category_code"),
        ("category of another kind", |r| r.category_code = "0201".into(), Code::InvalidArgument, "category_code"),
        ("urgency", |r| r.urgency = 0, Code::InvalidArgument, "urgency"),
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
    // Neither an id nor a number: refused naming the field, not looked up.
    for garbage in ["first", "532901003-2025-00001", "🦀"] {
        let status = s.client.get_case(GetCaseRequest { case_ref: garbage.into() }).await.unwrap_err();
        kit::testing::assert_refused(garbage, &status, Code::InvalidArgument, "case_ref");
    }
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
    req.title = "\u{1f4a5}garbage".repeat(1000);
    let status = s.client.register_case(req).await.unwrap_err();
    kit::testing::assert_refused("10 KB title", &status, Code::InvalidArgument, "title");
    assert!(status.message().len() < 300, "a short message: {} bytes", status.message().len());

    type Edit = fn(&mut RegisterCaseRequest);
    let nul: Vec<(&str, Edit)> = vec![
        ("idempotency_key", |r| r.idempotency_key.push('\0')),
        ("center_code", |r| r.center_code.push('\0')),
        ("category_code", |r| r.category_code.insert(0, '\0')),
        ("title", |r| r.title.push_str("\0漏水")),
        ("description", |r| r.description.push('\0')),
        ("location_code", |r| r.location_code.push('\0')),
        ("parties[0].name", |r| r.parties[0].name.push('\0')),
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

async fn case_version(pool: &sqlx::PgPool, id: &str) -> i32 {
    let id = uuid::Uuid::parse_str(id).unwrap();
    sqlx::query_scalar("SELECT category_version FROM cases WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

fn put(code: &str, kind: &str, name: &str, active: Option<bool>) -> PutCategoryRequest {
    PutCategoryRequest { code: code.into(), kind: kind.into(), name: name.into(), active }
}

#[tokio::test]
async fn a_category_put_adds_a_version_and_registered_cases_keep_theirs() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let before = s.client.register_case(request("k-cat-1")).await.unwrap().into_inner().case.unwrap();

    let saved = s.client.put_category(put("0106", "dispute", "劳资纠纷(欠薪)", None)).await.unwrap().into_inner();
    let saved = saved.category.unwrap();
    assert_eq!((saved.code.as_str(), saved.version, saved.active), ("0106", 2, true));
    assert_eq!(saved.created_by, "00000000-0000-4000-8000-000000000000", "the actor is the signed-in principal");
    let fresh = s.client.put_category(put("0901", "risk", "新类别", None)).await.unwrap().into_inner();
    assert_eq!(fresh.category.unwrap().version, 1, "a new code starts at 1");

    let after = s.client.register_case(request("k-cat-2")).await.unwrap().into_inner().case.unwrap();
    let pool = infra.pool("intake").await;
    assert_eq!(case_version(&pool, &before.id).await, 1, "the earlier case keeps the version it was registered under");
    assert_eq!(case_version(&pool, &after.id).await, 2, "a new case takes the current version");
    let rows: Vec<(i32, String, bool)> =
        sqlx::query_as("SELECT version, name, active FROM categories WHERE code = '0106' ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows[0], (1, "劳资纠纷".to_owned(), true), "version 1 is never edited");

    let listed = s.client.list_categories(ListCategoriesRequest { include_inactive: false }).await.unwrap();
    let listed = listed.into_inner().categories;
    let c = listed.iter().find(|c| c.code == "0106").unwrap();
    assert_eq!((c.version, c.name.as_str()), (2, "劳资纠纷(欠薪)"), "the list shows the current version only");
    assert_eq!(listed.iter().filter(|c| c.code == "0106").count(), 1);

    // Withdrawing: a newer inactive version, not an edit; new registrations refuse the code, lists hide it.
    s.client.put_category(put("0106", "dispute", "劳资纠纷(欠薪)", Some(false))).await.unwrap();
    let refused = s.client.register_case(request("k-cat-3")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("category_code"), "{}", refused.message());
    let listed = s.client.list_categories(ListCategoriesRequest { include_inactive: false }).await.unwrap();
    assert!(listed.into_inner().categories.iter().all(|c| c.code != "0106"));
    let all = s.client.list_categories(ListCategoriesRequest { include_inactive: true }).await.unwrap();
    let c = all.into_inner().categories.into_iter().find(|c| c.code == "0106").unwrap();
    assert_eq!((c.version, c.active), (3, false));
    // The replay of a case registered under version 1 still finds it.
    let replay = s.client.register_case(request("k-cat-1")).await.unwrap().into_inner();
    assert!(replay.replayed);
    for stop in s.stops {
        stop.stop();
    }
}

#[tokio::test]
async fn bad_categories_name_their_field_and_narrow_admins_are_refused() {
    let infra = TestInfra::new().await;
    let mut s = start(&infra).await;
    let cases = [
        ("short code", put("012", "dispute", "x", None), "code"),
        ("letters", put("01a2", "dispute", "x", None), "code"),
        ("inquiry is not a table", put("0102", "inquiry", "x", None), "kind"),
        ("no name", put("0102", "dispute", " ", None), "name"),
        ("long name", put("0102", "dispute", &"名".repeat(65), None), "name"),
        ("NUL", put("0102", "dispute", "a\0b", None), "name"),
    ];
    for (case, r, field) in cases {
        let status = s.client.put_category(r).await.unwrap_err();
        kit::testing::assert_refused(case, &status, Code::InvalidArgument, field);
    }

    let keys = kit::testing::keys();
    let county = keys.token("county-admin", &[("business_admin", "532901000000")]);
    let prefecture = keys.token("pref-admin", &[("business_admin", "532900000000")]);
    let clerk = keys.token("clerk", &[("intake_clerk", "532901003000")]);
    let addr = s.addr.clone();
    let mut as_county = IntakeClient::new(kit::testing::connect_as(&addr, &county).await);
    let status = as_county.put_category(put("0102", "dispute", "邻里", None)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "a county's admin may not edit the deployment's table");
    let mut as_clerk = IntakeClient::new(kit::testing::connect_as(&addr, &clerk).await);
    let status = as_clerk.put_category(put("0102", "dispute", "邻里", None)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "a clerk holds no ManageRules");
    let listed = as_clerk.list_categories(ListCategoriesRequest::default()).await.unwrap().into_inner();
    assert!(listed.categories.iter().any(|c| c.code == "0102"), "every signed-in user reads the table");
    let mut as_prefecture = IntakeClient::new(kit::testing::connect_as(&addr, &prefecture).await);
    let saved = as_prefecture.put_category(put("0102", "dispute", "邻里", None)).await.unwrap().into_inner();
    let saved = saved.category.unwrap();
    assert_eq!((saved.version, saved.created_by.as_str()), (2, "pref-admin"));
    for stop in s.stops {
        stop.stop();
    }
}
