//! Routing's domain: the case as routing knows it, the task (交办单) aggregate, the rules, how a case picks
//! its unit, the task's states and the moves between them. Nothing here knows protobuf or holds SQL: the
//! aggregates derive `sqlx::FromRow`, so a row decodes straight into [`Case`] or [`Task`] by field name, and
//! `db.rs` holds every query.

use chrono::{DateTime, Utc};
pub use kit::vocab::TaskState;
use kit::vocab::Urgency;
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

pub mod joint;
pub mod moves;
pub mod queue;

code_enum! {
    /// The kind of unit a task goes to: a department stationed at the center, or a center itself (属地).
    pub enum UnitKind {
        Department = "department",
        Center = "center",
    }
}

code_enum! {
    /// Why a unit returns a task (退单).
    pub enum ReturnReason {
        NotLocal = "not_local",
        OwnershipUnclear = "ownership_unclear",
        OverlappingDuties = "overlapping_duties",
        Other = "other",
    }
}

code_enum! {
    /// How a task ended (办结).
    pub enum Outcome {
        DisputeResolved = "dispute_resolved",
        MediationFailed = "mediation_failed",
        Handled = "handled",
        NotAccepted = "not_accepted",
    }
}

/// The states a task waits in: for the unit's 签收, for its 办结, or (returned) for the center's review. A new
/// round supersedes the tasks still in one of them.
pub const OPEN: &[TaskState] = TaskState::OPEN;

/// A case as routing knows it from `case.registered`: what picks its unit, and the round it is in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    pub id: Uuid,
    pub case_no: String,
    pub category_code: String,
    pub urgency: Urgency,
    pub village_code: String,
    pub area_path: Vec<String>,
    pub grid_code: String,
    pub center_code: String,
    pub round: i32,
    pub registered_at: DateTime<Utc>,
}

impl Case {
    /// What the rules look at.
    pub fn facts(&self) -> CaseFacts {
        CaseFacts {
            category_code: self.category_code.clone(),
            urgency: self.urgency,
            village_code: self.village_code.clone(),
            center_code: self.center_code.clone(),
        }
    }
}

/// A task (交办单): one dispatch of a case to a unit, and how far the unit has taken it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub case_id: Uuid,
    pub case_no: String,
    pub round: i32,
    pub attempt: i32,
    pub slip_no: String,
    pub unit_kind: UnitKind,
    pub unit_code: String,
    pub unit_name: String,
    /// Empty when the center kept the case (兜底).
    pub rule_id: String,
    pub state: TaskState,
    pub category_code: String,
    /// Set once the task was returned.
    pub return_reason_code: Option<ReturnReason>,
    pub return_reason: String,
    /// Set once the task was resolved.
    pub outcome: Option<Outcome>,
    pub outcome_note: String,
    pub handler_id: String,
    pub resolver_id: String,
    pub dispatched_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The case's place, which decides who may see the task.
    pub area_path: Vec<String>,
    pub grid_code: String,
    /// A deadline of the task was missed; `due_at` is the earliest missed one's due time, of `overdue_stage`.
    pub overdue: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub overdue_stage: String,
}

/// A move a caller asks of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Accept,
    Return,
    ApproveReturn,
    RejectReturn,
    Resolve,
}

impl Move {
    /// The state the move leads to, or None when the task's state does not allow it.
    pub fn from(self, state: TaskState) -> Option<TaskState> {
        use TaskState::*;
        match (self, state) {
            (Move::Accept, Dispatched) => Some(Accepted),
            (Move::Return, Dispatched) => Some(Returned),
            (Move::ApproveReturn, Returned) => Some(Superseded),
            (Move::RejectReturn, Returned) => Some(Dispatched),
            (Move::Resolve, Accepted) => Some(Resolved),
            _ => None,
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Move::Accept => "accept",
            Move::Return => "return",
            Move::ApproveReturn | Move::RejectReturn => "review the return of",
            Move::Resolve => "resolve",
        }
    }
}

/// One row of the routing table. Empty prefixes and urgency match every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub priority: u32,
    pub category_prefix: String,
    pub area_prefix: String,
    pub urgency: Option<Urgency>,
    pub unit_kind: UnitKind,
    pub unit_code: String,
    pub unit_name: String,
}

