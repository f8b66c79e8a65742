//! 工作指令 directives: a center instructs a subtree, and every village center in it acknowledges, then reports.
//!
//! Recipients are the village-level centers (村/社区综治中心) below the target, or the target itself when it
//! is a village: they are the leaf centers that act on a directive (grids have workers, not centers). A
//! village without a center receives nothing; its township center remains responsible for it.

use chrono::{DateTime, Utc};
use kit::FieldError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Error, Result};

kit::code_enum! {
    pub enum RecipientStatus {
        Pending = "pending",
        Acknowledged = "acknowledged",
        Answered = "answered",
    }
}

pub struct NewDirective<'a> {
    /// The signed-in caller who issues it (see `kit::auth::Principal::actor`).
    pub issued_by: &'a str,
    pub issuer: &'a str,
    pub target: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectiveRow {
    pub id: Uuid,
    pub issuer_center_code: String,
    pub target_code: String,
    pub title: String,
    pub body: String,
    pub due_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecipientRow {
    pub center_code: String,
    pub name: String,
    pub status: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub report: Option<String>,
}

/// Status counts of the recipients under one child of the target (or of all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Totals {
    pub code: String,
    pub name: String,
    pub recipients: i64,
    pub pending: i64,
    pub acknowledged: i64,
    pub answered: i64,
    pub late: i64,
}

/// Every village center below `$2` (or `$2` itself when it is a village), with the child of `$2` it lies under,
/// written as recipients of directive `$1` in one statement however large the subtree.
const INSERT_RECIPIENTS: &str = "WITH RECURSIVE sub AS ( \
        SELECT d.code, d.level, d.code AS branch FROM divisions d \
        WHERE d.parent_code = $2 AND d.retired_at IS NULL \
      UNION ALL \
        SELECT d.code, d.level, sub.branch FROM divisions d JOIN sub ON d.parent_code = sub.code \
        WHERE d.retired_at IS NULL AND sub.level < 5 \
    ), leaves AS ( \
        SELECT code, branch FROM sub WHERE level = 5 \
      UNION ALL \
        SELECT code, code FROM divisions WHERE code = $2 AND level = 5 \
    ) \
    INSERT INTO directive_recipients (directive_id, center_code, branch_code) \
    SELECT $1, l.code, l.branch FROM leaves l JOIN centers c ON c.code = l.code";

const RECIPIENT: &str = "r.center_code, d.name, r.status, r.acknowledged_at, r.answered_at, r.report";

/// Issues the directive and its recipients in one transaction. The issuer must be a center at or above the
/// target, and the subtree must hold at least one village center.
pub async fn issue(pool: &PgPool, new: &NewDirective<'_>) -> Result<(DirectiveRow, u64)> {
    let mut tx = pool.begin().await?;
    if !crate::db::is_center(&mut tx, new.issuer).await? {
        return Err(FieldError::new("issuer_center_code", "is not a center").into());
    }
    let path = crate::db::path_up(&mut tx, new.target).await?;
    if path.is_empty() {
        return Err(Error::NotFound(format!("division {}", new.target)));
    }
    if !path.iter().any(|n| n.code == new.issuer) {
        return Err(FieldError::new("target_code", "is not at or below the issuer's center").into());
    }
    let id = Uuid::new_v4();
    let row: DirectiveRow = sqlx::query_as(
        "INSERT INTO directives (id, issuer_center_code, target_code, title, body, due_at, issued_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING id, issuer_center_code, target_code, title, body, due_at, issued_at",
    )
    .bind(id)
    .bind(new.issuer)
    .bind(new.target)
    .bind(new.title)
    .bind(new.body)
    .bind(new.due_at)
    .bind(new.issued_by)
    .fetch_one(&mut *tx)
    .await?;
    let recipients = sqlx::query(INSERT_RECIPIENTS).bind(id).bind(new.target).execute(&mut *tx).await?.rows_affected();
    if recipients == 0 {
        return Err(Error::FailedPrecondition(format!("no village center below {}", new.target)));
    }
    tx.commit().await?;
    tracing::info!(directive_id = %id, issuer = new.issuer, target = new.target, recipients, "directive issued");
    Ok((row, recipients))
}

/// pending → acknowledged, by the signed-in `actor`.
pub async fn acknowledge(pool: &PgPool, id: Uuid, center: &str, actor: &str) -> Result<RecipientRow> {
    let sql = format!(
        "UPDATE directive_recipients r SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = $3 \
         FROM divisions d \
         WHERE d.code = r.center_code AND r.directive_id = $1 AND r.center_code = $2 AND r.status = 'pending' \
         RETURNING {RECIPIENT}"
    );
    let row = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(center).bind(actor).fetch_optional(pool).await?;
    match row {
        Some(r) => Ok(r),
        None => Err(refusal(pool, id, center, RecipientStatus::Pending).await),
    }
}

