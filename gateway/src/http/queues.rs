//! The work queues as JSON over HTTP, under `/v1/queues`: the case board (`GET /v1/queues/board?center_code=…
//! &queue=…&state=…&category_prefix=…&registered_after=…&registered_before=…&overdue_only=true`) and the task
//! queue (`GET /v1/queues/tasks?state=…&mine=true&unit_code=…&overdue_only=true`), both with `page_size` and
//! `page_token`. Each calls the Desk method of the same name, so the owning service's scope filters it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use proto::gateway::v1::desk_server::Desk;
use proto::{intake::v1 as intake, routing::v1 as routing};

use super::{Caller, Desk_, Params, reply};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new().route("/v1/queues/board", get(list_case_board)).route("/v1/queues/tasks", get(list_task_queue))
}

async fn list_case_board(State(d): Desk_, c: Caller, Params(q): Params<intake::ListCaseBoardRequest>) -> Response {
    reply(d.list_case_board(c.req(q)).await).await
}

async fn list_task_queue(State(d): Desk_, c: Caller, Params(q): Params<routing::ListTaskQueueRequest>) -> Response {
    reply(d.list_task_queue(c.req(q)).await).await
}
