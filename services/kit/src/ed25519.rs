//! Ed25519 keys given as their 32-byte seeds (64 hex digits in the environment): the one place that turns a
//! seed into a signing key, for tokens (`auth`) and for audit anchors (`audit`) alike.

use jsonwebtoken::EncodingKey;

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the 32 bytes.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// The signing key of a seed.
pub fn encoding_key(seed: &[u8; 32]) -> EncodingKey {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(seed);
    EncodingKey::from_ed_der(&der)
}

/// A fresh random 32-byte seed (keys for the demo and tests; production keys come from the environment).
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // getrandom fails only where the OS has no randomness source; nothing can be signed safely then.
    getrandom::getrandom(&mut seed).expect("the operating system's random source");
    seed
}

/// A 32-byte seed from 64 hex digits.
pub fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

pub fn seed_hex(seed: &[u8; 32]) -> String {
    seed.iter().map(|b| format!("{b:02x}")).collect()
}
