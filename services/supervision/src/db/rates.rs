//! The 三率 aggregate: one statement counts, under one node and over one period, every stage due, every visit
//! made and every yellow and red card issued, grouped by unit or by the node's child. The definitions are in
//! `domain::rates`; this is them in SQL.

use chrono::{DateTime, Utc};
use kit::vocab::Satisfaction;
use sqlx::PgConnection;

use crate::domain::policy::Grade;
use crate::domain::rates::{By, Counts};
use crate::domain::{DeadlineState, Stage};

/// The node's cases (the GIN index on `area_path`, or a scan when the node holds most of them), each with its
/// child under the node: the code just below it on the case's path (the grid below a village). Written into
/// each part rather than as one CTE: a CTE read three times is materialised, which keeps it out of parallel
/// plans, and measured slower (supervision_bench).
macro_rules! place {
    () => {
        "(SELECT case_id, \
           COALESCE(area_path[array_position(area_path, $1) - 1], NULLIF(grid_code, ''), $1) AS child \
         FROM cases WHERE area_path @> ARRAY[$1]::text[])"
    };
}

/// A paused stage (挂账) counts neither way while it stands still: its due time is not yet known. The 报到 clocks
/// of co-handling units are supervised (their cards count) but are not a 签收 or 办结 rate.
///
/// The statement, with the grouping key of each part: `$1` the node, `$2`/`$3` the period's instants, `$4`
/// now, then the states, stages and grades bound as values. Each part reads its own rows by time
/// (`deadlines_by_due`, `closures_by_visit`, `slips_by_issue`).
macro_rules! rates_sql {
    ($stage_key:literal, $visit_key:literal, $slip_key:literal) => {
        concat!(
            "WITH counted AS ( \
               SELECT ",
            $stage_key,
            " AS key, \
                 count(*) FILTER (WHERE d.stage = $6) AS accept_due, \
                 count(*) FILTER (WHERE d.stage = $6 AND d.done_at <= d.due_at) AS accept_on_time, \
                 count(*) FILTER (WHERE d.stage = $7) AS resolve_due, \
                 count(*) FILTER (WHERE d.stage = $7 AND d.done_at <= d.due_at) AS resolve_on_time, \
                 0::bigint AS visits, 0::bigint AS satisfied, 0::bigint AS basically_satisfied, \
                 0::bigint AS yellow, 0::bigint AS red \
               FROM deadlines d JOIN ",
            place!(),
            " p ON p.case_id = d.case_id LEFT JOIN tasks t ON t.task_id = d.task_id \
               WHERE d.due_at >= $2 AND d.due_at < $3 AND d.state <> $5 AND d.stage IN ($6, $7) \
                 AND (d.done_at IS NOT NULL OR d.due_at <= $4) AND d.paused_at IS NULL \
               GROUP BY 1 \
               UNION ALL \
               SELECT ",
            $visit_key,
            ", 0, 0, 0, 0, count(*), count(*) FILTER (WHERE cl.satisfaction = $8), \
                 count(*) FILTER (WHERE cl.satisfaction = $9), 0, 0 \
               FROM closures cl JOIN ",
            place!(),
            " p ON p.case_id = cl.case_id LEFT JOIN tasks t ON t.task_id = cl.task_id \
               WHERE cl.followed_up_at >= $2 AND cl.followed_up_at < $3 AND cl.satisfaction <> '' \
               GROUP BY 1 \
               UNION ALL \
               SELECT ",
            $slip_key,
            ", 0, 0, 0, 0, 0, 0, 0, count(*) FILTER (WHERE s.grade = $10), count(*) FILTER (WHERE s.grade = $11) \
               FROM slips s JOIN ",
            place!(),
            " p ON p.case_id = s.case_id \
               WHERE s.issued_at >= $2 AND s.issued_at < $3 AND s.grade IN ($10, $11) \
               GROUP BY 1) \
             SELECT COALESCE(key, '') AS key, sum(accept_due)::bigint AS accept_due, \
               sum(accept_on_time)::bigint AS accept_on_time, sum(resolve_due)::bigint AS resolve_due, \
               sum(resolve_on_time)::bigint AS resolve_on_time, sum(visits)::bigint AS visits, \
               sum(satisfied)::bigint AS satisfied, sum(basically_satisfied)::bigint AS basically_satisfied, \
               sum(yellow)::bigint AS yellow, sum(red)::bigint AS red \
             FROM counted GROUP BY 1 ORDER BY 1"
        )
    };
}

const BY_UNIT: &str = rates_sql!("t.unit_code", "t.unit_code", "s.unit_code");
const BY_AREA: &str = rates_sql!("p.child", "p.child", "p.child");

#[derive(sqlx::FromRow)]
struct Row {
    key: String,
    accept_due: i64,
    accept_on_time: i64,
    resolve_due: i64,
    resolve_on_time: i64,
    visits: i64,
    satisfied: i64,
    basically_satisfied: i64,
    yellow: i64,
    red: i64,
}

impl From<Row> for (String, Counts) {
    fn from(r: Row) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let counts = Counts {
            accept_due: n(r.accept_due),
            accept_on_time: n(r.accept_on_time),
            resolve_due: n(r.resolve_due),
            resolve_on_time: n(r.resolve_on_time),
            visits: n(r.visits),
            satisfied: n(r.satisfied),
            basically_satisfied: n(r.basically_satisfied),
            yellow: n(r.yellow),
            red: n(r.red),
        };
        (r.key, counts)
    }
}

/// The counts under `node` for `[start, end)`, one row per unit or child node (a unit not yet known is '').
pub async fn count_rates(
    conn: &mut PgConnection,
    by: By,
    node: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, Counts)>> {
    let sql = match by {
        By::Unit => BY_UNIT,
        By::Area => BY_AREA,
    };
    // A county-month joins and sorts a few hundred thousand rows: with the default work_mem (4 MB) they spill
    // to disk. The larger budget holds for this statement's transaction only.
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SET LOCAL work_mem = '64MB'").execute(&mut *tx).await?;
    let rows: Vec<Row> = sqlx::query_as(sql)
        .bind(node)
        .bind(start)
        .bind(end)
        .bind(now)
        .bind(DeadlineState::Cancelled)
        .bind(Stage::Accept)
        .bind(Stage::Resolve)
        .bind(Satisfaction::Satisfied)
        .bind(Satisfaction::BasicallySatisfied)
        .bind(Grade::Yellow)
        .bind(Grade::Red)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
