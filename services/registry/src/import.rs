//! Importing the division table (CSV, optionally gzip): validated whole before anything is written, then
//! loaded with COPY into a staging table and merged in one transaction, so a bad file leaves the registry as it
//! was and a re-import of the same file changes nothing.

use std::collections::HashSet;
use std::io::Read;

use sqlx::PgPool;

mod fresh;

/// One row of the table as published.
#[derive(Debug, Clone)]
pub struct DivisionRow {
    pub line: u64,
    pub code: String,
    pub name: String,
    pub level: u8,
    pub parent_code: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The edition the rows come from, e.g. "2023"; kept on every row and change.
    pub edition: String,
    /// Retire every active unit missing from the file: for a full newer edition, never for an extract.
    pub retire_missing: bool,
    /// Establish a center at every imported unit of levels 2-5.
    pub establish_centers: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: u64,
    pub added: u64,
    pub changed: u64,
    pub retired: u64,
    pub unchanged: u64,
}

/// A step of a running import, for operators watching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Reads CSV text, or gzip-compressed CSV (detected by its magic bytes).
pub fn open_reader(mut input: impl Read + 'static) -> std::io::Result<Box<dyn Read>> {
    let mut magic = [0u8; 2];
    let n = input.read(&mut magic)?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let whole = head.chain(input);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(whole)))
    } else {
        Ok(Box::new(whole))
    }
}

/// How much a division file may hold once inflated. Without bounds a small gzip file could inflate into an
/// unbounded line (which the CSV reader buffers whole) or an unbounded row list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole text, after gzip: the national table is 32 MB.
    pub max_bytes: u64,
    /// One line: a row is under 200 bytes.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 256 << 20, max_line: 4096 }
    }
}

/// Parses and checks every row under the default [`Limits`].
pub fn parse(input: impl Read, progress: &mut dyn FnMut(Progress)) -> Result<Vec<DivisionRow>, ImportError> {
    parse_limited(input, Limits::default(), progress)
}

/// Parses and checks every row: codes, levels from the code pattern, parents of lower level whose code
/// prefixes the child's, no duplicates; refuses, naming the line, a text or a line beyond `limits`.
pub fn parse_limited(
    input: impl Read,
    limits: Limits,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<DivisionRow>, ImportError> {
    let bad = |line: u64, reason: String| ImportError::Malformed { line, reason };
    let read_error = |e: csv::Error| match limit_exceeded(&e) {
        Some(x) => bad(x.line, x.what.clone()),
        None => bad(e.position().map_or(0, |p| p.line()), e.to_string()),
    };
    let input = Bounded { inner: input, limits, total: 0, line: 1, line_len: 0 };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) if limit_exceeded(&e).is_some() => return Err(read_error(e)),
        Err(e) => return Err(bad(1, format!("unreadable header: {e}"))),
    };
    if headers.iter().collect::<Vec<_>>() != ["code", "name", "level", "parent_code"] {
        return Err(bad(1, "header must be code,name,level,parent_code".into()));
    }
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for record in reader.records() {
        let record = record.map_err(read_error)?;
        let line = record.position().map_or(0, |p| p.line());
        let row = parse_row(line, &record).map_err(|reason| bad(line, reason))?;
        // 12 digits fit a u64: a set of numbers, not of strings, for 664k rows.
        if !seen.insert(row.code.parse::<u64>().unwrap_or(u64::MAX)) {
            return Err(bad(line, format!("code {} appears twice", row.code)));
        }
        rows.push(row);
        if rows.len() % 100_000 == 0 {
            progress(Progress { phase: "parsed", done: rows.len() as u64, total: 0 });
        }
    }
    if rows.is_empty() {
        return Err(bad(1, "no rows".into()));
    }
    progress(Progress { phase: "parsed", done: rows.len() as u64, total: rows.len() as u64 });
    Ok(rows)
}

/// A limit the reader hit, and the line it was on.
#[derive(Debug)]
struct Exceeded {
    line: u64,
    what: String,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Exceeded {}

fn limit_exceeded(e: &csv::Error) -> Option<&Exceeded> {
    match e.kind() {
        csv::ErrorKind::Io(io) => io.get_ref()?.downcast_ref::<Exceeded>(),
        _ => None,
    }
}

/// Counts what passes (after gzip) and fails the read once the text or a line is too long, before the CSV
/// reader buffers it.
struct Bounded<R> {
    inner: R,
    limits: Limits,
    total: u64,
    line: u64,
    line_len: usize,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        let fail = |line: u64, what: String| {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, Exceeded { line, what }))
        };
        if self.total > self.limits.max_bytes {
            let what = format!("the file is larger than {} bytes once inflated", self.limits.max_bytes);
            return fail(self.line, what);
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.line_len = 0;
            } else {
                self.line_len += 1;
                if self.line_len > self.limits.max_line {
                    return fail(self.line, format!("the line is longer than {} bytes", self.limits.max_line));
                }
            }
        }
        Ok(n)
    }
}

