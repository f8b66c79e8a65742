//! The tree's use cases: a node with its ancestors, descendants at a level, per-level counts, name search,
//! and imports fed from an uploaded byte stream.

use kit::error::{Error, Result};
use sqlx::{PgConnection, PgPool};

use super::db;
use super::domain::{ImportError, ImportOptions, ImportReport, Node, Progress, descendant_level};
use super::import;
use crate::shared::{NATION, page_token};

/// A division with its ancestors (root first).
pub async fn node(pool: &PgPool, code: &str) -> Result<(Node, Vec<Node>)> {
    let mut conn = pool.acquire().await?;
    let mut path = db::path_up(&mut conn, code).await?;
    if path.is_empty() {
        return Err(Error::not_found(format!("division {code}")));
    }
    let node = path.remove(0);
    path.reverse();
    Ok((node, path))
}

/// The node's level, 0 for the nation; NOT_FOUND for an unknown or retired unit.
async fn level_of(conn: &mut PgConnection, code: &str) -> Result<i16> {
    if code == NATION {
        return Ok(0);
    }
    match db::node(conn, code).await? {
        Some(n) => Ok(n.level),
        None => Err(Error::not_found(format!("division {code}"))),
    }
}

/// Descendants of `code` at `level`, after the code `after`, in code order.
pub async fn descendants(pool: &PgPool, code: &str, level: u32, after: &str, limit: i64) -> Result<Vec<Node>> {
    let after = page_token(after, code)?;
    let mut conn = pool.acquire().await?;
    let level = descendant_level(level, level_of(&mut conn, code).await?)?;
    Ok(db::descendants(&mut conn, code, level, after, limit).await?)
}

/// Active descendants per level under `code`.
pub async fn count_by_level(pool: &PgPool, code: &str) -> Result<Vec<(i16, i64)>> {
    let mut conn = pool.acquire().await?;
    level_of(&mut conn, code).await?;
    Ok(db::count_by_level(&mut conn, code).await?)
}

/// Units under `code` whose name contains `query`, in code order.
pub async fn search_names(pool: &PgPool, code: &str, query: &str, limit: i64) -> Result<Vec<Node>> {
    let mut conn = pool.acquire().await?;
    level_of(&mut conn, code).await?;
    Ok(db::search_names(&mut conn, code, query, limit).await?)
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
