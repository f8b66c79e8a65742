//! Slip and clock benchmark: `cargo run --release -p supervision --bin slip_bench [SECONDS]`.
//!
//! 1. 《督办提示单》 PDFs rendered per second on one core (font subset and compressed each time, as served), and
//!    the size of one.
//! 2. Working-day deadlines computed per second over the shipped 2025–2026 calendar (5 working days from a
//!    spread of start times), and the inverse (counted time between two instants).
//!
//! SLIP_FONT (default Debian's fonts-wqy-microhei) names the font.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use supervision::domain::calendar::{Calendar, ClockKind, OfficeHours, parse_csv};
use supervision::domain::policy::Grade;
use supervision::slip::{Slip, SlipFont, SlipKind, render, verification_code};

const CALENDAR: &str = include_str!("../../data/cn_holidays_2025_2026.csv");

fn main() -> anyhow::Result<()> {
    kit::cli::help("usage: slip_bench [SECONDS]   (default 5)");
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(5), |a| a.parse()).context("SECONDS")?;
    let font_path =
        std::env::var("SLIP_FONT").unwrap_or_else(|_| "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc".into());
    let font = SlipFont::load(std::path::Path::new(&font_path))?;
    let due = Utc.with_ymd_and_hms(2025, 10, 9, 2, 0, 0).single().context("due")?;
    let slip = |i: u64| Slip {
        kind: SlipKind::Supervision,
        number: format!("532901-督-2025-{i:05}"),
        issuer: "大理市综治中心 (532901000000)".into(),
        unit: "大理市司法局".into(),
        copy_to: "大理白族自治州综治中心".into(),
        case_no: format!("532901-20251001-{:05}", i % 100_000),
        summary: "邻里纠纷：张*反映邻居李*在院墙处搭建雨棚影响采光，联系电话138****5678，请依法调处。".into(),
        requirements: "请于时限内办结并反馈处理结果。".into(),
        due_at: due,
        grade: Some(Grade::Yellow),
        issued_at: due,
        verification_code: verification_code(&kit::pii::Sealer::new(kit::pii::DEV_KEY), "n", "u", "c", due),
    };
    let size = render(&slip(0), &font)?.len();
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget {
        render(&slip(n), &font)?;
        n += 1;
    }
    let per_second = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "slip PDFs: {per_second:.0} renders/s on one core ({n} in {:.1}s), {size} bytes each",
        started.elapsed().as_secs_f64()
    );

    let rows = parse_csv(CALENDAR).map_err(|e| anyhow::anyhow!("{e}"))?;
    let calendar = Calendar::new(rows.into_iter().map(|e| (e.date, e.kind)), OfficeHours::default());
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().context("start")?;
    let five = chrono::Duration::days(5);
    let started = Instant::now();
    let mut n = 0u64;
    let mut checksum = 0i64;
    while started.elapsed() < budget {
        // Start times walk through both years in steps of 7 h 13 min, so every weekday, hour and holiday comes up.
        let at = start + chrono::Duration::minutes(i64::try_from(n % 140_000).unwrap_or(0) * 433 % (730 * 24 * 60));
        let due = calendar.advance(ClockKind::WorkingDays, at, five);
        checksum ^= calendar.elapsed(ClockKind::WorkingDays, at, due).num_seconds();
        n += 1;
    }
    let per_second = n as f64 / started.elapsed().as_secs_f64();
    println!("working-day clocks: {per_second:.0} deadline+elapsed pairs/s on one core (checksum {checksum})");
    Ok(())
}
