//! Who may do what, where: the role × permission × scope matrix and the permission each gRPC method needs.
//! One table in code, read by the services (to decide), the tests (to check every cell) and the README (to
//! tell). It starts from ../shared/SECURITY.md; where it differs, the README says why.

crate::code_enum! {
    /// A role a grant gives. The three administrators (三权分立) and the business administrator read no cases.
    pub enum Role {
        GridWorker = "grid_worker",
        IntakeClerk = "intake_clerk",
        Dispatcher = "dispatcher",
        Handler = "handler",
        UnitLead = "unit_lead",
        Supervisor = "supervisor",
        FollowUpClerk = "follow_up_clerk",
        CenterLeader = "center_leader",
        BusinessAdmin = "business_admin",
        SystemAdmin = "system_admin",
        SecurityAdmin = "security_admin",
        AuditAdmin = "audit_admin",
        ExternalClient = "external_client",
        /// A Zongzhi service calling another with its own identity (never granted to a person).
        Service = "service",
    }
}

/// What breaks the separation of duties in one principal's grants, whoever issued them: more than one
/// administrator role, an administrator role beside any other role (三权分立: the three administrators and the
/// business administrator each in their own hands, none of them handling cases), or a handler or unit-lead
/// grant over every unit or the whole deployment unless the security policy names the subject (`wide`).
pub fn duties_broken(grants: &[super::RoleGrant], wide: bool) -> Option<&'static str> {
    let mut admins = grants.iter().filter(|g| g.role.is_admin()).map(|g| g.role);
    if let Some(first) = admins.next() {
        if admins.any(|r| r != first) {
            return Some("two administrator roles in one hand");
        }
        if grants.iter().any(|g| !g.role.is_admin()) {
            return Some("an administrator role beside a business role");
        }
    }
    let everywhere =
        |g: &super::RoleGrant| matches!(g.role, Role::Handler | Role::UnitLead) && (g.unit == "*" || g.scope == "*");
    if !wide && grants.iter().any(everywhere) {
        return Some("a handler grant over every unit or the whole deployment that the security policy does not name");
    }
    None
}

impl Role {
    /// Administrator roles sign in with a second factor, and no person holds two of them or one of them with
    /// a business role.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::BusinessAdmin | Role::SystemAdmin | Role::SecurityAdmin | Role::AuditAdmin)
    }
}

/// What a grant allows; P1…P13 of SECURITY.md, plus the tree reads every signed-in user needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// P1 受理登记.
    Register,
    /// P2 read a case file, its tasks and deadlines.
    ReadCase,
    /// P3 dispatch / re-dispatch.
    Dispatch,
    /// P4 approve or reject a return.
    ReviewReturn,
    /// P5 accept, return, resolve a task.
    HandleTask,
    /// P6 核查 / 销号.
    Verify,
    /// P7 回访.
    FollowUp,
    /// P8 unmask one party's personal data, with a reason.
    Unmask,
    /// P9 issue a directive down a subtree.
    IssueDirective,
    /// Acknowledge and answer a directive at a recipient center.
    AnswerDirective,
    /// P10 grids, persons, assignments, centers, departments and rotations, eligibility.
    ManageGrids,
    /// P11 routing rules, categories, tariffs, calendars.
    ManageRules,
    /// P12 read and verify the audit trail.
    ViewAudit,
    /// P13 accounts (system administrator).
    ManageAccounts,
    /// P13 grants and policy (security administrator).
    ManageGrants,
    /// Read credits (以案定补) in scope.
    ReadCredits,
}

/// Where in the tree (or in which unit) a permission applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// G: the grant's grid and the micro-grids below it.
    Grid,
    /// C: the grant's center node and its subtree.
    Center,
    /// U: tasks of the grant's unit.
    Unit,
    /// S: assigned to or created by the principal.
    OwnWork,
    /// K: cases submitted through the principal's own client credential.
    OwnClient,
    /// A: the whole deployment.
    All,
}

use Permission::*;
use Role::*;
use ScopeKind::*;

