//! Routing's domain: the case as routing knows it, the task (交办单) aggregate, the rules, how a case picks
//! its unit, the task's states and the moves between them. Nothing here knows protobuf or holds SQL: the
//! aggregates derive `sqlx::FromRow`, so a row decodes straight into [`Case`] or [`Task`] by field name, and
//! `db.rs` holds every query.

use chrono::{DateTime, Utc};
use kit::ids::{CaseId, CaseNo, UnitCode};
use kit::vocab::Urgency;
pub use kit::vocab::{Outcome, TaskState, UnitKind};
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

pub mod joint;
pub mod moves;
pub mod queue;

code_enum! {
    /// How a task's unit was chosen: the best rule's unit, the rule's fallback (its unit off duty or retired),
    /// the holding center itself (兜底: no rule, or no rule's unit available), or a dispatcher by hand.
    pub enum Via {
        Rule = "rule",
        Fallback = "fallback",
        Center = "center",
        Manual = "manual",
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

/// The states a task waits in: for the unit's 签收, for its 办结, or (returned) for the center's review. A new
/// round supersedes the tasks still in one of them.
pub const OPEN: &[TaskState] = TaskState::OPEN;

/// A case as routing knows it from `case.registered`: what picks its unit, and the round it is in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    pub id: CaseId,
    pub case_no: CaseNo,
    pub category_code: String,
    pub urgency: Urgency,
    pub village_code: String,
    pub area_path: Vec<String>,
    pub grid_code: String,
    pub center_code: String,
    pub round: i32,
    pub registered_at: DateTime<Utc>,
    /// The center that holds the case now: the registering one until 上报 / 下派.
    pub holding_center: String,
    /// Closed (销号) by supervision, until a reopening.
    pub closed: bool,
}

impl Case {
    /// What the rules look at.
    pub fn facts(&self) -> CaseFacts {
        CaseFacts {
            category_code: self.category_code.clone(),
            urgency: self.urgency,
            village_code: self.village_code.clone(),
            center_code: self.center_code.clone(),
            holding_center: self.holding_center.clone(),
        }
    }
}

/// A task (交办单): one dispatch of a case to a unit, and how far the unit has taken it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub case_id: CaseId,
    pub case_no: CaseNo,
    pub round: i32,
    pub attempt: i32,
    pub slip_no: String,
    pub unit_kind: UnitKind,
    pub unit_code: UnitCode,
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
    /// The center holding the case now, and the one that issued this task's slip.
    pub holding_center: String,
    pub center_code: String,
    pub via: Via,
    pub dispatch_reason: String,
    pub recall_reason: String,
}

/// A move a caller asks of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Accept,
    Return,
    ApproveReturn,
    RejectReturn,
    Resolve,
    /// 召回 by a dispatcher: any live task, whatever its unit did with it so far.
    Recall,
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
            (Move::Recall, Dispatched | Accepted | Returned) => Some(Superseded),
            _ => None,
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Move::Accept => "accept",
            Move::Return => "return",
            Move::ApproveReturn | Move::RejectReturn => "review the return of",
            Move::Resolve => "resolve",
            Move::Recall => "recall",
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
    pub unit_code: UnitCode,
    pub unit_name: String,
    /// Where the case goes when the unit is off duty or retired; None: the holding center keeps it.
    pub fallback: Option<Unit>,
    /// The center the unit is stationed at (or is), as the registry said when the rule was put; empty for
    /// rules written before the registry was asked.
    pub unit_center: String,
}

/// A unit a case can be sent to, with the name its slip prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub kind: UnitKind,
    pub code: UnitCode,
    pub name: String,
}

impl Unit {
    /// A unit as a request names it, fields `<at>kind`, `<at>code` and `<at>name` (the name may be empty when
    /// the registry supplies it).
    pub fn parse(at: &str, kind: i32, code: &str, name: &str) -> Result<Self, FieldError> {
        let f = |n: &str| format!("{at}{n}");
        Ok(Self {
            kind: UnitKind::from_proto(&f("kind"), kind)?,
            code: UnitCode::parse(&f("code"), code)?,
            name: field::bounded(&f("name"), name, 100)?.to_owned(),
        })
    }
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
        urgency: i32,
        unit_kind: i32,
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
        // Unset matches every urgency.
        let urgency = Urgency::from_filter(&f("urgency"), urgency)?;
        Ok(Self {
            id: id.to_owned(),
            priority,
            category_prefix: category_prefix.to_owned(),
            area_prefix: area_prefix.to_owned(),
            urgency,
            unit_kind: UnitKind::from_proto(&f("unit_kind"), unit_kind)?,
            unit_code: UnitCode::parse(&f("unit_code"), unit_code)?,
            unit_name: field::text(&f("unit_name"), unit_name, 100)?.to_owned(),
            fallback: None,
            unit_center: String::new(),
        })
    }

    /// Adds the fallback unit as sent (`<at>fallback_kind`, …); all three empty means none. A fallback must be
    /// another unit than the rule's own.
    pub fn with_fallback(mut self, at: &str, kind: i32, code: &str, name: &str) -> Result<Self, FieldError> {
        if kind == 0 && code.trim().is_empty() && name.trim().is_empty() {
            return Ok(self);
        }
        let f = |n: &str| format!("{at}fallback_{n}");
        let unit = Unit {
            kind: UnitKind::from_proto(&f("kind"), kind)?,
            code: UnitCode::parse(&f("code"), code)?,
            name: field::text(&f("name"), name, 100)?.to_owned(),
        };
        if unit.kind == self.unit_kind && unit.code == self.unit_code {
            return Err(FieldError::new(f("code"), "is the rule's own unit"));
        }
        self.fallback = Some(unit);
        Ok(self)
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
    /// The registering center.
    pub center_code: String,
    /// The center holding the case; the registering one until a hop.
    pub holding_center: String,
}

