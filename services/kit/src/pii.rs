//! Personal data (个人信息): masking for every response and log line.

/// `138****5678`: the first three and last four digits of an 11-digit mobile number.
pub fn mask_phone(phone: &str) -> String {
    mask(phone, 3, 4)
}

/// `5329**********1234`: the first four and last four characters of an ID number.
pub fn mask_id_number(id: &str) -> String {
    mask(id, 4, 4)
}

/// `张*` / `欧阳**`: the first character of a name, the rest hidden, for readers outside the center (another
/// system's status view).
pub fn mask_name(name: &str) -> String {
    mask(name, 1, 0)
}

fn mask(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// An 11-digit mainland mobile number starting with 1.
pub fn valid_phone(phone: &str) -> bool {
    phone.len() == 11 && phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit())
}

/// An 18-character resident ID number (GB 11643) with a correct ISO 7064 MOD 11-2 check character.
pub fn valid_id_number(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    bytes[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_id_number("532901199001011234"), "5329**********1234");
        assert_eq!(mask_phone("123"), "***");
    }

    #[test]
    fn id_number_check_digit() {
        assert!(valid_id_number("11010519491231002X"));
        assert!(!valid_id_number("110105194912310021"));
        assert!(!valid_id_number("1101051949123100"));
    }
}

/// Encrypts personal data at rest with SM4 (GB/T 32907) in GCM mode, so a row copied out of the database
/// reveals nothing and a tampered one fails to open. The stored form is a format byte, the key's id (4 bytes, so
/// keys can rotate: values sealed under a retired key still open while it is kept), the nonce (12 bytes), then
/// ciphertext and tag. Each value is bound to its table, column and row as associated data: copied to another
/// row or column it no longer opens.
#[derive(Clone)]
pub struct Sealer {
    current: SealKey,
    retired: Vec<SealKey>,
    /// Keys [`Sealer::fingerprint`]; the current key's secret.
    key: [u8; 16],
}

#[derive(Clone)]
struct SealKey {
    id: [u8; 4],
    cipher: aes_gcm::AesGcm<sm4::Sm4, aes_gcm::aead::consts::U12>,
}

impl SealKey {
    fn new(key: [u8; 16]) -> Self {
        use aes_gcm::KeyInit;
        use sha2::Digest;
        // The id names the key without revealing it: a hash of it under a fixed label.
        let digest = sha2::Sha256::new().chain_update(b"zongzhi.pii.key-id").chain_update(key).finalize();
        Self { id: [digest[0], digest[1], digest[2], digest[3]], cipher: aes_gcm::AesGcm::new(&key.into()) }
    }
}

/// Where a sealed value lives; authenticated with it.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("zongzhi.pii.v1|{}|{}|{}", self.table, self.column, self.row).into_bytes()
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The development key: the demo suite and tests run with it, and say so; a deployment must set PII_KEY.
pub const DEV_KEY: [u8; 16] = *b"zongzhi-dev-key!";

/// The first byte of every sealed value in this format.
const FORMAT: u8 = 1;

impl Sealer {
    pub fn new(key: [u8; 16]) -> Self {
        Self { current: SealKey::new(key), retired: vec![], key }
    }

    /// Also opens values sealed under these earlier keys (after a rotation, until every value is resealed).
    pub fn with_retired(mut self, keys: &[[u8; 16]]) -> Self {
        self.retired = keys.iter().map(|k| SealKey::new(*k)).collect();
        self
    }

    /// A keyed digest (HMAC-SHA-256 under the PII key) of `parts`, to compare records that hold personal data
    /// without storing it: a plain hash of a record whose only unknowns are a phone or ID number could be
    /// reversed by trying every number. Each part is length-prefixed, so no two part lists collide.
    pub fn fingerprint(&self, parts: &[&str]) -> Vec<u8> {
        use hmac::{KeyInit, Mac};
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(b"zongzhi.fingerprint.v1");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// The key from PII_KEY (32 hex digits); without it a service does not start, since personal data
    /// sealed with a known key is not sealed at all.
    pub fn key_from_env() -> anyhow::Result<[u8; 16]> {
        let hex = std::env::var("PII_KEY").unwrap_or_default();
        if hex.trim().is_empty() {
            anyhow::bail!("PII_KEY is unset: set it to 32 hex digits (the SM4 key sealing phone and ID numbers)");
        }
        parse_key("PII_KEY", hex.trim())
    }

    /// PII_RETIRED_KEYS: earlier keys (comma-separated, 32 hex digits each) that still open old values.
    pub fn retired_from_env() -> anyhow::Result<Vec<[u8; 16]>> {
        let list = std::env::var("PII_RETIRED_KEYS").unwrap_or_default();
        list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| parse_key("PII_RETIRED_KEYS", k)).collect()
    }

