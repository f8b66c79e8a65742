//! Who is calling, and over which part of the tree: bearer tokens verified at every service, the principal
//! they prove, and the scope each permission reaches. The matrix itself is in [`policy`].

pub mod jwks;
mod keyset;
pub mod layer;
pub mod policy;
pub mod reach;
pub mod revocation;
pub mod token;

use std::sync::{Arc, Mutex};

use tonic::Status;

pub use keyset::{KeySet, SERVICES};
pub use policy::{Access, Permission, Role, ScopeKind};
pub use reach::{Columns, Row, ScopeSql, UnitColumn};
pub use token::{Claims, Grant, Signer, Trust, Verifier};

/// Why a token was refused. Clients see UNAUTHENTICATED with this reason, which names no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("token algorithm not allowed")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token from an untrusted issuer")]
    Issuer,
    #[error("token for another audience")]
    Audience,
    #[error("a service key may speak only for its own service")]
    KeyMisuse,
    #[error("token revoked (the account was disabled or its password, grants or client secret changed); sign in again")]
    Revoked,
    #[error("token refused: its grants break the separation of duties ({0})")]
    Duties(&'static str),
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        Status::unauthenticated(e.to_string())
    }
}

/// What kind of caller a principal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Person,
    /// Another government system's client credential (its client id).
    Client(String),
    /// A Zongzhi service speaking for itself (its name).
    Service(String),
}

/// A grant whose role this deployment knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub role: Role,
    pub scope: String,
    pub unit: String,
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub kind: Kind,
    /// The registry person for a person's account; recorded as the actor on everything they do.
    pub person_id: String,
    pub name: String,
    pub grants: Vec<RoleGrant>,
    pub session: String,
    pub expires_at: u64,
    /// When the token was issued (`iat`, Unix seconds): a revocation ends the tokens issued before it.
    pub issued_at: u64,
}

impl Principal {
    /// Reads verified claims. A token signed by a service's key must name that service and nothing else; a
    /// person's or client's token can never carry the service role; administrator grants count only when the
    /// sign-in used a second factor.
    pub fn from_claims(claims: Claims, kid: &str) -> Result<Self, AuthError> {
        let service_key = kid.strip_prefix("service:");
        let service_sub = claims.sub.strip_prefix("service:");
        let kind = match (service_key, service_sub) {
            (Some(k), Some(s)) if k == s => Kind::Service(s.to_owned()),
            (None, None) => match claims.sub.strip_prefix("client:") {
                Some(id) => Kind::Client(id.to_owned()),
                None => Kind::Person,
            },
            _ => return Err(AuthError::KeyMisuse),
        };
        let second_factor = claims.amr.iter().any(|m| m == "otp" || m == "mfa");
        let grants = match &kind {
            Kind::Service(_) => vec![RoleGrant { role: Role::Service, scope: "*".into(), unit: String::new() }],
            _ => claims
                .grants
                .iter()
                .filter_map(|g| {
                    let role = Role::parse("role", &g.role).ok()?;
                    let allowed = role != Role::Service && (!role.is_admin() || second_factor);
                    allowed.then(|| RoleGrant { role, scope: g.scope.clone(), unit: g.unit.clone() })
                })
                .collect(),
        };
        Ok(Self {
            subject: claims.sub,
            kind,
            person_id: claims.person,
            name: claims.name,
            grants,
            session: claims.sid,
            expires_at: claims.exp,
            issued_at: claims.iat,
        })
    }

    /// The id recorded as the actor: the person, else the subject (a client or service).
    pub fn actor(&self) -> &str {
        if self.person_id.is_empty() { &self.subject } else { &self.person_id }
    }

    pub fn is_service(&self, name: &str) -> bool {
        matches!(&self.kind, Kind::Service(s) if s == name)
    }

    /// Whether any grant gives `permission` anywhere.
    pub fn has(&self, permission: Permission) -> bool {
        self.grants.iter().any(|g| policy::scope_of(g.role, permission).is_some())
    }

