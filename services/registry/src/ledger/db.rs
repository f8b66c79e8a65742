//! The ledger's and directives' SQL: ledger cases and the per-node counters, nodes joined to their counts,
//! directives, their recipients and status totals. Plain functions over a connection or pool; every state and
//! class is bound as a value, never written into the SQL.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{
    CaseState, Delta, Directive, KindClass, LedgerCase, LedgerNode, NewDirective, Recipient, RecipientStatus, Totals,
};
use crate::grids::domain::{GRID_LEVEL, GridKind, MICRO_GRID_LEVEL};

/// A ledger case, locked for its move.
pub async fn lock_case(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Option<LedgerCase>> {
    sqlx::query_as("SELECT kind_class, nodes, state, overdue, shard FROM ledger_cases WHERE case_id = $1 FOR UPDATE")
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

pub async fn set_case(conn: &mut PgConnection, case_id: CaseId, state: CaseState, overdue: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE ledger_cases SET state = $2, overdue = $3, updated_at = now() WHERE case_id = $1")
        .bind(case_id)
        .bind(state)
        .bind(overdue)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds the delta to the counters of every node on a case's path, in the case's shard.
pub async fn add_to_counts(conn: &mut PgConnection, case: &LedgerCase, d: Delta) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ledger_counts SET open_count = open_count + $3, overdue_count = overdue_count + $4, \
         closed_count = closed_count + $5 WHERE kind_class = $2 AND code = ANY($1) AND shard = $6",
    )
    .bind(&case.nodes)
    .bind(case.kind_class)
    .bind(d.open)
    .bind(d.overdue)
    .bind(d.closed)
    .bind(case.shard)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts a 督办 card (yellow or red) at every node of the case's path, in the case's shard.
pub async fn add_card(conn: &mut PgConnection, case: &LedgerCase, red: bool) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ledger_counts SET yellow_count = yellow_count + (NOT $3)::int, red_count = red_count + $3::int \
         WHERE kind_class = $2 AND code = ANY($1) AND shard = $4",
    )
    .bind(&case.nodes)
    .bind(case.kind_class)
    .bind(red)
    .bind(case.shard)
    .execute(conn)
    .await?;
    Ok(())
}

/// A newly registered case, open.
pub struct NewCase<'a> {
    pub case_id: CaseId,
    pub kind: &'a str,
    pub class: KindClass,
    pub village_code: &'a str,
    pub grid_code: &'a str,
    pub nodes: &'a [String],
    pub registered_at: DateTime<Utc>,
    /// The counters' shard the case counts in for good: its event partition.
    pub shard: i16,
}

/// Puts the case in the ledger and counts it open at every node on its path (in its shard), in one statement;
/// false when the case was in the ledger already (then nothing is counted again).
pub async fn open_case(conn: &mut PgConnection, c: &NewCase<'_>) -> sqlx::Result<bool> {
    let counted = sqlx::query(
        "WITH inserted AS ( \
           INSERT INTO ledger_cases (case_id, kind, kind_class, village_code, grid_code, nodes, state, \
                                     registered_at, updated_at, shard) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9) \
           ON CONFLICT (case_id) DO NOTHING RETURNING nodes, kind_class, shard) \
         INSERT INTO ledger_counts (code, kind_class, shard, open_count) \
         SELECT unnest(i.nodes), i.kind_class, i.shard, 1 FROM inserted i \
         ON CONFLICT (code, kind_class, shard) DO UPDATE SET open_count = ledger_counts.open_count + 1",
    )
    .bind(c.case_id)
    .bind(c.kind)
    .bind(c.class)
    .bind(c.village_code)
    .bind(c.grid_code)
    .bind(c.nodes)
    .bind(CaseState::Open)
    .bind(c.registered_at)
    .bind(c.shard)
    .execute(conn)
    .await?
    .rows_affected();
    // Every case has at least one node on its path (the caller sees to it), so a case put in counts somewhere.
    Ok(counted > 0)
}

