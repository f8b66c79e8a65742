//! Bearer tokens: JWTs verified against a JWKS (any OIDC issuer, the embedded one, and each service's own key),
//! and signed with Ed25519 seeds from the environment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal};
// The seeds are `ed25519`'s; callers keep reading them as `kit::auth::token::…`.
pub use crate::ed25519::{parse_seed, random_seed, seed_hex};

/// The claims Zongzhi reads and writes. An external issuer's tokens need `sub`, `iss`, `aud`, `exp` and the
/// `grants` claim (a claim mapper in Keycloak and the like); the rest is optional.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub nbf: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default)]
    pub jti: String,
    /// The registry person behind a person's account (the actor recorded on cases); empty for clients.
    #[serde(default)]
    pub person: String,
    /// A display name for timelines (a staff member's name, never a citizen's).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Authentication methods: `pwd`, `otp` (or `mfa` from an external issuer).
    #[serde(default)]
    pub amr: Vec<String>,
    /// The sign-in session (refresh family) the token was issued in.
    #[serde(default)]
    pub sid: String,
}

/// A role over a node of the tree (a division or grid code; `*` for the whole deployment), or over a unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub role: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// What the verifier trusts: the keys, the issuers and the audience; clock skew allowed on `exp` and `nbf`.
#[derive(Debug, Clone)]
pub struct Trust {
    pub jwks: JwkSet,
    /// A JWKS document to fetch as well (an identity provider's), re-read every `refresh_secs` so its key
    /// rotations are followed; `https://` only, the server checked against `jwks_ca` (a PEM file of CAs) or
    /// the platform's roots.
    pub jwks_url: Option<String>,
    pub refresh_secs: u64,
    /// The one issuer the fetched keys vouch for: a provider's key cannot sign tokens of another issuer.
    pub jwks_issuer: String,
    pub jwks_ca: Option<std::path::PathBuf>,
    pub issuers: Vec<String>,
    pub audience: String,
    pub leeway_secs: u64,
    /// The subjects (`person:<id>`, `client:<id>`) the security policy names as holding handler grants over
    /// every unit or the whole deployment (AUTH_WIDE_GRANT_SUBJECTS); anyone else's token with one is refused.
    pub wide_grant_subjects: Vec<String>,
}

/// Only asymmetric algorithms: a verifier that holds public keys must never accept HMAC (whose "secret" would
/// be the public key) or `none`.
const ALLOWED: &[Algorithm] = &[
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The longest bearer token looked at; anything longer is refused before parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Verified tokens are remembered until they expire, so a client's repeated calls cost a lookup, not a
/// signature check; the cache is emptied when it reaches this size.
const CACHE_LIMIT: usize = 20_000;

type Keys = HashMap<String, (DecodingKey, Validation)>;

pub struct Verifier {
    trust: Trust,
    keys: std::sync::RwLock<Arc<Keys>>,
    cache: Mutex<HashMap<Box<str>, Arc<Principal>>>,
    /// Ended tokens by subject: any token of the subject issued at or before the time is refused, cached or
    /// not ([`super::revocation`] keeps it current).
    revoked: std::sync::RwLock<HashMap<Box<str>, u64>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("kids", &self.keys().keys().collect::<Vec<_>>()).finish()
    }
}

impl Verifier {
    /// Refuses a key set it cannot use safely: a key without `kid`, a symmetric key, an algorithm off the list.
    /// With a JWKS URL, the keys there are added by [`Verifier::load`].
    pub fn new(trust: &Trust) -> anyhow::Result<Self> {
        let keys = decode_keys(trust, &trust.jwks)?;
        if keys.is_empty() && trust.jwks_url.is_none() {
            anyhow::bail!("the JWKS has no keys");
        }
        Ok(Self {
            trust: trust.clone(),
            keys: std::sync::RwLock::new(Arc::new(keys)),
            cache: Mutex::new(HashMap::new()),
            revoked: std::sync::RwLock::new(HashMap::new()),
        })
    }

    /// A verifier with the JWKS URL's keys fetched once (the service does not start without them).
    pub async fn load(trust: &Trust) -> anyhow::Result<Self> {
        let verifier = Self::new(trust)?;
        verifier.refresh().await?;
        Ok(verifier)
    }

