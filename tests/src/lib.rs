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
    /// The gateway as the test root (for tests about something other than who may act): every business role,
    /// and for an administrator's method the token of that administrator role alone.
    pub desk: DeskClient<kit::testing::AuthedChannel>,
    pub root_token: String,
    /// Dropped last: removes the database and stream.
    pub infra: TestInfra,
}

impl World {
    /// A dispute in the demo's first grid under the idempotency key `key`, with an applicant and a respondent.
    pub fn dispute(&self, key: &str) -> proto::intake::v1::RegisterCaseRequest {
        use proto::intake::v1::PartyInput;
        use proto::vocab::v1::PartyRole;
        let party = |name: &str, phone: &str, role: PartyRole| PartyInput {
            name: name.into(),
            phone: phone.into(),
            id_number: String::new(),
            role: role.into(),
        };
        proto::intake::v1::RegisterCaseRequest {
            idempotency_key: key.into(),
            center_code: self.demo.center_code.clone(),
            channel: proto::vocab::v1::Channel::GridApp.into(),
            kind: proto::vocab::v1::CaseKind::Dispute.into(),
            category_code: "0102".into(),
            urgency: proto::vocab::v1::Urgency::Normal.into(),
            title: "楼道堆物引发邻里纠纷".into(),
            description: "楼道长期堆放杂物, 协商未果".into(),
            location_code: self.demo.grids[0].clone(),
            parties: vec![party("张三", "13812345678", PartyRole::Applicant), party("李四", "", PartyRole::Respondent)],
            reporter_id: self.demo.grid_workers[0].clone(),
            operator_id: String::new(),
        }
    }

    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The suite with every connection to PostgreSQL through a proxy that counts round trips (the seed's
    /// too; read the count before and after what is measured).
    pub async fn start_counted() -> (Self, std::sync::Arc<kit::testing::PgCounter>) {
        let counter = std::sync::Arc::new(kit::testing::PgCounter::start().await);
        (Self::start_with(Some(&counter)).await, counter)
    }

    async fn start_with(counter: Option<&kit::testing::PgCounter>) -> Self {
        kit::testing::init_tracing();
        let infra = TestInfra::from_template("suite", |template| async move {
            suite::migrate(&template.db_url).await.expect("the suite's schemas migrate");
            let registry = template.pool(registry::NAME).await;
            registry::import_dali(&registry).await.expect("the Dali tree imports");
            registry.close().await;
        })
        .await;
        let database_url = counter.map_or_else(|| infra.db_url.clone(), |c| c.url(&infra.db_url));
        let cfg = SuiteConfig {
            database_url,
            nats: infra.nats.clone(),
            nats_passwords: kit::testing::TestNats::users()
                .filter(|u| *u != kit::bus_access::OPS_USER)
                .map(|u| (u.to_owned(), kit::testing::test_nats().password(u).to_owned()))
                .collect(),
            host: [127, 0, 0, 1].into(),
            base_port: 0,
            http_port: 0,
            keys: kit::testing::keys().set.clone(),
            pii_key: kit::pii::DEV_KEY,
            audit_key: kit::audit::AuditKey::dev(),
        };
        let suite = Suite::start(&cfg).await.expect("suite starts");
        let pool = registry::connect(&Suite::registry_config(&cfg)).await.expect("registry db");
        let demo = suite::seed::seed(
            &pool,
            &format!("http://{}", suite.registry),
            &format!("http://{}", suite.routing),
            &kit::testing::keys().token("seed", &[("business_admin", "*")]),
            &mut |_| {},
        )
        .await
        .expect("seed");
        let root_token = kit::testing::keys().root();
        let desk = DeskClient::new(kit::testing::connect(&format!("http://{}", suite.gateway_grpc)).await);
        Self { suite, demo, desk, root_token, infra }
    }

    /// The gateway as `username` after signing in with the demo password (and, for an administrator, the
    /// current TOTP code), with the token it got.
    pub async fn sign_in(&self, username: &str) -> (DeskClient<kit::testing::AuthedChannel>, String) {
        let otp = self
            .demo
            .users
            .iter()
            .find(|u| u.username == username && !u.totp_secret.is_empty())
            .map(|u| identity::admin::current_otp(&u.totp_secret))
            .unwrap_or_default();
        let request = proto::registry::v1::SignInRequest {
            username: username.into(),
            password: suite::seed::DEMO_PASSWORD.into(),
            otp,
        };
        let mut anonymous = DeskClient::connect(format!("http://{}", self.suite.gateway_grpc)).await.unwrap();
        let token =
            anonymous.sign_in(request).await.unwrap_or_else(|s| panic!("{username} signs in: {s:?}")).into_inner();
        let url = format!("http://{}", self.suite.gateway_grpc);
        (DeskClient::new(kit::testing::connect_as(&url, &token.access_token).await), token.access_token)
    }

    /// Stops the suite, and fails the test if any call it made changed something without staging its audit
    /// record in the same transaction (see `kit::audit::staged`).
    pub async fn stop(self) {
        self.suite.stop().await.expect("clean stop");
        let unstaged = kit::testing::unstaged_changes();
        assert!(unstaged.is_empty(), "changes committed without their audit record staged: {unstaged:#?}");
    }

    /// Waits until supervision has seen the task resolved. Supervision verifies on what routing's events told
    /// it, so right after 办结, until case.resolved reaches it, a verification is refused as "not resolved yet".
    pub async fn resolution_seen(&self, task_id: &str) {
        let pool = self.infra.pool("supervision").await;
        kit::testing::eventually(&format!("supervision sees task {task_id} resolved"), 20, || async {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM tasks WHERE task_id = $1")
                .bind(task_id)
                .fetch_optional(&pool)
                .await
                .ok()?;
            (state.as_deref() == Some("resolved")).then_some(())
        })
        .await;
    }

    /// Sends one HTTP/1.1 request to the gateway and returns the status code and the JSON body.
    /// It carries the root's token for the route (see [`root_token_for`]).
    pub async fn http(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        self.http_raw(method, path, &body.map(|b| b.to_string()).unwrap_or_default()).await
    }

    /// The same with the body sent as given, for malformed input.
    pub async fn http_raw(&self, method: &str, path: &str, payload: &str) -> (u16, serde_json::Value) {
        self.http_as(Some(&root_token_for(path)), method, path, payload).await
    }

    /// One HTTP/1.1 request with `token` as its bearer (None: no Authorization header).
    pub async fn http_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        payload: &str,
    ) -> (u16, serde_json::Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.http_with(&headers, method, path, payload).await
    }

