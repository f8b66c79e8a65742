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

/// The highest division level (1 province, 2 prefecture) a grant must reach to write the tariffs.
pub const TARIFF_LEVEL: u8 = 2;

/// Whether `p` may write the tariffs. The business administrator's scope normally bounds where their rules
/// apply, but a tariff has no place: one rule prices credits everywhere. So rather than let a county's
/// administrator change what every other county pays, the grant must be the whole deployment (`*`) or a node
/// at prefecture level or above (`kit::division::level(scope) <= 2`).
pub fn may_write_tariffs(p: &Principal) -> bool {
    p.scope(Permission::ManageRules).reaches_level(TARIFF_LEVEL)
}
