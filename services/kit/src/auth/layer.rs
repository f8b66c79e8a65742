//! The tower layer every gRPC server runs: it answers UNIMPLEMENTED for a method this server does not serve
//! (before any token is looked at, with no audit record: an invented path acts on nothing), verifies the bearer
//! token of every call except the public ones (health, reflection, sign-in), refuses a caller whose grants give
//! no permission the method needs, and hands
//! the verified principal to the handler in the request's extensions. Handlers then check the object's place
//! against the principal's scope, which only they can see. Every call but health, reflection, the public keys,
//! the revocation list (see `audited`), a method the server does not have and a refusal past its address's
//! budget ([`REFUSALS_BURST`]), refused or not, ends as
//! one audit record (who, grant, method, target, outcome, address, trace); a call whose record
//! cannot be written answers UNAVAILABLE. At the gateway, which forwards its calls to services that record
//! them, only its own refusals are recorded ([`Guard::forwards`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;

use super::policy::{self, Access};
use super::{AuthError, Principal, Verifier};
use crate::audit::staged::Call;
use crate::audit::{AuditEntry, AuditKey, AuditLog, AuditTarget};
use crate::throttle::Throttle;

/// What guards a server: the token verifier and, for a service with a database, its audit trail.
#[derive(Clone)]
pub struct Guard {
    pub verifier: Arc<Verifier>,
    pub audit: Option<(AuditLog, AuditKey, sqlx::PgPool)>,
    /// The services (`zongzhi.gateway.v1.Desk`) whose calls this server forwards to a service that records
    /// them: of their calls only the refusals made here are recorded, so no call is recorded twice.
    pub forwards: &'static [&'static str],
    /// The longest a call may take, reading its request included (DEADLINE_EXCEEDED after), on a server whose
    /// clients are outside: the gateway's. Services behind it have none: their streaming imports run long.
    pub deadline: Option<std::time::Duration>,
    /// Whose X-Forwarded-For names the client in the audit record; from anyone else the header is ignored.
    pub trusted_proxies: crate::proxies::Proxies,
    /// The server's certificate and key: with them the port serves TLS only.
    pub tls: Option<crate::tls::ServerTls>,
}

#[derive(Clone)]
pub struct AuthLayer {
    guard: Guard,
    served: Served,
    refusals: Arc<Throttle<std::net::IpAddr>>,
}

/// Refused calls one address may make at once, then a minute, before the rest are answered RESOURCE_EXHAUSTED
/// without an audit record: every refusal is a record kept for 180 days, and a client sending garbage should
/// not be able to grow the trail without bound. Above anything a working client is refused in a burst.
pub const REFUSALS_BURST: u32 = 200;
pub const REFUSALS_PER_MINUTE: u32 = 120;

