//! Clock changes (issue 9): 延期, an extension of a stage's due time, and 挂账, a pause of its clock. The unit
//! asks with a reason; the case's center approves or rejects; a pause ends when it is resumed. Pure: what a
//! request is, when one may be made or decided, and where the grades fall after an approval or a resume.
//!
//! Decisions written down here (README, "Supervision"):
//! - An extension is asked for and approved only while the stage is still pending: once the yellow card is
//!   out the stage is late, and the answer is graded supervision, not a new date.
//! - A pause may also stop an overdue stage's red card (a case waiting on a court or a survey).
//! - The reminder and red card of an extended stage keep their place relative to the new due time on the
//!   stage's own clock; a grade already issued is never issued again (the slips' unique key).

use chrono::{DateTime, Duration, Utc};
use kit::ids::CaseId;
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

use super::calendar::{Calendar, ClockKind};
use super::policy::Grade;
use super::{DeadlineState, Stage};

code_enum! {
    proto = proto::supervision::v1::ChangeKind;
    pub enum ChangeKind {
        /// 延期: a later due time.
        Extension = "extension",
        /// 挂账: the clock stands still until resumed.
        Pause = "pause",
    }
}

code_enum! {
    proto = proto::supervision::v1::ChangeState;
    pub enum ChangeState {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
        /// An approved pause that has ended.
        Resumed = "resumed",
    }
}

/// The longest reason or note, in characters.
pub const NOTE_CHARS: usize = 500;

/// A unit's request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub task_id: String,
    pub stage: Stage,
    pub kind: ChangeKind,
    pub reason: String,
    /// The due time asked for: an extension's, never a pause's.
    pub new_due_at: Option<DateTime<Utc>>,
}

impl ChangeRequest {
    pub fn parse(task_id: &str, stage: &str, kind: i32, reason: &str, new_due_at: &str) -> Result<Self, FieldError> {
        let task_id = field::text("task_id", task_id, 64)?.to_owned();
        let stage = Stage::parse("stage", stage.trim())?;
        if stage == Stage::Report {
            // Half an hour to report in leaves nothing to extend or pause: a late 报到 is supervised, not excused.
            return Err(FieldError::new("stage", "a 报到 clock is neither extended nor paused"));
        }
        let kind = ChangeKind::from_proto("kind", kind)?;
        let reason = field::text("reason", reason, NOTE_CHARS)?.to_owned();
        let new_due_at = match (kind, field::bounded("new_due_at", new_due_at, 64)?) {
            (ChangeKind::Extension, "") => return Err(FieldError::new("new_due_at", "is required for an extension")),
            (ChangeKind::Extension, at) => Some(
                DateTime::parse_from_rfc3339(at)
                    .map_err(|_| FieldError::new("new_due_at", "is not an RFC 3339 time"))?
                    .with_timezone(&Utc),
            ),
            (ChangeKind::Pause, "") => None,
            (ChangeKind::Pause, _) => return Err(FieldError::new("new_due_at", "is for extensions; a pause has none")),
        };
        Ok(Self { task_id, stage, kind, reason, new_due_at })
    }
}

/// The center's decision on a request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: Uuid,
    pub approve: bool,
    pub note: String,
}

impl Decision {
    pub fn parse(id: &str, approve: bool, note: &str) -> Result<Self, FieldError> {
        let id = field::uuid("id", id)?;
        let note = field::bounded("note", note, NOTE_CHARS)?.to_owned();
        if !approve && note.is_empty() {
            return Err(FieldError::new("note", "is required to reject: say why"));
        }
        Ok(Self { id, approve, note })
    }
}

/// A request as kept: the history of a stage's clock.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClockChange {
    pub id: Uuid,
    pub case_id: CaseId,
    pub task_id: String,
    pub stage: Stage,
    pub kind: ChangeKind,
    pub reason: String,
    pub new_due_at: Option<DateTime<Utc>>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    pub state: ChangeState,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub decided_by: String,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: String,
    pub resumed_by: String,
    pub resumed_at: Option<DateTime<Utc>>,
}

/// A stage's clock as the rules need it: its state, its points and whether it stands still.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StageClock {
    pub id: Uuid,
    pub case_id: CaseId,
    pub task_id: String,
    pub stage: Stage,
    pub state: DeadlineState,
    pub clock: String,
    pub due_at: DateTime<Utc>,
    pub remind_at: Option<DateTime<Utc>>,
    pub red_at: Option<DateTime<Utc>>,
    /// '' once no grade is left to issue.
    pub next_grade: String,
    pub paused_at: Option<DateTime<Utc>>,
    pub policy_version: Option<i32>,
    pub unit_code: String,
}

/// Why a request cannot be made (or approved) now; each names the field or the state at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// INVALID_ARGUMENT on the field.
    Invalid(FieldError),
    /// FAILED_PRECONDITION.
    State(String),
}