/// One node's counts of one class, summed over its shards (an index range of at most one row per partition;
/// no rows sum to NULL, which the caller reads as 0).
const SHARDS_SUMMED: &str = "SELECT sum(open_count)::bigint AS open_count, sum(overdue_count)::bigint AS overdue_count, \
    sum(closed_count)::bigint AS closed_count, sum(yellow_count)::bigint AS yellow_count, \
    sum(red_count)::bigint AS red_count FROM ledger_counts WHERE code = n.code";

/// `nodes` (code, name, level) joined to both classes' counts of each node; `$1` and `$2` bind the classes.
fn with_counts(nodes: &str) -> String {
    format!(
        "WITH nodes AS ({nodes}) SELECT n.code, n.name, n.level, \
        coalesce(r.open_count, 0) AS risk_open, coalesce(r.overdue_count, 0) AS risk_overdue, \
        coalesce(r.closed_count, 0) AS risk_closed, coalesce(c.open_count, 0) AS case_open, \
        coalesce(c.overdue_count, 0) AS case_overdue, coalesce(c.closed_count, 0) AS case_closed, \
        coalesce(r.yellow_count, 0) AS risk_yellow, coalesce(r.red_count, 0) AS risk_red, \
        coalesce(c.yellow_count, 0) AS case_yellow, coalesce(c.red_count, 0) AS case_red \
        FROM nodes n \
        CROSS JOIN LATERAL ({SHARDS_SUMMED} AND kind_class = $1) r \
        CROSS JOIN LATERAL ({SHARDS_SUMMED} AND kind_class = $2) c ORDER BY n.code"
    )
}

/// A grid's level as a node, from its kind (`$k` binds [`GridKind::Grid`]).
fn grid_level(k: u8) -> String {
    format!("CASE g.kind WHEN ${k} THEN {GRID_LEVEL} ELSE {MICRO_GRID_LEVEL} END")
}

/// A division or grid with its counts.
pub async fn node(pool: &PgPool, code: &str) -> sqlx::Result<Option<LedgerNode>> {
    let nodes = format!(
        "SELECT code, name, level::int AS level FROM divisions WHERE code = $3 \
         UNION ALL SELECT g.code, g.name, {} FROM grids g WHERE g.code = $3",
        grid_level(4)
    );
    sqlx::query_as(sqlx::AssertSqlSafe(with_counts(&nodes)))
        .bind(KindClass::Risk)
        .bind(KindClass::Case)
        .bind(code)
        .bind(GridKind::Grid)
        .fetch_optional(pool)
        .await
}

