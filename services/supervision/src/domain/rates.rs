//! 三率 and rankings: the figures every unit and tree node is judged by, from counts the projection keeps.
//! Pure: the counting is SQL over the stage outcomes (`db::rates`); this module parses what a request asks for
//! and turns counts into rates, scores and ranks.
//!
//! - on-time 签收 rate: stages due to be accepted in the period that were accepted by their due time;
//! - on-time 办结 rate: the same for resolution;
//! - satisfaction rate: (满意 + 基本满意) over follow-up visits.
//!
//! Rates are kept in basis points (万分之一), integers, so the same counts always print the same figure and
//! sums never drift; a rate over nothing is absent, not zero.
//!
//! What is counted, for a period `[from, to)` of local dates (Asia/Shanghai midnights, compared in UTC):
//!
//! - **A stage** (签收 or 办结 deadline) counts in the period in which it was *due* (`due_at` in the period), and
//!   only if its deadline was not cancelled. It is on time when it was done (`done_at`) at or before `due_at`.
//!   A stage not yet done counts once it is past due (due and late); one not yet done and not yet due is not
//!   counted at all, since nobody knows yet how it ends. A stage done counts whether or not its due time has
//!   passed. Cancelled deadlines (a returned task, a round closed by a reopening) never count, and a
//!   reopening starts new deadlines for the new round's tasks, so 重办 is counted stage by stage, round by
//!   round. A deadline moved by an extension or a pause counts against its moved `due_at`.
//! - **A visit** (回访) counts in the period in which it was made (`followed_up_at`): 满意 and 基本满意 over all
//!   visits. Per unit, a visit belongs to the unit of the task the closure verified.
//! - **Yellow and red cards** count in the period in which they were issued, for the unit they were addressed
//!   to (per node: the node of the case).
//! - **The score** is `on-time stages × on_time + yellow × yellow + red × red`, with the points of the current
//!   time policy (the highest version of `time_policies`, by default +1, −5, −10), whatever version each case
//!   runs under: a ranking compares units by one rule.
//!
//! Per unit, rows are the units (`tasks.unit_code`) handling cases whose area path holds the node; per area,
//! rows are the node's children: for each case, the code one step below the node on its area path (the grid
//! below a village). Each request also gets the total over every row. Rows are ranked by [`rank`].

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use kit::{FieldError, code_enum, field};

use crate::domain::policy::ScoreRule;

/// What was counted for one unit or node over one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accept_due: u64,
    pub accept_on_time: u64,
    pub resolve_due: u64,
    pub resolve_on_time: u64,
    pub visits: u64,
    pub satisfied: u64,
    pub basically_satisfied: u64,
    pub yellow: u64,
    pub red: u64,
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            accept_due: self.accept_due + o.accept_due,
            accept_on_time: self.accept_on_time + o.accept_on_time,
            resolve_due: self.resolve_due + o.resolve_due,
            resolve_on_time: self.resolve_on_time + o.resolve_on_time,
            visits: self.visits + o.visits,
            satisfied: self.satisfied + o.satisfied,
            basically_satisfied: self.basically_satisfied + o.basically_satisfied,
            yellow: self.yellow + o.yellow,
            red: self.red + o.red,
        }
    }
}

/// A rate with the counts behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub numerator: u64,
    pub denominator: u64,
}

impl Rate {
    /// In basis points, rounded half up; `None` over nothing.
    pub fn basis_points(self) -> Option<u64> {
        (self.denominator > 0).then(|| (self.numerator * 20_000 / self.denominator).div_ceil(2))
    }

    /// `93.50%`, or `—` over nothing.
    pub fn percent(self) -> String {
        match self.basis_points() {
            Some(bp) => format!("{}.{:02}%", bp / 100, bp % 100),
            None => "—".into(),
        }
    }
}

/// The figures of one unit or node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub counts: Counts,
    pub accept_on_time: Rate,
    pub resolve_on_time: Rate,
    pub satisfaction: Rate,
    pub score: i64,
}

impl Figures {
    pub fn new(counts: Counts, rule: &ScoreRule) -> Self {
        let on_time = i64::try_from(counts.accept_on_time + counts.resolve_on_time).unwrap_or(i64::MAX);
        let graded = |n: u64, points: i32| i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(i64::from(points));
        Self {
            counts,
            accept_on_time: Rate { numerator: counts.accept_on_time, denominator: counts.accept_due },
            resolve_on_time: Rate { numerator: counts.resolve_on_time, denominator: counts.resolve_due },
            satisfaction: Rate { numerator: counts.satisfied + counts.basically_satisfied, denominator: counts.visits },
            score: on_time
                .saturating_mul(i64::from(rule.on_time))
                .saturating_add(graded(counts.yellow, rule.yellow))
                .saturating_add(graded(counts.red, rule.red)),
        }
    }
}

