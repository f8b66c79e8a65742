//! The end-to-end tests, one binary: each boots its own suite on its own database and bus stream, so two run
//! side by side (one per core) and each waits on sockets a good part of the time. As 23 binaries of one test or
//! a few, each ran alone on one core, and each was linked on its own. Two stay apart: `traces` (the tracing
//! subscriber and its exporter are global to a process) and `faults` (processes of their own; the README's
//! `cargo test -p tests --test faults`).
//!
//! Metrics are global to a process too: a test reads the series of its own calls, never a total or a gauge
//! another suite may move at the same time.

mod accounts;
mod admin;
mod audit;
mod auth;
mod budget;
mod cancellation;
mod dispatch;
mod edges;
mod fuzz;
mod gateway;
mod grpc_fuzz;
mod joint;
mod lifecycle;
mod merges;
mod metrics;
mod openapi;
mod outside_readers;
mod overload;
mod queues;
mod rates;
mod revocation;
mod scope_table;
mod slips;
mod storm;
mod unknown_methods;
