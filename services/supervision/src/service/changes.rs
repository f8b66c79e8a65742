//! 延期 and 挂账 behind their RPCs: the unit asks, the case's center decides, the center resumes a paused clock.
//! Each step is one transaction over the stage's locked deadline, the request's row and the outbox
//! (`case.supervised`), so the case file shows every step and two deciders on one request get one answer.

use chrono::{DateTime, Utc};
use kit::auth::{Permission, Principal};
use kit::ids::CaseId;
use proto::events::v1::{CaseSupervised, envelope::Body};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Supervision;
use super::clocks::calendar_at;
use crate::db::{self, changes as store};
use crate::domain::calendar::ClockKind;
use crate::domain::changes::{
    self, ChangeKind, ChangeRequest, ChangeState, ClockChange, Decision, Points, Refusal, StageClock,
};
use crate::domain::policy::Grade;
use crate::domain::{Case, Stage, no_case};
use crate::error::{Error, Result};
use crate::scope;

impl Supervision {
    /// The unit asks to extend a stage's due time or to pause its clock, with a reason. The caller handles
    /// tasks of the task's unit; the stage must be open (and, for an extension, not yet overdue and under the
    /// policy's cap); one request per stage waits at a time.
    pub async fn request_change(&self, p: &Principal, r: ChangeRequest) -> Result<ClockChange> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        let clock = store::lock_stage_clock(&mut tx, &r.task_id, r.stage).await?;
        let clock = clock.ok_or_else(|| no_stage(&r.task_id, r.stage))?;
        if !p.scope(Permission::HandleTask).covers_unit(&clock.unit_code) {
            return Err(Error::denied(format!("asking for the clock of a task of unit {}", clock.unit_code)));
        }
        let (extensions, max) = self.extension_count(&mut tx, &clock).await?;
        changes::check(&clock, r.kind, r.new_due_at, extensions, max).map_err(refused)?;
        let change = ClockChange {
            id: Uuid::new_v4(),
            case_id: clock.case_id,
            task_id: r.task_id.clone(),
            stage: r.stage,
            kind: r.kind,
            reason: r.reason.clone(),
            new_due_at: r.new_due_at,
            due_before: None,
            due_after: None,
            state: ChangeState::Pending,
            requested_by: p.actor().to_owned(),
            requested_at: Utc::now(),
            decided_by: String::new(),
            decided_at: None,
            decision_note: String::new(),
            resumed_by: String::new(),
            resumed_at: None,
        };
        if !store::insert_change(&mut tx, &change).await? {
            return Err(Error::failed_precondition(format!(
                "a request for the {} stage of task {} is already waiting for the center",
                r.stage, r.task_id
            )));
        }
        let action = match r.kind {
            ChangeKind::Extension => "extension_requested",
            ChangeKind::Pause => "pause_requested",
        };
        let due = r.new_due_at.unwrap_or(clock.due_at);
        self.supervised(&mut tx, &clock, action, Some(due), &r.reason, p.actor()).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %clock.case_id, task_id = %r.task_id, kind = %r.kind, "clock change requested");
        Ok(change)
    }

    /// The center approves or rejects a waiting request: approving an extension moves the due time (and the
    /// grades with it); approving a pause stops the clock. Decided once: a second decision is
    /// FAILED_PRECONDITION. Nobody decides their own request.
    pub async fn decide_change(&self, p: &Principal, d: Decision) -> Result<ClockChange> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        let missing = || Error::not_found(format!("clock change request {}", d.id));
        let change = store::lock_change(&mut tx, d.id).await?.ok_or_else(missing)?;
        let case = db::case(&mut tx, change.case_id).await?;
        scope::gate(p, Permission::ReviewReturn, change.case_id, case.as_ref()).map_err(|e| match e {
            Error::NotFound(_) => missing(),
            other => other,
        })?;
        if change.state != ChangeState::Pending {
            return Err(Error::failed_precondition(format!("the request was already decided: {}", change.state)));
        }
        if change.requested_by == p.actor() {
            return Err(Error::denied("nobody decides their own request"));
        }
        let clock = store::lock_stage_clock(&mut tx, &change.task_id, change.stage).await?;
        let clock = clock.ok_or_else(|| no_stage(&change.task_id, change.stage))?;
        let (to, action, due_after) = if d.approve {
            let (extensions, max) = self.extension_count(&mut tx, &clock).await?;
            changes::check(&clock, change.kind, change.new_due_at, extensions, max).map_err(refused)?;
            match (change.kind, change.new_due_at) {
                (ChangeKind::Extension, Some(new_due)) => {
                    let (calendar, kind) = clock_of(&mut tx, case.as_ref(), &clock).await?;
                    let points = Points::of(&clock).extended(&calendar, kind, new_due);
                    store::move_points(&mut tx, clock.id, &points, next_grade(&clock)).await?;
                    (ChangeState::Approved, "extended", Some(points.due_at))
                }
                (ChangeKind::Pause, _) => {
                    store::pause(&mut tx, clock.id, Utc::now()).await?;
                    (ChangeState::Approved, "paused", None)
                }
                (ChangeKind::Extension, None) => {
                    return Err(Error::Internal(anyhow::anyhow!("extension request {} without a date", d.id)));
                }
            }
        } else {
            let action = match change.kind {
                ChangeKind::Extension => "extension_rejected",
                ChangeKind::Pause => "pause_rejected",
            };
            (ChangeState::Rejected, action, Some(clock.due_at))
        };
        let decided = store::decide(&mut tx, d.id, to, p.actor(), &d.note, (clock.due_at, due_after)).await?;
        self.supervised(&mut tx, &clock, action, due_after, &d.note, p.actor()).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %clock.case_id, request = %d.id, state = %to, "clock change decided");
        Ok(decided)
    }

    /// The center restarts a paused clock: every point still ahead of the pause moves on by the time it stood.
    pub async fn resume(&self, p: &Principal, task_id: &str, stage: Stage, note: &str) -> Result<ClockChange> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        let clock = store::lock_stage_clock(&mut tx, task_id, stage).await?.ok_or_else(|| no_stage(task_id, stage))?;
        let case = db::case(&mut tx, clock.case_id).await?;
        scope::gate(p, Permission::ReviewReturn, clock.case_id, case.as_ref())?;
        let Some(pause) = store::lock_open_pause(&mut tx, task_id, stage).await? else {
            return Err(Error::failed_precondition(format!("the {stage} clock of task {task_id} is not paused")));
        };
        let ended = end_pause(&mut tx, case.as_ref(), &clock, &pause, Utc::now(), p.actor()).await?;
        self.supervised(&mut tx, &clock, "resumed", ended.due_after, note, p.actor()).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %clock.case_id, task_id, stage = %stage, "clock resumed");
        Ok(ended)
    }

    /// The case's clock changes, for a caller who may read the case, or those of their own unit's tasks.
    pub async fn changes(&self, p: &Principal, case_id: CaseId) -> Result<Vec<ClockChange>> {
        let mut conn = self.pool.acquire().await?;
        let case = db::case(&mut conn, case_id).await?;
        let all = store::changes_of_case(&mut conn, case_id).await?;
        if scope::readable(p, case_id, case.as_ref()).is_ok() {
            return Ok(all);
        }
        let units = p.scope(Permission::ReadCase).units;
        let tasks = if units.is_empty() { vec![] } else { db::tasks_of_units(&mut conn, case_id, &units).await? };
        if tasks.is_empty() {
            return Err(no_case(case_id));
        }
        Ok(all.into_iter().filter(|c| tasks.contains(&c.task_id)).collect())
    }

    /// Approved extensions of the stage so far, and the cap of the policy the case runs under.
    async fn extension_count(&self, conn: &mut PgConnection, clock: &StageClock) -> Result<(u32, u32)> {
        let done = store::approved_extensions(conn, &clock.task_id, clock.stage).await?;
        let version = clock.policy_version.unwrap_or(1);
        let policy = self.clocks.policy(conn, version).await.map_err(Error::Internal)?;
        Ok((u32::try_from(done).unwrap_or(u32::MAX), policy.max_extensions))
    }

    /// Writes the step to the case file's event stream.
    async fn supervised(
        &self,
        tx: &mut PgConnection,
        clock: &StageClock,
        action: &str,
        due: Option<DateTime<Utc>>,
        note: &str,
        actor: &str,
    ) -> Result<()> {
        let event = CaseSupervised {
            task_id: clock.task_id.clone(),
            stage: clock.stage.into(),
            action: action.into(),
            slip_no: String::new(),
            unit_code: clock.unit_code.clone(),
            copy_to: String::new(),
            due_ms: due.map_or(0, |d| d.timestamp_millis()),
            note: note.into(),
        };
        self.outbox.add(tx, clock.case_id, actor, Body::CaseSupervised(event)).await?;
        Ok(())
    }
}