/// Siblings ranked: by score, then on-time 办结 rate, then satisfaction, highest first; equals share a rank and
/// the next rank skips (1, 1, 3), as league tables do. Ties on every figure keep code order, so the table is
/// stable.
pub fn rank<K: Ord + Clone>(mut rows: Vec<(K, Figures)>) -> Vec<(u32, K, Figures)> {
    let key = |f: &Figures| {
        (
            std::cmp::Reverse(f.score),
            std::cmp::Reverse(f.resolve_on_time.basis_points()),
            std::cmp::Reverse(f.satisfaction.basis_points()),
        )
    };
    rows.sort_by(|(ka, a), (kb, b)| key(a).cmp(&key(b)).then_with(|| ka.cmp(kb)));
    let mut out: Vec<(u32, K, Figures)> = Vec::with_capacity(rows.len());
    for (i, (k, f)) in rows.into_iter().enumerate() {
        let rank = match out.last() {
            Some((r, _, prev)) if key(prev) == key(&f) => *r,
            _ => u32::try_from(i + 1).unwrap_or(u32::MAX),
        };
        out.push((rank, k, f));
    }
    out
}

code_enum! {
    /// What the rows of a rates table are: the handling units, or the node's children in the tree.
    pub enum By {
        Unit = "unit",
        Area = "area",
    }
}

code_enum! {
    /// An export's file format.
    pub enum Format {
        Csv = "csv",
        Xlsx = "xlsx",
    }
}

/// The longest period one request may cover, in days: a year, leap day included.
pub const MAX_SPAN_DAYS: i64 = 366;

/// A period of whole local days, `from` inclusive, `to` exclusive: a day, a week and a month are all just ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// `from` and `to` as `YYYY-MM-DD`; `from` before `to`, at most [`MAX_SPAN_DAYS`] apart.
    pub fn parse(from: &str, to: &str) -> Result<Self, FieldError> {
        let date = |name: &str, value: &str| {
            let v = field::required(name, value)?;
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| FieldError::new(name, format!("{} is not a date YYYY-MM-DD", field::excerpt(v))))
        };
        let (from, to) = (date("from", from)?, date("to", to)?);
        if from >= to {
            return Err(FieldError::new("to", "must be after from (the period is from inclusive, to exclusive)"));
        }
        if (to - from).num_days() > MAX_SPAN_DAYS {
            return Err(FieldError::new("to", format!("is more than {MAX_SPAN_DAYS} days after from")));
        }
        Ok(Self { from, to })
    }

    /// The instant the period starts: `from` at midnight in Asia/Shanghai.
    pub fn start(&self) -> DateTime<Utc> {
        local_midnight(self.from)
    }

    /// The instant the period ends (excluded): `to` at midnight in Asia/Shanghai.
    pub fn end(&self) -> DateTime<Utc> {
        local_midnight(self.to)
    }
}

fn local_midnight(day: NaiveDate) -> DateTime<Utc> {
    // +08:00 all year (no daylight saving), so local midnight is 16:00 UTC the day before.
    (day.and_time(NaiveTime::MIN) - chrono::Duration::hours(8)).and_utc()
}

/// What a rates request asks for: the figures under one node, by unit or by child node, over one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesQuery {
    pub node_code: String,
    pub by: By,
    pub period: Period,
}

impl RatesQuery {
    pub fn parse(node_code: &str, by: &str, from: &str, to: &str) -> Result<Self, FieldError> {
        let node_code = field::division_code("node_code", node_code)?.to_owned();
        let by = By::parse("by", by)?;
        Ok(Self { node_code, by, period: Period::parse(from, to)? })
    }
}

/// A computed table: ranked rows and their total, with the rule the scores were computed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesTable {
    pub query: RatesQuery,
    /// (rank, key, figures), best first.
    pub rows: Vec<(u32, String, Figures)>,
    pub total: Figures,
    pub rule: ScoreRule,
    /// The time-policy version the score rule was taken from.
    pub policy_version: i32,
}

