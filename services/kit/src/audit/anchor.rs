//! Signed anchors: a chain's head pinned outside the database.
//!
//! The chain proves the records it holds, not that it holds all of them. Whoever can write the database (the
//! runtime role may move `audit_head`; a superuser may do anything) can cut the newest records and move the
//! head back, or delete the oldest ones, and what is left still verifies. An anchor pins the head at a moment:
//! the schema, the head's sequence number and hash and the time, signed with an Ed25519 key that no service
//! holds (AUDIT_ANCHOR_KEY, given only to the anchoring job) and appended as one JSON line to a file outside
//! the database. The verifier, given that file and the public key, checks every anchor against the chain: the
//! record it names is present with that hash, the head has not gone back behind the latest one, and a record
//! named by an anchor younger than the retention window has not been purged.
//!
//! Ed25519 rather than SM2: the signature code is the one already in the tree for tokens (jsonwebtoken's Rust
//! Crypto provider); no SM2 signature library is in it, and adding one for this alone was not worth the weight.

use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::chain::hex;
use super::store;

/// Tags what is signed, so an anchor signature can never stand for anything else signed with the same key.
const ANCHOR_DOMAIN: &[u8] = b"zongzhi.audit.v1.anchor";

/// One anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub schema: String,
    /// The head's sequence number and hash (hex) when the anchor was made.
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// The Ed25519 signature (base64url) over the fields above.
    pub sig: String,
}

/// An anchor as a line of the file: the time in RFC 3339 (UTC, microseconds: the precision signed).
#[derive(Serialize, Deserialize)]
struct Line {
    schema: String,
    seq: i64,
    hash: String,
    at: String,
    sig: String,
}

impl From<&Anchor> for Line {
    fn from(a: &Anchor) -> Self {
        Line {
            schema: a.schema.clone(),
            seq: a.seq,
            hash: a.hash.clone(),
            at: a.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            sig: a.sig.clone(),
        }
    }
}

impl TryFrom<Line> for Anchor {
    type Error = chrono::ParseError;

    fn try_from(l: Line) -> Result<Self, Self::Error> {
        let at = DateTime::parse_from_rfc3339(&l.at)?.with_timezone(&Utc);
        Ok(Anchor { schema: l.schema, seq: l.seq, hash: l.hash, at, sig: l.sig })
    }
}

/// The signing half, held only by the anchoring job.
pub struct AnchorKey {
    key: EncodingKey,
    public: String,
}

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl AnchorKey {
    pub fn from_seed(seed: &[u8; 32]) -> anyhow::Result<Self> {
        let key = crate::ed25519::encoding_key(seed);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::EdDSA)?;
        let public = match jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x,
            _ => anyhow::bail!("an Ed25519 seed gave another kind of key"),
        };
        Ok(Self { key, public })
    }

    /// The key from AUDIT_ANCHOR_KEY (64 hex digits, an Ed25519 seed).
    pub fn from_env() -> anyhow::Result<Self> {
        let hex = std::env::var("AUDIT_ANCHOR_KEY").unwrap_or_default();
        let seed = crate::ed25519::parse_seed(&hex)
            .ok_or_else(|| anyhow::anyhow!("AUDIT_ANCHOR_KEY must be 64 hex digits (an Ed25519 seed)"))?;
        Self::from_seed(&seed)
    }

    /// The public key (base64url, 43 characters), which the verifier is given as AUDIT_ANCHOR_PUBLIC_KEY.
    pub fn public(&self) -> &str {
        &self.public
    }

    pub fn sign(&self, schema: &str, seq: i64, hash: &[u8], at: DateTime<Utc>) -> anyhow::Result<Anchor> {
        let hash = hex(hash);
        // Signed at the precision the file keeps.
        let at = DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at);
        let sig = jsonwebtoken::crypto::sign(&message(schema, seq, &hash, at), &self.key, Algorithm::EdDSA)?;
        Ok(Anchor { schema: schema.to_owned(), seq, hash, at, sig })
    }
}

/// The checking half: the public key.
pub struct AnchorCheck(DecodingKey);

impl AnchorCheck {
    /// The key from its base64url form ([`AnchorKey::public`]).
    pub fn from_public(x: &str) -> anyhow::Result<Self> {
        Ok(Self(DecodingKey::from_ed_components(x.trim()).map_err(|e| anyhow::anyhow!("anchor public key: {e}"))?))
    }

    pub fn from_env() -> anyhow::Result<Self> {
        let x = std::env::var("AUDIT_ANCHOR_PUBLIC_KEY").unwrap_or_default();
        if x.trim().is_empty() {
            anyhow::bail!("AUDIT_ANCHOR_PUBLIC_KEY is unset: the anchor key's public half (`audit_anchor keygen`)");
        }
        Self::from_public(&x)
    }

    pub fn holds(&self, a: &Anchor) -> bool {
        let signed = message(&a.schema, a.seq, &a.hash, a.at);
        jsonwebtoken::crypto::verify(&a.sig, &signed, &self.0, Algorithm::EdDSA).unwrap_or(false)
    }
}

/// What is signed: the domain tag, then the fields length-prefixed in a fixed order (as the chain encodes).
fn message(schema: &str, seq: i64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::with_capacity(ANCHOR_DOMAIN.len() + schema.len() + hash.len() + 32);
    for part in [ANCHOR_DOMAIN, schema.as_bytes(), hash.as_bytes()] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    out
}

/// Signs the current head of the chain in `pool`'s schema.
pub async fn anchor(pool: &sqlx::PgPool, schema: &str, key: &AnchorKey) -> anyhow::Result<Anchor> {
    let (seq, hash) = store::head(pool).await?;
    key.sign(schema, seq, &hash, Utc::now())
}

/// Appends the anchor to the file as one line and flushes it to disk before returning.
pub fn append(path: &Path, anchor: &Anchor) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the anchor file {}: {e}", path.display()))?;
    let mut line = serde_json::to_vec(&Line::from(anchor))?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()?;
    Ok(())
}

/// The anchors of `schema` in the file, in order, every one checked against the public key. A line that does
/// not parse or whose signature does not hold is an error naming the line: someone wrote to the file who holds
/// no key, and the verifier must not quietly trust the rest.
pub fn read(path: &Path, schema: &str, check: &AnchorCheck) -> anyhow::Result<Vec<Anchor>> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read the anchor file {}: {e}", path.display()))?;
    let mut anchors = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let parsed = serde_json::from_str::<Line>(&line)
            .map_err(|e| e.to_string())
            .and_then(|l| Anchor::try_from(l).map_err(|e| format!("at: {e}")));
        let anchor = parsed.map_err(|e| anyhow::anyhow!("anchor file line {n} does not parse: {e}"))?;
        if !check.holds(&anchor) {
            anyhow::bail!("anchor file line {n}: the signature does not hold (not written by the anchor key)");
        }
        if anchor.schema == schema {
            anchors.push(anchor);
        }
    }
    Ok(anchors)
}
