//! The SQL of grids, persons, 一格一员 assignments and eligibility changes: plain functions over a connection,
//! returning the grids room's aggregates.

use kit::ids::PersonId;
use sqlx::PgConnection;

use super::domain::{EligibilityChange, Grid, GridKind, LockedGrid, Person};

const GRID: &str = "SELECT g.code, g.name, g.village_code, g.kind, g.parent_grid_code, \
    (SELECT a.person_id FROM grid_assignments a WHERE a.grid_code = g.code AND a.ended_at IS NULL) AS primary_worker_id, \
    g.retired_at IS NOT NULL AS retired FROM grids g";

pub async fn grid(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Grid>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{GRID} WHERE g.code = $1"))).bind(code).fetch_optional(conn).await
}

/// Grids directly under a village, or micro-grids under a grid, in code order.
pub async fn grids_under(conn: &mut PgConnection, code: &str, after: &str, limit: i64) -> sqlx::Result<Vec<Grid>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{GRID} WHERE g.retired_at IS NULL AND g.code > $2 AND \
         ((g.kind = $4 AND g.village_code = $1) OR g.parent_grid_code = $1) ORDER BY g.code LIMIT $3"
    )))
    .bind(code)
    .bind(after)
    .bind(limit)
    .bind(GridKind::Grid)
    .fetch_all(conn)
    .await
}

/// The next free 3-digit sequence under a village (grids) or a grid (micro-grids). The caller holds a lock
/// on the parent row, so two creations cannot take the same number.
pub async fn next_grid_seq(conn: &mut PgConnection, parent: &str) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "SELECT COALESCE(max(right(code, 3)::int), 0) + 1 FROM grids \
         WHERE length(code) = length($1) + 3 AND left(code, length($1)) = $1",
    )
    .bind(parent)
    .fetch_one(conn)
    .await
}

pub async fn lock_grid(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<LockedGrid>> {
    sqlx::query_as("SELECT village_code, kind, retired_at IS NOT NULL AS retired FROM grids WHERE code = $1 FOR UPDATE")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn insert_grid(
    conn: &mut PgConnection,
    code: &str,
    name: &str,
    village: &str,
    kind: GridKind,
    parent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO grids (code, name, village_code, kind, parent_grid_code) VALUES ($1, $2, $3, $4, $5)")
        .bind(code)
        .bind(name)
        .bind(village)
        .bind(kind)
        .bind(parent)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn rename_grid(conn: &mut PgConnection, code: &str, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE grids SET name = $2 WHERE code = $1").bind(code).bind(name).execute(conn).await?;
    Ok(())
}

/// Retires the grid and its active micro-grids; returns the micro-grids' codes.
pub async fn retire_grid(conn: &mut PgConnection, code: &str) -> sqlx::Result<Vec<String>> {
    let micro: Vec<String> = sqlx::query_scalar(
        "UPDATE grids SET retired_at = now() WHERE parent_grid_code = $1 AND retired_at IS NULL RETURNING code",
    )
    .bind(code)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("UPDATE grids SET retired_at = now() WHERE code = $1").bind(code).execute(&mut *conn).await?;
    Ok(micro)
}

/// A person's row as written, the PII sealed and masked.
pub struct PersonRow<'a> {
    pub id: PersonId,
    pub name: &'a str,
    pub role: super::domain::PersonRole,
    pub phone_sealed: Option<Vec<u8>>,
    pub phone_masked: String,
    pub id_number_sealed: Option<Vec<u8>>,
    pub id_number_masked: String,
    pub home_code: &'a str,
    pub subsidy_eligible: bool,
    pub eligibility_source: &'a str,
}

pub async fn insert_person(conn: &mut PgConnection, p: &PersonRow<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO persons (id, name, role, phone_sealed, phone_masked, id_number_sealed, id_number_masked, \
         home_code, subsidy_eligible, eligibility_source) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
    )
    .bind(p.id)
    .bind(p.name)
    .bind(p.role)
    .bind(&p.phone_sealed)
    .bind(&p.phone_masked)
    .bind(&p.id_number_sealed)
    .bind(&p.id_number_masked)
    .bind(p.home_code)
    .bind(p.subsidy_eligible)
    .bind(p.eligibility_source)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn person(conn: &mut PgConnection, id: PersonId) -> sqlx::Result<Option<Person>> {
    sqlx::query_as(
        "SELECT id, name, role, phone_masked, id_number_masked, home_code, subsidy_eligible, eligibility_source \
         FROM persons WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Ends the grid's active assignment, if any, returning whose it was.
pub async fn end_assignment(conn: &mut PgConnection, grid: &str) -> sqlx::Result<Option<PersonId>> {
    sqlx::query_scalar(
        "UPDATE grid_assignments SET ended_at = now() WHERE grid_code = $1 AND ended_at IS NULL RETURNING person_id",
    )
    .bind(grid)
    .fetch_optional(conn)
    .await
}

pub async fn start_assignment(conn: &mut PgConnection, grid: &str, person: PersonId) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO grid_assignments (grid_code, person_id) VALUES ($1, $2)")
        .bind(grid)
        .bind(person)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends the active assignments of the given grids, returning whose they were.
pub async fn end_assignments(conn: &mut PgConnection, grids: &[String]) -> sqlx::Result<Vec<PersonId>> {
    sqlx::query_scalar(
        "UPDATE grid_assignments SET ended_at = now() WHERE grid_code = ANY($1) AND ended_at IS NULL RETURNING person_id",
    )
    .bind(grids)
    .fetch_all(conn)
    .await
}

/// A person's eligibility and its source, locked for a change.
pub async fn lock_eligibility(conn: &mut PgConnection, person: PersonId) -> sqlx::Result<Option<(bool, String)>> {
    sqlx::query_as("SELECT subsidy_eligible, eligibility_source FROM persons WHERE id = $1 FOR UPDATE")
        .bind(person)
        .fetch_optional(conn)
        .await
}

/// Sets eligibility and its source, and records the change from what it was.
pub async fn change_eligibility(
    conn: &mut PgConnection,
    person: PersonId,
    was: (bool, &str),
    now: (bool, &str),
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE persons SET subsidy_eligible = $2, eligibility_source = $3 WHERE id = $1")
        .bind(person)
        .bind(now.0)
        .bind(now.1)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO eligibility_changes (person_id, from_eligible, to_eligible, from_source, to_source, reason) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(person)
    .bind(was.0)
    .bind(now.0)
    .bind(was.1)
    .bind(now.1)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn eligibility_changes(conn: &mut PgConnection, person: PersonId) -> sqlx::Result<Vec<EligibilityChange>> {
    sqlx::query_as(
        "SELECT from_eligible, to_eligible, from_source, to_source, reason, changed_at FROM eligibility_changes \
         WHERE person_id = $1 ORDER BY id",
    )
    .bind(person)
    .fetch_all(conn)
    .await
}
