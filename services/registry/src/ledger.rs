//! The tree ledger (树形动态管理台账): open / overdue / closed counts per node, for risks and for other cases,
//! rolled up to the root. Each case event moves one `ledger_cases` row and adds the same delta to the counts of
//! every node on that case's path, set-wise, inside the consumer's transaction; reads touch only count rows.

use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::is_grid_code;
use crate::error::{Error, Result};

/// Risks (风险隐患) are counted apart from every other kind (dispute, demand, inquiry).
pub fn kind_class(kind: &str) -> &'static str {
    if kind.trim() == "risk" { "risk" } else { "case" }
}

/// What an event does to a case already in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Overdue,
    Close,
    Reopen,
}

/// A change to the three counters of every node on a case's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta {
    pub open: i64,
    pub overdue: i64,
    pub closed: i64,
}

/// The case's next (open, overdue) and the counters' delta, or None when the move changes nothing: an overdue
/// case missing a second deadline, a closed case closing again, an open case "reopening".
pub fn transition(open: bool, overdue: bool, m: Move) -> Option<(bool, bool, Delta)> {
    match (m, open, overdue) {
        (Move::Overdue, true, false) => Some((true, true, Delta { overdue: 1, ..Delta::default() })),
        (Move::Close, true, was) => Some((false, false, Delta { open: -1, overdue: -i64::from(was), closed: 1 })),
        // A reopened case starts a fresh open period, not yet overdue.
        (Move::Reopen, false, _) => Some((true, false, Delta { open: 1, closed: -1, ..Delta::default() })),
        _ => None,
    }
}

/// The nodes a case counts at, bottom up and without repeats: its micro-grid and grid (a micro-grid code
/// extends its grid's by three digits), its village, then the event's area path (village .. province).
pub fn path_nodes(grid: &str, village: &str, area_path: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(area_path.len() + 2);
    if is_grid_code(grid) {
        out.push(grid.to_owned());
        if grid.len() == 18 {
            out.push(grid[..15].to_owned());
        }
    }
    for code in std::iter::once(village).chain(area_path.iter().map(String::as_str)) {
        if !code.is_empty() && !out.iter().any(|c| c == code) {
            out.push(code.to_owned());
        }
    }
    out
}

/// What applying one event did, for the consumer's log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// Not a ledger event (dispatch, acceptance, follow-up ...).
    NotLedger,
    /// A move that changes nothing in the case's current state, or a repeated registration.
    NoChange,
    UnknownCase,
}

/// Applies one case event to the ledger inside the caller's transaction (the consumer's, which also holds the
/// inbox row; or a loader's batch).
pub async fn apply_event(conn: &mut PgConnection, event: &Envelope) -> anyhow::Result<Applied> {
    let m = match &event.body {
        Some(Body::CaseRegistered(r)) => return register(conn, event, r).await,
        Some(Body::DeadlineMissed(_)) => Move::Overdue,
        Some(Body::CaseClosed(_)) => Move::Close,
        Some(Body::CaseReopened(_)) => Move::Reopen,
        // Handling steps and outcomes that do not open, close or make a case overdue.
        Some(
            Body::CaseDispatched(_)
            | Body::CaseAccepted(_)
            | Body::CaseReturned(_)
            | Body::ReturnRejected(_)
            | Body::CaseResolved(_)
            | Body::CaseFollowedUp(_)
            | Body::SubsidyCredited(_),
        )
        | None => return Ok(Applied::NotLedger),
    };
    let Ok(case_id) = Uuid::parse_str(&event.case_id) else { return Ok(Applied::UnknownCase) };
    let row: Option<(String, Vec<String>, String, bool)> =
        sqlx::query_as("SELECT kind_class, nodes, state, overdue FROM ledger_cases WHERE case_id = $1 FOR UPDATE")
            .bind(case_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((class, nodes, state, overdue)) = row else { return Ok(Applied::UnknownCase) };
    let Some((open, overdue, d)) = transition(state == "open", overdue, m) else { return Ok(Applied::NoChange) };
    sqlx::query("UPDATE ledger_cases SET state = $2, overdue = $3, updated_at = now() WHERE case_id = $1")
        .bind(case_id)
        .bind(if open { "open" } else { "closed" })
        .bind(overdue)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE ledger_counts SET open_count = open_count + $3, overdue_count = overdue_count + $4, \
         closed_count = closed_count + $5 WHERE kind_class = $2 AND code = ANY($1)",
    )
    .bind(&nodes)
    .bind(&class)
    .bind(d.open)
    .bind(d.overdue)
    .bind(d.closed)
    .execute(&mut *conn)
    .await?;
    Ok(Applied::Counted)
}

