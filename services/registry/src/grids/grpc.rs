//! The grids room's RPCs (grids, persons and assignments, ListChildren and ResolveLocation on the Registry
//! service; ChangeEligibility and ListEligibilityChanges on the Tree service): request → parsed values → one
//! call → response.

use kit::error::{Error, Result};
use kit::ids::PersonId;
use proto::registry::v1 as pb;
use tonic::Request;

use super::domain::{EligibilityChange, EligibilityUpdate, Grid, GridPlace, NewPerson, Person, grid_name};
use super::service::{self, Grids};
use crate::scope;
use crate::shared::{grid_code, next_page_token, node_code, page_size};

impl From<Grid> for pb::Grid {
    fn from(g: Grid) -> Self {
        pb::Grid {
            code: g.code,
            name: g.name,
            village_code: g.village_code,
            kind: g.kind.into(),
            parent_grid_code: g.parent_grid_code.unwrap_or_default(),
            primary_worker_id: g.primary_worker_id.map(|p| p.to_string()).unwrap_or_default(),
            retired: g.retired,
        }
    }
}

/// A grid shown as a node of the tree.
fn grid_node(g: Grid) -> pb::Node {
    pb::Node {
        level: g.level(),
        parent_code: g.parent_node().to_owned(),
        code: g.code,
        name: g.name,
        has_center: false,
    }
}

impl From<Person> for pb::Person {
    fn from(p: Person) -> Self {
        pb::Person {
            id: p.id.to_string(),
            name: p.name,
            role: p.role.into(),
            phone: p.phone_masked,
            id_number: p.id_number_masked,
            home_code: p.home_code,
            subsidy_eligible: p.subsidy_eligible,
            eligibility_source: p.eligibility_source,
        }
    }
}

impl From<EligibilityChange> for pb::EligibilityChange {
    fn from(c: EligibilityChange) -> Self {
        pb::EligibilityChange {
            from_eligible: c.from_eligible,
            to_eligible: c.to_eligible,
            from_source: c.from_source,
            to_source: c.to_source,
            reason: c.reason,
            changed_at: kit::time::local(c.changed_at),
        }
    }
}

fn worker_id(id: Option<PersonId>) -> String {
    id.map(|p| p.to_string()).unwrap_or_default()
}

pub async fn list_children(g: &Grids, request: Request<pb::ListChildrenRequest>) -> Result<pb::ListChildrenResponse> {
    let req = request.into_inner();
    let code = node_code("code", &req.code)?;
    let limit = page_size(req.page_size, 100, 1000);
    let (nodes, grids) = g.children(code, &req.page_token, limit).await?;
    let children: Vec<pb::Node> = nodes.into_iter().map(Into::into).chain(grids.into_iter().map(grid_node)).collect();
    let next_page_token = next_page_token(&children, limit, |n| &n.code);
    Ok(pb::ListChildrenResponse { children, next_page_token })
}

pub async fn resolve_location(
    g: &Grids,
    request: Request<pb::ResolveLocationRequest>,
) -> Result<pb::ResolveLocationResponse> {
    let code = node_code("location_code", &request.get_ref().location_code)?;
    let r = g.resolve(code).await?;
    Ok(pb::ResolveLocationResponse {
        grid_code: r.grid.as_ref().map(|g| g.code.clone()).unwrap_or_default(),
        village_code: r.village_code,
        path: r.path.into_iter().map(Into::into).collect(),
        grid_worker_id: worker_id(r.grid.and_then(|g| g.primary_worker_id)),
    })
}

pub async fn create_grid(g: &Grids, request: Request<pb::CreateGridRequest>) -> Result<pb::CreateGridResponse> {
    let scope = scope::manage(&request)?;
    let req = request.into_inner();
    let place = GridPlace::parse(req.kind, &req.village_code, &req.parent_grid_code)?;
    let name = grid_name(&req.name)?;
    scope::write(&scope, place.parent, &place.describe())?;
    let grid = g.create_grid(place, name).await?;
    Ok(pb::CreateGridResponse { grid: Some(grid.into()) })
}

pub async fn get_grid(g: &Grids, request: Request<pb::GetGridRequest>) -> Result<pb::GetGridResponse> {
    let code = grid_code("code", &request.get_ref().code)?;
    Ok(pb::GetGridResponse { grid: Some(g.grid(code).await?.into()) })
}

pub async fn update_grid(g: &Grids, request: Request<pb::UpdateGridRequest>) -> Result<pb::UpdateGridResponse> {
    let scope = scope::manage(&request)?;
    let req = request.into_inner();
    let code = grid_code("code", &req.code)?;
    let name = grid_name(&req.name)?;
    scope::write(&scope, code, &format!("grid {code}"))?;
    Ok(pb::UpdateGridResponse { grid: Some(g.rename_grid(code, name).await?.into()) })
}

