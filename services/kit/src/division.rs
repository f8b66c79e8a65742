//! The 12-digit statistical division code (统计用区划代码): 2 province + 2 prefecture + 2 county +
//! 3 township + 3 village, higher levels padded with zeros.

/// True for exactly 12 ASCII digits.
pub fn is_code(code: &str) -> bool {
    code.len() == 12 && digits(code)
}

/// A grid's code: its village's code and 3 digits (15 in all); a micro-grid's extends its grid's likewise (18).
pub fn is_grid_code(code: &str) -> bool {
    matches!(code.len(), 15 | 18) && digits(code)
}

/// Any node of the tree: a division (12 digits), a grid (15) or a micro-grid (18). The one place the rule is
/// written; `kit::field::node_code` is its field check.
pub fn is_node_code(code: &str) -> bool {
    is_code(code) || is_grid_code(code)
}

fn digits(code: &str) -> bool {
    code.bytes().all(|b| b.is_ascii_digit())
}

/// The level the code's pattern gives: the lowest non-zero segment (1 province .. 5 village).
pub fn level(code: &str) -> u8 {
    match significant(code).len() {
        0..=2 => 1,
        3..=4 => 2,
        5..=6 => 3,
        7..=9 => 4,
        _ => 5,
    }
}

/// The code without its zero padding, segment-wise: `532901000000` → `532901`, `532901003000` → `532901003`.
pub fn significant(code: &str) -> &str {
    const CUTS: [usize; 5] = [2, 4, 6, 9, 12];
    let end = CUTS
        .iter()
        .rev()
        .copied()
        .find(|&cut| cut <= code.len() && code[..cut].bytes().skip(prev_cut(cut)).any(|b| b != b'0'))
        .unwrap_or(2);
    &code[..end.min(code.len())]
}

/// Whether `ancestor` (a division code) is `code` or above it in the tree; `code` may be a division or a grid
/// code, since every code starts with its ancestors' significant digits.
pub fn is_ancestor_or_self(ancestor: &str, code: &str) -> bool {
    is_code(ancestor) && code.starts_with(significant(ancestor))
}

/// The division one level up, padded to 12 digits: `532901003001` → `532901003000`; `None` for a province or
/// a code that is not one.
pub fn parent(code: &str) -> Option<String> {
    if !is_code(code) {
        return None;
    }
    let cut = match significant(code).len() {
        0..=2 => return None,
        3..=4 => 2,
        5..=6 => 4,
        7..=9 => 6,
        _ => 9,
    };
    Some(format!("{:0<12}", &code[..cut]))
}

fn prev_cut(cut: usize) -> usize {
    match cut {
        2 => 0,
        4 => 2,
        6 => 4,
        9 => 6,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_prefixes_follow_the_pattern() {
        for (code, lvl, sig) in [
            ("530000000000", 1, "53"),
            ("532900000000", 2, "5329"),
            ("532901000000", 3, "532901"),
            ("532901003000", 4, "532901003"),
            ("532901003001", 5, "532901003001"),
            ("441900003000", 4, "441900003"),
        ] {
            assert_eq!(level(code), lvl, "{code}");
            assert_eq!(significant(code), sig, "{code}");
        }
        assert!(is_code("532901003001"));
        assert_eq!(parent("532901003001").as_deref(), Some("532901003000"));
        assert_eq!(parent("532901000000").as_deref(), Some("532900000000"));
        assert_eq!(parent("530000000000"), None);
        assert_eq!(parent("5329"), None);
        assert!(!is_code("53290100300"));
    }

    #[test]
    fn a_node_is_a_division_a_grid_or_a_micro_grid() {
        for (code, node, grid) in [
            ("532901003001", true, false),
            ("532901003001002", true, true),
            ("532901003001002003", true, true),
            ("5329010030010", false, false),
            ("53290100300100", false, false),
            ("53290100300100200", false, false),
            ("5329010030010020030", false, false),
            ("53290100300100a", false, false),
            ("５３２９０１００３００１", false, false),
            ("", false, false),
        ] {
            assert_eq!((is_node_code(code), is_grid_code(code)), (node, grid), "{code}");
        }
    }
}
