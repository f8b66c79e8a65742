//! The moves a caller asks of a task (签收, 退单, review, 办结), parsed from the request's fields. The id fields
//! name the actor as the request gave them: empty means the caller, and `scope::acting` refuses anyone else.

use kit::ids::{CaseId, UnitCode};
use kit::{FieldError, field};
use uuid::Uuid;

use crate::domain::joint::Hop;
use crate::domain::{Outcome, ReturnReason, TaskState, UnitKind};

/// The longest actor id a request may name.
const MAX_ID_CHARS: usize = 64;

/// 签收.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub task_id: Uuid,
    pub handler_id: String,
}

impl Accept {
    pub fn parse(task_id: &str, handler_id: &str) -> Result<Self, FieldError> {
        Ok(Self {
            task_id: field::uuid("task_id", task_id)?,
            handler_id: field::bounded("handler_id", handler_id, MAX_ID_CHARS)?.to_owned(),
        })
    }
}

/// 退单, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub task_id: Uuid,
    pub handler_id: String,
    pub reason_code: ReturnReason,
    pub reason: String,
}

impl Return {
    pub fn parse(task_id: &str, handler_id: &str, reason_code: &str, reason: &str) -> Result<Self, FieldError> {
        Ok(Self {
            task_id: field::uuid("task_id", task_id)?,
            handler_id: field::bounded("handler_id", handler_id, MAX_ID_CHARS)?.to_owned(),
            reason_code: ReturnReason::parse("reason_code", reason_code)?,
            reason: field::text("reason", reason, 1000)?.to_owned(),
        })
    }
}

/// The center's review of a return: approve (re-dispatch) or reject (back to the unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub task_id: Uuid,
    pub reviewer_id: String,
    pub approve: bool,
    pub note: String,
}

impl Review {
    pub fn parse(task_id: &str, reviewer_id: &str, approve: bool, note: &str) -> Result<Self, FieldError> {
        let task_id = field::uuid("task_id", task_id)?;
        let reviewer_id = field::bounded("reviewer_id", reviewer_id, MAX_ID_CHARS)?.to_owned();
        // A rejection sends the task back to a unit that said it is not theirs: it must be told why.
        let note = if approve { field::bounded("note", note, 1000)? } else { field::text("note", note, 1000)? };
        Ok(Self { task_id, reviewer_id, approve, note: note.to_owned() })
    }
}

/// 办结, with its outcome and who is credited with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub task_id: Uuid,
    /// Who is credited with the result: empty means the caller; anyone else is checked with the registry.
    pub resolver_id: String,
    pub outcome: Outcome,
    pub note: String,
}

impl Resolve {
    pub fn parse(task_id: &str, resolver_id: &str, outcome: i32, note: &str) -> Result<Self, FieldError> {
        let task_id = field::uuid("task_id", task_id)?;
        let resolver_id = field::bounded("resolver_id", resolver_id, MAX_ID_CHARS)?.to_owned();
        let outcome = Outcome::from_proto("outcome", outcome)?;
        // 不予受理 must give its reason (DOMAIN.md: "不予受理 with reason").
        let note = match outcome {
            Outcome::NotAccepted => field::text("note", note, 2000)?,
            _ => field::bounded("note", note, 2000)?,
        };
        Ok(Self { task_id, resolver_id, outcome, note: note.to_owned() })
    }
}

/// The longest reason a dispatcher may give for a hop, a dispatch or a recall.
const MAX_REASON_CHARS: usize = 1000;

/// An optional task id: empty means "none".
fn expected(name: &str, value: &str) -> Result<Option<Uuid>, FieldError> {
    if value.trim().is_empty() { Ok(None) } else { field::uuid(name, value).map(Some) }
}

/// 分流交办 by hand: the case, the unit, why, and the live task the dispatcher saw (None: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualDispatch {
    pub case_id: CaseId,
    pub unit_kind: UnitKind,
    pub unit_code: UnitCode,
    pub reason: String,
    pub expected_task: Option<Uuid>,
}

