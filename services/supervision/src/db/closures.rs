//! The closures of a case's rounds: 核查 (VerifyCase) writes one, 回访 (FollowUp) completes it.

use kit::ids::CaseId;
use sqlx::PgConnection;

use crate::domain::{Closure, ClosureReason, ClosureState, FollowUp};

/// The columns of a [`Closure`]; the codes stored as '' until known read as none.
const CLOSURE_COLUMNS: &str = "case_id, round, state, NULLIF(closure_reason, '') AS closure_reason, task_id, \
    resolver_id, handler_id, category_code, case_no, verifier_id, note, NULLIF(satisfaction, '') AS satisfaction, \
    closed_at";

/// The closure of the case's round, if it was verified.
pub async fn closure(conn: &mut PgConnection, case_id: CaseId, round: i32) -> sqlx::Result<Option<Closure>> {
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
