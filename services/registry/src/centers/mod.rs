//! Centers and departments: 综治中心 opened at levels 2-5, the departments stationed there (resident,
//! rotating by schedule, on call), their schedules and who is on duty on a day.

pub mod db;
pub mod domain;
pub mod grpc;
pub mod service;