/// A page of the node's children with their counts, in code order after `after`: child divisions down to the
/// village, then a village's grids, then a grid's micro-grids.
pub async fn children(pool: &PgPool, parent: &LedgerNode, after: &str, limit: i64) -> sqlx::Result<Vec<LedgerNode>> {
    let nodes = match parent.level {
        ..=4 => "SELECT code, name, level::int AS level FROM divisions \
                 WHERE parent_code = $3 AND retired_at IS NULL AND code > $4 ORDER BY code LIMIT $5"
            .to_owned(),
        5 => format!(
            "SELECT g.code, g.name, {} AS level FROM grids g WHERE g.village_code = $3 \
             AND g.kind = $6 AND g.retired_at IS NULL AND g.code > $4 ORDER BY g.code LIMIT $5",
            grid_level(6)
        ),
        _ => format!(
            "SELECT g.code, g.name, {} AS level FROM grids g WHERE g.parent_grid_code = $3 \
             AND g.retired_at IS NULL AND g.code > $4 ORDER BY g.code LIMIT $5",
            grid_level(6)
        ),
    };
    let sql = with_counts(&nodes);
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(KindClass::Risk)
        .bind(KindClass::Case)
        .bind(&parent.code)
        .bind(after)
        .bind(limit);
    // Division children have no grid kind to bind.
    let query = if parent.level <= 4 { query } else { query.bind(GridKind::Grid) };
    query.fetch_all(pool).await
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

pub async fn insert_directive(conn: &mut PgConnection, id: Uuid, new: &NewDirective<'_>) -> sqlx::Result<Directive> {
    sqlx::query_as(
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
    .fetch_one(conn)
    .await
}

/// Writes the recipients of a directive; how many there are.
pub async fn insert_recipients(conn: &mut PgConnection, id: Uuid, target: &str) -> sqlx::Result<u64> {
    Ok(sqlx::query(INSERT_RECIPIENTS).bind(id).bind(target).execute(conn).await?.rows_affected())
}

/// pending → acknowledged; None when the recipient is missing or not pending.
pub async fn acknowledge(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    center: &str,
    actor: &str,
) -> sqlx::Result<Option<Recipient>> {
    let sql = format!(
        "UPDATE directive_recipients r SET status = $4, acknowledged_at = now(), acknowledged_by = $3 \
         FROM divisions d \
         WHERE d.code = r.center_code AND r.directive_id = $1 AND r.center_code = $2 AND r.status = $5 \
         RETURNING {RECIPIENT}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(center)
        .bind(actor)
        .bind(RecipientStatus::Acknowledged)
        .bind(RecipientStatus::Pending)
        .fetch_optional(conn)
        .await
}

/// acknowledged → answered with the report; None when the recipient is missing or not acknowledged.
pub async fn answer(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    center: &str,
    report: &str,
    actor: &str,
) -> sqlx::Result<Option<Recipient>> {
    let sql = format!(
        "UPDATE directive_recipients r SET status = $5, answered_at = now(), report = $3, answered_by = $4 \
         FROM divisions d \
         WHERE d.code = r.center_code AND r.directive_id = $1 AND r.center_code = $2 \
         AND r.status = $6 RETURNING {RECIPIENT}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(center)
        .bind(report)
        .bind(actor)
        .bind(RecipientStatus::Answered)
        .bind(RecipientStatus::Acknowledged)
        .fetch_optional(conn)
        .await
}

pub async fn recipient_status(pool: &PgPool, id: Uuid, center: &str) -> sqlx::Result<Option<RecipientStatus>> {
    sqlx::query_scalar("SELECT status FROM directive_recipients WHERE directive_id = $1 AND center_code = $2")
        .bind(id)
        .bind(center)
        .fetch_optional(pool)
        .await
}

pub async fn directive(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Directive>> {
    sqlx::query_as(
        "SELECT id, issuer_center_code, target_code, title, body, due_at, issued_at FROM directives WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Whether a recipient center of directive `id` lies under one of the code patterns.
pub async fn has_recipient_like(pool: &PgPool, id: Uuid, patterns: &[String]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM directive_recipients WHERE directive_id = $1 AND center_code LIKE ANY ($2))",
    )
    .bind(id)
    .bind(patterns)
    .fetch_one(pool)
    .await
}

/// Status totals per child of the directive's target; late counts what is not answered after `due_at`.
pub async fn branch_totals(pool: &PgPool, id: Uuid, due_at: DateTime<Utc>) -> sqlx::Result<Vec<Totals>> {
    sqlx::query_as(
        "SELECT r.branch_code AS code, coalesce(d.name, '') AS name, count(*) AS recipients, \
         count(*) FILTER (WHERE r.status = $3) AS pending, \
         count(*) FILTER (WHERE r.status = $4) AS acknowledged, \
         count(*) FILTER (WHERE r.status = $5) AS answered, \
         count(*) FILTER (WHERE r.status <> $5 AND $2 < now()) AS late \
         FROM directive_recipients r LEFT JOIN divisions d ON d.code = r.branch_code \
         WHERE r.directive_id = $1 GROUP BY r.branch_code, d.name ORDER BY r.branch_code",
    )
    .bind(id)
    .bind(due_at)
    .bind(RecipientStatus::Pending)
    .bind(RecipientStatus::Acknowledged)
    .bind(RecipientStatus::Answered)
    .fetch_all(pool)
    .await
}

/// A page of recipients in center-code order after `after`, optionally in one status.
pub async fn recipients(
    pool: &PgPool,
    id: Uuid,
    status: Option<RecipientStatus>,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<Recipient>> {
    let sql = format!(
        "SELECT {RECIPIENT} FROM directive_recipients r JOIN divisions d ON d.code = r.center_code \
         WHERE r.directive_id = $1 AND ($2::text IS NULL OR r.status = $2) AND r.center_code > $3 \
         ORDER BY r.center_code LIMIT $4"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(status).bind(after).bind(limit).fetch_all(pool).await
}
