//! Routing's task queries: exclusions, slip numbers, tasks and their moves, and the queues people work from.

use chrono::{DateTime, Utc};
use kit::auth::ScopeSet;
use kit::ids::CaseId;
use sqlx::PgConnection;
use uuid::Uuid;

use super::TASK_COLUMNS;
use crate::domain::queue::{After, Queue};
use crate::domain::{Case, OPEN, Outcome, ReturnReason, Task, TaskState, UnitKind, Via};

/// Units whose return was approved in this round of the case.
pub async fn excluded(conn: &mut PgConnection, case_id: CaseId, round: i32) -> sqlx::Result<Vec<(UnitKind, String)>> {
    sqlx::query_as("SELECT unit_kind, unit_code FROM exclusions WHERE case_id = $1 AND round = $2")
        .bind(case_id)
        .bind(round)
        .fetch_all(conn)
        .await
}

pub async fn exclude(
    conn: &mut PgConnection,
    case_id: CaseId,
    round: i32,
    kind: UnitKind,
    code: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO exclusions (case_id, round, unit_kind, unit_code) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
    )
    .bind(case_id)
    .bind(round)
    .bind(kind)
    .bind(code)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the next slip number of the center's day: inside a manual dispatch's transaction, or on its own ahead
/// of the consumer's batch ([`crate::units::Planner::plan_reserving`]).
pub async fn next_slip_seq(conn: &mut PgConnection, center_prefix: &str, local_day: &str) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO slip_numbers (center_prefix, local_day, last_seq) VALUES ($1, $2, 1) \
         ON CONFLICT (center_prefix, local_day) DO UPDATE SET last_seq = slip_numbers.last_seq + 1 \
         RETURNING last_seq",
    )
    .bind(center_prefix)
    .bind(local_day)
    .fetch_one(conn)
    .await
}

pub struct NewTask<'a> {
    pub id: Uuid,
    pub case: &'a Case,
    pub slip_no: &'a str,
    pub unit_kind: UnitKind,
    pub unit_code: &'a str,
    pub unit_name: &'a str,
    pub rule_id: &'a str,
    pub at: DateTime<Utc>,
    /// The issuing (holding) center, how the unit was chosen, and a dispatcher's reason.
    pub center_code: &'a str,
    pub via: Via,
    pub reason: &'a str,
}

/// Inserts the task as the case's next attempt and answers it as [`task`] reads it, in one statement. The
/// caller holds the case's row lock, so no other attempt is numbered meanwhile.
pub async fn insert_task(conn: &mut PgConnection, t: &NewTask<'_>) -> sqlx::Result<Task> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH t AS ( \
           INSERT INTO tasks (id, case_id, round, attempt, slip_no, unit_kind, unit_code, unit_name, rule_id, state, \
                              category_code, dispatched_at, updated_at, center_code, via, dispatch_reason) \
           VALUES ($1, $2, $3, (SELECT COALESCE(max(attempt), 0) + 1 FROM tasks WHERE case_id = $2), \
                   $4, $5, $6, $7, $8, $11, $9, $10, $10, $12, $13, $14) \
           RETURNING *) \
         SELECT {TASK_COLUMNS} FROM t JOIN cases c ON c.id = t.case_id"
    )))
    .bind(t.id)
    .bind(t.case.id)
    .bind(t.case.round)
    .bind(t.slip_no)
    .bind(t.unit_kind)
    .bind(t.unit_code)
    .bind(t.unit_name)
    .bind(t.rule_id)
    .bind(&t.case.category_code)
    .bind(t.at)
    .bind(TaskState::Dispatched)
    .bind(t.center_code)
    .bind(t.via)
    .bind(t.reason)
    .fetch_one(conn)
    .await
}

/// The task with its case number; `FOR UPDATE` locks the task row (not the case) when `lock` is set.
pub async fn task(conn: &mut PgConnection, id: Uuid, lock: bool) -> sqlx::Result<Option<Task>> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t JOIN cases c ON c.id = t.case_id WHERE t.id = $1{}",
        if lock { " FOR UPDATE OF t" } else { "" }
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

/// Marks the task overdue from supervision's case.overdue, keeping the earliest missed due time and its stage;
/// a repeat changes nothing. False when routing does not know the task.
pub async fn mark_overdue(conn: &mut PgConnection, id: Uuid, stage: &str, due: DateTime<Utc>) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE tasks SET overdue = TRUE, \
         overdue_stage = CASE WHEN due_at IS NULL OR $3 < due_at THEN $2 ELSE overdue_stage END, \
         due_at = LEAST(due_at, $3) WHERE id = $1",
    )
    .bind(id)
    .bind(stage)
    .bind(due)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn case_of_task(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<CaseId>> {
    sqlx::query_scalar("SELECT case_id FROM tasks WHERE id = $1").bind(id).fetch_optional(conn).await
}

/// The case's tasks the reader may see (over [`crate::scope::TASKS`]), oldest first: filtered here, never after
/// fetching.
pub async fn tasks_of_case(conn: &mut PgConnection, case_id: CaseId, scope: &ScopeSet) -> sqlx::Result<Vec<Task>> {
    let reach = scope.sql(&crate::scope::TASKS, 2);
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t JOIN cases c ON c.id = t.case_id WHERE t.case_id = $1 AND {reach} \
         ORDER BY t.attempt"
    );
    reach.bind(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(case_id)).fetch_all(conn).await
}

