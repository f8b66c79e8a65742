//! The end-to-end harness: the whole suite on a test's own database and stream, with the demo seeded, and a
//! minimal HTTP/1.1 client for the gateway's JSON face.

#![allow(clippy::unwrap_used)]

use kit::testing::TestInfra;
use proto::gateway::v1::desk_client::DeskClient;
use suite::seed::Demo;
use suite::{Suite, SuiteConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct World {
    pub suite: Suite,
    pub demo: Demo,
    pub desk: DeskClient<tonic::transport::Channel>,
    /// Dropped last: removes the database and stream.
    pub infra: TestInfra,
}

impl World {
    pub async fn start() -> Self {
        kit::testing::init_tracing();
        let infra = TestInfra::new().await;
        let cfg = SuiteConfig {
            database_url: infra.db_url.clone(),
            nats: infra.nats.clone(),
            host: [127, 0, 0, 1].into(),
            base_port: 0,
            http_port: 0,
        };
        let suite = Suite::start(&cfg).await.expect("suite starts");
        let pool = registry::connect(&Suite::registry_config(&cfg)).await.expect("registry db");
        let demo = suite::seed::seed(
            &pool,
            &format!("http://{}", suite.registry),
            &format!("http://{}", suite.routing),
            &mut |_| {},
        )
        .await
        .expect("seed");
        let desk = DeskClient::connect(format!("http://{}", suite.gateway_grpc)).await.expect("gateway");
        Self { suite, demo, desk, infra }
    }

    pub async fn stop(self) {
        self.suite.stop().await.expect("clean stop");
    }

    /// Sends one HTTP/1.1 request to the gateway and returns the status code and the JSON body.
    pub async fn http(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        self.http_raw(method, path, &body.map(|b| b.to_string()).unwrap_or_default()).await
    }

    /// The same with the body sent as given, for malformed input.
    pub async fn http_raw(&self, method: &str, path: &str, payload: &str) -> (u16, serde_json::Value) {
        let mut stream = tokio::net::TcpStream::connect(self.suite.gateway_http).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let json = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned()));
        (status, json)
    }
}
