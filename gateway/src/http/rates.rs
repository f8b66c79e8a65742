//! 三率 and rankings as JSON and as files: `GET /v1/rates?node=…&by=unit|area&from=YYYY-MM-DD&to=YYYY-MM-DD`
//! and `GET /v1/rates/export?…&format=csv|xlsx`, which answers with the file itself (its Content-Type, and a
//! Content-Disposition naming it) rather than JSON; errors stay JSON like every other route's.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto::gateway::v1::desk_server::Desk;
use proto::supervision::v1 as supervision;
use serde::Deserialize;

use super::{Caller, Desk_, Params, error_response, reply};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new().route("/v1/rates", get(get_rates)).route("/v1/rates/export", get(export_rates))
}

/// The query string: `node` is the request's `node_code`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RatesQuery {
    node: String,
    by: String,
    from: String,
    to: String,
    format: String,
}

async fn get_rates(State(d): Desk_, c: Caller, Params(q): Params<RatesQuery>) -> Response {
    let request = supervision::GetRatesRequest { node_code: q.node, by: q.by, from: q.from, to: q.to };
    reply(d.get_rates(c.req(request)).await).await
}

async fn export_rates(State(d): Desk_, c: Caller, Params(q): Params<RatesQuery>) -> Response {
    let request =
        supervision::ExportRatesRequest { node_code: q.node, by: q.by, from: q.from, to: q.to, format: q.format };
    match d.export_rates(c.req(request)).await {
        Ok(r) => {
            let r = r.into_inner();
            // Supervision names its files in ASCII (codes and dates), so the plain form is enough.
            let name: String = r.filename.chars().filter(|c| c.is_ascii_alphanumeric() || "-._".contains(*c)).collect();
            let disposition = format!("attachment; filename=\"{name}\"");
            ([(header::CONTENT_TYPE, r.content_type), (header::CONTENT_DISPOSITION, disposition)], r.content)
                .into_response()
        }
        Err(status) => error_response(&status),
    }
}