    /// Re-reads the JWKS URL (if any): its keys replace the URL's previous ones, the configured ones stay, and
    /// remembered tokens are forgotten so a withdrawn key stops counting at once. A fetched key that cannot be
    /// trusted ([`fetched_key`]) is left out with a warning, and the rest of the set is used: a stock provider
    /// publishes encryption keys beside its signing keys.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let Some(url) = &self.trust.jwks_url else { return Ok(()) };
        let fetched = super::jwks::fetch(url, self.trust.jwks_ca.as_deref()).await?;
        let configured = decode_keys(&self.trust, &self.trust.jwks)?;
        let mut keys = configured.clone();
        for jwk in &fetched {
            match fetched_key(&self.trust, &configured, jwk) {
                Ok((kid, key)) => {
                    keys.insert(kid, key);
                }
                Err(why) => tracing::warn!(%url, %why, "a key of the fetched JWKS is left out"),
            }
        }
        if keys.is_empty() {
            anyhow::bail!("no usable keys at {url}");
        }
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        Ok(())
    }

    /// Keeps the URL's keys current until shutdown; a failed fetch keeps the keys it had, with a warning.
    pub async fn follow(self: Arc<Self>, mut shutdown: crate::shutdown::Shutdown) -> anyhow::Result<()> {
        if self.trust.jwks_url.is_none() {
            // Nothing to follow, but a task that ends early reads as a failure to the running service.
            shutdown.wait().await;
            return Ok(());
        }
        let every = std::time::Duration::from_secs(self.trust.refresh_secs.max(10));
        loop {
            tokio::select! {
                () = shutdown.wait() => return Ok(()),
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys in hand");
            }
        }
    }

    fn keys(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The configured keys, every one usable or the set is refused (the operator wrote it), each vouching for
/// any trusted issuer.
fn decode_keys(trust: &Trust, jwks: &JwkSet) -> anyhow::Result<Keys> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let (kid, key) = decode_key(trust, jwk, &trust.issuers)?;
        keys.insert(kid, key);
    }
    Ok(keys)
}

/// A key with its validation: algorithm from the key, the audience, `issuers`, and the required claims.
fn decode_key(trust: &Trust, jwk: &Jwk, issuers: &[String]) -> anyhow::Result<(String, (DecodingKey, Validation))> {
    let kid = jwk.common.key_id.clone().ok_or_else(|| anyhow::anyhow!("a JWKS key has no kid"))?;
    let alg = key_algorithm(jwk).map_err(|e| anyhow::anyhow!("JWKS key {kid}: {e}"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| anyhow::anyhow!("JWKS key {kid}: {e}"))?;
    let mut v = Validation::new(alg);
    v.leeway = trust.leeway_secs;
    v.validate_nbf = true;
    v.set_audience(&[&trust.audience]);
    v.set_issuer(issuers);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    Ok((kid, (key, v)))
}

/// A fetched key as the verifier will use it, or why it is left out: it may not stand in for a configured kid
/// or any service's (`service:…`), which only the deployment's own files name; it must be a signing key of a
/// supported type; and it vouches only for the provider's issuer (`jwks_issuer`).
fn fetched_key(trust: &Trust, configured: &Keys, jwk: &Jwk) -> Result<(String, (DecodingKey, Validation)), String> {
    let kid = jwk.common.key_id.clone().ok_or("a key without a kid")?;
    if kid.starts_with("service:") || configured.contains_key(&kid) {
        return Err(format!("key {kid}: a fetched key may not replace a configured or service key"));
    }
    if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) {
        return Err(format!("key {kid}: an encryption key, not a signing key"));
    }
    decode_key(trust, jwk, std::slice::from_ref(&trust.jwks_issuer)).map_err(|e| e.to_string())
}

