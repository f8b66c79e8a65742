//! The gRPC face: request → parsed value → one call → response.

use kit::{FieldError, field};
use proto::registry::v1 as pb;
use tonic::{Request, Response, Status};

use crate::db::{DepartmentRow, GridRow, NodeRow, PersonRow};
use crate::domain::{GRID_LEVEL, GridKind, MICRO_GRID_LEVEL, PersonRole, Stationing, is_grid_code};
use crate::error::Error;
use crate::scope;
use crate::tree::{self, PersonInput, Registry};

pub struct RegistryService(pub Registry);

fn bad(e: FieldError) -> Status {
    kit::grpc::invalid(&e)
}

/// A division code or a grid code.
fn location<'a>(field_name: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = field::required(field_name, value)?;
    if kit::division::is_code(v) || is_grid_code(v) {
        Ok(v)
    } else {
        Err(FieldError::new(field_name, "must be a 12-digit division code or a 15/18-digit grid code"))
    }
}

/// A 15- or 18-digit grid code.
fn grid_code<'a>(field_name: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = field::required(field_name, value)?;
    if is_grid_code(v) { Ok(v) } else { Err(FieldError::new(field_name, "must be a 15- or 18-digit grid code")) }
}

#[tonic::async_trait]
impl pb::registry_server::Registry for RegistryService {
    async fn get_node(&self, request: Request<pb::GetNodeRequest>) -> Result<Response<pb::GetNodeResponse>, Status> {
        let code = field::division_code("code", &request.get_ref().code).map_err(bad)?;
        let (node, ancestors) = self.0.node(code).await?;
        Ok(Response::new(pb::GetNodeResponse {
            node: Some(to_node(node)),
            ancestors: ancestors.into_iter().map(to_node).collect(),
        }))
    }

