//! Opaque page tokens for keyset paging: the last row's sort key and a fingerprint of the filters it was
//! issued under, base64url-encoded. A token is refused (INVALID_ARGUMENT on `page_token`) when it does not
//! decode, has the wrong shape, or comes from a query with other filters, so a client never silently gets a
//! page starting somewhere arbitrary. The token is not a secret: it only positions a read that scope still
//! filters.

use crate::FieldError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

const FIELD: &str = "page_token";
const VERSION: &str = "p1";
/// Longer than any token this module issues; anything longer is refused before decoding.
const MAX_TOKEN: usize = 256;

/// The one refusal of a page token that is not one this service issued (garbage, a wrong shape, a NUL): every
/// listing, keyset-paged or not, answers it the same way.
pub fn bad_token() -> FieldError {
    FieldError::new(FIELD, "is not a token this service issued")
}

/// The token as a listing keeps it: trimmed, refused as [`bad_token`] when it holds a NUL or is huge.
pub fn clean_token(token: &str) -> Result<String, FieldError> {
    Ok(crate::field::clean(FIELD, token).map_err(|_| bad_token())?.trim().to_owned())
}

/// The filters a page token is bound to, as one 64-bit FNV-1a hash of their canonical form.
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0x1f]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

pub fn encode(filters: u64, key: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}|{filters:016x}|{}", key.join("|")))
}

/// The sort key a token carries (`arity` fields), or None for the first page (an empty token).
pub fn decode(token: &str, filters: u64, arity: usize) -> Result<Option<Vec<String>>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN {
        return Err(bad_token());
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token())?;
    let text = String::from_utf8(raw).map_err(|_| bad_token())?;
    let mut fields = text.split('|');
    if fields.next() != Some(VERSION) {
        return Err(bad_token());
    }
    if fields.next() != Some(format!("{filters:016x}").as_str()) {
        return Err(FieldError::new(FIELD, "was issued for other filters; start again without it"));
    }
    let key: Vec<String> = fields.map(str::to_owned).collect();
    if key.len() == arity { Ok(Some(key)) } else { Err(bad_token()) }
}

/// Key fields in a token: times as microseconds since the epoch (`-` for none), ids as UUIDs, flags as 0/1.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.timestamp_micros().to_string())
}

pub fn parse_time(s: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    if s == "-" {
        return Ok(None);
    }
    s.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).map(Some).ok_or_else(bad_token)
}

pub fn parse_id(s: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(s).map_err(|_| bad_token())
}

pub fn parse_flag(s: &str) -> Result<bool, FieldError> {
    match s {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(bad_token()),
    }
}

/// The page size asked for: 0 means the default, more than the maximum is read as the maximum.
pub fn size(asked: u32, default: u32, max: u32) -> i64 {
    i64::from(if asked == 0 { default } else { asked.min(max) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_anything_else() {
        let f = fingerprint(&["accepted", ""]);
        let key = vec!["1".to_owned(), time(None), Uuid::nil().to_string()];
        let token = encode(f, &key);
        assert_eq!(decode(&token, f, 3).unwrap(), Some(key));
        assert_eq!(decode("", f, 3).unwrap(), None);
        let other = fingerprint(&["dispatched", ""]);
        for (name, t, filters) in [
            ("garbage", "not a token!", f),
            ("other filters", token.as_str(), other),
            ("wrong arity", &encode(f, &["1".to_owned()]), f),
            ("huge", &"A".repeat(1000), f),
            ("wrong version", &URL_SAFE_NO_PAD.encode("p0|0|1|2|3"), f),
        ] {
            assert_eq!(decode(t, filters, 3).unwrap_err().field, FIELD, "{name}");
        }
        assert!(fingerprint(&["a", "bc"]) != fingerprint(&["ab", "c"]), "parts are delimited");
    }
}
