//! The registry's queries: plain functions over a connection or transaction.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub code: String,
    pub name: String,
    pub level: i16,
    pub parent_code: Option<String>,
    pub has_center: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GridRow {
    pub code: String,
    pub name: String,
    pub village_code: String,
    pub kind: String,
    pub parent_grid_code: Option<String>,
    pub primary_worker_id: Option<Uuid>,
    pub retired: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PersonRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub phone_masked: String,
    pub id_number_masked: String,
    pub home_code: String,
    pub subsidy_eligible: bool,
    pub eligibility_source: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepartmentRow {
    pub code: String,
    pub name: String,
    pub center_code: String,
    pub stationing: String,
    pub category_prefixes: Vec<String>,
}

const NODE: &str = "SELECT d.code, d.name, d.level, d.parent_code, \
    EXISTS (SELECT 1 FROM centers c WHERE c.code = d.code) AS has_center FROM divisions d";

pub async fn node(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<NodeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{NODE} WHERE d.code = $1 AND d.retired_at IS NULL")))
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// The node and every ancestor, the node first and the root last.
pub async fn path_up(conn: &mut PgConnection, code: &str) -> sqlx::Result<Vec<NodeRow>> {
    sqlx::query_as(
        "WITH RECURSIVE up AS ( \
            SELECT code, name, level, parent_code, 0 AS depth FROM divisions WHERE code = $1 AND retired_at IS NULL \
            UNION ALL \
            SELECT d.code, d.name, d.level, d.parent_code, up.depth + 1 FROM divisions d \
            JOIN up ON d.code = up.parent_code) \
         SELECT up.code, up.name, up.level, up.parent_code, \
            EXISTS (SELECT 1 FROM centers c WHERE c.code = up.code) AS has_center \
         FROM up ORDER BY depth",
    )
    .bind(code)
    .fetch_all(conn)
    .await
}

/// A page of a division's children in code order, after `after`.
pub async fn children(conn: &mut PgConnection, code: &str, after: &str, limit: i64) -> sqlx::Result<Vec<NodeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{NODE} WHERE d.parent_code = $1 AND d.retired_at IS NULL AND d.code > $2 ORDER BY d.code LIMIT $3"
    )))
    .bind(code)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

const GRID: &str = "SELECT g.code, g.name, g.village_code, g.kind, g.parent_grid_code, \
    (SELECT a.person_id FROM grid_assignments a WHERE a.grid_code = g.code AND a.ended_at IS NULL) AS primary_worker_id, \
    g.retired_at IS NOT NULL AS retired FROM grids g";

pub async fn grid(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<GridRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{GRID} WHERE g.code = $1"))).bind(code).fetch_optional(conn).await
}

/// Grids directly under a village, or micro-grids under a grid, in code order.
pub async fn grids_under(conn: &mut PgConnection, code: &str, after: &str, limit: i64) -> sqlx::Result<Vec<GridRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{GRID} WHERE g.retired_at IS NULL AND g.code > $2 AND \
         ((g.kind = 'grid' AND g.village_code = $1) OR g.parent_grid_code = $1) ORDER BY g.code LIMIT $3"
    )))
    .bind(code)
    .bind(after)
    .bind(limit)
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

pub async fn lock_division(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<i16>> {
    sqlx::query_scalar("SELECT level FROM divisions WHERE code = $1 AND retired_at IS NULL FOR UPDATE")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn lock_grid(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<(String, String, bool)>> {
    sqlx::query_as("SELECT village_code, kind, retired_at IS NOT NULL FROM grids WHERE code = $1 FOR UPDATE")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn insert_grid(
    conn: &mut PgConnection,
    code: &str,
    name: &str,
    village: &str,
    kind: &str,
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

pub struct NewPerson<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub role: &'a str,
    pub phone_sealed: Option<Vec<u8>>,
    pub phone_masked: String,
    pub id_number_sealed: Option<Vec<u8>>,
    pub id_number_masked: String,
    pub home_code: &'a str,
    pub subsidy_eligible: bool,
    pub eligibility_source: &'a str,
}

pub async fn insert_person(conn: &mut PgConnection, p: &NewPerson<'_>) -> sqlx::Result<()> {
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

pub async fn person(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PersonRow>> {
    sqlx::query_as(
        "SELECT id, name, role, phone_masked, id_number_masked, home_code, subsidy_eligible, eligibility_source \
         FROM persons WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Ends the grid's active assignment, if any, returning whose it was.
pub async fn end_assignment(conn: &mut PgConnection, grid: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE grid_assignments SET ended_at = now() WHERE grid_code = $1 AND ended_at IS NULL RETURNING person_id",
    )
    .bind(grid)
    .fetch_optional(conn)
    .await
}

pub async fn start_assignment(conn: &mut PgConnection, grid: &str, person: Uuid) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO grid_assignments (grid_code, person_id) VALUES ($1, $2)")
        .bind(grid)
        .bind(person)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn is_center(conn: &mut PgConnection, code: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM centers WHERE code = $1)").bind(code).fetch_one(conn).await
}

pub async fn departments(conn: &mut PgConnection, center: &str) -> sqlx::Result<Vec<DepartmentRow>> {
    sqlx::query_as(
        "SELECT code, name, center_code, stationing, category_prefixes FROM departments \
         WHERE center_code = $1 ORDER BY code",
    )
    .bind(center)
    .fetch_all(conn)
    .await
}

pub async fn department_center(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT center_code FROM departments WHERE code = $1").bind(code).fetch_optional(conn).await
}

pub async fn put_department(conn: &mut PgConnection, d: &DepartmentRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO departments (code, name, center_code, stationing, category_prefixes) VALUES ($1,$2,$3,$4,$5) \
         ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, center_code = EXCLUDED.center_code, \
         stationing = EXCLUDED.stationing, category_prefixes = EXCLUDED.category_prefixes",
    )
    .bind(&d.code)
    .bind(&d.name)
    .bind(&d.center_code)
    .bind(&d.stationing)
    .bind(&d.category_prefixes)
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

/// Ends the active assignments of the given grids, returning whose they were.
pub async fn end_assignments(conn: &mut PgConnection, grids: &[String]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE grid_assignments SET ended_at = now() WHERE grid_code = ANY($1) AND ended_at IS NULL RETURNING person_id",
    )
    .bind(grids)
    .fetch_all(conn)
    .await
}
