//! 三率 and rankings: the figures every unit and tree node is judged by, from counts the projection keeps.
//! Pure: the counting is SQL over the stage outcomes; this module turns counts into rates, scores and ranks.
//!
//! - on-time 签收 rate: stages due to be accepted in the period that were accepted by their due time;
//! - on-time 办结 rate: the same for resolution;
//! - satisfaction rate: (满意 + 基本满意) over follow-up visits.
//!
//! Rates are kept in basis points (万分之一), integers, so the same counts always print the same figure and
//! sums never drift; a rate over nothing is absent, not zero.

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
}
