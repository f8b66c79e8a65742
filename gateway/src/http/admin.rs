//! Administration as JSON over HTTP, under `/v1/admin`: grids and 一格一员, persons and eligibility, centers,
//! departments and rotations, routing rules, tariffs, categories, accounts and grants. Each handler calls the Desk method
//! of the same name, so the roles and scopes that decide are the owning service's.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use proto::gateway::v1::desk_server::Desk;
use proto::{intake::v1 as intake, registry::v1 as registry, routing::v1 as routing, subsidy::v1 as subsidy};

use super::{Body, Caller, Desk_, Params, reply};
use crate::desk::DeskService;

pub(super) fn routes() -> Router<Arc<DeskService>> {
    Router::new()
        .route("/v1/admin/grids", post(create_grid))
        .route("/v1/admin/grids/{code}", get(get_grid).patch(update_grid))
        .route("/v1/admin/grids/{code}/retire", post(retire_grid))
        .route("/v1/admin/grids/{code}/geometry", put(set_grid_geometry))
        .route("/v1/admin/grids/{code}/worker", post(assign_grid_worker).delete(end_grid_assignment))
        .route("/v1/admin/persons", post(create_person))
        .route("/v1/admin/persons/{id}/eligibility", get(list_eligibility_changes).post(change_eligibility))
        .route("/v1/admin/centers/{code}", put(establish_center).delete(close_center))
        .route("/v1/admin/centers/{code}/departments", get(list_stationed_departments))
        .route("/v1/admin/departments", get(list_departments).put(put_department))
        .route("/v1/admin/departments/{code}/rotation", put(set_rotation))
        .route("/v1/admin/rules", get(list_rules).put(put_rule))
        .route("/v1/admin/tariffs", get(list_tariff_rules).put(put_tariff_rule))
        .route("/v1/admin/categories", get(list_categories).put(put_category))
        .route("/v1/admin/accounts", post(create_account))
        .route("/v1/admin/accounts/{username}/disable", post(disable_account))
        .route("/v1/admin/accounts/{username}/approve", post(approve_account))
        .route("/v1/admin/clients", post(create_client))
        .route("/v1/admin/clients/{client_id}/revoke", post(revoke_client))
        .route("/v1/admin/clients/{client_id}/rotate", post(rotate_client_secret))
        .route("/v1/admin/grants", get(list_grants).post(set_grant))
        .route("/v1/admin/grants/{id}", delete(revoke_grant))
}

async fn create_grid(State(d): Desk_, c: Caller, Body(b): Body<registry::CreateGridRequest>) -> Response {
    reply(d.create_grid(c.req(b)).await).await
}

async fn get_grid(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.get_grid(c.req(registry::GetGridRequest { code })).await).await
}

async fn update_grid(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Body(mut b): Body<registry::UpdateGridRequest>,
) -> Response {
    b.code = code;
    reply(d.update_grid(c.req(b)).await).await
}

async fn retire_grid(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.retire_grid(c.req(registry::RetireGridRequest { code })).await).await
}

async fn set_grid_geometry(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Body(mut b): Body<registry::SetGridGeometryRequest>,
) -> Response {
    b.grid_code = code;
    reply(d.set_grid_geometry(c.req(b)).await).await
}

async fn assign_grid_worker(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Body(mut b): Body<registry::AssignGridWorkerRequest>,
) -> Response {
    b.grid_code = code;
    reply(d.assign_grid_worker(c.req(b)).await).await
}

async fn end_grid_assignment(State(d): Desk_, c: Caller, Path(grid_code): Path<String>) -> Response {
    reply(d.end_grid_assignment(c.req(registry::EndGridAssignmentRequest { grid_code })).await).await
}

async fn create_person(State(d): Desk_, c: Caller, Body(b): Body<registry::CreatePersonRequest>) -> Response {
    reply(d.create_person(c.req(b)).await).await
}

async fn change_eligibility(
    State(d): Desk_,
    c: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<registry::ChangeEligibilityRequest>,
) -> Response {
    b.person_id = id;
    reply(d.change_eligibility(c.req(b)).await).await
}

async fn list_eligibility_changes(State(d): Desk_, c: Caller, Path(person_id): Path<String>) -> Response {
    reply(d.list_eligibility_changes(c.req(registry::ListEligibilityChangesRequest { person_id })).await).await
}

