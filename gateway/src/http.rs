//! The same operations as JSON over HTTP, served by calling the gRPC face in-process, so both faces behave
//! identically. A gRPC status becomes an HTTP status with a JSON body naming the code and any bad fields.

mod admin;
mod extract;
mod merges;
mod observe;
mod oversight;
mod queues;
mod rates;
pub mod serve;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::gateway::v1::desk_server::Desk;
use proto::{intake::v1 as intake, registry::v1 as registry, routing::v1 as routing};
use proto::{subsidy::v1 as subsidy, supervision::v1 as supervision};
use serde::Serialize;
use tonic::{Code, Request, Status};

use crate::desk::DeskService;
use extract::{Body, Params};

type Desk_ = State<Arc<DeskService>>;

/// Every route's call but `/healthz`'s takes a place in flight in the Desk, once its body is decoded (see
/// [`crate::limit`]); every route answers within [`crate::limit::CALL_DEADLINE`].
pub fn router(desk: DeskService) -> Router {
    Router::new()
        .route("/v1/auth/sign-in", post(sign_in))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/sign-out", post(sign_out))
        .route("/v1/auth/client-token", post(client_token))
        .route("/v1/auth/change-password", post(change_password))
        .route("/v1/auth/activate", post(activate_account))
        .route("/v1/auth/activate-client", post(activate_client))
        .route("/v1/auth/me", get(who_am_i))
        .route("/v1/cases", post(register_case).get(list_cases))
        .route("/v1/cases/{case_ref}", get(get_case))
        .route("/v1/cases/{case_id}/parties/{party}/unmask", post(unmask_party))
        .route("/v1/cases/{case_id}/tasks", get(list_tasks))
        .route("/v1/cases/{case_id}/verify", post(verify_case))
        .route("/v1/cases/{case_id}/dispatch", post(dispatch_case))
        .route("/v1/cases/{case_id}/escalate", post(escalate_case))
        .route("/v1/cases/{case_id}/follow-up", post(follow_up))
        .route("/v1/tasks/{task_id}", get(get_task))
        .route("/v1/tasks/{task_id}/accept", post(accept_task))
        .route("/v1/tasks/{task_id}/return", post(return_task))
        .route("/v1/tasks/{task_id}/review", post(review_return))
        .route("/v1/tasks/{task_id}/resolve", post(resolve_task))
        .route("/v1/tasks/{task_id}/co-handlers", post(summon_co_handlers).get(list_co_handlers))
        .route("/v1/co-handlers/{id}/report-in", post(report_in))
        .route("/v1/co-handlers/{id}/contribution", post(record_contribution))
        .route("/v1/co-handlers/{id}/release", post(release_co_handler))
        .route("/v1/tasks/{task_id}/recall", post(recall_task))
        .route("/v1/credits", get(list_credits))
        .route("/v1/nodes/{code}", get(get_node))
        .route("/v1/nodes/{code}/children", get(list_children))
        .route("/v1/persons/{id}", get(get_person))
        .route("/v1/nodes/{code}/descendants", get(list_descendants))
        .route("/v1/nodes/{code}/counts", get(count_by_level))
        .route("/v1/nodes/{code}/search", get(search_names))
        .route("/v1/locate", get(resolve_point))
        .route("/v1/ledger/{code}", get(get_ledger))
        .route("/v1/ledger/{code}/children", get(list_ledger))
        .route("/v1/directives", post(issue_directive))
        .route("/v1/directives/{id}", get(get_directive))
        .route("/v1/directives/{id}/recipients", get(list_directive_recipients))
        .route("/v1/directives/{id}/acknowledge", post(acknowledge_directive))
        .route("/v1/directives/{id}/answer", post(answer_directive))
        .merge(admin::routes())
        .merge(queues::routes())
        .merge(rates::routes())
        .merge(merges::routes())
        .merge(oversight::routes())
        .layer(axum::middleware::from_fn(deadline))
        .route("/healthz", get(|| async { "ok" }))
        // Last, so it wraps every route above (a layer applies to the routes present when it is added), the
        // calls the limit sheds included.
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(Arc::new(desk))
}

/// The caller's credentials and address as the HTTP request carried them, put on the in-process gRPC call so
/// the Desk admits it exactly as it admits a gRPC client: the TCP peer in [`crate::desk::PEER`] (a request built
/// here, so no client can set it) and the request's own X-Forwarded-For, which the Desk believes only from a
/// trusted proxy.
struct Caller {
    authorization: Option<axum::http::HeaderValue>,
    peer: Option<axum::http::HeaderValue>,
    forwarded_for: Option<axum::http::HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(Caller {
            authorization: parts.headers.get(axum::http::header::AUTHORIZATION).cloned(),
            peer: peer.and_then(|ip| ip.to_string().parse().ok()),
            forwarded_for: parts.headers.get("x-forwarded-for").cloned(),
        })
    }
}

