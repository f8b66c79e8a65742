//! Time-limit policy (时限) and graded supervision (督办): what limit a stage of a case runs against, when a
//! reminder, a yellow and a red slip fall due, and what each does to the unit's score. Pure: no SQL, no protobuf.
//!
//! A policy is versioned data. Its rules are keyed by category code prefix × urgency × stage; the most specific
//! rule wins (the longest prefix, then a rule for the urgency over one for any urgency), so a county can set
//! `0101` (婚姻家庭) apart from the `01` default, and the empty prefix is the fallback for every category. A case
//! keeps the policy version it started with, so a new version changes only cases registered after it.
//!
//! Grades are points along the limit's own clock: the reminder (临期提醒) when a share of the limit has run, the
//! yellow card (黄牌) when it has all run, the red card (红牌) when a further share has run (by default the limit
//! again: 签收 1 working day yellow, 2 red; 办结 5 and 10, as DOMAIN.md's common limits).

use chrono::Duration;
use kit::code_enum;
use kit::vocab::Urgency;

use crate::domain::Stage;
use crate::domain::calendar::{ClockKind, LineError};

code_enum! {
    proto = proto::supervision::v1::Grade;
    /// A supervision grade: each issues a numbered 《督办提示单》 to the unit.
    pub enum Grade {
        Reminder = "reminder",
        Yellow = "yellow",
        Red = "red",
    }
}

/// A limit: how much counted time, on which clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub clock: ClockKind,
    pub amount: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    /// Digits of the category code this rule covers; empty covers every category.
    pub category_prefix: String,
    /// `None` covers every urgency.
    pub urgency: Option<Urgency>,
    pub stage: Stage,
    pub limit: Limit,
}

/// Where the grades fall, as percentages of the limit's counted time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradePlan {
    /// The reminder, when this share of the limit has run (1–99).
    pub remind_at_percent: u32,
    /// The red card, when this share of the limit has run beyond the due time (at least 1).
    pub red_after_percent: u32,
}

impl Default for GradePlan {
    fn default() -> Self {
        Self { remind_at_percent: 80, red_after_percent: 100 }
    }
}

impl GradePlan {
    /// The counted time after the clock's start at which `grade` falls due, for a stage with `limit`.
    pub fn offset(&self, grade: Grade, limit: Duration) -> Duration {
        let share = |percent: u32| limit * i32::try_from(percent).unwrap_or(i32::MAX) / 100;
        match grade {
            Grade::Reminder => share(self.remind_at_percent),
            Grade::Yellow => limit,
            Grade::Red => limit + share(self.red_after_percent),
        }
    }
}

/// What each outcome does to the handling unit's score (a common rule: −5 yellow, −10 red, +1 on time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreRule {
    pub on_time: i32,
    pub yellow: i32,
    pub red: i32,
}

impl Default for ScoreRule {
    fn default() -> Self {
        Self { on_time: 1, yellow: -5, red: -10 }
    }
}

impl ScoreRule {
    /// The points a grade costs; a reminder costs nothing.
    pub fn for_grade(&self, grade: Grade) -> i32 {
        match grade {
            Grade::Reminder => 0,
            Grade::Yellow => self.yellow,
            Grade::Red => self.red,
        }
    }
}

/// One version of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub version: i32,
    pub rules: Vec<LimitRule>,
    pub grades: GradePlan,
    pub score: ScoreRule,
    /// How many extensions (延期) one stage of one task may be granted.
    pub max_extensions: u32,
}

impl Policy {
    /// The rule for a case's stage: the longest matching prefix, and for equal prefixes the one naming the
    /// case's urgency over the one for any urgency. `None` when no rule covers it (a policy without a fallback).
    pub fn rule(&self, category_code: &str, urgency: Urgency, stage: Stage) -> Option<&LimitRule> {
        self.rules
            .iter()
            .filter(|r| r.stage == stage && category_code.starts_with(&r.category_prefix))
            .filter(|r| r.urgency.is_none_or(|u| u == urgency))
            .max_by_key(|r| (r.category_prefix.len(), r.urgency.is_some()))
    }

