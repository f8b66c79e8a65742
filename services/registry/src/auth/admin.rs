//! Accounts, client credentials and grants, kept by the system and security administrators; password changes
//! by their holders.

use chrono::{DateTime, Utc};
use kit::FieldError;
use kit::auth::{Principal, Role};
use uuid::Uuid;

use kit::error::{Error, Result};

use super::domain::NewGrant;
use super::secrets;
use super::service::{Issuer, needs_second_factor};

/// A stored grant, for listing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    pub id: Uuid,
    pub role: Role,
    pub scope: String,
    pub unit: String,
    pub valid_from: DateTime<Utc>,
    pub valid_to: Option<DateTime<Utc>>,
}

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
        let history: Vec<String> = sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE account_id = $1 ORDER BY changed_at DESC LIMIT $2",
        )
        .bind(account.id)
        .bind(self.policy.history)
        .fetch_all(&self.pool)
        .await?;
        let (new_owned, current) = (new.to_owned(), account.password_hash.clone());
        let reused = tokio::task::spawn_blocking(move || {
            std::iter::once(&current).chain(&history).any(|h| secrets::verify_password(&new_owned, h))
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?;
        if reused {
            return Err(FieldError::new("new_password", "must differ from the recent passwords").into());
        }
        let hash = hash(new).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO password_history (account_id, password_hash) VALUES ($1, $2)")
            .bind(account.id)
            .bind(&account.password_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE accounts SET password_hash = $2, password_changed_at = now(), must_change = FALSE WHERE id = $1",
        )
        .bind(account.id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new account for a registry person; the initial password must be changed at first sign-in. Returns
    /// the account id and the TOTP secret for the holder's authenticator (shown once).
    pub async fn create_account(
        &self,
        username: &str,
        person_id: Uuid,
        display_name: &str,
        initial_password: &str,
    ) -> Result<(Uuid, String)> {
        if let Some(why) = secrets::weakness(initial_password, self.policy.min_length, self.policy.min_classes) {
            return Err(FieldError::new("initial_password", why).into());
        }
        let id = Uuid::new_v4();
        let totp = secrets::totp_secret()?;
        insert_account(&self.pool, id, username, person_id, display_name, &hash(initial_password).await?, &totp, true)
            .await?;
        Ok((id, secrets::base32(&totp)))
    }

    pub async fn disable_account(&self, username: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let id: Option<Uuid> =
            sqlx::query_scalar("UPDATE accounts SET disabled_at = now() WHERE username = $1 RETURNING id")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let id = id.ok_or_else(|| Error::NotFound(format!("account {username}")))?;
        sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_why = 'account disabled' WHERE account_id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A client credential for another system, scoped to a subtree; the secret is returned once.
    pub async fn create_client(&self, by: &Principal, client_id: &str, name: &str, scope: &str) -> Result<String> {
        let (secret, hash) = secrets::random_token()?;
        let inserted = sqlx::query(
            "INSERT INTO clients (client_id, name, secret_hash, scope, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (client_id) DO NOTHING",
        )
        .bind(client_id)
        .bind(name)
        .bind(hash)
        .bind(scope)
        .bind(by.actor())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::FailedPrecondition(format!("client {client_id} exists already")));
        }
        Ok(secret)
    }

    /// Grants a role. Nobody grants to themselves; the three administrators and business roles stay in
    /// different hands (三权分立); an administrator needs a second factor enrolled.
    pub async fn set_grant(&self, by: &Principal, g: &NewGrant) -> Result<GrantRow> {
        let account: Option<(Uuid, Uuid, bool)> =
            sqlx::query_as("SELECT id, person_id, totp_secret IS NOT NULL FROM accounts WHERE username = $1")
                .bind(&g.username)
                .fetch_optional(&self.pool)
                .await?;
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
        let row: GrantRow = sqlx::query_as(
            "INSERT INTO grants (id, account_id, role, scope, unit, valid_to, granted_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, role, scope, unit, valid_from, valid_to",
        )
        .bind(Uuid::new_v4())
        .bind(account)
        .bind(g.role)
        .bind(&g.scope)
        .bind(&g.unit)
        .bind(g.valid_to)
        .bind(by.actor())
        .fetch_one(&self.pool)
        .await?;
        Ok(row)
    }

    pub async fn revoke_grant(&self, by: &Principal, grant: Uuid) -> Result<()> {
        let owner: Option<Uuid> = sqlx::query_scalar(
            "SELECT a.person_id FROM grants g JOIN accounts a ON a.id = g.account_id WHERE g.id = $1 AND g.revoked_at IS NULL",
        )
        .bind(grant)
        .fetch_optional(&self.pool)
        .await?;
        let owner = owner.ok_or_else(|| Error::NotFound(format!("grant {grant}")))?;
        if by.person_id == owner.to_string() {
            return Err(Error::Denied("nobody changes their own grants".into()));
        }
        sqlx::query("UPDATE grants SET revoked_at = now(), revoked_by = $2 WHERE id = $1")
            .bind(grant)
            .bind(by.actor())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn list_grants(&self, username: &str) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(
            "SELECT g.id, g.role, g.scope, g.unit, g.valid_from, g.valid_to FROM grants g \
             JOIN accounts a ON a.id = g.account_id WHERE a.username = $1 AND g.revoked_at IS NULL ORDER BY g.valid_from",
        )
        .bind(username)
        .fetch_all(&self.pool)
        .await?)
    }
}

