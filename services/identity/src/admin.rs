//! Accounts, client credentials and grants, kept by the system and security administrators; password changes
//! by their holders.

use chrono::Utc;
use kit::FieldError;
use kit::auth::{Principal, Role};
use uuid::Uuid;

use kit::error::{Error, Result};

use crate::db::{self, NewAccount, NewGrantRow};
use crate::domain::NewGrant;
use crate::service::{Issuer, needs_second_factor};
use crate::{revocations, secrets};

pub use crate::db::GrantRow;

impl Issuer {
    pub async fn change_password(&self, username: &str, old: &str, new: &str, otp: &str) -> Result<()> {
        let account = self.check_password(username, old).await?;
        let grants = self.grants_now(account.id, account.person_id).await?;
        if needs_second_factor(&grants) {
            self.check_otp(&account, otp).await?;
        }
        if let Some(why) = secrets::weakness(new, self.policy.min_length, self.policy.min_classes) {
            return Err(FieldError::new("new_password", why).into());
        }
        let history = db::password_history(&self.pool, account.id, self.policy.history).await?;
        let hashes = std::iter::once(account.password_hash.clone()).chain(history).collect();
        let reused = crate::hashing::matches_any(new, hashes).await?;
        if reused {
            return Err(FieldError::new("new_password", "must differ from the recent passwords").into());
        }
        let hash = crate::hashing::hash(new).await?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        db::keep_old_password(&mut *tx, account.id, &account.password_hash).await?;
        db::set_password(&mut *tx, account.id, &hash).await?;
        // Whoever held the old password may hold a session and tokens too: all of them end.
        db::revoke_sessions_of(&mut *tx, account.id, "password changed").await?;
        revocations::revoke(&mut *tx, &revocations::person_subject(account.person_id), "password changed").await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new account for a registry person, waiting for its holder: no password anyone knows (the hash of a
    /// discarded random secret) and no second factor yet. Returns the account id and the one-time activation
    /// code for the holder, with when it expires; the system administrator who made it can sign in as nobody.
    pub async fn create_account(
        &self,
        username: &str,
        person_id: Uuid,
        display_name: &str,
    ) -> Result<(Uuid, String, chrono::DateTime<Utc>)> {
        let (unknown, _) = secrets::random_token()?;
        let password_hash = crate::hashing::hash(&unknown).await?;
        let activation = Activation::new()?;
        let id = Uuid::new_v4();
        let account = NewAccount {
            id,
            username,
            person_id,
            display_name,
            password_hash: &password_hash,
            totp: None,
            must_change: false,
            activation: Some((&activation.hash, activation.expires)),
            approved_by: None,
        };
        let mut tx = kit::audit::begin(&self.pool).await?;
        insert_account(&mut tx, &account).await?;
        tx.commit().await?;
        Ok((id, activation.code, activation.expires))
    }

    /// The holder's activation: the code (once, before it expires) and a password that meets the policy; the
    /// answer is the TOTP secret for their authenticator, which only they see.
    pub async fn activate_account(&self, username: &str, code: &str, password: &str) -> Result<String> {
        if let Some(why) = secrets::weakness(password, self.policy.min_length, self.policy.min_classes) {
            return Err(FieldError::new("new_password", why).into());
        }
        let hash = crate::hashing::hash(password).await?;
        let totp = secrets::totp_secret()?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let activated = sqlx::query(
            "UPDATE accounts SET password_hash = $3, password_changed_at = now(), must_change = FALSE,                totp_secret = $4, activation_hash = NULL, activation_expires_at = NULL              WHERE username = $1 AND activation_hash = $2 AND activation_expires_at > now() AND disabled_at IS NULL",
        )
        .bind(username)
        .bind(secrets::token_hash(code))
        .bind(&hash)
        .bind(&totp)
        .execute(&mut *tx)
        .await?;
        if activated.rows_affected() == 0 {
            return Err(activation_failed());
        }
        tx.commit().await?;
        Ok(secrets::base32(&totp))
    }

    /// The security administrator's approval, after which the person's assignments give grid grants (from
    /// the holder's next sign-in or refresh).
    pub async fn approve_account(&self, by: &Principal, username: &str) -> Result<()> {
        let account = db::grantee(&self.pool, username).await?;
        let (_, person, _) = account.ok_or_else(|| Error::NotFound(format!("account {username}")))?;
        if by.person_id == person.to_string() {
            return Err(Error::Denied("nobody approves their own account".into()));
        }
        let mut tx = kit::audit::begin(&self.pool).await?;
        sqlx::query(
            "UPDATE accounts SET approved_at = now(), approved_by = $2 WHERE username = $1 AND approved_at IS NULL",
        )
        .bind(username)
        .bind(by.actor())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn disable_account(&self, username: &str) -> Result<()> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        let id = db::disable_account(&mut *tx, username).await?;
        let (id, person) = id.ok_or_else(|| Error::NotFound(format!("account {username}")))?;
        db::revoke_sessions_of(&mut *tx, id, "account disabled").await?;
        revocations::revoke(&mut *tx, &revocations::person_subject(person), "account disabled").await?;
        tx.commit().await?;
        Ok(())
    }

    /// A client credential for another system, scoped to a subtree. The administrator gets a one-time
    /// activation code, never the secret: until the client's operator activates it, its secret is one nobody
    /// knows.
    pub async fn create_client(
        &self,
        by: &Principal,
        client_id: &str,
        name: &str,
        scope: &str,
    ) -> Result<(String, chrono::DateTime<Utc>)> {
        let (_, unknown) = secrets::random_token()?;
        let activation = Activation::new()?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let client = db::NewClient { client_id, name, secret_hash: &unknown, scope, created_by: by.actor() };
        if !db::insert_client(&mut *tx, &client, (&activation.hash, activation.expires)).await? {
            return Err(Error::FailedPrecondition(format!("client {client_id} exists already")));
        }
        tx.commit().await?;
        Ok((activation.code, activation.expires))
    }

    /// The client's operator exchanges the activation code (once, before it expires) for the secret, which
    /// only they see.
    pub async fn activate_client(&self, client_id: &str, code: &str) -> Result<String> {
        let (secret, hash) = secrets::random_token()?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let activated = sqlx::query(
            "UPDATE clients SET secret_hash = $3, activation_hash = NULL, activation_expires_at = NULL \
             WHERE client_id = $1 AND activation_hash = $2 AND activation_expires_at > now() AND disabled_at IS NULL",
        )
        .bind(client_id)
        .bind(secrets::token_hash(code))
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        if activated.rows_affected() == 0 {
            return Err(activation_failed());
        }
        tx.commit().await?;
        Ok(secret)
    }

    /// Grants a role. Nobody grants to themselves; the three administrators and business roles stay in
    /// different hands (三权分立); an administrator needs a second factor enrolled.
    pub async fn set_grant(&self, by: &Principal, g: &NewGrant) -> Result<GrantRow> {
        let account = db::grantee(&self.pool, &g.username).await?;
        let (account, person, has_totp) = account.ok_or_else(|| Error::NotFound(format!("account {}", g.username)))?;
        if by.person_id == person.to_string() {
            return Err(Error::Denied("nobody changes their own grants".into()));
        }
        if g.role.is_admin() && !has_totp {
            return Err(Error::FailedPrecondition("an administrator needs a second factor enrolled".into()));
        }
        let held: Vec<String> = self.grants_now(account, person).await?.into_iter().map(|g| g.role).collect();
        for other in held.iter().filter_map(|r| Role::parse("role", r).ok()) {
            if other != g.role && (other.is_admin() || g.role.is_admin()) {
                return Err(Error::FailedPrecondition(format!(
                    "{} cannot be held with {other}: administrators hold one role and no business role",
                    g.role
                )));
            }
        }
        let row = NewGrantRow {
            account,
            role: g.role,
            scope: &g.scope,
            unit: &g.unit,
            valid_to: g.valid_to,
            granted_by: by.actor(),
        };
        let mut tx = kit::audit::begin(&self.pool).await?;
        let row = db::insert_grant(&mut *tx, &row).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn revoke_grant(&self, by: &Principal, grant: Uuid) -> Result<()> {
        let owner = db::grant_holder(&self.pool, grant).await?;
        let owner = owner.ok_or_else(|| Error::NotFound(format!("grant {grant}")))?;
        if by.person_id == owner.to_string() {
            return Err(Error::Denied("nobody changes their own grants".into()));
        }
        // The holder's tokens carry the grant until they expire: they end now, and the next refresh issues
        // tokens with the grants that remain.
        let mut tx = kit::audit::begin(&self.pool).await?;
        db::revoke_grant(&mut *tx, grant, by.actor()).await?;
        revocations::revoke(&mut *tx, &revocations::person_subject(owner), "grant revoked").await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_grants(&self, username: &str) -> Result<Vec<GrantRow>> {
        Ok(db::grants_of(&self.pool, username).await?)
    }
}

/// How long an activation code works.
pub const ACTIVATION_HOURS: i64 = 72;

/// A one-time activation code: the code for its holder, its hash to keep, and when it stops working.
pub(super) struct Activation {
    pub code: String,
    pub hash: Vec<u8>,
    pub expires: chrono::DateTime<Utc>,
}

/// One answer for every reason an activation fails (no such account or client, used, expired, wrong code):
/// it tells a guesser nothing.
fn activation_failed() -> Error {
    Error::Unauthenticated("activation failed: the code is wrong, used or expired".into())
}

impl Activation {
    pub fn new() -> Result<Self> {
        let (code, hash) = secrets::random_token()?;
        Ok(Self { code, hash, expires: Utc::now() + chrono::Duration::hours(ACTIVATION_HOURS) })
    }
}

/// Inserts an account; FAILED_PRECONDITION when the username is taken or the person has an account.
async fn insert_account(conn: &mut sqlx::PgConnection, account: &NewAccount<'_>) -> Result<()> {
    if !db::insert_account(&mut *conn, account).await? {
        // One account per person, by the database's unique index: an administrator cannot make a second
        // account for a grid worker and take over the grants that follow the worker's assignments.
        let person_id = account.person_id;
        if let Some(theirs) = db::account_of_person(&mut *conn, person_id).await? {
            return Err(Error::failed_precondition(format!(
                "person {person_id} has an account already ({theirs}); a person holds one account"
            )));
        }
        return Err(Error::failed_precondition(format!("username {} is taken", account.username)));
    }
    Ok(())
}

/// The argon2 hash of a seeded password. The demo's accounts all share one published password, so the seed
/// hashes it once for all of them (about 24 hashes fewer, a second and a half of every test suite's start).
pub fn seed_password_hash(password: &str) -> anyhow::Result<String> {
    secrets::hash_password(password)
}

/// A ready account with its grants, for the demo and tests (no first-sign-in change), with the password
/// whose hash [`seed_password_hash`] made. Returns the TOTP secret in base32. An existing username is left
/// as it is.
pub async fn seed_account(
    pool: &sqlx::PgPool,
    username: &str,
    person_id: Uuid,
    display_name: &str,
    password_hash: &str,
    grants: &[(Role, &str, &str)],
) -> anyhow::Result<String> {
    let existing = db::seeded(pool, username).await?.and_then(|(totp, _)| totp);
    if let Some(secret) = existing {
        return Ok(secrets::base32(&secret));
    }
    let (id, totp) = (Uuid::new_v4(), secrets::totp_secret()?);
    // Seeded accounts (the demo's, the tests') are ready: active and approved by the deployment itself.
    let account = NewAccount {
        id,
        username,
        person_id,
        display_name,
        password_hash,
        totp: Some(&totp),
        must_change: false,
        activation: None,
        approved_by: Some("seed"),
    };
    let mut conn = pool.acquire().await?;
    insert_account(&mut conn, &account).await.map_err(|e| anyhow::anyhow!("seed account {username}: {e}"))?;
    for (role, scope, unit) in grants {
        db::seed_grant(pool, id, *role, scope, unit).await?;
    }
    Ok(secrets::base32(&totp))
}

/// A staff member for the demo: a registry person (no phone or ID number) with a ready account and grants.
/// Returns the person id and the TOTP secret; an existing username is left as it is.
pub async fn seed_staff(
    pool: &sqlx::PgPool,
    username: &str,
    name: &str,
    home_code: &str,
    password_hash: &str,
    grants: &[(Role, &str, &str)],
) -> anyhow::Result<(Uuid, String)> {
    let existing = db::seeded(pool, username).await?.map(|(_, person)| person);
    let person = match existing {
        Some(p) => p,
        None => {
            let id = Uuid::new_v4();
            db::insert_staff_person(pool, id, name, home_code).await?;
            id
        }
    };
    let totp = seed_account(pool, username, person, name, password_hash, grants).await?;
    Ok((person, totp))
}

/// The current TOTP code for a base32 secret (the demo prints it; tests sign administrators in with it).
pub fn current_otp(base32_secret: &str) -> String {
    let bytes = decode_base32(base32_secret);
    secrets::totp_code(&bytes, u64::try_from(Utc::now().timestamp()).unwrap_or(0) / 30)
}

fn decode_base32(s: &str) -> Vec<u8> {
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => continue,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    out
}
