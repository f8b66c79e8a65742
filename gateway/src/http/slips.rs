//! The 督办 and task slips printed as PDF (`GET /v1/slips/{number}/slip.pdf`): the file itself rather than JSON,
//! so this route is answered by hand (its proto says `custom: true`); errors stay JSON like every other route's.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto::gateway::v1::desk_server::Desk;
use proto::supervision::v1 as supervision;

use super::{Caller, Desk_, error_response};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new().route("/v1/slips/{number}/slip.pdf", get(slip_pdf))
}

/// The slip as a PDF to open or print, not JSON; errors stay JSON like every other route's.
async fn slip_pdf(State(d): Desk_, c: Caller, Path(number): Path<String>) -> Response {
    match d.get_slip_pdf(c.req(supervision::GetSlipPdfRequest { number })).await {
        Ok(r) => {
            let r = r.into_inner();
            // The file name is the slip's number, which holds a CJK character: RFC 5987's UTF-8 form.
            let encoded: String = r
                .filename
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let disposition = format!("inline; filename=\"slip.pdf\"; filename*=UTF-8''{encoded}");
            ([(header::CONTENT_TYPE, "application/pdf".to_owned()), (header::CONTENT_DISPOSITION, disposition)], r.pdf)
                .into_response()
        }
        Err(status) => error_response(&status),
    }
}
