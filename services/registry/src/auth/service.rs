//! The embedded issuer: sign-in for people in the registry and for other systems' clients, sessions with
//! rotating refresh tokens and second factors; the accounts and grants behind them are in `admin`.

use chrono::{DateTime, Duration, Utc};
use kit::auth::{Claims, Grant, Signer};
use kit::error::{Error, Result};
use uuid::Uuid;

use super::domain::Policy;
use super::secrets;

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
}

/// An account as sign-in reads it (the columns of [`AccountRow`]).
const ACCOUNT: &str = "SELECT id, person_id, display_name, password_hash, password_changed_at, must_change, \
     totp_secret, totp_last_step, failed_count, locked_until, disabled_at, \
     COALESCE(last_sign_in_at, created_at) AS last_active_at FROM accounts";

/// One message for every failed sign-in, so nobody learns whether a username exists or is locked.
const FAILED: &str = "sign-in failed";

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    pub(super) id: Uuid,
    pub(super) person_id: Uuid,
    pub(super) display_name: String,
    pub(super) password_hash: String,
    pub(super) password_changed_at: DateTime<Utc>,
    pub(super) must_change: bool,
    pub(super) totp_secret: Option<Vec<u8>>,
    pub(super) totp_last_step: i64,
    pub(super) failed_count: i32,
    pub(super) locked_until: Option<DateTime<Utc>>,
    pub(super) disabled_at: Option<DateTime<Utc>>,
    /// The last sign-in, or the account's creation if it never signed in.
    pub(super) last_active_at: DateTime<Utc>,
}

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
        sqlx::query("UPDATE accounts SET failed_count = 0, locked_until = NULL, last_sign_in_at = now() WHERE id = $1")
            .bind(account.id)
            .execute(&self.pool)
            .await?;
        let session = Uuid::new_v4();
        let expires = Utc::now() + Duration::hours(self.policy.session_hours);
        sqlx::query("INSERT INTO sessions (id, account_id, amr, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(session)
            .bind(account.id)
            .bind(&amr)
            .bind(expires)
            .execute(&self.pool)
            .await?;
        self.issue(&account, session, amr, grants).await
    }

    /// The account if the password is right and the account may sign in; counts failures and locks.
    pub(super) async fn check_password(&self, username: &str, password: &str) -> Result<AccountRow> {
        let row: Option<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACCOUNT} WHERE username = $1")))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        let phc = row.as_ref().map_or_else(|| secrets::decoy_hash().to_owned(), |a| a.password_hash.clone());
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &phc))
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        let Some(account) = row else { return Err(Error::Unauthenticated(FAILED.into())) };
        let locked = account.locked_until.is_some_and(|t| t > Utc::now());
        if account.disabled_at.is_some() || locked {
            return Err(Error::Unauthenticated(FAILED.into()));
        }
        if !ok {
            self.count_failure(account.id, account.failed_count).await?;
            return Err(Error::Unauthenticated(FAILED.into()));
        }
        if account.last_active_at + Duration::days(self.policy.dormant_days) < Utc::now() {
            // 等保: an account unused for the dormancy period is disabled; the system administrator re-enables it.
            sqlx::query("UPDATE accounts SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL")
                .bind(account.id)
                .execute(&self.pool)
                .await?;
            tracing::warn!(account = %account.id, "dormant account disabled at sign-in");
            return Err(Error::Unauthenticated(FAILED.into()));
        }
        Ok(account)
    }

    async fn count_failure(&self, account: Uuid, failed_before: i32) -> Result<()> {
        let lock = failed_before + 1 >= self.policy.lock_after;
        sqlx::query(
            "UPDATE accounts SET failed_count = CASE WHEN $2 THEN 0 ELSE failed_count + 1 END, \
             locked_until = CASE WHEN $2 THEN now() + make_interval(mins => $3::int) ELSE locked_until END \
             WHERE id = $1",
        )
        .bind(account)
        .bind(lock)
        .bind(i32::try_from(self.policy.lock_minutes).unwrap_or(30))
        .execute(&self.pool)
        .await?;
        if lock {
            tracing::warn!(account = %account, "account locked after repeated sign-in failures");
        }
        Ok(())
    }

    pub(super) async fn check_otp(&self, account: &AccountRow, otp: &str) -> Result<()> {
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let step = account.totp_secret.as_deref().and_then(|s| secrets::totp_match(s, otp, now));
        // A code is good once: the step must be newer than the last one accepted.
        match step.and_then(|s| i64::try_from(s).ok()).filter(|s| *s > account.totp_last_step) {
            Some(step) => {
                sqlx::query("UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2")
                    .bind(account.id)
                    .bind(step)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            None => {
                self.count_failure(account.id, account.failed_count).await?;
                Err(Error::Unauthenticated(FAILED.into()))
            }
        }
    }

    /// The grants in force now: stored ones within their validity, and a grid worker's grids from the
    /// 一格一员 assignments (so a grant ends the moment the assignment does, at the next refresh).
    pub async fn grants_now(&self, account: Uuid, person: Uuid) -> Result<Vec<Grant>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT role, scope, unit FROM grants WHERE account_id = $1 AND revoked_at IS NULL \
               AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now()) \
             UNION ALL \
             SELECT $3::text, grid_code, '' FROM grid_assignments WHERE person_id = $2 AND ended_at IS NULL \
             ORDER BY 1, 2",
        )
        .bind(account)
        .bind(person)
        .bind(kit::auth::Role::GridWorker)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(role, scope, unit)| Grant { role, scope, unit }).collect())
    }

    /// An access token and the next refresh token of `session`.
    async fn issue(&self, account: &AccountRow, session: Uuid, amr: Vec<String>, grants: Vec<Grant>) -> Result<Tokens> {
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let claims = Claims {
            iss: String::new(),
            aud: String::new(),
            sub: format!("person:{}", account.person_id),
            exp: now + self.policy.access_secs,
            nbf: now,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            person: account.person_id.to_string(),
            name: account.display_name.clone(),
            grants: grants.clone(),
            amr,
            sid: session.to_string(),
        };
        let access_token = self.signer()?.sign(claims)?;
        let (refresh_token, hash) = secrets::random_token()?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
            .bind(hash)
            .bind(session)
            .execute(&self.pool)
            .await?;
        Ok(Tokens { access_token, expires_in: self.policy.access_secs, refresh_token, grants })
    }

    /// Spends a refresh token for the next one. A token spent before means someone else holds a copy: the
    /// session ends for both.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        self.signer()?;
        let mut tx = self.pool.begin().await?;
        let row: Option<(Uuid, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT session_id, spent_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE")
                .bind(secrets::token_hash(refresh_token))
                .fetch_optional(&mut *tx)
                .await?;
        let Some((session, spent)) = row else { return Err(Error::Unauthenticated("unknown refresh token".into())) };
        if spent.is_some() {
            sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_why = 'refresh token reused' WHERE id = $1 AND revoked_at IS NULL")
                .bind(session)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::warn!(session = %session, "refresh token reused: session revoked");
            return Err(Error::Unauthenticated("refresh token already used; the session is ended".into()));
        }
        let live: Option<(Uuid, Vec<String>)> = sqlx::query_as(
            "UPDATE sessions SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL AND expires_at > now() \
             AND last_used_at > now() - make_interval(mins => $2::int) RETURNING account_id, amr",
        )
        .bind(session)
        .bind(i32::try_from(self.policy.idle_minutes).unwrap_or(30))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((account_id, amr)) = live else { return Err(Error::Unauthenticated("session ended".into())) };
        sqlx::query("UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1")
            .bind(secrets::token_hash(refresh_token))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let account: AccountRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACCOUNT} WHERE id = $1")))
            .bind(account_id)
            .fetch_one(&self.pool)
            .await?;
        if account.disabled_at.is_some() {
            return Err(Error::Unauthenticated("session ended".into()));
        }
        let grants = self.grants_now(account.id, account.person_id).await?;
        self.issue(&account, session, amr, grants).await
    }

    pub async fn sign_out(&self, refresh_token: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_why = 'signed out' WHERE revoked_at IS NULL \
             AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(secrets::token_hash(refresh_token))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::Unauthenticated("unknown or ended session".into()));
        }
        Ok(())
    }

    /// A client credential for a short access token over the client's subtree (no refresh: it signs in again).
    pub async fn client_token(&self, client_id: &str, secret: &str) -> Result<Tokens> {
        let signer = self.signer()?;
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT scope, secret_hash FROM clients WHERE client_id = $1 AND disabled_at IS NULL")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        let hash = secrets::token_hash(secret);
        let Some((scope, _)) = row.filter(|(_, h)| *h == hash) else {
            return Err(Error::Unauthenticated(FAILED.into()));
        };
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let grants = vec![Grant { role: "external_client".into(), scope, unit: String::new() }];
        let claims = Claims {
            iss: String::new(),
            aud: String::new(),
            sub: format!("client:{client_id}"),
            exp: now + self.policy.access_secs,
            nbf: now,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            person: String::new(),
            name: client_id.to_owned(),
            grants: grants.clone(),
            amr: vec!["client_secret".into()],
            sid: String::new(),
        };
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
