//! Supervision's queries: plain functions over a connection or transaction, taking and returning the domain's
//! aggregates; states and stages are bound as values, never repeated as SQL literals.

use chrono::{DateTime, Utc};
use kit::vocab::Urgency;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::calendar::ClockKind;
use crate::domain::{Case, Closure, ClosureReason, ClosureState, Deadline, DeadlineState, FollowUp, Stage};

mod clocks;
mod tasks;
pub use clocks::*;
pub use tasks::*;

/// A `cases` row. The urgency column holds whatever an older event named, so it is read leniently
/// ([`Urgency::or_normal`]): a case is never left without a deadline because of an unexpected value.
#[derive(sqlx::FromRow)]
struct CaseRow {
    case_id: Uuid,
    case_no: String,
    category_code: String,
    urgency: String,
    round: i32,
    area_path: Vec<String>,
    grid_code: String,
    reporter_id: String,
}

impl From<CaseRow> for Case {
    fn from(r: CaseRow) -> Self {
        Case {
            case_id: r.case_id,
            case_no: r.case_no,
            category_code: r.category_code,
            urgency: Urgency::or_normal(&r.urgency),
            round: r.round,
            area_path: r.area_path,
            grid_code: r.grid_code,
            reporter_id: r.reporter_id,
        }
    }
}

/// What an event says about a case; empty values (and no urgency) leave what is known unchanged.
pub struct CaseFacts<'a> {
    pub case_id: Uuid,
    pub case_no: &'a str,
    pub category_code: &'a str,
    pub urgency: Option<Urgency>,
}

