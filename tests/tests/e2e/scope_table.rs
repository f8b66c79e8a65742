//! Tree scope through the gateway: cases registered at six places of the Dali tree, then read, listed and
//! acted on by every case-reading role scoped at nodes along and off their paths (a table), and by a seeded
//! random walk over (principal, case) pairs. The expected answers come from the Dali CSV's parent links and
//! the grid codes, never from kit's scope code: a scope node sees a case iff it is on the case's path.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use futures::StreamExt as _;
use kit::auth::Grant;
use kit::testing::{connect_as, eventually, keys};
use proto::gateway::v1::desk_client::DeskClient;
use proto::intake::v1::{Case, GetCaseRequest, ListCasesRequest, PartyInput, RegisterCaseRequest};
use proto::routing::v1::ReviewReturnRequest;
use proto::supervision::v1::VerifyCaseRequest;
use tests::{Rng, World};
use tonic::Code;

type Desk = DeskClient<kit::testing::AuthedChannel>;

const DIVISIONS: &str = include_str!("../../../services/registry/data/dali_532900_divisions_2023.csv");

/// Where the cases are registered: label, location (grid or village), registering center over it.
const PLACES: &[(&str, &str, &str)] = &[
    ("case at grid 1 of 龙溪社区", "532901003001001", "532901003000"),
    ("case at grid 2 of 龙溪社区", "532901003001002", "532901003000"),
    ("case at 龙溪社区 without a grid", "532901003001", "532901003001"),
    ("case at 兴盛社区 (sibling village)", "532901003002", "532901003000"),
    ("case at 关迤社区 (太和街道, other township)", "532901004001", "532901004000"),
    ("case at 仁民街社区 (漾濞县, other county)", "532922101001", "532922000000"),
];

/// Scope nodes named by their relation to the first case (grid 1).
const NODES: &[(&str, &str)] = &[
    ("same grid", "532901003001001"),
    ("sibling grid", "532901003001002"),
    ("micro-grid below the grid", "532901003001001001"),
    ("same village", "532901003001"),
    ("sibling village", "532901003002"),
    ("parent township", "532901003000"),
    ("other township", "532901004000"),
    ("county", "532901000000"),
    ("other county", "532922000000"),
    ("prefecture", "532900000000"),
    ("province", "530000000000"),
];

/// Roles whose ReadCase reaches a tree node (grid or center scope), and those reaching a unit.
const TREE_READERS: &[&str] =
    &["grid_worker", "intake_clerk", "dispatcher", "supervisor", "follow_up_clerk", "center_leader"];
const UNIT_READERS: &[&str] = &["handler", "unit_lead"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    ReviewReturn,
    Verify,
}

impl Act {
    /// The roles the matrix gives this act, all at center scope.
    fn roles(self) -> &'static [&'static str] {
        match self {
            Act::ReviewReturn => &["dispatcher", "supervisor", "center_leader"],
            Act::Verify => &["supervisor", "center_leader"],
        }
    }
}

/// A registered case, as root reads it, with every node a scope may name to see it.
struct Placed {
    label: &'static str,
    case: Case,
    path: Vec<String>,
}

/// A principal: (role, scope node, unit) grants.
struct Who {
    label: String,
    grants: Vec<(&'static str, String, String)>,
    acts: Vec<Act>,
}

impl Who {
    fn token(&self, person: &str) -> String {
        let grants = self
            .grants
            .iter()
            .map(|(role, scope, unit)| Grant { role: (*role).into(), scope: scope.clone(), unit: unit.clone() })
            .collect();
        keys().token_with(person, grants)
    }

    /// Whether a grant with one of `roles` reaches the case: its node on the path, or its unit the case's.
    fn reaches(&self, roles: &[&str], p: &Placed) -> bool {
        self.grants.iter().any(|(role, node, unit)| {
            roles.contains(role)
                && ((TREE_READERS.contains(role) && p.path.contains(node))
                    || (UNIT_READERS.contains(role) && !unit.is_empty() && *unit == p.case.current_unit_code))
        })
    }

