//! Load shedding at the gateway: with its in-flight limit reached (here 3 calls stuck on a backend that never
//! answers) every further call is refused at once, RESOURCE_EXHAUSTED over gRPC and 429 with Retry-After over
//! HTTP, while health checks still answer; once the stuck calls end, calls are admitted again.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::gateway::v1::desk_client::DeskClient;
use proto::registry::v1::GetNodeRequest;
use tests::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

const LIMIT: usize = 3;
const COUNTY: &str = "532901000000";

/// A backend that accepts connections and never says a word, so calls to it stay in flight; `close` drops
/// every connection, ending them.
struct BlackHole {
    url: String,
    sockets: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn open() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let held = sockets.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                held.lock().unwrap().push(socket);
            }
        });
        Self { url, sockets, accepting }
    }

    fn close(&self) {
        self.accepting.abort();
        self.sockets.lock().unwrap().clear();
    }
}

/// One HTTP/1.1 GET; the status line's code and the response's head.
async fn http_get(addr: std::net::SocketAddr, token: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    (text.split(' ').nth(1).unwrap().parse().unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_gateway_sheds_calls_at_once_and_recovers() {
    let world = World::start().await;
    let hole = BlackHole::open().await;
    let url = |addr| format!("http://{addr}");
    let gw = gateway::build(gateway::Settings {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        backends: gateway::Backends {
            intake: hole.url.clone(),
            routing: url(world.suite.routing),
            registry: url(world.suite.registry),
            supervision: url(world.suite.supervision),
            subsidy: url(world.suite.subsidy),
        },
        auth: kit::testing::keys().set.auth(gateway::NAME),
        max_in_flight: LIMIT,
        max_in_flight_per_client: LIMIT,
        auth_burst: gateway::DEFAULT_AUTH_BURST,
        auth_per_minute: gateway::DEFAULT_AUTH_PER_MINUTE,
        trusted_proxies: kit::proxies::Proxies::default(),
        trail: None,
    })
    .await
    .unwrap();
    let http_addr = gw.http_addr;
    let (gw_url, stop) = kit::testing::spawn(gw.app);
    let desk = DeskClient::new(kit::testing::connect_as(&gw_url, &world.root_token).await);

    // Below the limit a call is admitted.
    desk.clone().get_node(GetNodeRequest { code: COUNTY.into() }).await.unwrap();

    // Three calls to intake go into the black hole and stay in flight. A probe racing them may take a place
    // first and have one of them shed, so a shed one is sent again until all three hold their places.
    let stuck_call = |i: usize| {
        let mut desk = desk.clone();
        tokio::spawn(async move {
            desk.get_case(proto::intake::v1::GetCaseRequest { case_ref: format!("stuck-{i}") }).await
        })
    };
    let mut stuck: Vec<_> = (0..LIMIT).map(stuck_call).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        assert!(Instant::now() < deadline, "the limit is never reached");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (i, call) in stuck.iter_mut().enumerate() {
            if call.is_finished() {
                *call = stuck_call(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stuck.iter().any(tokio::task::JoinHandle::is_finished) {
            continue;
        }
        if let Err(refused) = desk.clone().get_node(GetNodeRequest { code: COUNTY.into() }).await {
            break refused;
        }
    };
    assert_eq!(refusal.code(), Code::ResourceExhausted, "{refusal:?}");
    assert!(refusal.message().contains("retry"), "{refusal:?}");

    // Refused at once, not after queueing: the point of shedding.
    let started = Instant::now();
    let again = desk.clone().get_node(GetNodeRequest { code: COUNTY.into() }).await.unwrap_err();
    assert_eq!(again.code(), Code::ResourceExhausted);
    assert!(started.elapsed() < Duration::from_secs(1), "refused in {:?}", started.elapsed());

    // The JSON face shares the budget: 429 with Retry-After and the same code.
    let (status, response) = http_get(http_addr, &world.root_token, &format!("/v1/nodes/{COUNTY}")).await;
    assert_eq!(status, 429, "{response}");
    assert!(response.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{response}");
    assert!(response.contains("\"code\":\"RESOURCE_EXHAUSTED\""), "{response}");

    // Health is never shed.
    let (status, _) = http_get(http_addr, &world.root_token, "/healthz").await;
    assert_eq!(status, 200, "/healthz under overload");
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(gw_url.clone()).unwrap().connect().await.unwrap(),
    );
    let serving = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(serving.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // The stuck calls end (their backend hangs up): they fail as unavailable, and calls are admitted again.
    hole.close();
    for call in stuck {
        // The gateway passes on the broken backend call as it gets it (a transport error); what matters
        // here is that the call ended and gave its place back.
        let ended = tokio::time::timeout(Duration::from_secs(10), call).await.unwrap().unwrap();
        assert!(ended.is_err(), "{ended:?}");
    }
    kit::testing::eventually("calls admitted again", 10, || {
        let mut desk = desk.clone();
        async move { desk.get_node(GetNodeRequest { code: COUNTY.into() }).await.ok() }
    })
    .await;
    let (status, response) = http_get(http_addr, &world.root_token, &format!("/v1/nodes/{COUNTY}")).await;
    assert_eq!(status, 200, "{response}");

    stop.stop();
    world.stop().await;
}
