//! The task projection: each case's tasks as routing's events told supervision, for verification to decide
//! on without asking routing. Events of one case arrive in order, but every update is still monotonic (a
//! final state is never left, a repeated dispatch resets nothing), so a replay or a stale repeat is harmless.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use sqlx::PgConnection;

use crate::domain::{Task, TaskState};

/// What case.dispatched says of a task.
pub struct Dispatch<'a> {
    pub case_id: CaseId,
    pub task_id: &'a str,
    pub unit_code: &'a str,
    pub unit_name: &'a str,
    /// The 《工作任务交办单》's number.
    pub slip_no: &'a str,
    pub attempt: i32,
    pub case_no: &'a str,
    pub category_code: &'a str,
    pub at: DateTime<Utc>,
}

/// Makes sure the task has a row, in the case's current round. Every task event calls this, so an event seen
/// before its dispatch is kept rather than lost. An event without a task id has nothing to record.
pub async fn ensure_task(conn: &mut PgConnection, case_id: CaseId, task_id: &str) -> sqlx::Result<()> {
    if task_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO tasks (task_id, case_id, unit_code, round) \
         VALUES ($1, $2, '', COALESCE((SELECT round FROM cases WHERE case_id = $2), 1)) ON CONFLICT DO NOTHING",
    )
    .bind(task_id)
    .bind(case_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Fills in what the dispatch says of the task, making its row if this is the first event of it seen, in one
/// statement. Only what is still unknown is written, never the state, so a dispatch seen again (redelivered, or
/// replayed) resets nothing.
pub async fn record_dispatch(conn: &mut PgConnection, d: &Dispatch<'_>) -> sqlx::Result<()> {
    if d.task_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO tasks (task_id, case_id, round, unit_code, attempt, case_no, category_code, dispatched_at, \
                            unit_name, slip_no) \
         VALUES ($1, $9, COALESCE((SELECT round FROM cases WHERE case_id = $9), 1), $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (task_id) DO UPDATE SET \
           unit_code = COALESCE(NULLIF(tasks.unit_code, ''), EXCLUDED.unit_code), \
           attempt = CASE WHEN tasks.attempt = 0 THEN EXCLUDED.attempt ELSE tasks.attempt END, \
           case_no = COALESCE(NULLIF(tasks.case_no, ''), EXCLUDED.case_no), \
           category_code = COALESCE(NULLIF(tasks.category_code, ''), EXCLUDED.category_code), \
           dispatched_at = COALESCE(tasks.dispatched_at, EXCLUDED.dispatched_at), \
           unit_name = COALESCE(NULLIF(tasks.unit_name, ''), EXCLUDED.unit_name), \
           slip_no = COALESCE(NULLIF(tasks.slip_no, ''), EXCLUDED.slip_no), updated_at = now()",
    )
    .bind(d.task_id)
    .bind(d.unit_code)
    .bind(d.attempt)
    .bind(d.case_no)
    .bind(d.category_code)
    .bind(d.at)
    .bind(d.unit_name)
    .bind(d.slip_no)
    .bind(d.case_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A later dispatch of the case ends its returned tasks: routing dispatches again only when it approves a
/// return (superseding the returned task) or when a round is reopened.
pub async fn supersede_returned(
    conn: &mut PgConnection,
    case_id: CaseId,
    task_id: &str,
    attempt: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tasks SET state = $4, updated_at = now() \
         WHERE case_id = $1 AND task_id <> $2 AND state = $5 AND attempt < $3",
    )
    .bind(case_id)
    .bind(task_id)
    .bind(attempt)
    .bind(TaskState::Superseded)
    .bind(TaskState::Returned)
    .execute(conn)
    .await?;
    Ok(())
}

/// A dispatcher's 召回 (by itself, before a re-dispatch, or by a hop between centers) ends one task: it is
/// superseded for good, whatever it was, unless it already reached a final state.
pub async fn supersede_task(conn: &mut PgConnection, case_id: CaseId, task_id: &str) -> sqlx::Result<()> {
    ensure_task(conn, case_id, task_id).await?;
    sqlx::query("UPDATE tasks SET state = $2, updated_at = now() WHERE task_id = $1 AND state <> ALL($3)")
        .bind(task_id)
        .bind(TaskState::Superseded)
        .bind(TaskState::FINAL)
        .execute(conn)
        .await?;
    Ok(())
}

/// 签收: a dispatched task becomes accepted by `handler`, unless a later move was already seen. Any other
/// state stays (a stale acceptance never moves a resolved or superseded task back), though a handler not yet
/// known is still recorded, since separation of duties needs every hand.
pub async fn accept_task(
    conn: &mut PgConnection,
    case_id: CaseId,
    task_id: &str,
    handler: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    ensure_task(conn, case_id, task_id).await?;
    sqlx::query(
        "UPDATE tasks SET \
           state = CASE WHEN state = $4 AND (moved_at IS NULL OR moved_at <= $3) THEN $5 ELSE state END, \
           moved_at = CASE WHEN state = $4 AND (moved_at IS NULL OR moved_at <= $3) THEN $3 ELSE moved_at END, \
           handler_id = COALESCE(NULLIF(handler_id, ''), $2), updated_at = now() WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(handler)
    .bind(at)
    .bind(TaskState::Dispatched)
    .bind(TaskState::Accepted)
    .execute(conn)
    .await?;
    Ok(())
}

/// 退单 (`returned` true) and a rejected return (false, back to the unit): the only moves between
/// `dispatched` and `returned`, each taken only from the state routing takes it from and only by an event not
/// older than the task's last move.
pub async fn set_returned(
    conn: &mut PgConnection,
    case_id: CaseId,
    task_id: &str,
    returned: bool,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    ensure_task(conn, case_id, task_id).await?;
    let (from, to) = if returned {
        (TaskState::Dispatched, TaskState::Returned)
    } else {
        (TaskState::Returned, TaskState::Dispatched)
    };
    sqlx::query(
        "UPDATE tasks SET state = $3, moved_at = $4, updated_at = now() \
         WHERE task_id = $1 AND state = $2 AND (moved_at IS NULL OR moved_at <= $4)",
    )
    .bind(task_id)
    .bind(from)
    .bind(to)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What case.resolved says of a task.
pub struct Resolution<'a> {
    pub case_id: CaseId,
    pub task_id: &'a str,
    pub resolved_by: &'a str,
    pub resolver_id: &'a str,
    pub outcome: &'a str,
    pub at: DateTime<Utc>,
}

/// 办结: the task is resolved for good. A task already resolved keeps its first resolution, and a superseded
/// one stays superseded (routing never resolves one).
pub async fn resolve_task(conn: &mut PgConnection, r: &Resolution<'_>) -> sqlx::Result<()> {
    ensure_task(conn, r.case_id, r.task_id).await?;
    sqlx::query(
        "UPDATE tasks SET state = $6, resolved_by = $2, resolver_id = $3, outcome = $4, resolved_at = $5, \
           moved_at = $5, updated_at = now() WHERE task_id = $1 AND state <> ALL($7)",
    )
    .bind(r.task_id)
    .bind(r.resolved_by)
    .bind(r.resolver_id)
    .bind(r.outcome)
    .bind(r.at)
    .bind(TaskState::Resolved)
    .bind(TaskState::FINAL)
    .execute(conn)
    .await?;
    Ok(())
}

/// A reopening into `round` supersedes the case's open tasks of earlier rounds, as routing does; the tasks
/// dispatched for `round` itself are left alone, so a reopening seen again cannot end them.
pub async fn supersede_open(conn: &mut PgConnection, case_id: CaseId, round: i32) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tasks SET state = $3, updated_at = now() WHERE case_id = $1 AND round < $2 AND state = ANY($4)",
    )
    .bind(case_id)
    .bind(round)
    .bind(TaskState::Superseded)
    .bind(TaskState::OPEN)
    .execute(conn)
    .await?;
    Ok(())
}

/// The case's tasks in dispatch order, oldest first.
pub async fn case_tasks(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<Task>> {
    sqlx::query_as(
        "SELECT task_id, state, attempt, round, unit_code, handler_id, resolved_by, resolver_id, outcome \
         FROM tasks WHERE case_id = $1 ORDER BY attempt, seq",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// The tasks of the case dispatched to one of `units`.
pub async fn tasks_of_units(conn: &mut PgConnection, case_id: CaseId, units: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT task_id FROM tasks WHERE case_id = $1 AND unit_code = ANY($2)")
        .bind(case_id)
        .bind(units)
        .fetch_all(conn)
        .await
}

/// The co-handler state routing's case.joint names for a unit let go.
const RELEASED: &str = "released";

/// A co-handler summoned by 吹哨报到, as case.joint told it.
pub struct CoHandlerSeen<'a> {
    pub co_id: &'a str,
    pub lead_task_id: &'a str,
    pub case_id: CaseId,
    pub unit_code: &'a str,
    pub unit_name: &'a str,
    pub state: &'a str,
    pub at: DateTime<Utc>,
}

/// Records the co-handler or its new state. Its moves only go forward (summoned → reported_in → contributed,
/// or → released), and one case's events arrive in order, so the latest event's state is the state.
pub async fn record_co_handler(conn: &mut PgConnection, c: &CoHandlerSeen<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO co_handlers (co_id, lead_task_id, case_id, unit_code, unit_name, state, summoned_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (co_id) DO UPDATE SET state = EXCLUDED.state",
    )
    .bind(c.co_id)
    .bind(c.lead_task_id)
    .bind(c.case_id)
    .bind(c.unit_code)
    .bind(c.unit_name)
    .bind(c.state)
    .bind(c.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The names (or codes) of the units summoned to a lead task and not released, in summoning order.
pub async fn co_units_of(conn: &mut PgConnection, lead_task_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT CASE WHEN unit_name = '' THEN unit_code ELSE unit_name END FROM co_handlers \
         WHERE lead_task_id = $1 AND state <> $2 ORDER BY seq",
    )
    .bind(lead_task_id)
    .bind(RELEASED)
    .fetch_all(conn)
    .await
}

/// Whether supervision has seen the task resolved (routing's case.resolved applied).
pub async fn task_resolved(conn: &mut PgConnection, task_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasks WHERE task_id = $1 AND state = 'resolved')")
        .bind(task_id)
        .fetch_one(conn)
        .await
}
