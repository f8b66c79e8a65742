//! Booting supervision on a test's own infrastructure, publishing routing's side of a case as events (no
//! routing service runs in these tests: supervision verifies on its own view of the tasks, and asks routing
//! only when that view has the latest task unresolved; see `closing::routing_asked`), and reading supervision's
//! tables.

use std::net::SocketAddr;

use kit::app::StopHandle;
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseAccepted, CaseDispatched, CaseResolved, Envelope};
use proto::supervision::v1::supervision_client::SupervisionClient;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A service running in this test, stoppable.
pub struct Node {
    pub addr: SocketAddr,
    stop: StopHandle,
    join: JoinHandle<anyhow::Result<()>>,
}

impl Node {
    pub fn start(app: kit::app::Running) -> Self {
        let (addr, stop) = (app.addr(), app.stop_handle());
        Self { addr, stop, join: tokio::spawn(app.run_until(std::future::pending())) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the service and waits until every task has finished.
    pub async fn stop(self) {
        self.stop.stop();
        clean(self.join.await.expect("joined"));
    }
}

/// Asserts a clean shutdown. `Running::run_until` selects with `biased;` (the signal, then "shutdown began",
/// then "a task ended"), so a stop already fired always wins; a task that ends cleanly in the moment before
/// the stop is visible is still reported as "a task ended before shutdown", and only that race is tolerated
/// here.
pub fn clean(result: anyhow::Result<()>) {
    if let Err(e) = result {
        assert!(e.to_string().ends_with("a task ended before shutdown"), "unclean shutdown: {e:#}");
    }
}

/// The test's own database, a copy of one with supervision's schema migrated (made once per test process).
pub async fn infra() -> TestInfra {
    TestInfra::from_template("supervision", |template| async move {
        let pool = supervision::connect(&template.config(supervision::NAME)).await.expect("supervision migrates");
        pool.close().await;
    })
    .await
}

pub async fn supervision(infra: &TestInfra) -> Node {
    let settings = supervision::Settings::new(infra.config(supervision::NAME));
    Node::start(supervision::build(settings).await.expect("supervision starts"))
}

pub async fn client(node: &Node) -> SupervisionClient<Channel> {
    SupervisionClient::new(kit::testing::connect(&node.url()).await)
}

/// Adds a time-policy version whose limit for `stage` is `seconds` of calendar time, for every case whose clock
/// starts after it.
pub async fn set_policy(infra: &TestInfra, stage: &str, seconds: i32) {
    let pool = infra.pool(supervision::NAME).await;
    let stage = supervision::domain::Stage::parse("stage", stage).expect("a stage");
    supervision::service::clocks::with_stage_limit(&pool, stage, "calendar_hours", &format!("{seconds}s"), "test")
        .await
        .expect("policy added");
}

/// (stage, state) of the case's deadlines, oldest first.
pub async fn deadline_states(infra: &TestInfra, case_id: Uuid) -> Vec<(String, String)> {
    let pool = infra.pool(supervision::NAME).await;
    sqlx::query_as("SELECT stage, state FROM deadlines WHERE case_id = $1 ORDER BY created_at, stage")
        .bind(case_id)
        .fetch_all(&pool)
        .await
        .expect("deadlines")
}

/// Waits until the case's deadlines are exactly `want`.
pub async fn await_deadlines(infra: &TestInfra, case_id: Uuid, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    eventually(&format!("deadlines {want:?}"), 20, || async {
        (deadline_states(infra, case_id).await == want).then_some(())
    })
    .await;
}

/// The bodies of the case's events on the stream, in order.
pub async fn bodies(infra: &TestInfra, case_id: Uuid) -> Vec<Body> {
    let id = case_id.to_string();
    infra.events().await.into_iter().filter(|e| e.case_id == id).filter_map(|e| e.body).collect()
}

/// Waits until an event of the case matches `pick`, and returns what it picked.
pub async fn await_event<T>(infra: &TestInfra, case_id: Uuid, what: &str, pick: impl Fn(&Body) -> Option<T>) -> T {
    eventually(what, 20, || async { bodies(infra, case_id).await.iter().find_map(&pick) }).await
}

/// case.dispatched as routing publishes it: the task to `unit`, the case's `attempt`-th dispatch.
pub fn dispatched(task_id: &str, unit: &str, attempt: u32) -> Body {
    Body::CaseDispatched(CaseDispatched {
        task_id: task_id.into(),
        unit_code: unit.into(),
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
        attempt,
        case_no: "532901-20250807-00042".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        category_code: "0104".into(),
        ..Default::default()
    })
}

pub fn accepted(task_id: &str, handler: &str) -> Body {
    Body::CaseAccepted(CaseAccepted { task_id: task_id.into(), handler_id: handler.into() })
}

/// case.resolved crediting `resolver`; the envelope's actor (who resolved it) is the publisher's `actor`.
pub fn resolved(task_id: &str, resolver: &str) -> Body {
    Body::CaseResolved(CaseResolved {
        task_id: task_id.into(),
        outcome: proto::vocab::v1::Outcome::DisputeResolved.into(),
        resolver_id: resolver.into(),
    })
}

/// An event of the case as if it happened `ago_ms` ago: a stale copy under a new event id, as a replay or a
/// late producer would send it.
pub async fn publish_stale(infra: &TestInfra, case_id: Uuid, actor: &str, body: Body, ago_ms: i64) -> String {
    let envelope = Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: case_id.to_string(),
        occurred_at_ms: chrono::Utc::now().timestamp_millis() - ago_ms,
        actor: actor.into(),
        body: Some(body),
    };
    infra.publish_envelope(&envelope).await;
    envelope.event_id
}

/// A task as supervision's projection has it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskView {
    pub state: String,
    pub unit_code: String,
    pub attempt: i32,
    pub round: i32,
    pub handler_id: String,
    pub resolved_by: String,
    pub resolver_id: String,
}

