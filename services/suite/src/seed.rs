//! Demo data for Dali (大理州), loaded through the services' own APIs so it obeys their rules: the division
//! tree with a center at every prefecture, county, township and village; grids with grid workers; a mediator;
//! departments stationed at centers; a routing table. Categories and the tariff come with the services'
//! migrations. Seeding twice changes nothing.

use kit::auth::Role;
use proto::registry::v1::registry_client::RegistryClient;
use proto::registry::v1::tree_client::TreeClient;
use proto::registry::v1::{
    AssignGridWorkerRequest, CreateGridRequest, CreatePersonRequest, Department, GetGridRequest, Person,
    PutDepartmentRequest, RotationEntry, SetRotationRequest,
};
use proto::routing::v1::routing_client::RoutingClient;
use proto::routing::v1::{PutRuleRequest, Rule};

/// 下关街道's first community, where the demo grids are.
pub const DEMO_VILLAGE: &str = "532901003001";
pub const DEMO_TOWNSHIP: &str = "532901003000";
pub const DEMO_COUNTY: &str = "532901000000";

/// What a client needs to drive the demo.
#[derive(Debug, Clone)]
pub struct Demo {
    pub grids: Vec<String>,
    pub grid_workers: Vec<String>,
    pub center_code: String,
    pub users: Vec<DemoUser>,
}

/// A demo account: its username, role and scope, the unit a handler handles for, and (administrators) the TOTP
/// secret for the second factor.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub username: String,
    pub role: Role,
    pub scope: String,
    /// The unit whose tasks a handler's grant covers (`532901003-SFS`); empty for other roles.
    pub unit: String,
    pub totp_secret: String,
}

/// Every demo account's password (it meets the policy: 8+ characters, three classes).
pub const DEMO_PASSWORD: &str = "Zongzhi@2026";