    fn may(&self, act: Act) -> bool {
        self.grants.iter().any(|(r, _, _)| act.roles().contains(r))
    }

    fn reads(&self, p: &Placed) -> bool {
        self.reaches(TREE_READERS, p) || self.reaches(UNIT_READERS, p)
    }

    /// The answer to an act on a case in a state that forbids it: refused by role, let through to the state
    /// check, refused by scope where the case can be read, NOT_FOUND where it cannot.
    fn expected(&self, act: Act, p: &Placed) -> Code {
        if !self.may(act) {
            Code::PermissionDenied
        } else if self.reaches(act.roles(), p) {
            Code::FailedPrecondition
        } else if self.reads(p) {
            Code::PermissionDenied
        } else {
            Code::NotFound
        }
    }
}

/// Every node whose scope covers a place: the grid and the grids above it, then the village and its
/// ancestors by the CSV's parent links.
fn path_of(case: &Case, parents: &HashMap<&str, &str>) -> Vec<String> {
    let mut path = Vec::new();
    let mut grid = case.grid_code.as_str();
    while grid.len() > 12 {
        path.push(grid.to_owned());
        grid = &grid[..grid.len() - 3];
    }
    let mut node = case.village_code.as_str();
    while !node.is_empty() {
        path.push(node.to_owned());
        node = parents.get(node).copied().unwrap_or_default();
    }
    path
}

fn parents() -> HashMap<&'static str, &'static str> {
    DIVISIONS.lines().skip(1).filter_map(|l| Some((l.split(',').next()?, l.rsplit(',').next()?))).collect()
}

fn registration(key: &str, location: &str, center: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: center.into(),
        channel: proto::vocab::v1::Channel::WalkIn.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0102".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "邻里纠纷".into(),
        description: "scope table".into(),
        location_code: location.into(),
        parties: vec![PartyInput {
            name: "张三".into(),
            phone: "13812345678".into(),
            id_number: String::new(),
            role: proto::vocab::v1::PartyRole::Applicant.into(),
        }],
        reporter_id: String::new(),
        operator_id: String::new(),
    }
}

/// The suite with one case registered by root at each place, dispatched, and known to supervision.
async fn world_with_cases() -> (World, Vec<Placed>) {
    let world = World::start().await;
    let parents = parents();
    let mut placed = Vec::new();
    for (i, (label, location, center)) in PLACES.iter().enumerate() {
        let request = registration(&format!("scope-{i}"), location, center);
        let registered = world.desk.clone().register_case(request).await;
        let case = registered.unwrap_or_else(|s| panic!("{label}: registration: {s:?}")).into_inner().case.unwrap();
        let case = eventually(&format!("{label} dispatched"), 20, || {
            let (mut desk, id) = (world.desk.clone(), case.id.clone());
            async move {
                let c = desk.get_case(GetCaseRequest { case_ref: id }).await.ok()?.into_inner().case?;
                (c.state().code() == "dispatched" && !c.current_unit_code.is_empty()).then_some(c)
            }
        })
        .await;
        // Supervision learns of a case from its registration event; until then only root could verify it.
        let verifier = Who {
            label: String::new(),
            grants: vec![("supervisor", case.village_code.clone(), String::new())],
            acts: vec![],
        };
        let desk = DeskClient::new(connect_as(&gateway(&world), &verifier.token("ready")).await);
        eventually(&format!("{label} known to supervision"), 20, || {
            let (mut desk, id) = (desk.clone(), case.id.clone());
            async move { (verify(&mut desk, &id).await.err()?.code() == Code::FailedPrecondition).then_some(()) }
        })
        .await;
        let path = path_of(&case, &parents);
        placed.push(Placed { label, case, path });
    }
    assert_eq!(placed[0].case.current_unit_code, "532901003-SFS", "下关 neighbour disputes go to the 司法所");
    (world, placed)
}

