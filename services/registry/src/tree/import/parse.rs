//! Parsing a division file: gzip detected by its magic bytes, bounded once inflated, every row checked (codes,
//! levels from the code pattern, parents of lower level whose code prefixes the child's, no duplicates) before
//! anything is written. Pure: no database.

use std::collections::HashSet;
use std::io::Read;

use crate::tree::domain::{DivisionRow, ImportError, Progress};

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
