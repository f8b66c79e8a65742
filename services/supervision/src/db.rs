//! Supervision's queries: plain functions over a connection or transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{DeadlineState, Stage};

mod tasks;
pub use tasks::*;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRow {
    pub case_id: Uuid,
    pub case_no: String,
    pub category_code: String,
    pub urgency: String,
    pub round: i32,
    /// Village first; empty until case.registered is seen.
    pub area_path: Vec<String>,
    pub grid_code: String,
    pub reporter_id: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadlineRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub task_id: String,
    pub stage: String,
    pub due_at: DateTime<Utc>,
    pub state: String,
    pub fired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClosureRow {
    pub case_id: Uuid,
    pub round: i32,
    pub state: String,
    pub closure_reason: String,
    pub task_id: String,
    pub resolver_id: String,
    /// Who handled (accepted, then resolved) the verified task.
    pub handler_id: String,
    pub category_code: String,
    pub case_no: String,
    pub verifier_id: String,
    pub note: String,
    pub satisfaction: String,
    pub closed_at: DateTime<Utc>,
}

/// What an event or a peer says about a case; empty values leave what is known unchanged.
pub struct CaseFacts<'a> {
    pub case_id: Uuid,
    pub case_no: &'a str,
    pub category_code: &'a str,
    pub urgency: &'a str,
}

pub async fn upsert_case(conn: &mut PgConnection, f: &CaseFacts<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cases (case_id, case_no, category_code, urgency) \
         VALUES ($1, $2, $3, COALESCE(NULLIF($4, ''), 'normal')) \
         ON CONFLICT (case_id) DO UPDATE SET \
           case_no = COALESCE(NULLIF(EXCLUDED.case_no, ''), cases.case_no), \
           category_code = COALESCE(NULLIF(EXCLUDED.category_code, ''), cases.category_code), \
           urgency = CASE WHEN $4 = '' THEN cases.urgency ELSE EXCLUDED.urgency END, \
           updated_at = now()",
    )
    .bind(f.case_id)
    .bind(f.case_no)
    .bind(f.category_code)
    .bind(f.urgency)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records where the case is and who reported it, from case.registered.
pub async fn set_place(
    conn: &mut PgConnection,
    case_id: Uuid,
    area_path: &[String],
    grid_code: &str,
    reporter_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cases SET area_path = $2, grid_code = $3, reporter_id = $4, updated_at = now() WHERE case_id = $1",
    )
    .bind(case_id)
    .bind(area_path)
    .bind(grid_code)
    .bind(reporter_id)
    .execute(conn)
    .await?;
    Ok(())
}

const CASE_COLUMNS: &str = "case_id, case_no, category_code, urgency, round, area_path, grid_code, reporter_id";

/// The case as projected, unlocked: for deciding who may see it before any work is done.
pub async fn case(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Option<CaseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1")))
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

/// The case, locked for the rest of the transaction so verifications and follow-ups apply one at a time.
pub async fn lock_case(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Option<CaseRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1 FOR UPDATE")))
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

/// Moves the case to `round` unless it is already there or past it (its own reopen events come back).
pub async fn advance_round(conn: &mut PgConnection, case_id: Uuid, round: i32) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET round = GREATEST(round, $2), updated_at = now() WHERE case_id = $1")
        .bind(case_id)
        .bind(round)
        .execute(conn)
        .await?;
    Ok(())
}

/// The policy's seconds for the stage at this urgency, falling back to the normal policy.
pub async fn policy_seconds(conn: &mut PgConnection, urgency: &str, stage: Stage) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "SELECT seconds FROM deadline_policy WHERE stage = $2 AND urgency IN ($1, 'normal') \
         ORDER BY (urgency = $1) DESC LIMIT 1",
    )
    .bind(urgency)
    .bind(stage.as_str())
    .fetch_optional(conn)
    .await
}

