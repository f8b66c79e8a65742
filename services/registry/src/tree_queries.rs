//! The tree at national scale: subtrees as code-prefix ranges, per-level counts from the `division_counts`
//! rollup, name search within a subtree, and imports fed from a byte stream.
//!
//! A subtree is every code in [prefix, prefix + ":"), ':' being the byte after '9'. The range and the order use
//! the byte-wise operators (`~>=~`, `~<~`, `ORDER BY … USING ~<~`) so that the `code text_pattern_ops` index
//! serves both, whatever the database collation, and a page never sorts the whole subtree.

use kit::FieldError;
use sqlx::{PgConnection, PgPool};

use crate::db::{self, NodeRow};
use crate::error::{Error, Result};
use crate::import::{self, ImportError, ImportOptions, ImportReport, Progress};

/// The nation: the root above the provinces, which has no division row.
pub const NATION: &str = "000000000000";

/// The byte range of codes under a node (the node itself included).
fn subtree(code: &str) -> (String, String) {
    let prefix = if code == NATION { "" } else { kit::division::significant(code) };
    (prefix.to_owned(), format!("{prefix}:"))
}

/// The node's level, 0 for the nation; NOT_FOUND for an unknown or retired unit.
async fn level_of(conn: &mut PgConnection, code: &str) -> Result<i16> {
    if code == NATION {
        return Ok(0);
    }
    match db::node(conn, code).await? {
        Some(n) => Ok(n.level),
        None => Err(Error::NotFound(format!("division {code}"))),
    }
}

const NODE_COLUMNS: &str = "SELECT d.code, d.name, d.level, d.parent_code, \
    EXISTS (SELECT 1 FROM centers c WHERE c.code = d.code) AS has_center FROM divisions d";

/// Descendants of `code` at `level`, after the code `after`, in code order.
pub async fn descendants(pool: &PgPool, code: &str, level: u32, after: &str, limit: i64) -> Result<Vec<NodeRow>> {
    let after = crate::domain::page_token(after, code)?;
    let mut conn = pool.acquire().await?;
    let own = level_of(&mut conn, code).await?;
    let level = i16::try_from(level).unwrap_or(i16::MAX);
    if level <= own || level > 5 {
        return Err(FieldError::new("level", format!("must be between {} and 5 under this node", own + 1)).into());
    }
    let (lo, hi) = subtree(code);
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{NODE_COLUMNS} WHERE d.code ~>=~ $1 AND d.code ~<~ $2 AND d.code ~>~ $3 AND d.level = $4 \
         AND d.retired_at IS NULL ORDER BY d.code USING ~<~ LIMIT $5"
    )))
    .bind(lo)
    .bind(hi)
    .bind(after)
    .bind(level)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Active descendants per level under `code`, read from the rollup.
pub async fn count_by_level(pool: &PgPool, code: &str) -> Result<Vec<(i16, i64)>> {
    let mut conn = pool.acquire().await?;
    level_of(&mut conn, code).await?;
    Ok(sqlx::query_as("SELECT level, n FROM division_counts WHERE code = $1 AND n > 0 ORDER BY level")
        .bind(code)
        .fetch_all(&mut *conn)
        .await?)
}

/// Units under `code` (not the node itself) whose name contains `query`, in code order. `strpos` rather than
/// LIKE, so a '%' or '_' typed by a user is matched literally.
pub async fn search_names(pool: &PgPool, code: &str, query: &str, limit: i64) -> Result<Vec<NodeRow>> {
    let mut conn = pool.acquire().await?;
    level_of(&mut conn, code).await?;
    let (lo, hi) = subtree(code);
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{NODE_COLUMNS} WHERE d.code ~>=~ $1 AND d.code ~<~ $2 AND d.code <> $3 AND d.retired_at IS NULL \
         AND strpos(d.name, $4) > 0 ORDER BY d.code USING ~<~ LIMIT $5"
    )))
    .bind(lo)
    .bind(hi)
    .bind(code)
    .bind(query)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
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

/// Parses a whole uploaded file (CSV or gzip CSV) off the async threads, then imports it; progress goes to
/// `progress` as it happens.
pub async fn import_bytes(
    pool: &PgPool,
    data: Vec<u8>,
    opts: ImportOptions,
    progress: impl Fn(Progress) + Send + Sync + Clone + 'static,
) -> std::result::Result<ImportReport, ImportError> {
    let report = progress.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let reader = import::open_reader(std::io::Cursor::new(data))
            .map_err(|e| ImportError::Malformed { line: 1, reason: format!("unreadable: {e}") })?;
        import::parse(reader, &mut |p| report(p))
    })
    .await
    .map_err(|e| ImportError::Db(sqlx::Error::Protocol(format!("parser task failed: {e}"))))??;
    import::import(pool, &rows, &opts, &mut |p| progress(p)).await
}
