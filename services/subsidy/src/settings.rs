//! Subsidy's settings: what every service needs ([`kit::Config`]) and where the registry it asks about
//! eligibility answers. Read from the environment once, in `main`; the suite and the tests compose them with
//! [`Settings::new`].

use kit::config::ports;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: kit::Config,
    /// The grid registry's gRPC address (REGISTRY_URL), asked whether a resolver is subsidy-eligible.
    pub registry_url: String,
}

impl Settings {
    /// The common settings with the registry on its default port on this host.
    pub fn new(common: kit::Config) -> Self {
        Self { common, registry_url: format!("http://127.0.0.1:{}", ports::REGISTRY) }
    }

    /// Reads the common settings ([`kit::Config::from_env`]) and REGISTRY_URL.
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::new(kit::Config::from_env(crate::NAME, crate::DEFAULT_PORT)?);
        let registry_url = kit::config::string_or("REGISTRY_URL", &defaults.registry_url);
        Ok(Self { registry_url, ..defaults })
    }
}