fn gateway(world: &World) -> String {
    format!("http://{}", world.suite.gateway_grpc)
}

async fn verify(desk: &mut Desk, case_id: &str) -> Result<(), tonic::Status> {
    let request = VerifyCaseRequest {
        case_id: case_id.into(),
        verifier_id: String::new(),
        passed: true,
        closure_reason: "resolved".into(),
        note: String::new(),
    };
    desk.verify_case(request).await.map(drop)
}

async fn review(desk: &mut Desk, task_id: &str) -> Result<(), tonic::Status> {
    let request =
        ReviewReturnRequest { task_id: task_id.into(), reviewer_id: String::new(), approve: true, note: String::new() };
    desk.review_return(request).await.map(drop)
}

fn code_of<T>(r: &Result<T, tonic::Status>) -> Code {
    r.as_ref().err().map_or(Code::Ok, tonic::Status::code)
}

/// Reads, lists and (per `who.acts`) acts on every case as `who`; the failures, each naming its row.
async fn check(world: &World, who: &Who, placed: &[Placed]) -> Vec<String> {
    let mut desk = DeskClient::new(connect_as(&gateway(world), &who.token(&who.label)).await);
    let mut failures = Vec::new();
    for p in placed {
        let reads = who.reads(p);
        let got = desk.get_case(GetCaseRequest { case_ref: p.case.id.clone() }).await;
        match (&got, reads) {
            (Ok(r), true) if r.get_ref().case.as_ref().is_some_and(|c| c.id == p.case.id) => {}
            (Err(s), false) if s.code() == Code::NotFound => {}
            _ => failures.push(format!(
                "{} × {}: GetCase gave {:?}, expected {}",
                who.label,
                p.label,
                code_of(&got),
                if reads { "OK" } else { "NOT_FOUND" }
            )),
        }
    }
    // One list per center: each of its cases is listed iff it can be read.
    let mut centers: Vec<&str> = placed.iter().map(|p| p.case.center_code.as_str()).collect();
    centers.sort_unstable();
    centers.dedup();
    for center in centers {
        let request = ListCasesRequest { center_code: center.into(), page_size: 200, ..Default::default() };
        let listed = match desk.list_cases(request).await {
            Ok(l) => l.into_inner().cases,
            Err(s) => {
                failures.push(format!("{} × ListCases({center}) failed: {s:?}", who.label));
                continue;
            }
        };
        for p in placed.iter().filter(|p| p.case.center_code == center) {
            let (there, reads) = (listed.iter().any(|c| c.id == p.case.id), who.reads(p));
            if there != reads {
                failures.push(format!(
                    "{} × {}: ListCases({center}) listed it: {there}, expected {reads}",
                    who.label, p.label
                ));
            }
        }
    }
    for act in &who.acts {
        // The auth layer refuses an act no grant's role gives before any case is looked at: one case shows it.
        let targets = if who.may(*act) { placed } else { &placed[..1] };
        for p in targets {
            let got = match act {
                Act::ReviewReturn => review(&mut desk, &p.case.current_task_id).await,
                Act::Verify => verify(&mut desk, &p.case.id).await,
            };
            let want = who.expected(*act, p);
            if code_of(&got) != want {
                failures.push(format!("{} × {}: {act:?} gave {got:?}, expected {want:?}", who.label, p.label));
            }
        }
    }
    failures
}

/// The acts tried for a role: the one it is meant for, or one its role does not give.
fn acts_for(role: &str) -> Vec<Act> {
    match role {
        "dispatcher" | "grid_worker" | "handler" | "unit_lead" => vec![Act::ReviewReturn],
        "supervisor" | "intake_clerk" | "follow_up_clerk" => vec![Act::Verify],
        "center_leader" => vec![Act::ReviewReturn, Act::Verify],
        _ => vec![],
    }
}

