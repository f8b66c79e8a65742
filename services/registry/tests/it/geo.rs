//! Location lookup against real PostgreSQL and gRPC over a socket.
//! Unwrapping is how a test says "this must succeed".

#![allow(clippy::unwrap_used)]

use crate::common;

use kit::testing::AuthedChannel as Channel;
use kit::testing::TestInfra;
use proto::registry::v1::geo_client::GeoClient;
use proto::registry::v1::*;
use registry::geo::datum::gcj02_to_wgs84;
use tonic::Code;

const DALI_CITY: &str = "532901000000";
const JIANCHUAN: &str = "532931000000";
/// 龙溪社区, 下关街道, 大理市.
const VILLAGE: &str = "532901003001";
/// 下关, GCJ-02 as a Chinese web map shows it.
const XIAGUAN_GCJ: (f64, f64) = (100.23, 25.59);

fn at(lon: f64, lat: f64, datum: &str) -> ResolvePointRequest {
    ResolvePointRequest { lon, lat, datum: datum.into() }
}

/// A closed square ring of half-side `d` degrees around a point.
fn square(c: (f64, f64), d: f64) -> Ring {
    let pts = [(-d, -d), (d, -d), (d, d), (-d, d), (-d, -d)];
    Ring { points: pts.iter().map(|(x, y)| LonLat { lon: c.0 + x, lat: c.1 + y }).collect() }
}

async fn resolved(geo: &mut GeoClient<Channel>, req: ResolvePointRequest) -> (String, String) {
    let r = geo.resolve_point(req).await.expect("resolves").into_inner();
    (r.resolved_by, r.node_code)
}

#[tokio::test]
async fn county_polygons_answer_and_outside_dali_is_not_found() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    let cases = [
        ("下关 in 大理市", XIAGUAN_GCJ, DALI_CITY),
        ("剑川县", (99.90, 26.54), JIANCHUAN),
        // 洱海 is inside 大理市's polygon: the lake belongs to the city, as it does administratively.
        ("mid-洱海", (100.22, 25.75), DALI_CITY),
    ];
    for (what, (lon, lat), want) in cases {
        let r = s.geo.resolve_point(at(lon, lat, "gcj02")).await.expect(what).into_inner();
        assert_eq!(
            (r.resolved_by.as_str(), r.node_code.as_str(), r.county_code.as_str()),
            ("county", want, want),
            "{what}"
        );
        assert!(r.grid_code.is_empty() && r.village_code.is_empty(), "{what}: no grid");
        let w = r.wgs84.expect("wgs84 point");
        let (wlon, wlat) = gcj02_to_wgs84(lon, lat);
        assert!((w.lon - wlon).abs() < 1e-12 && (w.lat - wlat).abs() < 1e-12, "{what}: answers the converted point");
    }
    for (what, lon, lat) in [("昆明", 102.83, 24.88), ("Paris", 2.35, 48.86), ("0,0", 0.0, 0.0)] {
        let status = s.geo.resolve_point(at(lon, lat, "")).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
        assert!(status.message().starts_with("resolved_by none"), "{what}: {}", status.message());
    }
    s.stop.stop();
}

#[tokio::test]
async fn gcj02_and_wgs84_of_one_place_resolve_alike() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    for (lon, lat) in [XIAGUAN_GCJ, (99.90, 26.54), (100.30127, 25.678068), (100.6, 25.5)] {
        let (wlon, wlat) = gcj02_to_wgs84(lon, lat);
        let gcj = s.geo.resolve_point(at(lon, lat, "GCJ02")).await.expect("gcj02").into_inner();
        let wgs = s.geo.resolve_point(at(wlon, wlat, "wgs84")).await.expect("wgs84").into_inner();
        let cgcs = s.geo.resolve_point(at(wlon, wlat, "cgcs2000")).await.expect("cgcs2000").into_inner();
        assert_eq!(gcj, wgs, "({lon}, {lat}) GCJ-02 vs WGS84");
        assert_eq!(wgs, cgcs, "({lon}, {lat}) WGS84 vs CGCS2000");
    }
    s.stop.stop();
}

