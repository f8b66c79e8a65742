//! The gRPC face of location lookup: request → checked WGS84 values → one call → response.

use kit::{FieldError, field};
use proto::registry::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::is_grid_code;
use crate::geo::shape::{Pt, Ring};
use crate::geo::{Datum, Geo, GridGeometry, point};

pub struct GeoService(pub Geo);

fn bad(e: FieldError) -> Status {
    kit::grpc::invalid(&e)
}

fn lon_lat(p: Pt) -> pb::LonLat {
    pb::LonLat { lon: p[0], lat: p[1] }
}

#[tonic::async_trait]
impl pb::geo_server::Geo for GeoService {
    async fn resolve_point(
        &self,
        request: Request<pb::ResolvePointRequest>,
    ) -> Result<Response<pb::ResolvePointResponse>, Status> {
        let req = request.into_inner();
        let datum = Datum::parse("datum", &req.datum).map_err(bad)?;
        let p = point("", req.lon, req.lat, datum).map_err(bad)?;
        let Some(place) = self.0.resolve(p) else {
            return Err(Status::not_found(format!(
                "resolved_by none: no grid boundary and no Dali county contains WGS84 point ({:.6}, {:.6})",
                p[0], p[1]
            )));
        };
        Ok(Response::new(pb::ResolvePointResponse {
            resolved_by: if place.is_grid() { "grid" } else { "county" }.to_owned(),
            grid_code: if place.is_grid() { place.code.clone() } else { String::new() },
            county_code: place.county_code(),
            node_code: place.code,
            name: place.name,
            village_code: place.village_code.unwrap_or_default(),
            wgs84: Some(lon_lat(p)),
        }))
    }

    async fn set_grid_geometry(
        &self,
        request: Request<pb::SetGridGeometryRequest>,
    ) -> Result<Response<pb::SetGridGeometryResponse>, Status> {
        let scope = crate::scope::manage(&request)?;
        let req = request.into_inner();
        let code = field::required("grid_code", &req.grid_code).map_err(bad)?;
        if !is_grid_code(code) {
            return Err(bad(FieldError::new("grid_code", "must be a 15- or 18-digit grid code")));
        }
        crate::scope::write(&scope, code, &format!("grid {code}"))?;
        let datum = Datum::parse("datum", &req.datum).map_err(bad)?;
        let geometry = parse_geometry(&req.boundary, req.centre.as_ref(), datum).map_err(bad)?;
        self.0.set_grid_geometry(code, &geometry).await?;
        Ok(Response::new(pb::SetGridGeometryResponse {
            grid_code: code.to_owned(),
            boundary: geometry
                .boundary
                .iter()
                .map(|r| pb::Ring { points: r.iter().copied().map(lon_lat).collect() })
                .collect(),
            centre: geometry.centre.map(lon_lat),
        }))
    }
}

/// Every coordinate is checked and converted with its own field name, then the rings as a whole.
fn parse_geometry(rings: &[pb::Ring], centre: Option<&pb::LonLat>, datum: Datum) -> Result<GridGeometry, FieldError> {
    let mut boundary: Vec<Ring> = Vec::with_capacity(rings.len());
    for (i, ring) in rings.iter().enumerate() {
        let points = ring
            .points
            .iter()
            .enumerate()
            .map(|(j, q)| point(&format!("boundary[{i}].points[{j}]"), q.lon, q.lat, datum));
        boundary.push(points.collect::<Result<_, _>>()?);
    }
    let centre = centre.map(|c| point("centre", c.lon, c.lat, datum)).transpose()?;
    GridGeometry::new(boundary, centre)
}