fn table() -> Vec<Who> {
    let mut rows = Vec::new();
    for role in TREE_READERS {
        for (relation, node) in NODES {
            rows.push(Who {
                label: format!("{role} at {relation} {node}"),
                grants: vec![(role, (*node).to_owned(), String::new())],
                acts: acts_for(role),
            });
        }
    }
    for role in UNIT_READERS {
        for unit in ["532901003-SFS", "532901-ZRZYJ", "532901-RSJ"] {
            rows.push(Who {
                label: format!("{role} of department unit {unit}"),
                grants: vec![(role, "532901003000".to_owned(), unit.to_owned())],
                acts: acts_for(role),
            });
        }
    }
    // Reading wider than acting: where the case can be read but the act does not reach, PERMISSION_DENIED.
    rows.push(Who {
        label: "intake_clerk at county + supervisor at same village".into(),
        grants: vec![
            ("intake_clerk", "532901000000".into(), String::new()),
            ("supervisor", "532901003001".into(), String::new()),
        ],
        acts: vec![Act::Verify],
    });
    rows.push(Who {
        label: "intake_clerk at prefecture + dispatcher at sibling village".into(),
        grants: vec![
            ("intake_clerk", "532900000000".into(), String::new()),
            ("dispatcher", "532901003002".into(), String::new()),
        ],
        acts: vec![Act::ReviewReturn],
    });
    rows.push(Who {
        label: "handler of 532901003-SFS + supervisor at other township".into(),
        grants: vec![
            ("handler", "532901003000".into(), "532901003-SFS".into()),
            ("supervisor", "532901004000".into(), String::new()),
        ],
        acts: vec![Act::ReviewReturn],
    });
    rows
}

#[tokio::test]
async fn every_role_at_every_relation_reads_lists_and_acts_within_its_scope_only() {
    let (world, placed) = world_with_cases().await;
    let rows = table();
    let failures: Vec<String> = futures::stream::iter(rows.iter().map(|who| check(&world, who, &placed)))
        .buffer_unordered(8)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {} rows × {} cases failed:\n{}",
        failures.len(),
        rows.len(),
        placed.len(),
        failures.join("\n")
    );
    world.stop().await;
}

const PAIRS: usize = 300;

#[tokio::test]
async fn random_principals_see_a_case_iff_a_scope_node_is_on_its_path() {
    let (world, placed) = world_with_cases().await;
    // Nodes along the cases' paths, and off them.
    let mut nodes: Vec<String> = placed.iter().flat_map(|p| p.path.iter().cloned()).collect();
    nodes.extend(NODES.iter().map(|(_, n)| (*n).to_owned()));
    nodes.extend(
        ["532901003001003", "532901003003", "532922102000", "532923000000", "532901003002001"].map(String::from),
    );
    nodes.sort();
    nodes.dedup();
    let mut rng = Rng(0x5eed_2026_cafe_f00d);
    let mut pairs = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let count = 1 + usize::from(rng.next().is_multiple_of(4));
        let grants: Vec<_> =
            (0..count).map(|_| (*rng.pick(TREE_READERS), rng.pick(&nodes).clone(), String::new())).collect();
        let label =
            format!("pair {i}: {}", grants.iter().map(|(r, n, _)| format!("{r}@{n}")).collect::<Vec<_>>().join("+"));
        let case = rng.pick(&placed);
        pairs.push((Who { label, grants, acts: vec![] }, case));
    }
    let failures: Vec<String> =
        futures::stream::iter(pairs.iter().map(|(who, case)| check(&world, who, std::slice::from_ref(*case))))
            .buffer_unordered(16)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
    let seen = pairs.iter().filter(|(who, case)| who.reads(case)).count();
    assert!(
        seen > PAIRS / 10 && seen < PAIRS * 9 / 10,
        "the walk should mix in and out of scope: {seen} of {PAIRS} in"
    );
    assert!(failures.is_empty(), "{} of {PAIRS} pairs failed:\n{}", failures.len(), failures.join("\n"));
    world.stop().await;
}
