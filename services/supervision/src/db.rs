//! Supervision's queries: plain functions over a connection or transaction, taking and returning the domain's
//! aggregates; states and stages are bound as values, never repeated as SQL literals.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use kit::vocab::Urgency;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::calendar::ClockKind;
use crate::domain::policy::Grade;
use crate::domain::{Case, Deadline, DeadlineState, SlipRecord, Stage, TaskSlip};

pub mod changes;
mod clocks;
mod closures;
mod rates;
mod tasks;
pub use clocks::*;
pub use closures::*;
pub use rates::*;
pub use tasks::*;

/// A `cases` row. The urgency column holds whatever an older event named, so it is read leniently
/// ([`Urgency::or_normal`]): a case is never left without a deadline because of an unexpected value.
#[derive(sqlx::FromRow)]
struct CaseRow {
    case_id: CaseId,
    case_no: String,
    category_code: String,
    urgency: String,
    round: i32,
    area_path: Vec<String>,
    grid_code: String,
    reporter_id: String,
    policy_version: Option<i32>,
}

impl From<CaseRow> for Case {
    fn from(r: CaseRow) -> Self {
        Case {
            case_id: r.case_id,
            case_no: r.case_no,
            category_code: r.category_code,
            urgency: Urgency::parse("urgency", &r.urgency).unwrap_or(Urgency::Normal),
            round: r.round,
            area_path: r.area_path,
            grid_code: r.grid_code,
            reporter_id: r.reporter_id,
            policy_version: r.policy_version,
        }
    }
}

/// What an event says about a case; empty values (and no urgency) leave what is known unchanged.
pub struct CaseFacts<'a> {
    pub case_id: CaseId,
    pub case_no: &'a str,
    pub category_code: &'a str,
    pub urgency: Option<Urgency>,
}

/// Where a case is and who registered it, from case.registered.
pub struct Place<'a> {
    pub area_path: &'a [String],
    pub grid_code: &'a str,
    pub reporter_id: &'a str,
    pub center_code: &'a str,
    pub center_name: &'a str,
    /// The names of `area_path`'s divisions, in its order.
    pub area_names: &'a [String],
    pub category_name: &'a str,
}

/// What an event tells of the case, and case.registered also its place, in one statement whether or not the row
/// exists yet (an empty fact leaves the known one as it is). Answers the case as it now is, its row locked for
/// the rest of the transaction (as [`lock_case`] would).
pub async fn upsert_case(conn: &mut PgConnection, f: &CaseFacts<'_>, place: Option<&Place<'_>>) -> sqlx::Result<Case> {
    let (columns, values, set) = match place {
        Some(_) => (
            ", area_path, grid_code, reporter_id, center_code, center_name, area_names, category_name",
            ", $6, $7, $8, $9, $10, $11, $12",
            "area_path = EXCLUDED.area_path, grid_code = EXCLUDED.grid_code, reporter_id = EXCLUDED.reporter_id, \
             center_code = EXCLUDED.center_code, center_name = EXCLUDED.center_name, \
             area_names = EXCLUDED.area_names, category_name = EXCLUDED.category_name,",
        ),
        None => ("", "", ""),
    };
    let sql = format!(
        "INSERT INTO cases (case_id, case_no, category_code, urgency{columns}) \
         VALUES ($1, $2, $3, COALESCE($4, $5){values}) \
         ON CONFLICT (case_id) DO UPDATE SET \
           case_no = COALESCE(NULLIF(EXCLUDED.case_no, ''), cases.case_no), \
           category_code = COALESCE(NULLIF(EXCLUDED.category_code, ''), cases.category_code), \
           urgency = COALESCE($4, cases.urgency), {set} \
           updated_at = now() \
         RETURNING {CASE_COLUMNS}"
    );
    let mut query = sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql))
        .bind(f.case_id)
        .bind(f.case_no)
        .bind(f.category_code)
        .bind(f.urgency)
        .bind(Urgency::Normal);
    if let Some(p) = place {
        query = query
            .bind(p.area_path)
            .bind(p.grid_code)
            .bind(p.reporter_id)
            .bind(p.center_code)
            .bind(p.center_name)
            .bind(p.area_names)
            .bind(p.category_name);
    }
    Ok(Case::from(query.fetch_one(conn).await?))
}

const CASE_COLUMNS: &str =
    "case_id, case_no, category_code, urgency, round, area_path, grid_code, reporter_id, policy_version";

