//! The clocks at work: which calendar applies where, which policy version a case runs under, the deadline a
//! stage gets, and importing calendars (the operator command and the RPC share [`import_calendar`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use kit::auth::{Permission, Principal};
use sqlx::{PgConnection, PgPool};

use crate::db::{self, NewDeadline};
use crate::domain::calendar::{Calendar, OfficeHours, parse_csv};
use crate::domain::policy::{Grade, GradePlan, NewPolicy, Policy, ScoreRule, parse_rules};
use crate::domain::{Case, Stage};
use crate::error::{Error, Result};

/// The calendar that ships with the product (data/README.md): the national rows a fresh installation starts
/// with.
pub const SHIPPED_CALENDAR: &str = include_str!("../../data/cn_holidays_2025_2026.csv");

/// How long a place's calendar is reused before it is read again. An import through this process forgets the
/// cached calendars at once; one by another process (the operator command, another replica) is seen within this.
pub const CALENDAR_TTL: Duration = Duration::from_secs(60);

/// A place's calendar and when it was read.
type Cached = (Instant, Arc<Calendar>);

/// Policies by version, and calendars by place. A policy version never changes once written, so what is cached
/// is never stale; calendars change rarely (an import a year), so each dispatch and 签收 need not read the
/// 70–150 rows of its place's calendar.
#[derive(Default)]
pub struct Clocks {
    policies: Mutex<HashMap<i32, Arc<Policy>>>,
    calendars: Mutex<HashMap<Vec<String>, Cached>>,
}

impl Clocks {
    /// The policy of `version`, from the cache or the database.
    pub async fn policy(&self, conn: &mut PgConnection, version: i32) -> anyhow::Result<Arc<Policy>> {
        if let Some(p) = self.policies.lock().map_err(|_| anyhow::anyhow!("policy cache poisoned"))?.get(&version) {
            return Ok(p.clone());
        }
        let row = db::policy(conn, version).await?.ok_or_else(|| anyhow::anyhow!("no time policy {version}"))?;
        let rules = parse_rules(&row.rules).map_err(|e| anyhow::anyhow!("time policy {version}: {e}"))?;
        let percent = |v: i32| u32::try_from(v).unwrap_or(0);
        let policy = Arc::new(Policy {
            version,
            rules,
            grades: GradePlan {
                remind_at_percent: percent(row.remind_at_percent),
                red_after_percent: percent(row.red_after_percent),
            },
            score: ScoreRule { on_time: row.score_on_time, yellow: row.score_yellow, red: row.score_red },
            max_extensions: percent(row.max_extensions),
        });
        self.policies.lock().map_err(|_| anyhow::anyhow!("policy cache poisoned"))?.insert(version, policy.clone());
        Ok(policy)
    }

    /// The calendar at a place ([`calendar_at`]), from the cache while it is younger than [`CALENDAR_TTL`].
    pub async fn calendar(&self, conn: &mut PgConnection, area_path: &[String]) -> anyhow::Result<Arc<Calendar>> {
        let poisoned = || anyhow::anyhow!("calendar cache poisoned");
        if let Some((at, c)) = self.calendars.lock().map_err(|_| poisoned())?.get(area_path)
            && at.elapsed() < CALENDAR_TTL
        {
            return Ok(c.clone());
        }
        let calendar = Arc::new(calendar_at(conn, area_path).await?);
        let mut cache = self.calendars.lock().map_err(|_| poisoned())?;
        // Places are bounded by the tree, but a cache must not grow without limit on bad input either.
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(area_path.to_vec(), (Instant::now(), calendar.clone()));
        Ok(calendar)
    }

    /// Forgets every cached calendar: after an import.
    pub fn forget_calendars(&self) {
        if let Ok(mut cache) = self.calendars.lock() {
            cache.clear();
        }
    }

    /// The deadline of a stage of `case`'s task whose clock starts at `start`: the case's policy version (pinned
    /// on its first clock), the most specific rule, and the calendar of the case's place.
    pub async fn plan<'a>(
        &self,
        conn: &mut PgConnection,
        case: &Case,
        task_id: &'a str,
        stage: Stage,
        start: DateTime<Utc>,
    ) -> anyhow::Result<NewDeadline<'a>> {
        let version = match case.policy_version {
            Some(version) => version,
            None => db::pin_policy(conn, case.case_id).await?.ok_or_else(|| anyhow::anyhow!("no time policy"))?,
        };
        let policy = self.policy(conn, version).await?;
        let limit = policy.limit(&case.category_code, case.urgency, stage).ok_or_else(|| {
            anyhow::anyhow!("time policy {version} sets no limit for {} {} {stage}", case.category_code, case.urgency)
        })?;
        let calendar = self.calendar(conn, &case.area_path).await?;
        let point = |grade| calendar.advance(limit.clock, start, policy.grades.offset(grade, limit.amount));
        Ok(NewDeadline {
            case_id: case.case_id,
            task_id,
            stage,
            due_at: point(Grade::Yellow),
            remind_at: point(Grade::Reminder),
            red_at: point(Grade::Red),
            clock: limit.clock,
            limit_seconds: limit.amount.num_seconds(),
            started_at: start,
            policy_version: version,
        })
    }
}

