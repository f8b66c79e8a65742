//! The co-handlers of 吹哨报到: summoned to a lead task, moved one state at a time under their row lock.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::joint::{CoHandler, CoState, UnitRef};

const CO_COLUMNS: &str = "id, case_id, lead_task_id, unit_kind, unit_code, unit_name, state, reason, summoned_by, \
    summoned_at, reported_by, reported_at, contribution, contributed_at, released_by, released_at, release_reason";

/// A unit to summon, with the words of the summons.
pub struct Summon<'a> {
    pub case_id: CaseId,
    pub task_id: Uuid,
    pub unit: &'a UnitRef,
    pub name: &'a str,
    pub reason: &'a str,
    pub by: &'a str,
    pub at: DateTime<Utc>,
}

/// Summons a unit to the task; None when it was summoned to this task before (the unique key decides, so two
/// dispatchers naming the same unit at once summon it once).
pub async fn summon(conn: &mut PgConnection, s: &Summon<'_>) -> sqlx::Result<Option<CoHandler>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO co_handlers (id, case_id, lead_task_id, unit_kind, unit_code, unit_name, state, reason, \
           summoned_by, summoned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT ON CONSTRAINT co_handlers_once DO NOTHING RETURNING {CO_COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(s.case_id)
    .bind(s.task_id)
    .bind(s.unit.kind)
    .bind(&s.unit.code)
    .bind(s.name)
    .bind(CoState::Summoned)
    .bind(s.reason)
    .bind(s.by)
    .bind(s.at)
    .fetch_optional(conn)
    .await
}

/// One co-handler, locked when `lock`.
pub async fn co_handler(conn: &mut PgConnection, id: Uuid, lock: bool) -> sqlx::Result<Option<CoHandler>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CO_COLUMNS} FROM co_handlers WHERE id = $1{lock}")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The task's co-handlers, in summoning order.
pub async fn of_task(conn: &mut PgConnection, task_id: Uuid) -> sqlx::Result<Vec<CoHandler>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CO_COLUMNS} FROM co_handlers WHERE lead_task_id = $1 ORDER BY seq"
    )))
    .bind(task_id)
    .fetch_all(conn)
    .await
}

/// What a move writes besides the state.
pub enum CoChange<'a> {
    ReportedIn { by: &'a str },
    Contributed { note: &'a str },
    Released { by: &'a str, reason: &'a str },
}

/// Moves a locked co-handler to `to`, recording who and when; returns it as it now is.
pub async fn apply(conn: &mut PgConnection, id: Uuid, to: CoState, change: &CoChange<'_>) -> sqlx::Result<CoHandler> {
    let (set, a, b) = match change {
        CoChange::ReportedIn { by } => ("reported_by = $3, reported_at = now()", *by, ""),
        // A later contribution adds to the earlier ones: the record keeps every word.
        CoChange::Contributed { note } => (
            "contribution = CASE WHEN contribution = '' THEN $3 ELSE contribution || E'\\n' || $3 END, \
             contributed_at = now()",
            *note,
            "",
        ),
        CoChange::Released { by, reason } => {
            ("released_by = $3, release_reason = $4, released_at = now()", *by, *reason)
        }
    };
    // $4 is bound for every move (sqlx sends its type, so an unused one is fine) to keep one statement shape.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE co_handlers SET state = $2, {set} WHERE id = $1 RETURNING {CO_COLUMNS}"
    )))
    .bind(id)
    .bind(to)
    .bind(a)
    .bind(b)
    .fetch_one(conn)
    .await
}
