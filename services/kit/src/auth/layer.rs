//! The tower layer every gRPC server runs: it verifies the bearer token of every call except the public ones
//! (health, reflection, sign-in), refuses a caller whose grants give no permission the method needs, and hands
//! the verified principal to the handler in the request's extensions. Handlers then check the object's place
//! against the principal's scope, which only they can see.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;

use super::policy::{self, Access};
use super::{AuthError, Principal, Verifier};

#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
}

impl AuthLayer {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, verifier: self.verifier.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
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
    let Some(access) = policy::access(path) else {
        return Err(Status::permission_denied("method not open to any role"));
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
    if allowed { Ok(Some(principal)) } else { Err(super::denied("no role of yours gives this method")) }
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
        match admit(&self.verifier, req.uri().path(), req.headers()) {
            Ok(principal) => {
                if let Some(p) = principal {
                    req.extensions_mut().insert(p);
                }
                Box::pin(self.inner.call(req))
            }
            Err(status) => {
                tracing::info!(method = %req.uri().path(), code = ?status.code(), reason = status.message(), "call refused");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
