//! The SQL of sign-in: accounts, sessions, refresh tokens, client credentials, grants and password history.
//! Plain functions over any executor (the pool or a transaction), returning the identity provider's types.

use chrono::{DateTime, Utc};
use kit::auth::Role;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::Account;

/// An account as sign-in reads it (the columns of [`Account`]).
const ACCOUNT: &str = "SELECT id, person_id, display_name, password_hash, password_changed_at, must_change, \
     totp_secret, totp_last_step, failed_count, locked_until, disabled_at, \
     COALESCE(last_sign_in_at, created_at) AS last_active_at FROM accounts";

pub async fn account_named<'e>(ex: impl PgExecutor<'e>, username: &str) -> sqlx::Result<Option<Account>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACCOUNT} WHERE username = $1")))
        .bind(username)
        .fetch_optional(ex)
        .await
}

pub async fn account<'e>(ex: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Account> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACCOUNT} WHERE id = $1"))).bind(id).fetch_one(ex).await
}

/// A successful sign-in: failures forgotten, the lock lifted, the time kept.
pub async fn signed_in<'e>(ex: impl PgExecutor<'e>, account: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET failed_count = 0, locked_until = NULL, last_sign_in_at = now() WHERE id = $1")
        .bind(account)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn disable_dormant<'e>(ex: impl PgExecutor<'e>, account: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL")
        .bind(account)
        .execute(ex)
        .await?;
    Ok(())
}

/// Takes one of the account's attempts before a secret (password or TOTP code) is checked: the failed count
/// goes up first, in one statement under the row's lock, so guesses sent at once are counted one by one and no
/// more than `lock_after` of them are ever checked before the lock. None when the account is disabled, locked,
/// or has no attempt left; else the count including this attempt.
pub async fn reserve_attempt<'e>(ex: impl PgExecutor<'e>, account: Uuid, lock_after: i32) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "UPDATE accounts SET failed_count = failed_count + 1 WHERE id = $1 AND disabled_at IS NULL \
         AND (locked_until IS NULL OR locked_until <= now()) AND failed_count < $2 RETURNING failed_count",
    )
    .bind(account)
    .bind(lock_after)
    .fetch_optional(ex)
    .await
}

/// Gives back an attempt whose secret was right.
pub async fn release_attempt<'e>(ex: impl PgExecutor<'e>, account: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE accounts SET failed_count = greatest(failed_count - 1, 0) WHERE id = $1")
        .bind(account)
        .execute(ex)
        .await?;
    Ok(())
}

/// Locks the account for `minutes` and starts its count again.
pub async fn lock_account<'e>(ex: impl PgExecutor<'e>, account: Uuid, minutes: i32) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE accounts SET failed_count = 0, locked_until = now() + make_interval(mins => $2::int) WHERE id = $1",
    )
    .bind(account)
    .bind(minutes)
    .execute(ex)
    .await?;
    Ok(())
}

/// Remembers the TOTP step just accepted, so its code is not accepted again; false when that step (or a later
/// one) was accepted already, by a sign-in racing this one.
pub async fn accept_totp_step<'e>(ex: impl PgExecutor<'e>, account: Uuid, step: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2")
        .bind(account)
        .bind(step)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// (role, scope, unit) of the stored grants in force, and a grid worker's grids from the active assignments.
pub async fn grants_now<'e>(
    ex: impl PgExecutor<'e>,
    account: Uuid,
    person: Uuid,
) -> sqlx::Result<Vec<(String, String, String)>> {
    sqlx::query_as(
        "SELECT role, scope, unit FROM grants WHERE account_id = $1 AND revoked_at IS NULL \
           AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now()) \
         UNION ALL \
         SELECT $3::text, grid_code, '' FROM grid_assignments WHERE person_id = $2 AND ended_at IS NULL \
           AND EXISTS (SELECT 1 FROM accounts WHERE id = $1 AND approved_at IS NOT NULL) \
         ORDER BY 1, 2",
    )
    .bind(account)
    .bind(person)
    .bind(Role::GridWorker)
    .fetch_all(ex)
    .await
}

pub async fn insert_session<'e>(
    ex: impl PgExecutor<'e>,
    session: Uuid,
    account: Uuid,
    amr: &[String],
    expires: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sessions (id, account_id, amr, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(session)
        .bind(account)
        .bind(amr)
        .bind(expires)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn insert_refresh_token<'e>(ex: impl PgExecutor<'e>, hash: &[u8], session: Uuid) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(hash)
        .bind(session)
        .execute(ex)
        .await?;
    Ok(())
}

/// A refresh token's session and when it was spent, locked.
pub async fn lock_refresh_token<'e>(
    ex: impl PgExecutor<'e>,
    hash: &[u8],
) -> sqlx::Result<Option<(Uuid, Option<DateTime<Utc>>)>> {
    sqlx::query_as("SELECT session_id, spent_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE")
        .bind(hash)
        .fetch_optional(ex)
        .await
}

