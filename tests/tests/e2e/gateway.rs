//! The gateway's two faces: JSON over HTTP behaves like gRPC (same validation, mapped status codes), and
//! health checking and reflection answer.

#![allow(clippy::unwrap_used)]

use kit::testing::eventually;
use serde_json::json;
use tests::World;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn json_over_http_drives_the_same_operations() {
    let world = World::start().await;
    let body = json!({
        "idempotency_key": "web-1",
        "center_code": world.demo.center_code,
        "channel": "web",
        "kind": "demand",
        "category_code": "0302",
        "urgency": "urgent",
        "title": "独居老人求助",
        "location_code": world.demo.grids[1],

        "parties": [{"name": "赵六", "phone": "13611112222", "role": "applicant"}]
    });
    let (status, created) = world.http("POST", "/v1/cases", Some(body.clone())).await;
    assert_eq!(status, 200, "{created}");
    let id = created["case"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["case"]["parties"][0]["phone"], "136****2222");
    // Sent as the old codes, answered by name (proto3's JSON mapping), and counted.
    assert_eq!(
        (&created["case"]["channel"], &created["case"]["urgency"]),
        (&json!("CHANNEL_WEB"), &json!("URGENCY_URGENT"))
    );
    let gateway = world.suite.metrics.iter().find(|(n, _)| *n == "gateway").map(|(_, a)| *a).unwrap();
    let old = kit::testing::sample(&kit::testing::scrape(gateway).await, "zongzhi_json_old_enum_codes");
    assert!(old.is_some_and(|n| n >= 4.0), "channel, kind, urgency and a party's role were sent by code: {old:?}");
    let (_, replay) = world.http("POST", "/v1/cases", Some(body)).await;
    assert_eq!(replay["replayed"], true);

    // No rule covers 0302 in 下关: the registering center keeps it (兜底).
    let case = eventually("dispatched over HTTP", 20, || async {
        let (_, c) = world.http("GET", &format!("/v1/cases/{id}"), None).await;
        (c["case"]["state"] == "CASE_STATE_DISPATCHED").then_some(c)
    })
    .await;
    let task_id = case["case"]["current_task_id"].as_str().unwrap().to_owned();
    let (status, task) = world.http("GET", &format!("/v1/tasks/{task_id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(task["task"]["unit_kind"], "UNIT_KIND_CENTER");
    assert_eq!(task["task"]["unit_code"], world.demo.center_code);
    let (status, accepted) = world.http("POST", &format!("/v1/tasks/{task_id}/accept"), Some(json!({}))).await;
    assert_eq!((status, accepted["task"]["state"].as_str()), (200, Some("TASK_STATE_ACCEPTED")));

    // Errors carry the gRPC code, the message and the offending fields.
    let (status, err) = world.http("POST", "/v1/cases", Some(json!({"idempotency_key": "x", "kind": "dispute"}))).await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "INVALID_ARGUMENT");
    assert_eq!(err["fields"], json!(["center_code"]));
    let (status, err) = world.http("POST", &format!("/v1/tasks/{task_id}/accept"), Some(json!({}))).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("FAILED_PRECONDITION")), "accepting twice");
    let (status, err) =
        world.http("POST", &format!("/v1/tasks/{task_id}/accept"), Some(json!({"handler_id": "h-someone-else"}))).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("PERMISSION_DENIED")), "naming another handler");
    let (status, err) = world.http_raw("POST", "/v1/cases", "{\"kind\": ").await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["body"])), "malformed JSON: {err}");
    // A value of the wrong type names its own field, in the house's words, not the framework's.
    let (status, err) = world.http("GET", "/v1/locate?lon=east&lat=25", None).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["lon"])), "a query parameter of the wrong type: {err}");
    assert_eq!(err["message"], "invalid lon: must be a number", "{err}");
    let (status, err) = world.http("GET", "/v1/nodes/532900000000/children?page_size=twenty", None).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["page_size"])), "{err}");
    assert_eq!(err["message"], "invalid page_size: must be a whole number", "{err}");
    let (status, err) = world.http("POST", &format!("/v1/cases/{id}/verify"), Some(json!({"passed": "yes"}))).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["passed"])), "{err}");
    assert_eq!(err["message"], "invalid passed: must be true or false, not a string", "{err}");
    // An enum takes its names (and, for one release, the old codes): anything else names the field and its values.
    let (status, err) = world.http("POST", "/v1/cases", Some(json!({"idempotency_key": "x", "channel": "fax"}))).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["channel"])), "{err}");
    assert!(err["message"].as_str().unwrap().starts_with("invalid channel: must be one of CHANNEL_WALK_IN"), "{err}");
    let party = json!({"idempotency_key": "x", "parties": [{"name": "张三", "role": "judge"}]});
    let (status, err) = world.http("POST", "/v1/cases", Some(party)).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["parties[0].role"])), "{err}");
    let (status, err) = world.http("POST", &format!("/v1/cases/{id}/parties/first/unmask"), Some(json!({}))).await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["party"])), "{err}");
    let (status, err) = world.http_raw("POST", "/v1/cases", "[1, 2]").await;
    assert_eq!((status, err["fields"].clone()), (400, json!(["body"])), "{err}");
    assert!(!err.to_string().contains("Failed to deserialize"), "{err}");
    let (status, _) = world.http("GET", "/v1/cases/532901003-20200101-00009", None).await;
    assert_eq!(status, 404);
    let (status, node) = world.http("GET", "/v1/nodes/532900000000/children?page_size=20", None).await;
    assert_eq!(status, 200);
    assert_eq!(node["children"].as_array().unwrap().len(), 12);
    let (status, located) = world.http("GET", "/v1/locate?lon=100.2300&lat=25.5900&datum=gcj02", None).await;
    assert_eq!((status, located["county_code"].as_str()), (200, Some("532901000000")), "{located}");
    let (status, counts) = world.http("GET", "/v1/nodes/532900000000/counts", None).await;
    assert_eq!((status, counts["total"].as_u64()), (200, Some(12 + 112 + 1159)), "{counts}");
    let (status, credits) = world.http("GET", "/v1/credits", None).await;
    assert_eq!((status, credits["fields"].clone()), (400, json!(["case_id"])));
    world.stop().await;
}

