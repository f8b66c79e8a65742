//! Likely duplicates (疑似重复件): the same matter reported twice, by a hotline call and by a grid worker, say.
//! Pure: which open cases a registration resembles, and why. The database narrows the field first (same village,
//! open, registered within the window); this module scores what is left.
//!
//! A party's phone is matched through a blind index: a keyed digest of the normalised number (HMAC under the
//! personal-data key, `kit::pii::Sealer::fingerprint`), stored beside the sealed value. Equal numbers give equal
//! digests, so a match needs no decryption, and the digest alone cannot be reversed by trying every number
//! without the key. Text is compared by character bigrams (Dice coefficient), which suits Chinese, where words
//! are not separated by spaces.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use kit::ids::{CaseId, CaseNo};

/// How far back a registration looks for the same matter, by default.
pub const DEFAULT_WINDOW: Duration = Duration::days(30);

/// Text at least this similar makes a case a candidate on its own.
pub const TEXT_THRESHOLD: f64 = 0.5;

/// The most candidates shown to the operator.
pub const MAX_CANDIDATES: usize = 10;

/// The number as digits only, without the country prefix, if it is a mainland mobile number.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.strip_prefix("0086").or_else(|| digits.strip_prefix("86")).unwrap_or(&digits);
    kit::pii::valid_phone(digits).then(|| digits.to_owned())
}

/// The blind index of a phone number (`None` if it is not one).
pub fn phone_index(sealer: &kit::pii::Sealer, raw: &str) -> Option<Vec<u8>> {
    normalize_phone(raw).map(|n| sealer.fingerprint(&["zongzhi.phone-index.v1", &n]))
}

/// Adjacent pairs of the text's letters, digits and CJK characters (punctuation and spaces dropped, Latin
/// lower-cased).
pub fn bigrams(text: &str) -> BTreeSet<(char, char)> {
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    chars.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Dice's coefficient of two bigram sets: 1 for the same text, 0 for nothing in common.
pub fn similarity(a: &BTreeSet<(char, char)>, b: &BTreeSet<(char, char)>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.intersection(b).count();
    // Counts of bigrams are far below 2^52, so the conversion is exact.
    2.0 * shared as f64 / (a.len() + b.len()) as f64
}

/// Categories are compatible when they share their major group (the first two digits: 01 矛盾纠纷 …), since two
/// reporters of one matter often file it under neighbouring categories.
pub fn compatible_categories(a: &str, b: &str) -> bool {
    a.len() >= 2 && b.len() >= 2 && a.get(..2) == b.get(..2)
}

/// What is being registered, as the matcher sees it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub village_code: String,
    pub grid_code: String,
    pub category_code: String,
    /// Title and description together.
    pub text: String,
    pub phone_indexes: Vec<Vec<u8>>,
    pub at: DateTime<Utc>,
}

/// An open case the database found in the probe's village and window.
#[derive(Debug, Clone)]
pub struct Known {
    pub case_id: CaseId,
    pub case_no: CaseNo,
    pub village_code: String,
    pub grid_code: String,
    pub category_code: String,
    pub text: String,
    pub phone_indexes: Vec<Vec<u8>>,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub case_id: CaseId,
    pub case_no: CaseNo,
    /// 0–1, higher is likelier.
    pub score: f64,
    pub same_phone: bool,
    pub same_grid: bool,
    pub text_similarity: f64,
}

/// The likely duplicates among `known`, likeliest first: in the same village, a compatible category, within the
/// window either side of the probe, and either a party's phone in common or text at least [`TEXT_THRESHOLD`] alike. A shared phone scores
/// highest; the same grid adds a little.
pub fn candidates(probe: &Probe, known: &[Known], window: Duration) -> Vec<Candidate> {
    let probe_text = bigrams(&probe.text);
    let mut found: Vec<Candidate> = known
        .iter()
        .filter(|k| k.village_code == probe.village_code && !probe.village_code.is_empty())
        .filter(|k| compatible_categories(&k.category_code, &probe.category_code))
        // Either side of the probe: at registration nothing later exists, and a dispatcher looking at an older
        // case also wants the reports that came after it.
        .filter(|k| (probe.at - k.registered_at).abs() <= window)
        .filter_map(|k| {
            let same_phone = k.phone_indexes.iter().any(|i| probe.phone_indexes.contains(i));
            let text_similarity = similarity(&probe_text, &bigrams(&k.text));
            if !same_phone && text_similarity < TEXT_THRESHOLD {
                return None;
            }
            let same_grid = !k.grid_code.is_empty() && k.grid_code == probe.grid_code;
            let score =
                (if same_phone { 0.6 } else { 0.0 } + text_similarity * 0.35 + if same_grid { 0.05 } else { 0.0 })
                    .min(1.0);
            Some(Candidate {
                case_id: k.case_id,
                case_no: k.case_no.clone(),
                score,
                same_phone,
                same_grid,
                text_similarity,
            })
        })
        .collect();
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.case_no.cmp(&b.case_no)));
    found.truncate(MAX_CANDIDATES);
    found
}

