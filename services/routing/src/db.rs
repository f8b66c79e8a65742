//! Routing's queries: plain functions over a connection or transaction, returning the domain's aggregates (a
//! row decodes straight into [`Case`] or [`Task`]). States, kinds and codes are bound as values, never spelled
//! as SQL literals.

use chrono::{DateTime, Utc};
use kit::ids::{CaseId, UnitCode};
use kit::vocab::Urgency;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Case, OPEN, Rule, TaskState, Unit, UnitKind};

pub mod joint;
mod tasks;
pub use tasks::*;

/// Task columns qualified for a join with `cases c` (the case number lives on the case). A return reason or
/// outcome not given yet is stored empty and read as None.
pub(crate) const TASK_COLUMNS: &str = "t.id, t.case_id, c.case_no, t.round, t.attempt, t.slip_no, t.unit_kind, t.unit_code, \
    t.unit_name, t.rule_id, t.state, t.category_code, NULLIF(t.return_reason_code, '') AS return_reason_code, \
    t.return_reason, NULLIF(t.outcome, '') AS outcome, t.outcome_note, t.handler_id, t.resolver_id, t.dispatched_at, t.accepted_at, t.resolved_at, c.area_path, \
    c.grid_code, t.overdue, t.due_at, t.overdue_stage, c.holding_center, t.center_code, t.via, t.dispatch_reason, \
    t.recall_reason";

/// A case's columns, in the order [`Case`] decodes them.
const CASE_COLUMNS: &str = "id, case_no, category_code, urgency, village_code, area_path, grid_code, center_code, \
    round, registered_at, holding_center, closed";

