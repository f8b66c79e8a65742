//! The administrative tree: divisions from province to village, subtrees, per-level counts, name search, and
//! the division import that fills them.

pub mod db;
pub mod domain;
pub mod grpc;
pub mod import;
pub mod service;
