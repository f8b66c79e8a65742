//! Intake's settings: the common part every service has, where the registry is, and the unmask limit. Read
//! from the environment once, in `main`, and passed to [`crate::build`]; tests and the suite start from
//! [`Settings::new`], which holds the defaults.

use kit::Config;
use kit::config::{local_url, parse_or, peer_url, ports};

/// How many parties' fields one principal may unmask in an hour, unless UNMASK_PER_HOUR says otherwise.
pub const DEFAULT_UNMASK_PER_HOUR: i64 = 30;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: Config,
    /// The registry, asked where a case happened (REGISTRY_URL).
    pub registry_url: String,
    /// How many parties' fields one principal may unmask in an hour (UNMASK_PER_HOUR).
    pub unmask_per_hour: i64,
}

impl Settings {
    /// The defaults around `common`: the registry at its default local address, the default unmask limit.
    pub fn new(common: Config) -> Self {
        Self { common, registry_url: local_url(ports::REGISTRY), unmask_per_hour: DEFAULT_UNMASK_PER_HOUR }
    }

    /// The common settings ([`Config::from_env`]), REGISTRY_URL (the registry's default port on this host) and
    /// UNMASK_PER_HOUR (30).
    pub fn from_env() -> anyhow::Result<Self> {
        let common = Config::from_env(crate::NAME, crate::DEFAULT_PORT)?;
        Ok(Self {
            registry_url: peer_url("REGISTRY_URL", ports::REGISTRY),
            unmask_per_hour: parse_or("UNMASK_PER_HOUR", DEFAULT_UNMASK_PER_HOUR)?,
            ..Self::new(common)
        })
    }
}