pub async fn spend_refresh_token<'e>(ex: impl PgExecutor<'e>, hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1").bind(hash).execute(ex).await?;
    Ok(())
}

/// Ends a session (if not ended already), saying why.
pub async fn revoke_session<'e>(ex: impl PgExecutor<'e>, session: Uuid, why: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_why = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session)
        .bind(why)
        .execute(ex)
        .await?;
    Ok(())
}

/// Ends every live session of an account, saying why.
pub async fn revoke_sessions_of<'e>(ex: impl PgExecutor<'e>, account: Uuid, why: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_why = $2 WHERE account_id = $1 AND revoked_at IS NULL",
    )
    .bind(account)
    .bind(why)
    .execute(ex)
    .await?;
    Ok(())
}

/// Marks a live session used, returning its account and methods; None when it is revoked, expired or idle
/// longer than `idle_minutes`.
pub async fn touch_session<'e>(
    ex: impl PgExecutor<'e>,
    session: Uuid,
    idle_minutes: i32,
) -> sqlx::Result<Option<(Uuid, Vec<String>)>> {
    sqlx::query_as(
        "UPDATE sessions SET last_used_at = now() WHERE id = $1 AND revoked_at IS NULL AND expires_at > now() \
         AND last_used_at > now() - make_interval(mins => $2::int) RETURNING account_id, amr",
    )
    .bind(session)
    .bind(idle_minutes)
    .fetch_optional(ex)
    .await
}

/// Ends the live session a refresh token belongs to; false when there is none.
pub async fn sign_out<'e>(ex: impl PgExecutor<'e>, hash: &[u8]) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_why = 'signed out' WHERE revoked_at IS NULL \
         AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(hash)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// An enabled client's scope and secret hash.
pub async fn client<'e>(ex: impl PgExecutor<'e>, client_id: &str) -> sqlx::Result<Option<(String, Vec<u8>)>> {
    sqlx::query_as("SELECT scope, secret_hash FROM clients WHERE client_id = $1 AND disabled_at IS NULL")
        .bind(client_id)
        .fetch_optional(ex)
        .await
}

/// The account's last `n` password hashes, newest first.
pub async fn password_history<'e>(ex: impl PgExecutor<'e>, account: Uuid, n: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT password_hash FROM password_history WHERE account_id = $1 ORDER BY changed_at DESC LIMIT $2",
    )
    .bind(account)
    .bind(n)
    .fetch_all(ex)
    .await
}

pub async fn keep_old_password<'e>(ex: impl PgExecutor<'e>, account: Uuid, hash: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO password_history (account_id, password_hash) VALUES ($1, $2)")
        .bind(account)
        .bind(hash)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn set_password<'e>(ex: impl PgExecutor<'e>, account: Uuid, hash: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, password_changed_at = now(), must_change = FALSE WHERE id = $1",
    )
    .bind(account)
    .bind(hash)
    .execute(ex)
    .await?;
    Ok(())
}

/// Disables an account by username, returning its id and person; None when there is none.
pub async fn disable_account<'e>(ex: impl PgExecutor<'e>, username: &str) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as("UPDATE accounts SET disabled_at = now() WHERE username = $1 RETURNING id, person_id")
        .bind(username)
        .fetch_optional(ex)
        .await
}

/// A client credential as the system administrator creates it.
pub struct NewClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a [u8],
    pub scope: &'a str,
    pub created_by: &'a str,
}

/// A new client credential with its activation code's hash and expiry; false when the client id is taken.
pub async fn insert_client<'e>(
    ex: impl PgExecutor<'e>,
    c: &NewClient<'_>,
    (activation_hash, expires): (&[u8], chrono::DateTime<chrono::Utc>),
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO clients (client_id, name, secret_hash, scope, created_by, activation_hash, \
                              activation_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (client_id) DO NOTHING",
    )
    .bind(c.client_id)
    .bind(c.name)
    .bind(c.secret_hash)
    .bind(c.scope)
    .bind(c.created_by)
    .bind(activation_hash)
    .bind(expires)
    .execute(ex)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// An account's id and person by username, and whether it has a second factor enrolled.
pub async fn grantee<'e>(ex: impl PgExecutor<'e>, username: &str) -> sqlx::Result<Option<(Uuid, Uuid, bool)>> {
    sqlx::query_as("SELECT id, person_id, totp_secret IS NOT NULL FROM accounts WHERE username = $1")
        .bind(username)
        .fetch_optional(ex)
        .await
}

/// A grant as stored, for listing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    pub id: Uuid,
    pub role: Role,
    pub scope: String,
    pub unit: String,
    pub valid_from: DateTime<Utc>,
    pub valid_to: Option<DateTime<Utc>>,
}