/// A merge as asked for: the case merged away, the case that carries the matter on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    pub case_id: CaseId,
    pub into_case_id: CaseId,
    pub reason: String,
}

impl MergeRequest {
    pub fn parse(case_id: &str, into_case_id: &str, reason: &str) -> Result<Self, kit::FieldError> {
        let case_id = CaseId::parse("case_id", case_id)?;
        let into_case_id = CaseId::parse("into_case_id", into_case_id)?;
        if case_id == into_case_id {
            return Err(kit::FieldError::new("into_case_id", "is the case itself"));
        }
        Ok(Self { case_id, into_case_id, reason: kit::field::text("reason", reason, 500)?.to_owned() })
    }
}

/// An unmerge as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmergeRequest {
    pub case_id: CaseId,
    pub reason: String,
}

impl UnmergeRequest {
    pub fn parse(case_id: &str, reason: &str) -> Result<Self, kit::FieldError> {
        Ok(Self {
            case_id: CaseId::parse("case_id", case_id)?,
            reason: kit::field::text("reason", reason, 500)?.to_owned(),
        })
    }
}

/// Why a merge is refused, by the field that names the problem. Merging into itself is a bad argument; the
/// rest depend on the cases' state (the caller answers them FAILED_PRECONDITION, naming the field).
pub fn check_merge(
    case: CaseId,
    into: CaseId,
    into_is_open: bool,
    merged_into: impl Fn(CaseId) -> Option<CaseId>,
) -> Result<(), kit::FieldError> {
    let bad = |why: &str| Err(kit::FieldError::new("into_case_id", why));
    if case == into {
        return bad("is the case itself");
    }
    if !into_is_open {
        return bad("is closed; merge into an open case");
    }
    // Following the target's own merges must never lead back here: A into B while B is merged into A would
    // leave neither case handled. The walk is bounded, since a stored chain is at most as long as the cases.
    let mut at = into;
    for _ in 0..64 {
        match merged_into(at) {
            Some(next) if next == case => return bad("is merged into this case; that would be a cycle"),
            Some(next) => at = next,
            None => return Ok(()),
        }
    }
    bad("ends a chain of merges too long to follow")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn known(no: &str, text: &str, phones: &[&[u8]], hours_ago: i64) -> Known {
        Known {
            case_id: CaseId::random(),
            case_no: CaseNo::from_stored(no),
            village_code: "532901003001".into(),
            grid_code: "532901003001001".into(),
            category_code: "0102".into(),
            text: text.into(),
            phone_indexes: phones.iter().map(|p| p.to_vec()).collect(),
            registered_at: Utc::now() - Duration::hours(hours_ago),
        }
    }

    fn probe(text: &str, phones: &[&[u8]]) -> Probe {
        Probe {
            village_code: "532901003001".into(),
            grid_code: "532901003001002".into(),
            category_code: "0103".into(),
            text: text.into(),
            phone_indexes: phones.iter().map(|p| p.to_vec()).collect(),
            at: Utc::now(),
        }
    }

    #[test]
    fn phones_normalise_and_index_without_revealing_the_number() {
        assert_eq!(normalize_phone("+86 138-0000-5678").as_deref(), Some("13800005678"));
        assert_eq!(normalize_phone("0086 13800005678").as_deref(), Some("13800005678"));
        assert_eq!(normalize_phone("0872-2123456"), None, "a landline is not matched");
        let sealer = kit::pii::Sealer::new(kit::pii::DEV_KEY);
        let a = phone_index(&sealer, "138 0000 5678").unwrap();
        assert_eq!(Some(a.clone()), phone_index(&sealer, "+8613800005678"));
        assert_ne!(Some(a.clone()), phone_index(&sealer, "13800005679"));
        assert!(!a.windows(4).any(|w| w == b"1380"), "the digest does not carry the digits");
        let other = kit::pii::Sealer::new(*b"another-key-16b!");
        assert_ne!(Some(a), phone_index(&other, "13800005678"), "keyed: without the key it cannot be rebuilt");
    }

    #[test]
    fn similar_text_and_shared_phones_make_candidates() {
        let text = "下关镇某村张某与邻居李某因院墙搭建雨棚影响采光发生纠纷";
        let rows = [
            known("A-1", "张某与邻居李某因院墙搭建雨棚影响采光发生纠纷，请求调解", &[], 5),
            known("A-2", "村口道路积水严重，影响通行", &[b"p1"], 5),
            known("A-3", "村口道路积水严重，影响通行", &[], 5),
            known("A-4", text, &[], 24 * 40),
            Known { category_code: "0201".into(), ..known("A-5", text, &[], 5) },
            Known { village_code: "532901003002".into(), ..known("A-6", text, &[], 5) },
        ];
        let found = candidates(&probe(text, &[b"p1"]), &rows, DEFAULT_WINDOW);
        let numbers: Vec<&str> = found.iter().map(|c| c.case_no.as_str()).collect();
        assert_eq!(numbers, ["A-2", "A-1"], "a shared phone ranks first: {found:?}");
        assert!(found[0].same_phone && found[0].text_similarity < TEXT_THRESHOLD);
        assert!(found[1].text_similarity > 0.7 && !found[1].same_phone);
    }

    #[test]
    fn merges_refuse_self_closed_targets_and_cycles() {
        let (a, b, c) = (CaseId::random(), CaseId::random(), CaseId::random());
        let none = |_| None;
        assert!(check_merge(a, b, true, none).is_ok());
        assert!(check_merge(a, a, true, none).unwrap_err().reason.contains("itself"));
        assert!(check_merge(a, b, false, none).unwrap_err().reason.contains("closed"));
        // b is merged into c, c into a: merging a into b would close the circle.
        let chain = |x| {
            if x == b {
                Some(c)
            } else if x == c {
                Some(a)
            } else {
                None
            }
        };
        let err = check_merge(a, b, true, chain).unwrap_err();
        assert_eq!((err.field.as_str(), err.reason.contains("cycle")), ("into_case_id", true));
    }

    #[test]
    fn merge_requests_parse_or_name_the_field() {
        let (a, b) = ("5f0e7a4c-0000-4000-8000-000000000001", "5f0e7a4c-0000-4000-8000-000000000002");
        assert_eq!(MergeRequest::parse(a, b, " 同一纠纷 ").unwrap().reason, "同一纠纷");
        for (name, r, field) in [
            ("bad case", MergeRequest::parse("x", b, "r"), "case_id"),
            ("bad target", MergeRequest::parse(a, "", "r"), "into_case_id"),
            ("itself", MergeRequest::parse(a, a, "r"), "into_case_id"),
            ("no reason", MergeRequest::parse(a, b, " "), "reason"),
            ("NUL in reason", MergeRequest::parse(a, b, "a\0b"), "reason"),
        ] {
            assert_eq!(r.err().map(|e| e.field), Some(field.to_owned()), "{name}");
        }
        assert_eq!(UnmergeRequest::parse(a, "").err().map(|e| e.field).as_deref(), Some("reason"));
    }

    #[test]
    fn later_reports_are_candidates_too_within_the_window() {
        let text = "村口道路积水严重，影响通行";
        let mut p = probe(text, &[]);
        p.at = Utc::now() - Duration::days(2);
        let rows = [known("B-1", text, &[], 0), known("B-2", text, &[], 24 * 35)];
        let found = candidates(&p, &rows, DEFAULT_WINDOW);
        assert_eq!(found.iter().map(|c| c.case_no.as_str()).collect::<Vec<_>>(), ["B-1"]);
    }

    #[test]
    fn text_similarity_ignores_punctuation_and_case() {
        let a = bigrams("Wi-Fi 信号塔，辐射！");
        let b = bigrams("wifi信号塔辐射");
        assert!((similarity(&a, &b) - 1.0).abs() < f64::EPSILON);
        assert_eq!(similarity(&bigrams(""), &b), 0.0);
        assert_eq!(similarity(&bigrams("🚰\0"), &bigrams("🚰\0")), 0.0, "no letters, no likeness");
    }
}