    /// One HTTP/1.1 request with exactly `headers` (besides Host, Content-Type and Content-Length).
    pub async fn http_with(
        &self,
        headers: &[(&str, &str)],
        method: &str,
        path: &str,
        payload: &str,
    ) -> (u16, serde_json::Value) {
        let mut stream = tokio::net::TcpStream::connect(self.suite.gateway_http).await.unwrap();
        let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
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

/// The root's token for an HTTP route: the administrator whose route it is (accounts and clients: the system
/// administrator; approvals and grants: the security administrator; the rest of `/v1/admin` and persons: the
/// business administrator), else the business token.
pub fn root_token_for(path: &str) -> String {
    use kit::auth::Role;
    let keys = kit::testing::keys();
    let admin = if path.starts_with("/v1/admin/grants") || path.ends_with("/approve") {
        Some(Role::SecurityAdmin)
    } else if path.starts_with("/v1/admin/accounts") || path.starts_with("/v1/admin/clients") {
        Some(Role::SystemAdmin)
    } else if path.starts_with("/v1/admin/") || path.starts_with("/v1/persons/") {
        Some(Role::BusinessAdmin)
    } else {
        None
    };
    admin.map_or_else(|| keys.root(), |role| keys.admin(role))
}

impl World {
    /// One GET with the root's business token, for a body that is not JSON (a PDF): the status, the Content-Type and
    /// the raw body.
    pub async fn http_bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut stream = tokio::net::TcpStream::connect(self.suite.gateway_http).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.root_token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
            .unwrap_or_default();
        (status, content_type, raw[split + 4..].to_vec())
    }
}

/// Deterministic pseudo-random choices for fuzzing and property tests (kit's, shared with its own tests).
pub use kit::testing::Rng;

/// Calls `path` on `channel` with an empty message and, if given, `authorization: Bearer <token>`: how a scanner
/// or a stale client calls a method it made up or one of another service.
pub async fn raw_call(
    channel: tonic::transport::Channel,
    path: &str,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(());
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().map_err(|_| tonic::Status::invalid_argument("token"))?;
        request.metadata_mut().insert("authorization", value);
    }
    let path =
        tonic::codegen::http::uri::PathAndQuery::try_from(path).map_err(|_| tonic::Status::invalid_argument("path"))?;
    grpc.unary(request, path, tonic_prost::ProstCodec::<(), ()>::default()).await.map(|_| ())
}
