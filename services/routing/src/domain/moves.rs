//! The moves a caller asks of a task (签收, 退单, review, 办结), parsed from the request's fields. The id fields
//! name the actor as the request gave them: empty means the caller, and `scope::acting` refuses anyone else.

use kit::{FieldError, field};
use uuid::Uuid;

use crate::domain::{Outcome, ReturnReason};

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
    pub fn parse(task_id: &str, resolver_id: &str, outcome: &str, note: &str) -> Result<Self, FieldError> {
        let task_id = field::uuid("task_id", task_id)?;
        let resolver_id = field::bounded("resolver_id", resolver_id, MAX_ID_CHARS)?.to_owned();
        let outcome = Outcome::parse("outcome", outcome)?;
        // 不予受理 must give its reason (DOMAIN.md: "不予受理 with reason").
        let note = match outcome {
            Outcome::NotAccepted => field::text("note", note, 2000)?,
            _ => field::bounded("note", note, 2000)?,
        };
        Ok(Self { task_id, resolver_id, outcome, note: note.to_owned() })
    }
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
        assert_eq!(Resolve::parse(ID, "", "handled", "").unwrap().outcome, Outcome::Handled);
        let long = "x".repeat(MAX_ID_CHARS + 1);
        for (name, field, err) in [
            ("bad task id", "task_id", Accept::parse("T-1", "").err()),
            ("long handler", "handler_id", Accept::parse(ID, &long).err()),
            ("unknown reason", "reason_code", Return::parse(ID, "", "bored", "x").err()),
            ("no reason", "reason", Return::parse(ID, "", "other", " ").err()),
            ("rejection without a note", "note", Review::parse(ID, "", false, "").err()),
            ("NUL in reviewer", "reviewer_id", Review::parse(ID, "a\0", true, "").err()),
            ("unknown outcome", "outcome", Resolve::parse(ID, "", "done", "").err()),
            ("not accepted without a reason", "note", Resolve::parse(ID, "", "not_accepted", "").err()),
            ("first bad field first", "task_id", Resolve::parse("", "", "done", "").err()),
        ] {
            assert_eq!(err.map(|e| e.field), Some(field.to_owned()), "{name}");
        }
    }
}
