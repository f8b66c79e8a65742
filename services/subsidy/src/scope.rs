//! Whose credits a caller may read: a grid worker their own (OwnWork), a center the credits of cases in its
//! area (Center), a grant over everything all of them. The decision is made in SQL (`db::credits`), never by
//! filtering what was fetched, so totals count only what the caller may see.

use kit::auth::{Columns, Permission, Principal};

/// Where a credit keeps what the caller's reach is matched on (`credits cr LEFT JOIN cases c`): the case's
/// place, and the credited person (own work). The credits query renders the caller's ReadCredits scope over
/// these ([`kit::auth::reach`]).
pub const CREDITS: Columns = Columns {
    area_path: Some("c.area_path"),
    grid_code: Some("c.grid_code"),
    units: None,
    own: &["cr.person_id"],
    client: &[],
};

/// The highest division level (1 province, 2 prefecture) a grant must reach to write the tariffs.
pub const TARIFF_LEVEL: u8 = 2;

/// Whether `p` may write the tariffs. The business administrator's scope normally bounds where their rules
/// apply, but a tariff has no place: one rule prices credits everywhere. So rather than let a county's
/// administrator change what every other county pays, the grant must be the whole deployment (`*`) or a node
/// at prefecture level or above (`kit::division::level(scope) <= 2`).
pub fn may_write_tariffs(p: &Principal) -> bool {
    p.scope(Permission::ManageRules).reaches_level(TARIFF_LEVEL)
}