#[tokio::test]
async fn a_bounded_grid_answers_first_and_the_index_follows_every_change() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.expect("import");
    let new_grid = |village: &str, parent: &str, kind: &str| CreateGridRequest {
        village_code: village.into(),
        parent_grid_code: parent.into(),
        name: format!("{kind} 下关"),
        kind: proto::json::wire::<proto::registry::v1::GridKind>(kind),
    };
    let grid = s.registry.create_grid(new_grid(VILLAGE, "", "grid")).await.unwrap().into_inner().grid.unwrap().code;
    let micro =
        s.registry.create_grid(new_grid("", &grid, "micro_grid")).await.unwrap().into_inner().grid.unwrap().code;
    let here = gcj02_to_wgs84(XIAGUAN_GCJ.0, XIAGUAN_GCJ.1);
    let set = |code: &str, boundary: Vec<Ring>, datum: &str| SetGridGeometryRequest {
        grid_code: code.into(),
        boundary,
        centre: Some(LonLat { lon: here.0, lat: here.1 }),
        datum: datum.into(),
    };
    let wgs = at(here.0, here.1, "wgs84");

    let saved = s.geo.set_grid_geometry(set(&grid, vec![square(here, 0.01)], "")).await.expect("set").into_inner();
    assert_eq!(saved.boundary, vec![square(here, 0.01)], "stored as sent (WGS84)");
    let r = s.geo.resolve_point(wgs.clone()).await.unwrap().into_inner();
    assert_eq!(
        (r.resolved_by.as_str(), r.grid_code.as_str(), r.village_code.as_str()),
        ("grid", grid.as_str(), VILLAGE)
    );
    assert_eq!((r.node_code.as_str(), r.county_code.as_str()), (grid.as_str(), DALI_CITY));
    let outside_grid = at(here.0 + 0.02, here.1, "wgs84");
    assert_eq!(resolved(&mut s.geo, outside_grid).await, ("county".into(), DALI_CITY.into()));

    // A micro-grid is deeper than its grid, even given in GCJ-02.
    let gcj_square = square(XIAGUAN_GCJ, 0.002);
    s.geo.set_grid_geometry(set(&micro, vec![gcj_square], "gcj02")).await.expect("set micro");
    assert_eq!(resolved(&mut s.geo, wgs.clone()).await, ("grid".into(), micro.clone()));

    // A hole in the grid around the point hands it back to the county.
    s.geo.set_grid_geometry(set(&micro, vec![], "")).await.expect("clear micro");
    s.geo.set_grid_geometry(set(&grid, vec![square(here, 0.01), square(here, 0.001)], "")).await.expect("holed");
    assert_eq!(resolved(&mut s.geo, wgs.clone()).await, ("county".into(), DALI_CITY.into()), "in the hole");
    s.geo.set_grid_geometry(set(&grid, vec![square(here, 0.01)], "")).await.expect("whole again");
    let stored: (Option<f64>, Option<f64>, bool) =
        sqlx::query_as("SELECT centre_lon, centre_lat, boundary IS NOT NULL FROM grids WHERE code = $1")
            .bind(&grid)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(stored, (Some(here.0), Some(here.1), true));
    s.stop.stop();

    // A restarted registry loads grid boundaries from the database.
    let mut again = common::start(&infra, false).await;
    assert_eq!(resolved(&mut again.geo, wgs).await, ("grid".into(), grid));
    again.stop.stop();
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    let g = &mut s.geo;
    let grid = "532901003001001";
    let set = |boundary: Vec<Ring>, centre: Option<LonLat>| SetGridGeometryRequest {
        grid_code: grid.into(),
        boundary,
        centre,
        datum: String::new(),
    };
    let open = Ring { points: square((100.0, 25.0), 0.01).points[..4].to_vec() };
    let mut far = square((100.0, 25.0), 0.01);
    far.points[2].lat = 91.0;
    // The field-by-field cases are unit tests in the rooms' domains; over the socket, one refusal per RPC
    // (INVALID_ARGUMENT naming the field) and the refusals that need the database.
    let cases = [
        ("NaN lon", g.resolve_point(at(f64::NAN, 25.0, "")).await.err(), Code::InvalidArgument, "lon"),
        ("unknown datum", g.resolve_point(at(100.0, 25.0, "bd09")).await.err(), Code::InvalidArgument, "datum"),
        (
            "no grid code",
            g.set_grid_geometry(SetGridGeometryRequest::default()).await.err(),
            Code::InvalidArgument,
            "grid_code",
        ),
        ("open ring", g.set_grid_geometry(set(vec![open], None)).await.err(), Code::InvalidArgument, "boundary[0]"),
        (
            "vertex out of range",
            g.set_grid_geometry(set(vec![far], None)).await.err(),
            Code::InvalidArgument,
            "boundary[0].points[2].lat",
        ),
        (
            "centre NaN",
            g.set_grid_geometry(set(vec![], Some(LonLat { lon: f64::NAN, lat: 25.0 }))).await.err(),
            Code::InvalidArgument,
            "centre.lon",
        ),
        (
            "unknown grid",
            g.set_grid_geometry(set(vec![square((100.0, 25.0), 0.01)], None)).await.err(),
            Code::NotFound,
            "",
        ),
    ];
    for (name, status, code, field) in cases {
        let status = status.unwrap_or_else(|| panic!("{name}: accepted"));
        kit::testing::assert_refused(name, &status, code, field);
    }
    s.stop.stop();
}

