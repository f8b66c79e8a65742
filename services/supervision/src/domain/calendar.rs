//! The working-day calendar (工作日历) and the clocks that run on it. Pure: no SQL, no protobuf.
//!
//! A calendar is the State Council's exceptions to the Monday–Friday week: `holiday` days off (法定节假日 and
//! 调休 rest days, even on a weekday) and `workday` make-up working days (调休上班, always a Saturday or Sunday).
//! It is operator data, imported yearly from the schedule published each November (a CSV of `date,kind,name`),
//! never code.
//!
//! A time limit runs on one of three clocks. Each clock is a set of counting intervals per local day
//! (Asia/Shanghai); a limit is an amount of counted time, so a deadline is found by walking forward from the
//! start, and the time left when a clock is paused (挂账) is the counted time between now and the due time.
//! - **Calendar hours** count every hour, nights and holidays included (urgent cases, 12345's 2 h norm).
//! - **Working days** count whole working days, midnight to midnight: 1 working day from Friday 15:00 is due on
//!   Monday 15:00, and one started on a Saturday is due at the end of the next working day.
//! - **Working hours** count office hours of working days only (by default 08:30–12:00 and 14:30–18:00, Dali's
//!   常见作息; configurable).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use kit::code_enum;

code_enum! {
    /// What an exceptional day is.
    pub enum DayKind {
        /// A day off, even on a weekday.
        Holiday = "holiday",
        /// A make-up working day (调休上班) on a Saturday or Sunday.
        Workday = "workday",
    }
}

code_enum! {
    /// How a time limit's amount is counted.
    pub enum ClockKind {
        CalendarHours = "calendar_hours",
        WorkingDays = "working_days",
        WorkingHours = "working_hours",
    }
}

/// One row of a calendar: a date that is not what its weekday says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub date: NaiveDate,
    pub kind: DayKind,
    pub name: String,
}

/// A refused calendar file: the line (1-based, the header is line 1) and why. Nothing of a refused file is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

/// The longest name a row may carry, in characters.
pub const MAX_NAME_CHARS: usize = 40;