    pub fn seal(&self, plain: &str, at: &Binding<'_>) -> Vec<u8> {
        use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
        let nonce = aes_gcm::AesGcm::<sm4::Sm4, aes_gcm::aead::consts::U12>::generate_nonce(&mut OsRng);
        let mut out = vec![FORMAT];
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        let aad = at.aad();
        // Encryption into a Vec cannot fail for inputs of this size.
        out.extend(
            self.current.cipher.encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: &aad }).unwrap_or_default(),
        );
        out
    }

    pub fn open(&self, sealed: &[u8], at: &Binding<'_>) -> anyhow::Result<String> {
        use aes_gcm::aead::{Aead, Payload};
        if sealed.len() < 1 + 4 + 12 + 16 || sealed[0] != FORMAT {
            anyhow::bail!("sealed value in an unknown format");
        }
        let (id, rest) = sealed[1..].split_at(4);
        let (nonce, ct) = rest.split_at(12);
        let key = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.id == id)
            .ok_or_else(|| anyhow::anyhow!("sealed under a key this service no longer holds"))?;
        let aad = at.aad();
        let plain = key
            .cipher
            .decrypt(nonce.into(), Payload { msg: ct, aad: &aad })
            .map_err(|_| anyhow::anyhow!("sealed value does not open here (wrong key, row or column, or tampered)"))?;
        Ok(String::from_utf8(plain)?)
    }
}

fn parse_key(var: &str, hex: &str) -> anyhow::Result<[u8; 16]> {
    let bytes = decode_hex(hex)
        .filter(|b| b.len() == 16)
        .ok_or_else(|| anyhow::anyhow!("environment variable {var}: expected 32 hex digits"))?;
    let mut key = [0u8; 16];
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sealer_tests {
    use super::*;

    const AT: Binding<'static> = Binding { table: "case_parties", column: "phone", row: "case-1/0" };

    #[test]
    fn seals_and_opens_and_detects_tampering() {
        let s = Sealer::new(*b"0123456789abcdef");
        let sealed = s.seal("13812345678", &AT);
        assert!(!sealed.windows(11).any(|w| w == b"13812345678"));
        assert_eq!(s.open(&sealed, &AT).unwrap(), "13812345678");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(s.open(&bad, &AT).is_err());
        assert!(Sealer::new(*b"fedcba9876543210").open(&sealed, &AT).is_err());
    }

    #[test]
    fn a_value_is_bound_to_its_row_and_column_and_keys_rotate() {
        let old = Sealer::new(*b"0123456789abcdef");
        let sealed = old.seal("13812345678", &AT);
        assert!(old.open(&sealed, &Binding { row: "case-2/0", ..AT }).is_err(), "copied to another row");
        assert!(old.open(&sealed, &Binding { column: "id_number", ..AT }).is_err(), "copied to another column");
        let rotated = Sealer::new(*b"fedcba9876543210").with_retired(&[*b"0123456789abcdef"]);
        assert_eq!(rotated.open(&sealed, &AT).unwrap(), "13812345678", "a retired key still opens");
        let fresh = rotated.seal("13812345678", &AT);
        assert_ne!(fresh[1..5], sealed[1..5], "new values name the new key");
        assert!(old.open(&fresh, &AT).is_err());
    }

    #[test]
    fn fingerprints_are_keyed_and_part_boundaries_count() {
        let (a, b) = (Sealer::new(*b"0123456789abcdef"), Sealer::new(*b"fedcba9876543210"));
        assert_eq!(a.fingerprint(&["x", "y"]), a.fingerprint(&["x", "y"]));
        assert_ne!(a.fingerprint(&["x", "y"]), b.fingerprint(&["x", "y"]), "another key");
        assert_ne!(a.fingerprint(&["xy", ""]), a.fingerprint(&["x", "y"]), "the same bytes split elsewhere");
    }
}
