//! supervision's integration tests, one binary: real PostgreSQL, NATS and gRPC over sockets, each test on its own
//! database and stream. One binary links once; its tests run side by side.

mod changes;
mod clocks;
mod closing;
mod common;
mod deadlines;
mod merges;
mod rates;
mod scope;