/// Records a case from case.registered; false when routing already knew it (nothing written).
pub async fn insert_case(conn: &mut PgConnection, c: &Case) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO cases (id, case_no, category_code, urgency, village_code, area_path, grid_code, center_code, \
         round, registered_at, holding_center) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(c.id)
    .bind(&c.case_no)
    .bind(&c.category_code)
    .bind(c.urgency)
    .bind(&c.village_code)
    .bind(&c.area_path)
    .bind(&c.grid_code)
    .bind(&c.center_code)
    .bind(c.round)
    .bind(c.registered_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The case, locked for the rest of the transaction so its dispatches happen one after another.
pub async fn lock_case(conn: &mut PgConnection, id: CaseId) -> sqlx::Result<Option<Case>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The case as it is now, unlocked: what a use case decides on before it opens its transaction.
pub async fn case(conn: &mut PgConnection, id: CaseId) -> sqlx::Result<Option<Case>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// case.closed sets it, case.reopened clears it.
pub async fn set_closed(conn: &mut PgConnection, id: CaseId, closed: bool) -> sqlx::Result<bool> {
    let n = sqlx::query("UPDATE cases SET closed = $2 WHERE id = $1").bind(id).bind(closed).execute(conn).await?;
    Ok(n.rows_affected() == 1)
}

pub async fn set_holding_center(conn: &mut PgConnection, id: CaseId, center: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET holding_center = $2 WHERE id = $1").bind(id).bind(center).execute(conn).await?;
    Ok(())
}

/// The case's live task (dispatched, accepted or returned), locked; and the state of its latest task.
pub async fn lock_live(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<(Option<Uuid>, Option<TaskState>)> {
    let live: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM tasks WHERE case_id = $1 AND state = ANY($2) FOR UPDATE")
            .bind(case_id)
            .bind(OPEN)
            .fetch_optional(&mut *conn)
            .await?;
    let latest: Option<TaskState> =
        sqlx::query_scalar("SELECT state FROM tasks WHERE case_id = $1 ORDER BY attempt DESC LIMIT 1")
            .bind(case_id)
            .fetch_optional(conn)
            .await?;
    Ok((live, latest))
}

/// 召回: the task is superseded, with who took it back and why.
pub async fn recall(conn: &mut PgConnection, id: Uuid, by: &str, reason: &str, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tasks SET state = $2, updated_at = $5, recalled_by = $3, recall_reason = $4, recalled_at = $5 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(TaskState::Superseded)
    .bind(by)
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One hop of a case between centers.
pub struct NewHop<'a> {
    pub case_id: CaseId,
    pub up: bool,
    pub from: &'a str,
    pub to: &'a str,
    pub skip_level: bool,
    pub reason: &'a str,
    pub actor: &'a str,
    pub superseded: Option<Uuid>,
    pub at: DateTime<Utc>,
}

pub async fn insert_hop(conn: &mut PgConnection, h: &NewHop<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO hops (case_id, direction, from_center, to_center, skip_level, reason, actor, superseded_task_id, at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
    )
    .bind(h.case_id)
    .bind(if h.up { "up" } else { "down" })
    .bind(h.from)
    .bind(h.to)
    .bind(h.skip_level)
    .bind(h.reason)
    .bind(h.actor)
    .bind(h.superseded)
    .bind(h.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The category prefixes marked urgent: those may skip levels going up (越级).
pub async fn urgent_categories(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT category_prefix FROM urgent_categories").fetch_all(conn).await
}

/// What changes when a rule is put: the number of rules and the newest update. The in-memory table is read
/// again when this differs from what it was read at.
pub async fn rules_version(conn: &mut PgConnection) -> sqlx::Result<(i64, Option<DateTime<Utc>>)> {
    sqlx::query_as("SELECT count(*), max(updated_at) FROM rules").fetch_one(conn).await
}

pub async fn set_round(conn: &mut PgConnection, case_id: CaseId, round: i32) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET round = $2 WHERE id = $1").bind(case_id).bind(round).execute(conn).await?;
    Ok(())
}

/// Ends every task of the case still open, when a new round makes them obsolete.
pub async fn supersede_open(conn: &mut PgConnection, case_id: CaseId, at: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(sqlx::query("UPDATE tasks SET state = $3, updated_at = $2 WHERE case_id = $1 AND state = ANY($4)")
        .bind(case_id)
        .bind(at)
        .bind(TaskState::Superseded)
        .bind(OPEN)
        .execute(conn)
        .await?
        .rows_affected())
}

/// A rule as stored: its priority signed, its urgency empty when the rule matches every urgency.
#[derive(Debug, sqlx::FromRow)]
struct RuleRow {
    id: String,
    priority: i32,
    category_prefix: String,
    area_prefix: String,
    urgency: Option<Urgency>,
    unit_kind: UnitKind,
    unit_code: UnitCode,
    unit_name: String,
    fallback_kind: Option<UnitKind>,
    fallback_code: UnitCode,
    fallback_name: String,
    unit_center: String,
}

impl TryFrom<RuleRow> for Rule {
    type Error = anyhow::Error;

    fn try_from(r: RuleRow) -> anyhow::Result<Self> {
        Ok(Rule {
            priority: u32::try_from(r.priority)?,
            urgency: r.urgency,
            unit_kind: r.unit_kind,
            id: r.id,
            category_prefix: r.category_prefix,
            area_prefix: r.area_prefix,
            unit_code: r.unit_code,
            unit_name: r.unit_name,
            fallback: r.fallback_kind.map(|kind| Unit { kind, code: r.fallback_code, name: r.fallback_name }),
            unit_center: r.unit_center,
        })
    }
}

/// A rule's columns; an urgency stored empty (every urgency) reads as None.
const RULE_COLUMNS: &str = "id, priority, category_prefix, area_prefix, NULLIF(urgency, '') AS urgency, unit_kind, \
    unit_code, unit_name, NULLIF(fallback_kind, '') AS fallback_kind, fallback_code, fallback_name, unit_center";

/// Most preferred first, as [`crate::domain::route`] ranks them.
const RULE_ORDER: &str = "ORDER BY priority DESC, length(category_prefix) DESC, length(area_prefix) DESC, id";

/// The whole routing table, most preferred first. It is read whole: a deployment has hundreds of rules, and
/// choosing among them in one pure function keeps the choice testable.
pub async fn rules(conn: &mut PgConnection) -> anyhow::Result<Vec<Rule>> {
    let rows: Vec<RuleRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLUMNS} FROM rules {RULE_ORDER}")))
            .fetch_all(conn)
            .await?;
    rows.into_iter().map(Rule::try_from).collect()
}

/// The rules whose area lies under one of `prefixes` (significant division codes), or all of them; in the
/// order [`rules`] gives.
pub async fn rules_within(conn: &mut PgConnection, all: bool, prefixes: &[String]) -> anyhow::Result<Vec<Rule>> {
    let rows: Vec<RuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM rules \
         WHERE $1 OR EXISTS (SELECT 1 FROM unnest($2::text[]) p WHERE starts_with(area_prefix, p)) {RULE_ORDER}"
    )))
    .bind(all)
    .bind(prefixes)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Rule::try_from).collect()
}

/// The area prefix of the rule with this id, locked until the transaction ends; None for a new id.
pub async fn lock_rule_area(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT area_prefix FROM rules WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(conn).await
}

pub async fn put_rule(conn: &mut PgConnection, r: &Rule, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO rules (id, priority, category_prefix, area_prefix, urgency, unit_kind, unit_code, unit_name, \
         updated_at, fallback_kind, fallback_code, fallback_name, unit_center) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
         ON CONFLICT (id) DO UPDATE SET priority = $2, category_prefix = $3, area_prefix = $4, urgency = $5, \
         unit_kind = $6, unit_code = $7, unit_name = $8, updated_at = $9, fallback_kind = $10, fallback_code = $11, \
         fallback_name = $12, unit_center = $13",
    )
    .bind(&r.id)
    .bind(i32::try_from(r.priority).unwrap_or(i32::MAX))
    .bind(&r.category_prefix)
    .bind(&r.area_prefix)
    .bind(r.urgency.map_or("", Urgency::as_str))
    .bind(r.unit_kind)
    .bind(&r.unit_code)
    .bind(&r.unit_name)
    .bind(at)
    .bind(r.fallback.as_ref().map_or("", |f| f.kind.as_str()))
    .bind(r.fallback.as_ref().map_or("", |f| f.code.as_str()))
    .bind(r.fallback.as_ref().map_or("", |f| f.name.as_str()))
    .bind(&r.unit_center)
    .execute(conn)
    .await?;
    Ok(())
}