    /// Everywhere `permission` reaches, over all grants: the union that reads filter by and writes check.
    pub fn scope(&self, permission: Permission) -> ScopeSet {
        let mut set = ScopeSet::default();
        for g in &self.grants {
            match policy::scope_of(g.role, permission) {
                None => {}
                Some(ScopeKind::All) => set.all = true,
                Some(ScopeKind::Grid | ScopeKind::Center) if g.scope == "*" => set.all = true,
                Some(ScopeKind::Grid | ScopeKind::Center) => set.nodes.push(g.scope.clone()),
                Some(ScopeKind::Unit) if g.unit == "*" => set.all = true,
                Some(ScopeKind::Unit) => set.units.push(g.unit.clone()),
                Some(ScopeKind::OwnWork) => set.own = Some(self.actor().to_owned()),
                Some(ScopeKind::OwnClient) => {
                    set.client = Some(self.subject.clone());
                    // A client registers within the subtree its credential was issued for, and reads back only
                    // what it registered.
                    if permission == Permission::Register {
                        set.nodes.push(g.scope.clone());
                    }
                }
            }
        }
        // Only well-formed nodes count: a division code or a grid code. A grant from an outside issuer saying "5"
        // would otherwise prefix-match every grid of a province.
        set.nodes.retain(|n| crate::division::is_node_code(n));
        set.units.retain(|u| !u.is_empty());
        set
    }

    /// The grant a call was made under, for the audit record: the first role giving `permission`.
    pub fn grant_for(&self, permission: Permission) -> Option<&RoleGrant> {
        self.grants.iter().find(|g| policy::scope_of(g.role, permission).is_some())
    }
}

/// Where a permission reaches: tree nodes (division codes, or grid codes for grid scope), units, the
/// principal's own work, its own client's cases, or everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    pub all: bool,
    pub nodes: Vec<String>,
    pub units: Vec<String>,
    /// The actor id, when the permission reaches the principal's own work.
    pub own: Option<String>,
    /// The client subject, when the permission reaches cases its client submitted.
    pub client: Option<String>,
}

impl ScopeSet {
    /// A place is in scope when a scope node is on its area path (division codes) or is the grid or a grid
    /// above it (grid codes are their parent's code plus three digits).
    pub fn covers_place(&self, area_path: &[String], grid_code: &str) -> bool {
        self.all
            || self.nodes.iter().any(|n| {
                area_path.iter().any(|p| p == n) || (!grid_code.is_empty() && grid_code.starts_with(n.as_str()))
            })
    }

    pub fn covers_unit(&self, unit: &str) -> bool {
        self.all || (!unit.is_empty() && self.units.iter().any(|u| u == unit))
    }

    pub fn covers_actor(&self, actor: &str) -> bool {
        self.own.as_deref().is_some_and(|a| !actor.is_empty() && a == actor)
    }

    /// Whether a node (a center, a directive's target) lies in a tree scope: a scope node is the node or one
    /// of its ancestors (codes prefix their descendants' significant digits).
    pub fn covers_node(&self, code: &str) -> bool {
        self.all || self.nodes.iter().any(|n| n == code || crate::division::is_ancestor_or_self(n, code))
    }

    /// Whether the scope is the whole deployment or holds a node at `level` or above (1 province, 2
    /// prefecture, …): what a deployment-wide code table asks of whoever edits it.
    pub fn reaches_level(&self, level: u8) -> bool {
        self.all || self.nodes.iter().any(|n| crate::division::is_code(n) && crate::division::level(n) <= level)
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.nodes.is_empty() && self.units.is_empty() && self.own.is_none() && self.client.is_none()
    }
}

/// The verified principal of a call; the auth layer put it there, so its absence means the method was
/// public or the layer is missing, and either way nothing may be done in anyone's name.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Arc<Principal>, Status> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated(AuthError::Missing.to_string()))
}

/// PERMISSION_DENIED for a write outside the caller's role or scope.
pub fn denied(what: &str) -> Status {
    Status::permission_denied(format!("not permitted: {what}"))
}

/// The trust settings and this service's own key, from the environment.
#[derive(Clone)]
pub struct AuthConfig {
    pub trust: Trust,
    /// This deployment's own issuer id (`iss` of the embedded issuer's and services' tokens).
    pub issuer: String,
    /// The seed of this service's own key (its kid is `service:<name>`), for calls it makes itself.
    pub service_seed: Option<[u8; 32]>,
    /// The embedded issuer's key (the registry's sign-in): its seed and kid.
    pub issuer_key: Option<(String, [u8; 32])>,
    /// The registry whose revocation list this service follows ([`revocation`]); None for the registry itself
    /// (it reads its own table) and where nothing is followed.
    pub revocations_url: Option<String>,
    pub revocation_poll: std::time::Duration,
    /// The proxies whose X-Forwarded-For a service believes for the audit record's client address (the
    /// gateway's addresses or its pods' network): TRUSTED_PROXIES. None by default: the peer is the client.
    pub trusted_proxies: crate::proxies::Proxies,
    /// This server's certificate and key (GRPC_TLS_CERT, GRPC_TLS_KEY): with them it serves TLS only.
    pub server_tls: Option<crate::tls::ServerTls>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed is a secret: say only whether there is one.
        f.debug_struct("AuthConfig")
            .field("issuers", &self.trust.issuers)
            .field("audience", &self.trust.audience)
            .field("service_key", &self.service_seed.is_some())
            .field("issuer_key", &self.issuer_key.as_ref().map(|(kid, _)| kid))
            .finish()
    }
}

