//! Sign-in: the embedded issuer (people's sessions with rotating refresh tokens and second factors, other
//! systems' client credentials), and the accounts and grants behind it.

pub mod admin;
pub mod db;
pub mod domain;
pub mod grpc;
pub mod hashing;
pub mod revocations;
pub mod secrets;
pub mod service;