async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

#[tokio::test]
async fn health_and_reflection_answer_on_every_service() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let world = World::start().await;
    let s = &world.suite;
    for (addr, name) in [
        (s.gateway_grpc, "zongzhi.gateway.v1.Desk"),
        (s.intake, "zongzhi.intake.v1.Intake"),
        (s.routing, "zongzhi.routing.v1.Routing"),
        (s.registry, "zongzhi.registry.v1.Registry"),
        (s.supervision, "zongzhi.supervision.v1.Supervision"),
        (s.subsidy, "zongzhi.subsidy.v1.Subsidy"),
    ] {
        let mut health = HealthClient::new(channel(addr).await);
        for service in ["", name] {
            let r = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
            assert_eq!(r.status(), ServingStatus::Serving, "{name} / {service:?}");
        }
    }
    // Each port lists exactly what it serves, through both reflection versions.
    let common =
        ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
    let registry = [
        "zongzhi.registry.v1.Registry",
        "zongzhi.registry.v1.Tree",
        "zongzhi.registry.v1.Geo",
        "zongzhi.registry.v1.Ledger",
        "zongzhi.registry.v1.Auth",
        "zongzhi.audit.v1.Audit",
    ];
    // Every service answers for its own trail, and the gateway for the calls it refused itself.
    for (addr, own) in [
        (s.gateway_grpc, &["zongzhi.gateway.v1.Desk", "zongzhi.audit.v1.Audit"][..]),
        (s.intake, &["zongzhi.intake.v1.Intake", "zongzhi.audit.v1.Audit"][..]),
        (s.registry, &registry[..]),
    ] {
        let mut want: Vec<String> = own.iter().chain(&common).map(|n| (*n).to_owned()).collect();
        want.sort();
        assert_eq!(list_v1(addr).await, want, "v1 on {addr}");
        assert_eq!(list_v1alpha(addr).await, want, "v1alpha on {addr}");
    }
    world.stop().await;
}

async fn list_v1(addr: std::net::SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list from {addr}")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

async fn list_v1alpha(addr: std::net::SocketAddr) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list from {addr}")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}
