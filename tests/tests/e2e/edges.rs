//! The anonymous edges hold (issue 19): sign-ins cannot run the registry out of memory, one name or one address
//! cannot hog sign-in, and clients that send their requests slowly, or never finish them, take no place any
//! other client needs.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proto::registry::v1::SignInRequest;
use proto::registry::v1::auth_client::AuthClient;
use tests::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::IntoRequest;

fn sign_in(username: &str) -> SignInRequest {
    SignInRequest { username: username.into(), password: "Wrong-password-1".into(), otp: String::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_sign_ins_hash_one_per_core_and_one_name_is_throttled() {
    let world = World::start().await;
    let registry = format!("http://{}", world.suite.registry);
    // Straight at the registry, as a flood from many addresses arrives past the gateway's per-address budget:
    // 48 sign-ins at once, every one for a different (unknown) name, each costing a decoy hash.
    let calls = (0..48).map(|i| {
        let url = registry.clone();
        tokio::spawn(async move {
            let mut auth = AuthClient::new(kit::testing::connect(&url).await);
            auth.sign_in(sign_in(&format!("nobody-{i}"))).await.unwrap_err()
        })
    });
    for refused in futures::future::join_all(calls).await {
        let refused = refused.unwrap();
        assert!(matches!(refused.code(), Code::Unauthenticated | Code::ResourceExhausted), "{refused:?}");
    }
    let (most, bound) = (identity::hashing::high_water(), identity::hashing::bound());
    assert!(most >= 1 && most <= bound, "at most {bound} hashes at once (one per core), saw {most}");

    // One name hammered: past its burst the name is throttled, before any hash, whoever asks.
    let burst = identity::service::ATTEMPTS_BURST as usize;
    let mut auth = AuthClient::new(kit::testing::connect(&registry).await);
    let mut throttled = 0;
    for _ in 0..burst + 5 {
        let refused = auth.sign_in(sign_in("xg-clerk")).await.unwrap_err();
        if refused.code() == Code::ResourceExhausted {
            assert!(refused.message().contains("retry in"), "{refused:?}");
            throttled += 1;
        }
    }
    // Five past the burst; one may get through if the name's bucket refilled (one per 6 s) on a slow machine.
    assert!((4..=5).contains(&throttled), "the attempts past the burst of {burst} are throttled: {throttled}");
    // Another name is untouched, and its right password still signs in.
    world.sign_in("xg-dispatcher").await;
    world.stop().await;
}

/// One HTTP/1.1 POST of a JSON body to `addr` with `headers`; the status code.
async fn post(addr: std::net::SocketAddr, headers: &[(&str, &str)], path: &str, body: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: gateway\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply).split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_address_spends_only_its_own_sign_in_budget_at_the_gateway() {
    let world = World::start().await;
    // A gateway of its own in front of the world's services, with a budget of 5 sign-ins and one more a minute,
    // so no refill falls inside the test however slow the machine.
    let url = |addr| format!("http://{addr}");
    let s = &world.suite;
    let gw = gateway::build(gateway::Settings {
        auth_burst: 5,
        auth_per_minute: 1,
        ..gateway::Settings::new(
            ([127, 0, 0, 1], 0).into(),
            ([127, 0, 0, 1], 0).into(),
            gateway::Backends {
                intake: url(s.intake),
                routing: url(s.routing),
                registry: url(s.registry),
                supervision: url(s.supervision),
                subsidy: url(s.subsidy),
            },
            kit::testing::keys().set.auth(gateway::NAME),
        )
    })
    .await
    .unwrap();
    let http = gw.http_addr;
    let (_, stop) = kit::testing::spawn(gw.app);
    let sign_in = |i: usize| serde_json::json!({"username": format!("someone-{i}"), "password": "x"}).to_string();
    let mut answers = Vec::new();
    for i in 0..8 {
        // A new name each time, so the registry's per-name throttle is not what answers.
        answers.push(post(http, &[], "/v1/auth/sign-in", &sign_in(i)).await);
    }
    assert_eq!(answers, [401, 401, 401, 401, 401, 429, 429, 429], "the burst, then refused at once");
    // A client naming another address in X-Forwarded-For is still itself: no proxy is trusted here.
    let spoofed = post(http, &[("X-Forwarded-For", "203.0.113.66")], "/v1/auth/sign-in", &sign_in(9)).await;
    assert_eq!(spoofed, 429, "a made-up forwarded address does not buy a fresh budget");
    // Other calls from the address are not sign-ins and still go through.
    let (status, _) = world.http("GET", "/v1/nodes/532901000000", None).await;
    assert_eq!(status, 200);
    // Nor is a made-up address what a service records for a gRPC call.
    let mut request = proto::intake::v1::GetCaseRequest { case_ref: "532901003-20200101-00001".into() }.into_request();
    request.metadata_mut().insert("x-forwarded-for", "203.0.113.77".parse().unwrap());
    let _ = world.desk.clone().get_case(request).await;
    // Nor when sent straight to the service: only a proxy it trusts (TRUSTED_PROXIES; none here) may name
    // the client.
    let direct = format!("http://{}", world.suite.intake);
    let mut straight =
        proto::intake::v1::intake_client::IntakeClient::new(kit::testing::connect_as(&direct, &world.root_token).await);
    let mut request = proto::intake::v1::GetCaseRequest { case_ref: "532901003-20200101-00002".into() }.into_request();
    request.metadata_mut().insert("x-forwarded-for", "203.0.113.78".parse().unwrap());
    let _ = straight.get_case(request).await;
    let intake = world.infra.pool("intake").await;
    let recorded: Vec<String> = sqlx::query_scalar("SELECT client_addr FROM audit_log WHERE action LIKE '%/GetCase'")
        .fetch_all(&intake)
        .await
        .unwrap();
    assert!(recorded.len() >= 2 && recorded.iter().all(|a| !a.contains("203.0.113")), "{recorded:?}");
    stop.stop();
    world.stop().await;
}

/// Opens a connection to the gateway's HTTP face and sends `head` (and nothing more).
async fn half_request(world: &World, head: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(world.suite.gateway_http).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_bodies_and_slow_headers_take_no_place_in_flight_and_are_cut_off() {
    let world = World::start().await;
    // More unfinished requests than the gateway admits calls at once (256): each announces a body and sends
    // half of it, or sends half its headers.
    let body_head = "POST /v1/auth/sign-in HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
                     Content-Length: 100\r\n\r\n{\"username\": \"slow";
    let mut slow_bodies = Vec::new();
    for _ in 0..gateway::DEFAULT_MAX_IN_FLIGHT + 44 {
        slow_bodies.push(half_request(&world, body_head).await);
    }
    let mut slow_heads = Vec::new();
    for _ in 0..20 {
        slow_heads.push(half_request(&world, "GET /v1/nodes/532901000000 HTTP/1.1\r\nHost: gat").await);
    }
    let started = Instant::now();
    // A normal client is served all along, over HTTP and gRPC.
    for _ in 0..20 {
        let (status, node) = world.http("GET", "/v1/nodes/532901000000", None).await;
        assert_eq!(status, 200, "a normal call while the flood waits: {node}");
        let mut desk = world.desk.clone();
        desk.get_node(proto::registry::v1::GetNodeRequest { code: "532901000000".into() }).await.unwrap();
    }
    assert!(started.elapsed() < gateway::http::serve::BODY_TIMEOUT, "the normal calls were not made to wait");

    // Past the body timeout, each slow body is answered 408 and its connection closed.
    let deadline = gateway::http::serve::BODY_TIMEOUT + Duration::from_secs(5);
    let mut answered = 0;
    for mut stream in slow_bodies {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(deadline, stream.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "a slow body is cut off within {deadline:?}");
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("DEADLINE_EXCEEDED"), "{text}");
        answered += 1;
    }
    assert_eq!(answered, gateway::DEFAULT_MAX_IN_FLIGHT + 44);
    // Slow headers are dropped at the header timeout (hyper answers 408 or just closes).
    let deadline = gateway::http::serve::HEADER_TIMEOUT + Duration::from_secs(5);
    for mut stream in slow_heads {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(deadline, stream.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "slow headers are cut off within {deadline:?}");
        let text = String::from_utf8_lossy(&reply);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_unmasks_stop_at_the_hourly_limit() {
    let world = World::start().await;
    let case = world.desk.clone().register_case(world.dispute("unmask-race")).await.unwrap().into_inner().case.unwrap();
    let (follow_up, _) = world.sign_in("xg-followup").await;
    // 64 reads at once by one person, against a limit of 30 an hour: the count is taken before each read in one
    // statement, so no read sees a count the others have not bumped.
    let calls = (0..64).map(|_| {
        let (mut desk, case_id) = (follow_up.clone(), case.id.clone());
        tokio::spawn(async move {
            let ask = proto::intake::v1::UnmaskPartyRequest {
                case_id,
                party: 1,
                field: "phone".into(),
                reason: "回访核实".into(),
            };
            desk.unmask_party(ask).await
        })
    });
    let mut read = 0;
    for answer in futures::future::join_all(calls).await {
        match answer.unwrap() {
            Ok(r) => {
                assert_eq!(r.into_inner().value, "13812345678");
                read += 1;
            }
            Err(refused) => assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}"),
        }
    }
    assert_eq!(read, intake::settings::DEFAULT_UNMASK_PER_HOUR, "exactly the hourly limit, however many at once");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_lock_the_account_and_a_totp_code_signs_in_once() {
    let world = World::start().await;
    let registry = format!("http://{}", world.suite.registry);
    let at_once = |requests: Vec<SignInRequest>| {
        let url = registry.clone();
        async move {
            let calls = requests.into_iter().map(|r| {
                let url = url.clone();
                tokio::spawn(async move { AuthClient::new(kit::testing::connect(&url).await).sign_in(r).await })
            });
            futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect::<Vec<_>>()
        }
    };
    // Nine wrong passwords at once (within the name's burst of ten): each is counted before it is checked, so
    // the fifth locks the account and the right password is refused afterwards (counted after the check, all
    // nine saw a count of 0 and none locked it).
    let guesses = at_once((0..9).map(|_| sign_in("xg-supervisor")).collect()).await;
    assert!(guesses.iter().all(Result::is_err));
    let right = SignInRequest { password: suite::seed::DEMO_PASSWORD.into(), ..sign_in("xg-supervisor") };
    let locked = AuthClient::new(kit::testing::connect(&registry).await).sign_in(right).await.unwrap_err();
    assert_eq!(locked.code(), Code::Unauthenticated, "locked after the parallel guesses: {locked:?}");

    // One valid TOTP code sent by eight sign-ins at once signs in exactly one of them.
    let auditor = world.demo.users.iter().find(|u| u.username == "auditor").unwrap();
    let code = identity::admin::current_otp(&auditor.totp_secret);
    let same = SignInRequest { username: "auditor".into(), password: suite::seed::DEMO_PASSWORD.into(), otp: code };
    let answers = at_once(vec![same; 8]).await;
    let signed_in = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(signed_in, 1, "a code is good once: {answers:?}");
    world.stop().await;
}

#[tokio::test]
async fn a_flood_of_refused_calls_leaves_the_trail_and_the_metrics_bounded() {
    let world = World::start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", world.suite.intake))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let call = |path: String, token: Option<&'static str>| {
        let channel = channel.clone();
        async move { tests::raw_call(channel, &path, token).await.unwrap_err() }
    };
    // 400 calls of a real method with a garbage token, then 2,000 made-up paths, from one address.
    let started = Instant::now();
    let mut codes = std::collections::HashMap::new();
    for _ in 0..400 {
        let refused = call("/zongzhi.intake.v1.Intake/GetCase".into(), Some("garbage.token.here")).await;
        *codes.entry(refused.code()).or_insert(0) += 1;
    }
    for i in 0..2_000 {
        let refused = call(format!("/scan.Svc{i}/Probe{i}"), None).await;
        *codes.entry(refused.code()).or_insert(0) += 1;
    }
    // The address's budget of refusals (200 at once, 120 a minute after) is spent on the first of them, and
    // only those are recorded; everything after is throttled. `refill` is what the elapsed time gave back.
    let burst = kit::auth::layer::REFUSALS_BURST as usize;
    let refill =
        (started.elapsed().as_secs_f64() * f64::from(kit::auth::layer::REFUSALS_PER_MINUTE) / 60.0) as usize + 1;
    let refused = codes.get(&Code::Unauthenticated).copied().unwrap_or(0);
    assert!(refused >= burst.min(400) && refused <= burst + refill, "{codes:?}, refill {refill}");
    assert!(codes[&Code::ResourceExhausted] >= 2_400 - burst - refill, "{codes:?}, refill {refill}");
    let intake = world.infra.pool("intake").await;
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE outcome = 'UNAUTHENTICATED'")
        .fetch_one(&intake)
        .await
        .unwrap();
    assert_eq!(recorded as usize, refused, "each refusal within the budget is recorded, none past it");
    let metrics = world.suite.metrics.iter().find(|(n, _)| *n == "intake").map(|(_, a)| *a).unwrap();
    let text = kit::testing::scrape(metrics).await;
    // No series per made-up path: each names a method of the table, or `unrouted`. (Metrics are the process's,
    // shared with the suites of other tests, so the count of series says nothing.)
    assert!(!text.contains("scan.Svc"), "no series per made-up path:\n{text}");
    for line in text.lines().filter(|l| l.starts_with("grpc_server_handled_total{")) {
        let label = |k: &str| line.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
        let (service, method) = (label("grpc_service"), label("grpc_method"));
        let known = kit::auth::policy::access(&format!("/{service}/{method}")).is_some();
        assert!(known || (service, method) == ("unrouted", "unrouted"), "a series of a made-up path: {line}");
    }
    world.stop().await;
}

#[tokio::test]
async fn an_administrator_cannot_make_a_second_account_for_a_grid_worker() {
    let world = World::start().await;
    let (mut sysadmin, _) = world.sign_in("sysadmin").await;
    // gw-001's person: the grid worker whose grid grants follow their assignment.
    let worker = world.demo.grid_workers[0].clone();
    let second = proto::registry::v1::CreateAccountRequest {
        username: "gw-001-shadow".into(),
        person_id: worker.clone(),
        display_name: "网格员 1".into(),
        initial_password: String::new(),
    };
    let refused = sysadmin.create_account(second).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("gw-001"), "names the account the person has: {refused:?}");
    // The database holds the rule whatever the code path: a second row for the person is refused.
    let registry = world.infra.pool("registry").await;
    let person: uuid::Uuid = worker.parse().unwrap();
    let forced = sqlx::query(
        "INSERT INTO accounts (id, username, person_id, display_name, password_hash) VALUES ($1, 'x', $2, 'x', 'x')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(person)
    .execute(&registry)
    .await;
    let forced = forced.unwrap_err().to_string();
    assert!(forced.contains("accounts_one_per_person"), "one account per person is the database's rule: {forced}");
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE person_id = $1")
        .bind(person)
        .fetch_one(&registry)
        .await
        .unwrap();
    assert_eq!(accounts, 1);
    world.stop().await;
}
