//! Routing's settings: the common part every service has and where the registry is. Read from the
//! environment once, in `main`, and passed to [`crate::build`]; tests and the suite start from
//! [`Settings::new`], which holds the defaults.

use kit::Config;
use kit::config::{local_url, peer_url, ports};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: Config,
    /// The registry, asked who a resolution may credit (REGISTRY_URL). Connected lazily, so routing starts
    /// (and serves everything but crediting someone else) without it.
    pub registry_url: String,
}

impl Settings {
    /// The defaults around `common`: the registry at its default local address.
    pub fn new(common: Config) -> Self {
        Self { common, registry_url: local_url(ports::REGISTRY) }
    }

    /// The common settings ([`Config::from_env`]) and REGISTRY_URL (the registry's default port on this host).
    pub fn from_env() -> anyhow::Result<Self> {
        let common = Config::from_env(crate::NAME, crate::DEFAULT_PORT)?;
        Ok(Self { registry_url: peer_url("REGISTRY_URL", ports::REGISTRY), ..Self::new(common) })
    }
}
