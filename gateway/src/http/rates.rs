//! 三率 and rankings as a file: `GET /v1/rates/export?node_code=…&by=unit|area&from=YYYY-MM-DD&to=YYYY-MM-DD
//! &format=csv|xlsx` answers with the file itself (its Content-Type, and a Content-Disposition naming it) rather
//! than JSON, so this route is answered by hand (its proto says `custom: true`); errors stay JSON like every
//! other route's. (`GET /v1/rates`, the same as JSON, is a generated route; both still take the old `node`.)

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto::gateway::v1::desk_server::Desk;
use proto::supervision::v1 as supervision;

use super::{Caller, Desk_, Params, error_response};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new().route("/v1/rates/export", get(export_rates))
}

async fn export_rates(
    State(d): Desk_,
    c: Caller,
    Params(request): Params<supervision::ExportRatesRequest>,
) -> Response {
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
