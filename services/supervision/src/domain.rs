//! Supervision's domain: the aggregates it keeps (its view of a case and of the case's tasks, deadlines and
//! closures) with their stages and states, what a verification (核查/销号) and a follow-up (回访) are, the rules
//! that decide them, and the reasons a reopened case carries. Proto-free and free of SQL: `db` loads and stores
//! these types (rows decode straight into them, their codes being TEXT columns), `grpc` maps them to protobuf.

pub mod calendar;
pub mod changes;
pub mod policy;
pub mod rates;

use chrono::{DateTime, Utc};
use kit::error::Error;
use kit::ids::CaseId;
pub use kit::vocab::TaskState;
use kit::vocab::{Satisfaction, Urgency};
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

code_enum! {
    proto = proto::vocab::v1::Stage;
    /// The clocked stages: 签收 (accept) and 办结 (resolve) of a task, and 报到 (report) of a co-handling unit
    /// summoned by 吹哨报到 (its deadline runs under the co-handler's id).
    pub enum Stage {
        Accept = "accept",
        Resolve = "resolve",
        Report = "report",
    }
}

code_enum! {
    proto = proto::supervision::v1::DeadlineState;
    pub enum DeadlineState {
        Pending = "pending",
        Met = "met",
        Fired = "fired",
        Cancelled = "cancelled",
    }
}

code_enum! {
    proto = proto::supervision::v1::ClosureState;
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

impl Stage {
    /// How people name the stage: 签收, 办结, 报到.
    pub fn words(self) -> &'static str {
        match self {
            Stage::Accept => "签收",
            Stage::Resolve => "办结",
            Stage::Report => "报到",
        }
    }
}

/// Supervision's view of a case, projected from the case events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub case_id: CaseId,
    pub case_no: String,
    pub category_code: String,
    pub urgency: Urgency,
    pub round: i32,
    /// Village first; empty until case.registered is seen.
    pub area_path: Vec<String>,
    pub grid_code: String,
    pub reporter_id: String,
    /// The time-policy version its clocks run under, once the first started.
    pub policy_version: Option<i32>,
}

/// A task of the case as supervision has seen it, from routing's events.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Task {
    pub task_id: String,
    pub state: TaskState,
    pub attempt: i32,
    pub round: i32,
    pub unit_code: String,
    pub handler_id: String,
    pub resolved_by: String,
    pub resolver_id: String,
    pub outcome: String,
}

/// A clock on one stage of one task (督办).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Deadline {
    pub id: Uuid,
    pub case_id: CaseId,
    pub task_id: String,
    pub stage: Stage,
    pub due_at: DateTime<Utc>,
    pub state: DeadlineState,
    pub fired_at: Option<DateTime<Utc>>,
    /// Set while the clock stands still (挂账).
    pub paused_at: Option<DateTime<Utc>>,
}

/// A 《督办提示单》 as issued: to the unit, by the case's center, copied up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SlipRecord {
    pub id: Uuid,
    pub number: String,
    pub case_id: CaseId,
    pub task_id: String,
    pub stage: Stage,
    pub grade: policy::Grade,
    pub unit_code: String,
    /// The unit's name as the dispatch gave it; '' for slips from before names were kept.
    pub unit_name: String,
    pub center_code: String,
    /// The issuing center's division name ('' when the registration did not say).
    pub center_name: String,
    pub copy_to: String,
    /// The division name of the center `copy_to` names ('' when the case's registration did not say).
    pub copy_to_name: String,
    pub case_no: String,
    pub category_code: String,
    /// The category's name at the version the case was registered under ('' when not known).
    pub category_name: String,
    pub due_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub verification_code: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: String,
}

/// The 《工作任务交办单》 that went with a dispatch: numbered by routing, printed by supervision from what the
/// dispatch told it and the accept clock it started.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskSlip {
    pub number: String,
    pub case_id: CaseId,
    pub task_id: String,
    pub unit_code: String,
    pub unit_name: String,
    pub center_code: String,
    pub center_name: String,
    pub case_no: String,
    pub category_code: String,
    /// The category's name at the version the case was registered under ('' when not known).
    pub category_name: String,
    pub urgency: String,
    pub policy_version: Option<i32>,
    /// The accept (签收) deadline the dispatch started.
    pub accept_due: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
}

