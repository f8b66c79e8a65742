//! Location values: the datum a caller's coordinates are in, a checked point, a grid's checked geometry, and
//! the place a point resolves to. Proto-free and SQL-free; every check names its field.

use kit::FieldError;

use super::shape::{self, BBox, Pt, Ring};

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
                let (lon, lat) = super::datum::gcj02_to_wgs84(p[0], p[1]);
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
