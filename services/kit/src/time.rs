//! Time is stored in UTC and shown in Asia/Shanghai. China keeps no daylight saving, so a fixed +08:00 offset
//! is exact and needs no time-zone database.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// RFC 3339 in Asia/Shanghai, e.g. `2025-08-07T14:03:12+08:00`.
pub fn local(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&shanghai()).to_rfc3339_opts(SecondsFormat::Secs, false)
}

pub fn local_opt(ts: Option<DateTime<Utc>>) -> String {
    ts.map(local).unwrap_or_default()
}

/// The local calendar date as YYYYMMDD, as case numbers carry it.
pub fn local_date(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&shanghai()).format("%Y%m%d").to_string()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