/// Adds a pending deadline unless the task already has one for the stage.
pub async fn insert_deadline(
    conn: &mut PgConnection,
    case_id: Uuid,
    task_id: &str,
    stage: Stage,
    due_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deadlines (id, case_id, task_id, stage, due_at, state) VALUES ($1, $2, $3, $4, $5, 'pending') \
         ON CONFLICT ON CONSTRAINT deadlines_task_stage_key DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(case_id)
    .bind(task_id)
    .bind(stage.as_str())
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the task's pending deadline for the stage met or cancelled; one already fired stays fired.
pub async fn settle(conn: &mut PgConnection, task_id: &str, stage: Stage, to: DeadlineState) -> sqlx::Result<()> {
    sqlx::query("UPDATE deadlines SET state = $3 WHERE task_id = $1 AND stage = $2 AND state = 'pending'")
        .bind(task_id)
        .bind(stage.as_str())
        .bind(to.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// The states of the task's deadlines, by stage.
pub async fn task_deadline_states(conn: &mut PgConnection, task_id: &str) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT stage, state FROM deadlines WHERE task_id = $1").bind(task_id).fetch_all(conn).await
}

pub async fn cancel_pending(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE deadlines SET state = 'cancelled' WHERE case_id = $1 AND state = 'pending'")
        .bind(case_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` due pending deadlines and marks them fired. Rows another replica holds are skipped,
/// so each deadline fires in exactly one transaction.
pub async fn fire_due(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<DeadlineRow>> {
    sqlx::query_as(
        "WITH due AS (SELECT id FROM deadlines WHERE state = 'pending' AND due_at <= now() \
                      ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE deadlines d SET state = 'fired', fired_at = now() FROM due WHERE d.id = due.id \
         RETURNING d.id, d.case_id, d.task_id, d.stage, d.due_at, d.state, d.fired_at",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn deadlines(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Vec<DeadlineRow>> {
    sqlx::query_as(
        "SELECT id, case_id, task_id, stage, due_at, state, fired_at FROM deadlines WHERE case_id = $1 \
         ORDER BY created_at, due_at, id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

const CLOSURE_COLUMNS: &str = "case_id, round, state, closure_reason, task_id, resolver_id, handler_id, \
    category_code, case_no, verifier_id, note, satisfaction, closed_at";

pub async fn closure(conn: &mut PgConnection, case_id: Uuid, round: i32) -> sqlx::Result<Option<ClosureRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CLOSURE_COLUMNS} FROM closures WHERE case_id = $1 AND round = $2"
    )))
    .bind(case_id)
    .bind(round)
    .fetch_optional(conn)
    .await
}

pub async fn task_verified(conn: &mut PgConnection, task_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM closures WHERE task_id = $1)").bind(task_id).fetch_one(conn).await
}

pub async fn insert_closure(conn: &mut PgConnection, c: &ClosureRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO closures (case_id, round, state, closure_reason, task_id, resolver_id, category_code, case_no, \
         verifier_id, note, closed_at, handler_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    )
    .bind(c.case_id)
    .bind(c.round)
    .bind(&c.state)
    .bind(&c.closure_reason)
    .bind(&c.task_id)
    .bind(&c.resolver_id)
    .bind(&c.category_code)
    .bind(&c.case_no)
    .bind(&c.verifier_id)
    .bind(&c.note)
    .bind(c.closed_at)
    .bind(&c.handler_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct FollowUpRecord<'a> {
    pub case_id: Uuid,
    pub round: i32,
    pub satisfaction: &'a str,
    pub visitor_id: &'a str,
    pub note: &'a str,
}

pub async fn record_follow_up(conn: &mut PgConnection, f: &FollowUpRecord<'_>) -> sqlx::Result<ClosureRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE closures SET state = 'followed_up', satisfaction = $3, visitor_id = $4, follow_up_note = $5, \
         followed_up_at = now() WHERE case_id = $1 AND round = $2 RETURNING {CLOSURE_COLUMNS}"
    )))
    .bind(f.case_id)
    .bind(f.round)
    .bind(f.satisfaction)
    .bind(f.visitor_id)
    .bind(f.note)
    .fetch_one(conn)
    .await
}
