//! Grids and people: grids and micro-grids below the villages, the persons the registry knows (grid workers,
//! household heads, mediators, handlers, staff), 一格一员 assignments and subsidy eligibility.

pub mod db;
pub mod domain;
pub mod grpc;
pub mod service;