/// A comb of `points` teeth spanning the whole height of a box of half-side `d` around `c`: each edge spans the
/// box, so an unbounded band index would grow with edges × bands.
fn sawtooth(c: (f64, f64), d: f64, points: usize) -> Ring {
    let step = 2.0 * d / points as f64;
    let mut pts: Vec<(f64, f64)> =
        (0..points).map(|i| (c.0 - d + i as f64 * step, if i % 2 == 0 { c.1 - d } else { c.1 + d })).collect();
    let end = pts.last().unwrap().0;
    pts.extend([(end, c.1 - d - 0.001), (c.0 - d, c.1 - d - 0.001), (c.0 - d, c.1 - d)]);
    Ring { points: pts.into_iter().map(|(lon, lat)| LonLat { lon, lat }).collect() }
}

#[tokio::test]
async fn geometry_is_bounded_and_a_start_skips_stored_boundaries_that_fail_the_bounds() {
    let infra = TestInfra::new().await;
    let mut s = common::start(&infra, false).await;
    registry::import_dali(&s.pool).await.expect("import");
    let mut grids = Vec::new();
    for name in ["comb", "bowtie", "garbage"] {
        let req = CreateGridRequest {
            village_code: VILLAGE.into(),
            name: name.into(),
            kind: proto::registry::v1::GridKind::Grid.into(),
            ..Default::default()
        };
        grids.push(s.registry.create_grid(req).await.unwrap().into_inner().grid.unwrap().code);
    }
    let here = gcj02_to_wgs84(XIAGUAN_GCJ.0, XIAGUAN_GCJ.1);
    let set = |boundary: Vec<Ring>| SetGridGeometryRequest {
        grid_code: grids[0].clone(),
        boundary,
        centre: None,
        datum: String::new(),
    };

    // The 9,999-point comb (the most a ring may hold) is a simple ring: accepted, indexed in bounded memory,
    // and it answers.
    let started = std::time::Instant::now();
    let comb = sawtooth(here, 0.01, 9_996);
    let tooth = comb.points[5001];
    s.geo.set_grid_geometry(set(vec![comb])).await.expect("the comb is accepted");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    let r = s.geo.resolve_point(at(tooth.lon, here.1, "")).await.unwrap().into_inner();
    assert_eq!(r.grid_code, grids[0], "a point inside a tooth");

    // Two edges cross; unlike a symmetric bowtie it has some area, so only the crossing check can refuse it.
    let bowtie = |c: (f64, f64)| Ring {
        points: [(0.0, 0.0), (1.0, 1.0), (1.0, 0.2), (0.0, 1.0), (0.0, 0.0)]
            .iter()
            .map(|(x, y)| LonLat { lon: c.0 + x * 0.01, lat: c.1 + y * 0.01 })
            .collect(),
    };
    let cases: Vec<(&str, Vec<Ring>, &str)> = vec![
        ("a bowtie", vec![bowtie(here)], "boundary[0]"),
        ("a self-crossing hole", vec![square(here, 0.02), bowtie(here)], "boundary[1]"),
        (
            "27,009 points in all",
            vec![sawtooth(here, 0.01, 9_000), sawtooth(here, 0.005, 9_000), sawtooth(here, 0.002, 9_000)],
            "boundary",
        ),
        ("a ring of 10,004 points", vec![sawtooth(here, 0.01, 10_001)], "boundary[0]"),
        ("65 rings", vec![square(here, 0.01); 65], "boundary"),
    ];
    for (what, boundary, field) in cases {
        let status = s.geo.set_grid_geometry(set(boundary)).await.unwrap_err();
        kit::testing::assert_refused(what, &status, Code::InvalidArgument, field);
    }

    // Boundaries stored before today's checks (or by hand) must not stop a start: they are left out.
    let away = (here.0 + 0.05, here.1);
    let stored: Vec<[f64; 2]> = bowtie(away).points.iter().map(|p| [p.lon, p.lat]).collect();
    let bad_json = serde_json::to_string(&[stored]).unwrap();
    for (code, boundary) in [(&grids[1], bad_json.as_str()), (&grids[2], r#"[["not", "a", "ring"]]"#)] {
        sqlx::query("UPDATE grids SET boundary = $2::jsonb WHERE code = $1")
            .bind(code)
            .bind(boundary)
            .execute(&s.pool)
            .await
            .unwrap();
    }
    s.stop.stop();
    let again = common::start(&infra, false).await;
    let mut geo = GeoClient::new(again.channel);
    let r = geo.resolve_point(at(tooth.lon, here.1, "")).await.unwrap().into_inner();
    assert_eq!(r.grid_code, grids[0], "the good grid is indexed after the restart");
    let crossing = at(away.0 + 0.002, away.1 + 0.005, "");
    assert_eq!(resolved(&mut geo, crossing).await.0, "county", "the bowtie grid is out of the index");
    again.stop.stop();
}
