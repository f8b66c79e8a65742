//! Zongzhi's identity provider: people's sign-in (passwords with history and ageing, lock-out, TOTP second
//! factors, sessions with rotating refresh tokens), other systems' client credentials, the accounts and grants
//! behind them, the revocation list every verifier follows, and the Auth gRPC service that serves it all.
//!
//! A crate of its own, served by the registry's process rather than as a sixth service: accounts and grants
//! are tied by foreign keys to the registry's people and tree nodes (one account per person, a grant on a node
//! that exists), and an account is created in the same transaction as the checks on its person. As a service
//! it would need its own database with copies of people and nodes kept current by events, and sign-in would
//! then be only as current as that copy. As a crate it keeps those tables (the registry's migrations
//! `1010_accounts.sql` onwards) and its transactions, while no registry module reaches into it and it knows
//! nothing of grids, imports or the ledger: the registry wires it in `registry::build` with [`issuer`],
//! [`AuthService`] and [`revocations::fetch_local`], and nothing else.

pub mod admin;
pub mod db;
pub mod domain;
pub mod grpc;
pub mod hashing;
pub mod revocations;
pub mod secrets;
mod server;
pub mod service;

pub use domain::Policy;
pub use server::AuthService;
pub use service::Issuer;

/// The issuer, signing when this deployment has AUTH_SIGNING_KEY; it publishes its public key.
pub fn issuer(auth: &kit::auth::AuthConfig, policy: Policy, pool: sqlx::PgPool) -> anyhow::Result<Issuer> {
    let signer = auth.issuer_signer();
    let keys = signer.iter().map(|s| s.jwk()).collect::<anyhow::Result<Vec<_>>>()?;
    let jwks_json = serde_json::to_string(&kit::auth::token::JwkSet { keys })?;
    Ok(Issuer::new(pool, signer, policy, jwks_json))
}

impl Policy {
    /// The policy from the environment, defaults where unset: AUTH_PASSWORD_MIN_LENGTH (8),
    /// AUTH_PASSWORD_CLASSES (3), AUTH_PASSWORD_HISTORY (5), AUTH_PASSWORD_MAX_AGE_DAYS (90), AUTH_LOCK_AFTER (5
    /// failures), AUTH_LOCK_MINUTES (30), AUTH_IDLE_MINUTES (30), AUTH_SESSION_HOURS (12), AUTH_ACCESS_TOKEN_SECS
    /// (300), AUTH_DORMANT_DAYS (90: an account unused that long is disabled at its next sign-in).
    pub fn from_env() -> anyhow::Result<Self> {
        use kit::config::parse_or;
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
        Ok(policy)
    }
}