impl ManualDispatch {
    pub fn parse(case_id: &str, kind: i32, code: &str, reason: &str, expected_task: &str) -> Result<Self, FieldError> {
        Ok(Self {
            case_id: CaseId::parse("case_id", case_id)?,
            unit_kind: UnitKind::from_proto("unit_kind", kind)?,
            unit_code: UnitCode::parse("unit_code", code)?,
            // Overriding the rules must say why: the file and the audit keep it.
            reason: field::text("reason", reason, MAX_REASON_CHARS)?.to_owned(),
            expected_task: expected("expected_task_id", expected_task)?,
        })
    }
}

/// 召回 of a live task, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recall {
    pub task_id: Uuid,
    pub reason: String,
}

impl Recall {
    pub fn parse(task_id: &str, reason: &str) -> Result<Self, FieldError> {
        Ok(Self {
            task_id: field::uuid("task_id", task_id)?,
            reason: field::text("reason", reason, MAX_REASON_CHARS)?.to_owned(),
        })
    }
}

/// 上报 or 下派: the case, the direction, the receiving center, why, and the live task the dispatcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub case_id: CaseId,
    pub hop: Hop,
    pub to_center: String,
    pub reason: String,
    pub expected_task: Option<Uuid>,
}

impl Escalation {
    pub fn parse(
        case_id: &str,
        direction: &str,
        to: &str,
        reason: &str,
        expected_task: &str,
    ) -> Result<Self, FieldError> {
        let case_id = CaseId::parse("case_id", case_id)?;
        let hop = match direction.trim() {
            "up" => Hop::Up,
            "down" => Hop::Down,
            _ => return Err(FieldError::new("direction", "must be up (上报) or down (下派)")),
        };
        Ok(Self {
            case_id,
            hop,
            to_center: field::division_code("to_center_code", to)?.to_owned(),
            reason: field::text("reason", reason, MAX_REASON_CHARS)?.to_owned(),
            expected_task: expected("expected_task_id", expected_task)?,
        })
    }
}

/// Where a case stands for a dispatcher's hand: closed, its live task (id), and the state of its latest task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub closed: bool,
    pub live: Option<Uuid>,
    pub latest: Option<TaskState>,
}

/// Whether a dispatcher may dispatch, re-dispatch or move the case now, having seen `expected` as its live
/// task. A closed case is done; a resolved one waits for verification, not for a unit; and a live task other
/// than the one the dispatcher saw means someone acted first (optimistic concurrency: the loser is told, not
/// silently overridden). The refusal is FAILED_PRECONDITION's message.
pub fn may_take(s: Standing, expected: Option<Uuid>) -> Result<(), String> {
    if s.closed {
        return Err("case_id: the case is closed (销号); it moves again only when reopened".into());
    }
    if s.live.is_none() && s.latest == Some(TaskState::Resolved) {
        return Err("case_id: the case is resolved and awaits verification (核查)".into());
    }
    match (s.live, expected) {
        (a, b) if a == b => Ok(()),
        (None, None) => Ok(()),
        (Some(live), _) => Err(format!("expected_task_id: the live task is {live}; someone acted on the case first")),
        (None, Some(_)) => {
            Err("expected_task_id: the case has no live task any more; someone acted on it first".into())
        }
    }
}