/// Parses a calendar CSV (`date,kind,name`, with that header), refusing the whole file at its first bad line: a
/// date that is not YYYY-MM-DD, a day listed twice, an unknown kind, a make-up workday that falls on a weekday
/// (it would change nothing, so the row is a mistake), a missing or over-long name, a NUL byte.
pub fn parse_csv(text: &str) -> Result<Vec<Exception>, LineError> {
    let mut seen: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    match lines.next() {
        Some((_, header)) if header.trim_start_matches('\u{feff}').trim() == "date,kind,name" => {}
        _ => return Err(LineError { line: 1, reason: "the first line must be the header date,kind,name".into() }),
    }
    for (line, raw) in lines {
        let bad = |reason: String| LineError { line, reason };
        if raw.trim().is_empty() {
            continue;
        }
        if raw.contains('\0') {
            return Err(bad("contains a NUL character".into()));
        }
        let mut cells = raw.splitn(3, ',').map(str::trim);
        let (date, kind, name) = match (cells.next(), cells.next(), cells.next()) {
            (Some(d), Some(k), Some(n)) => (d, k, n),
            _ => return Err(bad("expected three columns: date,kind,name".into())),
        };
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .filter(|_| date.len() == 10)
            .ok_or_else(|| bad(format!("date {} is not a date (YYYY-MM-DD)", kit::field::excerpt(date))))?;
        let kind = DayKind::parse("kind", kind).map_err(|e| bad(e.to_string()))?;
        if name.is_empty() {
            return Err(bad("name is required".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(bad(format!("name is longer than {MAX_NAME_CHARS} characters")));
        }
        if let Some(first) = seen.insert(date, line) {
            return Err(bad(format!("{date} is already listed on line {first}")));
        }
        if kind == DayKind::Workday && !is_weekend(date) {
            return Err(bad(format!("{date} is a {}; a make-up workday must be a Saturday or Sunday", date.weekday())));
        }
        rows.push(Exception { date, kind, name: name.to_owned() });
    }
    Ok(rows)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Office hours of a working day, in local time: the intervals the working-hours clock counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours(Vec<(NaiveTime, NaiveTime)>);

impl OfficeHours {
    /// Ordered, non-overlapping, non-empty intervals; `None` otherwise.
    pub fn new(intervals: Vec<(NaiveTime, NaiveTime)>) -> Option<Self> {
        let ordered = intervals.iter().all(|(a, b)| a < b) && intervals.windows(2).all(|w| w[0].1 <= w[1].0);
        (ordered && !intervals.is_empty()).then_some(Self(intervals))
    }
}

impl Default for OfficeHours {
    fn default() -> Self {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
        Self(vec![(t(8, 30), t(12, 0)), (t(14, 30), t(18, 0))])
    }
}

/// A center's calendar: the exceptions it inherited or imported, and its office hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    exceptions: BTreeMap<NaiveDate, DayKind>,
    office: OfficeHours,
}

/// How far a clock may walk looking for counted time (ten years): a limit is days or weeks, so reaching this
/// means a calendar with no working days, and the deadline is put at the bound rather than looping forever.
const MAX_WALK_DAYS: i64 = 3660;

impl Calendar {
    pub fn new(exceptions: impl IntoIterator<Item = (NaiveDate, DayKind)>, office: OfficeHours) -> Self {
        Self { exceptions: exceptions.into_iter().collect(), office }
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.exceptions.get(&date) {
            Some(DayKind::Holiday) => false,
            Some(DayKind::Workday) => true,
            None => !is_weekend(date),
        }
    }

    /// The counted intervals of one local day under `clock`, as UTC instants.
    fn counted(&self, clock: ClockKind, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let at = |t: NaiveTime| local_instant(date.and_time(t));
        let whole_day = || vec![(at(NaiveTime::MIN), local_instant(next_day(date).and_time(NaiveTime::MIN)))];
        match clock {
            ClockKind::CalendarHours => whole_day(),
            ClockKind::WorkingDays if self.is_working_day(date) => whole_day(),
            ClockKind::WorkingHours if self.is_working_day(date) => {
                self.office.0.iter().map(|&(a, b)| (at(a), at(b))).collect()
            }
            ClockKind::WorkingDays | ClockKind::WorkingHours => Vec::new(),
        }
    }

    /// When `amount` of counted time started at `start` runs out: the due time.
    pub fn advance(&self, clock: ClockKind, start: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        let mut left = amount.max(Duration::zero());
        let mut date = local_date(start);
        for _ in 0..MAX_WALK_DAYS {
            for (from, to) in self.counted(clock, date) {
                let from = from.max(start);
                if to <= from {
                    continue;
                }
                if to - from >= left {
                    return from + left;
                }
                left -= to - from;
            }
            date = next_day(date);
        }
        start + Duration::days(MAX_WALK_DAYS)
    }

    /// Counted time between `from` and `to` (zero if `to` is not later): what is left of a limit when its clock
    /// is paused, and how late a deadline was met.
    pub fn elapsed(&self, clock: ClockKind, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let mut date = local_date(from);
        let last = local_date(to);
        while from < to && date <= last {
            for (a, b) in self.counted(clock, date) {
                let (a, b) = (a.max(from), b.min(to));
                if b > a {
                    total += b - a;
                }
            }
            date = next_day(date);
        }
        total
    }
}

fn local_date(ts: DateTime<Utc>) -> NaiveDate {
    ts.with_timezone(&kit::time::shanghai()).date_naive()
}

fn next_day(date: NaiveDate) -> NaiveDate {
    date.succ_opt().unwrap_or(date)
}

fn local_instant(local: chrono::NaiveDateTime) -> DateTime<Utc> {
    // A fixed offset maps every local time to exactly one instant.
    kit::time::shanghai().from_local_datetime(&local).single().map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../data/cn_holidays_2025_2026.csv");

    fn local(s: &str) -> DateTime<Utc> {
        local_instant(chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
    }

    fn shipped() -> Calendar {
        Calendar::new(parse_csv(SHIPPED).unwrap().into_iter().map(|e| (e.date, e.kind)), OfficeHours::default())
    }

    #[test]
    fn the_shipped_schedule_parses_with_the_counts_its_readme_gives() {
        let rows = parse_csv(SHIPPED).unwrap();
        let count = |year, kind| rows.iter().filter(|e| e.date.year() == year && e.kind == kind).count();
        assert_eq!((count(2025, DayKind::Holiday), count(2025, DayKind::Workday)), (28, 5));
        assert_eq!((count(2026, DayKind::Holiday), count(2026, DayKind::Workday)), (33, 6));
    }

    #[test]
    fn a_bad_file_is_refused_at_its_line() {
        let refused = |body: &str| parse_csv(&format!("date,kind,name\n{body}")).unwrap_err();
        assert_eq!(refused("2025-02-30,holiday,x").line, 2);
        assert!(refused("2025-02-30,holiday,x").reason.contains("not a date"));
        assert!(refused("25-1-1,holiday,x").reason.contains("not a date"));
        let dup = refused("2025-10-01,holiday,国庆节\n2025-10-02,holiday,国庆节\n2025-10-01,holiday,国庆节");
        assert_eq!((dup.line, dup.reason.as_str()), (4, "2025-10-01 is already listed on line 2"));
        let weekday = refused("2025-10-01,holiday,国庆节\n2025-10-09,workday,国庆节");
        assert_eq!(weekday.line, 3);
        assert!(weekday.reason.contains("Saturday or Sunday"), "{}", weekday.reason);
        assert!(refused("2025-10-01,vacation,x").reason.contains("kind"));
        assert!(refused("2025-10-01,holiday,").reason.contains("name"));
        assert!(refused("2025-10-01,holiday,国\0庆").reason.contains("NUL"));
        assert!(refused("2025-10-01").reason.contains("three columns"));
        assert_eq!(parse_csv("when,what\n").unwrap_err().line, 1);
        assert_eq!(parse_csv("date,kind,name\n\n2025-10-01,holiday,国庆节 🎉\n").unwrap().len(), 1);
    }

    #[test]
    fn holidays_and_make_up_days_decide_working_days() {
        let cal = shipped();
        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(!cal.is_working_day(day("2025-10-01")), "National Day, a Wednesday");
        assert!(cal.is_working_day(day("2025-09-28")), "a Sunday worked in exchange");
        assert!(cal.is_working_day(day("2025-10-09")), "an ordinary Thursday");
        assert!(cal.is_working_day(day("2025-10-11")), "a Saturday worked in exchange");
        assert!(!cal.is_working_day(day("2025-10-18")), "an ordinary Saturday");
    }

    #[test]
    fn working_days_skip_weekends_and_the_golden_week() {
        let cal = shipped();
        let one = Duration::days(1);
        // Friday 15:00 plus one working day: Monday 15:00.
        assert_eq!(cal.advance(ClockKind::WorkingDays, local("2025-09-05 15:00"), one), local("2025-09-08 15:00"));
        // Started on a Saturday: the clock starts at the next working day's midnight.
        assert_eq!(cal.advance(ClockKind::WorkingDays, local("2025-09-06 10:00"), one), local("2025-09-09 00:00"));
        // Tuesday 30 September 10:00 plus one: 1–8 October are off, so Thursday 9 October 10:00.
        assert_eq!(cal.advance(ClockKind::WorkingDays, local("2025-09-30 10:00"), one), local("2025-10-09 10:00"));
        // Five working days from Friday 26 September: Sat 27 off, Sun 28 worked, 29, 30, then 9 and 10 October.
        let five = Duration::days(5);
        assert_eq!(cal.advance(ClockKind::WorkingDays, local("2025-09-26 09:00"), five), local("2025-10-10 09:00"));
        // Calendar hours ignore all of it.
        let two_hours = Duration::hours(2);
        assert_eq!(
            cal.advance(ClockKind::CalendarHours, local("2025-10-01 23:00"), two_hours),
            local("2025-10-02 01:00")
        );
    }

    #[test]
    fn working_hours_count_office_time_only() {
        let cal = shipped();
        // Friday 17:00 plus 2 working hours: 1 h on Friday, then Monday 08:30 plus 1 h.
        let due = cal.advance(ClockKind::WorkingHours, local("2025-09-05 17:00"), Duration::hours(2));
        assert_eq!(due, local("2025-09-08 09:30"));
        // Over lunch: 11:30 plus 1 h is 15:00.
        let due = cal.advance(ClockKind::WorkingHours, local("2025-09-08 11:30"), Duration::hours(1));
        assert_eq!(due, local("2025-09-08 15:00"));
    }

    #[test]
    fn elapsed_is_the_inverse_of_advance() {
        let cal = shipped();
        let start = local("2025-09-26 09:00");
        for clock in ClockKind::ALL.iter().copied() {
            for amount in [Duration::hours(1), Duration::hours(30), Duration::days(5)] {
                let due = cal.advance(clock, start, amount);
                assert_eq!(cal.elapsed(clock, start, due), amount, "{clock} {amount}");
            }
        }
        assert_eq!(cal.elapsed(ClockKind::WorkingDays, start, start - Duration::hours(1)), Duration::zero());
    }

    #[test]
    fn office_hours_must_be_ordered() {
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        assert!(OfficeHours::new(vec![(t(9), t(12)), (t(13), t(17))]).is_some());
        assert!(OfficeHours::new(vec![(t(13), t(17)), (t(9), t(12))]).is_none());
        assert!(OfficeHours::new(vec![(t(9), t(9))]).is_none());
        assert!(OfficeHours::new(vec![]).is_none());
    }
}
