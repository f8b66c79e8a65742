//! The secrets of sign-in: argon2id password hashes, the password rules, TOTP (RFC 6238) codes, and random
//! tokens stored only as their SHA-256.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;

/// An argon2id hash (PHC string) with the crate's default cost (19 MiB, 2 passes), as OWASP recommends.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash nobody's password matches, verified against when the username is unknown so that an unknown
/// username costs the same time as a wrong password (no account enumeration by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-used").unwrap_or_default())
}

/// What is wrong with a new password under the policy (length and character classes), if anything.
pub fn weakness(password: &str, min_length: usize, min_classes: usize) -> Option<String> {
    if password.chars().count() < min_length {
        return Some(format!("must have at least {min_length} characters"));
    }
    if password.chars().count() > 128 || password.contains('\0') {
        return Some("must have at most 128 characters and no NUL".into());
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    let n = classes.iter().filter(|c| **c).count();
    (n < min_classes).then(|| format!("must mix at least {min_classes} of: lower case, upper case, digits, symbols"))
}

/// A random token for a client to hold (URL-safe base64 of 32 bytes) and the SHA-256 we keep of it.
pub fn random_token() -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// A fresh TOTP secret: 20 random bytes (160 bits, as RFC 4226 recommends).
pub fn totp_secret() -> anyhow::Result<Vec<u8>> {
    let mut secret = vec![0u8; 20];
    getrandom::getrandom(&mut secret)?;
    Ok(secret)
}

/// The six-digit code for a 30-second time step (RFC 6238 with HMAC-SHA1, which authenticator apps use).
pub fn totp_code(secret: &[u8], step: u64) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret) else { return String::new() };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The time step a code matches, allowing one step of clock drift either way.
pub fn totp_match(secret: &[u8], code: &str, now_secs: u64) -> Option<u64> {
    let now = now_secs / 30;
    [now, now.saturating_sub(1), now + 1]
        .into_iter()
        .find(|step| constant_eq(totp_code(secret, *step).as_bytes(), code.trim().as_bytes()))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 4648 base32 without padding, as authenticator apps take secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(ALPHABET[((buffer >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890", 8 digits there; the last six here.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59 / 30), "287082");
        assert_eq!(totp_code(secret, 1_111_111_109 / 30), "081804");
        assert_eq!(totp_match(secret, "287082", 59), Some(1));
        assert_eq!(totp_match(secret, "287083", 59), None);
    }

    #[test]
    fn password_rules() {
        assert!(weakness("short1A", 8, 3).is_some());
        assert!(weakness("alllowercase", 8, 3).is_some());
        assert!(weakness("Lower-and-Upper", 8, 3).is_none());
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}
