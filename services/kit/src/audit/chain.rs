//! The hash chain: the key, the canonical encoding of a record and its HMAC-SM3.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};

use super::AuditEntry;

type HmacSm3 = hmac::Hmac<sm3::Sm3>;

/// The length of an SM3 digest, and so of every hash in the chain.
pub const HASH_LEN: usize = 32;

/// The first record's prev_hash.
pub const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

/// Tags the encoding, so a chain hash can never be mistaken for another use of the same key (page tokens).
const RECORD_DOMAIN: &[u8] = b"zongzhi.audit.v1.record";
const TOKEN_DOMAIN: &[u8] = b"zongzhi.audit.v1.page_token";

/// The chain key. Keyed rather than plain hashes, so that someone who can rewrite the table and recompute SM3
/// still cannot produce a chain that verifies.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// The development key: the demo suite and tests run with it, and say so; a deployment must set AUDIT_KEY.
pub const DEV_KEY: [u8; 32] = *b"zongzhi-dev-audit-key-not-secret";

impl AuditKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The key from AUDIT_KEY (64 hex digits); without it a service does not start, since a chain keyed with
    /// a known key proves nothing.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("AUDIT_KEY") {
            Ok(hex) if !hex.trim().is_empty() => Self::from_hex(hex.trim())
                .ok_or_else(|| anyhow::anyhow!("environment variable AUDIT_KEY: expected 64 hex digits")),
            _ => anyhow::bail!("AUDIT_KEY is unset: set it to 64 hex digits (the key of the audit hash chain)"),
        }
    }

    /// The development key (demo and tests only).
    pub fn dev() -> Self {
        Self(DEV_KEY)
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(key))
    }

    fn mac(&self) -> HmacSm3 {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps it panic-free regardless.
        <HmacSm3 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| <HmacSm3 as KeyInit>::new(&Default::default()))
    }

    /// The chain hash of one record: HMAC-SM3(key, domain ‖ prev_hash ‖ seq ‖ at ‖ every field).
    pub fn record_hash(&self, prev_hash: &[u8], seq: i64, at: DateTime<Utc>, entry: &AuditEntry) -> [u8; HASH_LEN] {
        let mut mac = self.mac();
        mac.update(&canonical(prev_hash, seq, at, entry));
        mac.finalize().into_bytes().into()
    }

    /// A short tag binding a page token to this key, so a token is only accepted if this service issued it.
    pub(crate) fn token_tag(&self, seq: i64) -> [u8; 8] {
        let mut mac = self.mac();
        mac.update(TOKEN_DOMAIN);
        mac.update(&seq.to_be_bytes());
        let full: [u8; HASH_LEN] = mac.finalize().into_bytes().into();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&full[..8]);
        tag
    }
}

/// The canonical encoding: fixed-width integers and length-prefixed byte strings in a fixed order, so no two
/// different records encode alike (moving a character from one field to the next changes the lengths).
pub fn canonical(prev_hash: &[u8], seq: i64, at: DateTime<Utc>, e: &AuditEntry) -> Vec<u8> {
    let fields = e.fields();
    let size = RECORD_DOMAIN.len() + 4 + prev_hash.len() + 16 + fields.iter().map(|f| 4 + f.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    put(&mut out, RECORD_DOMAIN);
    put(&mut out, prev_hash);
    out.extend_from_slice(&seq.to_be_bytes());
    // PostgreSQL keeps microseconds, so the time is hashed at exactly the precision it is stored at.
    out.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    for f in fields {
        put(&mut out, f.as_bytes());
    }
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fields longer than 4 GiB cannot reach here (PostgreSQL TEXT stops at 1 GB); saturate rather than wrap.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sm3_matches_openssl() {
        // `echo -n abc | openssl dgst -sm3 -hmac key`
        let mut mac = <HmacSm3 as KeyInit>::new_from_slice(b"key").unwrap();
        mac.update(b"abc");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "28e63256e7c5a087b1f073265dc53092163f7b82729735d06f28f10af9d52393"
        );
    }

    #[test]
    fn encoding_separates_fields() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let a = AuditEntry { actor: "ab".into(), role: "c".into(), ..Default::default() };
        let b = AuditEntry { actor: "a".into(), role: "bc".into(), ..Default::default() };
        assert_ne!(canonical(&GENESIS, 1, at, &a), canonical(&GENESIS, 1, at, &b));
        let key = AuditKey::new([7; 32]);
        assert_ne!(key.record_hash(&GENESIS, 1, at, &a), key.record_hash(&GENESIS, 2, at, &a));
        assert_ne!(key.record_hash(&GENESIS, 1, at, &a), AuditKey::new([8; 32]).record_hash(&GENESIS, 1, at, &a));
    }

    #[test]
    fn key_must_be_64_hex_digits() {
        assert!(AuditKey::from_hex(&"0f".repeat(32)).is_some());
        assert!(AuditKey::from_hex(&"0f".repeat(31)).is_none());
        assert!(AuditKey::from_hex(&"zz".repeat(32)).is_none());
        assert!(AuditKey::from_hex(&"é".repeat(32)).is_none());
    }
}