/// Whether `r` may be asked for (and, checked again under the lock, approved) on `c`, given how many extensions
/// the stage already had and the policy's cap.
pub fn check(
    c: &StageClock,
    kind: ChangeKind,
    new_due_at: Option<DateTime<Utc>>,
    extensions: u32,
    max: u32,
) -> Result<(), Refusal> {
    let state = |why: &str| Err(Refusal::State(why.to_owned()));
    match c.state {
        DeadlineState::Met => return state("the stage is done: its clock has stopped"),
        DeadlineState::Cancelled => return state("the stage's clock was stopped (returned or reopened)"),
        DeadlineState::Pending | DeadlineState::Fired => {}
    }
    if c.paused_at.is_some() {
        return state("the clock is paused (挂账): resume it first");
    }
    match kind {
        ChangeKind::Extension => {
            if c.state == DeadlineState::Fired {
                return state("the stage is already overdue (黄牌): an extension must come before the due time");
            }
            if extensions >= max {
                return state(&format!("max_extensions: the stage had {extensions} of {max} extensions"));
            }
            let at = new_due_at.ok_or_else(|| Refusal::Invalid(FieldError::new("new_due_at", "is required")))?;
            if at <= c.due_at {
                let due = kit::time::local(c.due_at);
                return Err(Refusal::Invalid(FieldError::new(
                    "new_due_at",
                    format!("must be after the due time {due}"),
                )));
            }
        }
        ChangeKind::Pause => {
            if c.next_grade.is_empty() {
                return state("the stage has no grade left to stop: its red card is out");
            }
        }
    }
    Ok(())
}

/// Where a stage's grades fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Points {
    pub remind_at: Option<DateTime<Utc>>,
    pub due_at: DateTime<Utc>,
    pub red_at: Option<DateTime<Utc>>,
}

impl Points {
    pub fn of(c: &StageClock) -> Self {
        Self { remind_at: c.remind_at, due_at: c.due_at, red_at: c.red_at }
    }

    /// When `grade` falls.
    pub fn at(&self, grade: Grade) -> Option<DateTime<Utc>> {
        match grade {
            Grade::Reminder => self.remind_at,
            Grade::Yellow => Some(self.due_at),
            Grade::Red => self.red_at,
        }
    }

    /// Every point moved on by the counted time between the old and the new due time, on `clock`: the reminder
    /// stays as far ahead of the due time and the red card as far behind (counted time is additive, so moving
    /// both ends of a span by the same counted time keeps the span).
    pub fn extended(&self, calendar: &Calendar, clock: ClockKind, new_due: DateTime<Utc>) -> Self {
        let shift = calendar.elapsed(clock, self.due_at, new_due);
        let moved = |p: DateTime<Utc>| calendar.advance(clock, p, shift);
        Self { remind_at: self.remind_at.map(moved), due_at: new_due, red_at: self.red_at.map(moved) }
    }

    /// Every point still ahead of the pause moved on by the time the clock stood still: it falls after
    /// `resumed_at` with as much counted time left as it had at `paused_at`. Points passed before the pause
    /// stay where they were (their grades are out).
    pub fn resumed(
        &self,
        calendar: &Calendar,
        clock: ClockKind,
        paused_at: DateTime<Utc>,
        resumed_at: DateTime<Utc>,
    ) -> Self {
        let shift = |p: DateTime<Utc>| {
            if p <= paused_at { p } else { calendar.advance(clock, resumed_at, calendar.elapsed(clock, paused_at, p)) }
        };
        Self { remind_at: self.remind_at.map(shift), due_at: shift(self.due_at), red_at: self.red_at.map(shift) }
    }
}