impl Caller {
    fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut().as_mut();
        if let Some(v) = &self.authorization {
            metadata.insert(axum::http::header::AUTHORIZATION, v.clone());
        }
        if let Some(v) = &self.peer {
            metadata.insert(crate::desk::PEER, v.clone());
        }
        if let Some(v) = &self.forwarded_for {
            metadata.insert("x-forwarded-for", v.clone());
        }
        request
    }
}

fn bad_request(field: &str, reason: &str) -> Response {
    error_response(&kit::grpc::invalid(&kit::FieldError::new(field, reason)))
}

async fn reply<T: Serialize>(result: Result<tonic::Response<T>, Status>) -> Response {
    match result {
        Ok(r) => Json(r.into_inner()).into_response(),
        Err(status) => error_response(&status),
    }
}

#[derive(Serialize)]
struct ErrorBody {
    code: String,
    message: String,
    fields: Vec<String>,
}

/// A call still running at [`crate::limit::CALL_DEADLINE`] is answered 504 DEADLINE_EXCEEDED (and dropped: a
/// backend call in it is cancelled, as a gRPC client's deadline cancels it).
async fn deadline(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(crate::limit::CALL_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let secs = crate::limit::CALL_DEADLINE.as_secs();
            error_response(&Status::deadline_exceeded(format!("the call did not finish within {secs} s; retry")))
        }
    }
}

/// The HTTP equivalent of each gRPC code, as in Google's API design guide.
pub fn error_response(status: &Status) -> Response {
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = ErrorBody {
        code: kit::grpc::code_name(status.code()).to_owned(),
        message: status.message().to_owned(),
        fields: kit::grpc::violated_fields(status),
    };
    let mut response = (http, Json(body)).into_response();
    if status.code() == Code::ResourceExhausted {
        let wait = crate::limit::retry_after(status);
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(wait));
    }
    response
}

async fn sign_in(State(d): Desk_, c: Caller, Body(b): Body<registry::SignInRequest>) -> Response {
    reply(d.sign_in(c.req(b)).await).await
}

async fn refresh(State(d): Desk_, c: Caller, Body(b): Body<registry::RefreshRequest>) -> Response {
    reply(d.refresh(c.req(b)).await).await
}

async fn sign_out(State(d): Desk_, c: Caller, Body(b): Body<registry::SignOutRequest>) -> Response {
    reply(d.sign_out(c.req(b)).await).await
}

async fn client_token(State(d): Desk_, c: Caller, Body(b): Body<registry::ClientTokenRequest>) -> Response {
    reply(d.client_token(c.req(b)).await).await
}

async fn change_password(State(d): Desk_, c: Caller, Body(b): Body<registry::ChangePasswordRequest>) -> Response {
    reply(d.change_password(c.req(b)).await).await
}

async fn activate_account(State(d): Desk_, c: Caller, Body(b): Body<registry::ActivateAccountRequest>) -> Response {
    reply(d.activate_account(c.req(b)).await).await
}

async fn activate_client(State(d): Desk_, c: Caller, Body(b): Body<registry::ActivateClientRequest>) -> Response {
    reply(d.activate_client(c.req(b)).await).await
}

async fn who_am_i(State(d): Desk_, c: Caller) -> Response {
    reply(d.who_am_i(c.req(registry::WhoAmIRequest {})).await).await
}

async fn register_case(State(d): Desk_, c: Caller, Body(body): Body<intake::RegisterCaseRequest>) -> Response {
    reply(d.register_case(c.req(body)).await).await
}

async fn unmask_party(
    State(d): Desk_,
    c: Caller,
    Path((case_id, party)): Path<(String, String)>,
    Body(mut b): Body<intake::UnmaskPartyRequest>,
) -> Response {
    let Ok(party) = party.parse() else {
        return bad_request("party", "must be the party's number in the case file: 0, 1, 2 …");
    };
    b.case_id = case_id;
    b.party = party;
    reply(d.unmask_party(c.req(b)).await).await
}

async fn list_cases(State(d): Desk_, c: Caller, Params(q): Params<intake::ListCasesRequest>) -> Response {
    reply(d.list_cases(c.req(q)).await).await
}

async fn get_case(State(d): Desk_, c: Caller, Path(case_ref): Path<String>) -> Response {
    reply(d.get_case(c.req(intake::GetCaseRequest { case_ref })).await).await
}

async fn list_tasks(State(d): Desk_, c: Caller, Path(case_id): Path<String>) -> Response {
    reply(d.list_tasks(c.req(routing::ListTasksRequest { case_id })).await).await
}

async fn verify_case(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<supervision::VerifyCaseRequest>,
) -> Response {
    b.case_id = id;
    reply(d.verify_case(c.req(b)).await).await
}

async fn follow_up(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<supervision::FollowUpRequest>,
) -> Response {
    b.case_id = id;
    reply(d.follow_up(c.req(b)).await).await
}

