//! Sign-in's values: the policy (password rules, lockout, session and token lifetimes) and the parsing of
//! usernames, secrets, scope nodes and grants as callers send them. Proto-free and SQL-free.

use chrono::{DateTime, Utc};
use kit::auth::Role;
use kit::{FieldError, field};
use uuid::Uuid;

/// The sign-in policy; its defaults are SECURITY.md's common 等保 settings (see `Policy::from_env` for the
/// variables that change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub min_length: usize,
    pub min_classes: usize,
    pub history: i64,
    pub max_age_days: i64,
    pub lock_after: i32,
    pub lock_minutes: i64,
    pub idle_minutes: i64,
    pub session_hours: i64,
    pub access_secs: u64,
    /// An account unused this long is disabled at its next sign-in.
    pub dormant_days: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_length: 8,
            min_classes: 3,
            history: 5,
            max_age_days: 90,
            lock_after: 5,
            lock_minutes: 30,
            idle_minutes: 30,
            session_hours: 12,
            access_secs: 300,
            dormant_days: 90,
        }
    }
}

/// An account as sign-in sees it: its holder, its password and second factor, and what locks it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub person_id: Uuid,
    pub display_name: String,
    pub password_hash: String,
    pub password_changed_at: DateTime<Utc>,
    pub must_change: bool,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: i64,
    pub failed_count: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The last sign-in, or the account's creation if it never signed in.
    pub last_active_at: DateTime<Utc>,
}

/// A secret field: bounded, never trimmed (spaces may be part of a password), never echoed.
pub fn secret<'a>(name: &str, value: &'a str) -> Result<&'a str, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(name, "is required"));
    }
    if value.len() > 256 || value.contains('\0') {
        return Err(FieldError::new(name, "must be at most 256 bytes without NUL"));
    }
    Ok(value)
}

pub fn username(value: &str) -> Result<&str, FieldError> {
    let v = field::text("username", value, 64)?;
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)) {
        return Err(FieldError::new("username", "letters, digits and . _ - @ only"));
    }
    Ok(v)
}

/// A client id: spelled as a username, refused under its own name.
pub fn client_id(value: &str) -> Result<&str, FieldError> {
    username(value).map_err(|_| FieldError::new("client_id", "is not a client id"))
}

/// A one-time code: at most 8 characters, empty when none is sent.
pub fn otp(value: &str) -> Result<&str, FieldError> {
    field::bounded("otp", value, 8)
}

/// A scope node: `*`, a 12-digit division code, or a grid code (15 or 18 digits).
pub fn scope(name: &str, value: &str) -> Result<String, FieldError> {
    let v = field::required(name, value)?;
    let ok = v == "*" || kit::division::is_node_code(v);
    if !ok {
        return Err(FieldError::new(name, "must be *, a 12-digit division code or a grid code"));
    }
    Ok(v.to_owned())
}

/// A new grant as the security administrator asks for it.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub username: String,
    pub role: Role,
    pub scope: String,
    pub unit: String,
    pub valid_to: Option<DateTime<Utc>>,
}

impl NewGrant {
    /// A grant of `role` over `node` to `user`: the service role is never granted to an account; a handler or
    /// unit lead needs a unit.
    pub fn parse(user: &str, role: &str, node: &str, unit: &str, valid_to: &str) -> Result<Self, FieldError> {
        let role = Role::parse("role", role)?;
        if role == Role::Service {
            return Err(FieldError::new("role", "the service role is never granted to an account"));
        }
        let unit = field::bounded("unit", unit, 64)?.to_owned();
        if matches!(role, Role::Handler | Role::UnitLead) && unit.is_empty() {
            return Err(FieldError::new("unit", "is required for a handler or unit lead"));
        }
        let valid_to = match valid_to.trim() {
            "" => None,
            t => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|_| FieldError::new("valid_to", "must be an RFC 3339 time"))?
                    .to_utc(),
            ),
        };
        Ok(NewGrant { username: username(user)?.to_owned(), role, scope: scope("scope", node)?, unit, valid_to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_fields_name_what_they_refuse() {
        assert_eq!(secret("password", " pass word "), Ok(" pass word "), "a secret is not trimmed");
        for bad in ["", "a\0b", &"x".repeat(257)] {
            assert_eq!(secret("password", bad).unwrap_err().field, "password", "{bad:?}");
        }
        assert_eq!(username(" ops.admin@x "), Ok("ops.admin@x"));
        for bad in ["", "张三", "a b", "😀", "a\0", &"a".repeat(65)] {
            assert_eq!(username(bad).unwrap_err().field, "username", "{bad:?}");
        }
        assert_eq!(client_id("a b").unwrap_err().field, "client_id");
        assert_eq!(otp("123456789").unwrap_err().field, "otp");
        for (value, ok) in
            [("*", true), ("532901000000", true), ("532901003001002", true), ("5329", false), ("", false)]
        {
            assert_eq!(scope("scope", value).is_ok(), ok, "{value:?}");
        }
    }

    #[test]
    fn grants_are_checked_before_anything_is_written() {
        /// username, role, scope, unit, valid_to.
        const OK: [&str; 5] = ["clerk1", "intake_clerk", "532901000000", "", ""];
        let grant = |i: usize, value: &str| {
            let mut f = OK;
            f[i] = value;
            NewGrant::parse(f[0], f[1], f[2], f[3], f[4]).err().map(|e| e.field)
        };
        assert_eq!(grant(0, OK[0]), None);
        for (field, i, value) in [
            ("role", 1, "service"),
            ("role", 1, "king"),
            ("unit", 1, "handler"),
            ("valid_to", 4, "next week"),
            ("username", 0, "a b"),
            ("scope", 2, "53"),
        ] {
            assert_eq!(grant(i, value).as_deref(), Some(field), "{value:?}");
        }
        assert_eq!(Policy::default().lock_after, 5);
    }
}
