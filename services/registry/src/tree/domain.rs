//! The administrative tree's values: a node (a division, with whether a center stands at it), the subtree
//! range a code spans, the level rule of descendant listings, and the division import's rows, options,
//! progress and report. Proto-free and SQL-free.

use kit::FieldError;

use crate::shared::NATION;

/// A division as the tree shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Node {
    pub code: String,
    pub name: String,
    /// 1 province .. 5 village; grids shown as nodes are 6 and 7 (see `grids::domain`).
    pub level: i16,
    pub parent_code: Option<String>,
    pub has_center: bool,
}

/// The level of a village or community (村/社区), the lowest division.
pub const VILLAGE_LEVEL: i16 = 5;

/// The byte range of codes under a node (the node itself included): every code in [prefix, prefix + ":"),
/// ':' being the byte after '9'.
pub fn subtree(code: &str) -> (String, String) {
    let prefix = if code == NATION { "" } else { kit::division::significant(code) };
    (prefix.to_owned(), format!("{prefix}:"))
}

/// A descendant listing's level, which must lie below the node's own level (`own`, 0 for the nation) and at or
/// above the village.
pub fn descendant_level(requested: u32, own: i16) -> Result<i16, FieldError> {
    let level = i16::try_from(requested).unwrap_or(i16::MAX);
    if level <= own || level > VILLAGE_LEVEL {
        return Err(FieldError::new("level", format!("must be between {} and 5 under this node", own + 1)));
    }
    Ok(level)
}

/// The level a descendant listing asks for, before the node is known: 0 is "not given".
pub fn level_required(requested: u32) -> Result<u32, FieldError> {
    if requested == 0 { Err(FieldError::new("level", "is required")) } else { Ok(requested) }
}

/// A descendant listing's page token: a 12-digit division code, or empty for the first page.
pub fn descendants_page_token(token: &str) -> Result<&str, FieldError> {
    let after = token.trim();
    if !after.is_empty() && !kit::division::is_code(after) {
        return Err(FieldError::new("page_token", "is not a token this service issued"));
    }
    Ok(after)
}

/// One row of the division table as published.
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

/// The largest upload accepted: the national table is 32 MB as CSV and 5 MB gzipped.
pub const MAX_UPLOAD: usize = 256 << 20;

impl ImportOptions {
    /// The options an upload's first chunk carries.
    pub fn parse(edition: &str, retire_missing: bool, establish_centers: bool) -> Result<Self, FieldError> {
        let edition = kit::field::text("edition", edition, 16)?.to_owned();
        Ok(ImportOptions { edition, retire_missing, establish_centers })
    }
}

/// Refuses an upload that would grow past [`MAX_UPLOAD`] with `more` bytes.
pub fn upload_fits(received: usize, more: usize) -> Result<(), FieldError> {
    if received + more > MAX_UPLOAD {
        return Err(FieldError::new("data", format!("is larger than {} MiB", MAX_UPLOAD >> 20)));
    }
    Ok(())
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

impl From<ImportError> for kit::Error {
    /// A malformed file is the `data` field's fault, naming the line; anything else is the import's failure.
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Malformed { line, reason } => kit::Error::invalid("data", format!("line {line}: {reason}")),
            ImportError::Db(cause) => kit::Error::Internal(anyhow::Error::new(cause).context("division import")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendant_listings_name_what_is_wrong() {
        assert_eq!(level_required(0).unwrap_err().field, "level");
        assert_eq!(descendant_level(3, 1), Ok(3));
        assert_eq!(descendant_level(5, 0), Ok(5));
        for (requested, own) in [(1, 1), (6, 1), (u32::MAX, 0), (2, 3)] {
            assert_eq!(descendant_level(requested, own).unwrap_err().field, "level", "{requested} under {own}");
        }
        assert_eq!(descendants_page_token(" 532901000000 "), Ok("532901000000"));
        assert_eq!(descendants_page_token(""), Ok(""));
        for bad in ["x", "532901003001002", "😀", "53290100000\0"] {
            assert_eq!(descendants_page_token(bad).unwrap_err().field, "page_token", "{bad:?}");
        }
    }

    #[test]
    fn subtrees_are_prefix_ranges() {
        assert_eq!(subtree(NATION), (String::new(), ":".to_owned()));
        assert_eq!(subtree("532901000000"), ("532901".to_owned(), "532901:".to_owned()));
    }

    #[test]
    fn import_options_and_uploads_are_bounded() {
        assert!(ImportOptions::parse("2023", false, false).is_ok());
        for bad in ["", "x".repeat(17).as_str(), "20\u{0}23"] {
            assert_eq!(ImportOptions::parse(bad, false, false).unwrap_err().field, "edition", "{bad:?}");
        }
        assert!(upload_fits(MAX_UPLOAD - 1, 1).is_ok());
        assert_eq!(upload_fits(MAX_UPLOAD, 1).unwrap_err().field, "data");
    }
}