/// The case as projected, unlocked: for deciding who may see it before any work is done.
pub async fn case(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Option<Case>> {
    select_case(conn, case_id, "").await
}

/// The case, locked for the rest of the transaction so verifications and follow-ups apply one at a time.
pub async fn lock_case(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Option<Case>> {
    select_case(conn, case_id, " FOR UPDATE").await
}

async fn select_case(conn: &mut PgConnection, case_id: CaseId, lock: &str) -> sqlx::Result<Option<Case>> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1{lock}");
    let row: Option<CaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(case_id).fetch_optional(conn).await?;
    Ok(row.map(Case::from))
}

/// Records the case as merged into the case numbered `into` (None: no longer merged), creating the row when the
/// case's registration was not seen.
pub async fn set_merged(conn: &mut PgConnection, case_id: CaseId, into: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cases (case_id, merged_into) VALUES ($1, $2) \
         ON CONFLICT (case_id) DO UPDATE SET merged_into = $2, updated_at = now()",
    )
    .bind(case_id)
    .bind(into)
    .execute(conn)
    .await?;
    Ok(())
}

/// The number of the case this one is merged into, if it is.
pub async fn merged_into(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT merged_into FROM cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(conn)
        .await?
        .flatten())
}

/// Moves the case to `round` unless it is already there or past it (its own reopen events come back).
pub async fn advance_round(conn: &mut PgConnection, case_id: CaseId, round: i32) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET round = GREATEST(round, $2), updated_at = now() WHERE case_id = $1")
        .bind(case_id)
        .bind(round)
        .execute(conn)
        .await?;
    Ok(())
}

/// A deadline as its clock set it.
pub struct NewDeadline<'a> {
    pub case_id: CaseId,
    pub task_id: &'a str,
    pub stage: Stage,
    pub due_at: DateTime<Utc>,
    pub clock: ClockKind,
    /// The limit in counted seconds on the clock.
    pub limit_seconds: i64,
    pub started_at: DateTime<Utc>,
    pub policy_version: i32,
    /// When the reminder (临期提醒) and the red card (红牌) fall due; the yellow card is `due_at`.
    pub remind_at: DateTime<Utc>,
    pub red_at: DateTime<Utc>,
}

/// Adds a pending deadline unless the task already has one for the stage. With `restart`, a deadline of the
/// stage that was cancelled (a return the center then rejected) starts again instead; a met or fired one
/// never does.
pub async fn insert_deadline(conn: &mut PgConnection, d: &NewDeadline<'_>, restart: bool) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deadlines (id, case_id, task_id, stage, due_at, state, clock, limit_seconds, started_at, \
           policy_version, remind_at, red_at, next_grade, next_at, done_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $14, $15, $13, NULL) \
         ON CONFLICT ON CONSTRAINT deadlines_task_stage_key DO UPDATE SET \
           due_at = EXCLUDED.due_at, state = EXCLUDED.state, clock = EXCLUDED.clock, \
           limit_seconds = EXCLUDED.limit_seconds, started_at = EXCLUDED.started_at, \
           policy_version = EXCLUDED.policy_version, remind_at = EXCLUDED.remind_at, red_at = EXCLUDED.red_at, \
           next_grade = EXCLUDED.next_grade, next_at = EXCLUDED.next_at, done_at = NULL, paused_at = NULL \
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
    .bind(d.remind_at)
    .bind(d.red_at)
    .bind(Grade::Reminder)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stage of the task is done (`Met`) or stopped (`Cancelled`, a return): a pending deadline takes that
/// state, one already fired (late) stays fired; either way no further grade is issued. A done stage records
/// when, once: what the on-time rates count.
pub async fn settle(
    conn: &mut PgConnection,
    task_id: &str,
    stage: Stage,
    to: DeadlineState,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deadlines SET state = CASE WHEN state = $4 THEN $3 ELSE state END, next_grade = '', next_at = NULL, \
           done_at = CASE WHEN $3 = $6 THEN COALESCE(done_at, $7) ELSE done_at END \
         WHERE task_id = $1 AND stage = $2 AND state IN ($4, $5)",
    )
    .bind(task_id)
    .bind(stage)
    .bind(to)
    .bind(DeadlineState::Pending)
    .bind(DeadlineState::Fired)
    .bind(DeadlineState::Met)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The states of the task's deadlines, by stage.
pub async fn task_deadline_states(conn: &mut PgConnection, task_id: &str) -> sqlx::Result<Vec<(Stage, DeadlineState)>> {
    sqlx::query_as("SELECT stage, state FROM deadlines WHERE task_id = $1").bind(task_id).fetch_all(conn).await
}

/// Cancels every pending deadline of the case and stops the grades of fired ones (a reopening starts the next
/// round's clocks afresh).
pub async fn cancel_pending(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deadlines SET state = CASE WHEN state = $3 THEN $2 ELSE state END, next_grade = '', next_at = NULL \
         WHERE case_id = $1 AND (state = $3 OR (state = $4 AND next_grade <> ''))",
    )
    .bind(case_id)
    .bind(DeadlineState::Cancelled)
    .bind(DeadlineState::Pending)
    .bind(DeadlineState::Fired)
    .execute(conn)
    .await?;
    Ok(())
}

