//! Likely duplicates and merging as JSON over HTTP: `GET /v1/cases/{case_ref}/duplicates`,
//! `POST /v1/cases/{case_id}/merge` (`{"into_case_id","reason"}`) and `POST /v1/cases/{case_id}/unmerge`
//! (`{"reason"}`). Each calls the Desk method of the same name; the path's case wins over one in the body.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use proto::gateway::v1::desk_server::Desk;
use proto::intake::v1 as intake;

use super::{Body, Caller, Desk_, reply};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new()
        .route("/v1/cases/{case_ref}/duplicates", get(list_duplicate_candidates))
        .route("/v1/cases/{case_id}/merge", post(merge_case))
        .route("/v1/cases/{case_id}/unmerge", post(unmerge_case))
}

async fn list_duplicate_candidates(State(d): Desk_, c: Caller, Path(case_ref): Path<String>) -> Response {
    reply(d.list_duplicate_candidates(c.req(intake::ListDuplicateCandidatesRequest { case_ref })).await).await
}

async fn merge_case(
    State(d): Desk_,
    c: Caller,
    Path(case_id): Path<String>,
    Body(mut b): Body<intake::MergeCaseRequest>,
) -> Response {
    b.case_id = case_id;
    reply(d.merge_case(c.req(b)).await).await
}

async fn unmerge_case(
    State(d): Desk_,
    c: Caller,
    Path(case_id): Path<String>,
    Body(mut b): Body<intake::UnmergeCaseRequest>,
) -> Response {
    b.case_id = case_id;
    reply(d.unmerge_case(c.req(b)).await).await
}
