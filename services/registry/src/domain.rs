//! The registry's vocabulary: roles, grid kinds, stationing, and how grid codes are formed.

use kit::code_enum;

code_enum! {
    pub enum PersonRole {
        GridWorker = "grid_worker",
        HouseholdHead = "household_head",
        Mediator = "mediator",
        Handler = "handler",
        /// Center staff and administrators: people who sign in but walk no grid.
        Staff = "staff",
    }
}

code_enum! {
    pub enum GridKind {
        Grid = "grid",
        MicroGrid = "micro_grid",
    }
}

code_enum! {
    /// How a department is stationed at a center: 常驻, 轮驻 (by schedule), 随驻 (on call).
    pub enum Stationing {
        Resident = "resident",
        Rotating = "rotating",
        OnCall = "on_call",
    }
}

/// Grid codes extend the village code by a 3-digit sequence; micro-grids extend their grid's code likewise.
pub fn child_grid_code(parent: &str, seq: i32) -> Option<String> {
    (1..=999).contains(&seq).then(|| format!("{parent}{seq:03}"))
}

/// Levels below the village, for presenting grids as tree nodes.
pub const GRID_LEVEL: u32 = 6;
pub const MICRO_GRID_LEVEL: u32 = 7;

pub fn is_grid_code(code: &str) -> bool {
    (code.len() == 15 || code.len() == 18) && code.bytes().all(|b| b.is_ascii_digit())
}

/// The prefix every code below `parent` starts with: a grid's micro-grids and a village's grids extend its
/// whole code; a division's descendants share its significant digits; the nation's are every code.
pub fn child_prefix(parent: &str) -> &str {
    if is_grid_code(parent) {
        parent
    } else if parent == crate::tree_queries::NATION {
        ""
    } else {
        kit::division::significant(parent)
    }
}

/// A listing's page token (the last code of the previous page), checked to lie below `parent`.
pub fn page_token<'a>(token: &'a str, parent: &str) -> Result<&'a str, kit::FieldError> {
    kit::field::code_page_token("page_token", token, child_prefix(parent))
}
