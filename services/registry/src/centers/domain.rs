//! Centers and departments: how a department is stationed, a rotating department's schedule and who is on
//! duty on a day, and the parsing of departments and schedule lines as callers send them. Proto-free and
//! SQL-free.

use chrono::{Datelike, NaiveDate};
use kit::{FieldError, code_enum, field};

code_enum! {
    /// How a department is stationed at a center: 常驻, 轮驻 (by schedule), 随驻 (on call).
    pub enum Stationing {
        Resident = "resident",
        Rotating = "rotating",
        OnCall = "on_call",
    }
}

/// A department stationed at a center, with the case categories (code prefixes) it handles.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Department {
    pub code: String,
    pub name: String,
    pub center_code: String,
    pub stationing: Stationing,
    pub category_prefixes: Vec<String>,
    /// Closed or retired: receives no more cases.
    pub retired: bool,
}

impl Department {
    /// A department to put, every field named as `department.<field>`.
    pub fn parse(
        code: &str,
        name: &str,
        center_code: &str,
        stationing: &str,
        category_prefixes: Vec<String>,
        retired: bool,
    ) -> Result<Self, FieldError> {
        let department = Department {
            code: field::text("department.code", code, 64)?.to_owned(),
            name: field::text("department.name", name, 100)?.to_owned(),
            center_code: field::division_code("department.center_code", center_code)?.to_owned(),
            stationing: Stationing::parse("department.stationing", stationing)?,
            category_prefixes,
            retired,
        };
        check_category_prefixes(&department.category_prefixes)?;
        Ok(department)
    }
}

/// The categories a department handles arrive unparsed inside the department message: at most 64 prefixes of
/// 1 to 6 digits, so nothing unbounded (or a NUL, which PostgreSQL refuses) reaches the table.
fn check_category_prefixes(prefixes: &[String]) -> Result<(), FieldError> {
    if prefixes.len() > 64 {
        return Err(FieldError::new("department.category_prefixes", "has more than 64 entries"));
    }
    for (i, p) in prefixes.iter().enumerate() {
        if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                format!("department.category_prefixes[{i}]"),
                "must be a category code prefix of 1 to 6 digits",
            ));
        }
    }
    Ok(())
}

/// When a rotation line applies: a weekday (ISO, 1 Monday .. 7 Sunday) or an inclusive date range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Weekday(u8),
    Dates(NaiveDate, NaiveDate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub when: When,
    pub stationed: bool,
}

/// The most lines one schedule may have.
pub const MAX_ROTATION_LINES: usize = 64;

/// One schedule line as sent: a weekday (0 for none) or a date range, and whether the department is there.
pub struct RotationFields<'a> {
    pub weekday: u32,
    pub from_date: &'a str,
    pub to_date: &'a str,
    pub stationed: bool,
}

/// A whole schedule, each line's fields named `entries[i].<field>`.
pub fn parse_rotation(lines: &[RotationFields<'_>]) -> Result<Vec<Rotation>, FieldError> {
    if lines.len() > MAX_ROTATION_LINES {
        return Err(FieldError::new("entries", format!("has more than {MAX_ROTATION_LINES} lines")));
    }
    lines.iter().enumerate().map(|(i, e)| rotation_line(i, e)).collect()
}

fn rotation_line(i: usize, e: &RotationFields<'_>) -> Result<Rotation, FieldError> {
    let has_dates = !e.from_date.trim().is_empty() || !e.to_date.trim().is_empty();
    let when = match (e.weekday, has_dates) {
        (1..=7, false) => When::Weekday(u8::try_from(e.weekday).unwrap_or(0)),
        (0, true) => {
            let (from, to) = (
                date(&format!("entries[{i}].from_date"), e.from_date)?,
                date(&format!("entries[{i}].to_date"), e.to_date)?,
            );
            if from > to {
                return Err(FieldError::new(format!("entries[{i}].to_date"), "is before from_date"));
            }
            When::Dates(from, to)
        }
        (0, false) => {
            return Err(FieldError::new(format!("entries[{i}].weekday"), "is required unless a date range is given"));
        }
        (1..=7, true) => {
            return Err(FieldError::new(format!("entries[{i}].weekday"), "cannot be combined with a date range"));
        }
        _ => return Err(FieldError::new(format!("entries[{i}].weekday"), "must be 1 (Monday) to 7 (Sunday)")),
    };
    Ok(Rotation { when, stationed: e.stationed })
}

/// A calendar date as YYYY-MM-DD.
pub fn date(field_name: &str, value: &str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(field::required(field_name, value)?, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field_name, "must be a date as YYYY-MM-DD"))
}

/// The day a duty listing asks about: the date given, or `today` when none is.
pub fn duty_day(value: &str, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    if value.trim().is_empty() { Ok(today) } else { date("date", value) }
}

/// A department with its schedule and whether it is on duty on the day asked about.
pub struct Stationed {
    pub department: Department,
    pub on_duty: bool,
    pub rotation: Vec<Rotation>,
}

/// Whether the department receives cases on `date`: never once retired, else as [`on_duty`] says.
pub fn duty(d: &Department, rotation: &[Rotation], date: NaiveDate) -> bool {
    !d.retired && on_duty(d.stationing, rotation, date)
}

