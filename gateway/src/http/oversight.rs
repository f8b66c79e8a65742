//! Supervision's routes: deadlines, the 督办 and task slips (listed, acknowledged, printed as PDF), clock changes
//! (延期 and 挂账) and time-policy versions.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use proto::gateway::v1::desk_server::Desk;
use proto::supervision::v1 as supervision;

use super::{Body, Caller, Desk_, error_response, reply};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new()
        .route("/v1/cases/{case_id}/deadlines", get(list_deadlines))
        .route("/v1/cases/{case_id}/slips", get(list_slips))
        .route("/v1/slips/{number}/acknowledge", post(acknowledge_slip))
        .route("/v1/slips/{number}/slip.pdf", get(slip_pdf))
        .route("/v1/cases/{case_id}/clock-changes", get(list_clock_changes))
        .route("/v1/tasks/{task_id}/clock-changes", post(request_clock_change))
        .route("/v1/tasks/{task_id}/resume-clock", post(resume_clock))
        .route("/v1/clock-changes/{id}/decide", post(decide_clock_change))
        .route("/v1/time-policies", post(add_time_policy).get(list_time_policies))
}

async fn list_deadlines(State(d): Desk_, c: Caller, Path(case_id): Path<String>) -> Response {
    reply(d.list_deadlines(c.req(supervision::ListDeadlinesRequest { case_id })).await).await
}

async fn list_slips(State(d): Desk_, c: Caller, Path(case_id): Path<String>) -> Response {
    reply(d.list_slips(c.req(supervision::ListSlipsRequest { case_id })).await).await
}

async fn acknowledge_slip(State(d): Desk_, c: Caller, Path(number): Path<String>) -> Response {
    reply(d.acknowledge_slip(c.req(supervision::AcknowledgeSlipRequest { number })).await).await
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

async fn list_clock_changes(State(d): Desk_, c: Caller, Path(case_id): Path<String>) -> Response {
    reply(d.list_clock_changes(c.req(supervision::ListClockChangesRequest { case_id })).await).await
}

async fn request_clock_change(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<supervision::RequestClockChangeRequest>,
) -> Response {
    b.task_id = id;
    reply(d.request_clock_change(c.req(b)).await).await
}

async fn resume_clock(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<supervision::ResumeClockRequest>,
) -> Response {
    b.task_id = id;
    reply(d.resume_clock(c.req(b)).await).await
}

async fn decide_clock_change(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<supervision::DecideClockChangeRequest>,
) -> Response {
    b.id = id;
    reply(d.decide_clock_change(c.req(b)).await).await
}

async fn add_time_policy(State(d): Desk_, c: Caller, Body(b): Body<supervision::AddTimePolicyRequest>) -> Response {
    reply(d.add_time_policy(c.req(b)).await).await
}

async fn list_time_policies(State(d): Desk_, c: Caller) -> Response {
    reply(d.list_time_policies(c.req(supervision::ListTimePoliciesRequest {})).await).await
}