/// The matrix: each row is one cell (role, permission, scope). A role has a permission only where a row says
/// so; the grant's node (or unit) then bounds it.
pub const MATRIX: &[(Role, Permission, ScopeKind)] = &[
    (GridWorker, Register, Grid),
    (GridWorker, ReadCase, Grid),
    (GridWorker, HandleTask, OwnWork),
    (GridWorker, ReadCredits, OwnWork),
    (IntakeClerk, Register, Center),
    (IntakeClerk, ReadCase, Center),
    (IntakeClerk, AnswerDirective, Center),
    (Dispatcher, Register, Center),
    (Dispatcher, ReadCase, Center),
    (Dispatcher, Dispatch, Center),
    (Dispatcher, ReviewReturn, Center),
    (Dispatcher, AnswerDirective, Center),
    (Handler, ReadCase, Unit),
    (Handler, HandleTask, Unit),
    (UnitLead, ReadCase, Unit),
    (UnitLead, HandleTask, Unit),
    (Supervisor, ReadCase, Center),
    (Supervisor, ReviewReturn, Center),
    (Supervisor, Verify, Center),
    (Supervisor, ReadCredits, Center),
    (FollowUpClerk, ReadCase, Center),
    (FollowUpClerk, FollowUp, Center),
    (FollowUpClerk, Unmask, Center),
    (CenterLeader, ReadCase, Center),
    (CenterLeader, Dispatch, Center),
    (CenterLeader, ReviewReturn, Center),
    (CenterLeader, Verify, Center),
    (CenterLeader, Unmask, Center),
    (CenterLeader, IssueDirective, Center),
    (CenterLeader, AnswerDirective, Center),
    (CenterLeader, ReadCredits, Center),
    (BusinessAdmin, ManageGrids, Center),
    (BusinessAdmin, ManageRules, Center),
    (SystemAdmin, ManageAccounts, All),
    (SecurityAdmin, ManageGrants, All),
    (AuditAdmin, ViewAudit, All),
    (ExternalClient, Register, OwnClient),
    (ExternalClient, ReadCase, OwnClient),
];

/// The scope a role has a permission at, if any.
pub fn scope_of(role: Role, permission: Permission) -> Option<ScopeKind> {
    MATRIX.iter().find(|(r, p, _)| *r == role && *p == permission).map(|(_, _, s)| *s)
}

/// What a method needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: health, reflection, sign-in and its siblings, the public keys.
    Public,
    /// Any verified principal (tree and code-table reads: the administrative tree is public data).
    SignedIn,
    /// A principal holding this permission through one of its grants; the service then checks the object's
    /// place against the grant's scope.
    Needs(Permission),
    /// As `Needs`, or one of these Zongzhi services calling with its own identity.
    NeedsOrService(Permission, &'static [&'static str]),
}

impl Permission {
    /// The permission by the name the protos use in `option (zongzhi.api.v1.access) = { needs: "…" }`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "register" => Register,
            "read_case" => ReadCase,
            "dispatch" => Dispatch,
            "review_return" => ReviewReturn,
            "handle_task" => HandleTask,
            "verify" => Verify,
            "follow_up" => FollowUp,
            "unmask" => Unmask,
            "issue_directive" => IssueDirective,
            "answer_directive" => AnswerDirective,
            "manage_grids" => ManageGrids,
            "manage_rules" => ManageRules,
            "view_audit" => ViewAudit,
            "manage_accounts" => ManageAccounts,
            "manage_grants" => ManageGrants,
            "read_credits" => ReadCredits,
            _ => return None,
        })
    }
}

impl Access {
    /// A method's access as its proto declares it; `None` for a name kit does not know (the method is then
    /// refused, and a test names it).
    fn declared(method: &proto::api::Method) -> Option<Self> {
        Some(match method.needs {
            "public" => Access::Public,
            "signed_in" => Access::SignedIn,
            name => {
                let permission = Permission::from_name(name)?;
                if method.or_services.is_empty() {
                    Access::Needs(permission)
                } else {
                    Access::NeedsOrService(permission, method.or_services)
                }
            }
        })
    }
}

/// Every method of every service, by its gRPC path, with the access its proto declares beside it (`option
/// (zongzhi.api.v1.access)`, read at build time into [`proto::api::METHODS`]), in the protos' order. A method
/// missing here is refused (fail closed).
pub fn methods() -> &'static [(&'static str, Access)] {
    static TABLE: std::sync::OnceLock<Vec<(&'static str, Access)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| proto::api::METHODS.iter().filter_map(|m| Some((m.path, Access::declared(m)?))).collect())
}

/// The access a method path needs; `None` for a method nobody listed (refused).
pub fn access(path: &str) -> Option<Access> {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Some(Access::Public);
    }
    // The gateway's Desk answers each method as the service that owns it would: same name, same access.
    let (by_path, by_name) = index();
    match path.strip_prefix("/zongzhi.gateway.v1.Desk/") {
        Some(name) => by_name.get(name).copied(),
        None => by_path.get(path).copied(),
    }
}

type Index = (std::collections::HashMap<&'static str, Access>, std::collections::HashMap<&'static str, Access>);

/// METHODS by path and by bare method name, built once: every call looks its method up.
fn index() -> &'static Index {
    static INDEX: std::sync::OnceLock<Index> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let by_path = methods().iter().map(|(p, a)| (*p, *a)).collect();
        // Only the routed methods are on the Desk, and their names are unique (build.rs refuses a second).
        let by_name = proto::api::METHODS
            .iter()
            .filter(|m| m.http.is_some())
            .filter_map(|m| Some((m.path.rsplit('/').next().unwrap_or(m.path), Access::declared(m)?)))
            .collect();
        (by_path, by_name)
    })
}