impl AuthLayer {
    /// `services` are the fully-qualified names of the services on this port; health and reflection are
    /// always served.
    pub fn new(guard: Guard, services: &[&str]) -> Self {
        Self {
            guard,
            served: Served(services.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>().into()),
            refusals: Arc::new(Throttle::new(REFUSALS_BURST, REFUSALS_PER_MINUTE)),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, guard: self.guard.clone(), served: self.served.clone(), refusals: self.refusals.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    guard: Guard,
    served: Served,
    refusals: Arc<Throttle<std::net::IpAddr>>,
}

/// The services one port serves.
#[derive(Clone, Debug)]
struct Served(Arc<[String]>);

impl Served {
    /// Whether `path` names a method this port answers: one of its services, and a method the policy table
    /// knows. Anything else (a mistyped name, another service's method, a scanner's guess) is a method this
    /// server does not have, which gRPC answers with UNIMPLEMENTED whoever asks.
    fn serves(&self, path: &str) -> bool {
        let service = path.strip_prefix('/').and_then(|p| p.rsplit_once('/')).map_or("", |(service, _)| service);
        let own = self.0.iter().any(|s| s == service)
            || service == "grpc.health.v1.Health"
            || service.starts_with("grpc.reflection.");
        own && policy::access(path).is_some()
    }
}

/// The answer to a method this server does not have. The path is not echoed: it is whatever the caller made up.
fn unimplemented() -> Status {
    Status::unimplemented("no such method on this server")
}

/// The token in `authorization: Bearer …`, if the header is there and well-formed.
pub fn bearer(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(AuthError::Malformed),
    }
}

/// Decides a call: the principal to hand on (None for a public method), or the status that refuses it.
pub fn admit(verifier: &Verifier, path: &str, headers: &http::HeaderMap) -> Result<Option<Arc<Principal>>, Status> {
    decide(verifier, path, headers).map_err(|refused| refused.status)
}

/// A refused call: its status, and who made it when the token was good but gave no permission the method needs
/// (the audit record names them).
#[derive(Debug)]
pub struct Refused {
    pub status: Status,
    pub principal: Option<Arc<Principal>>,
}

impl From<AuthError> for Refused {
    fn from(err: AuthError) -> Self {
        Self { status: err.into(), principal: None }
    }
}

/// [`admit`], saying who was refused.
pub fn decide(verifier: &Verifier, path: &str, headers: &http::HeaderMap) -> Result<Option<Arc<Principal>>, Refused> {
    let Some(access) = policy::access(path) else {
        return Err(Refused { status: unimplemented(), principal: None });
    };
    if access == Access::Public {
        return Ok(None);
    }
    let principal = verifier.verify(bearer(headers)?)?;
    let allowed = match access {
        Access::Public | Access::SignedIn => !principal.grants.is_empty(),
        Access::Needs(p) => principal.has(p),
        Access::NeedsOrService(p, services) => principal.has(p) || services.iter().any(|s| principal.is_service(s)),
    };
    if allowed {
        Ok(Some(principal))
    } else {
        Err(Refused { status: super::denied("no role of yours gives this method"), principal: Some(principal) })
    }
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if !self.served.serves(req.uri().path()) {
            // Not audited and not logged per call: nothing was acted on, and each made-up path would be a record.
            let status = self.throttled(&req).unwrap_or_else(unimplemented);
            return Box::pin(async { Ok(status.into_http()) });
        }
        let decision = decide(&self.guard.verifier, req.uri().path(), req.headers());
        if decision.is_err()
            && let Some(throttled) = self.throttled(&req)
        {
            // Over the address's budget of refusals: answered, counted, not recorded one by one.
            return Box::pin(async { Ok(throttled.into_http()) });
        }
        let audit = self.guard.audit.as_ref().map(|(log, _, _)| log.clone()).filter(|_| audited(req.uri().path()));
        let who = match &decision {
            Ok(principal) => principal.as_ref(),
            Err(refused) => refused.principal.as_ref(),
        };
        let mut entry = audit.as_ref().map(|_| entry_for(&req, who, &self.guard.trusted_proxies));
        match decision.map_err(|refused| refused.status) {
            Ok(principal) => {
                if let Some(p) = principal {
                    req.extensions_mut().insert(p);
                }
                let decoded = Arc::new(std::sync::Mutex::new(None));
                let path = req.uri().path().to_owned();
                let call = proto::codec::DECODED.scope(decoded.clone(), self.inner.call(req));
                // A forwarded call is recorded by the service that answers it.
                let audit = audit.filter(|_| !forwarded(&path, self.guard.forwards));
                let Some((log, e)) = audit.zip(entry.take()) else { return Box::pin(call) };
                // The handler may stage this call's record in its own transaction (crate::audit::begin).
                let staging = Call::new(e, decoded);
                let call = staging.clone().scope(call);
                Box::pin(async move {
                    let response = call.await?;
                    Ok(record_answer(response, &staging, &log, &path).await)
                })
            }
            Err(status) => {
                tracing::info!(method = %req.uri().path(), code = ?status.code(), reason = status.message(), "call refused");
                Box::pin(async move {
                    if let (Some(log), Some(mut e)) = (audit, entry.take()) {
                        e.outcome = crate::status::code_name(status.code()).into();
                        e.reason = status.message().to_owned();
                        // The call is refused either way; a lost record of a refusal is logged, not answered.
                        if let Err(err) = log.append(e).await {
                            tracing::error!(error = %err, "audit record of a refused call not written");
                        }
                    }
                    Ok(status.into_http())
                })
            }
        }
    }
}

/// Completes an admitted call's audit record from its answer: the outcome (a refusal inside the handler says
/// why), the object (the handler's own word wins, else what the request named); appended now, or completed from
/// the record the handler staged in its transaction. An append that fails answers the call with that failure:
/// an action without its record is not reported done.
async fn record_answer(
    response: http::Response<tonic::body::Body>,
    staging: &Call,
    log: &AuditLog,
    path: &str,
) -> http::Response<tonic::body::Body> {
    let mut e = staging.entry.clone();
    e.outcome = "ok".into();
    if let Some(status) = failure(response.headers()) {
        e.outcome = crate::status::code_name(status.code()).into();
        e.reason = truncate(status.message(), 200).to_owned();
    }
    if let Some(t) = response.extensions().get::<AuditTarget>() {
        e.target.clone_from(&t.target);
        e.detail.clone_from(&t.detail);
    } else if let Some(named) = staging.decoded_target() {
        e.target = named;
    }
    if !staging.staged() {
        if e.outcome == "ok" && changes(path) && !staging.unchanged() {
            // A handler that changed something without staging: its record can still be lost.
            tracing::error!(method = %path, "a changing call committed without staging its audit record");
            crate::metrics::counter("zongzhi_audit_unstaged_total", &[("method", path)]).inc();
        }
        return match log.append(e).await {
            Ok(()) => response,
            Err(err) => Status::from(err).into_http(),
        };
    }
    // The action committed with its record staged: the record is kept whatever happens here.
    if let Err(err) = log.complete(e, staging.id).await {
        tracing::error!(error = %err, method = %path, "audit record left staged; the sweeper chains it");
    }
    response
}

