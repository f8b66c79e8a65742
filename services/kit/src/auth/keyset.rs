//! A whole deployment's keys made on the spot, for the demo suite, benchmarks and tests.

use super::{AuthConfig, Claims, Grant, Role, Signer, Trust, revocation, token};

/// A whole deployment's keys made on the spot: the issuer's and one per service, and the JWKS trusting them.
/// For the demo suite, benchmarks and tests; a real deployment keeps its keys in Secrets.
#[derive(Clone)]
pub struct KeySet {
    pub issuer_seed: [u8; 32],
    pub issuer_kid: String,
    pub services: std::collections::HashMap<String, [u8; 32]>,
    pub jwks: token::JwkSet,
    pub issuer: String,
    pub audience: String,
    /// Subjects the security policy lets hold handler grants over every unit (see [`Trust`]); none by default.
    pub wide_grant_subjects: Vec<String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("issuer_kid", &self.issuer_kid).finish_non_exhaustive()
    }
}

/// The services that hold keys of their own.
pub const SERVICES: &[&str] = &["intake", "routing", "registry", "supervision", "subsidy", "gateway"];

impl KeySet {
    pub fn generate(issuer_kid: &str, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let issuer_seed = token::random_seed();
        let mut keys = vec![Signer::from_seed(issuer_kid, &issuer_seed, issuer, audience).jwk()?];
        let mut services = std::collections::HashMap::new();
        for name in SERVICES {
            let seed = token::random_seed();
            keys.push(Signer::from_seed(&format!("service:{name}"), &seed, issuer, audience).jwk()?);
            services.insert((*name).to_owned(), seed);
        }
        Ok(Self {
            issuer_seed,
            issuer_kid: issuer_kid.to_owned(),
            services,
            jwks: token::JwkSet { keys },
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            wide_grant_subjects: Vec::new(),
        })
    }

    pub fn issuer_signer(&self) -> Signer {
        Signer::from_seed(&self.issuer_kid, &self.issuer_seed, &self.issuer, &self.audience)
    }

    /// A person's token from this set's issuer with `grants` (role, scope) and a second factor, valid an hour.
    pub fn token(&self, person_id: &str, grants: &[(Role, &str)]) -> anyhow::Result<String> {
        let now = token::now_secs();
        self.issuer_signer().sign(Claims {
            iss: String::new(),
            aud: String::new(),
            sub: format!("person:{person_id}"),
            exp: now + 3600,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            person: person_id.to_owned(),
            name: person_id.to_owned(),
            grants: grants
                .iter()
                .map(|(r, s)| Grant { role: r.as_str().into(), scope: (*s).into(), unit: String::new() })
                .collect(),
            amr: vec!["pwd".into(), "otp".into()],
            sid: String::new(),
        })
    }

    /// The trust settings and own key `service` runs with (the registry also holds the issuer's key).
    pub fn auth(&self, service: &str) -> AuthConfig {
        AuthConfig {
            trust: Trust {
                jwks: self.jwks.clone(),
                jwks_url: None,
                refresh_secs: 300,
                jwks_issuer: self.issuer.clone(),
                jwks_ca: None,
                issuers: vec![self.issuer.clone()],
                audience: self.audience.clone(),
                leeway_secs: 30,
                wide_grant_subjects: self.wide_grant_subjects.clone(),
            },
            issuer: self.issuer.clone(),
            service_seed: self.services.get(service).copied(),
            issuer_key: (service == "registry").then(|| (self.issuer_kid.clone(), self.issuer_seed)),
            revocations_url: None,
            revocation_poll: revocation::DEFAULT_POLL,
            trusted_proxies: crate::proxies::Proxies::default(),
            server_tls: None,
        }
    }
}
