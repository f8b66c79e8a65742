//! The harness every routing test boots: a real routing service on its own database and stream, a client
//! over a socket, and helpers that play intake and supervision by publishing their events.

use kit::testing::AuthedChannel as Channel;
use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseRegistered, Envelope};
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;
use proto::registry::v1::{Department, PutDepartmentRequest, RotationEntry, SetRotationRequest};
use proto::routing::v1::routing_client::RoutingClient;
use proto::routing::v1::{ListTasksRequest, PutRuleRequest, Rule, Task};
use uuid::Uuid;

pub const CENTER: &str = "532901000000";
pub const VILLAGE: &str = "532901003001";
pub const OFFICER: &str = "officer-1";

pub struct Harness {
    pub client: RoutingClient<Channel>,
    pub url: String,
    /// The registry routing asks, when the test booted one (with a root client to it).
    pub registry: Option<(RegistryClient<Channel>, kit::app::StopHandle)>,
    pub registry_url: Option<String>,
    stop: kit::app::StopHandle,
    // Dropped last (fields drop in order), after the service was told to stop.
    pub infra: TestInfra,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some((_, stop)) = &self.registry {
            stop.stop();
        }
    }
}

/// Routing with a real registry beside it: rules are bound to the registry's units, and the registry answers
/// who may be credited. The registry holds the Dali division tree with a center at every unit.
pub async fn boot() -> Harness {
    boot_with_registry().await
}

/// Routing with a real registry beside it (with the Dali tree and its centers).
pub async fn boot_with_registry() -> Harness {
    // Both schemas migrated and the tree imported once per test process, copied for each test.
    let infra = TestInfra::from_template("registry_routing_dali", |template| async move {
        let registry = registry::connect(&template.config(registry::NAME)).await.expect("the registry migrates");
        registry::import_dali(&registry).await.expect("the Dali tree imports");
        registry.close().await;
        let routing = template.db(routing::NAME);
        kit::db::connect_and_migrate(&routing, &routing::MIGRATIONS).await.expect("routing migrates").close().await;
    })
    .await;
    let app = registry::build(registry::Settings::new(infra.config(registry::NAME))).await.expect("registry builds");
    let (url, stop) = kit::testing::spawn(app);
    let client = RegistryClient::new(kit::testing::connect(&url).await);
    start(infra, Some(url), Some((client, stop))).await
}

async fn start(
    infra: TestInfra,
    registry_url: Option<String>,
    registry: Option<(RegistryClient<Channel>, kit::app::StopHandle)>,
) -> Harness {
    let mut settings = routing::Settings::new(infra.config(routing::NAME));
    if let Some(url) = &registry_url {
        settings.registry_url = url.clone();
    }
    let app = routing::build(settings).await.expect("routing builds");
    let (url, stop) = kit::testing::spawn(app);
    let client = RoutingClient::new(kit::testing::connect(&url).await);
    Harness { client, url, registry, registry_url, stop, infra }
}

/// A case.registered as intake publishes it, for a case of `category` and `urgency` in the test village.
pub fn registered(case_no: &str, category: &str, urgency: &str) -> Body {
    Body::CaseRegistered(CaseRegistered {
        case_no: case_no.into(),
        channel: proto::vocab::v1::Channel::WalkIn.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: category.into(),
        urgency: <proto::vocab::v1::Urgency as proto::json::ProtoEnum>::number_of(urgency).unwrap_or_default(),
        grid_code: format!("{VILLAGE}001"),
        village_code: VILLAGE.into(),
        area_path: vec![
            VILLAGE.into(),
            "532901003000".into(),
            CENTER.into(),
            "532900000000".into(),
            "530000000000".into(),
        ],
        center_code: CENTER.into(),
        reporter_id: "grid-worker-7".into(),
        center_name: "大理市".into(),
        ..Default::default()
    })
}

pub fn envelope(case_id: Uuid, body: Body) -> Envelope {
    Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: case_id.to_string(),
        occurred_at_ms: chrono::Utc::now().timestamp_millis(),
        actor: "intake".into(),
        body: Some(body),
    }
}

impl Harness {
    /// The registry's Registry client (all roles).
    pub fn registry(&self) -> RegistryClient<Channel> {
        self.registry.as_ref().expect("the harness boots a registry").0.clone()
    }

