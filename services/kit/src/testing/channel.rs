//! Typed clients for tests: a channel that carries one token, or the root's, which presents at each call the
//! token of a role the method needs. No one token may hold every role: an administrator role beside any other
//! is refused whoever signed it (三权分立, [`crate::auth::policy::duties_broken`]), so the root is a business
//! token with every business role plus one token per administrator role.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderValue;

use crate::auth::policy::{self, Access, Role};

/// The person behind every root token.
pub const ROOT_PERSON: &str = "00000000-0000-4000-8000-000000000000";

/// A channel that sends a bearer token with every call.
#[derive(Clone)]
pub struct AuthedChannel {
    inner: tonic::transport::Channel,
    bearer: Bearer,
}

#[derive(Clone)]
enum Bearer {
    One(HeaderValue),
    Root(Arc<RootTokens>),
}

/// The root's tokens: every business role, and each administrator role alone.
#[derive(Default)]
pub struct RootTokens {
    pub business: String,
    pub admins: Vec<(Role, String)>,
}

impl RootTokens {
    pub fn new(keys: &super::TestKeys) -> Self {
        let business: Vec<(&str, &str)> =
            Role::ALL.iter().filter(|r| !r.is_admin() && **r != Role::Service).map(|r| (r.as_str(), "*")).collect();
        let admins = Role::ALL
            .iter()
            .filter(|r| r.is_admin())
            .map(|r| (*r, keys.token(ROOT_PERSON, &[(r.as_str(), "*")])))
            .collect();
        Self { business: keys.token(ROOT_PERSON, &business), admins }
    }

    /// The token to call `path` (a gRPC method) with: the business one, unless only an administrator role
    /// gives the permission the method needs.
    pub fn for_method(&self, path: &str) -> &str {
        let needed = match policy::access(path) {
            Some(Access::Needs(p) | Access::NeedsOrService(p, _)) => p,
            _ => return &self.business,
        };
        let business = Role::ALL.iter().any(|r| !r.is_admin() && policy::scope_of(*r, needed).is_some());
        if business {
            return &self.business;
        }
        self.admins
            .iter()
            .find(|(r, _)| policy::scope_of(*r, needed).is_some())
            .map_or(&self.business, |(_, token)| token)
    }

    /// The administrator role's token.
    pub fn admin(&self, role: Role) -> &str {
        self.admins
            .iter()
            .find(|(r, _)| *r == role)
            .map_or_else(|| panic!("{role} is no administrator role"), |(_, t)| t)
    }
}

fn header(token: &str) -> HeaderValue {
    format!("Bearer {token}").parse().expect("token is a header value")
}

impl AuthedChannel {
    pub fn with_token(inner: tonic::transport::Channel, token: &str) -> Self {
        Self { inner, bearer: Bearer::One(header(token)) }
    }

    pub fn as_root(inner: tonic::transport::Channel) -> Self {
        Self { inner, bearer: Bearer::Root(super::keys().root_tokens.clone()) }
    }
}

type Channel = tonic::transport::Channel;

impl tower::Service<http::Request<tonic::body::Body>> for AuthedChannel {
    type Response = <Channel as tower::Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as tower::Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Channel as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        let value = match &self.bearer {
            Bearer::One(v) => v.clone(),
            Bearer::Root(root) => header(root.for_method(req.uri().path())),
        };
        req.headers_mut().insert(http::header::AUTHORIZATION, value);
        self.inner.call(req)
    }
}
