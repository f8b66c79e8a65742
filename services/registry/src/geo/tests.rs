//! The shipped Dali counties and the geometry checks, without a database.

use std::sync::Arc;

use kit::FieldError;

use super::index::GRID_CELL_DEG;
use super::shape::{Pt, Ring, Shape};
use super::*;

fn counties() -> GeoIndex {
    let counties = Arc::new(counties_from_geojson(DALI_COUNTIES_GEOJSON).expect("shipped geojson loads"));
    GeoIndex { counties, grids: Layer::empty() }
}

fn county_at(index: &GeoIndex, gcj: Pt) -> Option<String> {
    index.resolve(Datum::Gcj02.to_wgs84(gcj)).map(|p| p.code.clone())
}

#[test]
fn the_twelve_counties_load_and_known_places_resolve() {
    let index = counties();
    assert_eq!(index.counties.len(), 12, "the prefecture feature is not a county");
    for (what, gcj, want) in [
        ("下关", [100.23, 25.59], Some("532901000000")),
        ("大理市 centre", [100.30127, 25.678068], Some("532901000000")),
        ("洱海, mid-lake: inside 大理市's polygon", [100.22, 25.75], Some("532901000000")),
        ("剑川", [99.90, 26.54], Some("532931000000")),
        ("昆明, outside Dali", [102.83, 24.88], None),
    ] {
        assert_eq!(county_at(&index, gcj).as_deref(), want, "{what}");
    }
}

#[test]
fn every_county_contains_its_own_published_centre() {
    let doc: serde_json::Value = serde_json::from_str(DALI_COUNTIES_GEOJSON).expect("json");
    let index = counties();
    for f in doc["features"].as_array().expect("features").iter().filter(|f| f["properties"]["level"] == 3) {
        let p = &f["properties"];
        let gcj = [p["center_lon_gcj02"].as_f64().expect("lon"), p["center_lat_gcj02"].as_f64().expect("lat")];
        // Some published centres (the county seat) may sit outside an irregular county; most must not.
        if let Some(code) = county_at(&index, gcj) {
            assert_eq!(code, p["code"].as_str().expect("code"), "centre of {}", p["name"]);
        }
    }
}

#[test]
fn a_grid_wins_over_its_county_and_a_micro_grid_over_its_grid() {
    let square = |x: f64, y: f64, d: f64| {
        vec![vec![[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]]
    };
    let p = Datum::Gcj02.to_wgs84([100.23, 25.59]);
    let place = |code: &str, depth| Place {
        code: code.into(),
        name: code.into(),
        village_code: Some(code[..12].into()),
        depth,
    };
    let mut index = counties();
    index.grids = Layer::new(
        vec![
            (Shape::new(&[square(p[0], p[1], 0.01)]), place("532901001001001", 1)),
            (Shape::new(&[square(p[0], p[1], 0.02)]), place("532901001001002", 1)),
            (Shape::new(&[square(p[0], p[1], 0.001)]), place("532901001001001001", 2)),
        ],
        GRID_CELL_DEG,
    );
    assert_eq!(index.resolve(p).map(|g| g.code.as_str()), Some("532901001001001001"), "micro-grid first");
    assert_eq!(index.resolve([p[0] + 0.005, p[1]]).map(|g| g.code.as_str()), Some("532901001001001"), "smaller grid");
    let county = index.resolve([p[0] + 0.05, p[1]]).expect("county");
    assert_eq!((county.code.as_str(), county.is_grid()), ("532901000000", false));
    assert_eq!(place("532901001001001", 1).county_code(), "532901000000");
}

#[test]
fn bad_points_and_rings_name_their_field() {
    let cases: Vec<(&str, std::result::Result<Pt, FieldError>, &str)> = vec![
        ("NaN lon", point("", f64::NAN, 25.0, Datum::Wgs84), "lon"),
        ("lat beyond the pole", point("", 100.0, 90.5, Datum::Wgs84), "lat"),
        ("infinite centre lon", point("centre", f64::INFINITY, 0.0, Datum::Gcj02), "centre.lon"),
        ("lon beyond 180", point("", 180.5, 25.0, Datum::Wgs84), "lon"),
        ("lat beyond 90", point("", 100.0, -90.1, Datum::Wgs84), "lat"),
        ("infinite lat", point("", 100.0, f64::INFINITY, Datum::Gcj02), "lat"),
    ];
    for (what, got, field) in cases {
        assert_eq!(got.err().map(|e| e.field), Some(field.to_owned()), "{what}");
    }
    let ok = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]];
    let geometry = |rings: Vec<Ring>| GridGeometry::new(rings, None).err().map(|e| e.field);
    assert_eq!(geometry(vec![ok.clone()]), None);
    assert_eq!(geometry(vec![]), None, "empty clears");
    assert_eq!(geometry(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]), Some("boundary[0]".into()), "too short");
    assert_eq!(
        geometry(vec![ok.clone(), vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]),
        Some("boundary[1]".into()),
        "open"
    );
    assert_eq!(
        geometry(vec![vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]]),
        Some("boundary[0]".into()),
        "no area"
    );
    assert_eq!(
        geometry(vec![ok, vec![[5.0, 5.0], [6.0, 5.0], [6.0, 6.0], [5.0, 5.0]]]),
        Some("boundary[1]".into()),
        "stray hole"
    );
    assert!(Datum::parse("datum", "bd09").is_err() && Datum::parse("datum", " GCJ02 ") == Ok(Datum::Gcj02));
}