/// A grant's row as written.
pub struct NewGrantRow<'a> {
    pub account: Uuid,
    pub role: Role,
    pub scope: &'a str,
    pub unit: &'a str,
    pub valid_to: Option<DateTime<Utc>>,
    pub granted_by: &'a str,
}

pub async fn insert_grant<'e>(ex: impl PgExecutor<'e>, g: &NewGrantRow<'_>) -> sqlx::Result<GrantRow> {
    sqlx::query_as(
        "INSERT INTO grants (id, account_id, role, scope, unit, valid_to, granted_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, role, scope, unit, valid_from, valid_to",
    )
    .bind(Uuid::new_v4())
    .bind(g.account)
    .bind(g.role)
    .bind(g.scope)
    .bind(g.unit)
    .bind(g.valid_to)
    .bind(g.granted_by)
    .fetch_one(ex)
    .await
}

/// The person holding a live grant.
pub async fn grant_holder<'e>(ex: impl PgExecutor<'e>, grant: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT a.person_id FROM grants g JOIN accounts a ON a.id = g.account_id WHERE g.id = $1 AND g.revoked_at IS NULL",
    )
    .bind(grant)
    .fetch_optional(ex)
    .await
}

pub async fn revoke_grant<'e>(ex: impl PgExecutor<'e>, grant: Uuid, by: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE grants SET revoked_at = now(), revoked_by = $2 WHERE id = $1")
        .bind(grant)
        .bind(by)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn grants_of<'e>(ex: impl PgExecutor<'e>, username: &str) -> sqlx::Result<Vec<GrantRow>> {
    sqlx::query_as(
        "SELECT g.id, g.role, g.scope, g.unit, g.valid_from, g.valid_to FROM grants g \
         JOIN accounts a ON a.id = g.account_id WHERE a.username = $1 AND g.revoked_at IS NULL ORDER BY g.valid_from",
    )
    .bind(username)
    .fetch_all(ex)
    .await
}

/// An account's row as written.
pub struct NewAccount<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub person_id: Uuid,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub totp: Option<&'a [u8]>,
    pub must_change: bool,
    /// The activation code's hash and when it expires, for an account waiting for its holder.
    pub activation: Option<(&'a [u8], chrono::DateTime<Utc>)>,
    /// Who approved it, for an account approved as it is made (seeded ones).
    pub approved_by: Option<&'a str>,
}

/// A new account; false when the username is taken.
/// Inserts the account; false when its username is taken or its person has an account already (either
/// unique key; [`account_of_person`] tells which).
pub async fn insert_account<'e>(ex: impl PgExecutor<'e>, a: &NewAccount<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO accounts (id, username, person_id, display_name, password_hash, totp_secret, must_change, \
                               activation_hash, activation_expires_at, approved_at, approved_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10::text IS NULL THEN NULL ELSE now() END, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(a.id)
    .bind(a.username)
    .bind(a.person_id)
    .bind(a.display_name)
    .bind(a.password_hash)
    .bind(a.totp)
    .bind(a.must_change)
    .bind(a.activation.map(|(h, _)| h))
    .bind(a.activation.map(|(_, t)| t))
    .bind(a.approved_by)
    .execute(ex)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// An account's TOTP secret and person, by username.
pub async fn seeded<'e>(ex: impl PgExecutor<'e>, username: &str) -> sqlx::Result<Option<(Option<Vec<u8>>, Uuid)>> {
    sqlx::query_as("SELECT totp_secret, person_id FROM accounts WHERE username = $1")
        .bind(username)
        .fetch_optional(ex)
        .await
}

/// A seeded grant, over `scope`, with no end.
pub async fn seed_grant<'e>(
    ex: impl PgExecutor<'e>,
    account: Uuid,
    role: Role,
    scope: &str,
    unit: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO grants (id, account_id, role, scope, unit, granted_by) VALUES ($1, $2, $3, $4, $5, 'seed')",
    )
    .bind(Uuid::new_v4())
    .bind(account)
    .bind(role)
    .bind(scope)
    .bind(unit)
    .execute(ex)
    .await?;
    Ok(())
}

/// A staff member as a registry person, with no phone or ID number.
pub async fn insert_staff_person<'e>(
    ex: impl PgExecutor<'e>,
    id: Uuid,
    name: &str,
    home_code: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO persons (id, name, role, phone_masked, id_number_masked, home_code, subsidy_eligible, \
         eligibility_source) VALUES ($1, $2, $4, '', '', $3, FALSE, '')",
    )
    .bind(id)
    .bind(name)
    .bind(home_code)
    .bind(kit::vocab::PersonRole::Staff)
    .execute(ex)
    .await?;
    Ok(())
}

/// The username of `person`'s account, if the person has one.
pub async fn account_of_person<'e>(ex: impl PgExecutor<'e>, person: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT username FROM accounts WHERE person_id = $1").bind(person).fetch_optional(ex).await
}
