//! The registry's settings: the common ones every service reads, and the sign-in policy of its embedded
//! issuer. Read from the environment once, in `main`; tests and the suite start from [`Settings::new`].

use identity::Policy;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: kit::Config,
    /// The embedded issuer's sign-in policy.
    pub policy: Policy,
}

impl Settings {
    /// The common settings with the default sign-in policy.
    pub fn new(common: kit::Config) -> Self {
        Settings { common, policy: Policy::default() }
    }

    /// The common settings ([`kit::Config::from_env`]) and the sign-in policy ([`Policy::from_env`]).
    pub fn from_env() -> anyhow::Result<Self> {
        let policy = Policy::from_env()?;
        let mut common = kit::Config::from_env(crate::NAME, crate::DEFAULT_PORT)?;
        // The registry follows its own revocation table directly, not over gRPC to itself.
        common.auth.revocations_url = None;
        Ok(Settings { common, policy })
    }
}
