//! The tree ledger and directives: open / overdue / closed case counts per node, fed by case events (see
//! `crate::events`), and 工作指令 a center sends down its subtree for village centers to acknowledge and answer.

pub mod db;
pub mod domain;
pub mod grpc;
pub mod service;
