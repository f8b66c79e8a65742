//! The embedded issuer: sign-in for people in the registry and for other systems' clients, sessions with
//! rotating refresh tokens and second factors; the accounts and grants behind them are in `admin`.

use chrono::{Duration, Utc};
use kit::auth::{Claims, Grant, Signer};
use kit::error::{Error, Result};
use uuid::Uuid;

use crate::db;
use crate::domain::{Account, Policy};
use crate::{revocations, secrets};

/// What a successful sign-in or refresh hands back.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub grants: Vec<Grant>,
}

#[derive(Clone)]
pub struct Issuer {
    pub pool: sqlx::PgPool,
    /// None when this deployment signs people in elsewhere (a province's identity platform).
    pub signer: Option<Signer>,
    pub policy: Policy,
    pub jwks_json: String,
    /// Sign-in attempts by username ([`ATTEMPTS_BURST`], then [`ATTEMPTS_PER_MINUTE`]).
    pub attempts: std::sync::Arc<kit::throttle::Throttle<String>>,
}

/// Attempts one username gets at once, then a minute: above the lockout (`lock_after`), so a person who
/// mistypes is locked by the policy, not throttled, while a name hammered from many addresses is slowed.
pub const ATTEMPTS_BURST: u32 = 10;
pub const ATTEMPTS_PER_MINUTE: u32 = 10;

impl Issuer {
    pub fn new(pool: sqlx::PgPool, signer: Option<Signer>, policy: Policy, jwks_json: String) -> Self {
        let attempts = std::sync::Arc::new(kit::throttle::Throttle::new(ATTEMPTS_BURST, ATTEMPTS_PER_MINUTE));
        Self { pool, signer, policy, jwks_json, attempts }
    }
}

/// One message for every failed sign-in, so nobody learns whether a username exists or is locked.
const FAILED: &str = "sign-in failed";

