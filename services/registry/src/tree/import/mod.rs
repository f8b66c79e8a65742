//! Importing the division table (CSV, optionally gzip): validated whole before anything is written (see
//! [`parse`]), then loaded with COPY into a staging table and merged in one transaction, so a bad file leaves the
//! registry as it was and a re-import of the same file changes nothing. An empty registry takes the faster first
//! load of [`fresh`].

use std::collections::HashSet;

use sqlx::PgPool;

mod copy;
mod fresh;
mod parse;

use self::copy::copy_rows;
pub use self::parse::{Limits, open_reader, parse, parse_limited};
use super::domain::{DivisionRow, ImportError, ImportOptions, ImportReport, Progress};

/// Validates and merges the rows in one transaction.
pub async fn import(
    pool: &PgPool,
    rows: &[DivisionRow],
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let total = rows.len() as u64;
    let mut tx = kit::audit::begin(pool).await?;
    // A national import's statements (COPY, the merge, the count rebuild) run longer than any call's
    // statement_timeout allows; the import bounds itself instead, waiting for another import included.
    sqlx::query("SET LOCAL statement_timeout = '15min'").execute(&mut *tx).await?;
    // One import at a time: the merge compares the whole table and then writes it.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('zongzhi.registry.import')::bigint)").execute(&mut *tx).await?;
    // The merge's hash joins and aggregates over 664k rows should stay in memory rather than spill to disk, and
    // the first load's index builds sort in memory. (The commit stays synchronous: an operator told "imported"
    // must find it there after a crash.)
    sqlx::query("SET LOCAL work_mem = '256MB'").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'").execute(&mut *tx).await?;
    check_outside_parents(&mut tx, rows).await?;
    let first_load = fresh::is_empty(&mut tx).await?;
    let report = if first_load {
        fresh::load(&mut tx, rows, opts, progress).await?
    } else {
        sqlx::query(
            "CREATE TEMP TABLE staging (code TEXT, name TEXT, level SMALLINT, parent_code TEXT) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        copy_rows(&mut tx, "COPY staging (code, name, level, parent_code) FROM STDIN", rows, None, progress).await?;
        // No key on staging: the merge joins it by hash once, so an index would only cost its build.
        sqlx::query("ANALYZE staging").execute(&mut *tx).await?;
        merge(&mut tx, opts, total).await?
    };
    progress(Progress { phase: "merged", done: total, total });
    if report.added + report.changed + report.retired > 0 {
        // Fresh statistics, or the planner keeps guessing from an empty table and pages sort whole subtrees.
        sqlx::query("ANALYZE divisions").execute(&mut *tx).await?;
        let nodes = if first_load {
            fresh::write_counts(&mut tx, rows).await?
        } else {
            super::db::refresh_counts(&mut tx).await?
        };
        progress(Progress { phase: "counted", done: nodes, total: nodes });
    }
    tx.commit().await?;
    Ok(report)
}

/// Parents not in the file must already be active in the registry.
async fn check_outside_parents(conn: &mut sqlx::PgConnection, rows: &[DivisionRow]) -> Result<(), ImportError> {
    let inside: HashSet<&str> = rows.iter().map(|r| r.code.as_str()).collect();
    let outside: Vec<&DivisionRow> =
        rows.iter().filter(|r| r.parent_code.as_deref().is_some_and(|p| !inside.contains(p))).collect();
    if outside.is_empty() {
        return Ok(());
    }
    let codes: Vec<&str> = outside.iter().filter_map(|r| r.parent_code.as_deref()).collect();
    let known: Vec<String> =
        sqlx::query_scalar("SELECT code FROM divisions WHERE code = ANY($1) AND retired_at IS NULL")
            .bind(&codes)
            .fetch_all(conn)
            .await?;
    let known: HashSet<&str> = known.iter().map(String::as_str).collect();
    match outside.iter().find(|r| r.parent_code.as_deref().is_some_and(|p| !known.contains(p))) {
        Some(r) => Err(ImportError::Malformed {
            line: r.line,
            reason: format!(
                "parent_code {} is neither in the file nor in the registry",
                r.parent_code.as_deref().unwrap_or("")
            ),
        }),
        None => Ok(()),
    }
}

async fn merge(conn: &mut sqlx::PgConnection, opts: &ImportOptions, total: u64) -> Result<ImportReport, ImportError> {
    diff(conn, &opts.edition).await?;
    let added = sqlx::query(
        "INSERT INTO divisions (code, name, level, parent_code, edition) \
         SELECT code, name, level, parent_code, $1 FROM diff WHERE is_new",
    )
    .bind(&opts.edition)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let changed = sqlx::query(
        "UPDATE divisions d SET name = x.name, level = x.level, parent_code = x.parent_code, edition = $1, \
            retired_at = NULL, updated_at = now() FROM diff x WHERE d.code = x.code AND NOT x.is_new",
    )
    .bind(&opts.edition)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let retired = if opts.retire_missing { retire_missing(conn, &opts.edition).await? } else { 0 };
    if opts.establish_centers {
        sqlx::query(
            "INSERT INTO centers (code) SELECT code FROM staging WHERE level BETWEEN 2 AND 5 ON CONFLICT DO NOTHING",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(ImportReport { rows: total, added, changed, retired, unchanged: total - added - changed })
}

/// The temporary table `diff`: one join of the file against the registry finds every row that is new or
/// differs, and each difference is recorded in `division_changes` under `edition`. Everything after works on
/// that (usually small) set, so a re-import of the same file reads the table once and writes nothing.
async fn diff(conn: &mut sqlx::PgConnection, edition: &str) -> Result<(), ImportError> {
    sqlx::query(
        "CREATE TEMP TABLE diff ON COMMIT DROP AS \
         SELECT s.code, s.name, s.level, s.parent_code, d.code IS NULL AS is_new, \
            d.name AS old_name, d.parent_code AS old_parent, d.retired_at IS NOT NULL AS was_retired \
         FROM staging s LEFT JOIN divisions d USING (code) \
         WHERE d.code IS NULL OR (d.name, d.level, d.parent_code, d.retired_at IS NULL) \
            IS DISTINCT FROM (s.name, s.level, s.parent_code, TRUE)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO division_changes (code, edition, change, old_value, new_value) \
         SELECT x.code, $1, c.change, c.old_value, c.new_value FROM diff x \
         CROSS JOIN LATERAL (VALUES \
            ('added', '', x.name, x.is_new), \
            ('renamed', x.old_name, x.name, NOT x.is_new AND x.old_name <> x.name), \
            ('moved', COALESCE(x.old_parent, ''), COALESCE(x.parent_code, ''), \
                NOT x.is_new AND x.old_parent IS DISTINCT FROM x.parent_code), \
            ('restored', '', x.name, x.was_retired)) AS c(change, old_value, new_value, applies) \
         WHERE c.applies",
    )
    .bind(edition)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Retires every live division the file no longer has, recording each; returns how many.
async fn retire_missing(conn: &mut sqlx::PgConnection, edition: &str) -> Result<u64, ImportError> {
    Ok(sqlx::query(
        "WITH gone AS ( \
            UPDATE divisions d SET retired_at = now(), updated_at = now() WHERE d.retired_at IS NULL \
            AND NOT EXISTS (SELECT 1 FROM staging s WHERE s.code = d.code) RETURNING d.code, d.name) \
         INSERT INTO division_changes (code, edition, change, old_value) SELECT code, $1, 'retired', name FROM gone",
    )
    .bind(edition)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}