/// acknowledged → answered, with the report, by the signed-in `actor`.
pub async fn answer(pool: &PgPool, id: Uuid, center: &str, report: &str, actor: &str) -> Result<RecipientRow> {
    let sql = format!(
        "UPDATE directive_recipients r SET status = 'answered', answered_at = now(), report = $3, answered_by = $4 \
         FROM divisions d \
         WHERE d.code = r.center_code AND r.directive_id = $1 AND r.center_code = $2 \
         AND r.status = 'acknowledged' RETURNING {RECIPIENT}"
    );
    let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(center)
        .bind(report)
        .bind(actor)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(r) => Ok(r),
        None => Err(refusal(pool, id, center, RecipientStatus::Acknowledged).await),
    }
}

/// Why a conditional update matched nothing: an unknown directive or recipient, or a recipient in another status
/// than the move needs. The update itself is the guard, so two racing calls cannot both succeed.
async fn refusal(pool: &PgPool, id: Uuid, center: &str, needed: RecipientStatus) -> Error {
    let status: sqlx::Result<Option<String>> =
        sqlx::query_scalar("SELECT status FROM directive_recipients WHERE directive_id = $1 AND center_code = $2")
            .bind(id)
            .bind(center)
            .fetch_optional(pool)
            .await;
    match status {
        Err(e) => e.into(),
        Ok(Some(s)) => Error::FailedPrecondition(format!("the recipient is {s}; this step needs it {needed}")),
        Ok(None) => match directive(pool, id).await {
            Ok(_) => Error::NotFound(format!("recipient {center} of directive {id}")),
            Err(e) => e,
        },
    }
}

pub async fn directive(pool: &PgPool, id: Uuid) -> Result<DirectiveRow> {
    sqlx::query_as(
        "SELECT id, issuer_center_code, target_code, title, body, due_at, issued_at FROM directives WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("directive {id}")))
}

/// Whether a recipient center of directive `id` lies under one of the code prefixes (`None`: anywhere).
pub async fn has_recipient_under(pool: &PgPool, id: Uuid, prefixes: Option<&[String]>) -> Result<bool> {
    let Some(prefixes) = prefixes else { return Ok(true) };
    if prefixes.is_empty() {
        return Ok(false);
    }
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM directive_recipients WHERE directive_id = $1 AND center_code LIKE ANY ($2))",
    )
    .bind(id)
    .bind(prefixes)
    .fetch_one(pool)
    .await?)
}

/// The directive, its overall totals, and totals per child of the target.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<(DirectiveRow, Totals, Vec<Totals>)> {
    let d = directive(pool, id).await?;
    let branches: Vec<Totals> = sqlx::query_as(
        "SELECT r.branch_code AS code, coalesce(d.name, '') AS name, count(*) AS recipients, \
         count(*) FILTER (WHERE r.status = 'pending') AS pending, \
         count(*) FILTER (WHERE r.status = 'acknowledged') AS acknowledged, \
         count(*) FILTER (WHERE r.status = 'answered') AS answered, \
         count(*) FILTER (WHERE r.status <> 'answered' AND $2 < now()) AS late \
         FROM directive_recipients r LEFT JOIN divisions d ON d.code = r.branch_code \
         WHERE r.directive_id = $1 GROUP BY r.branch_code, d.name ORDER BY r.branch_code",
    )
    .bind(id)
    .bind(d.due_at)
    .fetch_all(pool)
    .await?;
    let mut all = Totals { code: d.target_code.clone(), ..Totals::default() };
    for b in &branches {
        all.recipients += b.recipients;
        all.pending += b.pending;
        all.acknowledged += b.acknowledged;
        all.answered += b.answered;
        all.late += b.late;
    }
    Ok((d, all, branches))
}

/// A page of recipients in center-code order after `after`, optionally in one status.
pub async fn recipients(
    pool: &PgPool,
    id: Uuid,
    status: Option<RecipientStatus>,
    after: &str,
    limit: i64,
) -> Result<Vec<RecipientRow>> {
    let target = directive(pool, id).await?.target_code;
    // Recipients are village centers, so a token is a 12-digit code below the target (or the target itself,
    // when the target is a village).
    let after = after.trim();
    let issued = kit::division::is_code(after) && after.starts_with(crate::domain::child_prefix(&target));
    if !after.is_empty() && !issued {
        return Err(FieldError::new("page_token", "is not a token this service issued").into());
    }
    let sql = format!(
        "SELECT {RECIPIENT} FROM directive_recipients r JOIN divisions d ON d.code = r.center_code \
         WHERE r.directive_id = $1 AND ($2 = '' OR r.status = $2) AND r.center_code > $3 \
         ORDER BY r.center_code LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(status.map_or("", RecipientStatus::as_str))
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}
