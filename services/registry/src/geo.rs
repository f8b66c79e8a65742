//! Location lookup: which grid, or failing that which county, contains a map point.
//!
//! The index lives in memory: the Dali county polygons shipped in `data/` (GCJ-02, converted once at start-up
//! to WGS84) and every grid boundary in the database, rebuilt whenever a grid's geometry is set. Everything in
//! the index and in storage is WGS84; GCJ-02 input is converted at the edge.

pub mod datum;
mod layer;
pub mod shape;
mod store;

use std::sync::{Arc, PoisonError, RwLock};

use kit::FieldError;
use sqlx::PgPool;

pub use layer::Layer;
use shape::{BBox, Pt, Ring, Shape};

use crate::error::{Error, Result};

/// The Dali county boundaries shipped with the product (see data/README.md: Vonng/adcode, CC BY 4.0, GCJ-02).
pub const DALI_COUNTIES_GEOJSON: &str = include_str!("../data/dali_532900_county_boundaries_gcj02.geojson");

/// Cell sizes for the coarse index: about a county, and about a (large) grid.
const COUNTY_CELL_DEG: f64 = 0.1;
const GRID_CELL_DEG: f64 = 0.01;
const MAX_RINGS: usize = 64;
const MAX_RING_POINTS: usize = 10_000;
/// All rings together: bounds a geometry's index and the (at worst quadratic) self-intersection check.
const MAX_GEOMETRY_POINTS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum {
    /// WGS84, or CGCS2000, which differs from it by centimetres.
    Wgs84,
    Gcj02,
}

impl Datum {
    /// Empty means the default, WGS84; names are case-insensitive.
    pub fn parse(field: &str, value: &str) -> std::result::Result<Datum, FieldError> {
        let v = kit::field::bounded(field, value, 16)
            .map_err(|_| FieldError::new(field, "is not a known datum; expected wgs84 or gcj02"))?;
        match v.to_ascii_lowercase().as_str() {
            "" | "wgs84" | "cgcs2000" => Ok(Datum::Wgs84),
            "gcj02" => Ok(Datum::Gcj02),
            other => Err(FieldError::new(
                field,
                format!("unknown datum {}; expected wgs84 or gcj02", kit::field::excerpt(other)),
            )),
        }
    }

    pub fn to_wgs84(self, p: Pt) -> Pt {
        match self {
            Datum::Wgs84 => p,
            Datum::Gcj02 => {
                let (lon, lat) = datum::gcj02_to_wgs84(p[0], p[1]);
                [lon, lat]
            }
        }
    }
}

/// A checked position in the given datum, converted to WGS84. `field` prefixes the names in errors
/// (`""` gives `lon`/`lat`, `"centre"` gives `centre.lon`/`centre.lat`).
pub fn point(field: &str, lon: f64, lat: f64, datum: Datum) -> std::result::Result<Pt, FieldError> {
    let name = |k: &str| if field.is_empty() { k.to_owned() } else { format!("{field}.{k}") };
    for (k, v, limit) in [("lon", lon, 180.0), ("lat", lat, 90.0)] {
        if !v.is_finite() {
            return Err(FieldError::new(name(k), "must be a finite number"));
        }
        if v.abs() > limit {
            return Err(FieldError::new(name(k), format!("must be between -{limit} and {limit}")));
        }
    }
    Ok(datum.to_wgs84([lon, lat]))
}

/// A grid's boundary (outer ring then holes; empty for none) and centre, checked and in WGS84.
#[derive(Debug, Clone, PartialEq)]
pub struct GridGeometry {
    pub boundary: Vec<Ring>,
    pub centre: Option<Pt>,
}