pub async fn retire_grid(g: &Grids, request: Request<pb::RetireGridRequest>) -> Result<pb::RetireGridResponse> {
    let code = grid_code("code", &request.get_ref().code)?;
    scope::write(&scope::manage(&request)?, code, &format!("grid {code}"))?;
    let r = g.retire_grid(code).await?;
    Ok(pb::RetireGridResponse {
        grid: Some(r.grid.into()),
        retired_micro_grids: r.micro_grids,
        ended_worker_ids: r.ended_workers.iter().map(ToString::to_string).collect(),
    })
}

pub async fn end_grid_assignment(
    g: &Grids,
    request: Request<pb::EndGridAssignmentRequest>,
) -> Result<pb::EndGridAssignmentResponse> {
    let code = grid_code("grid_code", &request.get_ref().grid_code)?;
    scope::write(&scope::manage(&request)?, code, &format!("grid {code}"))?;
    let (grid, previous) = g.end_assignment(code).await?;
    Ok(pb::EndGridAssignmentResponse { grid: Some(grid.into()), previous_worker_id: worker_id(previous) })
}

pub async fn create_person(g: &Grids, request: Request<pb::CreatePersonRequest>) -> Result<pb::CreatePersonResponse> {
    let scope = scope::manage(&request)?;
    let r = request.into_inner();
    let person = NewPerson::parse(
        &r.name,
        r.role,
        &r.phone,
        &r.id_number,
        &r.home_code,
        r.subsidy_eligible,
        &r.eligibility_source,
    )?;

    scope::write(&scope, person.home_code, &format!("home {}", person.home_code))?;
    Ok(pb::CreatePersonResponse { person: Some(g.create_person(person).await?.into()) })
}

pub async fn get_person(g: &Grids, request: Request<pb::GetPersonRequest>) -> Result<pb::GetPersonResponse> {
    let (principal, scope) = scope::reach(&request, kit::auth::Permission::ManageGrids)?;
    let id = PersonId::parse("id", &request.get_ref().id)?;
    let person = g.person(id).await?;
    if !scope::person_visible(&principal, &scope, &person.home_code) {
        return Err(Error::not_found(format!("person {id}")));
    }
    Ok(pb::GetPersonResponse { person: Some(person.into()) })
}

pub async fn assign_grid_worker(
    g: &Grids,
    request: Request<pb::AssignGridWorkerRequest>,
) -> Result<pb::AssignGridWorkerResponse> {
    let scope = scope::manage(&request)?;
    let req = request.into_inner();
    let grid = grid_code("grid_code", &req.grid_code)?;
    let person = PersonId::parse("person_id", &req.person_id)?;
    scope::write(&scope, grid, &format!("grid {grid}"))?;
    // A worker from outside the administrator's subtree cannot be drawn into it.
    scope::write(&scope, &service::person_home(&g.pool, person).await?, &format!("person {person}"))?;
    let (grid, previous) = g.assign(grid, person).await?;
    Ok(pb::AssignGridWorkerResponse { grid: Some(grid.into()), previous_worker_id: worker_id(previous) })
}

pub async fn change_eligibility(
    g: &Grids,
    request: Request<pb::ChangeEligibilityRequest>,
) -> Result<pb::ChangeEligibilityResponse> {
    let scope = scope::manage(&request)?;
    let req = request.into_inner();
    let person = PersonId::parse("person_id", &req.person_id)?;
    let update = EligibilityUpdate::parse(req.subsidy_eligible, &req.eligibility_source, &req.reason)?;
    scope::write(&scope, &service::person_home(&g.pool, person).await?, &format!("person {person}"))?;
    let row = service::change_eligibility(&g.pool, person, &update).await?;
    Ok(pb::ChangeEligibilityResponse { person: Some(row.into()) })
}

pub async fn list_eligibility_changes(
    g: &Grids,
    request: Request<pb::ListEligibilityChangesRequest>,
) -> Result<pb::ListEligibilityChangesResponse> {
    let person = PersonId::parse("person_id", &request.get_ref().person_id)?;
    // A read: a person outside scope is not found, as a missing one is.
    if !scope::manage(&request)?.covers_node(&service::person_home(&g.pool, person).await?) {
        return Err(Error::not_found(format!("person {person}")));
    }
    let changes = service::eligibility_changes(&g.pool, person).await?.into_iter().map(Into::into).collect();
    Ok(pb::ListEligibilityChangesResponse { changes })
}