    /// Stations department `code` at `center` (resident unless said otherwise), or changes it.
    pub async fn department(&self, code: &str, center: &str, stationing: &str, retired: bool) {
        let department = Department {
            code: code.into(),
            name: format!("{code} 部门"),
            center_code: center.into(),
            stationing: stationing.into(),
            category_prefixes: vec![],
            retired,
        };
        self.registry()
            .put_department(PutDepartmentRequest { department: Some(department) })
            .await
            .expect("put department");
    }

    /// Gives a rotating department a weekly schedule: stationed on every weekday when `on`, on none when not.
    pub async fn rotation(&self, code: &str, on: bool) {
        let url = self.registry_url.clone().expect("registry url");
        let mut tree = TreeClient::new(kit::testing::connect(&url).await);
        let entries = (1..=7).map(|weekday| RotationEntry { weekday, stationed: on, ..Default::default() }).collect();
        tree.set_rotation(SetRotationRequest { department_code: code.into(), entries }).await.expect("set rotation");
    }

    /// Puts a rule to department `unit`, stationing the department at the county center first (rules name
    /// only units the registry knows).
    pub async fn put_rule(&self, id: &str, priority: u32, category: &str, area: &str, unit: &str) -> Rule {
        self.department(unit, CENTER, "resident", false).await;
        let rule = Rule {
            id: id.into(),
            priority,
            category_prefix: category.into(),
            area_prefix: area.into(),
            urgency: 0,
            unit_kind: proto::vocab::v1::UnitKind::Department.into(),
            unit_code: unit.into(),
            unit_name: format!("{unit} 部门"),
            ..Default::default()
        };
        let response = self.client.clone().put_rule(PutRuleRequest { rule: Some(rule) }).await.expect("put rule");
        response.into_inner().rule.expect("rule in response")
    }

    /// Registers a case (as intake would) and waits for its first task.
    pub async fn register(&self, category: &str, urgency: &str) -> (Uuid, Task) {
        let case_id = Uuid::new_v4();
        let case_no = format!("532901-20250807-{:05}", case_id.as_u128() % 100_000);
        self.infra.publish(case_id, "intake", registered(&case_no, category, urgency)).await;
        let task = self.task_no(case_id, 1).await;
        (case_id, task)
    }

    /// The case's tasks as the all-roles caller sees them; empty when routing does not know the case yet.
    pub async fn tasks(&self, case_id: Uuid) -> Vec<Task> {
        let request = ListTasksRequest { case_id: case_id.to_string() };
        match self.client.clone().list_tasks(request).await {
            Ok(r) => r.into_inner().tasks,
            Err(s) if s.code() == tonic::Code::NotFound => vec![],
            Err(s) => panic!("list tasks: {s}"),
        }
    }

    /// Waits until the case has at least `n` tasks and returns the n-th (1-based).
    pub async fn task_no(&self, case_id: Uuid, n: usize) -> Task {
        eventually(&format!("task {n} of case {case_id}"), 10, || async move {
            self.tasks(case_id).await.into_iter().nth(n - 1)
        })
        .await
    }

    /// A client for a handler of every unit (officer-1), who accepts, returns and resolves tasks; the
    /// all-roles client then reviews, since nobody reviews their own return.
    pub async fn officer(&self) -> RoutingClient<Channel> {
        self.as_(&kit::testing::keys().token(OFFICER, &[("handler", "*")])).await
    }

    /// A client calling as the holder of `token`.
    pub async fn as_(&self, token: &str) -> RoutingClient<Channel> {
        RoutingClient::new(kit::testing::connect_as(&self.url, token).await)
    }

    /// Waits until case.dispatched for `task_id` is on the stream.
    pub async fn dispatched_event(&self, task_id: &str) -> proto::events::v1::CaseDispatched {
        eventually(&format!("case.dispatched for task {task_id}"), 10, || async move {
            self.infra.events().await.into_iter().find_map(|e| match e.body {
                Some(Body::CaseDispatched(d)) if d.task_id == task_id => Some(d),
                _ => None,
            })
        })
        .await
    }

    /// Waits until an event matching `pick` is on the stream.
    pub async fn event<T>(&self, what: &str, pick: impl Fn(Body) -> Option<T>) -> T {
        let pick = &pick;
        eventually(
            what,
            10,
            || async move { self.infra.events().await.into_iter().find_map(|e| e.body.and_then(pick)) },
        )
        .await
    }
}
