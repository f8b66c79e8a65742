//! The JSON route of every routed RPC, generated from its proto (`option (zongzhi.api.v1.http)`, listed by
//! [`proto::json_routes`]): the request is the JSON body (`body: "*"`) or the query string, the path's
//! `{field}`s are set on it last (so the path wins over the body), and the call goes to the Desk method of the
//! same name, so both faces admit, limit and answer alike. Routes the gateway answers by hand (`custom: true`)
//! are in their own modules.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::response::Response;
use proto::gateway::v1::desk_server::Desk;

use super::{Body, Caller, Desk_, Params, bad_request, reply};
use crate::desk::DeskService;

macro_rules! routes {
    ($($method:ident ($req:ty) $verb:ident $path:literal $kind:ident [$($field:ident $conv:ident),*];)*) => {
        pub(super) fn routes() -> Router<Arc<DeskService>> {
            Router::new()
                $(.route($path, axum::routing::$verb(handler!($kind $method ($req) [$($field $conv),*]))))*
        }
    };
}

/// One route's handler: the request from the body or the query, then the path's fields in order.
macro_rules! handler {
    (json $method:ident ($req:ty) []) => {
        |State(d): Desk_, c: Caller, Body(m): Body<$req>| async move { reply(d.$method(c.req(m)).await).await }
    };
    (query $method:ident ($req:ty) []) => {
        |State(d): Desk_, c: Caller, Params(m): Params<$req>| async move { reply(d.$method(c.req(m)).await).await }
    };
    (json $method:ident ($req:ty) [$($field:ident $conv:ident),+]) => {
        |State(d): Desk_, c: Caller, path: RawPathParams, Body(mut m): Body<$req>| async move {
            let mut values = path.iter().map(|(_, v)| v);
            $(m.$field = match $conv(stringify!($field), values.next()) { Ok(v) => v, Err(r) => return *r };)+
            reply(d.$method(c.req(m)).await).await
        }
    };
    (query $method:ident ($req:ty) [$($field:ident $conv:ident),+]) => {
        |State(d): Desk_, c: Caller, path: RawPathParams, Params(mut m): Params<$req>| async move {
            let mut values = path.iter().map(|(_, v)| v);
            $(m.$field = match $conv(stringify!($field), values.next()) { Ok(v) => v, Err(r) => return *r };)+
            reply(d.$method(c.req(m)).await).await
        }
    };
}

proto::json_routes!(routes);

/// A path segment bound to a string field (axum has percent-decoded it).
fn string(_field: &str, value: Option<&str>) -> Result<String, Box<Response>> {
    Ok(value.unwrap_or_default().to_owned())
}

/// A path segment bound to a whole-number field.
fn number<T: std::str::FromStr>(field: &str, value: Option<&str>) -> Result<T, Box<Response>> {
    value.unwrap_or_default().parse().map_err(|_| Box::new(bad_request(field, "must be a whole number, 0 or more")))
}

/// Every route as the README lists it: verb and path, the Desk method, and who may call it (the permission's
/// name, `signed_in` or `public`), in the protos' order. A test keeps the README equal to it.
pub fn markdown() -> String {
    let mut out = String::from("| route | `Desk` method | who may call |\n|---|---|---|");
    for method in proto::api::METHODS {
        let Some(http) = method.http else { continue };
        let name = method.path.rsplit('/').next().unwrap_or_default();
        let verb = http.verb.to_ascii_uppercase();
        out.push_str(&format!("\n| `{verb} {}` | `{name}` | {} |", http.template, method.needs));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_lists_every_route() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let table = super::markdown();
        assert!(readme.contains(&table), "README's route table differs from the protos; put this in it:\n{table}");
    }
}