pub async fn seed(
    registry_pool: &sqlx::PgPool,
    registry_url: &str,
    routing_url: &str,
    token: &str,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Demo> {
    let report = registry::import_dali(registry_pool).await?;
    progress(&format!("division tree: {} rows ({} added)", report.rows, report.added));
    let mut registry = RegistryClient::new(kit::grpc::channel_with_token(registry_url, token)?);
    let mut demo = Demo { grids: vec![], grid_workers: vec![], center_code: DEMO_TOWNSHIP.into(), users: vec![] };
    for (seq, worker, phone) in
        [("001", "杨丽华", "13908720001"), ("002", "段志强", "13908720002"), ("003", "赵金花", "13908720003")]
    {
        let (code, worker_id) = grid_with_worker(&mut registry, seq, worker, phone).await?;
        demo.grids.push(code);
        demo.grid_workers.push(worker_id);
    }
    progress(&format!("grids: {} with their grid workers", demo.grids.len()));
    let mut tree = TreeClient::new(kit::grpc::channel_with_token(registry_url, token)?);
    for d in departments() {
        let rotating = d.stationing == "rotating";
        let code = d.code.clone();
        registry.put_department(PutDepartmentRequest { department: Some(d) }).await?;
        if rotating {
            // Routing follows a 轮驻 department's schedule, and a day no line covers is a day off: the demo's
            // rotating departments are stationed every day, so the demo routes the same whatever the weekday.
            // A deployment sets its real schedule (SetRotation).
            let entries = (1..=7).map(|weekday| RotationEntry { weekday, stationed: true, ..Default::default() });
            tree.set_rotation(SetRotationRequest { department_code: code, entries: entries.collect() }).await?;
        }
    }
    let mut routing = RoutingClient::new(kit::grpc::channel_with_token(routing_url, token)?);
    for rule in rules() {
        routing.put_rule(PutRuleRequest { rule: Some(rule) }).await?;
    }
    progress("departments and routing table loaded");
    demo.users = seed_users(registry_pool, &demo).await?;
    progress(&format!("{} demo users, one per role (password {DEMO_PASSWORD})", demo.users.len()));
    Ok(demo)
}

/// The grid `village + seq` with a primary grid worker, created only if missing.
async fn grid_with_worker(
    registry: &mut RegistryClient<kit::grpc::Channel>,
    seq: &str,
    worker: &str,
    phone: &str,
) -> anyhow::Result<(String, String)> {
    let code = format!("{DEMO_VILLAGE}{seq}");
    let existing = match registry.get_grid(GetGridRequest { code: code.clone() }).await {
        Ok(r) => r.into_inner().grid,
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => return Err(s.into()),
    };
    if let Some(g) = existing.filter(|g| !g.primary_worker_id.is_empty()) {
        return Ok((g.code, g.primary_worker_id));
    }
    let grid = registry
        .create_grid(CreateGridRequest {
            village_code: DEMO_VILLAGE.into(),
            name: format!("第{}网格", seq.trim_start_matches('0')),
            kind: proto::registry::v1::GridKind::Grid.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .grid
        .unwrap_or_default();
    let person: Person = registry
        .create_person(CreatePersonRequest {
            name: worker.into(),
            role: proto::vocab::v1::PersonRole::GridWorker.into(),
            phone: phone.into(),
            home_code: DEMO_VILLAGE.into(),
            subsidy_eligible: true,
            eligibility_source: "大理市综治中心 2025 年网格员名册".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .person
        .unwrap_or_default();
    registry
        .assign_grid_worker(AssignGridWorkerRequest { grid_code: grid.code.clone(), person_id: person.id.clone() })
        .await?;
    Ok((grid.code, person.id))
}

fn department(code: &str, name: &str, center: &str, stationing: &str, prefixes: &[&str]) -> Department {
    Department {
        code: code.into(),
        name: name.into(),
        center_code: center.into(),
        stationing: stationing.into(),
        category_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        retired: false,
    }
}

fn departments() -> Vec<Department> {
    vec![
        department("532901003-SFS", "下关街道司法所(人民调解)", DEMO_TOWNSHIP, "resident", &["0101", "0102", "0111"]),
        department("532901003-PCS", "下关派出所", DEMO_TOWNSHIP, "rotating", &["0207", "0204"]),
        department("532901-RSJ", "大理市人社局", DEMO_COUNTY, "resident", &["0106"]),
        department("532901-ZRZYJ", "大理市自然资源局", DEMO_COUNTY, "rotating", &["0103", "0104", "0105"]),
        department("532901-WJJ", "大理市卫健局", DEMO_COUNTY, "on_call", &["0107", "0203"]),
        department("532901-FY", "大理市人民法院诉调对接", DEMO_COUNTY, "on_call", &["0111"]),
    ]
}

fn rule(id: &str, priority: u32, category: &str, area: &str, unit: &Department) -> Rule {
    Rule {
        id: id.into(),
        priority,
        category_prefix: category.into(),
        area_prefix: area.into(),
        unit_kind: proto::vocab::v1::UnitKind::Department.into(),
        unit_code: unit.code.clone(),
        unit_name: unit.name.clone(),
        ..Default::default()
    }
}

fn rules() -> Vec<Rule> {
    let d = departments();
    vec![
        rule("xiaguan-family-neighbour", 10, "010", "532901003", &d[0]),
        rule("xiaguan-public-order", 10, "0207", "532901003", &d[1]),
        rule("dali-labour", 10, "0106", "532901", &d[2]),
        rule("dali-land", 10, "010", "532901", &d[3]),
        rule("dali-health", 10, "0107", "532901", &d[4]),
        rule("dali-lending", 5, "0111", "532901", &d[5]),
    ]
}

/// One account per role at 下关街道 (township) and 大理市 (county), the grid workers' own accounts (their grid
/// grants follow their assignments), and the three separated administrators.
async fn seed_users(pool: &sqlx::PgPool, demo: &Demo) -> anyhow::Result<Vec<DemoUser>> {
    use identity::admin::{seed_account, seed_password_hash, seed_staff};
    let hash = seed_password_hash(DEMO_PASSWORD)?;
    let staff: &[(&str, &str, Role, &str, &str)] = &[
        ("xg-clerk", "下关受理员", Role::IntakeClerk, DEMO_TOWNSHIP, ""),
        ("xg-dispatcher", "下关调度员", Role::Dispatcher, DEMO_TOWNSHIP, ""),
        ("xg-supervisor", "下关督办员", Role::Supervisor, DEMO_TOWNSHIP, ""),
        ("xg-followup", "下关回访员", Role::FollowUpClerk, DEMO_TOWNSHIP, ""),
        ("xg-leader", "下关中心主任", Role::CenterLeader, DEMO_TOWNSHIP, ""),
        ("xg-sfs", "下关司法所承办人", Role::Handler, DEMO_TOWNSHIP, "532901003-SFS"),
        ("dl-dispatcher", "大理市调度员", Role::Dispatcher, DEMO_COUNTY, ""),
        ("dl-leader", "大理市中心主任", Role::CenterLeader, DEMO_COUNTY, ""),
        ("dl-rsj", "大理市人社局承办人", Role::Handler, DEMO_COUNTY, "532901-RSJ"),
        ("dl-zrzy", "大理市自然资源局承办人", Role::Handler, DEMO_COUNTY, "532901-ZRZYJ"),
        ("dl-bizadmin", "大理市业务管理员", Role::BusinessAdmin, DEMO_COUNTY, ""),
        ("sysadmin", "系统管理员", Role::SystemAdmin, "*", ""),
        ("secadmin", "安全管理员", Role::SecurityAdmin, "*", ""),
        ("auditor", "审计管理员", Role::AuditAdmin, "*", ""),
    ];
    let mut users = Vec::new();
    for (username, name, role, scope, unit) in staff {
        let home = if *scope == "*" { DEMO_COUNTY } else { scope };
        let (_, totp) = seed_staff(pool, username, name, home, &hash, &[(*role, scope, unit)]).await?;
        let totp_secret = if role.is_admin() { totp } else { String::new() };
        let (username, scope, unit) = ((*username).into(), (*scope).into(), (*unit).into());
        users.push(DemoUser { username, role: *role, scope, unit, totp_secret });
    }
    for (i, (grid, worker)) in demo.grids.iter().zip(&demo.grid_workers).enumerate() {
        let username = format!("gw-{:03}", i + 1);
        let person = uuid::Uuid::parse_str(worker)?;
        seed_account(pool, &username, person, &format!("网格员 {}", i + 1), &hash, &[]).await?;
        let scope = grid.clone();
        users.push(DemoUser {
            username,
            role: Role::GridWorker,
            scope,
            unit: String::new(),
            totp_secret: String::new(),
        });
    }
    Ok(users)
}
