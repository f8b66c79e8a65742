//! Whose credits a caller may read: a grid worker their own (OwnWork), a center the credits of cases in its
//! area (Center), a grant over everything all of them. The decision is made in SQL (`db::credits`), never by
//! filtering what was fetched, so totals count only what the caller may see.

use kit::auth::{Permission, Principal};

/// The reach of the caller's ReadCredits grants, as the credits query takes it.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub all: bool,
    /// Division codes (or grid codes) whose cases' credits are visible.
    pub nodes: Vec<String>,
    /// The person whose own credits are visible.
    pub own: Option<String>,
}

pub fn reach(p: &Principal) -> Reach {
    let s = p.scope(Permission::ReadCredits);
    Reach { all: s.all, nodes: s.nodes, own: s.own }
}