impl<S> AuthService<S> {
    /// RESOURCE_EXHAUSTED when the caller's address has spent its budget of refused calls.
    fn throttled<B>(&self, req: &http::Request<B>) -> Option<Status> {
        let ip = peer(req)?;
        let wait = self.refusals.take(&ip).err()?;
        crate::metrics::counter("zongzhi_refused_calls_throttled_total", &[]).inc();
        let secs = crate::throttle::retry_after_secs(wait);
        let mut status =
            Status::resource_exhausted(format!("too many refused calls from your address; retry in {secs} s"));
        status.metadata_mut().insert("retry-after", secs.into());
        Some(status)
    }
}

/// The TCP peer's address.
fn peer<B>(req: &http::Request<B>) -> Option<std::net::IpAddr> {
    crate::tls::remote_addr(req.extensions()).map(|a| a.ip())
}

fn forwarded(path: &str, forwards: &[&str]) -> bool {
    path.strip_prefix('/').and_then(|p| p.rsplit_once('/')).is_some_and(|(service, _)| forwards.contains(&service))
}

/// Health, reflection, the public keys and the revocation list are asked constantly by probes, tools and
/// every service's follower, and act on nothing: a record of each would be a few hundred thousand a day of
/// noise in the registry's trail.
fn audited(path: &str) -> bool {
    !(path.starts_with("/grpc.health.")
        || path.starts_with("/grpc.reflection.")
        || path.ends_with("/GetJwks")
        || path == "/zongzhi.registry.v1.Auth/ListRevocations")
}

/// Whether a method changes something, by its name: everything but reads (`Get…`, `List…`, `Count…`,
/// `Export…`, `Search…`) and a few named lookups. A changing call must stage its audit record in the
/// transaction that makes the change (see [`crate::audit::staged`]).
pub fn changes(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or("");
    let reads = ["Get", "List", "Count", "Export", "Search"].iter().any(|p| method.starts_with(p))
        || ["WhoAmI", "VerifyChain", "ResolveLocation", "ResolvePoint", "ClientToken"].contains(&method);
    !reads
}

/// The record of a call before its outcome: who (and under which grant), what, from where, in which trace.
fn entry_for<B>(
    req: &http::Request<B>,
    principal: Option<&Arc<Principal>>,
    trusted: &crate::proxies::Proxies,
) -> AuditEntry {
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let peer = peer(req);
    entry(req.uri().path(), principal.map(Arc::as_ref), peer, peer.map(|p| trusted.client(p, forwarded)))
}

/// The record of a call to `path` before its outcome: who (the grant `path` needs, else the first), what, from
/// where, in the current trace. The gateway records the calls it refuses itself with it.
///
/// Where: the client behind a trusted proxy (the gateway) as the proxy says, beside the proxy (`client via
/// peer`); from anyone else a forwarded address is only what the caller claims, so `client` is the TCP `peer`
/// and the record names it alone.
pub fn entry(
    path: &str,
    principal: Option<&Principal>,
    peer: Option<std::net::IpAddr>,
    client: Option<std::net::IpAddr>,
) -> AuditEntry {
    let client_addr = match (client, peer) {
        (Some(c), Some(p)) if c != p => format!("{c} via {p}"),
        (Some(c), _) => c.to_string(),
        (None, _) => String::new(),
    };
    let grant = principal.and_then(|p| match policy::access(path) {
        Some(Access::Needs(perm) | Access::NeedsOrService(perm, _)) => p.grant_for(perm).or(p.grants.first()),
        _ => p.grants.first(),
    });
    AuditEntry {
        actor: principal.map(|p| p.subject.clone()).unwrap_or_else(|| "anonymous".into()),
        role: grant.map(|g| g.role.as_str().to_owned()).unwrap_or_default(),
        scope: grant
            .map(|g| if g.unit.is_empty() { g.scope.clone() } else { format!("{} unit {}", g.scope, g.unit) })
            .unwrap_or_default(),
        action: path.to_owned(),
        client_addr,
        trace_id: trace_id(),
        ..AuditEntry::default()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn trace_id() -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    if id == opentelemetry::trace::TraceId::INVALID { String::new() } else { id.to_string() }
}

/// A unary reply that failed carries its status in the headers (trailers-only); one that succeeded does not.
fn failure(headers: &http::HeaderMap) -> Option<Status> {
    Status::from_header_map(headers).filter(|s| s.code() != tonic::Code::Ok)
}
