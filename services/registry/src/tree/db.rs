//! The tree's SQL: divisions by code, path and parent, subtrees as code-prefix ranges, the per-level counts of
//! the `division_counts` rollup, and name search. Plain functions over a connection, returning [`Node`]s.
//!
//! A subtree's range and order use the byte-wise operators (`~>=~`, `~<~`, `ORDER BY … USING ~<~`) so that the
//! `code text_pattern_ops` index serves both, whatever the database collation, and a page never sorts the
//! whole subtree.

use sqlx::PgConnection;

use super::domain::{Node, subtree};
use crate::shared::NATION;

const NODE: &str = "SELECT d.code, d.name, d.level, d.parent_code, \
    EXISTS (SELECT 1 FROM centers c WHERE c.code = d.code) AS has_center FROM divisions d";

/// An active division.
pub async fn node(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Node>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{NODE} WHERE d.code = $1 AND d.retired_at IS NULL")))
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// The node and every ancestor, the node first and the root last. Every registration asks this (through
/// ResolveLocation), so each step is one primary-key probe: the `LIMIT 1` laterals keep the planner from
/// hashing the whole of `divisions` and `centers` per call, which it prefers on a prefecture-sized table (a
/// Dali deployment: 1,285 divisions, 2.6 ms a call, measured under `loop_bench`).
pub async fn path_up(conn: &mut PgConnection, code: &str) -> sqlx::Result<Vec<Node>> {
    sqlx::query_as(
        "WITH RECURSIVE up AS ( \
            SELECT code, name, level, parent_code, 0 AS depth FROM divisions WHERE code = $1 AND retired_at IS NULL \
            UNION ALL \
            SELECT d.code, d.name, d.level, d.parent_code, up.depth + 1 FROM up \
            CROSS JOIN LATERAL (SELECT * FROM divisions d WHERE d.code = up.parent_code LIMIT 1) d) \
         SELECT up.code, up.name, up.level, up.parent_code, c.code IS NOT NULL AS has_center \
         FROM up LEFT JOIN LATERAL (SELECT c.code FROM centers c WHERE c.code = up.code LIMIT 1) c ON true \
         ORDER BY depth",
    )
    .bind(code)
    .fetch_all(conn)
    .await
}

/// A page of a division's children in code order, after `after`.
pub async fn children(conn: &mut PgConnection, code: &str, after: &str, limit: i64) -> sqlx::Result<Vec<Node>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{NODE} WHERE d.parent_code = $1 AND d.retired_at IS NULL AND d.code > $2 ORDER BY d.code LIMIT $3"
    )))
    .bind(code)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Locks an active division's row, returning its level.
pub async fn lock_division(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<i16>> {
    sqlx::query_scalar("SELECT level FROM divisions WHERE code = $1 AND retired_at IS NULL FOR UPDATE")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// Descendants of `code` at `level`, after the code `after`, in code order.
pub async fn descendants(
    conn: &mut PgConnection,
    code: &str,
    level: i16,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<Node>> {
    let (lo, hi) = subtree(code);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{NODE} WHERE d.code ~>=~ $1 AND d.code ~<~ $2 AND d.code ~>~ $3 AND d.level = $4 \
         AND d.retired_at IS NULL ORDER BY d.code USING ~<~ LIMIT $5"
    )))
    .bind(lo)
    .bind(hi)
    .bind(after)
    .bind(level)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Active descendants per level under `code`, read from the rollup.
pub async fn count_by_level(conn: &mut PgConnection, code: &str) -> sqlx::Result<Vec<(i16, i64)>> {
    sqlx::query_as("SELECT level, n FROM division_counts WHERE code = $1 AND n > 0 ORDER BY level")
        .bind(code)
        .fetch_all(conn)
        .await
}

/// Units under `code` (not the node itself) whose name contains `query`, in code order. `strpos` rather than
/// LIKE, so a '%' or '_' typed by a user is matched literally.
pub async fn search_names(conn: &mut PgConnection, code: &str, query: &str, limit: i64) -> sqlx::Result<Vec<Node>> {
    let (lo, hi) = subtree(code);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{NODE} WHERE d.code ~>=~ $1 AND d.code ~<~ $2 AND d.code <> $3 AND d.retired_at IS NULL \
         AND strpos(d.name, $4) > 0 ORDER BY d.code USING ~<~ LIMIT $5"
    )))
    .bind(lo)
    .bind(hi)
    .bind(code)
    .bind(query)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Rebuilds the rollup from the active divisions, set-wise, in the caller's (import) transaction.
///
/// One scan groups units by township prefix (9 digits) and level; that small result is then lifted to every
/// ancestor length. A lifted prefix counts only if a unit of exactly that level has that code, which is what
/// keeps level skips right: a township directly under a prefecture (东莞, 中山, 儋州) pads at county length to
/// the prefecture's own code, which is not a county, so it is counted under the prefecture and province only.
pub async fn refresh_counts(conn: &mut PgConnection) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM division_counts").execute(&mut *conn).await?;
    let written = sqlx::query(
        "WITH base AS ( \
            SELECT left(code, 9) AS p, level, count(*) AS n FROM divisions WHERE retired_at IS NULL GROUP BY 1, 2), \
         up AS ( \
            SELECT rpad(left(b.p, cut.len), 12, '0') AS code, cut.alevel, b.level, sum(b.n) AS n \
            FROM base b CROSS JOIN (VALUES (2, 1), (4, 2), (6, 3), (9, 4)) AS cut(len, alevel) \
            WHERE b.level > cut.alevel GROUP BY 1, 2, 3) \
         INSERT INTO division_counts (code, level, n) \
         SELECT up.code, up.level, up.n FROM up \
            JOIN divisions a ON a.code = up.code AND a.level = up.alevel AND a.retired_at IS NULL \
         UNION ALL \
         SELECT $1, level, sum(n) FROM base GROUP BY level",
    )
    .bind(NATION)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(written)
}