impl Issuer {
    fn signer(&self) -> Result<&Signer> {
        self.signer.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(
                "embedded sign-in is off here (no AUTH_SIGNING_KEY); use the identity provider".into(),
            )
        })
    }

    pub async fn sign_in(&self, username: &str, password: &str, otp: &str) -> Result<Tokens> {
        self.signer()?;
        let account = self.check_password(username, password).await?;
        let grants = self.grants_now(account.id, account.person_id).await?;
        let mut amr = vec!["pwd".to_owned()];
        if needs_second_factor(&grants) {
            self.check_otp(&account, otp).await?;
            amr.push("otp".into());
        }
        if account.must_change || account.password_changed_at + Duration::days(self.policy.max_age_days) < Utc::now() {
            return Err(Error::FailedPrecondition("password change required: call ChangePassword".into()));
        }
        // The session and the sign-in's audit record commit together.
        let mut tx = kit::audit::begin(&self.pool).await?;
        db::signed_in(&mut *tx, account.id).await?;
        let session = Uuid::new_v4();
        let expires = Utc::now() + Duration::hours(self.policy.session_hours);
        db::insert_session(&mut *tx, session, account.id, &amr, expires).await?;
        tx.commit().await?;
        self.issue(&account, session, amr, grants).await
    }

    /// The account if the password is right and the account may sign in; counts failures and locks.
    pub(super) async fn check_password(&self, username: &str, password: &str) -> Result<Account> {
        // Before any hashing: one name hammered (an account being guessed, or a decoy burning CPU) is slowed
        // down by name, whichever addresses the attempts come from. Known and unknown names alike.
        if let Err(wait) = self.attempts.take(&username.trim().to_lowercase()) {
            return Err(Error::RateLimited(format!(
                "too many sign-in attempts for this username; retry in {} s",
                kit::throttle::retry_after_secs(wait)
            )));
        }
        let row = db::account_named(&self.pool, username).await?;
        let phc = row.as_ref().map_or_else(|| secrets::decoy_hash().to_owned(), |a| a.password_hash.clone());
        // The attempt is counted before the hash is checked (see `db::reserve_attempt`); None: disabled, locked
        // or out of attempts. The hash is checked either way, so the answer's time tells nothing.
        let reserved = match &row {
            Some(a) => db::reserve_attempt(&self.pool, a.id, self.policy.lock_after).await?,
            None => None,
        };
        let ok = match crate::hashing::verify(password, &phc).await {
            Ok(ok) => ok,
            Err(busy) => {
                // Refused for load, not checked: the attempt is given back.
                if let (Some(a), Some(_)) = (&row, reserved) {
                    db::release_attempt(&self.pool, a.id).await?;
                }
                return Err(busy);
            }
        };
        let (Some(account), Some(count)) = (row, reserved) else { return Err(Error::Unauthenticated(FAILED.into())) };
        if !ok {
            self.failed(account.id, count).await?;
            return Err(Error::Unauthenticated(FAILED.into()));
        }
        db::release_attempt(&self.pool, account.id).await?;
        if account.last_active_at + Duration::days(self.policy.dormant_days) < Utc::now() {
            // 等保: an account unused for the dormancy period is disabled; the system administrator re-enables it.
            db::disable_dormant(&self.pool, account.id).await?;
            tracing::warn!(account = %account.id, "dormant account disabled at sign-in");
            return Err(Error::Unauthenticated(FAILED.into()));
        }
        Ok(account)
    }

    /// A wrong secret on the `count`th attempt: the account locks when that was its last.
    async fn failed(&self, account: Uuid, count: i32) -> Result<()> {
        if count >= self.policy.lock_after {
            db::lock_account(&self.pool, account, i32::try_from(self.policy.lock_minutes).unwrap_or(30)).await?;
            tracing::warn!(account = %account, "account locked after repeated sign-in failures");
        }
        Ok(())
    }

    pub(super) async fn check_otp(&self, account: &Account, otp: &str) -> Result<()> {
        let Some(count) = db::reserve_attempt(&self.pool, account.id, self.policy.lock_after).await? else {
            return Err(Error::Unauthenticated(FAILED.into()));
        };
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let step = account.totp_secret.as_deref().and_then(|s| secrets::totp_match(s, otp, now));
        // A code is good once: its step must be newer than the last one accepted, which the database decides, so
        // two sign-ins racing with one code cannot both pass.
        let accepted = match step.and_then(|s| i64::try_from(s).ok()) {
            Some(step) => db::accept_totp_step(&self.pool, account.id, step).await?,
            None => false,
        };
        if accepted {
            db::release_attempt(&self.pool, account.id).await?;
            Ok(())
        } else {
            self.failed(account.id, count).await?;
            Err(Error::Unauthenticated(FAILED.into()))
        }
    }

    /// The grants in force now: stored ones within their validity, and a grid worker's grids from the
    /// 一格一员 assignments (so a grant ends the moment the assignment does, at the next refresh).
    pub async fn grants_now(&self, account: Uuid, person: Uuid) -> Result<Vec<Grant>> {
        let rows = db::grants_now(&self.pool, account, person).await?;
        Ok(rows.into_iter().map(|(role, scope, unit)| Grant { role, scope, unit }).collect())
    }

    /// The claims of an access token for `sub` issued now: `who` is the person's id (empty for a client) and the
    /// name shown, `sid` the session (empty for a client). Its `iat` is never before the subject's last revocation.
    async fn claims(
        &self,
        sub: String,
        (person, name): (String, String),
        grants: &[Grant],
        amr: Vec<String>,
        sid: String,
    ) -> Result<Claims> {
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let iat = revocations::issue_time(&self.pool, &sub, now).await?;
        Ok(Claims {
            iss: String::new(),
            aud: String::new(),
            sub,
            exp: now + self.policy.access_secs,
            nbf: now,
            iat,
            jti: Uuid::new_v4().to_string(),
            person,
            name,
            grants: grants.to_vec(),
            amr,
            sid,
        })
    }

    /// An access token and the next refresh token of `session`.
    async fn issue(&self, account: &Account, session: Uuid, amr: Vec<String>, grants: Vec<Grant>) -> Result<Tokens> {
        let sub = revocations::person_subject(account.person_id);
        let who = (account.person_id.to_string(), account.display_name.clone());
        let claims = self.claims(sub, who, &grants, amr, session.to_string()).await?;
        let access_token = self.signer()?.sign(claims)?;
        let (refresh_token, hash) = secrets::random_token()?;
        db::insert_refresh_token(&self.pool, &hash, session).await?;
        Ok(Tokens { access_token, expires_in: self.policy.access_secs, refresh_token, grants })
    }

    /// Spends a refresh token for the next one. A token spent before means someone else holds a copy: the
    /// session ends for both.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        self.signer()?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let hash = secrets::token_hash(refresh_token);
        let row = db::lock_refresh_token(&mut *tx, &hash).await?;
        let Some((session, spent)) = row else { return Err(Error::Unauthenticated("unknown refresh token".into())) };
        if spent.is_some() {
            db::revoke_session(&mut *tx, session, "refresh token reused").await?;
            tx.commit().await?;
            tracing::warn!(session = %session, "refresh token reused: session revoked");
            return Err(Error::Unauthenticated("refresh token already used; the session is ended".into()));
        }
        let idle = i32::try_from(self.policy.idle_minutes).unwrap_or(30);
        let live = db::touch_session(&mut *tx, session, idle).await?;
        let Some((account_id, amr)) = live else { return Err(Error::Unauthenticated("session ended".into())) };
        db::spend_refresh_token(&mut *tx, &hash).await?;
        tx.commit().await?;
        let account = db::account(&self.pool, account_id).await?;
        if account.disabled_at.is_some() {
            return Err(Error::Unauthenticated("session ended".into()));
        }
        let grants = self.grants_now(account.id, account.person_id).await?;
        self.issue(&account, session, amr, grants).await
    }

    pub async fn sign_out(&self, refresh_token: &str) -> Result<()> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        if !db::sign_out(&mut *tx, &secrets::token_hash(refresh_token)).await? {
            return Err(Error::Unauthenticated("unknown or ended session".into()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// A client credential for a short access token over the client's subtree (no refresh: it signs in again).
    pub async fn client_token(&self, client_id: &str, secret: &str) -> Result<Tokens> {
        let signer = self.signer()?;
        let row = db::client(&self.pool, client_id).await?;
        let hash = secrets::token_hash(secret);
        let Some((scope, _)) = row.filter(|(_, h)| *h == hash) else {
            return Err(Error::Unauthenticated(FAILED.into()));
        };
        let grants = vec![Grant { role: "external_client".into(), scope, unit: String::new() }];
        let sub = revocations::client_subject(client_id);
        let who = (String::new(), client_id.to_owned());
        let claims = self.claims(sub, who, &grants, vec!["client_secret".into()], String::new()).await?;
        Ok(Tokens {
            access_token: signer.sign(claims)?,
            expires_in: self.policy.access_secs,
            refresh_token: String::new(),
            grants,
        })
    }
}

pub(super) fn needs_second_factor(grants: &[Grant]) -> bool {
    grants.iter().any(|g| kit::auth::Role::parse("role", &g.role).is_ok_and(kit::auth::Role::is_admin))
}