async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(Error::Internal)
}

#[allow(clippy::too_many_arguments)]
async fn insert_account(
    pool: &sqlx::PgPool,
    id: Uuid,
    username: &str,
    person_id: Uuid,
    display_name: &str,
    password_hash: &str,
    totp: &[u8],
    must_change: bool,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO accounts (id, username, person_id, display_name, password_hash, totp_secret, must_change) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
    )
    .bind(id)
    .bind(username)
    .bind(person_id)
    .bind(display_name)
    .bind(password_hash)
    .bind(totp)
    .bind(must_change)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::FailedPrecondition(format!("username {username} is taken")));
    }
    Ok(())
}

/// A ready account with its grants, for the demo and tests (no first-sign-in change). Returns the TOTP
/// secret in base32. An existing username is left as it is.
pub async fn seed_account(
    pool: &sqlx::PgPool,
    username: &str,
    person_id: Uuid,
    display_name: &str,
    password: &str,
    grants: &[(Role, &str, &str)],
) -> anyhow::Result<String> {
    let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT totp_secret FROM accounts WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await?
        .flatten();
    if let Some(secret) = existing {
        return Ok(secrets::base32(&secret));
    }
    let id = Uuid::new_v4();
    let totp = secrets::totp_secret()?;
    insert_account(pool, id, username, person_id, display_name, &secrets::hash_password(password)?, &totp, false)
        .await
        .map_err(|e| anyhow::anyhow!("seed account {username}: {e}"))?;
    for (role, scope, unit) in grants {
        sqlx::query(
            "INSERT INTO grants (id, account_id, role, scope, unit, granted_by) VALUES ($1, $2, $3, $4, $5, 'seed')",
        )
        .bind(Uuid::new_v4())
        .bind(id)
        .bind(role)
        .bind(*scope)
        .bind(*unit)
        .execute(pool)
        .await?;
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
    password: &str,
    grants: &[(Role, &str, &str)],
) -> anyhow::Result<(Uuid, String)> {
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT person_id FROM accounts WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await?;
    let person = match existing {
        Some(p) => p,
        None => {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO persons (id, name, role, phone_masked, id_number_masked, home_code, subsidy_eligible,                  eligibility_source) VALUES ($1, $2, $4, '', '', $3, FALSE, '')",
            )
            .bind(id)
            .bind(name)
            .bind(home_code)
            .bind(crate::grids::domain::PersonRole::Staff)
            .execute(pool)
            .await?;
            id
        }
    };
    let totp = seed_account(pool, username, person, name, password, grants).await?;
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