impl GridGeometry {
    /// Checks rings that are already converted point by point (see [`point`]): each closed with at least 4
    /// points, some area and no self-intersection, every hole within the outer ring's box, and no more points
    /// than the index can afford. Rings crossing each other are not checked.
    pub fn new(boundary: Vec<Ring>, centre: Option<Pt>) -> std::result::Result<Self, FieldError> {
        if boundary.len() > MAX_RINGS {
            return Err(FieldError::new("boundary", format!("has more than {MAX_RINGS} rings")));
        }
        if boundary.iter().map(Vec::len).sum::<usize>() > MAX_GEOMETRY_POINTS {
            return Err(FieldError::new("boundary", format!("has more than {MAX_GEOMETRY_POINTS} points in all")));
        }
        for (i, ring) in boundary.iter().enumerate() {
            let field = format!("boundary[{i}]");
            if ring.len() < 4 || ring.len() > MAX_RING_POINTS {
                return Err(FieldError::new(field, format!("must have 4 to {MAX_RING_POINTS} points")));
            }
            if ring.first() != ring.last() {
                return Err(FieldError::new(field, "must be closed: the last point repeats the first"));
            }
            if shape::ring_area(ring) <= 0.0 {
                return Err(FieldError::new(field, "has no area"));
            }
            if i > 0 && !BBox::of(&boundary[0]).covers(&BBox::of(ring)) {
                return Err(FieldError::new(field, "is a hole but lies outside the outer ring"));
            }
            if !ring.iter().flatten().all(|v| v.is_finite()) {
                return Err(FieldError::new(field, "has a coordinate that is not a finite number"));
            }
            if shape::self_intersects(ring) {
                return Err(FieldError::new(field, "crosses or touches itself"));
            }
        }
        Ok(GridGeometry { boundary, centre })
    }
}

/// What a point resolved to: a grid (with its village) or a county.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub code: String,
    pub name: String,
    /// Set for grids only.
    pub village_code: Option<String>,
    /// 0 county, 1 grid, 2 micro-grid: the deeper place wins.
    pub depth: u8,
}

impl Place {
    pub fn is_grid(&self) -> bool {
        self.village_code.is_some()
    }

    /// The county's 12-digit code; for a grid, from the first six digits of its code.
    pub fn county_code(&self) -> String {
        format!("{}000000", &self.code[..6.min(self.code.len())])
    }
}

/// The lookup structure: immutable, swapped whole when grids change.
#[derive(Debug)]
pub struct GeoIndex {
    pub counties: Arc<Layer<Place>>,
    pub grids: Layer<Place>,
}

impl GeoIndex {
    /// The deepest containing grid (then the smallest, then the lowest code), else the containing county.
    pub fn resolve(&self, p: Pt) -> Option<&Place> {
        let grid = self.grids.containing(p).min_by(|(sa, a), (sb, b)| {
            b.depth.cmp(&a.depth).then(sa.area.total_cmp(&sb.area)).then_with(|| a.code.cmp(&b.code))
        });
        grid.or_else(|| self.counties.containing(p).next()).map(|(_, place)| place)
    }
}

/// The county layer from a GeoJSON FeatureCollection of level-3 features in GCJ-02 (others are skipped).
pub fn counties_from_geojson(text: &str) -> anyhow::Result<Layer<Place>> {
    use anyhow::Context;
    let doc: serde_json::Value = serde_json::from_str(text).context("county boundaries are not JSON")?;
    let features = doc["features"].as_array().context("county boundaries have no features")?;
    let mut items = Vec::new();
    for f in features.iter().filter(|f| f["properties"]["level"].as_u64() == Some(3)) {
        let code = f["properties"]["code"].as_str().context("a county feature has no code")?;
        let name = f["properties"]["name"].as_str().unwrap_or_default();
        let coords = &f["geometry"]["coordinates"];
        let polygons: Vec<Vec<Ring>> = match f["geometry"]["type"].as_str() {
            Some("Polygon") => vec![serde_json::from_value(coords.clone())?],
            Some("MultiPolygon") => serde_json::from_value(coords.clone())?,
            other => anyhow::bail!("county {code}: unsupported geometry {other:?}"),
        };
        let wgs: Vec<Vec<Ring>> = polygons
            .into_iter()
            .map(|p| p.into_iter().map(|r| r.into_iter().map(|q| Datum::Gcj02.to_wgs84(q)).collect()).collect())
            .collect();
        let place = Place { code: code.to_owned(), name: name.to_owned(), village_code: None, depth: 0 };
        items.push((Shape::new(&wgs), place));
    }
    anyhow::ensure!(!items.is_empty(), "county boundaries hold no level-3 feature");
    Ok(Layer::new(items, COUNTY_CELL_DEG))
}

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
        let mut conn = self.pool.acquire().await?;
        match store::set_geometry(&mut conn, code, g).await? {
            store::Outcome::Set => {}
            store::Outcome::Missing => return Err(Error::NotFound(format!("grid {code}"))),
            store::Outcome::Retired => return Err(Error::FailedPrecondition(format!("grid {code} is retired"))),
        }
        drop(conn);
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
        let rows = store::grid_boundaries(&self.pool).await?;
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
            let depth = if row.kind == "micro_grid" { 2 } else { 1 };
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

#[cfg(test)]
mod tests;
