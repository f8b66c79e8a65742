//! Centers opened and closed at a node, rotating departments' schedules and who is on duty on a day, and
//! subsidy eligibility changes with their history.

use chrono::{Datelike, NaiveDate};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{self, DepartmentRow, NodeRow, PersonRow};
use crate::domain::Stationing;
use crate::error::{Error, Result};

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

#[derive(sqlx::FromRow)]
struct RotationDbRow {
    department_code: String,
    weekday: Option<i16>,
    from_date: Option<NaiveDate>,
    to_date: Option<NaiveDate>,
    stationed: bool,
}

impl RotationDbRow {
    fn rotation(&self) -> Option<Rotation> {
        let when = match (self.weekday, self.from_date, self.to_date) {
            (Some(w), None, None) => When::Weekday(u8::try_from(w).ok()?),
            (None, Some(f), Some(t)) => When::Dates(f, t),
            _ => return None,
        };
        Some(Rotation { when, stationed: self.stationed })
    }
}

/// A department with its schedule and whether it is on duty on the day asked about.
pub struct Stationed {
    pub department: DepartmentRow,
    pub on_duty: bool,
    pub rotation: Vec<Rotation>,
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

/// Opens a center at a unit of level 2-5; `false` when it was already open.
pub async fn establish(pool: &PgPool, code: &str) -> Result<(NodeRow, bool)> {
    let mut tx = pool.begin().await?;
    center_level(&mut tx, code).await?;
    let opened = sqlx::query("INSERT INTO centers (code) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(code)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if opened {
        record(&mut tx, code, "established").await?;
    }
    let node = db::node(&mut tx, code).await?.ok_or_else(|| Error::NotFound(format!("division {code}")))?;
    tx.commit().await?;
    if opened {
        tracing::info!(center = %code, "center established");
    }
    Ok((node, opened))
}

/// Closes a center; its departments must be moved or removed first, so no case loses its handler silently.
pub async fn close(pool: &PgPool, code: &str) -> Result<NodeRow> {
    let mut tx = pool.begin().await?;
    center_level(&mut tx, code).await?;
    let stationed: i64 = sqlx::query_scalar("SELECT count(*) FROM departments WHERE center_code = $1")
        .bind(code)
        .fetch_one(&mut *tx)
        .await?;
    if stationed > 0 {
        return Err(Error::FailedPrecondition(format!("{stationed} departments are still stationed at center {code}")));
    }
    let closed = sqlx::query("DELETE FROM centers WHERE code = $1").bind(code).execute(&mut *tx).await;
    match closed {
        Ok(r) if r.rows_affected() == 0 => return Err(Error::NotFound(format!("center {code}"))),
        Ok(_) => {}
        Err(e) if kit::db::violated_constraint(&e).is_some() => {
            return Err(Error::FailedPrecondition(format!("center {code} is still referenced by other records")));
        }
        Err(e) => return Err(e.into()),
    }
    record(&mut tx, code, "closed").await?;
    let node = db::node(&mut tx, code).await?.ok_or_else(|| Error::NotFound(format!("division {code}")))?;
    tx.commit().await?;
    tracing::info!(center = %code, "center closed");
    Ok(node)
}

/// Centers exist at levels 2-5 only; the division row is locked so a close and an establish do not interleave.
async fn center_level(conn: &mut sqlx::PgConnection, code: &str) -> Result<()> {
    match db::lock_division(conn, code).await? {
        Some(2..=5) => Ok(()),
        Some(level) => {
            Err(Error::FailedPrecondition(format!("a center exists at levels 2-5 only; {code} is level {level}")))
        }
        None => Err(Error::NotFound(format!("division {code}"))),
    }
}

async fn record(conn: &mut sqlx::PgConnection, code: &str, change: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO center_changes (code, change) VALUES ($1, $2)")
        .bind(code)
        .bind(change)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces a rotating department's schedule as a whole, under a lock on the department row.
pub async fn set_rotation(pool: &PgPool, department: &str, lines: &[Rotation]) -> Result<Vec<Rotation>> {
    let mut tx = pool.begin().await?;
    let stationing: Option<String> =
        sqlx::query_scalar("SELECT stationing FROM departments WHERE code = $1 FOR UPDATE")
            .bind(department)
            .fetch_optional(&mut *tx)
            .await?;
    match stationing.as_deref() {
        None => return Err(Error::NotFound(format!("department {department}"))),
        Some(s) if s != Stationing::Rotating.as_str() => {
            return Err(Error::FailedPrecondition(format!("department {department} is {s}, not rotating")));
        }
        Some(_) => {}
    }
    sqlx::query("DELETE FROM department_rotations WHERE department_code = $1")
        .bind(department)
        .execute(&mut *tx)
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
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(lines.to_vec())
}

/// The departments stationed at a center, each with its schedule and whether it is on duty on `date`.
pub async fn stationed(pool: &PgPool, center: &str, date: NaiveDate) -> Result<Vec<Stationed>> {
    let mut conn = pool.acquire().await?;
    if !db::is_center(&mut conn, center).await? {
        return Err(Error::NotFound(format!("center {center}")));
    }
    let departments = db::departments(&mut conn, center).await?;
    let codes: Vec<&str> = departments.iter().map(|d| d.code.as_str()).collect();
    let rows: Vec<RotationDbRow> = sqlx::query_as(
        "SELECT department_code, weekday, from_date, to_date, stationed FROM department_rotations \
         WHERE department_code = ANY($1) ORDER BY department_code, id",
    )
    .bind(&codes)
    .fetch_all(&mut *conn)
    .await?;
    Ok(departments
        .into_iter()
        .map(|department| {
            let rotation: Vec<Rotation> = rows
                .iter()
                .filter(|r| r.department_code == department.code)
                .filter_map(RotationDbRow::rotation)
                .collect();
            let stationing = Stationing::parse("stationing", &department.stationing).unwrap_or(Stationing::OnCall);
            Stationed { on_duty: on_duty(stationing, &rotation, date), rotation, department }
        })
        .collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EligibilityChangeRow {
    pub from_eligible: bool,
    pub to_eligible: bool,
    pub from_source: String,
    pub to_source: String,
    pub reason: String,
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

/// Sets eligibility and its source, recording the change; setting what is already there records nothing.
pub async fn change_eligibility(
    pool: &PgPool,
    person: Uuid,
    eligible: bool,
    source: &str,
    reason: &str,
) -> Result<PersonRow> {
    let mut tx = pool.begin().await?;
    let current: Option<(bool, String)> =
        sqlx::query_as("SELECT subsidy_eligible, eligibility_source FROM persons WHERE id = $1 FOR UPDATE")
            .bind(person)
            .fetch_optional(&mut *tx)
            .await?;
    let (was, was_source) = current.ok_or_else(|| Error::NotFound(format!("person {person}")))?;
    if (was, was_source.as_str()) != (eligible, source) {
        sqlx::query("UPDATE persons SET subsidy_eligible = $2, eligibility_source = $3 WHERE id = $1")
            .bind(person)
            .bind(eligible)
            .bind(source)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO eligibility_changes (person_id, from_eligible, to_eligible, from_source, to_source, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(person)
        .bind(was)
        .bind(eligible)
        .bind(&was_source)
        .bind(source)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tracing::info!(person_id = %person, eligible, "subsidy eligibility changed");
    }
    let row = db::person(&mut tx, person).await?.ok_or_else(|| Error::NotFound(format!("person {person}")))?;
    tx.commit().await?;
    Ok(row)
}

pub async fn eligibility_changes(pool: &PgPool, person: Uuid) -> Result<Vec<EligibilityChangeRow>> {
    let mut conn = pool.acquire().await?;
    db::person(&mut conn, person).await?.ok_or_else(|| Error::NotFound(format!("person {person}")))?;
    Ok(sqlx::query_as(
        "SELECT from_eligible, to_eligible, from_source, to_source, reason, changed_at FROM eligibility_changes \
         WHERE person_id = $1 ORDER BY id",
    )
    .bind(person)
    .fetch_all(&mut *conn)
    .await?)
}