    /// The limit of a case's stage: its rule's, or for 报到 with no rule (policies written before 吹哨报到 have
    /// none) the common 30 minutes on the calendar clock (DOMAIN §3).
    pub fn limit(&self, category_code: &str, urgency: Urgency, stage: Stage) -> Option<Limit> {
        match (self.rule(category_code, urgency, stage), stage) {
            (Some(r), _) => Some(r.limit),
            (None, Stage::Report) => Some(Limit { clock: ClockKind::CalendarHours, amount: Duration::minutes(30) }),
            (None, Stage::Accept | Stage::Resolve) => None,
        }
    }
}

/// A new policy version as an operator writes it: the rules (checked whole) and the grade, score and extension
/// settings, each within its bounds. Values not given keep the defaults (80 %, 100 %, +1/−5/−10, 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicy {
    pub rules: String,
    pub grades: GradePlan,
    pub score: ScoreRule,
    pub max_extensions: u32,
}

/// The most a score rule may give or take for one outcome: a guard against typing errors.
const MAX_SCORE: i32 = 1000;

impl NewPolicy {
    /// Every stage needs a fallback rule (no category prefix, any urgency), so no case is ever left without a
    /// deadline by a new version.
    pub fn parse(
        rules: &str,
        remind_at_percent: Option<i32>,
        red_after_percent: Option<i32>,
        score: [Option<i32>; 3],
        max_extensions: Option<i32>,
    ) -> Result<Self, kit::FieldError> {
        use kit::FieldError;
        let text = kit::field::required("rules", rules)?;
        let parsed = parse_rules(text).map_err(|e| FieldError::new("rules", e.to_string()))?;
        for stage in [Stage::Accept, Stage::Resolve] {
            if !parsed.iter().any(|r| r.stage == stage && r.category_prefix.is_empty() && r.urgency.is_none()) {
                return Err(FieldError::new("rules", format!("need a fallback rule `,*,{stage},…` for every stage")));
            }
        }
        let within = |field: &str, v: Option<i32>, lo: i32, hi: i32, default: i32| match v {
            None => Ok(default),
            Some(v) if (lo..=hi).contains(&v) => Ok(v),
            Some(_) => Err(FieldError::new(field, format!("must be between {lo} and {hi}"))),
        };
        let pct = |v: i32| u32::try_from(v).unwrap_or_default();
        let defaults = (GradePlan::default(), ScoreRule::default());
        Ok(Self {
            rules: format!("{}\n", text.trim_end()),
            grades: GradePlan {
                remind_at_percent: pct(within("remind_at_percent", remind_at_percent, 1, 99, 80)?),
                red_after_percent: pct(within("red_after_percent", red_after_percent, 1, 1000, 100)?),
            },
            score: ScoreRule {
                on_time: within("score_on_time", score[0], -MAX_SCORE, MAX_SCORE, defaults.1.on_time)?,
                yellow: within("score_yellow", score[1], -MAX_SCORE, MAX_SCORE, defaults.1.yellow)?,
                red: within("score_red", score[2], -MAX_SCORE, MAX_SCORE, defaults.1.red)?,
            },
            max_extensions: pct(within("max_extensions", max_extensions, 0, 10, 2)?),
        })
    }
}

/// The longest limit a rule may set (a year): anything longer is a typing error, not a policy.
const MAX_LIMIT: Duration = Duration::days(366);

