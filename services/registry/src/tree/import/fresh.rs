//! The first load of an empty registry (a new deployment taking the national table): rows are COPYed straight
//! into `divisions`, with its secondary indexes dropped during the load and rebuilt after it, because building
//! an index from 664k sorted rows costs a fraction of maintaining it row by row.
//!
//! No per-row change is logged: a first load is the baseline, not a change, and every row carries its edition.
//! The index definitions are read back from the catalogue, so an index another migration adds is rebuilt as
//! it was; indexes behind constraints (the primary key) stay. DROP INDEX holds an exclusive lock on `divisions`
//! until commit, which on an empty registry blocks nobody who could have read anything.

use sqlx::PgConnection;

use super::copy::copy_rows;
use crate::tree::domain::{DivisionRow, ImportError, ImportOptions, ImportReport, Progress};

pub(super) async fn is_empty(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM divisions)").fetch_one(conn).await
}

pub(super) async fn load(
    conn: &mut PgConnection,
    rows: &[DivisionRow],
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = 'divisions'::regclass \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &indexes {
        let drop = format!("DROP INDEX \"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut *conn).await?;
    }
    let copy = "COPY divisions (code, name, level, parent_code, edition) FROM STDIN";
    copy_rows(conn, copy, rows, Some(&opts.edition), progress).await?;
    for (_, definition) in &indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(definition.clone())).execute(&mut *conn).await?;
    }
    if opts.establish_centers {
        sqlx::query(
            "INSERT INTO centers (code) SELECT code FROM divisions WHERE level BETWEEN 2 AND 5 ON CONFLICT DO NOTHING",
        )
        .execute(&mut *conn)
        .await?;
    }
    let total = rows.len() as u64;
    Ok(ImportReport { rows: total, added: total, ..Default::default() })
}

/// The per-level descendant counts of a first load, computed from the rows in hand (every row is active) and
/// COPYed in: the set-wise SQL rebuild reads the whole table back, which costs more than the load's own COPY.
/// Same rule as that rebuild: an ancestor counts only where the code prefix names a unit of exactly that level
/// (the townships directly under 东莞市 skip the county level and count under the prefecture alone).
pub(super) async fn write_counts(conn: &mut PgConnection, rows: &[DivisionRow]) -> Result<u64, ImportError> {
    use std::collections::HashMap;
    // Codes are 12 digits, so numbers: hashing a u64 per ancestor beats building a String for each.
    const CUTS: [(u32, u8); 4] = [(10, 1), (8, 2), (6, 3), (3, 4)];
    let number = |code: &str| code.parse::<u64>().unwrap_or(u64::MAX);
    let levels: HashMap<u64, u8> = rows.iter().map(|r| (number(&r.code), r.level)).collect();
    let mut counts: HashMap<(u64, u8), i64> = HashMap::new();
    let mut nation = [0i64; 6];
    for r in rows {
        nation[usize::from(r.level)] += 1;
        let code = number(&r.code);
        for (zeros, level) in CUTS {
            if level >= r.level {
                break;
            }
            let scale = 10u64.pow(zeros);
            let ancestor = code / scale * scale;
            if levels.get(&ancestor) == Some(&level) {
                *counts.entry((ancestor, r.level)).or_default() += 1;
            }
        }
    }
    sqlx::query("DELETE FROM division_counts").execute(&mut *conn).await?;
    let mut copy = conn.copy_in_raw("COPY division_counts (code, level, n) FROM STDIN").await?;
    let mut buf = String::with_capacity(counts.len() * 24);
    for ((code, level), n) in &counts {
        buf.push_str(&format!("{code:012}\t{level}\t{n}\n"));
    }
    for (level, n) in nation.iter().enumerate().filter(|(_, n)| **n > 0) {
        buf.push_str(&format!("{}\t{level}\t{n}\n", crate::shared::NATION));
    }
    copy.send(buf.as_bytes()).await?;
    Ok(copy.finish().await?)
}
