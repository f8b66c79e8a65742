//! The centers room's RPCs (ListDepartments and PutDepartment on the Registry service; EstablishCenter,
//! CloseCenter, SetRotation and ListStationedDepartments on the Tree service): request → parsed values → one
//! call → response.

use kit::error::{Error, Result};
use kit::field;
use proto::registry::v1 as pb;
use sqlx::PgPool;
use tonic::Request;

use super::domain::{Department, Rotation, RotationFields, When, duty_day, parse_rotation};
use super::service;
use crate::scope;

impl From<Department> for pb::Department {
    fn from(d: Department) -> Self {
        pb::Department {
            code: d.code,
            name: d.name,
            center_code: d.center_code,
            stationing: d.stationing.as_str().to_owned(),
            category_prefixes: d.category_prefixes,
            retired: d.retired,
        }
    }
}

fn to_entry(r: &Rotation) -> pb::RotationEntry {
    match r.when {
        When::Weekday(w) => pb::RotationEntry { weekday: u32::from(w), stationed: r.stationed, ..Default::default() },
        When::Dates(f, t) => pb::RotationEntry {
            from_date: f.to_string(),
            to_date: t.to_string(),
            stationed: r.stationed,
            ..Default::default()
        },
    }
}

pub async fn list_departments(
    pool: &PgPool,
    request: Request<pb::ListDepartmentsRequest>,
) -> Result<pb::ListDepartmentsResponse> {
    let center = field::division_code("center_code", &request.get_ref().center_code)?;
    let departments = service::departments(pool, center).await?.into_iter().map(Into::into).collect();
    Ok(pb::ListDepartmentsResponse { departments })
}

pub async fn put_department(
    pool: &PgPool,
    request: Request<pb::PutDepartmentRequest>,
) -> Result<pb::PutDepartmentResponse> {
    let scope = scope::manage(&request)?;
    let d = request.into_inner().department.ok_or_else(|| Error::invalid("department", "is required"))?;
    let department =
        Department::parse(&d.code, &d.name, &d.center_code, &d.stationing, d.category_prefixes, d.retired)?;

    scope::write(&scope, &department.center_code, &format!("center {}", department.center_code))?;
    // The department code is the key of an upsert: one stationed elsewhere is not taken over from outside.
    if let Some(current) = service::department_center(pool, &department.code).await? {
        scope::write(&scope, &current, &format!("department {}", department.code))?;
    }
    let saved = service::put_department(pool, department).await?;
    Ok(pb::PutDepartmentResponse { department: Some(saved.into()) })
}

pub async fn establish_center(
    pool: &PgPool,
    request: Request<pb::EstablishCenterRequest>,
) -> Result<pb::EstablishCenterResponse> {
    let code = field::division_code("code", &request.get_ref().code)?;
    scope::write(&scope::manage(&request)?, code, &format!("center {code}"))?;
    let (node, established) = service::establish(pool, code).await?;
    Ok(pb::EstablishCenterResponse { node: Some(node.into()), established })
}

pub async fn close_center(pool: &PgPool, request: Request<pb::CloseCenterRequest>) -> Result<pb::CloseCenterResponse> {
    let code = field::division_code("code", &request.get_ref().code)?;
    scope::write(&scope::manage(&request)?, code, &format!("center {code}"))?;
    Ok(pb::CloseCenterResponse { node: Some(service::close(pool, code).await?.into()) })
}

pub async fn set_rotation(pool: &PgPool, request: Request<pb::SetRotationRequest>) -> Result<pb::SetRotationResponse> {
    let scope = scope::manage(&request)?;
    let req = request.into_inner();
    let department = field::text("department_code", &req.department_code, 64)?;
    let fields: Vec<RotationFields<'_>> = req
        .entries
        .iter()
        .map(|e| RotationFields {
            weekday: e.weekday,
            from_date: &e.from_date,
            to_date: &e.to_date,
            stationed: e.stationed,
        })
        .collect();
    let lines = parse_rotation(&fields)?;
    let center = service::department_center(pool, department)
        .await?
        .ok_or_else(|| Error::not_found(format!("department {department}")))?;
    scope::write(&scope, &center, &format!("department {department}"))?;
    let saved = service::set_rotation(pool, department, &lines).await?;
    Ok(pb::SetRotationResponse { entries: saved.iter().map(to_entry).collect() })
}

pub async fn list_stationed_departments(
    pool: &PgPool,
    request: Request<pb::ListStationedDepartmentsRequest>,
) -> Result<pb::ListStationedDepartmentsResponse> {
    let req = request.into_inner();
    let center = field::division_code("center_code", &req.center_code)?;
    let today = chrono::Utc::now().with_timezone(&kit::time::shanghai()).date_naive();
    let day = duty_day(&req.date, today)?;
    let departments = service::stationed(pool, center, day)
        .await?
        .into_iter()
        .map(|s| pb::StationedDepartment {
            rotation: s.rotation.iter().map(to_entry).collect(),
            on_duty: s.on_duty,
            department: Some(s.department.into()),
        })
        .collect();
    Ok(pb::ListStationedDepartmentsResponse { date: day.to_string(), departments })
}

pub async fn get_department(
    pool: &PgPool,
    request: Request<pb::GetDepartmentRequest>,
) -> Result<pb::GetDepartmentResponse> {
    let req = request.into_inner();
    let code = field::text("code", &req.code, 64)?;
    let today = chrono::Utc::now().with_timezone(&kit::time::shanghai()).date_naive();
    let day = duty_day(&req.date, today)?;
    let s = service::department(pool, code, day).await?;
    Ok(pb::GetDepartmentResponse { on_duty: s.on_duty, department: Some(s.department.into()), date: day.to_string() })
}
