//! The SQL of centers, departments and rotation schedules: plain functions over a connection, returning the
//! centers room's aggregates.

use chrono::NaiveDate;
use sqlx::PgConnection;

use super::domain::{Department, Rotation, Stationing, When};

pub async fn is_center(conn: &mut PgConnection, code: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM centers WHERE code = $1)").bind(code).fetch_one(conn).await
}

/// Opens a center; false when one was open already.
pub async fn open_center(conn: &mut PgConnection, code: &str) -> sqlx::Result<bool> {
    let opened = sqlx::query("INSERT INTO centers (code) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(code)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(opened == 1)
}

/// Closes a center; false when none was open.
pub async fn close_center(conn: &mut PgConnection, code: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query("DELETE FROM centers WHERE code = $1").bind(code).execute(conn).await?.rows_affected() > 0)
}

/// Records a center's opening or closing.
pub async fn record(conn: &mut PgConnection, code: &str, change: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO center_changes (code, change) VALUES ($1, $2)")
        .bind(code)
        .bind(change)
        .execute(conn)
        .await?;
    Ok(())
}

/// The departments still stationed at a center (retired ones count too: their rows reference the center).
pub async fn departments_at(conn: &mut PgConnection, center: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM departments WHERE center_code = $1").bind(center).fetch_one(conn).await
}

/// A department's columns; `retired` is read from its retirement time.
const DEPARTMENT_COLUMNS: &str =
    "code, name, center_code, stationing, category_prefixes, retired_at IS NOT NULL AS retired";

pub async fn department(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Department>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE code = $1")))
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn departments(conn: &mut PgConnection, center: &str) -> sqlx::Result<Vec<Department>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE center_code = $1 ORDER BY code"
    )))
    .bind(center)
    .fetch_all(conn)
    .await
}

pub async fn department_center(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT center_code FROM departments WHERE code = $1").bind(code).fetch_optional(conn).await
}

pub async fn put_department(conn: &mut PgConnection, d: &Department) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO departments (code, name, center_code, stationing, category_prefixes, retired_at) \
         VALUES ($1,$2,$3,$4,$5, CASE WHEN $6 THEN now() END) \
         ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, center_code = EXCLUDED.center_code, \
         stationing = EXCLUDED.stationing, category_prefixes = EXCLUDED.category_prefixes, \
         retired_at = CASE WHEN $6 THEN COALESCE(departments.retired_at, now()) END",
    )
    .bind(&d.code)
    .bind(&d.name)
    .bind(&d.center_code)
    .bind(d.stationing)
    .bind(&d.category_prefixes)
    .bind(d.retired)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a department's row, returning how it is stationed.
pub async fn lock_stationing(conn: &mut PgConnection, department: &str) -> sqlx::Result<Option<Stationing>> {
    sqlx::query_scalar("SELECT stationing FROM departments WHERE code = $1 FOR UPDATE")
        .bind(department)
        .fetch_optional(conn)
        .await
}

/// Replaces a department's schedule with `lines`.
pub async fn replace_rotation(conn: &mut PgConnection, department: &str, lines: &[Rotation]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM department_rotations WHERE department_code = $1")
        .bind(department)
        .execute(&mut *conn)
        .await?;
    for line in lines {
        let (weekday, from, to) = match line.when {
            When::Weekday(w) => (Some(i16::from(w)), None, None),
            When::Dates(f, t) => (None, Some(f), Some(t)),
        };
        sqlx::query(
            "INSERT INTO department_rotations (department_code, weekday, from_date, to_date, stationed) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(department)
        .bind(weekday)
        .bind(from)
        .bind(to)
        .bind(line.stationed)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RotationRow {
    department_code: String,
    weekday: Option<i16>,
    from_date: Option<NaiveDate>,
    to_date: Option<NaiveDate>,
    stationed: bool,
}

impl RotationRow {
    /// A line the table's checks allow; None for one they would not (never stored).
    fn rotation(&self) -> Option<Rotation> {
        let when = match (self.weekday, self.from_date, self.to_date) {
            (Some(w), None, None) => When::Weekday(u8::try_from(w).ok()?),
            (None, Some(f), Some(t)) => When::Dates(f, t),
            _ => return None,
        };
        Some(Rotation { when, stationed: self.stationed })
    }
}

/// The schedules of the given departments, each department's lines in the order they were set.
pub async fn rotations(conn: &mut PgConnection, departments: &[&str]) -> sqlx::Result<Vec<(String, Rotation)>> {
    let rows: Vec<RotationRow> = sqlx::query_as(
        "SELECT department_code, weekday, from_date, to_date, stationed FROM department_rotations \
         WHERE department_code = ANY($1) ORDER BY department_code, id",
    )
    .bind(departments)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().filter_map(|r| Some((r.department_code.clone(), r.rotation()?))).collect())
}
