//! Routing's settings: the common part every service has and where the registry is. Read from the
//! environment once, in `main`, and passed to [`crate::build`]; tests and the suite start from
//! [`Settings::new`], which holds the defaults.

use std::time::Duration;

use kit::Config;
use kit::config::{local_url, parse_or, peer_url, ports};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: Config,
    /// The registry, asked who a resolution may credit (REGISTRY_URL). Connected lazily, so routing starts
    /// (and serves everything but crediting someone else) without it.
    pub registry_url: String,
    /// How long what the registry said about a department's duty is trusted when dispatching by rule
    /// (REGISTRY_CACHE_SECS, 30): a registration costs no registry round trip while it is fresh, and a
    /// retirement or a schedule change reaches dispatch within this time.
    pub registry_cache: Duration,
}

impl Settings {
    /// The defaults around `common`: the registry at its default local address.
    pub fn new(common: Config) -> Self {
        Self { common, registry_url: local_url(ports::REGISTRY), registry_cache: Duration::from_secs(30) }
    }

    /// The common settings ([`Config::from_env`]) and REGISTRY_URL (the registry's default port on this host).
    pub fn from_env() -> anyhow::Result<Self> {
        let common = Config::from_env(crate::NAME, crate::DEFAULT_PORT)?;
        Ok(Self {
            registry_url: peer_url("REGISTRY_URL", ports::REGISTRY),
            registry_cache: Duration::from_secs(parse_or("REGISTRY_CACHE_SECS", 30u64)?),
            ..Self::new(common)
        })
    }
}