impl TaskSlip {
    /// When the slip was issued: with its dispatch.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.dispatched_at.or(self.accept_due).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// The time the slip prints: the accept deadline, or the dispatch before its clock is known.
    pub fn due_at(&self) -> DateTime<Utc> {
        self.accept_due.unwrap_or_else(|| self.issued_at())
    }
}

/// Task slips are numbered by routing with this prefix (`JB-532901-20250807-0003`); 督办 slips by supervision.
pub const TASK_SLIP_PREFIX: &str = "JB-";

/// One verified round (核查/销号): closed (then followed up) or reopened when verification failed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Closure {
    pub case_id: CaseId,
    pub round: i32,
    pub state: ClosureState,
    /// Why the case came off the ledger; none for a failed verification (stored as '').
    pub closure_reason: Option<ClosureReason>,
    pub task_id: String,
    pub resolver_id: String,
    /// Who handled (accepted, then resolved) the verified task.
    pub handler_id: String,
    pub category_code: String,
    pub case_no: String,
    pub verifier_id: String,
    pub note: String,
    /// The citizen's answer, once the round is followed up (stored as '' before).
    pub satisfaction: Option<Satisfaction>,
    pub closed_at: DateTime<Utc>,
}

impl Closure {
    /// The closure a verification writes for the case's current round, on the task whose result was verified.
    pub fn of(v: &Verification, case: &Case, task: &Task, at: DateTime<Utc>) -> Self {
        let (state, closure_reason) = match v.verdict {
            Verdict::Close(reason) => (ClosureState::Closed, Some(reason)),
            Verdict::Reopen => (ClosureState::Reopened, None),
        };
        Self {
            case_id: v.case_id,
            round: case.round,
            state,
            closure_reason,
            task_id: task.task_id.clone(),
            resolver_id: task.resolver_id.clone(),
            // Whoever resolved it, as routing records the task's handler at 办结; the acceptor if unknown.
            handler_id: if task.resolved_by.is_empty() { task.handler_id.clone() } else { task.resolved_by.clone() },
            category_code: case.category_code.clone(),
            case_no: case.case_no.clone(),
            verifier_id: v.verifier_id.clone(),
            note: v.note.clone(),
            satisfaction: None,
            closed_at: at,
        }
    }
}

/// The answer for a case that is unknown, or outside the caller's reach: "case <id> not found".
pub fn no_case(case_id: CaseId) -> Error {
    Error::not_found(format!("case {case_id}"))
}

/// The round's closure, which a follow-up visit needs closed and not yet followed up.
pub fn awaiting_follow_up(closure: Option<&Closure>, round: i32) -> Result<&Closure, Error> {
    match closure {
        Some(c) if c.state == ClosureState::Closed => Ok(c),
        Some(c) if c.state == ClosureState::FollowedUp => {
            Err(Error::failed_precondition(format!("round {round} was already followed up")))
        }
        _ => Err(Error::failed_precondition(format!("round {round} is not closed"))),
    }
}

/// The case's latest task, which must be resolved for the round to be verified. Supervision knows a task is
/// resolved once routing's case.resolved has reached it, so right after 办结 the answer may briefly be "not
/// resolved yet"; asking again shortly after succeeds.
pub fn latest_resolved(tasks: Vec<Task>) -> Result<Task, Error> {
    let Some(task) = tasks.into_iter().last() else {
        return Err(Error::failed_precondition(
            "supervision has seen no task of the case yet: closing a case never dispatched",
        ));
    };
    if task.state != TaskState::Resolved {
        return Err(Error::failed_precondition(format!(
            "the case's latest task is {}, not resolved yet as far as supervision has seen: closing a case never \
             resolved",
            task.state
        )));
    }
    Ok(task)
}

/// The reason a case reopened by an unsatisfied citizen carries.
pub const REOPEN_UNSATISFIED: &str = "回访不满意";

/// The reason a case reopened by a failed verification carries.
pub fn reopen_failed_verification(note: &str) -> String {
    format!("verification failed: {note}")
}

/// The verifier's verdict on the round's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Close(ClosureReason),
    Reopen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub case_id: CaseId,
    pub verifier_id: String,
    pub verdict: Verdict,
    pub note: String,
}

