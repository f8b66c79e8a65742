//! Prometheus metrics from outside: every service and the gateway answer GET /metrics, calls are counted by
//! method and status on both faces, and each service reports its pool and outbox (supervision its due
//! deadlines).

#![allow(clippy::unwrap_used)]

use kit::testing::{sample, scrape};
use serde_json::json;
use tests::World;

#[tokio::test]
async fn every_part_serves_red_and_backlog_metrics() {
    let world = World::start().await;
    let body = json!({
        "idempotency_key": "metrics-1",
        "center_code": world.demo.center_code,
        "channel": "web",
        "kind": "dispute",
        "category_code": "0102",
        "urgency": "normal",
        "title": "楼上漏水",
        "location_code": world.demo.grids[0],
        "parties": [{"name": "张三", "phone": "13812345678", "role": "applicant"}]
    });
    let (status, created) = world.http("POST", "/v1/cases", Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let case_id = created["case"]["id"].as_str().unwrap().to_owned();
    let (status, _) = world.http("POST", "/v1/cases", Some(json!({"kind": "dispute"}))).await;
    assert_eq!(status, 400);
    let (status, _) = world.http("GET", &format!("/v1/cases/{case_id}"), None).await;
    assert_eq!(status, 200);
    let refused = world.desk.clone().register_case(proto::intake::v1::RegisterCaseRequest::default()).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);

    let addr = |name: &str| world.suite.metrics.iter().find(|(n, _)| *n == name).map(|(_, a)| *a).unwrap();
    let gateway = scrape(addr("gateway")).await;
    let at_least_one = |text: &str, series: &str| {
        let v = sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(v >= 1.0, "{series} = {v}");
    };
    // The JSON face by route pattern (the case id is not a label), with the HTTP status.
    at_least_one(&gateway, r#"http_server_requests_total{method="POST",route="/v1/cases",status="200"}"#);
    at_least_one(&gateway, r#"http_server_requests_total{method="POST",route="/v1/cases",status="400"}"#);
    at_least_one(&gateway, r#"http_server_requests_total{method="GET",route="/v1/cases/{case_ref}",status="200"}"#);
    at_least_one(&gateway, r#"http_server_request_duration_seconds_count{method="POST",route="/v1/cases"}"#);
    assert!(!gateway.contains(&case_id), "no series is named after a case");
    // The gRPC face, by status code.
    at_least_one(
        &gateway,
        r#"grpc_server_handled_total{grpc_code="INVALID_ARGUMENT",grpc_method="RegisterCase",grpc_service="zongzhi.gateway.v1.Desk"}"#,
    );

    let intake = scrape(addr("intake")).await;
    at_least_one(
        &intake,
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="RegisterCase",grpc_service="zongzhi.intake.v1.Intake"}"#,
    );
    at_least_one(
        &intake,
        r#"grpc_server_handling_seconds_count{grpc_method="RegisterCase",grpc_service="zongzhi.intake.v1.Intake"}"#,
    );
    at_least_one(
        &intake,
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="ResolveLocation",grpc_service="zongzhi.registry.v1.Registry"}"#,
    );

    for service in ["intake", "routing", "registry", "supervision", "subsidy"] {
        let text = scrape(addr(service)).await;
        let pool = format!("zongzhi_db_pool_connections{{service=\"{service}\"}}");
        assert!(sample(&text, &pool).unwrap_or(0.0) >= 1.0, "{service}: {pool} in\n{text}");
        let max = format!("zongzhi_db_pool_max_connections{{service=\"{service}\"}}");
        assert_eq!(sample(&text, &max), Some(5.0), "{service}: the suite's pools hold 5");
        let backlog = format!("zongzhi_outbox_unpublished{{service=\"{service}\"}}");
        assert!(sample(&text, &backlog).is_some(), "{service}: {backlog} in\n{text}");
    }
    // A gauge every suite in the process sets (the tests run side by side): it reads 0 whenever this suite's
    // scheduler, which has nothing due, set it last.
    kit::testing::eventually("the scheduler keeps up (zongzhi_deadlines_due 0)", 10, || async {
        (sample(&scrape(addr("supervision")).await, "zongzhi_deadlines_due") == Some(0.0)).then_some(())
    })
    .await;
    world.stop().await;
}