/// A deadline whose next grade is due, with what its slip needs: claimed (locked) by the caller's transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueGrade {
    pub id: Uuid,
    pub case_id: CaseId,
    pub task_id: String,
    pub stage: Stage,
    pub state: DeadlineState,
    pub grade: Grade,
    pub due_at: DateTime<Utc>,
    pub red_at: Option<DateTime<Utc>>,
    pub unit_code: String,
    pub unit_name: String,
    pub center_code: String,
    pub center_name: String,
    pub case_no: String,
    pub category_code: String,
}

/// Claims up to `limit` deadlines whose next grade is due, oldest first. Rows another replica holds are
/// skipped, so each grade is issued in exactly one transaction.
pub async fn claim_due_grades(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<DueGrade>> {
    sqlx::query_as(
        "WITH due AS (SELECT id FROM deadlines WHERE next_grade <> '' AND next_at <= now() \
                      ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         SELECT d.id, d.case_id, d.task_id, d.stage, d.state, d.next_grade AS grade, d.due_at, d.red_at, \
                COALESCE(t.unit_code, j.unit_code, '') AS unit_code, \
                COALESCE(t.unit_name, j.unit_name, '') AS unit_name, \
                COALESCE(c.center_code, '') AS center_code, COALESCE(c.center_name, '') AS center_name, \
                COALESCE(c.case_no, '') AS case_no, COALESCE(c.category_code, '') AS category_code \
         FROM due JOIN deadlines d ON d.id = due.id \
         LEFT JOIN tasks t ON t.task_id = d.task_id LEFT JOIN co_handlers j ON j.co_id = d.task_id \
         LEFT JOIN cases c ON c.case_id = d.case_id \
         ORDER BY d.next_at",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Moves a claimed deadline past the grade just issued: on to `next` at `next_at`, or to none. The yellow card
/// marks the deadline fired (missed).
pub async fn graded(
    conn: &mut PgConnection,
    id: Uuid,
    issued: Grade,
    next: Option<(Grade, DateTime<Utc>)>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deadlines SET next_grade = $3, next_at = $4, \
           state = CASE WHEN $2 = $5 AND state = $6 THEN $7 ELSE state END, \
           fired_at = CASE WHEN $2 = $5 AND state = $6 THEN now() ELSE fired_at END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(issued)
    .bind(next.map_or("", |(g, _)| g.as_str()))
    .bind(next.map(|(_, at)| at))
    .bind(Grade::Yellow)
    .bind(DeadlineState::Pending)
    .bind(DeadlineState::Fired)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the next slip number of the center's year; in the issuing transaction (the scheduler is its only
/// writer, so the row lock queues nothing).
pub async fn next_slip_seq(conn: &mut PgConnection, center_prefix: &str, year: i32) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO slip_numbers (center_prefix, year, last_seq) VALUES ($1, $2, 1) \
         ON CONFLICT (center_prefix, year) DO UPDATE SET last_seq = slip_numbers.last_seq + 1 RETURNING last_seq",
    )
    .bind(center_prefix)
    .bind(year)
    .fetch_one(conn)
    .await
}

/// Records an issued slip; false when the task's stage already has one of this grade (nothing is written).
pub async fn insert_slip(conn: &mut PgConnection, s: &SlipRecord) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO slips (id, number, case_id, task_id, stage, grade, unit_code, center_code, copy_to, case_no, \
           category_code, due_at, issued_at, verification_code, unit_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT ON CONSTRAINT slips_once DO NOTHING",
    )
    .bind(s.id)
    .bind(&s.number)
    .bind(s.case_id)
    .bind(&s.task_id)
    .bind(s.stage)
    .bind(s.grade)
    .bind(&s.unit_code)
    .bind(&s.center_code)
    .bind(&s.copy_to)
    .bind(&s.case_no)
    .bind(&s.category_code)
    .bind(s.due_at)
    .bind(s.issued_at)
    .bind(&s.verification_code)
    .bind(&s.unit_name)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The case's slips, in issue order.
pub async fn slips_of_case(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<SlipRecord>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SLIP_COLUMNS} FROM slips WHERE case_id = $1 ORDER BY issued_at, number"
    )))
    .bind(case_id)
    .fetch_all(conn)
    .await
}