impl RatesTable {
    /// Ranks counted rows and sums their total.
    pub fn new(query: RatesQuery, counted: Vec<(String, Counts)>, rule: ScoreRule, policy_version: i32) -> Self {
        let total = counted.iter().fold(Counts::default(), |sum, (_, c)| sum + *c);
        let rows = rank(counted.into_iter().map(|(k, c)| (k, Figures::new(c, &rule))).collect());
        Self { query, rows, total: Figures::new(total, &rule), rule, policy_version }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_half_up_and_are_absent_over_nothing() {
        assert_eq!(Rate { numerator: 187, denominator: 200 }.percent(), "93.50%");
        assert_eq!(Rate { numerator: 2, denominator: 3 }.percent(), "66.67%");
        assert_eq!(Rate { numerator: 1, denominator: 3 }.percent(), "33.33%");
        assert_eq!(Rate { numerator: 1, denominator: 8 }.basis_points(), Some(1250));
        assert_eq!(Rate { numerator: 1, denominator: 20_000 }.basis_points(), Some(1), "half a point rounds up");
        assert_eq!(Rate { numerator: 1, denominator: 80_000 }.basis_points(), Some(0));
        assert_eq!(Rate { numerator: 0, denominator: 0 }.percent(), "—");
    }

    #[test]
    fn the_score_follows_the_rule() {
        let counts = Counts {
            accept_due: 10,
            accept_on_time: 9,
            resolve_due: 8,
            resolve_on_time: 6,
            yellow: 3,
            red: 1,
            ..Counts::default()
        };
        // 15 on time × +1, 3 yellow × −5, 1 red × −10.
        assert_eq!(Figures::new(counts, &ScoreRule::default()).score, 15 - 15 - 10);
    }

    #[test]
    fn equals_share_a_rank_and_the_next_skips() {
        let rule = ScoreRule::default();
        let f = |on_time, yellow| {
            Figures::new(Counts { resolve_due: 10, resolve_on_time: on_time, yellow, ..Counts::default() }, &rule)
        };
        let ranked = rank(vec![("c", f(8, 0)), ("a", f(8, 0)), ("b", f(9, 0)), ("d", f(9, 1))]);
        let table: Vec<(u32, &str)> = ranked.iter().map(|(r, k, _)| (*r, *k)).collect();
        assert_eq!(table, [(1, "b"), (2, "a"), (2, "c"), (4, "d")]);
    }

    #[test]
    fn periods_are_local_days_from_inclusive_to_exclusive() {
        let p = Period::parse("2025-03-01", "2025-04-01").unwrap();
        assert_eq!(p.start().to_rfc3339(), "2025-02-28T16:00:00+00:00");
        assert_eq!(p.end().to_rfc3339(), "2025-03-31T16:00:00+00:00");
        assert!(Period::parse("2024-01-01", "2025-01-01").is_ok(), "a leap year is 366 days");
        for (from, to, field) in [
            ("2025-03-01", "2025-03-01", "to"),
            ("2025-03-02", "2025-03-01", "to"),
            ("2025-01-01", "2026-01-03", "to"),
            ("2025-3-1x", "2025-04-01", "from"),
            ("", "2025-04-01", "from"),
            ("2025-03-01", "2025-02-30", "to"),
        ] {
            assert_eq!(Period::parse(from, to).unwrap_err().field, field, "{from}..{to}");
        }
    }

    #[test]
    fn a_query_names_the_field_it_refuses() {
        assert!(RatesQuery::parse("532901000000", "unit", "2025-03-01", "2025-04-01").is_ok());
        assert_eq!(RatesQuery::parse("5329", "unit", "2025-03-01", "2025-04-01").unwrap_err().field, "node_code");
        assert_eq!(RatesQuery::parse("532901000000", "grid", "2025-03-01", "2025-04-01").unwrap_err().field, "by");
    }

    #[test]
    fn a_table_ranks_its_rows_and_sums_the_total() {
        let q = RatesQuery::parse("532901000000", "area", "2025-03-01", "2025-04-01").unwrap();
        let a = Counts { resolve_due: 2, resolve_on_time: 2, visits: 1, satisfied: 1, ..Counts::default() };
        let b = Counts { resolve_due: 2, resolve_on_time: 1, yellow: 1, ..Counts::default() };
        let t = RatesTable::new(q, vec![("b".into(), b), ("a".into(), a)], ScoreRule::default(), 1);
        let order: Vec<(u32, &str, i64)> = t.rows.iter().map(|(r, k, f)| (*r, k.as_str(), f.score)).collect();
        assert_eq!(order, [(1, "a", 2), (2, "b", 1 - 5)]);
        assert_eq!(t.total.counts, a + b);
        assert_eq!(t.total.score, 2 + 1 - 5);
    }
}