async fn register(
    conn: &mut PgConnection,
    event: &Envelope,
    r: &proto::events::v1::CaseRegistered,
) -> anyhow::Result<Applied> {
    let Ok(case_id) = Uuid::parse_str(&event.case_id) else { return Ok(Applied::UnknownCase) };
    let mut area = r.area_path.clone();
    if area.is_empty() && !r.village_code.is_empty() {
        // An event without its path (older producers): the registry's own tree supplies it.
        area = crate::db::path_up(conn, &r.village_code).await?.into_iter().map(|n| n.code).collect();
    }
    let nodes = path_nodes(&r.grid_code, &r.village_code, &area);
    if nodes.is_empty() {
        return Ok(Applied::UnknownCase);
    }
    let class = kind_class(&r.kind);
    let inserted = sqlx::query(
        "INSERT INTO ledger_cases (case_id, kind, kind_class, village_code, grid_code, nodes, state, \
         registered_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, now()) \
         ON CONFLICT (case_id) DO NOTHING",
    )
    .bind(case_id)
    .bind(r.kind.trim())
    .bind(class)
    .bind(&r.village_code)
    .bind(&r.grid_code)
    .bind(&nodes)
    .bind(kit::time::from_ms(event.occurred_at_ms))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(Applied::NoChange);
    }
    sqlx::query(
        "INSERT INTO ledger_counts (code, kind_class, open_count) SELECT unnest($1::text[]), $2, 1 \
         ON CONFLICT (code, kind_class) DO UPDATE SET open_count = ledger_counts.open_count + 1",
    )
    .bind(&nodes)
    .bind(class)
    .execute(&mut *conn)
    .await?;
    Ok(Applied::Counted)
}

/// One node with its counts; nodes without cases have zeros.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerRow {
    pub code: String,
    pub name: String,
    pub level: i32,
    pub risk_open: i64,
    pub risk_overdue: i64,
    pub risk_closed: i64,
    pub case_open: i64,
    pub case_overdue: i64,
    pub case_closed: i64,
}

/// `nodes` (code, name, level) joined to both count rows of each node.
const WITH_COUNTS: &str = "SELECT n.code, n.name, n.level, \
    coalesce(r.open_count, 0) AS risk_open, coalesce(r.overdue_count, 0) AS risk_overdue, \
    coalesce(r.closed_count, 0) AS risk_closed, coalesce(c.open_count, 0) AS case_open, \
    coalesce(c.overdue_count, 0) AS case_overdue, coalesce(c.closed_count, 0) AS case_closed \
    FROM nodes n \
    LEFT JOIN ledger_counts r ON r.code = n.code AND r.kind_class = 'risk' \
    LEFT JOIN ledger_counts c ON c.code = n.code AND c.kind_class = 'case' ORDER BY n.code";

const GRID_LEVEL_SQL: &str = "CASE g.kind WHEN 'grid' THEN 6 ELSE 7 END";

pub async fn get(pool: &PgPool, code: &str) -> Result<LedgerRow> {
    let sql = format!(
        "WITH nodes AS (SELECT code, name, level::int AS level FROM divisions WHERE code = $1 \
         UNION ALL SELECT g.code, g.name, {GRID_LEVEL_SQL} FROM grids g WHERE g.code = $1) {WITH_COUNTS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(code)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("node {code}")))
}

/// A page of the node's children with their counts, in code order after `after`: child divisions down to the
/// village, then a village's grids, then a grid's micro-grids.
pub async fn children(pool: &PgPool, parent: &LedgerRow, after: &str, limit: i64) -> Result<Vec<LedgerRow>> {
    let after = crate::domain::page_token(after, &parent.code)?;
    let nodes = match parent.level {
        ..=4 => "SELECT code, name, level::int AS level FROM divisions \
                 WHERE parent_code = $1 AND retired_at IS NULL AND code > $2 ORDER BY code LIMIT $3"
            .to_owned(),
        5 => format!(
            "SELECT g.code, g.name, {GRID_LEVEL_SQL} AS level FROM grids g WHERE g.village_code = $1 \
             AND g.kind = 'grid' AND g.retired_at IS NULL AND g.code > $2 ORDER BY g.code LIMIT $3"
        ),
        _ => format!(
            "SELECT g.code, g.name, {GRID_LEVEL_SQL} AS level FROM grids g WHERE g.parent_grid_code = $1 \
             AND g.retired_at IS NULL AND g.code > $2 ORDER BY g.code LIMIT $3"
        ),
    };
    let sql = format!("WITH nodes AS ({nodes}) {WITH_COUNTS}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&parent.code).bind(after).bind(limit).fetch_all(pool).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_count_each_open_period_once() {
        let d = |open, overdue, closed| Delta { open, overdue, closed };
        let cases = [
            ("overdue while open", (true, false, Move::Overdue), Some((true, true, d(0, 1, 0)))),
            ("overdue again", (true, true, Move::Overdue), None),
            ("overdue after closing", (false, false, Move::Overdue), None),
            ("close on time", (true, false, Move::Close), Some((false, false, d(-1, 0, 1)))),
            ("close overdue", (true, true, Move::Close), Some((false, false, d(-1, -1, 1)))),
            ("close twice", (false, false, Move::Close), None),
            ("reopen", (false, false, Move::Reopen), Some((true, false, d(1, 0, -1)))),
            ("reopen an open case", (true, false, Move::Reopen), None),
        ];
        for (name, (open, overdue, m), want) in cases {
            assert_eq!(transition(open, overdue, m), want, "{name}");
        }
    }

    #[test]
    fn path_nodes_adds_grids_and_skips_repeats() {
        let area: Vec<String> = ["532901001001", "532901001000", "532901000000"].map(String::from).into();
        let got = path_nodes("532901001001001002", "532901001001", &area);
        assert_eq!(got[..3], ["532901001001001002", "532901001001001", "532901001001"]);
        assert_eq!(got.len(), 5);
        assert_eq!(path_nodes("", "532901001001", &[]), vec!["532901001001".to_owned()]);
    }
}