/// 越级: a category marked urgent (a prefix of `urgent` matches it) may go up past its parent center.
pub fn skips_level(category: &str, urgent: &[String]) -> bool {
    urgent.iter().any(|p| !p.is_empty() && category.starts_with(p.as_str()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "5f0e7a4c-0000-4000-8000-000000000001";

    #[test]
    fn moves_parse_or_name_the_first_bad_field() {
        assert_eq!(Accept::parse(ID, "").unwrap().handler_id, "");
        assert_eq!(Return::parse(ID, "", "not_local", " 不是本辖区 ").unwrap().reason, "不是本辖区");
        assert_eq!(Review::parse(ID, "", true, "").unwrap().note, "", "an approval may leave the note empty");
        assert_eq!(Resolve::parse(ID, "", Outcome::Handled.into(), "").unwrap().outcome, Outcome::Handled);
        let long = "x".repeat(MAX_ID_CHARS + 1);
        for (name, field, err) in [
            ("bad task id", "task_id", Accept::parse("T-1", "").err()),
            ("long handler", "handler_id", Accept::parse(ID, &long).err()),
            ("unknown reason", "reason_code", Return::parse(ID, "", "bored", "x").err()),
            ("no reason", "reason", Return::parse(ID, "", "other", " ").err()),
            ("rejection without a note", "note", Review::parse(ID, "", false, "").err()),
            ("NUL in reviewer", "reviewer_id", Review::parse(ID, "a\0", true, "").err()),
            ("unknown outcome", "outcome", Resolve::parse(ID, "", 99, "").err()),
            ("not accepted without a reason", "note", Resolve::parse(ID, "", Outcome::NotAccepted.into(), "").err()),
            ("first bad field first", "task_id", Resolve::parse("", "", 99, "").err()),
        ] {
            assert_eq!(err.map(|e| e.field), Some(field.to_owned()), "{name}");
        }
    }

    #[test]
    fn manual_moves_parse_or_name_the_first_bad_field() {
        let d = ManualDispatch::parse(ID, UnitKind::Department.into(), "532901-SFS", " 属地调解 ", "").unwrap();
        assert_eq!((d.reason.as_str(), d.expected_task), ("属地调解", None));
        let e = Escalation::parse(ID, "up", "532901000000", "超出权限", ID).unwrap();
        assert_eq!((e.hop, e.expected_task.is_some()), (Hop::Up, true));
        for (name, field, err) in [
            ("bad case", "case_id", ManualDispatch::parse("x", UnitKind::Department.into(), "a", "r", "").err()),
            ("unknown kind", "unit_kind", ManualDispatch::parse(ID, 99, "a", "r", "").err()),
            ("emoji code", "unit_code", ManualDispatch::parse(ID, UnitKind::Center.into(), "🚨", "r", "").err()),
            ("NUL in code", "unit_code", ManualDispatch::parse(ID, UnitKind::Center.into(), "a\0", "r", "").err()),
            ("no reason", "reason", ManualDispatch::parse(ID, UnitKind::Center.into(), "a", " ", "").err()),
            ("NUL reason", "reason", ManualDispatch::parse(ID, UnitKind::Center.into(), "a", "x\0", "").err()),
            (
                "bad expected",
                "expected_task_id",
                ManualDispatch::parse(ID, UnitKind::Center.into(), "a", "r", "T-1").err(),
            ),
            ("recall without reason", "reason", Recall::parse(ID, "").err()),
            ("sideways", "direction", Escalation::parse(ID, "left", "532901000000", "r", "").err()),
            ("not a division", "to_center_code", Escalation::parse(ID, "up", "5329", "r", "").err()),
            ("long reason", "reason", Escalation::parse(ID, "up", "532901000000", &"x".repeat(1001), "").err()),
        ] {
            assert_eq!(err.map(|e| e.field), Some(field.to_owned()), "{name}");
        }
    }

    #[test]
    fn one_dispatcher_wins_and_closed_or_resolved_cases_stay_put() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let s = |closed, live, latest| Standing { closed, live, latest };
        assert!(may_take(s(false, Some(a), Some(TaskState::Dispatched)), Some(a)).is_ok());
        assert!(may_take(s(false, None, Some(TaskState::Superseded)), None).is_ok(), "recalled: first dispatch");
        assert!(may_take(s(false, Some(b), Some(TaskState::Dispatched)), Some(a)).unwrap_err().starts_with("expected"));
        assert!(may_take(s(false, Some(a), Some(TaskState::Accepted)), None).unwrap_err().starts_with("expected"));
        assert!(may_take(s(false, None, Some(TaskState::Superseded)), Some(a)).is_err());
        assert!(may_take(s(true, None, Some(TaskState::Resolved)), None).unwrap_err().contains("closed"));
        assert!(may_take(s(false, None, Some(TaskState::Resolved)), None).unwrap_err().contains("verification"));
    }

    #[test]
    fn urgent_categories_skip_levels() {
        let urgent = vec!["0208".to_owned(), "0205".to_owned()];
        assert!(skips_level("0208", &urgent));
        assert!(!skips_level("0102", &urgent));
        assert!(!skips_level("0102", &[String::new()]), "an empty prefix marks nothing");
    }
}
