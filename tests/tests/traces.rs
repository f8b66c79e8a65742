//! Traces measured from outside: the suite exports over OTLP to a collector this test runs (the real
//! OTLP/gRPC TraceService), and a caller's W3C `traceparent` must be the root of every span its request
//! causes, through either face of the gateway.
//!
//! A test binary of its own: the tracing subscriber and its exporter are global to a process, and the
//! exporter's channel lives on the runtime it was built on, so there is one test here, on one runtime.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use proto::intake::v1::{PartyInput, RegisterCaseRequest};
use serde_json::json;
use tests::World;

/// Keeps every span exported to it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request.into_inner().resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Sink {
    async fn start() -> (Self, std::net::SocketAddr) {
        let sink = Sink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        (sink, addr)
    }

    /// Flushes the exporter until a span named `name` in `trace` has arrived (spans of consumers come later
    /// than the reply), and returns it.
    async fn wait_for(&self, trace: &[u8], name: &str) -> Span {
        for _ in 0..100 {
            // force_flush blocks until the export is acknowledged; the export itself runs on this runtime.
            tokio::task::spawn_blocking(kit::telemetry::flush).await.unwrap();
            if let Some(s) = self.in_trace(trace).into_iter().find(|s| s.name == name) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let names: Vec<String> =
            self.0.lock().unwrap().iter().map(|s| format!("{} {}", hex(&s.trace_id), s.name)).collect();
        panic!("no span {name:?} in trace {}; spans seen: {names:#?}", hex(trace));
    }

    fn in_trace(&self, trace: &[u8]) -> Vec<Span> {
        self.0.lock().unwrap().iter().filter(|s| s.trace_id == trace).cloned().collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A caller's trace and span id (random, so no earlier run's spans can match), and its `traceparent`.
fn caller() -> (Vec<u8>, Vec<u8>, String) {
    let trace: Vec<u8> = uuid::Uuid::new_v4().as_bytes().to_vec();
    let span: Vec<u8> = uuid::Uuid::new_v4().as_bytes()[..8].to_vec();
    let header = format!("00-{}-{}-01", hex(&trace), hex(&span));
    (trace, span, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_runs_through_both_gateway_faces_to_every_service() {
    let (sink, addr) = Sink::start().await;
    // Before the world starts: its own test subscriber then finds one installed and stands aside.
    kit::telemetry::init_with("tests", Some(&format!("http://{addr}")));
    let world = World::start().await;

    // The JSON face: the gateway's span is the caller's child, and intake's is the gateway's.
    let (trace, parent, traceparent) = caller();
    let auth = format!("Bearer {}", world.root_token);
    let body = json!({
        "idempotency_key": "traced-http",
        "center_code": world.demo.center_code,
        "channel": "web",
        "kind": "dispute",
        "category_code": "0102",
        "urgency": "normal",
        "title": "楼上漏水",
        "location_code": world.demo.grids[0],
        "parties": [{"name": "张三", "phone": "13812345678", "role": "applicant"}]
    });
    let (status, created) = world
        .http_with(&[("Authorization", &auth), ("traceparent", &traceparent)], "POST", "/v1/cases", &body.to_string())
        .await;
    assert_eq!(status, 200, "{created}");
    let gateway = sink.wait_for(&trace, "POST /v1/cases").await;
    assert_eq!(gateway.parent_span_id, parent, "the gateway's HTTP span is the caller's child");
    assert_eq!(gateway.kind, SpanKind::Server as i32);
    let intake = sink.wait_for(&trace, "/zongzhi.intake.v1.Intake/RegisterCase").await;
    assert_eq!(intake.parent_span_id, gateway.span_id, "intake's span is the gateway's child");
    let registry = sink.wait_for(&trace, "/zongzhi.registry.v1.Registry/ResolveLocation").await;
    assert_ne!(registry.parent_span_id, Vec::<u8>::new(), "the registry call has a parent in the trace");
    // The case's first event reaches routing, supervision and the registry in the same trace.
    for _ in 0..50 {
        if sink.in_trace(&trace).iter().filter(|s| s.kind == SpanKind::Consumer as i32).count() >= 3 {
            break;
        }
        tokio::task::spawn_blocking(kit::telemetry::flush).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let consumers = sink.in_trace(&trace).into_iter().filter(|s| s.kind == SpanKind::Consumer as i32).count();
    assert!(
        consumers >= 3,
        "case.registered is consumed by routing, supervision and registry in the trace: {consumers}"
    );

    // The gRPC face: the same, from metadata.
    let (trace, parent, traceparent) = caller();
    let mut request = tonic::Request::new(RegisterCaseRequest {
        idempotency_key: "traced-grpc".into(),
        center_code: world.demo.center_code.clone(),
        channel: proto::vocab::v1::Channel::GridApp.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "楼上漏水".into(),
        description: String::new(),
        location_code: world.demo.grids[0].clone(),
        parties: vec![PartyInput {
            name: "李四".into(),
            phone: "13912345678".into(),
            id_number: String::new(),
            role: proto::vocab::v1::PartyRole::Applicant.into(),
        }],
        ..Default::default()
    });
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    world.desk.clone().register_case(request).await.unwrap();
    let gateway = sink.wait_for(&trace, "/zongzhi.gateway.v1.Desk/RegisterCase").await;
    assert_eq!(gateway.parent_span_id, parent, "the gateway's gRPC span is the caller's child");
    let intake = sink.wait_for(&trace, "/zongzhi.intake.v1.Intake/RegisterCase").await;
    assert_eq!(intake.parent_span_id, gateway.span_id, "intake's span is the gateway's child");

    // A request without trace context starts a trace of its own at the gateway (no parent).
    let before = sink.0.lock().unwrap().len();
    let (status, _) = world.http("GET", "/v1/nodes/532900000000", None).await;
    assert_eq!(status, 200);
    let mut roots = Vec::new();
    for _ in 0..50 {
        tokio::task::spawn_blocking(kit::telemetry::flush).await.unwrap();
        roots = sink.0.lock().unwrap()[before..]
            .iter()
            .filter(|s| s.name == "GET /v1/nodes/{code}")
            .map(|s| s.parent_span_id.clone())
            .collect();
        if !roots.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(roots, vec![Vec::<u8>::new()], "an untraced request is a root span at the gateway");
    world.stop().await;
}