impl Verification {
    /// A passed verification names its closure reason; a failed one says why in its note.
    pub fn parse(case_id: &str, verifier_id: &str, passed: bool, reason: &str, note: &str) -> Result<Self, FieldError> {
        let case_id = CaseId::parse("case_id", case_id)?;
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
    pub case_id: CaseId,
    pub visitor_id: String,
    pub satisfaction: Satisfaction,
    pub note: String,
}

impl FollowUp {
    pub fn parse(case_id: &str, visitor_id: &str, satisfaction: i32, note: &str) -> Result<Self, FieldError> {
        Ok(Self {
            case_id: CaseId::parse("case_id", case_id)?,
            visitor_id: field::bounded("visitor_id", visitor_id, 64)?.to_owned(),
            satisfaction: Satisfaction::from_proto("satisfaction", satisfaction)?,
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
    fn supervisions_enums_take_their_proto_codes() {
        use super::changes::{ChangeKind, ChangeState};
        use super::policy::Grade;
        assert!(DeadlineState::codes_agree_with_proto() && ClosureState::codes_agree_with_proto());
        assert!(ChangeKind::codes_agree_with_proto() && ChangeState::codes_agree_with_proto());
        assert!(Grade::codes_agree_with_proto());
    }

    #[test]
    fn an_unknown_urgency_gets_the_normal_policy() {
        assert_eq!(Urgency::or_normal(Urgency::Urgent.into()), Urgency::Urgent);
        assert_eq!(Urgency::or_normal(0), Urgency::Normal);
        assert_eq!(Urgency::or_normal(77), Urgency::Normal);
    }

    fn task(id: &str, state: TaskState) -> Task {
        Task {
            task_id: id.into(),
            state,
            attempt: 1,
            round: 1,
            unit_code: "u".into(),
            handler_id: "h".into(),
            resolved_by: String::new(),
            resolver_id: "r".into(),
            outcome: String::new(),
        }
    }

    fn case(round: i32) -> Case {
        Case {
            case_id: CaseId::random(),
            case_no: "n".into(),
            category_code: "0101".into(),
            urgency: Urgency::Normal,
            round,
            area_path: vec![],
            grid_code: String::new(),
            reporter_id: String::new(),
            policy_version: None,
        }
    }

    fn message(e: Error) -> String {
        match e {
            Error::FailedPrecondition(why) => why,
            other => panic!("not a failed precondition: {other:?}"),
        }
    }

    #[test]
    fn only_a_resolved_latest_task_can_be_verified() {
        assert!(message(latest_resolved(vec![]).expect_err("no task")).contains("never dispatched"));
        let open = vec![task("t1", TaskState::Resolved), task("t2", TaskState::Accepted)];
        let why = message(latest_resolved(open).expect_err("latest open"));
        assert!(why.starts_with("the case's latest task is accepted"), "{why}");
        let done = vec![task("t1", TaskState::Superseded), task("t2", TaskState::Resolved)];
        assert_eq!(latest_resolved(done).expect("resolved").task_id, "t2");
    }

    #[test]
    fn a_closure_credits_whoever_resolved_else_the_acceptor() {
        let case = case(2);
        let v = Verification::parse(&case.case_id.to_string(), "v", true, "resolved", "").expect("parses");
        let mut t = task("t1", TaskState::Resolved);
        let c = Closure::of(&v, &case, &t, Utc::now());
        assert_eq!((c.round, c.state, c.closure_reason), (2, ClosureState::Closed, Some(ClosureReason::Resolved)));
        assert_eq!(c.handler_id, "h", "the acceptor when the resolver is unknown");
        t.resolved_by = "m".into();
        assert_eq!(Closure::of(&v, &case, &t, Utc::now()).handler_id, "m");
        let failed = Verification::parse(&case.case_id.to_string(), "v", false, "", "no").expect("parses");
        let c = Closure::of(&failed, &case, &t, Utc::now());
        assert_eq!((c.state, c.closure_reason), (ClosureState::Reopened, None));
    }

    #[test]
    fn only_a_closed_round_is_followed_up_and_only_once() {
        let case = case(1);
        let v = Verification::parse(&case.case_id.to_string(), "v", true, "resolved", "").expect("parses");
        let mut c = Closure::of(&v, &case, &task("t", TaskState::Resolved), Utc::now());
        assert!(awaiting_follow_up(Some(&c), 1).is_ok());
        assert_eq!(message(awaiting_follow_up(None, 1).expect_err("none")), "round 1 is not closed");
        c.state = ClosureState::FollowedUp;
        assert_eq!(message(awaiting_follow_up(Some(&c), 1).expect_err("twice")), "round 1 was already followed up");
        c.state = ClosureState::Reopened;
        assert_eq!(message(awaiting_follow_up(Some(&c), 1).expect_err("reopened")), "round 1 is not closed");
    }
}