/// The counted time between two points, for a message; never negative.
pub fn remaining(calendar: &Calendar, clock: ClockKind, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    if to <= from { Duration::zero() } else { calendar.elapsed(clock, from, to) }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::calendar::OfficeHours;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        // Shanghai wall time, in November 2026 (Monday the 2nd … Friday the 6th, then a weekend).
        kit::time::shanghai().with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap().with_timezone(&Utc)
    }

    fn clock(state: DeadlineState) -> StageClock {
        StageClock {
            id: Uuid::nil(),
            case_id: CaseId::from_stored(uuid::Uuid::nil()),
            task_id: "t".into(),
            stage: Stage::Resolve,
            state,
            clock: "calendar_hours".into(),
            due_at: at(4, 12),
            remind_at: Some(at(4, 6)),
            red_at: Some(at(5, 12)),
            next_grade: "reminder".into(),
            paused_at: None,
            policy_version: Some(1),
            unit_code: "u".into(),
        }
    }

    #[test]
    fn requests_name_their_fields() {
        let bad = |r: Result<ChangeRequest, FieldError>| r.unwrap_err().field;
        assert_eq!(bad(ChangeRequest::parse("", "resolve", ChangeKind::Pause.into(), "r", "")), "task_id");
        assert_eq!(bad(ChangeRequest::parse("t", "verify", ChangeKind::Pause.into(), "r", "")), "stage");
        assert_eq!(bad(ChangeRequest::parse("t", "resolve", 99, "r", "")), "kind");
        assert_eq!(bad(ChangeRequest::parse("t", "resolve", ChangeKind::Pause.into(), " ", "")), "reason");
        assert_eq!(bad(ChangeRequest::parse("t", "resolve", ChangeKind::Pause.into(), "r\0", "")), "reason");
        assert_eq!(bad(ChangeRequest::parse("t", "resolve", ChangeKind::Extension.into(), "r", "")), "new_due_at");
        assert_eq!(
            bad(ChangeRequest::parse("t", "resolve", ChangeKind::Extension.into(), "r", "tomorrow")),
            "new_due_at"
        );
        assert_eq!(
            bad(ChangeRequest::parse("t", "resolve", ChangeKind::Pause.into(), "r", "2026-11-05T00:00:00Z")),
            "new_due_at"
        );
        let ok = ChangeRequest::parse(
            "t",
            "resolve",
            ChangeKind::Extension.into(),
            "等鉴定 🙏",
            "2026-11-05T12:00:00+08:00",
        )
        .unwrap();
        assert_eq!(ok.new_due_at, Some(at(5, 12)));
        assert_eq!(Decision::parse("x", true, "").unwrap_err().field, "id");
        assert_eq!(Decision::parse(&Uuid::nil().to_string(), false, "").unwrap_err().field, "note");
    }

    #[test]
    fn what_may_be_asked_when() {
        let pending = clock(DeadlineState::Pending);
        let state = |r: Result<(), Refusal>| matches!(r, Err(Refusal::State(_)));
        assert!(check(&pending, ChangeKind::Extension, Some(at(5, 12)), 0, 2).is_ok());
        assert!(check(&pending, ChangeKind::Pause, None, 0, 2).is_ok());
        match check(&pending, ChangeKind::Extension, Some(at(4, 11)), 0, 2) {
            Err(Refusal::Invalid(e)) => assert_eq!(e.field, "new_due_at"),
            other => panic!("an earlier date: {other:?}"),
        }
        match check(&pending, ChangeKind::Extension, Some(at(5, 12)), 2, 2) {
            Err(Refusal::State(why)) => assert!(why.starts_with("max_extensions"), "{why}"),
            other => panic!("over the cap: {other:?}"),
        }
        assert!(state(check(&clock(DeadlineState::Fired), ChangeKind::Extension, Some(at(6, 1)), 0, 2)));
        let overdue = StageClock { next_grade: "red".into(), ..clock(DeadlineState::Fired) };
        assert!(check(&overdue, ChangeKind::Pause, None, 0, 2).is_ok(), "a pause may stop the red card");
        let spent = StageClock { next_grade: String::new(), ..overdue };
        assert!(state(check(&spent, ChangeKind::Pause, None, 0, 2)));
        assert!(state(check(&clock(DeadlineState::Met), ChangeKind::Pause, None, 0, 2)));
        assert!(state(check(&clock(DeadlineState::Cancelled), ChangeKind::Pause, None, 0, 2)));
        let paused = StageClock { paused_at: Some(at(3, 9)), ..pending };
        assert!(state(check(&paused, ChangeKind::Pause, None, 0, 2)));
        assert!(state(check(&paused, ChangeKind::Extension, Some(at(6, 1)), 0, 2)));
    }

    #[test]
    fn an_extension_keeps_the_grades_spacing() {
        let cal = Calendar::new([], OfficeHours::default());
        let p = Points::of(&clock(DeadlineState::Pending));
        let e = p.extended(&cal, ClockKind::CalendarHours, at(5, 12));
        assert_eq!(e.due_at, at(5, 12));
        assert_eq!(e.remind_at, Some(at(5, 6)), "6 h ahead, as before");
        assert_eq!(e.red_at, Some(at(6, 12)), "24 h behind, as before");
    }

    #[test]
    fn a_resume_moves_only_what_lay_ahead() {
        let cal = Calendar::new([], OfficeHours::default());
        let p = Points::of(&clock(DeadlineState::Pending));
        // Paused at 08:00 on the 4th (after the reminder), resumed 10 hours later: 4 h were left to the due time.
        let r = p.resumed(&cal, ClockKind::CalendarHours, at(4, 8), at(4, 18));
        assert_eq!(r.remind_at, Some(at(4, 6)), "the reminder was out before the pause");
        assert_eq!(r.due_at, at(4, 22));
        assert_eq!(r.red_at, Some(at(5, 22)));
        // On working days, a pause over a weekend costs nothing: Friday 17:00 → Monday 09:00 has no working time.
        let w = Points { remind_at: None, due_at: at(9, 12), red_at: None };
        let r = w.resumed(&cal, ClockKind::WorkingDays, at(6, 17), at(9, 9));
        assert_eq!(
            r.due_at,
            cal.advance(ClockKind::WorkingDays, at(9, 9), cal.elapsed(ClockKind::WorkingDays, at(6, 17), at(9, 12)))
        );
    }
}
