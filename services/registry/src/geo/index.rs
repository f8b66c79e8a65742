//! The lookup structure: the Dali county polygons shipped in `data/` (GCJ-02, converted once at start-up to
//! WGS84) and the grid boundaries, each in a coarse cell [`Layer`], swapped whole when grids change.

use std::sync::Arc;

use super::domain::{Datum, Place};
use super::layer::Layer;
use super::shape::{Pt, Ring, Shape};

/// The Dali county boundaries shipped with the product (see data/README.md: Vonng/adcode, CC BY 4.0, GCJ-02).
pub const DALI_COUNTIES_GEOJSON: &str = include_str!("../../data/dali_532900_county_boundaries_gcj02.geojson");

/// Cell sizes for the coarse index: about a county, and about a (large) grid.
const COUNTY_CELL_DEG: f64 = 0.1;
pub(super) const GRID_CELL_DEG: f64 = 0.01;

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