    async fn list_children(
        &self,
        request: Request<pb::ListChildrenRequest>,
    ) -> Result<Response<pb::ListChildrenResponse>, Status> {
        let req = request.into_inner();
        let code = location("code", &req.code).map_err(bad)?;
        let limit = i64::from(if req.page_size == 0 { 100 } else { req.page_size.min(1000) });
        let (nodes, grids) = self.0.children(code, &req.page_token, limit).await?;
        let children: Vec<pb::Node> = nodes.into_iter().map(to_node).chain(grids.into_iter().map(grid_node)).collect();
        let next_page_token = match children.last() {
            Some(last) if children.len() as i64 == limit => last.code.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListChildrenResponse { children, next_page_token }))
    }

    async fn resolve_location(
        &self,
        request: Request<pb::ResolveLocationRequest>,
    ) -> Result<Response<pb::ResolveLocationResponse>, Status> {
        let code = location("location_code", &request.get_ref().location_code).map_err(bad)?;
        let r = self.0.resolve(code).await?;
        Ok(Response::new(pb::ResolveLocationResponse {
            grid_code: r.grid.as_ref().map(|g| g.code.clone()).unwrap_or_default(),
            village_code: r.village_code,
            path: r.path.into_iter().map(to_node).collect(),
            grid_worker_id: r.grid.and_then(|g| g.primary_worker_id).map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    async fn create_grid(
        &self,
        request: Request<pb::CreateGridRequest>,
    ) -> Result<Response<pb::CreateGridResponse>, Status> {
        let scope = scope::manage(&request)?;
        let req = request.into_inner();
        let kind = GridKind::parse("kind", &req.kind).map_err(bad)?;
        let name = field::text("name", &req.name, 64).map_err(bad)?;
        let parent = match kind {
            GridKind::Grid => field::division_code("village_code", &req.village_code).map_err(bad)?,
            GridKind::MicroGrid => {
                let p = field::required("parent_grid_code", &req.parent_grid_code).map_err(bad)?;
                if p.len() != 15 || !is_grid_code(p) {
                    return Err(bad(FieldError::new("parent_grid_code", "must be a 15-digit grid code")));
                }
                p
            }
        };
        let parent_kind = if kind == GridKind::Grid { "village" } else { "grid" };
        scope::write(&scope, parent, &format!("{parent_kind} {parent}"))?;
        let grid = self.0.create_grid(parent, name, kind).await?;
        Ok(Response::new(pb::CreateGridResponse { grid: Some(to_grid(grid)) }))
    }

    async fn get_grid(&self, request: Request<pb::GetGridRequest>) -> Result<Response<pb::GetGridResponse>, Status> {
        let code = grid_code("code", &request.get_ref().code).map_err(bad)?;
        let grid = self.0.grid(code).await?;
        Ok(Response::new(pb::GetGridResponse { grid: Some(to_grid(grid)) }))
    }

    async fn update_grid(
        &self,
        request: Request<pb::UpdateGridRequest>,
    ) -> Result<Response<pb::UpdateGridResponse>, Status> {
        let scope = scope::manage(&request)?;
        let req = request.into_inner();
        let code = grid_code("code", &req.code).map_err(bad)?;
        let name = field::text("name", &req.name, 64).map_err(bad)?;
        scope::write(&scope, code, &format!("grid {code}"))?;
        let grid = self.0.rename_grid(code, name).await?;
        Ok(Response::new(pb::UpdateGridResponse { grid: Some(to_grid(grid)) }))
    }

    async fn retire_grid(
        &self,
        request: Request<pb::RetireGridRequest>,
    ) -> Result<Response<pb::RetireGridResponse>, Status> {
        let code = grid_code("code", &request.get_ref().code).map_err(bad)?;
        scope::write(&scope::manage(&request)?, code, &format!("grid {code}"))?;
        let r = self.0.retire_grid(code).await?;
        Ok(Response::new(pb::RetireGridResponse {
            grid: Some(to_grid(r.grid)),
            retired_micro_grids: r.micro_grids,
            ended_worker_ids: r.ended_workers.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn end_grid_assignment(
        &self,
        request: Request<pb::EndGridAssignmentRequest>,
    ) -> Result<Response<pb::EndGridAssignmentResponse>, Status> {
        let code = grid_code("grid_code", &request.get_ref().grid_code).map_err(bad)?;
        scope::write(&scope::manage(&request)?, code, &format!("grid {code}"))?;
        let (grid, previous) = self.0.end_assignment(code).await?;
        Ok(Response::new(pb::EndGridAssignmentResponse {
            grid: Some(to_grid(grid)),
            previous_worker_id: previous.map(|p| p.to_string()).unwrap_or_default(),
        }))
    }

    async fn create_person(
        &self,
        request: Request<pb::CreatePersonRequest>,
    ) -> Result<Response<pb::CreatePersonResponse>, Status> {
        let scope = scope::manage(&request)?;
        let r = request.into_inner();
        let phone = r.phone.trim();
        if !phone.is_empty() && !kit::pii::valid_phone(phone) {
            return Err(bad(FieldError::new("phone", "must be an 11-digit mobile number")));
        }
        let id_number = r.id_number.trim();
        if !id_number.is_empty() && !kit::pii::valid_id_number(id_number) {
            return Err(bad(FieldError::new(
                "id_number",
                "must be an 18-character ID number with a valid check digit",
            )));
        }
        let eligibility_source = field::bounded("eligibility_source", &r.eligibility_source, 200).map_err(bad)?;
        if r.subsidy_eligible && eligibility_source.is_empty() {
            return Err(bad(FieldError::new("eligibility_source", "is required when subsidy_eligible is set")));
        }
        let input = PersonInput {
            name: field::text("name", &r.name, 64).map_err(bad)?,
            role: PersonRole::parse("role", &r.role).map_err(bad)?,
            phone: (!phone.is_empty()).then_some(phone),
            id_number: (!id_number.is_empty()).then_some(id_number),
            home_code: location("home_code", &r.home_code).map_err(bad)?,
            subsidy_eligible: r.subsidy_eligible,
            eligibility_source,
        };
        scope::write(&scope, input.home_code, &format!("home {}", input.home_code))?;
        let person = self.0.create_person(input).await?;
        Ok(Response::new(pb::CreatePersonResponse { person: Some(to_person(person)) }))
    }

    async fn get_person(
        &self,
        request: Request<pb::GetPersonRequest>,
    ) -> Result<Response<pb::GetPersonResponse>, Status> {
        let (principal, scope) = scope::reach(&request, kit::auth::Permission::ManageGrids)?;
        let id = field::uuid("id", &request.get_ref().id).map_err(bad)?;
        let person = self.0.person(id).await?;
        if !scope::person_visible(&principal, &scope, &person.home_code) {
            return Err(Error::NotFound(format!("person {id}")).into());
        }
        Ok(Response::new(pb::GetPersonResponse { person: Some(to_person(person)) }))
    }

    async fn assign_grid_worker(
        &self,
        request: Request<pb::AssignGridWorkerRequest>,
    ) -> Result<Response<pb::AssignGridWorkerResponse>, Status> {
        let scope = scope::manage(&request)?;
        let req = request.into_inner();
        let grid = grid_code("grid_code", &req.grid_code).map_err(bad)?;
        let person = field::uuid("person_id", &req.person_id).map_err(bad)?;
        scope::write(&scope, grid, &format!("grid {grid}"))?;
        // A worker from outside the administrator's subtree cannot be drawn into it.
        scope::write(&scope, &tree::person_home(&self.0.pool, person).await?, &format!("person {person}"))?;
        let (grid, previous) = self.0.assign(grid, person).await?;
        Ok(Response::new(pb::AssignGridWorkerResponse {
            grid: Some(to_grid(grid)),
            previous_worker_id: previous.map(|p| p.to_string()).unwrap_or_default(),
        }))
    }

    async fn list_departments(
        &self,
        request: Request<pb::ListDepartmentsRequest>,
    ) -> Result<Response<pb::ListDepartmentsResponse>, Status> {
        let center = field::division_code("center_code", &request.get_ref().center_code).map_err(bad)?;
        let departments = self.0.departments(center).await?.into_iter().map(to_department).collect();
        Ok(Response::new(pb::ListDepartmentsResponse { departments }))
    }

    async fn put_department(
        &self,
        request: Request<pb::PutDepartmentRequest>,
    ) -> Result<Response<pb::PutDepartmentResponse>, Status> {
        let scope = scope::manage(&request)?;
        let d = request.into_inner().department.ok_or_else(|| bad(FieldError::new("department", "is required")))?;
        let row = DepartmentRow {
            code: field::text("department.code", &d.code, 64).map_err(bad)?.to_owned(),
            name: field::text("department.name", &d.name, 100).map_err(bad)?.to_owned(),
            center_code: field::division_code("department.center_code", &d.center_code).map_err(bad)?.to_owned(),
            stationing: Stationing::parse("department.stationing", &d.stationing).map_err(bad)?.as_str().to_owned(),
            category_prefixes: d.category_prefixes,
        };
        scope::write(&scope, &row.center_code, &format!("center {}", row.center_code))?;
        // The department code is the key of an upsert: one stationed elsewhere is not taken over from outside.
        if let Some(current) = tree::department_center(&self.0.pool, &row.code).await? {
            scope::write(&scope, &current, &format!("department {}", row.code))?;
        }
        let saved = self.0.put_department(row).await?;
        Ok(Response::new(pb::PutDepartmentResponse { department: Some(to_department(saved)) }))
    }
}

pub(crate) fn to_node(n: NodeRow) -> pb::Node {
    pb::Node {
        code: n.code,
        name: n.name,
        level: u32::try_from(n.level).unwrap_or(0),
        parent_code: n.parent_code.unwrap_or_default(),
        has_center: n.has_center,
    }
}

fn grid_node(g: GridRow) -> pb::Node {
    let level = if g.kind == GridKind::MicroGrid.as_str() { MICRO_GRID_LEVEL } else { GRID_LEVEL };
    pb::Node {
        parent_code: g.parent_grid_code.unwrap_or(g.village_code),
        code: g.code,
        name: g.name,
        level,
        has_center: false,
    }
}

fn to_grid(g: GridRow) -> pb::Grid {
    pb::Grid {
        code: g.code,
        name: g.name,
        village_code: g.village_code,
        kind: g.kind,
        parent_grid_code: g.parent_grid_code.unwrap_or_default(),
        primary_worker_id: g.primary_worker_id.map(|p| p.to_string()).unwrap_or_default(),
        retired: g.retired,
    }
}

pub(crate) fn to_person(p: PersonRow) -> pb::Person {
    pb::Person {
        id: p.id.to_string(),
        name: p.name,
        role: p.role,
        phone: p.phone_masked,
        id_number: p.id_number_masked,
        home_code: p.home_code,
        subsidy_eligible: p.subsidy_eligible,
        eligibility_source: p.eligibility_source,
    }
}

pub(crate) fn to_department(d: DepartmentRow) -> pb::Department {
    pb::Department {
        code: d.code,
        name: d.name,
        center_code: d.center_code,
        stationing: d.stationing,
        category_prefixes: d.category_prefixes,
    }
}
