//! Where a caller may act in the registry: the reach of a permission (C scope: each grant's node and its
//! subtree) checked against an object's place in the tree.
//!
//! The auth layer has already refused callers whose roles lack the method's permission; what is left is the
//! object. A write outside scope is PERMISSION_DENIED. A read outside scope is NOT_FOUND with the message a
//! missing object gets, so a caller cannot learn that something exists outside their subtree.
//!
//! Grid codes extend their village's code, so a grid's place is read from its code: the decision needs no
//! lookup, and an unknown grid outside scope is refused just like a known one.

use std::sync::Arc;

use kit::auth::{Permission, Principal, ScopeSet};
use kit::error::{Error, Result};
use tonic::Request;

pub use kit::error::principal;

/// The caller and the reach of `permission` over all their grants.
pub fn reach<T>(request: &Request<T>, permission: Permission) -> Result<(Arc<Principal>, ScopeSet)> {
    let principal = principal(request)?;
    let scope = principal.scope(permission);
    Ok((principal, scope))
}

/// The caller's grid-administration scope (P10: grids, persons, assignments, centers, departments).
pub fn manage<T>(request: &Request<T>) -> Result<ScopeSet> {
    Ok(reach(request, Permission::ManageGrids)?.1)
}

/// A write to `code` (a division or grid code) is allowed only inside the scope; `what` names the object in
/// the refusal.
pub fn write(scope: &ScopeSet, code: &str, what: &str) -> Result<()> {
    if scope.covers_node(code) { Ok(()) } else { Err(Error::denied(format!("{what} is outside your scope"))) }
}

/// The division import rewrites the whole tree, so a subtree's administrator may not run it: only a grant
/// over the whole deployment may.
pub fn whole_tree(scope: &ScopeSet) -> Result<()> {
    if scope.all { Ok(()) } else { Err(Error::denied("importing divisions needs a grant over the whole deployment")) }
}

/// A person's record (masked phone and ID number, eligibility) is read by administrators whose scope holds
/// the person's home, and by the services the policy lets call GetPerson in their own name: subsidy checks a
/// resolver's eligibility before crediting, routing checks who may be credited as resolver.
pub fn person_visible(principal: &Principal, scope: &ScopeSet, home_code: &str) -> bool {
    let callers = match kit::auth::policy::access("/zongzhi.registry.v1.Registry/GetPerson") {
        Some(kit::auth::Access::NeedsOrService(_, services)) => services,
        _ => &[],
    };
    callers.iter().any(|s| principal.is_service(s)) || scope.covers_node(home_code)
}

/// Who may read a directive: the issuing side (an IssueDirective scope holding the issuer center) or a
/// receiving side (an AnswerDirective scope holding one of its recipient centers, which only the database
/// knows, so the caller passes it in).
pub fn directive_visible(issue: &ScopeSet, issuer_center_code: &str, recipient_in_answer_scope: bool) -> bool {
    issue.covers_node(issuer_center_code) || recipient_in_answer_scope
}

/// The code prefixes a tree scope spans (significant digits of each division node), for matching recipient
/// centers in SQL; `None` when the scope is the whole deployment. Grid-code nodes are skipped: no center lies
/// below a grid.
pub fn node_prefixes(scope: &ScopeSet) -> Option<Vec<String>> {
    if scope.all {
        return None;
    }
    Some(
        scope
            .nodes
            .iter()
            .filter(|n| kit::division::is_code(n))
            .map(|n| format!("{}%", kit::division::significant(n)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn county() -> ScopeSet {
        ScopeSet { nodes: vec!["532901000000".into()], ..ScopeSet::default() }
    }

    #[test]
    fn a_county_scope_covers_its_villages_and_grids_and_nothing_else() {
        let s = county();
        for (code, inside) in [
            ("532901000000", true),
            ("532901003001", true),
            ("532901003001002", true),
            ("532901003001002001", true),
            ("532922100001", false),
            ("532922100001001", false),
            ("532900000000", false),
            ("", false),
        ] {
            assert_eq!(write(&s, code, "x").is_ok(), inside, "{code}");
        }
        let refusal = write(&s, "532922100001", "village 532922100001").unwrap_err();
        let status = tonic::Status::from(refusal);
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(status.message(), "not permitted: village 532922100001 is outside your scope");
    }

    #[test]
    fn only_the_whole_deployment_imports_and_prefixes_follow_the_nodes() {
        assert!(whole_tree(&county()).is_err());
        assert!(whole_tree(&ScopeSet { all: true, ..ScopeSet::default() }).is_ok());
        assert!(whole_tree(&ScopeSet::default()).is_err());
        assert_eq!(node_prefixes(&county()), Some(vec!["532901%".to_owned()]));
        assert_eq!(node_prefixes(&ScopeSet { all: true, ..ScopeSet::default() }), None);
    }
}
