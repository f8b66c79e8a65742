//! What every room of the registry speaks: node codes (12-digit divisions, 15/18-digit grids), the nation
//! above the provinces, and code-keyed paging. Proto-free and SQL-free; each parser names the field it refuses.

use kit::{FieldError, field};

/// The nation: the root above the provinces, which has no division row.
pub const NATION: &str = "000000000000";

// The node-code rule is kit's (`kit::division::is_node_code`), shared with every service.
pub use kit::division::is_grid_code;
pub use kit::field::node_code;

/// A 15- or 18-digit grid code.
pub fn grid_code<'a>(field_name: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = field::required(field_name, value)?;
    if is_grid_code(v) { Ok(v) } else { Err(FieldError::new(field_name, "must be a 15- or 18-digit grid code")) }
}

/// The prefix every code below `parent` starts with: a grid's micro-grids and a village's grids extend its
/// whole code; a division's descendants share its significant digits; the nation's are every code.
pub fn child_prefix(parent: &str) -> &str {
    if is_grid_code(parent) {
        parent
    } else if parent == NATION {
        ""
    } else {
        kit::division::significant(parent)
    }
}

/// A listing's page token (the last code of the previous page), checked to lie below `parent`.
pub fn page_token<'a>(token: &'a str, parent: &str) -> Result<&'a str, FieldError> {
    field::code_page_token("page_token", token, child_prefix(parent))
}

/// A requested page size: 0 means `default`, anything above `max` is `max`.
pub fn page_size(requested: u32, default: u32, max: u32) -> i64 {
    i64::from(if requested == 0 { default } else { requested.min(max) })
}

/// The next page's token: the last code of a full page, empty after the last page.
pub fn next_page_token<T>(page: &[T], limit: i64, code: impl Fn(&T) -> &str) -> String {
    match page.last() {
        Some(last) if page.len() as i64 == limit => code(last).to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_codes_are_divisions_or_grids_and_nothing_else() {
        for (value, ok) in [
            ("532901000000", true),
            ("532901003001002", true),
            ("532901003001002001", true),
            (" 532901000000 ", true),
            ("", false),
            ("5329010000", false),
            ("53290100000x", false),
            ("532901000000\0", false),
            ("５３２９０１００００００", false),
            ("😀", false),
            ("5329010030010", false),
        ] {
            let got = node_code("code", value);
            assert_eq!(got.is_ok(), ok, "{value:?}");
            if let Err(e) = got {
                assert_eq!(e.field, "code", "{value:?}");
            }
        }
        assert!(grid_code("grid_code", "532901000000").is_err(), "a division is not a grid");
        assert!(grid_code("grid_code", "532901003001002").is_ok());
    }

    #[test]
    fn page_tokens_lie_below_their_parent() {
        let village = "532901003001";
        for (token, ok) in [
            ("", true),
            ("532901003001002", true),
            ("532901003001", false),
            ("532902003001002", false),
            ("abc", false),
            ("532901003001002\0", false),
            ("😀", false),
        ] {
            assert_eq!(page_token(token, village).is_ok(), ok, "{token:?}");
        }
        assert_eq!(child_prefix(NATION), "");
        assert_eq!(child_prefix("532901000000"), "532901");
        assert_eq!(page_token("110101001001", NATION), Ok("110101001001"));
    }

    #[test]
    fn pages_are_bounded_and_tokens_follow_full_pages() {
        assert_eq!(page_size(0, 100, 1000), 100);
        assert_eq!(page_size(5000, 100, 1000), 1000);
        assert_eq!(page_size(7, 100, 1000), 7);
        let page = ["a", "b"];
        assert_eq!(next_page_token(&page, 2, |s| s), "b");
        assert_eq!(next_page_token(&page, 3, |s| s), "");
    }
}
