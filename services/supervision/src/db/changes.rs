//! Clock changes (延期, 挂账): the requests and their decisions, and the deadline's points they move.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Stage;
use crate::domain::changes::{ChangeKind, ChangeState, ClockChange, Points, StageClock};
use crate::domain::policy::Grade;

/// The stage's clock with its task's unit, locked for the caller's transaction: requests, decisions, the
/// scheduler and the consumer all change a deadline under its row lock.
pub async fn lock_stage_clock(
    conn: &mut PgConnection,
    task_id: &str,
    stage: Stage,
) -> sqlx::Result<Option<StageClock>> {
    sqlx::query_as(
        "SELECT d.id, d.case_id, d.task_id, d.stage, d.state, d.clock, d.due_at, d.remind_at, d.red_at, \
                d.next_grade, d.paused_at, d.policy_version, COALESCE(t.unit_code, '') AS unit_code \
         FROM deadlines d LEFT JOIN tasks t ON t.task_id = d.task_id \
         WHERE d.task_id = $1 AND d.stage = $2 FOR UPDATE OF d",
    )
    .bind(task_id)
    .bind(stage)
    .fetch_optional(conn)
    .await
}

/// How many extensions of the stage were approved.
pub async fn approved_extensions(conn: &mut PgConnection, task_id: &str, stage: Stage) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM clock_changes WHERE task_id = $1 AND stage = $2 AND kind = $3 AND state = $4",
    )
    .bind(task_id)
    .bind(stage)
    .bind(ChangeKind::Extension)
    .bind(ChangeState::Approved)
    .fetch_one(conn)
    .await
}

/// Records a new request; false when the stage already has one waiting (the partial unique index).
pub async fn insert_change(conn: &mut PgConnection, c: &ClockChange) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO clock_changes (id, case_id, task_id, stage, kind, reason, new_due_at, state, requested_by, \
           requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (task_id, stage) WHERE state = 'pending' DO NOTHING",
    )
    .bind(c.id)
    .bind(c.case_id)
    .bind(&c.task_id)
    .bind(c.stage)
    .bind(c.kind)
    .bind(&c.reason)
    .bind(c.new_due_at)
    .bind(c.state)
    .bind(&c.requested_by)
    .bind(c.requested_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

const CHANGE_COLUMNS: &str = "id, case_id, task_id, stage, kind, reason, new_due_at, due_before, due_after, state, \
    requested_by, requested_at, decided_by, decided_at, decision_note, resumed_by, resumed_at";

/// One request, locked (to decide it).
pub async fn lock_change(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ClockChange>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CHANGE_COLUMNS} FROM clock_changes WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The stage's approved pause still in force, locked (to resume it).
pub async fn lock_open_pause(
    conn: &mut PgConnection,
    task_id: &str,
    stage: Stage,
) -> sqlx::Result<Option<ClockChange>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM clock_changes WHERE task_id = $1 AND stage = $2 AND kind = $3 AND state = $4 \
         FOR UPDATE"
    )))
    .bind(task_id)
    .bind(stage)
    .bind(ChangeKind::Pause)
    .bind(ChangeState::Approved)
    .fetch_optional(conn)
    .await
}

/// The case's requests, oldest first: the history of its clocks.
pub async fn changes_of_case(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<ClockChange>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANGE_COLUMNS} FROM clock_changes WHERE case_id = $1 ORDER BY requested_at, id"
    )))
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// The decision on a request, with the due time before and after it; returns the request as decided.
pub async fn decide(
    conn: &mut PgConnection,
    id: Uuid,
    to: ChangeState,
    by: &str,
    note: &str,
    due: (DateTime<Utc>, Option<DateTime<Utc>>),
) -> sqlx::Result<ClockChange> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE clock_changes SET state = $2, decided_by = $3, decision_note = $4, decided_at = now(), \
           due_before = $5, due_after = $6 WHERE id = $1 RETURNING {CHANGE_COLUMNS}"
    )))
    .bind(id)
    .bind(to)
    .bind(by)
    .bind(note)
    .bind(due.0)
    .bind(due.1)
    .fetch_one(conn)
    .await
}

/// Ends an approved pause (`by` empty: the stage was done while paused); returns it as ended.
pub async fn resumed(
    conn: &mut PgConnection,
    id: Uuid,
    by: &str,
    due_after: DateTime<Utc>,
) -> sqlx::Result<ClockChange> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE clock_changes SET state = $2, resumed_by = $3, resumed_at = now(), due_after = $4 \
         WHERE id = $1 RETURNING {CHANGE_COLUMNS}"
    )))
    .bind(id)
    .bind(ChangeState::Resumed)
    .bind(by)
    .bind(due_after)
    .fetch_one(conn)
    .await
}

/// Stops the clock: the scheduler skips the deadline while `next_at` is empty.
pub async fn pause(conn: &mut PgConnection, deadline_id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE deadlines SET paused_at = $2, next_at = NULL WHERE id = $1")
        .bind(deadline_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the deadline's points (an extension, or a resume, which also clears the pause), and its next grade's
/// time with them.
pub async fn move_points(
    conn: &mut PgConnection,
    deadline_id: Uuid,
    p: &Points,
    next: Option<Grade>,
) -> sqlx::Result<()> {
    let next_at = next.and_then(|g| p.at(g));
    sqlx::query(
        "UPDATE deadlines SET due_at = $2, remind_at = $3, red_at = $4, next_at = $5, paused_at = NULL WHERE id = $1",
    )
    .bind(deadline_id)
    .bind(p.due_at)
    .bind(p.remind_at)
    .bind(p.red_at)
    .bind(next_at)
    .execute(conn)
    .await?;
    Ok(())
}
