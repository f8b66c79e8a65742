//! The audit trail from outside: calls through the gateway leave records at the service that answered them
//! (who, grant, method, outcome, address, trace), refused calls too; only the audit administrator reads them;
//! a superuser's edit of one record is found by the chain check.

#![allow(clippy::unwrap_used)]

use proto::audit::v1::audit_client::AuditClient;
use proto::audit::v1::{ListRecordsRequest, VerifyChainRequest};
use proto::registry::v1::WhoAmIRequest;
use tests::World;
use tonic::Code;

#[tokio::test]
async fn calls_are_recorded_and_only_the_auditor_reads_the_chain() {
    let world = World::start().await;
    let (mut dispatcher, _) = world.sign_in("xg-dispatcher").await;
    let me = dispatcher.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    let registration = serde_json::json!({
        "idempotency_key": "audit-1", "center_code": world.demo.center_code, "channel": "walk_in",
        "kind": "dispute", "category_code": "0102", "urgency": "normal", "title": "邻里纠纷",
        "location_code": world.demo.grids[0],
    });
    let (_, token) = world.sign_in("xg-dispatcher").await;
    let (status, created) = world.http_as(Some(&token), "POST", "/v1/cases", &registration.to_string()).await;
    assert_eq!(status, 200, "{created}");
    // A forged token straight at a service port: refused, and the refusal recorded there. (Sent to the gateway,
    // it would be refused and recorded there: see the_gateway_records_the_calls_it_refuses.)
    let intake = format!("http://{}", world.suite.intake);
    let mut forged =
        proto::intake::v1::intake_client::IntakeClient::new(kit::testing::connect_as(&intake, "forged").await);
    let s = forged.get_case(proto::intake::v1::GetCaseRequest { case_ref: "x".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    let (_, auditor_token) = world.sign_in("auditor").await;
    let mut auditor = AuditClient::new(kit::testing::connect_as(&intake, &auditor_token).await);
    let all = |actor: &str| ListRecordsRequest { actor: actor.into(), page_size: 100, ..Default::default() };
    let mine = auditor.list_records(all(&me.subject)).await.unwrap().into_inner().records;
    let register = mine.iter().find(|r| r.action == "/zongzhi.intake.v1.Intake/RegisterCase").expect("recorded");
    assert_eq!(
        (register.role.as_str(), register.scope.as_str(), register.outcome.as_str()),
        ("dispatcher", "532901003000", "ok")
    );
    assert!(register.target.starts_with("case:"), "{register:?}");
    assert!(!register.client_addr.is_empty());
    assert!(register.at.ends_with("+08:00"));
    let refused = auditor.list_records(all("anonymous")).await.unwrap().into_inner().records;
    assert!(
        refused.iter().any(|r| r.action == "/zongzhi.intake.v1.Intake/GetCase" && r.outcome == "UNAUTHENTICATED"),
        "{refused:?}"
    );
    // No personal data in the trail: the party's phone number appears nowhere.
    assert!(auditor.verify_chain(VerifyChainRequest {}).await.unwrap().into_inner().intact);

    // The dispatcher may not read the trail; the application's own connection may not change it.
    let mut snoop = AuditClient::new(kit::testing::connect_as(&intake, &token).await);
    assert_eq!(snoop.list_records(all("")).await.unwrap_err().code(), Code::PermissionDenied);
    let pool = world.infra.pool("intake").await;
    let update = sqlx::query("UPDATE audit_log SET outcome = 'ok' WHERE outcome <> 'ok'").execute(&pool).await;
    assert!(update.is_err(), "the database refuses updates");

    // A superuser who switches the triggers off is caught by the chain.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    let seq: i64 = sqlx::query_scalar(
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = (SELECT min(seq) FROM audit_log) RETURNING seq",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let report = auditor.verify_chain(VerifyChainRequest {}).await.unwrap().into_inner();
    assert!(!report.intact);
    assert_eq!(report.broken_seq, seq, "{report:?}");
    world.stop().await;
}

/// The calls the gateway refuses itself reach no service, so the gateway keeps a chain of its own: a garbage
/// token and a role without the method on the gRPC face, no token on the JSON face, a client over its sign-in
/// budget. The calls it forwards are recorded only by the service that answered them.
#[tokio::test]
async fn the_gateway_records_the_calls_it_refuses() {
    let world = World::start().await;
    let gateway = format!("http://{}", world.suite.gateway_grpc);
    let get_case = || proto::intake::v1::GetCaseRequest { case_ref: "x".into() };
    let mut forged = proto::gateway::v1::desk_client::DeskClient::new(
        kit::testing::connect_as(&gateway, "garbage.token.here").await,
    );
    assert_eq!(forged.get_case(get_case()).await.unwrap_err().code(), Code::Unauthenticated);
    let (mut dispatcher, dispatcher_token) = world.sign_in("xg-dispatcher").await;
    let me = dispatcher.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    let account = proto::registry::v1::CreateAccountRequest::default();
    assert_eq!(dispatcher.create_account(account).await.unwrap_err().code(), Code::PermissionDenied);
    let (status, _) = world.http_as(None, "GET", "/v1/cases/x", "").await;
    assert_eq!(status, 401);
    let (_, auditor_token) = world.sign_in("auditor").await;
    // The sign-in budget per address (30 at once): empty sign-ins are refused by the registry without a hash,
    // until the gateway refuses the address itself.
    let mut anonymous = proto::gateway::v1::desk_client::DeskClient::connect(gateway.clone()).await.unwrap();
    let mut throttled = 0;
    for _ in 0..gateway::DEFAULT_AUTH_BURST + 2 {
        let status = anonymous.sign_in(proto::registry::v1::SignInRequest::default()).await.unwrap_err();
        throttled += usize::from(status.code() == Code::ResourceExhausted);
    }
    assert!(throttled >= 1, "the address's sign-in budget was spent");

    let pool = world.infra.pool("gateway").await;
    let records: Vec<(String, String, String, String, String)> =
        sqlx::query_as("SELECT actor, role, action, outcome, client_addr FROM audit_log ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let desk = |m: &str| format!("/zongzhi.gateway.v1.Desk/{m}");
    let has = |actor: &str, method: &str, outcome: &str| {
        records.iter().any(|(a, _, action, o, addr)| {
            a == actor && *action == desk(method) && o == outcome && addr.starts_with("127.0.0.1")
        })
    };
    assert!(has("anonymous", "GetCase", "UNAUTHENTICATED"), "gRPC face, bad token: {records:#?}");
    assert!(has(&me.subject, "CreateAccount", "PERMISSION_DENIED"), "gRPC face, no such role: {records:#?}");
    let denied = records.iter().find(|r| r.0 == me.subject).unwrap();
    assert_eq!(denied.1, "dispatcher", "the grant the caller came with");
    let over = records.iter().filter(|r| r.2 == desk("SignIn") && r.3 == "RESOURCE_EXHAUSTED").count();
    assert_eq!(over, throttled, "each sign-in over the budget: {records:#?}");
    assert!(
        records.iter().all(|r| r.3 != "ok" && r.3 != "INVALID_ARGUMENT"),
        "forwarded calls are the services' to record: {records:#?}"
    );
    let via_http = records.iter().filter(|r| r.2 == desk("GetCase") && r.3 == "UNAUTHENTICATED").count();
    assert_eq!(via_http, 2, "one from each face: {records:#?}");

    // The chain is the gateway's own, read and verified like a service's, at the gateway's port.
    let mut auditor = AuditClient::new(kit::testing::connect_as(&gateway, &auditor_token).await);
    let listed = auditor.list_records(ListRecordsRequest { page_size: 100, ..Default::default() }).await.unwrap();
    assert!(listed.into_inner().records.len() >= records.len());
    assert!(auditor.verify_chain(VerifyChainRequest {}).await.unwrap().into_inner().intact);
    let mut snoop = AuditClient::new(kit::testing::connect_as(&gateway, &dispatcher_token).await);
    let refused = snoop.list_records(ListRecordsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    world.stop().await;
}

#[tokio::test]
async fn unmasking_a_phone_takes_a_role_a_reason_and_leaves_a_record() {
    let world = World::start().await;
    let registration = serde_json::json!({
        "idempotency_key": "unmask-1", "center_code": world.demo.center_code, "channel": "hotline",
        "kind": "dispute", "category_code": "0102", "urgency": "normal", "title": "邻里纠纷",
        "location_code": world.demo.grids[0],
        "parties": [{"name": "张三", "phone": "13812345678", "id_number": "11010519491231002X", "role": "applicant"}],
    });
    let (status, created) = world.http("POST", "/v1/cases", Some(registration)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["case"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/cases/{id}/parties/1/unmask");
    let ask = |field: &str, reason: &str| serde_json::json!({"field": field, "reason": reason}).to_string();

    let (_, follow_up) = world.sign_in("xg-followup").await;
    let (status, body) = world.http_as(Some(&follow_up), "POST", &path, &ask("phone", "回访")).await;
    assert_eq!((status, body["value"].as_str()), (200, Some("13812345678")), "{body}");
    let (status, _) = world.http_as(Some(&follow_up), "POST", &path, &ask("id_number", "回访")).await;
    assert_eq!(status, 403, "a follow-up clerk sees phone numbers only");
    let (status, body) = world.http_as(Some(&follow_up), "POST", &path, &ask("phone", "")).await;
    assert_eq!((status, body["fields"].clone()), (400, serde_json::json!(["reason"])));
    let (_, dispatcher) = world.sign_in("xg-dispatcher").await;
    let (status, _) = world.http_as(Some(&dispatcher), "POST", &path, &ask("phone", "好奇")).await;
    assert_eq!(status, 403, "a dispatcher has no unmask permission");
    let (_, county_leader) = world.sign_in("dl-leader").await;
    let (status, _) = world.http_as(Some(&county_leader), "POST", &path, &ask("phone", "核实")).await;
    assert_eq!(status, 200, "the county's leader is over the township");

    // The read is on the record with the field and the purpose, and the number itself is nowhere in it.
    let intake = format!("http://{}", world.suite.intake);
    let (_, auditor_token) = world.sign_in("auditor").await;
    let mut auditor = AuditClient::new(kit::testing::connect_as(&intake, &auditor_token).await);
    let request = ListRecordsRequest {
        action: "/zongzhi.intake.v1.Intake/UnmaskParty".into(),
        page_size: 50,
        ..Default::default()
    };
    let records = auditor.list_records(request).await.unwrap().into_inner().records;
    let ok: Vec<_> = records.iter().filter(|r| r.outcome == "ok").collect();
    assert_eq!(ok.len(), 2, "{records:?}");
    assert!(ok.iter().any(|r| r.target == format!("case:{id} party:1 field:phone") && r.detail.contains("回访")));
    assert!(records.iter().any(|r| r.outcome == "PERMISSION_DENIED"));
    assert!(!format!("{records:?}").contains("13812345678"));

    // Rate-limited: at most UNMASK_PER_HOUR (30) reads an hour per person, counted from the trail.
    for _ in 1..30 {
        let (status, _) = world.http_as(Some(&follow_up), "POST", &path, &ask("phone", "回访")).await;
        assert_eq!(status, 200);
    }
    let (status, body) = world.http_as(Some(&follow_up), "POST", &path, &ask("phone", "回访")).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("RESOURCE_EXHAUSTED")), "{body}");
    world.stop().await;
}

#[tokio::test]
async fn every_record_names_what_the_call_acted_on_and_why_it_was_refused() {
    let world = World::start().await;
    let mut anonymous =
        proto::gateway::v1::desk_client::DeskClient::connect(format!("http://{}", world.suite.gateway_grpc))
            .await
            .unwrap();
    let guess = proto::registry::v1::SignInRequest {
        username: "no-such-user".into(),
        password: "Guess-1234".into(),
        otp: String::new(),
    };
    assert_eq!(anonymous.sign_in(guess).await.unwrap_err().code(), Code::Unauthenticated);
    let (mut sysadmin, _) = world.sign_in("sysadmin").await;
    sysadmin.disable_account(proto::registry::v1::DisableAccountRequest { username: "gw-002".into() }).await.unwrap();
    let (mut dispatcher, _) = world.sign_in("xg-dispatcher").await;
    let missing = "00000000-0000-4000-8000-00000000abcd";
    let lost = dispatcher.get_task(proto::routing::v1::GetTaskRequest { task_id: missing.into() }).await.unwrap_err();
    assert_eq!(lost.code(), Code::NotFound);

    let (_, auditor_token) = world.sign_in("auditor").await;
    let records = |addr: std::net::SocketAddr, action: &'static str| {
        let token = auditor_token.clone();
        async move {
            let url = format!("http://{addr}");
            let mut auditor = AuditClient::new(kit::testing::connect_as(&url, &token).await);
            let request = ListRecordsRequest { action: action.into(), page_size: 100, ..Default::default() };
            auditor.list_records(request).await.unwrap().into_inner().records
        }
    };
    let sign_ins = records(world.suite.registry, "/zongzhi.registry.v1.Auth/SignIn").await;
    let guessed = sign_ins.iter().find(|r| r.target == "username=no-such-user").expect("the name tried is named");
    assert_eq!(guessed.outcome, "UNAUTHENTICATED", "{guessed:?}");
    assert!(!guessed.reason.is_empty(), "the refusal says why: {guessed:?}");
    let disabled = records(world.suite.registry, "/zongzhi.registry.v1.Auth/DisableAccount").await;
    assert!(disabled.iter().any(|r| r.target == "username=gw-002" && r.outcome == "ok"), "{disabled:?}");
    let reads = records(world.suite.routing, "/zongzhi.routing.v1.Routing/GetTask").await;
    let read = reads.iter().find(|r| r.target == format!("task_id={missing}")).expect("the task asked for is named");
    assert_eq!(read.outcome, "NOT_FOUND", "{read:?}");
    assert!(!read.reason.is_empty(), "the refusal says why: {read:?}");
    world.stop().await;
}

/// An action and its record commit together: when the record cannot be staged in the action's transaction the
/// action does not happen; when it was staged but the chain cannot be written after the answer, the action
/// stands and its record is kept staged until the sweeper chains it.
#[tokio::test]
async fn an_action_and_its_record_commit_together() {
    let world = World::start().await;
    let intake = world.infra.pool("intake").await;
    let cases =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cases").fetch_one(&intake).await.unwrap() };
    let fail = |table: &str| {
        format!(
            "CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
               BEGIN RAISE EXCEPTION 'audit storage fault'; END $$; \
             CREATE TRIGGER fault BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION fail_audit()"
        )
    };
    let heal = |table: &str| format!("DROP TRIGGER fault ON {table}; DROP FUNCTION fail_audit()");
    let sql = |text: String| {
        let pool = intake.clone();
        async move { sqlx::raw_sql(sqlx::AssertSqlSafe(text)).execute(&pool).await.unwrap() }
    };
    let mut desk = world.desk.clone();

    // The staged record cannot be written: the registration is refused and leaves no case.
    let before = cases().await;
    sql(fail("audit_pending")).await;
    let refused = desk.register_case(world.dispute("staged-1")).await.unwrap_err();
    assert_ne!(refused.code(), Code::Ok);
    assert_eq!(cases().await, before, "a case was written without its audit record");
    sql(heal("audit_pending")).await;

    // The chain cannot be written after the commit: the registration stands, its record waits staged.
    sql(fail("audit_log")).await;
    let case = desk.register_case(world.dispute("staged-2")).await.unwrap().into_inner().case.unwrap();
    assert_eq!(cases().await, before + 1);
    let staged: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_pending").fetch_all(&intake).await.unwrap();
    assert_eq!(staged, ["/zongzhi.intake.v1.Intake/RegisterCase"]);
    sql(heal("audit_log")).await;

    // The sweeper (the writer runs it every 30 s for rows a minute old; here at once) chains it, intact.
    let key = kit::audit::AuditKey::dev();
    assert_eq!(kit::audit::sweep(&intake, &key, std::time::Duration::ZERO).await.unwrap(), 1);
    let swept: (String, String, String) =
        sqlx::query_as("SELECT action, outcome, detail FROM audit_log WHERE detail = $1 ORDER BY seq DESC LIMIT 1")
            .bind(kit::audit::staged::SWEPT_DETAIL)
            .fetch_one(&intake)
            .await
            .unwrap();
    assert_eq!((swept.0.as_str(), swept.1.as_str()), ("/zongzhi.intake.v1.Intake/RegisterCase", "ok"));
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_pending").fetch_one(&intake).await.unwrap();
    assert_eq!(pending, 0);
    assert!(kit::audit::verify(&intake, &key, |_| {}).await.unwrap().intact());
    assert!(!case.id.is_empty());
    world.stop().await;
}
