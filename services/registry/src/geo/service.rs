//! The lookup service: the shared index, and grid geometry stored in the database and rebuilt into the index
//! whenever it changes.

use std::sync::{Arc, PoisonError, RwLock};

use kit::error::{Error, Result};
use sqlx::PgPool;

use super::db;
use super::domain::{GridGeometry, Place};
use super::index::{DALI_COUNTIES_GEOJSON, GRID_CELL_DEG, GeoIndex, counties_from_geojson};
use super::layer::Layer;
use super::shape::{Pt, Ring, Shape};

/// The lookup service: the shared index and the database behind grid geometry.
#[derive(Clone)]
pub struct Geo {
    pool: PgPool,
    counties: Arc<Layer<Place>>,
    index: Arc<RwLock<Arc<GeoIndex>>>,
    /// Serialises rebuilds, so a rebuild that read the database earlier never replaces a later one.
    rebuilding: Arc<tokio::sync::Mutex<()>>,
}

impl Geo {
    /// Loads the shipped counties and every grid boundary.
    pub async fn load(pool: PgPool) -> anyhow::Result<Geo> {
        let counties = Arc::new(counties_from_geojson(DALI_COUNTIES_GEOJSON)?);
        let index = Arc::new(GeoIndex { counties: counties.clone(), grids: Layer::empty() });
        let geo = Geo { pool, counties, index: Arc::new(RwLock::new(index)), rebuilding: Arc::default() };
        geo.rebuild().await?;
        Ok(geo)
    }

    pub fn index(&self) -> Arc<GeoIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Where a WGS84 point is; `None` when no grid or county contains it.
    pub fn resolve(&self, p: Pt) -> Option<Place> {
        self.index().resolve(p).cloned()
    }

    /// Stores a grid's geometry and rebuilds the index before returning, so the next lookup sees it.
    pub async fn set_grid_geometry(&self, code: &str, g: &GridGeometry) -> Result<()> {
        let mut conn = kit::audit::begin(&self.pool).await?;
        match db::set_geometry(&mut conn, code, g).await? {
            db::Outcome::Set => {}
            db::Outcome::Missing => return Err(Error::not_found(format!("grid {code}"))),
            db::Outcome::Retired => return Err(Error::failed_precondition(format!("grid {code} is retired"))),
        }
        conn.commit().await?;
        self.rebuild().await?;
        tracing::info!(grid = %code, rings = g.boundary.len(), centre = g.centre.is_some(), "grid geometry set");
        Ok(())
    }

    /// Rebuilds the index from the database, after a change made elsewhere (a grid retired).
    pub async fn refresh(&self) -> Result<()> {
        self.rebuild().await
    }

    async fn rebuild(&self) -> Result<()> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let rows = db::grid_boundaries(&self.pool).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            // Stored data never stops a start: a boundary that is unreadable or fails today's bounds (stored
            // before they existed, or edited by hand) is left out of the index with a warning, and its grid
            // resolves as if it had none until its geometry is set again.
            let checked = serde_json::from_str::<Vec<Ring>>(&row.boundary)
                .map_err(|e| e.to_string())
                .and_then(|rings| GridGeometry::new(rings, None).map_err(|e| e.to_string()));
            let rings = match checked {
                Ok(g) if !g.boundary.is_empty() => g.boundary,
                Ok(_) => continue,
                Err(reason) => {
                    tracing::warn!(grid = %row.code, %reason, "stored grid boundary left out of the location index");
                    continue;
                }
            };
            let depth = if row.micro { 2 } else { 1 };
            let place = Place { code: row.code, name: row.name, village_code: Some(row.village_code), depth };
            items.push((Shape::new(&[rings]), place));
        }
        let grids = Layer::new(items, GRID_CELL_DEG);
        tracing::debug!(grids = grids.len(), "geo index rebuilt");
        let fresh = Arc::new(GeoIndex { counties: self.counties.clone(), grids });
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}
