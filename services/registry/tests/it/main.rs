//! registry's integration tests, one binary: real PostgreSQL, NATS and gRPC over sockets, each test on its own
//! database and stream. One binary links once; its tests run side by side.

mod centers;
mod common;
mod directive;
mod geo;
mod grids;
mod ledger;
mod registry;
mod scope;
mod tree;
mod tree_bounds;