impl Rule {
    /// Parses a rule as an operator sends it; `at` prefixes field names (e.g. `rule.`).
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        at: &str,
        id: &str,
        priority: u32,
        category_prefix: &str,
        area_prefix: &str,
        urgency: &str,
        unit_kind: &str,
        unit_code: &str,
        unit_name: &str,
    ) -> Result<Self, FieldError> {
        let f = |name: &str| format!("{at}{name}");
        let id = field::text(&f("id"), id, 64)?;
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(FieldError::new(f("id"), "may hold only letters, digits, '-', '_' and '.'"));
        }
        if priority > 1_000_000 {
            return Err(FieldError::new(f("priority"), "must be at most 1000000"));
        }
        let category_prefix = digits(&f("category_prefix"), category_prefix, 6)?;
        let area_prefix = digits(&f("area_prefix"), area_prefix, 12)?;
        let urgency = match urgency.trim() {
            "" => None,
            u => Some(Urgency::parse(&f("urgency"), u)?),
        };
        Ok(Self {
            id: id.to_owned(),
            priority,
            category_prefix: category_prefix.to_owned(),
            area_prefix: area_prefix.to_owned(),
            urgency,
            unit_kind: UnitKind::parse(&f("unit_kind"), unit_kind)?,
            unit_code: field::text(&f("unit_code"), unit_code, 64)?.to_owned(),
            unit_name: field::text(&f("unit_name"), unit_name, 100)?.to_owned(),
        })
    }

    fn matches(&self, case: &CaseFacts) -> bool {
        case.category_code.starts_with(&self.category_prefix)
            && case.village_code.starts_with(&self.area_prefix)
            && self.urgency.is_none_or(|u| u == case.urgency)
    }

    /// The order of preference among matching rules: higher priority, then the more specific category, then
    /// the more specific area, then id so the choice never depends on table order.
    fn rank(&self) -> (std::cmp::Reverse<u32>, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>, &str) {
        use std::cmp::Reverse;
        (Reverse(self.priority), Reverse(self.category_prefix.len()), Reverse(self.area_prefix.len()), &self.id)
    }
}

/// A possibly empty run of at most `max` ASCII digits.
fn digits<'a>(name: &str, value: &'a str, max: usize) -> Result<&'a str, FieldError> {
    let v = value.trim();
    if v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(name, format!("must be empty or up to {max} digits")));
    }
    Ok(v)
}

/// What routing needs to know about a case to pick its unit.
#[derive(Debug, Clone)]
pub struct CaseFacts {
    pub category_code: String,
    pub urgency: Urgency,
    pub village_code: String,
    pub center_code: String,
}

/// The unit a case goes to, and the rule that chose it (None for 兜底).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub unit_kind: UnitKind,
    pub unit_code: String,
    pub unit_name: String,
    pub rule_id: Option<String>,
}

/// Picks the best matching rule whose unit is not excluded for the case's round. Without one the registering
/// center keeps the case (兜底) — even when it returned the case before, since no one else is left to take it.
pub fn route(rules: &[Rule], case: &CaseFacts, excluded: &[(UnitKind, String)]) -> Target {
    let is_excluded = |r: &Rule| excluded.iter().any(|(k, c)| *k == r.unit_kind && *c == r.unit_code);
    rules.iter().filter(|r| r.matches(case) && !is_excluded(r)).min_by(|a, b| a.rank().cmp(&b.rank())).map_or_else(
        || Target {
            unit_kind: UnitKind::Center,
            unit_code: case.center_code.clone(),
            unit_name: format!("属地综治中心 {}", case.center_code),
            rule_id: None,
        },
        |r| Target {
            unit_kind: r.unit_kind,
            unit_code: r.unit_code.clone(),
            unit_name: r.unit_name.clone(),
            rule_id: Some(r.id.clone()),
        },
    )
}

/// `JB-532901-20250807-0003`: the dispatching center's significant code, the local date, the day's sequence.
pub fn slip_no(center_prefix: &str, local_day: &str, seq: i32) -> String {
    format!("JB-{center_prefix}-{local_day}-{seq:04}")
}

#[cfg(test)]
mod tests;