const TASK_SLIP_SELECT: &str = "SELECT t.slip_no AS number, t.case_id, t.task_id, t.unit_code, t.unit_name, \
    COALESCE(c.center_code, '') AS center_code, COALESCE(c.center_name, '') AS center_name, t.case_no, t.category_code, \
    COALESCE(c.category_name, '') AS category_name, COALESCE(c.urgency, '') AS urgency, \
    c.policy_version, d.due_at AS accept_due, t.dispatched_at \
    FROM tasks t LEFT JOIN cases c ON c.case_id = t.case_id \
    LEFT JOIN deadlines d ON d.task_id = t.task_id AND d.stage = $2";

/// The case's task slips (one per dispatch that carried a number), in dispatch order. `$2` binds the accept
/// stage, whose deadline the slip prints.
pub async fn task_slips_of_case(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<TaskSlip>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TASK_SLIP_SELECT} WHERE t.case_id = $1 AND t.slip_no <> '' ORDER BY t.attempt, t.seq"
    )))
    .bind(case_id)
    .bind(Stage::Accept)
    .fetch_all(conn)
    .await
}

/// One task slip by number.
pub async fn task_slip(conn: &mut PgConnection, number: &str) -> sqlx::Result<Option<TaskSlip>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{TASK_SLIP_SELECT} WHERE t.slip_no = $1 AND t.slip_no <> ''")))
        .bind(number)
        .bind(Stage::Accept)
        .fetch_optional(conn)
        .await
}

/// One slip by number, locked when `lock` (to acknowledge it).
pub async fn slip(conn: &mut PgConnection, number: &str, lock: bool) -> sqlx::Result<Option<SlipRecord>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {SLIP_COLUMNS} FROM slips WHERE number = $1{lock}")))
        .bind(number)
        .fetch_optional(conn)
        .await
}

pub async fn acknowledge_slip(conn: &mut PgConnection, id: Uuid, by: &str) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "UPDATE slips SET acknowledged_at = now(), acknowledged_by = $2 WHERE id = $1 RETURNING acknowledged_at",
    )
    .bind(id)
    .bind(by)
    .fetch_one(conn)
    .await
}

/// A slip's columns, with the names it prints from the case (selected `FROM slips`): its center's, the center
/// it is copied to (found on the case's area path) and the category's.
const SLIP_COLUMNS: &str = "id, number, case_id, task_id, stage, grade, unit_code, unit_name, center_code, \
    COALESCE((SELECT c.center_name FROM cases c WHERE c.case_id = slips.case_id), '') AS center_name, copy_to, \
    COALESCE((SELECT c.area_names[array_position(c.area_path, slips.copy_to)] FROM cases c \
      WHERE c.case_id = slips.case_id), '') AS copy_to_name, \
    case_no, category_code, \
    COALESCE((SELECT c.category_name FROM cases c WHERE c.case_id = slips.case_id), '') AS category_name, \
    due_at, issued_at, verification_code, acknowledged_at, acknowledged_by";

/// The pending deadlines already past due, for the scheduler's health metric. The partial index
/// `deadlines_due` holds only pending rows, so this reads the due ones alone.
pub async fn count_due(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM deadlines WHERE state = $1 AND due_at <= now()")
        .bind(DeadlineState::Pending)
        .fetch_one(conn)
        .await
}

/// The case's deadlines, oldest first.
pub async fn deadlines(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<Deadline>> {
    sqlx::query_as(
        "SELECT id, case_id, task_id, stage, due_at, state, fired_at, paused_at FROM deadlines WHERE case_id = $1 \
         ORDER BY created_at, due_at, id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}