/// The calendar at the case's place and the deadline's clock.
async fn clock_of(
    conn: &mut PgConnection,
    case: Option<&Case>,
    clock: &StageClock,
) -> Result<(crate::domain::calendar::Calendar, ClockKind)> {
    let kind = ClockKind::parse("clock", &clock.clock).unwrap_or(ClockKind::CalendarHours);
    let path = case.map(|c| c.area_path.as_slice()).unwrap_or_default();
    Ok((calendar_at(conn, path).await?, kind))
}

/// Ends an approved pause at `at` (`by` empty: the stage was done meanwhile), moving the points still ahead.
async fn end_pause(
    conn: &mut PgConnection,
    case: Option<&Case>,
    clock: &StageClock,
    pause: &ClockChange,
    at: DateTime<Utc>,
    by: &str,
) -> Result<ClockChange> {
    let paused_at = clock.paused_at.unwrap_or(at);
    let (calendar, kind) = clock_of(conn, case, clock).await?;
    let points = Points::of(clock).resumed(&calendar, kind, paused_at, at);
    store::move_points(conn, clock.id, &points, next_grade(clock)).await?;
    Ok(store::resumed(conn, pause.id, by, points.due_at).await?)
}

/// A stage done while its clock was paused: the pause ends when the stage was done, so the due time the on-time
/// rates compare against has moved by the pause, as if the center had resumed it then. Inside the consumer's
/// transaction, before the stage is settled.
pub async fn end_pause_when_done(
    conn: &mut PgConnection,
    case_id: CaseId,
    task_id: &str,
    stage: Stage,
    at: DateTime<Utc>,
) -> Result<()> {
    let Some(clock) = store::lock_stage_clock(conn, task_id, stage).await? else { return Ok(()) };
    let Some(paused_at) = clock.paused_at else { return Ok(()) };
    if let Some(pause) = store::lock_open_pause(conn, task_id, stage).await? {
        let case = db::case(conn, case_id).await?;
        end_pause(conn, case.as_ref(), &clock, &pause, at.max(paused_at), "").await?;
    }
    Ok(())
}

/// The grade the deadline issues next, if any.
fn next_grade(clock: &StageClock) -> Option<Grade> {
    Grade::parse("next_grade", &clock.next_grade).ok()
}

fn no_stage(task_id: &str, stage: Stage) -> Error {
    Error::not_found(format!("a {stage} clock for task {task_id}"))
}

fn refused(r: Refusal) -> Error {
    match r {
        Refusal::Invalid(e) => Error::Invalid(e),
        Refusal::State(why) => Error::failed_precondition(why),
    }
}