impl Verifier {
    /// The principal a bearer token proves, or why not.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let now = now_secs();
        if let Some(p) = self.cached(token, now) {
            return self.unrevoked(p);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let keys = self.keys();
        let (key, validation) = keys.get(&kid).ok_or(AuthError::UnknownKey)?;
        if header.alg != validation.algorithms[0] {
            return Err(AuthError::Algorithm);
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidIssuer => AuthError::Issuer,
                K::InvalidAudience => AuthError::Audience,
                K::InvalidSignature => AuthError::Signature,
                K::InvalidAlgorithm => AuthError::Algorithm,
                _ => AuthError::Malformed,
            }
        })?;
        let principal = Arc::new(Principal::from_claims(data.claims, &kid)?);
        // 三权分立 whoever issued the token: the embedded issuer refuses such grants when they are set, and a
        // token from an identity provider or any other key is held to the same rules here.
        let wide = self.trust.wide_grant_subjects.iter().any(|s| *s == principal.subject);
        if let Some(why) = super::policy::duties_broken(&principal.grants, wide) {
            tracing::warn!(subject = %principal.subject, why, "token refused: its grants break the separation of duties");
            return Err(AuthError::Duties(why));
        }
        self.remember(token, principal.clone());
        self.unrevoked(principal)
    }

    /// Ends every token of `subject` issued at or before `not_before` (Unix seconds). A later revocation of the
    /// same subject moves the time forward; an earlier one arriving late never moves it back.
    pub fn revoke(&self, subject: &str, not_before: u64) {
        let mut revoked = self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = revoked.entry(subject.into()).or_insert(0);
        *at = (*at).max(not_before);
    }

    /// Forgets revocations older than `horizon` (Unix seconds): every token they ended has expired since.
    pub fn forget_revocations_before(&self, horizon: u64) {
        let mut revoked = self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        revoked.retain(|_, at| *at >= horizon);
    }

    fn unrevoked(&self, principal: Arc<Principal>) -> Result<Arc<Principal>, AuthError> {
        let revoked = self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match revoked.get(principal.subject.as_str()) {
            // Seconds are the tokens' own precision: a token issued in the second of the revocation is ended
            // too, so none minted just before it slips through; the registry dates a token minted after it in
            // that second one second later (`issue_time`).
            Some(&not_before) if principal.issued_at <= not_before => Err(AuthError::Revoked),
            _ => Ok(principal),
        }
    }

    fn cached(&self, token: &str, now: u64) -> Option<Arc<Principal>> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A remembered token is still checked for expiry; skew is allowed only on the first check.
        cache.get(token).filter(|p| p.expires_at > now).cloned()
    }

    fn remember(&self, token: &str, principal: Arc<Principal>) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(token.into(), principal);
    }
}

/// A JWK's algorithm: its `alg` when given, else the only one its key type allows; never a symmetric one.
fn key_algorithm(jwk: &Jwk) -> anyhow::Result<Algorithm> {
    let derived = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Algorithm::ES384,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => anyhow::bail!("unsupported key type (symmetric keys are never trusted)"),
    };
    let alg = match jwk.common.key_algorithm {
        Some(a) => Algorithm::try_from(a).map_err(|_| anyhow::anyhow!("unsupported alg"))?,
        None => derived,
    };
    // A key's alg must match its type: an RSA `alg` on an Ed25519 key would only ever fail, or worse.
    if alg.family() != derived.family() {
        anyhow::bail!("alg {alg:?} does not fit the key type");
    }
    if !ALLOWED.contains(&alg) {
        anyhow::bail!("algorithm {alg:?} is not allowed");
    }
    Ok(alg)
}

pub(crate) fn now_secs() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

/// Signs tokens with an Ed25519 key given as its 32-byte seed.
#[derive(Clone)]
pub struct Signer {
    kid: String,
    key: EncodingKey,
    pub issuer: String,
    pub audience: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    pub fn from_seed(kid: &str, seed: &[u8; 32], issuer: &str, audience: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            key: crate::ed25519::encoding_key(seed),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as the JWK others trust.
    pub fn jwk(&self) -> anyhow::Result<Jwk> {
        let mut jwk = Jwk::from_encoding_key(&self.key, Algorithm::EdDSA)?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(jwk)
    }

    /// A token for `claims`, with this signer's issuer and audience filled in.
    pub fn sign(&self, mut claims: Claims) -> anyhow::Result<String> {
        claims.iss.clone_from(&self.issuer);
        claims.aud.clone_from(&self.audience);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}