impl CaseFacts {
    /// Whether the case has left its registering center (上报 / 下派): then only the holding center's own rules
    /// apply, those whose unit is stationed at it or below it.
    pub fn hopped(&self) -> bool {
        self.holding_center != self.center_code
    }
}

/// Whether a department receives cases today, as the registry says (read through a short cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    OnDuty,
    /// A 轮驻 department on a day its schedule does not station it.
    OffDuty,
    /// Closed or retired, or no longer known to the registry.
    Retired,
}

/// The duty of the departments a dispatch may pick. A department it does not list is taken as on duty: when
/// the registry cannot be asked, cases keep flowing by the rules as before rather than piling up at centers.
#[derive(Debug, Clone, Default)]
pub struct Roster(pub std::collections::HashMap<String, Duty>);

impl Roster {
    pub fn receives(&self, kind: UnitKind, code: &str) -> bool {
        kind == UnitKind::Center || self.0.get(code).is_none_or(|d| *d == Duty::OnDuty)
    }
}

/// The unit a case goes to, and the rule that chose it (None for 兜底 without a matching rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub unit_kind: UnitKind,
    pub unit_code: UnitCode,
    pub unit_name: String,
    pub rule_id: Option<String>,
    pub via: Via,
}

impl Target {
    /// The holding center keeps the case (兜底); `rule` names the rule whose units could not take it.
    pub fn center(case: &CaseFacts, rule: Option<&str>) -> Self {
        Target {
            unit_kind: UnitKind::Center,
            // A center's division code: digits only, a unit code by construction.
            unit_code: UnitCode::from_stored(case.holding_center.clone()),
            unit_name: format!("属地综治中心 {}", case.holding_center),
            rule_id: rule.map(str::to_owned),
            via: Via::Center,
        }
    }
}

/// The departments a dispatch of this case may end at: the units and fallbacks of the rules that match it. The
/// registry is asked about these only, so a 10,000-rule table costs a registration a handful of lookups.
pub fn candidates<'a>(rules: &'a [Rule], case: &CaseFacts) -> Vec<&'a str> {
    let mut codes: Vec<&str> = Vec::new();
    for r in rules.iter().filter(|r| r.matches(case) && in_reach(r, case)) {
        let fallback = r.fallback.iter().map(|f| (f.kind, f.code.as_str()));
        for (kind, code) in std::iter::once((r.unit_kind, r.unit_code.as_str())).chain(fallback) {
            if kind == UnitKind::Department && !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    codes
}

/// A rule applies at the case's holding center: every rule at the registering center (the deployment's table
/// filtered by area, as before), only the rules whose unit is at or below the holding center after a hop.
fn in_reach(r: &Rule, case: &CaseFacts) -> bool {
    !case.hopped()
        || (!r.unit_center.is_empty() && kit::division::is_ancestor_or_self(&case.holding_center, &r.unit_center))
}

/// Picks the best matching rule whose unit is not excluded for the case's round. Its unit takes the case when
/// it receives cases today; else the rule's fallback does (if it receives them and is not excluded); else the
/// holding center keeps it (兜底) — as it does without a matching rule, even when it returned the case before,
/// since no one else is left to take it.
pub fn route(rules: &[Rule], case: &CaseFacts, excluded: &[(UnitKind, String)], roster: &Roster) -> Target {
    let is_excluded = |k: UnitKind, c: &str| excluded.iter().any(|(ek, ec)| *ek == k && ec == c);
    let best = rules
        .iter()
        .filter(|r| r.matches(case) && in_reach(r, case) && !is_excluded(r.unit_kind, &r.unit_code))
        .min_by(|a, b| a.rank().cmp(&b.rank()));
    let Some(r) = best else { return Target::center(case, None) };
    if roster.receives(r.unit_kind, &r.unit_code) {
        return Target {
            unit_kind: r.unit_kind,
            unit_code: r.unit_code.clone(),
            unit_name: r.unit_name.clone(),
            rule_id: Some(r.id.clone()),
            via: Via::Rule,
        };
    }
    match &r.fallback {
        Some(f) if roster.receives(f.kind, &f.code) && !is_excluded(f.kind, &f.code) => Target {
            unit_kind: f.kind,
            unit_code: f.code.clone(),
            unit_name: f.name.clone(),
            rule_id: Some(r.id.clone()),
            via: Via::Fallback,
        },
        _ => Target::center(case, Some(&r.id)),
    }
}

/// `JB-532901-20250807-0003`: the dispatching center's significant code, the local date, the day's sequence.
pub fn slip_no(center_prefix: &str, local_day: &str, seq: i32) -> String {
    format!("JB-{center_prefix}-{local_day}-{seq:04}")
}

#[cfg(test)]
mod tests;
