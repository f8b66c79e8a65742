//! Rule matching for a province-sized routing table: 10,000 rules (every county and township of a province,
//! each with rules per category family, some with fallbacks), and a registration's route through them — the
//! candidates whose duty is asked of the registry, then the choice. Prints p50/p99 per registration.
//!
//! `cargo run --release -p routing --bin rules_bench`

use std::time::Instant;

use kit::vocab::{UnitKind, Urgency};
use routing::domain::{CaseFacts, Duty, Roster, Rule, candidates, route};

const RULES: usize = 10_000;
const CASES: usize = 20_000;

fn main() {
    kit::cli::help("usage: rules_bench   (10,000 rules, p50/p99 of a registration's route)");
    let rules = table();
    let mut roster = Roster::default();
    for (i, r) in rules.iter().enumerate() {
        let duty = if i.is_multiple_of(7) { Duty::OffDuty } else { Duty::OnDuty };
        roster.0.insert(r.unit_code.to_string(), duty);
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut times = Vec::with_capacity(CASES);
    let mut candidates_total = 0usize;
    let mut via_rule = 0usize;
    for _ in 0..CASES {
        let county = next() % 120;
        let township = next() % 12;
        let village = next() % 20 + 1;
        let center = format!("53{:04}{:03}000", 100 + county, township + 1);
        let facts = CaseFacts {
            category_code: format!("0{}{:02}", next() % 3 + 1, next() % 12 + 1),
            urgency: if next() % 10 == 0 { Urgency::Urgent } else { Urgency::Normal },
            village_code: format!("53{:04}{:03}{village:03}", 100 + county, township + 1),
            center_code: center.clone(),
            holding_center: center,
        };
        let start = Instant::now();
        let asked = candidates(&rules, &facts);
        let target = route(&rules, &facts, &[], &roster);
        times.push(start.elapsed());
        candidates_total += asked.len();
        via_rule += usize::from(target.rule_id.is_some());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!("rules in the table:           {}", rules.len());
    println!("registrations routed:         {CASES}");
    println!("matched a rule:               {via_rule}");
    println!(
        "departments asked per case:   {:.1} (mean; the registry is asked only about these)",
        candidates_total as f64 / CASES as f64
    );
    println!(
        "route per registration:       p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
}

/// 120 counties × 12 townships, each township with rules for a few category families and the county with
/// its own: 10,000 rules in all, one in five with a fallback.
fn table() -> Vec<Rule> {
    let mut rules = Vec::with_capacity(RULES);
    let mut i = 0usize;
    'outer: for county in 0..120u32 {
        let county_prefix = format!("53{:04}", 100 + county);
        for township in 0..=12u32 {
            let area = if township == 0 { county_prefix.clone() } else { format!("{county_prefix}{township:03}") };
            for family in ["01", "0101", "0102", "0103", "0106", "02", "0201", "0207"] {
                if rules.len() == RULES {
                    break 'outer;
                }
                let unit = format!("dept-{i}");
                let mut rule = Rule::parse(
                    "rule.",
                    &format!("r{i}"),
                    (i % 5) as u32,
                    family,
                    &area,
                    0,
                    UnitKind::Department.into(),
                    &unit,
                    &unit,
                )
                .expect("a valid rule");
                if i.is_multiple_of(5) {
                    rule = rule
                        .with_fallback("rule.", UnitKind::Department.into(), &format!("fb-{i}"), "备用")
                        .expect("fallback");
                }
                rule.unit_center = format!("{area:0<12}");
                rules.push(rule);
                i += 1;
            }
        }
    }
    rules
}
