//! Reading the environment, the one source of configuration (the Kubernetes manifests are its visible
//! source of truth): a variable or its default, a parse error naming the variable, the default ports and peer
//! URLs, and `Secret`, which never prints. Every module that reads a setting uses these; nothing here knows any
//! module's settings.

use std::str::FromStr;

/// A variable that is missing or does not parse, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

/// The variable's value, or the default when it is unset or empty.
pub fn string_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_owned(),
    }
}

/// The variable parsed as `T`, or the default when unset; a value that does not parse is an error, not a
/// silent fallback.
pub fn parse_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError { name: name.to_owned(), reason: format!("cannot parse {v:?}: {e}") }),
        _ => Ok(default),
    }
}

/// Default gRPC ports, in one place: each service listens on its own, and its peers dial it there unless
/// told otherwise.
pub mod ports {
    pub const GATEWAY: u16 = 50060;
    pub const INTAKE: u16 = 50061;
    pub const ROUTING: u16 = 50062;
    pub const REGISTRY: u16 = 50063;
    pub const SUPERVISION: u16 = 50064;
    pub const SUBSIDY: u16 = 50065;
}

/// A peer's URL from `var`, by default the peer's port on this host.
pub fn peer_url(var: &str, port: u16) -> String {
    string_or(var, &local_url(port))
}

/// A peer on this host at `port`: the default of every peer URL.
pub fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A setting that must never be printed (a database URL with its password, a key): `Debug` shows `Secret(***)`,
/// so a settings struct can derive `Debug` and be logged whole. Read it with [`Secret::expose`], only where it is
/// used.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}
