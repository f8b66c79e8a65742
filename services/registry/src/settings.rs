//! The registry's settings: the common ones every service reads, and the sign-in policy of its embedded
//! issuer. Read from the environment once, in `main`; tests and the suite start from [`Settings::new`].

use kit::config::parse_or;

use crate::auth::domain::Policy;

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

    /// The common settings ([`kit::Config::from_env`]) and the policy: AUTH_PASSWORD_MIN_LENGTH (8),
    /// AUTH_PASSWORD_CLASSES (3), AUTH_PASSWORD_HISTORY (5), AUTH_PASSWORD_MAX_AGE_DAYS (90), AUTH_LOCK_AFTER (5
    /// failures), AUTH_LOCK_MINUTES (30), AUTH_IDLE_MINUTES (30), AUTH_SESSION_HOURS (12), AUTH_ACCESS_TOKEN_SECS
    /// (300), AUTH_DORMANT_DAYS (90: an account unused that long is disabled at its next sign-in).
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Policy::default();
        let policy = Policy {
            min_length: parse_or("AUTH_PASSWORD_MIN_LENGTH", d.min_length)?,
            min_classes: parse_or("AUTH_PASSWORD_CLASSES", d.min_classes)?,
            history: parse_or("AUTH_PASSWORD_HISTORY", d.history)?,
            max_age_days: parse_or("AUTH_PASSWORD_MAX_AGE_DAYS", d.max_age_days)?,
            lock_after: parse_or("AUTH_LOCK_AFTER", d.lock_after)?,
            lock_minutes: parse_or("AUTH_LOCK_MINUTES", d.lock_minutes)?,
            idle_minutes: parse_or("AUTH_IDLE_MINUTES", d.idle_minutes)?,
            session_hours: parse_or("AUTH_SESSION_HOURS", d.session_hours)?,
            access_secs: parse_or("AUTH_ACCESS_TOKEN_SECS", d.access_secs)?,
            dormant_days: parse_or("AUTH_DORMANT_DAYS", d.dormant_days)?,
        };
        if policy.access_secs > kit::auth::revocation::WINDOW_SECS {
            anyhow::bail!(
                "environment variable AUTH_ACCESS_TOKEN_SECS: at most {} (revocations are kept that long)",
                kit::auth::revocation::WINDOW_SECS
            );
        }
        let mut common = kit::Config::from_env(crate::NAME, crate::DEFAULT_PORT)?;
        // The registry follows its own revocation table directly, not over gRPC to itself.
        common.auth.revocations_url = None;
        Ok(Settings { common, policy })
    }
}
