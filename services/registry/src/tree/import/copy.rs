//! The COPY text stream the import writes divisions with, 1 MiB at a time.

use crate::tree::domain::{DivisionRow, ImportError, Progress};

/// Sends the rows in COPY text format, 1 MiB at a time, with the edition as a last column when given.
pub(super) async fn copy_rows(
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
