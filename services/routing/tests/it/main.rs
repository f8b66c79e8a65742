//! routing's integration tests, one binary: real PostgreSQL, NATS and gRPC over sockets, each test on its own
//! database and stream. One binary links once; its tests run side by side.

mod common;
mod dispatch;
mod joint;
mod manual;
mod merges;
mod scope;
mod transitions;
mod validation;