fn parse_row(line: u64, r: &csv::StringRecord) -> Result<DivisionRow, String> {
    if r.len() != 4 {
        return Err(format!("expected 4 fields, found {}", r.len()));
    }
    let code = r[0].trim();
    if !kit::division::is_code(code) {
        return Err(format!("code {} is not 12 digits", kit::field::excerpt(code)));
    }
    let name = r[1].trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("name is empty or longer than 100 characters".into());
    }
    if name.contains('\0') {
        return Err("name contains a NUL character".into());
    }
    let level: u8 = r[2].trim().parse().map_err(|_| format!("level {} is not a number", kit::field::excerpt(&r[2])))?;
    if level != kit::division::level(code) {
        return Err(format!("level {level} does not match the code pattern of {code}"));
    }
    let parent = r[3].trim();
    let parent_code = if level == 1 {
        if !parent.is_empty() {
            return Err("a province has no parent_code".into());
        }
        None
    } else {
        if !kit::division::is_code(parent) {
            return Err(format!("parent_code {} is not 12 digits", kit::field::excerpt(parent)));
        }
        if kit::division::level(parent) >= level || !code.starts_with(kit::division::significant(parent)) {
            return Err(format!("parent_code {parent} cannot be the parent of {code}"));
        }
        Some(parent.to_owned())
    };
    Ok(DivisionRow { line, code: code.to_owned(), name: name.to_owned(), level, parent_code })
}

/// Validates and merges the rows in one transaction.
pub async fn import(
    pool: &PgPool,
    rows: &[DivisionRow],
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let total = rows.len() as u64;
    let mut tx = pool.begin().await?;
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
            crate::tree_queries::refresh_counts(&mut tx).await?
        };
        progress(Progress { phase: "counted", done: nodes, total: nodes });
    }
    tx.commit().await?;
    Ok(report)
}

/// Sends the rows in COPY text format, 1 MiB at a time, with the edition as a last column when given.
async fn copy_rows(
    conn: &mut sqlx::PgConnection,
    statement: &'static str,
    rows: &[DivisionRow],
    edition: Option<&str>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), ImportError> {
    let total = rows.len() as u64;
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = String::with_capacity(1 << 20);
    for (i, r) in rows.iter().enumerate() {
        buf.push_str(&r.code);
        buf.push('\t');
        push_escaped(&mut buf, &r.name);
        buf.push('\t');
        buf.push_str(&r.level.to_string());
        buf.push('\t');
        buf.push_str(r.parent_code.as_deref().unwrap_or("\\N"));
        if let Some(e) = edition {
            buf.push('\t');
            push_escaped(&mut buf, e);
        }
        buf.push('\n');
        if buf.len() > (1 << 20) - 256 || i + 1 == rows.len() {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
            progress(Progress { phase: "loaded", done: i as u64 + 1, total });
        }
    }
    copy.finish().await?;
    Ok(())
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
    // One join of the file against the registry finds every row that is new or differs; everything after
    // works on that (usually small) set, so a re-import of the same file reads the table once and writes nothing.
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
    .bind(&opts.edition)
    .execute(&mut *conn)
    .await?;
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
    let mut retired = 0;
    if opts.retire_missing {
        retired = sqlx::query(
            "WITH gone AS ( \
                UPDATE divisions d SET retired_at = now(), updated_at = now() WHERE d.retired_at IS NULL \
                AND NOT EXISTS (SELECT 1 FROM staging s WHERE s.code = d.code) RETURNING d.code, d.name) \
             INSERT INTO division_changes (code, edition, change, old_value) SELECT code, $1, 'retired', name FROM gone",
        )
        .bind(&opts.edition)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    if opts.establish_centers {
        sqlx::query(
            "INSERT INTO centers (code) SELECT code FROM staging WHERE level BETWEEN 2 AND 5 ON CONFLICT DO NOTHING",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(ImportReport { rows: total, added, changed, retired, unchanged: total - added - changed })
}

/// COPY text format: backslash, tab and newline must be escaped.
fn push_escaped(buf: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\t' => buf.push_str("\\t"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            _ => buf.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    const HEADER: &str = "code,name,level,parent_code\n";

    fn gzip(parts: &[&[u8]], repeat_last: usize) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for p in parts {
            gz.write_all(p).unwrap();
        }
        let last = parts.last().copied().unwrap_or_default();
        for _ in 0..repeat_last {
            gz.write_all(last).unwrap();
        }
        gz.finish().unwrap()
    }

    fn refusal(data: Vec<u8>, limits: Limits) -> (u64, String) {
        match parse_limited(open_reader(std::io::Cursor::new(data)).unwrap(), limits, &mut |_| {}) {
            Err(ImportError::Malformed { line, reason }) => (line, reason),
            Err(e) => panic!("not a refusal: {e}"),
            Ok(rows) => panic!("accepted {} rows", rows.len()),
        }
    }

    #[test]
    fn a_gzip_bomb_is_refused_once_it_inflates_past_the_limit() {
        // 8 MiB of newlines (blank lines, skipped by CSV) compress to a few KiB.
        let bomb = gzip(&[HEADER.as_bytes(), &[b'\n'; 1 << 20]], 7);
        assert!(bomb.len() < 64 << 10, "the bomb is small: {} bytes", bomb.len());
        let (line, reason) = refusal(bomb, Limits { max_bytes: 1 << 20, max_line: 4096 });
        assert!(reason.contains("larger than 1048576 bytes once inflated"), "{reason}");
        assert!(line > 1, "the line reached is named: {line}");
    }

    #[test]
    fn a_long_line_is_refused_with_its_number_before_it_is_buffered() {
        let row = "530000000000,云南省,1,\n".as_bytes();
        let bomb = gzip(&[HEADER.as_bytes(), row, &[b'0'; 1 << 20]], 3);
        let (line, reason) = refusal(bomb, Limits::default());
        assert_eq!(line, 3, "{reason}");
        assert!(reason.contains("longer than 4096 bytes"), "{reason}");
    }

    #[test]
    fn a_bad_code_is_quoted_short() {
        let long = format!("{HEADER}{},x,1,\n", "9".repeat(3000));
        let (line, reason) = refusal(long.into_bytes(), Limits::default());
        assert_eq!(line, 2);
        assert!(reason.len() < 120, "{reason}");
    }
}