impl AuthConfig {
    /// AUTH_JWKS_FILE or AUTH_JWKS (inline) and/or AUTH_JWKS_URL (https; see [`Trust`]), AUTH_ISSUER (`zongzhi`),
    /// AUTH_TRUSTED_ISSUERS (more issuers, comma-separated), AUTH_AUDIENCE (`zongzhi`), AUTH_LEEWAY_SECS (60,
    /// at most 300), SERVICE_KEY (64 hex digits), and for the registry's embedded sign-in AUTH_SIGNING_KEY (64
    /// hex digits) with AUTH_SIGNING_KID (`zongzhi-1`), AUTH_REVOCATIONS_URL (the registry whose revocation list
    /// is followed; by default REGISTRY_URL, else the registry's port on this host) polled every
    /// AUTH_REVOCATION_POLL_MS (2000), TRUSTED_PROXIES (addresses or CIDR blocks whose X-Forwarded-For is
    /// believed; none by default), GRPC_TLS_CERT and GRPC_TLS_KEY ([`crate::tls`]). Without trusted keys the
    /// service does not start.
    pub fn from_env() -> anyhow::Result<Self> {
        use crate::env::{parse_or, string_or};
        let jwks_url = Some(string_or("AUTH_JWKS_URL", "")).filter(|u| !u.is_empty());
        let jwks = jwks_from_env(jwks_url.is_some())?;
        let issuer = string_or("AUTH_ISSUER", "zongzhi");
        let mut issuers = vec![issuer.clone()];
        issuers.extend(
            string_or("AUTH_TRUSTED_ISSUERS", "").split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from),
        );
        let leeway_secs: u64 = parse_or("AUTH_LEEWAY_SECS", 60)?;
        if leeway_secs > 300 {
            anyhow::bail!("environment variable AUTH_LEEWAY_SECS: at most 300 seconds of clock skew");
        }
        let service_seed = seed_from_env("SERVICE_KEY")?;
        let issuer_key =
            seed_from_env("AUTH_SIGNING_KEY")?.map(|seed| (string_or("AUTH_SIGNING_KID", "zongzhi-1"), seed));
        Ok(Self {
            trust: Trust {
                jwks,
                jwks_url,
                refresh_secs: parse_or("AUTH_JWKS_REFRESH_SECS", 300)?,
                jwks_issuer: string_or("AUTH_JWKS_ISSUER", issuers.get(1).unwrap_or(&issuer)),
                jwks_ca: Some(string_or("AUTH_JWKS_CA", "")).filter(|p| !p.is_empty()).map(Into::into),
                issuers,
                audience: string_or("AUTH_AUDIENCE", "zongzhi"),
                leeway_secs,
                wide_grant_subjects: string_or("AUTH_WIDE_GRANT_SUBJECTS", "")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            issuer,
            service_seed,
            issuer_key,
            revocations_url: Some(string_or(
                "AUTH_REVOCATIONS_URL",
                &crate::env::peer_url("REGISTRY_URL", crate::env::ports::REGISTRY),
            )),
            revocation_poll: std::time::Duration::from_millis(parse_or(
                "AUTH_REVOCATION_POLL_MS",
                u64::try_from(revocation::DEFAULT_POLL.as_millis()).unwrap_or(2000),
            )?),
            trusted_proxies: crate::proxies::Proxies::from_env("TRUSTED_PROXIES")?,
            server_tls: {
                crate::tls::trust_ca(Some(string_or("GRPC_TLS_CA", "")).filter(|p| !p.is_empty()).map(Into::into));
                crate::tls::ServerTls::from_env()?
            },
        })
    }

    /// The embedded issuer's signer, when this deployment signs people in itself.
    pub fn issuer_signer(&self) -> Option<Signer> {
        self.issuer_key.as_ref().map(|(kid, seed)| Signer::from_seed(kid, seed, &self.issuer, &self.trust.audience))
    }

    /// This service's identity for its own calls; a service that calls others refuses to start without one.
    pub fn identity(&self, service: &str) -> anyhow::Result<Arc<ServiceIdentity>> {
        let seed = self
            .service_seed
            .ok_or_else(|| anyhow::anyhow!("{service} calls other services: set SERVICE_KEY (64 hex digits)"))?;
        let signer = Signer::from_seed(&format!("service:{service}"), &seed, &self.issuer, &self.trust.audience);
        Ok(Arc::new(ServiceIdentity { service: service.to_owned(), signer, current: Mutex::new(None) }))
    }
}