/// Parses a policy's rules from CSV (`category_prefix,urgency,stage,clock,amount`, with that header): `urgency`
/// may be `*` for any; `amount` is a whole number with its unit (`5d` on `working_days`; `24h` or `30m` on the
/// hour clocks). The whole
/// file is refused at its first bad line, or when two rules cover the same key.
pub fn parse_rules(text: &str) -> Result<Vec<LimitRule>, LineError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    match lines.next() {
        Some((_, h)) if h.trim_start_matches('\u{feff}').trim() == "category_prefix,urgency,stage,clock,amount" => {}
        _ => {
            return Err(LineError {
                line: 1,
                reason: "the first line must be the header category_prefix,urgency,stage,clock,amount".into(),
            });
        }
    }
    let mut rules: Vec<(usize, LimitRule)> = Vec::new();
    for (line, raw) in lines {
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| LineError { line, reason };
        let cells: Vec<&str> = raw.split(',').map(str::trim).collect();
        let [prefix, urgency, stage, clock, amount] = cells[..] else {
            return Err(bad("expected five columns: category_prefix,urgency,stage,clock,amount".into()));
        };
        if prefix.len() > 12 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("category_prefix {} must be up to 12 digits", kit::field::excerpt(prefix))));
        }
        let urgency = match urgency {
            "*" => None,
            u => Some(Urgency::parse("urgency", u).map_err(|e| bad(e.to_string()))?),
        };
        let stage = Stage::parse("stage", stage).map_err(|e| bad(e.to_string()))?;
        let clock = ClockKind::parse("clock", clock).map_err(|e| bad(e.to_string()))?;
        let amount = parse_amount(clock, amount).ok_or_else(|| {
            bad(format!(
                "amount {} must be a whole number above 0 with its unit: d for working_days, h or m for the hour clocks",
                kit::field::excerpt(amount)
            ))
        })?;
        if amount > MAX_LIMIT {
            return Err(bad("amount is longer than a year".into()));
        }
        let rule = LimitRule { category_prefix: prefix.to_owned(), urgency, stage, limit: Limit { clock, amount } };
        let same = |r: &LimitRule| (&r.category_prefix, r.urgency, r.stage) == (&rule.category_prefix, urgency, stage);
        if let Some((first, _)) = rules.iter().find(|(_, r)| same(r)) {
            return Err(bad(format!("the same prefix, urgency and stage as line {first}")));
        }
        rules.push((line, rule));
    }
    Ok(rules.into_iter().map(|(_, r)| r).collect())
}

/// `5d` (working days only), `24h` or `30m` (the hour clocks only), `90s` (calendar hours only).
fn parse_amount(clock: ClockKind, amount: &str) -> Option<Duration> {
    let unit = amount.chars().last()?;
    let count: i64 = amount[..amount.len() - unit.len_utf8()].parse().ok().filter(|n| *n > 0)?;
    // Capped before multiplying, so a huge count is refused as too long rather than overflowing.
    let count = count.min(MAX_LIMIT.num_minutes() + 1);
    match (clock, unit) {
        (ClockKind::WorkingDays, 'd') => Some(Duration::days(count)),
        (ClockKind::CalendarHours | ClockKind::WorkingHours, 'h') => Some(Duration::hours(count)),
        (ClockKind::CalendarHours | ClockKind::WorkingHours, 'm') => Some(Duration::minutes(count)),
        // Seconds serve drills and tests (a deadline that fires while one watches); calendar time only.
        (ClockKind::CalendarHours, 's') => Some(Duration::seconds(count)),
        _ => None,
    }
}

