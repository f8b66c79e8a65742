//! Supervision's domain: deadline stages and states, what a verification (核查/销号) and a follow-up (回访)
//! are, and the reasons a reopened case carries. Free of protobuf.

use chrono::{DateTime, Utc};
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

code_enum! {
    pub enum Urgency {
        Normal = "normal",
        Urgent = "urgent",
        Emergency = "emergency",
    }
}

impl Urgency {
    /// The urgency an event names, or normal when it names none or one this service does not know: a case
    /// is never left without a deadline because of an unexpected value.
    pub fn or_normal(value: &str) -> Self {
        Self::parse("urgency", value).unwrap_or(Urgency::Normal)
    }
}

code_enum! {
    /// The clocked stages: 签收 (accept) and 办结 (resolve).
    pub enum Stage {
        Accept = "accept",
        Resolve = "resolve",
    }
}

code_enum! {
    pub enum DeadlineState {
        Pending = "pending",
        Met = "met",
        Fired = "fired",
        Cancelled = "cancelled",
    }
}

code_enum! {
    pub enum ClosureState {
        Closed = "closed",
        Reopened = "reopened",
        FollowedUp = "followed_up",
    }
}

code_enum! {
    /// Why a case comes off the ledger (销号).
    pub enum ClosureReason {
        Resolved = "resolved",
        Mediated = "mediated",
        NotCompetent = "not_competent",
        Duplicate = "duplicate",
        Withdrawn = "withdrawn",
    }
}

code_enum! {
    pub enum Satisfaction {
        Satisfied = "satisfied",
        BasicallySatisfied = "basically_satisfied",
        Unsatisfied = "unsatisfied",
    }
}

/// The reason a case reopened by an unsatisfied citizen carries.
pub const REOPEN_UNSATISFIED: &str = "回访不满意";

/// The reason a case reopened by a failed verification carries.
pub fn reopen_failed_verification(note: &str) -> String {
    format!("verification failed: {note}")
}

/// When a stage started at `start` is due, `seconds` later.
pub fn due_at(start: DateTime<Utc>, seconds: i32) -> DateTime<Utc> {
    start + chrono::Duration::seconds(i64::from(seconds))
}

/// The verifier's verdict on the round's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Close(ClosureReason),
    Reopen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub case_id: Uuid,
    pub verifier_id: String,
    pub verdict: Verdict,
    pub note: String,
}

impl Verification {
    /// A passed verification names its closure reason; a failed one says why in its note.
    pub fn parse(case_id: &str, verifier_id: &str, passed: bool, reason: &str, note: &str) -> Result<Self, FieldError> {
        let case_id = field::uuid("case_id", case_id)?;
        // Empty means the caller; the service refuses anyone else.
        let verifier_id = field::bounded("verifier_id", verifier_id, 64)?.to_owned();
        let note = field::bounded("note", note, 2000)?.to_owned();
        let verdict = if passed {
            Verdict::Close(ClosureReason::parse("closure_reason", reason)?)
        } else {
            if note.is_empty() {
                return Err(FieldError::new("note", "is required when verification fails"));
            }
            Verdict::Reopen
        };
        Ok(Self { case_id, verifier_id, verdict, note })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub case_id: Uuid,
    pub visitor_id: String,
    pub satisfaction: Satisfaction,
    pub note: String,
}

impl FollowUp {
    pub fn parse(case_id: &str, visitor_id: &str, satisfaction: &str, note: &str) -> Result<Self, FieldError> {
        Ok(Self {
            case_id: field::uuid("case_id", case_id)?,
            visitor_id: field::bounded("visitor_id", visitor_id, 64)?.to_owned(),
            satisfaction: Satisfaction::parse("satisfaction", satisfaction)?,
            note: field::bounded("note", note, 2000)?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_needs_a_reason_to_close_and_a_note_to_reopen() {
        let id = Uuid::new_v4().to_string();
        let bad = [
            ("x", "v", true, "resolved", "", "case_id"),
            (id.as_str(), &*"v".repeat(65), true, "resolved", "", "verifier_id"),
            (id.as_str(), "v", true, "", "", "closure_reason"),
            (id.as_str(), "v", true, "fixed", "", "closure_reason"),
            (id.as_str(), "v", false, "", " ", "note"),
        ];
        for (case_id, verifier, passed, reason, note, field) in bad {
            let err = Verification::parse(case_id, verifier, passed, reason, note).expect_err(field);
            assert_eq!(err.field, field, "case {case_id:?} {verifier:?} {passed} {reason:?} {note:?}");
        }
        let ok = Verification::parse(&id, "v", false, "", "no evidence").expect("failed verification parses");
        assert_eq!(ok.verdict, Verdict::Reopen);
    }

    #[test]
    fn an_unknown_urgency_gets_the_normal_policy() {
        assert_eq!(Urgency::or_normal("urgent"), Urgency::Urgent);
        assert_eq!(Urgency::or_normal(""), Urgency::Normal);
        assert_eq!(Urgency::or_normal("whenever"), Urgency::Normal);
    }
}