/// The calendar at a place: the national rows, overridden by those of each center on the path, the nearest last.
pub async fn calendar_at(conn: &mut PgConnection, area_path: &[String]) -> sqlx::Result<Calendar> {
    let mut rows = db::calendar_rows(conn, area_path).await?;
    // Later rows override earlier ones in the calendar, so the national rows go first and the village's last.
    rows.sort_by_key(|(center, _, _)| if center.is_empty() { 0 } else { kit::division::significant(center).len() });
    Ok(Calendar::new(rows.into_iter().map(|(_, day, kind)| (day, kind)), OfficeHours::default()))
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarImport {
    pub rows: usize,
    pub years: Vec<i32>,
    /// Rows of those years the center had before, now replaced.
    pub replaced: u64,
}

/// Imports a calendar file for a center ('' for the national calendar): the file is checked whole first (a bad
/// line refuses it, naming the line, and nothing is written), then its years replace the center's rows for
/// those years in one transaction. `progress` hears each phase.
pub async fn import_calendar(
    pool: &PgPool,
    center_code: &str,
    csv: &str,
    by: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<CalendarImport> {
    let rows = parse_csv(csv).map_err(|e| Error::invalid("csv", e.to_string()))?;
    if rows.is_empty() {
        return Err(Error::invalid("csv", "holds no days"));
    }
    let mut years: Vec<i32> = rows.iter().map(|r| r.date.year()).collect();
    years.sort_unstable();
    years.dedup();
    progress(&format!("checked {} rows for {:?}", rows.len(), years));
    let mut tx = kit::audit::begin(pool).await?;
    let replaced = db::replace_calendar(&mut tx, center_code, &years, &rows, by).await?;
    tx.commit().await?;
    progress(&format!("wrote {} rows, replacing {replaced}", rows.len()));
    Ok(CalendarImport { rows: rows.len(), years, replaced })
}

/// Gives a fresh installation the shipped national calendar: only years the national calendar has no rows for,
/// so a year an operator imported (or corrected) is never overwritten.
pub async fn seed_national(pool: &PgPool) -> anyhow::Result<()> {
    let have = db::calendar_years(&mut *pool.acquire().await?, "").await?;
    let rows: Vec<_> = parse_csv(SHIPPED_CALENDAR)
        .map_err(|e| anyhow::anyhow!("the shipped calendar: {e}"))?
        .into_iter()
        .filter(|r| !have.contains(&r.date.year()))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut years: Vec<i32> = rows.iter().map(|r| r.date.year()).collect();
    years.dedup();
    let mut tx = kit::audit::begin(pool).await?;
    db::replace_calendar(&mut tx, "", &years, &rows, "shipped").await?;
    tx.commit().await?;
    tracing::info!(?years, "national calendar seeded from the shipped schedule");
    Ok(())
}

/// Adds the next time-policy version (checked whole by [`NewPolicy::parse`]); cases whose clocks have not started
/// yet take it, the others keep theirs.
pub async fn add_policy(pool: &PgPool, policy: &NewPolicy, by: &str) -> Result<i32> {
    let mut tx = kit::audit::begin(pool).await?;
    let version = db::add_policy(&mut tx, policy, by).await?;
    tx.commit().await?;
    tracing::info!(version, "time policy added");
    Ok(version)
}

/// Whether `p` may add a time-policy version: the policy holds for the whole deployment, so, like the national
/// calendar, it needs a rule-managing grant at prefecture level or above.
pub fn may_manage_policy(p: &Principal) -> bool {
    p.scope(Permission::ManageRules).reaches_level(2)
}

/// The newest policy's rules with `stage`'s limit replaced by one rule for every category and urgency: how tests
/// and drills shorten a clock.
pub async fn with_stage_limit(pool: &PgPool, stage: Stage, clock: &str, amount: &str, by: &str) -> Result<i32> {
    let mut conn = pool.acquire().await?;
    let latest = db::latest_policy_version(&mut conn).await?.ok_or_else(|| Error::not_found("time policy"))?;
    let row = db::policy(&mut conn, latest).await?.ok_or_else(|| Error::not_found("time policy"))?;
    drop(conn);
    let mut lines: Vec<String> = row
        .rules
        .lines()
        .filter(|l| l.split(',').nth(2).map(str::trim) != Some(stage.as_str()))
        .map(str::to_owned)
        .collect();
    lines.push(format!(",*,{stage},{clock},{amount}"));
    let policy = NewPolicy::parse(
        &lines.join("\n"),
        Some(row.remind_at_percent),
        Some(row.red_after_percent),
        [Some(row.score_on_time), Some(row.score_yellow), Some(row.score_red)],
        Some(row.max_extensions),
    )?;
    add_policy(pool, &policy, by).await
}

/// Whether `p` may import a calendar for `center_code`: a center's own within their rule-managing scope; the
/// national calendar, which every center inherits, only with a grant at prefecture level or above (as tariffs).
pub fn may_import(p: &Principal, center_code: &str) -> bool {
    let scope = p.scope(Permission::ManageRules);
    if center_code.is_empty() { scope.reaches_level(2) } else { scope.covers_node(center_code) }
}