/// The rules a fresh installation starts with (version 1), from DOMAIN.md's common limits: 签收 1 working day and
/// 办结 5 for ordinary cases; urgent ones 2 and 24 calendar hours, emergencies 30 minutes and 2 hours (the limits
/// the seconds-based table had, now on their clocks).
pub const DEFAULT_RULES: &str = "category_prefix,urgency,stage,clock,amount
,*,accept,working_days,1d
,*,resolve,working_days,5d
,urgent,accept,calendar_hours,2h
,urgent,resolve,calendar_hours,24h
,emergency,accept,calendar_hours,30m
,emergency,resolve,calendar_hours,2h
";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        Policy {
            version: 1,
            rules: parse_rules(rules).unwrap(),
            grades: GradePlan::default(),
            score: ScoreRule::default(),
            max_extensions: 2,
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let p = policy(&format!("{DEFAULT_RULES}01,*,resolve,working_days,10d\n0101,normal,resolve,working_days,3d\n"));
        let days = |code, urgency, stage| p.rule(code, urgency, stage).unwrap().limit.amount.num_days();
        assert_eq!(days("0203", Urgency::Normal, Stage::Resolve), 5, "the empty prefix is the fallback");
        assert_eq!(days("0102", Urgency::Normal, Stage::Resolve), 10, "the 01 family");
        assert_eq!(days("0101", Urgency::Normal, Stage::Resolve), 3, "the longest prefix");
        assert_eq!(days("0101", Urgency::Urgent, Stage::Resolve), 10, "0101 names normal only; 01 covers any");
        let urgent = p.rule("0203", Urgency::Urgent, Stage::Accept).unwrap();
        assert_eq!(urgent.limit, Limit { clock: ClockKind::CalendarHours, amount: Duration::hours(2) });
        let emergency = p.rule("0203", Urgency::Emergency, Stage::Accept).unwrap();
        assert_eq!(emergency.limit.amount, Duration::minutes(30));
        assert!(
            policy("category_prefix,urgency,stage,clock,amount\n01,*,accept,working_days,1d\n")
                .rule("02", Urgency::Normal, Stage::Accept)
                .is_none()
        );
    }

    #[test]
    fn a_new_version_is_checked_whole() {
        let rules = "category_prefix,urgency,stage,clock,amount\n,*,accept,working_days,1d\n,*,resolve,working_days,5d";
        let ok = NewPolicy::parse(rules, None, Some(50), [None, Some(-3), None], Some(0)).unwrap();
        assert_eq!((ok.grades.remind_at_percent, ok.grades.red_after_percent), (80, 50));
        assert_eq!((ok.score.on_time, ok.score.yellow, ok.score.red, ok.max_extensions), (1, -3, -10, 0));
        let field = |r: Result<NewPolicy, kit::FieldError>| r.unwrap_err().field;
        let no_fallback =
            "category_prefix,urgency,stage,clock,amount\n01,*,accept,working_days,1d\n,*,resolve,working_days,5d";
        assert_eq!(field(NewPolicy::parse(no_fallback, None, None, [None; 3], None)), "rules");
        assert_eq!(field(NewPolicy::parse("", None, None, [None; 3], None)), "rules");
        assert_eq!(field(NewPolicy::parse(rules, Some(100), None, [None; 3], None)), "remind_at_percent");
        assert_eq!(field(NewPolicy::parse(rules, None, Some(0), [None; 3], None)), "red_after_percent");
        assert_eq!(field(NewPolicy::parse(rules, None, None, [None, None, Some(-5000)], None)), "score_red");
        assert_eq!(field(NewPolicy::parse(rules, None, None, [None; 3], Some(-1))), "max_extensions");
    }

    #[test]
    fn grades_fall_along_the_limit() {
        let plan = GradePlan::default();
        let limit = Duration::days(5);
        assert_eq!(plan.offset(Grade::Reminder, limit), Duration::days(4));
        assert_eq!(plan.offset(Grade::Yellow, limit), limit);
        assert_eq!(plan.offset(Grade::Red, limit), Duration::days(10));
        assert_eq!(ScoreRule::default().for_grade(Grade::Red), -10);
        assert_eq!(ScoreRule::default().for_grade(Grade::Reminder), 0);
    }

    #[test]
    fn bad_rules_are_refused_at_their_line() {
        let refused =
            |body: &str| parse_rules(&format!("category_prefix,urgency,stage,clock,amount\n{body}")).unwrap_err();
        assert_eq!(refused("0x,*,accept,working_days,1d").line, 2);
        assert!(refused("01,soon,accept,working_days,1d").reason.contains("urgency"));
        assert!(refused("01,*,review,working_days,1d").reason.contains("stage"));
        assert!(refused("01,*,accept,fortnights,1d").reason.contains("clock"));
        for amount in ["0d", "1", "1h", "d", "-1d", "1.5d", "一d"] {
            assert!(refused(&format!("01,*,accept,working_days,{amount}")).reason.contains("amount"), "{amount}");
        }
        assert!(refused("01,*,accept,calendar_hours,5d").reason.contains("amount"));
        assert!(refused("01,*,accept,working_hours,30s").reason.contains("amount"));
        assert!(parse_rules("category_prefix,urgency,stage,clock,amount\n,*,accept,calendar_hours,8s\n").is_ok());
        assert!(refused("01,*,accept,working_days,400d").reason.contains("year"));
        assert!(refused("01,*,accept,calendar_hours,99999999999999h").reason.contains("year"));
        assert!(refused("01,*,accept").reason.contains("five columns"));
        let dup = refused("01,*,accept,working_days,1d\n01,*,accept,calendar_hours,4h");
        assert_eq!((dup.line, dup.reason.as_str()), (3, "the same prefix, urgency and stage as line 2"));
        assert_eq!(parse_rules("prefix,amount\n").unwrap_err().line, 1);
    }
}