async fn summon_co_handlers(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::SummonCoHandlersRequest>,
) -> Response {
    b.task_id = id;
    reply(d.summon_co_handlers(c.req(b)).await).await
}

async fn list_co_handlers(State(d): Desk_, c: Caller, Path(task_id): Path<String>) -> Response {
    reply(d.list_co_handlers(c.req(routing::ListCoHandlersRequest { task_id })).await).await
}

async fn report_in(State(d): Desk_, c: Caller, Path(id): Path<String>) -> Response {
    reply(d.report_in(c.req(routing::ReportInRequest { id })).await).await
}

async fn record_contribution(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::RecordContributionRequest>,
) -> Response {
    b.id = id;
    reply(d.record_contribution(c.req(b)).await).await
}

async fn release_co_handler(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::ReleaseCoHandlerRequest>,
) -> Response {
    b.id = id;
    reply(d.release_co_handler(c.req(b)).await).await
}

async fn get_task(State(d): Desk_, c: Caller, Path(task_id): Path<String>) -> Response {
    reply(d.get_task(c.req(routing::GetTaskRequest { task_id })).await).await
}

async fn accept_task(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::AcceptTaskRequest>,
) -> Response {
    b.task_id = id;
    reply(d.accept_task(c.req(b)).await).await
}

async fn return_task(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::ReturnTaskRequest>,
) -> Response {
    b.task_id = id;
    reply(d.return_task(c.req(b)).await).await
}

async fn review_return(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::ReviewReturnRequest>,
) -> Response {
    b.task_id = id;
    reply(d.review_return(c.req(b)).await).await
}

async fn resolve_task(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::ResolveTaskRequest>,
) -> Response {
    b.task_id = id;
    reply(d.resolve_task(c.req(b)).await).await
}

async fn dispatch_case(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::DispatchCaseRequest>,
) -> Response {
    b.case_id = id;
    reply(d.dispatch_case(c.req(b)).await).await
}

async fn escalate_case(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::EscalateCaseRequest>,
) -> Response {
    b.case_id = id;
    reply(d.escalate_case(c.req(b)).await).await
}

async fn recall_task(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<routing::RecallTaskRequest>,
) -> Response {
    b.task_id = id;
    reply(d.recall_task(c.req(b)).await).await
}

async fn list_credits(State(d): Desk_, c: Caller, Params(q): Params<subsidy::ListCreditsRequest>) -> Response {
    reply(d.list_credits(c.req(q)).await).await
}

async fn get_node(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.get_node(c.req(registry::GetNodeRequest { code })).await).await
}

async fn list_children(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Params(mut q): Params<registry::ListChildrenRequest>,
) -> Response {
    q.code = code;
    reply(d.list_children(c.req(q)).await).await
}

async fn get_person(State(d): Desk_, c: Caller, Path(id): Path<String>) -> Response {
    reply(d.get_person(c.req(registry::GetPersonRequest { id })).await).await
}

async fn list_descendants(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Params(mut q): Params<registry::ListDescendantsRequest>,
) -> Response {
    q.code = code;
    reply(d.list_descendants(c.req(q)).await).await
}

async fn count_by_level(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.count_by_level(c.req(registry::CountByLevelRequest { code })).await).await
}

async fn search_names(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Params(mut q): Params<registry::SearchNamesRequest>,
) -> Response {
    q.code = code;
    reply(d.search_names(c.req(q)).await).await
}

async fn resolve_point(State(d): Desk_, c: Caller, Params(q): Params<registry::ResolvePointRequest>) -> Response {
    reply(d.resolve_point(c.req(q)).await).await
}

async fn get_ledger(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.get_ledger(c.req(registry::GetLedgerRequest { code })).await).await
}

async fn list_ledger(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Params(mut q): Params<registry::ListLedgerRequest>,
) -> Response {
    q.code = code;
    reply(d.list_ledger(c.req(q)).await).await
}

async fn issue_directive(State(d): Desk_, c: Caller, Body(b): Body<registry::IssueDirectiveRequest>) -> Response {
    reply(d.issue_directive(c.req(b)).await).await
}

async fn get_directive(State(d): Desk_, c: Caller, Path(id): Path<String>) -> Response {
    reply(d.get_directive(c.req(registry::GetDirectiveRequest { id })).await).await
}

async fn list_directive_recipients(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Params(mut q): Params<registry::ListDirectiveRecipientsRequest>,
) -> Response {
    q.directive_id = id;
    reply(d.list_directive_recipients(c.req(q)).await).await
}

async fn acknowledge_directive(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<registry::AcknowledgeDirectiveRequest>,
) -> Response {
    b.directive_id = id;
    reply(d.acknowledge_directive(c.req(b)).await).await
}

async fn answer_directive(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<registry::AnswerDirectiveRequest>,
) -> Response {
    b.directive_id = id;
    reply(d.answer_directive(c.req(b)).await).await
}