pub async fn task_view(infra: &TestInfra, task_id: &str) -> Option<TaskView> {
    let pool = infra.pool(supervision::NAME).await;
    sqlx::query_as(
        "SELECT state, unit_code, attempt, round, handler_id, resolved_by, resolver_id FROM tasks WHERE task_id = $1",
    )
    .bind(task_id)
    .fetch_optional(&pool)
    .await
    .expect("task view")
}

/// Waits until supervision has seen the task reach `state`, and returns it.
pub async fn await_task(infra: &TestInfra, task_id: &str, state: &str) -> TaskView {
    eventually(&format!("supervision sees task {task_id} {state}"), 20, || async {
        task_view(infra, task_id).await.filter(|t| t.state == state)
    })
    .await
}

/// Waits until supervision's consumer has applied (or skipped) the event: it is in the inbox and not parked.
pub async fn await_handled(infra: &TestInfra, event_id: &str) {
    let pool = infra.pool(supervision::NAME).await;
    eventually(&format!("supervision handled event {event_id}"), 20, || async {
        let (seen, parked): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM inbox WHERE message_id = $1), \
                    EXISTS (SELECT 1 FROM parked_event WHERE event_id = $1)",
        )
        .bind(event_id)
        .fetch_one(&pool)
        .await
        .ok()?;
        assert!(!parked, "event {event_id} was parked: supervision failed to apply it");
        seen.then_some(())
    })
    .await;
}

/// The text a reader's search finds in a PDF (poppler's pdftotext).
pub fn pdf_text(pdf: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("slip-{}.pdf", Uuid::new_v4()));
    std::fs::write(&path, pdf).expect("write the PDF");
    let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output();
    let _ = std::fs::remove_file(&path);
    String::from_utf8(out.expect("pdftotext (poppler-utils)").stdout).expect("UTF-8 text")
}
