//! Ended tokens. A service verifies an access token on its own and remembers it until it expires, so ending a
//! session in the registry is not enough: a disabled account, a changed password, a revoked grant and a revoked
//! or rotated client secret are also written to `revocations`, which every verifier follows
//! (`kit::auth::revocation`) to refuse the subject's older tokens within seconds.

use kit::error::{Error, Result};
use sqlx::PgExecutor;

use crate::secrets;
use crate::service::Issuer;

/// Revocations older than this are not served: every token they ended has expired (access and service tokens
/// live at most [`kit::auth::revocation::WINDOW_SECS`]).
const WINDOW_SECS: i64 = kit::auth::revocation::WINDOW_SECS as i64;

/// The most revocations one ListRevocations answer carries (the followers' page).
const PAGE: i64 = kit::auth::revocation::PAGE as i64;

/// One ended subject, as served.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Revocation {
    pub seq: i64,
    pub subject: String,
    pub not_before: i64,
}

/// Ends every token of `subject` issued up to now, in the caller's transaction: the revocation commits with the
/// change that causes it, or neither does.
///
/// Followers read the list by sequence number, so numbers must become visible in order: a revocation that took
/// number 7 and committed after number 8 was read would be skipped for good. The table lock, held to the end of
/// the transaction, makes revocations take their numbers and commit one after another (they are an
/// administrator's actions, a handful a day); readers are not blocked.
///
/// A token issued after the subject's previous revocation in that revocation's second was dated one second
/// later ([`issue_time`]), so this one ends the tokens up to then at least: a client rotated and then revoked
/// within one second must not keep the token its new secret got in between.
pub async fn revoke(tx: &mut sqlx::PgConnection, subject: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query("LOCK TABLE revocations IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let not_before = i64::try_from(issue_time(&mut *tx, subject, now).await?).unwrap_or(i64::MAX);
    sqlx::query("INSERT INTO revocations (subject, not_before, reason) VALUES ($1, $2, $3)")
        .bind(subject)
        .bind(not_before)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Revocations after `after_seq` still inside the window, in order, at most [`PAGE`].
pub async fn since<'e>(ex: impl PgExecutor<'e>, after_seq: i64) -> sqlx::Result<Vec<Revocation>> {
    sqlx::query_as(
        "SELECT seq, subject, not_before FROM revocations \
         WHERE seq > $1 AND at > now() - make_interval(secs => $2) ORDER BY seq LIMIT $3",
    )
    .bind(after_seq)
    .bind(WINDOW_SECS as f64)
    .bind(PAGE)
    .fetch_all(ex)
    .await
}

/// The `iat` for a token of `subject` issued now. Tokens are dated in whole seconds and a revocation ends the
/// tokens issued in its own second too, so a token issued after a revocation in that same second (a client
/// signing in with its rotated secret at once) is dated one second later: it is not mistaken for one the
/// revocation ended. Its `nbf` stays now, so it is usable at once.
pub async fn issue_time<'e>(ex: impl PgExecutor<'e>, subject: &str, now: u64) -> sqlx::Result<u64> {
    let latest: Option<i64> = sqlx::query_scalar("SELECT max(not_before) FROM revocations WHERE subject = $1")
        .bind(subject)
        .fetch_one(ex)
        .await?;
    let after = latest.and_then(|t| u64::try_from(t).ok()).map_or(0, |t| t + 1);
    Ok(now.max(after))
}

/// A person's token subject, as the issuer writes it.
pub fn person_subject(person: uuid::Uuid) -> String {
    format!("person:{person}")
}

pub fn client_subject(client_id: &str) -> String {
    format!("client:{client_id}")
}

impl Issuer {
    /// Ends a client credential and the tokens it holds; NOT_FOUND when there is no such live client.
    pub async fn revoke_client(&self, client_id: &str) -> Result<()> {
        let mut tx = kit::audit::begin(&self.pool).await?;
        let done = sqlx::query("UPDATE clients SET disabled_at = now() WHERE client_id = $1 AND disabled_at IS NULL")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("client {client_id}")));
        }
        revoke(&mut *tx, &client_subject(client_id), "client revoked").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a live client's secret and the tokens it got, and returns a one-time activation code with which the
    /// client's operator collects the next secret ([`Issuer::activate_client`]).
    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<(String, chrono::DateTime<chrono::Utc>)> {
        let (_, unknown) = secrets::random_token()?;
        let activation = crate::admin::Activation::new()?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE clients SET secret_hash = $2, activation_hash = $3, activation_expires_at = $4 \
             WHERE client_id = $1 AND disabled_at IS NULL",
        )
        .bind(client_id)
        .bind(&unknown)
        .bind(&activation.hash)
        .bind(activation.expires)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("client {client_id}")));
        }
        revoke(&mut *tx, &client_subject(client_id), "client secret rotated").await?;
        tx.commit().await?;
        Ok((activation.code, activation.expires))
    }

    pub async fn list_revocations(&self, after_seq: i64) -> Result<Vec<Revocation>> {
        Ok(since(&self.pool, after_seq).await?)
    }
}

/// The registry's own verifier follows the table directly (it is the table's owner; no call to itself).
pub async fn fetch_local(pool: &sqlx::PgPool, after_seq: i64) -> anyhow::Result<Vec<kit::auth::revocation::Revoked>> {
    let rows = since(pool, after_seq).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

impl From<Revocation> for kit::auth::revocation::Revoked {
    fn from(r: Revocation) -> Self {
        Self { seq: r.seq, subject: r.subject, not_before: u64::try_from(r.not_before).unwrap_or(0) }
    }
}
