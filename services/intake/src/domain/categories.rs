//! The category code table (案件类别) as the domain sees it: a category version, a new one parsed, and who may
//! write the table. Reading the current versions and adding one are `service.rs`'s, their SQL `db.rs`'s.
//!
//! Versions are only ever added, never edited: a case keeps the (code, version) it was registered under, and the
//! highest version of a code is the one new registrations use — unless it is inactive, which withdraws the code.

use kit::auth::{Permission, Principal};
use kit::{FieldError, code_enum, field};

code_enum! {
    /// The table a category belongs to; inquiries share `demand` (see [`kit::vocab::CaseKind::category_kind`]).
    pub enum CategoryKind {
        Dispute = "dispute",
        Risk = "risk",
        Demand = "demand",
    }
}

/// The longest category name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The highest division level (1 province, 2 prefecture) a grant must reach to write the code table.
pub const CODE_TABLE_LEVEL: u8 = 2;

/// A category version to add, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCategory {
    pub code: String,
    pub kind: CategoryKind,
    pub name: String,
    pub active: bool,
}

impl NewCategory {
    /// Parses the fields in the message's order; `active` defaults to true.
    pub fn parse(code: &str, kind: &str, name: &str, active: Option<bool>) -> std::result::Result<Self, FieldError> {
        let code = field::required("code", code)?;
        if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("code", "must be a 4-digit category code"));
        }
        let kind = CategoryKind::parse("kind", kind)?;
        let name = field::text("name", name, MAX_NAME_CHARS)?;
        Ok(Self { code: code.to_owned(), kind, name: name.to_owned(), active: active.unwrap_or(true) })
    }
}

/// One version of a category code.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Category {
    pub code: String,
    pub version: i32,
    pub kind: CategoryKind,
    pub name: String,
    pub active: bool,
    pub created_by: String,
}

/// Whether `p` may write a deployment-wide code table. The business administrator's scope normally bounds
/// where their rules apply, but a category (or a tariff) has no place: one row serves every center. So rather
/// than let a county's administrator change the table under every other county, the grant must be the whole
/// deployment (`*`) or a node at prefecture level or above (`kit::division::level(scope) <= 2`).
pub fn may_write_code_table(p: &Principal) -> bool {
    p.scope(Permission::ManageRules).reaches_level(CODE_TABLE_LEVEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_categories_name_their_field() {
        let cases = [
            ("", "dispute", "x", "code"),
            ("012", "dispute", "x", "code"),
            ("01a2", "dispute", "x", "code"),
            ("0102", "inquiry", "x", "kind"),
            ("0102", "", "x", "kind"),
            ("0102", "dispute", "", "name"),
            ("0102", "dispute", "a\0b", "name"),
        ];
        for (code, kind, name, field) in cases {
            let e = NewCategory::parse(code, kind, name, None).unwrap_err();
            assert_eq!(e.field, field, "{code:?} {kind:?} {name:?}");
        }
        let long = "名".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(NewCategory::parse("0102", "dispute", &long, None).unwrap_err().field, "name");
        let ok = NewCategory::parse(" 0102 ", "risk", " 邻里 ", None).unwrap();
        assert_eq!(
            (ok.code.as_str(), ok.kind, ok.name.as_str(), ok.active),
            ("0102", CategoryKind::Risk, "邻里", true)
        );
        assert!(!NewCategory::parse("0102", "risk", "n", Some(false)).unwrap().active);
    }
}
