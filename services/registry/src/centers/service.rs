//! The centers room's use cases: centers opened and closed at a node, departments put and listed, rotating
//! departments' schedules, and who is on duty on a day.

use chrono::NaiveDate;
use kit::error::{Error, Result};
use sqlx::{PgConnection, PgPool};

use super::db;
use super::domain::{Department, Rotation, Stationed, Stationing, center_level, duty};
use crate::tree::db as tree_db;
use crate::tree::domain::Node;

/// Opens a center at a unit of level 2-5; `false` when it was already open.
pub async fn establish(pool: &PgPool, code: &str) -> Result<(Node, bool)> {
    let mut tx = kit::audit::begin(pool).await?;
    lock_center_level(&mut tx, code).await?;
    let opened = db::open_center(&mut tx, code).await?;
    if opened {
        db::record(&mut tx, code, "established").await?;
    }
    let node = tree_db::node(&mut tx, code).await?.ok_or_else(|| Error::not_found(format!("division {code}")))?;
    tx.commit().await?;
    if opened {
        tracing::info!(center = %code, "center established");
    }
    Ok((node, opened))
}

/// Closes a center; its departments must be moved or removed first, so no case loses its handler silently.
pub async fn close(pool: &PgPool, code: &str) -> Result<Node> {
    let mut tx = kit::audit::begin(pool).await?;
    lock_center_level(&mut tx, code).await?;
    let stationed = db::departments_at(&mut tx, code).await?;
    if stationed > 0 {
        return Err(Error::failed_precondition(format!(
            "{stationed} departments are still stationed at center {code}"
        )));
    }
    match db::close_center(&mut tx, code).await {
        Ok(false) => return Err(Error::not_found(format!("center {code}"))),
        Ok(true) => {}
        Err(e) if kit::db::violated_constraint(&e).is_some() => {
            return Err(Error::failed_precondition(format!("center {code} is still referenced by other records")));
        }
        Err(e) => return Err(e.into()),
    }
    db::record(&mut tx, code, "closed").await?;
    let node = tree_db::node(&mut tx, code).await?.ok_or_else(|| Error::not_found(format!("division {code}")))?;
    tx.commit().await?;
    tracing::info!(center = %code, "center closed");
    Ok(node)
}

/// Locks the division row, so a close and an establish do not interleave, and checks a center may stand there.
async fn lock_center_level(conn: &mut PgConnection, code: &str) -> Result<()> {
    match tree_db::lock_division(conn, code).await? {
        Some(level) => center_level(code, level),
        None => Err(Error::not_found(format!("division {code}"))),
    }
}

pub async fn departments(pool: &PgPool, center: &str) -> Result<Vec<Department>> {
    let mut conn = pool.acquire().await?;
    Ok(db::departments(&mut conn, center).await?)
}

/// The center a department is stationed at, if the department exists.
pub async fn department_center(pool: &PgPool, code: &str) -> Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    Ok(db::department_center(&mut conn, code).await?)
}

pub async fn put_department(pool: &PgPool, d: Department) -> Result<Department> {
    let mut conn = kit::audit::begin(pool).await?;
    if !db::is_center(&mut conn, &d.center_code).await? {
        return Err(Error::invalid("department.center_code", "has no center"));
    }
    db::put_department(&mut conn, &d).await?;
    conn.commit().await?;
    Ok(d)
}

/// Replaces a rotating department's schedule as a whole, under a lock on the department row.
pub async fn set_rotation(pool: &PgPool, department: &str, lines: &[Rotation]) -> Result<Vec<Rotation>> {
    let mut tx = kit::audit::begin(pool).await?;
    match db::lock_stationing(&mut tx, department).await? {
        None => return Err(Error::not_found(format!("department {department}"))),
        Some(s) if s != Stationing::Rotating => {
            return Err(Error::failed_precondition(format!("department {department} is {s}, not rotating")));
        }
        Some(_) => {}
    }
    db::replace_rotation(&mut tx, department, lines).await?;
    tx.commit().await?;
    Ok(lines.to_vec())
}

/// The departments stationed at a center, each with its schedule and whether it is on duty on `date`.
pub async fn stationed(pool: &PgPool, center: &str, date: NaiveDate) -> Result<Vec<Stationed>> {
    let mut conn = pool.acquire().await?;
    if !db::is_center(&mut conn, center).await? {
        return Err(Error::not_found(format!("center {center}")));
    }
    let departments = db::departments(&mut conn, center).await?;
    let codes: Vec<&str> = departments.iter().map(|d| d.code.as_str()).collect();
    let lines = db::rotations(&mut conn, &codes).await?;
    Ok(departments
        .into_iter()
        .map(|department| {
            let rotation: Vec<Rotation> =
                lines.iter().filter(|(code, _)| *code == department.code).map(|(_, r)| *r).collect();
            Stationed { on_duty: duty(&department, &rotation, date), rotation, department }
        })
        .collect())
}

/// One department with its schedule and whether it receives cases on `date`; NOT_FOUND when unknown.
pub async fn department(pool: &PgPool, code: &str, date: NaiveDate) -> Result<Stationed> {
    let mut conn = pool.acquire().await?;
    let department =
        db::department(&mut conn, code).await?.ok_or_else(|| Error::not_found(format!("department {code}")))?;
    let rotation: Vec<Rotation> = db::rotations(&mut conn, &[code]).await?.into_iter().map(|(_, r)| r).collect();
    Ok(Stationed { on_duty: duty(&department, &rotation, date), rotation, department })
}
