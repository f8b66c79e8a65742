//! The SQL of grid geometry: the boundary as a JSONB ring list and the centre as two floats, all WGS84
//! (migration 1003; no PostGIS). JSON travels as text so sqlx needs no JSON feature.

use sqlx::{PgConnection, PgPool};

use super::domain::GridGeometry;

pub enum Outcome {
    Set,
    Missing,
    Retired,
}

pub async fn set_geometry(conn: &mut PgConnection, code: &str, g: &GridGeometry) -> sqlx::Result<Outcome> {
    let boundary = if g.boundary.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&g.boundary).map_err(|e| sqlx::Error::Encode(e.into()))?)
    };
    let updated = sqlx::query(
        "UPDATE grids SET boundary = $2::jsonb, centre_lon = $3, centre_lat = $4, geometry_updated_at = now() \
         WHERE code = $1 AND retired_at IS NULL",
    )
    .bind(code)
    .bind(boundary)
    .bind(g.centre.map(|c| c[0]))
    .bind(g.centre.map(|c| c[1]))
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(Outcome::Set);
    }
    let exists: Option<bool> =
        sqlx::query_scalar("SELECT true FROM grids WHERE code = $1").bind(code).fetch_optional(&mut *conn).await?;
    Ok(if exists.is_some() { Outcome::Retired } else { Outcome::Missing })
}

#[derive(sqlx::FromRow)]
pub struct BoundaryRow {
    pub code: String,
    pub name: String,
    pub village_code: String,
    /// A micro-grid (it has a parent grid), which outranks the grid it lies in.
    pub micro: bool,
    pub boundary: String,
}

/// Every active grid that has a boundary.
pub async fn grid_boundaries(pool: &PgPool) -> sqlx::Result<Vec<BoundaryRow>> {
    sqlx::query_as(
        "SELECT code, name, village_code, parent_grid_code IS NOT NULL AS micro, boundary::text AS boundary FROM grids \
         WHERE boundary IS NOT NULL AND retired_at IS NULL",
    )
    .fetch_all(pool)
    .await
}
