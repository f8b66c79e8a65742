//! The gRPC face, transport only: request → parsed domain value → one call → response, and the mapping of
//! the domain's aggregates to protobuf.

use kit::auth::Permission;
use kit::grpc::parsed;
use kit::{FieldError, field};
use proto::intake::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::board::{Board, BoardInput};
use crate::domain::categories::{Category, NewCategory};
use crate::domain::{CaseFile, NewCase, PartyInput, RegistrationInput, Unmask};
use crate::service::Cases;

pub struct IntakeService(pub Cases);

#[tonic::async_trait]
impl pb::intake_server::Intake for IntakeService {
    async fn register_case(
        &self,
        request: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::RegisterCaseResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let mut new = parsed(parse_registration(request.get_ref()))?;
        // The operator is whoever signed in; a request may say so, but may not name someone else.
        if !new.operator_id.is_empty() && new.operator_id != who.actor() {
            return Err(kit::auth::denied("registering in someone else's name"));
        }
        new.operator_id = who.actor().to_owned();
        let (file, replayed) = self.0.register(new, &who).await?;
        let target = format!("case:{}", file.case.id);
        Ok(kit::audit::target(Response::new(pb::RegisterCaseResponse { case: Some(to_case(file)), replayed }), target))
    }

    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::GetCaseResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let case_ref = parsed(field::text("case_ref", &request.get_ref().case_ref, 64))?;
        let file = self.0.file(case_ref, &who.scope(Permission::ReadCase)).await?;
        let target = format!("case:{}", file.case.id);
        Ok(kit::audit::target(Response::new(pb::GetCaseResponse { case: Some(to_case(file)) }), target))
    }

    async fn unmask_party(
        &self,
        request: Request<pb::UnmaskPartyRequest>,
    ) -> Result<Response<pb::UnmaskPartyResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let u = parsed(Unmask::parse(&r.case_id, r.party, &r.field, &r.reason))?;
        let value = self.0.unmask(&who, u.case_id, u.party, u.id_number).await?;
        let target = format!("case:{} party:{} field:{}", u.case_id, u.party, r.field);
        let response = Response::new(pb::UnmaskPartyResponse { value });
        Ok(kit::audit::target_with_detail(response, target, format!("unmask purpose: {}", u.reason)))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let scope = kit::auth::principal(&request)?.scope(Permission::ReadCase);
        let req = request.into_inner();
        let center = parsed(field::division_code("center_code", &req.center_code))?;
        let (found, next_page_token) = self.0.list(center, &scope, req.page_size, &req.page_token).await?;
        let cases = found.into_iter().map(|case| to_case(CaseFile::summary(case))).collect();
        Ok(Response::new(pb::ListCasesResponse { cases, next_page_token }))
    }

    async fn list_case_board(
        &self,
        request: Request<pb::ListCaseBoardRequest>,
    ) -> Result<Response<pb::ListCaseBoardResponse>, Status> {
        let scope = kit::auth::principal(&request)?.scope(Permission::ReadCase);
        let r = request.get_ref();
        let board = parsed(Board::parse(&BoardInput {
            center_code: &r.center_code,
            queue: &r.queue,
            state: &r.state,
            category_prefix: &r.category_prefix,
            registered_after: &r.registered_after,
            registered_before: &r.registered_before,
            overdue_only: r.overdue_only,
            page_size: r.page_size,
            page_token: &r.page_token,
        }))?;
        let page = self.0.board(&scope, &board).await?;
        Ok(Response::new(pb::ListCaseBoardResponse {
            cases: page.cases.into_iter().map(|case| to_case(CaseFile::summary(case))).collect(),
            next_page_token: page.next_page_token,
            counts: page
                .counts
                .into_iter()
                .map(|(s, count)| pb::StateCount { state: s.as_str().to_owned(), count })
                .collect(),
            overdue: page.overdue,
            awaiting_verification: page.awaiting_verification,
            awaiting_follow_up: page.awaiting_follow_up,
        }))
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        kit::auth::principal(&request)?;
        let categories = self.0.categories(request.get_ref().include_inactive).await?;
        Ok(Response::new(pb::ListCategoriesResponse { categories: categories.into_iter().map(to_category).collect() }))
    }

    /// Adds the next version of a category; see [`crate::domain::categories::may_write_code_table`] for who may.
    async fn put_category(
        &self,
        request: Request<pb::PutCategoryRequest>,
    ) -> Result<Response<pb::PutCategoryResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let new = parsed(NewCategory::parse(&r.code, &r.kind, &r.name, r.active))?;
        let category = self.0.put_category(&who, new).await?;
        let target = format!("category:{} version:{}", category.code, category.version);
        let response = pb::PutCategoryResponse { category: Some(to_category(category)) };
        Ok(kit::audit::target(Response::new(response), target))
    }
}

fn to_category(c: Category) -> pb::Category {
    pb::Category {
        code: c.code,
        version: u32::try_from(c.version).unwrap_or_default(),
        kind: c.kind.as_str().into(),
        name: c.name,
        active: c.active,
        created_by: c.created_by,
    }
}

/// The request's fields as the domain parses them ([`NewCase::parse`]).
fn parse_registration(r: &pb::RegisterCaseRequest) -> Result<NewCase, FieldError> {
    let parties: Vec<PartyInput<'_>> = r
        .parties
        .iter()
        .map(|p| PartyInput { name: &p.name, role: &p.role, phone: &p.phone, id_number: &p.id_number })
        .collect();
    NewCase::parse(&RegistrationInput {
        idempotency_key: &r.idempotency_key,
        center_code: &r.center_code,
        channel: &r.channel,
        kind: &r.kind,
        category_code: &r.category_code,
        urgency: &r.urgency,
        title: &r.title,
        description: &r.description,
        location_code: &r.location_code,
        parties: &parties,
        reporter_id: &r.reporter_id,
        operator_id: &r.operator_id,
    })
}

fn to_case(f: CaseFile) -> pb::Case {
    let c = f.case;
    pb::Case {
        id: c.id.to_string(),
        case_no: c.case_no,
        channel: c.channel.as_str().into(),
        kind: c.kind.as_str().into(),
        category_code: c.category_code,
        urgency: c.urgency.as_str().into(),
        title: c.title,
        description: c.description,
        grid_code: c.grid_code,
        village_code: c.village_code,
        center_code: c.center_code,
        parties: f
            .parties
            .into_iter()
            .map(|p| pb::Party {
                name: p.name,
                phone: p.phone_masked,
                id_number: p.id_number_masked,
                role: p.role.as_str().into(),
            })
            .collect(),
        state: c.state.as_str().into(),
        current_task_id: c.current_task_id,
        current_unit_code: c.current_unit_code,
        reporter_id: c.reporter_id,
        overdue: c.overdue,
        awaiting_follow_up: c.awaiting_follow_up,
        registered_at: kit::time::local(c.registered_at),
        updated_at: kit::time::local(c.updated_at),
        timeline: f
            .timeline
            .into_iter()
            .zip(1u64..)
            .map(|(t, seq)| pb::TimelineEntry {
                seq,
                at: kit::time::local(t.at),
                actor: t.actor,
                action: t.action,
                from_state: t.from_state.map_or("", |s| s.as_str()).into(),
                to_state: t.to_state.as_str().into(),
                detail: t.detail,
                source: t.source,
            })
            .collect(),
    }
}
