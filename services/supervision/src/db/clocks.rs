//! SQL for the clocks: calendar days per center, time-limit policy versions, and the policy a case is pinned to.

use chrono::{DateTime, NaiveDate, Utc};
use kit::ids::CaseId;
use sqlx::PgConnection;

use crate::domain::calendar::{DayKind, Exception};
use crate::domain::policy::NewPolicy;

/// The calendar rows that apply at a place: the national calendar ('') and those of every center on the path
/// (village first). The caller resolves precedence: the nearest center's row wins.
pub async fn calendar_rows(
    conn: &mut PgConnection,
    area_path: &[String],
) -> sqlx::Result<Vec<(String, NaiveDate, DayKind)>> {
    sqlx::query_as("SELECT center_code, day, kind FROM calendar_days WHERE center_code = '' OR center_code = ANY($1)")
        .bind(area_path)
        .fetch_all(conn)
        .await
}

/// The years a center's calendar has rows for.
pub async fn calendar_years(conn: &mut PgConnection, center_code: &str) -> sqlx::Result<Vec<i32>> {
    sqlx::query_scalar(
        "SELECT DISTINCT extract(year FROM day)::int FROM calendar_days WHERE center_code = $1 ORDER BY 1",
    )
    .bind(center_code)
    .fetch_all(conn)
    .await
}

/// Replaces the center's rows for `years` with `rows`; returns how many rows were replaced. Inside the caller's
/// transaction, so a file is imported whole or not at all.
pub async fn replace_calendar(
    conn: &mut PgConnection,
    center_code: &str,
    years: &[i32],
    rows: &[Exception],
    by: &str,
) -> sqlx::Result<u64> {
    let replaced =
        sqlx::query("DELETE FROM calendar_days WHERE center_code = $1 AND extract(year FROM day)::int = ANY($2)")
            .bind(center_code)
            .bind(years)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    let days: Vec<NaiveDate> = rows.iter().map(|r| r.date).collect();
    let kinds: Vec<DayKind> = rows.iter().map(|r| r.kind).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    sqlx::query(
        "INSERT INTO calendar_days (center_code, day, kind, name, imported_by) \
         SELECT $1, d, k, n, $5 FROM UNNEST($2::date[], $3::text[], $4::text[]) AS t(d, k, n)",
    )
    .bind(center_code)
    .bind(&days)
    .bind(&kinds)
    .bind(&names)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(replaced)
}

/// One stored policy version, as written.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub version: i32,
    pub rules: String,
    pub remind_at_percent: i32,
    pub red_after_percent: i32,
    pub score_on_time: i32,
    pub score_yellow: i32,
    pub score_red: i32,
    pub max_extensions: i32,
}

pub async fn policy(conn: &mut PgConnection, version: i32) -> sqlx::Result<Option<PolicyRow>> {
    sqlx::query_as(
        "SELECT version, rules, remind_at_percent, red_after_percent, score_on_time, score_yellow, score_red, \
         max_extensions FROM time_policies WHERE version = $1",
    )
    .bind(version)
    .fetch_optional(conn)
    .await
}

/// Adds the next policy version (already validated); returns it.
pub async fn add_policy(conn: &mut PgConnection, p: &NewPolicy, by: &str) -> sqlx::Result<i32> {
    // The table lock makes concurrent additions take consecutive versions instead of colliding.
    sqlx::query("LOCK TABLE time_policies IN SHARE ROW EXCLUSIVE MODE").execute(&mut *conn).await?;
    let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    sqlx::query_scalar(
        "INSERT INTO time_policies (version, rules, created_by, remind_at_percent, red_after_percent, \
           score_on_time, score_yellow, score_red, max_extensions) \
         SELECT COALESCE(max(version), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 FROM time_policies RETURNING version",
    )
    .bind(&p.rules)
    .bind(by)
    .bind(int(p.grades.remind_at_percent))
    .bind(int(p.grades.red_after_percent))
    .bind(p.score.on_time)
    .bind(p.score.yellow)
    .bind(p.score.red)
    .bind(int(p.max_extensions))
    .fetch_one(conn)
    .await
}

/// Every policy version, newest first, with who wrote it and when.
pub async fn policies(conn: &mut PgConnection) -> sqlx::Result<Vec<(PolicyRow, String, DateTime<Utc>)>> {
    let rows: Vec<PolicyVersionRow> = sqlx::query_as(
        "SELECT version, rules, remind_at_percent, red_after_percent, score_on_time, score_yellow, score_red, \
         max_extensions, created_by, created_at FROM time_policies ORDER BY version DESC",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.row, r.created_by, r.created_at)).collect())
}

#[derive(sqlx::FromRow)]
struct PolicyVersionRow {
    #[sqlx(flatten)]
    row: PolicyRow,
    created_by: String,
    created_at: DateTime<Utc>,
}

/// The policy version the case's clocks run under: the one it already has, else the newest, which it keeps
/// from now on. A case supervision has not seen registered takes the newest without keeping it.
pub async fn pin_policy(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Option<i32>> {
    let pinned: Option<Option<i32>> = sqlx::query_scalar(
        "UPDATE cases SET policy_version = COALESCE(policy_version, (SELECT max(version) FROM time_policies)) \
         WHERE case_id = $1 RETURNING policy_version",
    )
    .bind(case_id)
    .fetch_optional(&mut *conn)
    .await?;
    match pinned {
        Some(version) => Ok(version),
        None => latest_policy_version(conn).await,
    }
}

pub async fn latest_policy_version(conn: &mut PgConnection) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar("SELECT max(version) FROM time_policies").fetch_one(conn).await
}