async fn establish_center(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.establish_center(c.req(registry::EstablishCenterRequest { code })).await).await
}

async fn close_center(State(d): Desk_, c: Caller, Path(code): Path<String>) -> Response {
    reply(d.close_center(c.req(registry::CloseCenterRequest { code })).await).await
}

async fn list_stationed_departments(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Params(mut q): Params<registry::ListStationedDepartmentsRequest>,
) -> Response {
    q.center_code = code;
    reply(d.list_stationed_departments(c.req(q)).await).await
}

async fn list_departments(State(d): Desk_, c: Caller, Params(q): Params<registry::ListDepartmentsRequest>) -> Response {
    reply(d.list_departments(c.req(q)).await).await
}

async fn put_department(State(d): Desk_, c: Caller, Body(b): Body<registry::PutDepartmentRequest>) -> Response {
    reply(d.put_department(c.req(b)).await).await
}

async fn set_rotation(
    State(d): Desk_,
    c: Caller,
    Path(code): Path<String>,
    Body(mut b): Body<registry::SetRotationRequest>,
) -> Response {
    b.department_code = code;
    reply(d.set_rotation(c.req(b)).await).await
}

async fn list_rules(State(d): Desk_, c: Caller) -> Response {
    reply(d.list_rules(c.req(routing::ListRulesRequest {})).await).await
}

async fn put_rule(State(d): Desk_, c: Caller, Body(b): Body<routing::PutRuleRequest>) -> Response {
    reply(d.put_rule(c.req(b)).await).await
}

async fn list_tariff_rules(State(d): Desk_, c: Caller) -> Response {
    reply(d.list_tariff_rules(c.req(subsidy::ListTariffRulesRequest {})).await).await
}

async fn put_tariff_rule(State(d): Desk_, c: Caller, Body(b): Body<subsidy::PutTariffRuleRequest>) -> Response {
    reply(d.put_tariff_rule(c.req(b)).await).await
}

async fn list_categories(State(d): Desk_, c: Caller, Params(q): Params<intake::ListCategoriesRequest>) -> Response {
    reply(d.list_categories(c.req(q)).await).await
}

async fn put_category(State(d): Desk_, c: Caller, Body(b): Body<intake::PutCategoryRequest>) -> Response {
    reply(d.put_category(c.req(b)).await).await
}

async fn create_account(State(d): Desk_, c: Caller, Body(b): Body<registry::CreateAccountRequest>) -> Response {
    reply(d.create_account(c.req(b)).await).await
}

async fn disable_account(State(d): Desk_, c: Caller, Path(username): Path<String>) -> Response {
    reply(d.disable_account(c.req(registry::DisableAccountRequest { username })).await).await
}

async fn approve_account(State(d): Desk_, c: Caller, Path(username): Path<String>) -> Response {
    reply(d.approve_account(c.req(registry::ApproveAccountRequest { username })).await).await
}

async fn create_client(State(d): Desk_, c: Caller, Body(b): Body<registry::CreateClientRequest>) -> Response {
    reply(d.create_client(c.req(b)).await).await
}

async fn revoke_client(State(d): Desk_, c: Caller, Path(client_id): Path<String>) -> Response {
    reply(d.revoke_client(c.req(registry::RevokeClientRequest { client_id })).await).await
}

async fn rotate_client_secret(State(d): Desk_, c: Caller, Path(client_id): Path<String>) -> Response {
    reply(d.rotate_client_secret(c.req(registry::RotateClientSecretRequest { client_id })).await).await
}

async fn set_grant(State(d): Desk_, c: Caller, Body(b): Body<registry::SetGrantRequest>) -> Response {
    reply(d.set_grant(c.req(b)).await).await
}

async fn list_grants(State(d): Desk_, c: Caller, Params(q): Params<registry::ListGrantsRequest>) -> Response {
    reply(d.list_grants(c.req(q)).await).await
}

async fn revoke_grant(State(d): Desk_, c: Caller, Path(grant_id): Path<String>) -> Response {
    reply(d.revoke_grant(c.req(registry::RevokeGrantRequest { grant_id })).await).await
}