/// Resident departments are always there and on-call ones never (they come when called). A rotating one
/// follows its schedule: date ranges outrank weekdays, "not stationed" wins among lines of the same kind, and
/// a day no line covers is a day off.
pub fn on_duty(stationing: Stationing, rotation: &[Rotation], date: NaiveDate) -> bool {
    match stationing {
        Stationing::Resident => true,
        Stationing::OnCall => false,
        Stationing::Rotating => {
            let weekday = u8::try_from(date.weekday().number_from_monday()).unwrap_or(0);
            let dated: Vec<bool> = rotation
                .iter()
                .filter(|r| matches!(r.when, When::Dates(f, t) if f <= date && date <= t))
                .map(|r| r.stationed)
                .collect();
            let applying = if dated.is_empty() {
                rotation.iter().filter(|r| r.when == When::Weekday(weekday)).map(|r| r.stationed).collect()
            } else {
                dated
            };
            !applying.is_empty() && applying.iter().all(|s| *s)
        }
    }
}

/// Centers exist at levels 2-5 only.
pub fn center_level(code: &str, level: i16) -> Result<(), kit::Error> {
    if (2..=5).contains(&level) {
        Ok(())
    } else {
        Err(kit::Error::failed_precondition(format!("a center exists at levels 2-5 only; {code} is level {level}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        date("d", s).expect("a date")
    }

    fn line<'a>(weekday: u32, from_date: &'a str, to_date: &'a str) -> RotationFields<'a> {
        RotationFields { weekday, from_date, to_date, stationed: true }
    }

    #[test]
    fn schedule_lines_name_the_entry_and_field_they_refuse() {
        assert_eq!(parse_rotation(&[line(1, "", "")]).unwrap()[0].when, When::Weekday(1));
        let ok = parse_rotation(&[line(0, "2026-01-01", "2026-01-31")]).unwrap();
        assert_eq!(ok[0].when, When::Dates(day("2026-01-01"), day("2026-01-31")));
        for (l, field) in [
            (line(0, "", ""), "entries[0].weekday"),
            (line(8, "", ""), "entries[0].weekday"),
            (line(3, "2026-01-01", "2026-01-02"), "entries[0].weekday"),
            (line(0, "2026-01-31", "2026-01-01"), "entries[0].to_date"),
            (line(0, "2026-13-01", "2026-01-01"), "entries[0].from_date"),
            (line(0, "2026-01-01", ""), "entries[0].to_date"),
            (line(0, "😀", "2026-01-01"), "entries[0].from_date"),
            (line(0, "2026-01-01\0", "2026-01-02"), "entries[0].from_date"),
        ] {
            assert_eq!(parse_rotation(&[line(1, "", ""), l]).unwrap_err().field.replace("[1]", "[0]"), field);
        }
        let many: Vec<RotationFields<'_>> = (0..65).map(|_| line(1, "", "")).collect();
        assert_eq!(parse_rotation(&many).unwrap_err().field, "entries");
        assert_eq!(duty_day("", day("2026-03-04")), Ok(day("2026-03-04")));
        assert_eq!(duty_day("04/03/2026", day("2026-03-04")).unwrap_err().field, "date");
    }

    #[test]
    fn departments_are_checked_field_by_field() {
        /// code, name, center_code, stationing; then the category prefixes.
        const OK: [&str; 4] = ["mediation", "调解室", "532901000000", "rotating"];
        let department = |i: usize, value: &str, prefixes: &[&str]| {
            let mut f = OK;
            f[i] = value;
            Department::parse(f[0], f[1], f[2], f[3], prefixes.iter().map(|p| (*p).to_owned()).collect(), false)
        };
        assert_eq!(department(0, OK[0], &["01"]).unwrap().stationing, Stationing::Rotating);
        let long = "x".repeat(65);
        let many = ["1"; 65];
        for (field, i, value, prefixes) in [
            ("department.code", 0, "", &["01"][..]),
            ("department.code", 0, long.as_str(), &[]),
            ("department.name", 1, "a\0", &[]),
            ("department.center_code", 2, "5329", &[]),
            ("department.stationing", 3, "sometimes", &[]),
            ("department.category_prefixes[0]", 0, OK[0], &["0x"]),
            ("department.category_prefixes[1]", 0, OK[0], &["1", "1234567"]),
            ("department.category_prefixes", 0, OK[0], &many),
        ] {
            assert_eq!(department(i, value, prefixes).unwrap_err().field, field, "{value:?} {prefixes:?}");
        }
    }

    #[test]
    fn duty_follows_stationing_and_the_schedule() {
        let monday = day("2026-03-02");
        let weekly = [Rotation { when: When::Weekday(1), stationed: true }];
        assert!(on_duty(Stationing::Resident, &[], monday));
        assert!(!on_duty(Stationing::OnCall, &weekly, monday));
        assert!(on_duty(Stationing::Rotating, &weekly, monday));
        assert!(!on_duty(Stationing::Rotating, &weekly, day("2026-03-03")), "an uncovered day is off");
        let holiday = Rotation { when: When::Dates(monday, monday), stationed: false };
        assert!(!on_duty(Stationing::Rotating, &[weekly[0], holiday], monday), "a date range outranks the weekday");
        assert!(center_level("532901000000", 3).is_ok());
        assert!(center_level("530000000000", 1).is_err());
    }
}
