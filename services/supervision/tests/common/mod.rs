//! Booting supervision (and routing) on a test's own infrastructure, and reading its tables.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::net::SocketAddr;

use kit::app::StopHandle;
use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
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

/// Asserts a clean shutdown. `Running::run_until` selects without bias between "shutdown began" and "a task
/// ended", so when a task finishes its shutdown before `run_until` is next polled it may report that
/// task's (clean) end as "a task ended before shutdown"; only that race is tolerated here.
pub fn clean(result: anyhow::Result<()>) {
    if let Err(e) = result {
        assert!(e.to_string().ends_with("a task ended before shutdown"), "unclean shutdown: {e:#}");
    }
}

/// Supervision asking routing at `routing_url` (which need not exist for tests that never verify).
pub async fn supervision(infra: &TestInfra, routing_url: &str) -> Node {
    let peers = supervision::Peers { routing_url: routing_url.to_owned() };
    Node::start(supervision::build(infra.config(supervision::NAME), peers).await.expect("supervision starts"))
}

pub async fn routing(infra: &TestInfra) -> Node {
    Node::start(routing::build(infra.config(routing::NAME), routing::Peers::default()).await.expect("routing starts"))
}

pub async fn client(node: &Node) -> SupervisionClient<Channel> {
    SupervisionClient::new(kit::testing::connect(&node.url()).await)
}

/// Sets the normal-urgency policy for a stage on supervision's schema.
pub async fn set_policy(infra: &TestInfra, stage: &str, seconds: i32) {
    let pool = infra.pool(supervision::NAME).await;
    sqlx::query("UPDATE deadline_policy SET seconds = $2 WHERE urgency = 'normal' AND stage = $1")
        .bind(stage)
        .bind(seconds)
        .execute(&pool)
        .await
        .expect("policy updated");
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