pub async fn upsert_case(conn: &mut PgConnection, f: &CaseFacts<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cases (case_id, case_no, category_code, urgency) \
         VALUES ($1, $2, $3, COALESCE($4, $5)) \
         ON CONFLICT (case_id) DO UPDATE SET \
           case_no = COALESCE(NULLIF(EXCLUDED.case_no, ''), cases.case_no), \
           category_code = COALESCE(NULLIF(EXCLUDED.category_code, ''), cases.category_code), \
           urgency = COALESCE($4, cases.urgency), \
           updated_at = now()",
    )
    .bind(f.case_id)
    .bind(f.case_no)
    .bind(f.category_code)
    .bind(f.urgency)
    .bind(Urgency::Normal)
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
pub async fn case(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Option<Case>> {
    select_case(conn, case_id, "").await
}

/// The case, locked for the rest of the transaction so verifications and follow-ups apply one at a time.
pub async fn lock_case(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Option<Case>> {
    select_case(conn, case_id, " FOR UPDATE").await
}

async fn select_case(conn: &mut PgConnection, case_id: Uuid, lock: &str) -> sqlx::Result<Option<Case>> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1{lock}");
    let row: Option<CaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(case_id).fetch_optional(conn).await?;
    Ok(row.map(Case::from))
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

/// A deadline as its clock set it.
pub struct NewDeadline<'a> {
    pub case_id: Uuid,
    pub task_id: &'a str,
    pub stage: Stage,
    pub due_at: DateTime<Utc>,
    pub clock: ClockKind,
    /// The limit in counted seconds on the clock.
    pub limit_seconds: i64,
    pub started_at: DateTime<Utc>,
    pub policy_version: i32,
}

/// Adds a pending deadline unless the task already has one for the stage. With `restart`, a deadline of the
/// stage that was cancelled (a return the center then rejected) starts again instead; a met or fired one
/// never does.
pub async fn insert_deadline(conn: &mut PgConnection, d: &NewDeadline<'_>, restart: bool) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deadlines (id, case_id, task_id, stage, due_at, state, clock, limit_seconds, started_at, \
           policy_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT ON CONSTRAINT deadlines_task_stage_key DO UPDATE SET \
           due_at = EXCLUDED.due_at, state = EXCLUDED.state, clock = EXCLUDED.clock, \
           limit_seconds = EXCLUDED.limit_seconds, started_at = EXCLUDED.started_at, \
           policy_version = EXCLUDED.policy_version \
         WHERE $11 AND deadlines.state = $12",
    )
    .bind(Uuid::new_v4())
    .bind(d.case_id)
    .bind(d.task_id)
    .bind(d.stage)
    .bind(d.due_at)
    .bind(DeadlineState::Pending)
    .bind(d.clock)
    .bind(d.limit_seconds)
    .bind(d.started_at)
    .bind(d.policy_version)
    .bind(restart)
    .bind(DeadlineState::Cancelled)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the task's pending deadline for the stage met or cancelled; one already fired stays fired.
pub async fn settle(conn: &mut PgConnection, task_id: &str, stage: Stage, to: DeadlineState) -> sqlx::Result<()> {
    sqlx::query("UPDATE deadlines SET state = $3 WHERE task_id = $1 AND stage = $2 AND state = $4")
        .bind(task_id)
        .bind(stage)
        .bind(to)
        .bind(DeadlineState::Pending)
        .execute(conn)
        .await?;
    Ok(())
}

/// The states of the task's deadlines, by stage.
pub async fn task_deadline_states(conn: &mut PgConnection, task_id: &str) -> sqlx::Result<Vec<(Stage, DeadlineState)>> {
    sqlx::query_as("SELECT stage, state FROM deadlines WHERE task_id = $1").bind(task_id).fetch_all(conn).await
}

/// Cancels every pending deadline of the case (a reopening starts the next round's clocks afresh).
pub async fn cancel_pending(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE deadlines SET state = $2 WHERE case_id = $1 AND state = $3")
        .bind(case_id)
        .bind(DeadlineState::Cancelled)
        .bind(DeadlineState::Pending)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` due pending deadlines and marks them fired. Rows another replica holds are skipped,
/// so each deadline fires in exactly one transaction.
pub async fn fire_due(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Deadline>> {
    sqlx::query_as(
        "WITH due AS (SELECT id FROM deadlines WHERE state = $2 AND due_at <= now() \
                      ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE deadlines d SET state = $3, fired_at = now() FROM due WHERE d.id = due.id \
         RETURNING d.id, d.case_id, d.task_id, d.stage, d.due_at, d.state, d.fired_at",
    )
    .bind(limit)
    .bind(DeadlineState::Pending)
    .bind(DeadlineState::Fired)
    .fetch_all(conn)
    .await
}

/// The pending deadlines already past due, for the scheduler's health metric. The partial index
/// `deadlines_due` holds only pending rows, so this reads the due ones alone.
pub async fn count_due(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM deadlines WHERE state = $1 AND due_at <= now()")
        .bind(DeadlineState::Pending)
        .fetch_one(conn)
        .await
}

/// The case's deadlines, oldest first.
pub async fn deadlines(conn: &mut PgConnection, case_id: Uuid) -> sqlx::Result<Vec<Deadline>> {
    sqlx::query_as(
        "SELECT id, case_id, task_id, stage, due_at, state, fired_at FROM deadlines WHERE case_id = $1 \
         ORDER BY created_at, due_at, id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// The columns of a [`Closure`]; the codes stored as '' until known read as none.
const CLOSURE_COLUMNS: &str = "case_id, round, state, NULLIF(closure_reason, '') AS closure_reason, task_id, \
    resolver_id, handler_id, category_code, case_no, verifier_id, note, NULLIF(satisfaction, '') AS satisfaction, \
    closed_at";

/// The closure of the case's round, if it was verified.
pub async fn closure(conn: &mut PgConnection, case_id: Uuid, round: i32) -> sqlx::Result<Option<Closure>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CLOSURE_COLUMNS} FROM closures WHERE case_id = $1 AND round = $2"
    )))
    .bind(case_id)
    .bind(round)
    .fetch_optional(conn)
    .await
}

/// Whether a closure names the task: a task is verified at most once.
pub async fn task_verified(conn: &mut PgConnection, task_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM closures WHERE task_id = $1)").bind(task_id).fetch_one(conn).await
}

/// Records a verified round. A closure is written before any follow-up, so its satisfaction is not stored here.
pub async fn insert_closure(conn: &mut PgConnection, c: &Closure) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO closures (case_id, round, state, closure_reason, task_id, resolver_id, category_code, case_no, \
         verifier_id, note, closed_at, handler_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    )
    .bind(c.case_id)
    .bind(c.round)
    .bind(c.state)
    .bind(c.closure_reason.map_or("", ClosureReason::as_str))
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

/// Records the follow-up visit (回访) on the round's closure, which becomes followed up; returns the closure.
pub async fn record_follow_up(conn: &mut PgConnection, f: &FollowUp, round: i32) -> sqlx::Result<Closure> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE closures SET state = $6, satisfaction = $3, visitor_id = $4, follow_up_note = $5, \
         followed_up_at = now() WHERE case_id = $1 AND round = $2 RETURNING {CLOSURE_COLUMNS}"
    )))
    .bind(f.case_id)
    .bind(round)
    .bind(f.satisfaction)
    .bind(&f.visitor_id)
    .bind(&f.note)
    .bind(ClosureState::FollowedUp)
    .fetch_one(conn)
    .await
}
