//! Who may see and act on which case: the principal's scope for a permission against the case's place, the
//! units it was dispatched to, and who registered or reported it.

use kit::auth::ScopeSet;

use crate::domain::Case;

/// Whether `scope` reaches the case: its place is under a scope node (or in a scope grid), one of its units is
/// the reader's, or the reader registered it (a client) or reported it (own work).
pub fn covers(scope: &ScopeSet, case: &Case) -> bool {
    scope.covers_place(&case.area_path, &case.grid_code)
        || case.units.iter().any(|u| scope.covers_unit(u))
        || scope.client.as_deref().is_some_and(|c| c == case.operator_id)
        || scope.own.as_deref().is_some_and(|a| a == case.reporter_id || a == case.operator_id)
}

/// The same rule as SQL parameters, so lists are filtered in the query.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub all: bool,
    /// Division codes (matched on the area path) and grid codes (matched as grid-code prefixes).
    pub nodes: Vec<String>,
    pub units: Vec<String>,
    /// A client's subject or a person's id: cases they registered or reported.
    pub actor: String,
}

impl From<&ScopeSet> for Filter {
    fn from(s: &ScopeSet) -> Self {
        Self {
            all: s.all,
            nodes: s.nodes.clone(),
            units: s.units.clone(),
            actor: s.client.clone().or_else(|| s.own.clone()).unwrap_or_default(),
        }
    }
}
