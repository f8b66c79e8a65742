//! Who may see and act on which case: the principal's scope for a permission against the case's place, the
//! units it was dispatched to, and who registered or reported it. One rule in two forms ([`kit::auth::reach`]):
//! [`covers`] for a case read, and the same over [`CASES`] as SQL for the lists and the board.

use kit::auth::{Columns, Row, ScopeSet, UnitColumn};

use crate::domain::Case;

/// Where the cases table keeps what a scope is matched on: its place, every unit it has been with, its reporter
/// and registering operator (own work), and the operator (a client's own submissions).
pub const CASES: Columns = Columns {
    area_path: Some("area_path"),
    grid_code: Some("grid_code"),
    units: Some(UnitColumn::Many("units")),
    own: &["reporter_id", "operator_id"],
    client: &["operator_id"],
};

/// Whether `scope` reaches the case: its place is under a scope node (or in a scope grid), one of its units is
/// the reader's, the reader reported or registered it (own work), or the reader's client submitted it.
pub fn covers(scope: &ScopeSet, case: &Case) -> bool {
    let actors = [case.reporter_id.as_str(), case.operator_id.as_str()];
    let row = Row {
        area_path: &case.area_path,
        grid_code: &case.grid_code,
        units: &case.units,
        own: &actors,
        client: &actors[1..],
    };
    scope.covers(&CASES, &row)
}