/// The trusted keys: the JWKS in AUTH_JWKS_FILE, else inline in AUTH_JWKS; none yet when `fetched` (AUTH_JWKS_URL
/// supplies them). No keys at all and none to fetch: the service does not start.
fn jwks_from_env(fetched: bool) -> anyhow::Result<token::JwkSet> {
    let text = match (std::env::var("AUTH_JWKS_FILE"), std::env::var("AUTH_JWKS")) {
        (Ok(path), _) if !path.trim().is_empty() => std::fs::read_to_string(path.trim())
            .map_err(|e| anyhow::anyhow!("environment variable AUTH_JWKS_FILE: cannot read {path:?}: {e}"))?,
        (_, Ok(inline)) if !inline.trim().is_empty() => inline,
        _ if fetched => r#"{"keys":[]}"#.to_owned(),
        _ => anyhow::bail!(
            "no trusted signing keys: set AUTH_JWKS_FILE (or AUTH_JWKS, AUTH_JWKS_URL) to a JWKS; `registry keygen` makes keys"
        ),
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the JWKS does not parse: {e}"))
}

/// A signing seed from `var` (64 hex digits); None when it is unset or empty.
fn seed_from_env(var: &str) -> anyhow::Result<Option<[u8; 32]>> {
    match std::env::var(var) {
        Ok(hex) if !hex.trim().is_empty() => token::parse_seed(&hex)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("environment variable {var}: expected 64 hex digits")),
        _ => Ok(None),
    }
}

/// A service's own short-lived token, minted from its key and renewed before it expires.
#[derive(Debug)]
pub struct ServiceIdentity {
    service: String,
    signer: Signer,
    current: Mutex<Option<(String, u64)>>,
}

/// Service tokens live five minutes and are renewed with a minute to spare.
const SERVICE_TOKEN_SECS: u64 = 300;

impl ServiceIdentity {
    pub fn bearer(&self) -> Result<String, Status> {
        let now = token::now_secs();
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((t, exp)) = current.as_ref()
            && *exp > now + 60
        {
            return Ok(t.clone());
        }
        let exp = now + SERVICE_TOKEN_SECS;
        let claims = Claims {
            iss: String::new(),
            aud: String::new(),
            sub: format!("service:{}", self.service),
            exp,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            person: String::new(),
            name: self.service.clone(),
            grants: vec![],
            amr: vec![],
            sid: String::new(),
        };
        let t = self.signer.sign(claims).map_err(|e| crate::status::internal("cannot sign service token", &e))?;
        *current = Some((t.clone(), exp));
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(grants: &[(&str, &str)]) -> Principal {
        let claims = Claims {
            iss: String::new(),
            aud: String::new(),
            sub: "person:p".into(),
            exp: 0,
            nbf: 0,
            iat: 0,
            jti: String::new(),
            person: "p".into(),
            name: String::new(),
            grants: grants
                .iter()
                .map(|(r, s)| Grant { role: (*r).into(), scope: (*s).into(), unit: String::new() })
                .collect(),
            amr: vec![],
            sid: String::new(),
        };
        Principal::from_claims(claims, "issuer").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn scope_follows_the_path_and_ignores_malformed_nodes() {
        let path: Vec<String> =
            ["532901003001", "532901003000", "532901000000", "532900000000", "530000000000"].map(String::from).into();
        let grid = "532901003001002";
        let at =
            |scope: &str| principal(&[("dispatcher", scope)]).scope(Permission::ReadCase).covers_place(&path, grid);
        assert!(at("532901003000"), "parent township");
        assert!(at("530000000000"), "province");
        assert!(!at("532901004000"), "another township");
        assert!(!at("5"), "a malformed node from an outside issuer counts for nothing");
        assert!(!at(""), "nor does an empty one");
        let worker = |scope: &str| principal(&[("grid_worker", scope)]).scope(Permission::ReadCase);
        assert!(worker("532901003001002").covers_place(&path, "532901003001002001"), "a micro-grid below");
        assert!(!worker("532901003001001").covers_place(&path, grid), "a sibling grid");
        // Administrators count only with a second factor; the service role never comes from a person's token.
        assert!(!principal(&[("audit_admin", "*")]).has(Permission::ViewAudit));
        assert!(principal(&[("service", "*")]).grants.is_empty());
    }
}
