//! The geo room's RPCs (the Geo service: ResolvePoint, SetGridGeometry): request → checked WGS84 values →
//! one call → response.

use kit::FieldError;
use kit::error::{Error, Result};
use proto::registry::v1 as pb;
use tonic::Request;

use super::domain::{Datum, GridGeometry, point};
use super::service::Geo;
use super::shape::{Pt, Ring};
use crate::scope;
use crate::shared::grid_code;

fn lon_lat(p: Pt) -> pb::LonLat {
    pb::LonLat { lon: p[0], lat: p[1] }
}

pub fn resolve_point(geo: &Geo, request: Request<pb::ResolvePointRequest>) -> Result<pb::ResolvePointResponse> {
    let req = request.into_inner();
    let datum = Datum::parse("datum", &req.datum)?;
    let p = point("", req.lon, req.lat, datum)?;
    let Some(place) = geo.resolve(p) else {
        return Err(Error::not_found(format!(
            "resolved_by none: no grid boundary and no Dali county contains WGS84 point ({:.6}, {:.6})",
            p[0], p[1]
        )));
    };
    Ok(pb::ResolvePointResponse {
        resolved_by: if place.is_grid() { "grid" } else { "county" }.to_owned(),
        grid_code: if place.is_grid() { place.code.clone() } else { String::new() },
        county_code: place.county_code(),
        node_code: place.code,
        name: place.name,
        village_code: place.village_code.unwrap_or_default(),
        wgs84: Some(lon_lat(p)),
    })
}

pub async fn set_grid_geometry(
    geo: &Geo,
    request: Request<pb::SetGridGeometryRequest>,
) -> Result<pb::SetGridGeometryResponse> {
    let scope = scope::manage(&request)?;
    let req = request.into_inner();
    let code = grid_code("grid_code", &req.grid_code)?;
    scope::write(&scope, code, &format!("grid {code}"))?;
    let datum = Datum::parse("datum", &req.datum)?;
    let geometry = parse_geometry(&req.boundary, req.centre.as_ref(), datum)?;
    geo.set_grid_geometry(code, &geometry).await?;
    Ok(pb::SetGridGeometryResponse {
        grid_code: code.to_owned(),
        boundary: geometry
            .boundary
            .iter()
            .map(|r| pb::Ring { points: r.iter().copied().map(lon_lat).collect() })
            .collect(),
        centre: geometry.centre.map(lon_lat),
    })
}

/// Every coordinate is checked and converted with its own field name, then the rings as a whole.
fn parse_geometry(
    rings: &[pb::Ring],
    centre: Option<&pb::LonLat>,
    datum: Datum,
) -> std::result::Result<GridGeometry, FieldError> {
    let mut boundary: Vec<Ring> = Vec::with_capacity(rings.len());
    for (i, ring) in rings.iter().enumerate() {
        let points = ring
            .points
            .iter()
            .enumerate()
            .map(|(j, q)| point(&format!("boundary[{i}].points[{j}]"), q.lon, q.lat, datum));
        boundary.push(points.collect::<std::result::Result<_, _>>()?);
    }
    let centre = centre.map(|c| point("centre", c.lon, c.lat, datum)).transpose()?;
    GridGeometry::new(boundary, centre)
}
