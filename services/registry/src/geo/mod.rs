//! Location lookup: which grid, or failing that which county, contains a map point; and grid boundaries kept.
//!
//! The index lives in memory: the shipped Dali counties and every grid boundary in the database, rebuilt
//! whenever a grid's geometry is set. Everything in the index and in storage is WGS84; GCJ-02 input is converted
//! at the edge.

pub mod datum;
pub mod db;
pub mod domain;
pub mod grpc;
pub mod index;
mod layer;
pub mod service;
pub mod shape;

pub use domain::{Datum, GridGeometry, Place, point};
pub use index::{DALI_COUNTIES_GEOJSON, GeoIndex, counties_from_geojson};
pub use layer::Layer;
pub use service::Geo;

#[cfg(test)]
mod tests;