/// What one transition writes onto the task; fields left None keep their value. The state's own timestamp
/// (accepted_at, returned_at, reviewed_at, resolved_at) is set from the state moved to.
#[derive(Debug)]
pub struct Change<'a> {
    pub state: TaskState,
    pub handler_id: Option<&'a str>,
    /// Reason code and text of a return.
    pub return_reason: Option<(ReturnReason, &'a str)>,
    /// Reviewer and note of a return's review.
    pub review: Option<(&'a str, &'a str)>,
    /// Outcome, note and resolver of a resolution.
    pub outcome: Option<(Outcome, &'a str, &'a str)>,
}

impl Change<'_> {
    /// A move to `state` that writes nothing else.
    pub fn to(state: TaskState) -> Self {
        Self { state, handler_id: None, return_reason: None, review: None, outcome: None }
    }
}

pub async fn apply(conn: &mut PgConnection, id: Uuid, c: &Change<'_>, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tasks SET state = $2, updated_at = $3, \
         handler_id = COALESCE($4, handler_id), \
         accepted_at = CASE WHEN $2 = $12 THEN $3 ELSE accepted_at END, \
         return_reason_code = COALESCE($5, return_reason_code), return_reason = COALESCE($6, return_reason), \
         returned_at = CASE WHEN $2 = $13 THEN $3 ELSE returned_at END, \
         reviewer_id = COALESCE($7, reviewer_id), review_note = COALESCE($8, review_note), \
         reviewed_at = CASE WHEN $7 IS NOT NULL THEN $3 ELSE reviewed_at END, \
         outcome = COALESCE($9, outcome), outcome_note = COALESCE($10, outcome_note), \
         resolver_id = COALESCE($11, resolver_id), \
         resolved_at = CASE WHEN $2 = $14 THEN $3 ELSE resolved_at END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(c.state)
    .bind(at)
    .bind(c.handler_id)
    .bind(c.return_reason.map(|r| r.0))
    .bind(c.return_reason.map(|r| r.1))
    .bind(c.review.map(|r| r.0))
    .bind(c.review.map(|r| r.1))
    .bind(c.outcome.map(|o| o.0))
    .bind(c.outcome.map(|o| o.1))
    .bind(c.outcome.map(|o| o.2))
    .bind(TaskState::Accepted)
    .bind(TaskState::Returned)
    .bind(TaskState::Resolved)
    .execute(conn)
    .await?;
    Ok(())
}

/// The queue's WHERE clause over `tasks t`, minus the caller's reach, the state and overdue filters and the
/// cursor: `mine` ($1) and the unit filter ($2).
const QUEUE_FILTERS: &str = "($1 = '' OR t.handler_id = $1) AND ($2 = '' OR t.unit_code = $2)";

/// The sort key, ascending: overdue first, then the missed deadline's due time, then the oldest dispatch.
const QUEUE_SORT_KEY: &str = "(NOT t.overdue, COALESCE(t.due_at, 'infinity'::timestamptz), t.dispatched_at, t.id)";

/// One page of the queue within the reach, after the cursor.
pub async fn queue_page(
    conn: &mut PgConnection,
    reach: &ScopeSet,
    q: &Queue,
    mine: &str,
    after: Option<&After>,
) -> sqlx::Result<Vec<Task>> {
    let states: Vec<TaskState> = q.state.map_or_else(|| OPEN.to_vec(), |s| vec![s]);
    let reach = reach.sql(&crate::scope::QUEUE, 10);
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t JOIN cases c ON c.id = t.case_id \
         WHERE t.state = ANY($3::text[]) AND {QUEUE_FILTERS} AND {reach} AND (NOT $4 OR t.overdue) \
         AND ($5::bool IS NULL OR {QUEUE_SORT_KEY} > ($5, COALESCE($6, 'infinity'::timestamptz), $7, $8)) \
         ORDER BY {QUEUE_SORT_KEY} LIMIT $9"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(mine)
        .bind(&q.unit_code)
        .bind(states)
        .bind(q.overdue_only)
        .bind(after.map(|a| a.on_time))
        .bind(after.and_then(|a| a.due))
        .bind(after.map(|a| a.dispatched))
        .bind(after.map(|a| a.id))
        .bind(q.limit);
    reach.bind(query).fetch_all(conn).await
}

/// Open tasks per state within the reach, `mine` and the unit filter, and how many of them are overdue.
pub async fn queue_counts(
    conn: &mut PgConnection,
    reach: &ScopeSet,
    q: &Queue,
    mine: &str,
) -> sqlx::Result<(Vec<(TaskState, u64)>, u64)> {
    let reach = reach.sql(&crate::scope::QUEUE, 4);
    let sql = format!(
        "SELECT t.state, count(*), count(*) FILTER (WHERE t.overdue) FROM tasks t \
         WHERE t.state = ANY($3::text[]) AND {QUEUE_FILTERS} AND {reach} GROUP BY t.state"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(mine).bind(&q.unit_code).bind(OPEN);
    let rows: Vec<(TaskState, i64, i64)> = reach.bind(query).fetch_all(conn).await?;
    let count = |s: TaskState| rows.iter().find(|r| r.0 == s).map_or(0, |r| r.1.unsigned_abs());
    let overdue = rows.iter().map(|r| r.2.unsigned_abs()).sum();
    Ok((OPEN.iter().map(|s| (*s, count(*s))).collect(), overdue))
}