/// Every permission in the README's column order, with its column heading.
pub const PERMISSIONS: &[(Permission, &str)] = &[
    (Register, "register"),
    (ReadCase, "read case"),
    (Dispatch, "dispatch"),
    (ReviewReturn, "review return"),
    (HandleTask, "handle task"),
    (Verify, "verify"),
    (FollowUp, "follow up"),
    (Unmask, "unmask"),
    (IssueDirective, "issue directive"),
    (AnswerDirective, "answer directive"),
    (ManageGrids, "manage grids"),
    (ManageRules, "manage rules"),
    (ReadCredits, "read credits"),
    (ViewAudit, "view audit"),
    (ManageAccounts, "accounts"),
    (ManageGrants, "grants"),
];

fn letter(scope: ScopeKind) -> &'static str {
    match scope {
        Grid => "G",
        Center => "C",
        Unit => "U",
        OwnWork => "S",
        OwnClient => "K",
        All => "A",
    }
}

/// The matrix and the methods each permission opens, as the README shows them (a test keeps the two equal).
pub fn markdown() -> String {
    let mut out = String::from("| role |");
    for (_, name) in PERMISSIONS {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(PERMISSIONS.len()));
    for role in Role::ALL.iter().filter(|r| **r != Role::Service) {
        out.push_str(&format!("\n| `{role}` |"));
        for (p, _) in PERMISSIONS {
            out.push_str(&format!(" {} |", scope_of(*role, *p).map(letter).unwrap_or("")));
        }
    }
    out.push_str("\n\n| permission | methods (service/Method) |\n|---|---|");
    let short = |path: &str| path.trim_start_matches("/zongzhi.").replace(".v1.", ".").to_owned();
    for (p, name) in PERMISSIONS {
        let methods: Vec<String> = methods()
            .iter()
            .filter_map(|(path, a)| match a {
                Access::Needs(q) if q == p => Some(short(path)),
                Access::NeedsOrService(q, s) if q == p => Some(format!("{} (+ service {})", short(path), s.join(", "))),
                _ => None,
            })
            .collect();
        out.push_str(&format!("\n| {name} | {} |", methods.join(", ")));
    }
    let open = |want: Access| {
        methods().iter().filter(|(_, a)| *a == want).map(|(p, _)| short(p)).collect::<Vec<_>>().join(", ")
    };
    out.push_str(&format!("\n| any signed-in principal | {} |", open(Access::SignedIn)));
    out.push_str(&format!("\n| public (no token) | {}, health, reflection |", open(Access::Public)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duties_stay_apart_whoever_issued_the_grants() {
        let g =
            |role, scope: &str, unit: &str| super::super::RoleGrant { role, scope: scope.into(), unit: unit.into() };
        let county = "532901000000";
        assert_eq!(duties_broken(&[g(Role::SystemAdmin, "*", "")], false), None);
        assert_eq!(duties_broken(&[g(Role::Dispatcher, county, ""), g(Role::Supervisor, county, "")], false), None);
        assert_eq!(duties_broken(&[g(Role::Handler, "", "532901-RSJ")], false), None);
        assert_eq!(duties_broken(&[g(Role::Handler, county, "*")], true), None);
        for broken in [
            vec![g(Role::SystemAdmin, "*", ""), g(Role::Dispatcher, county, "")],
            vec![g(Role::SecurityAdmin, "*", ""), g(Role::AuditAdmin, "*", "")],
            vec![g(Role::BusinessAdmin, county, ""), g(Role::GridWorker, county, "")],
            vec![g(Role::Handler, county, "*")],
            vec![g(Role::UnitLead, "*", "532901-RSJ")],
        ] {
            assert!(duties_broken(&broken, false).is_some(), "{broken:?}");
        }
    }

    #[test]
    fn administrators_read_no_cases_and_hold_nothing_else() {
        for (role, permission, _) in MATRIX {
            if role.is_admin() {
                assert!(
                    !matches!(permission, ReadCase | Register | HandleTask | Verify | FollowUp | Unmask),
                    "{role} must not touch cases"
                );
            }
        }
        for admin in [SystemAdmin, SecurityAdmin, AuditAdmin] {
            assert_eq!(MATRIX.iter().filter(|(r, _, _)| *r == admin).count(), 1, "{admin} holds one permission");
        }
    }

    #[test]
    fn the_readme_shows_this_matrix() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let table = markdown();
        assert!(readme.contains(&table), "README's role table differs from the code; put this in it:\n{table}");
    }

    #[test]
    fn every_declared_access_is_understood_and_health_is_public() {
        for method in proto::api::METHODS {
            assert!(Access::declared(method).is_some(), "{}: kit knows no permission {:?}", method.path, method.needs);
        }
        assert_eq!(methods().len(), proto::api::METHODS.len());
        assert_eq!(access("/zongzhi.gateway.v1.Desk/RegisterCase"), Some(Access::Needs(Register)));
        assert_eq!(access("/zongzhi.gateway.v1.Desk/ResolveLocation"), None, "not routed, so not on the Desk");
        assert_eq!(access("/grpc.health.v1.Health/Check"), Some(Access::Public));
        assert_eq!(access("/zongzhi.intake.v1.Intake/Nope"), None);
    }
}
