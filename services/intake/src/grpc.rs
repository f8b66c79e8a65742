//! The gRPC face, transport only: request → parsed domain value → one call → response, and the mapping of
//! the domain's aggregates to protobuf.

use kit::auth::Permission;
use kit::grpc::parsed;
use kit::ids::CaseRef;
use kit::{FieldError, field};
use proto::intake::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::board::{Board, BoardInput};
use crate::domain::categories::{Category, NewCategory};
use crate::domain::duplicates::{MergeRequest, UnmergeRequest};
use crate::domain::{
    CaseFile, MergedCase, NewCase, Party, PartyInput, RegistrationInput, Reporter, TimelineEntry, Unmask,
};
use crate::service::{Cases, Duplicate};

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
        let r = self.0.register(new, &who).await?;
        let target = format!("case:{}", r.file.case.id);
        let response = pb::RegisterCaseResponse {
            case: Some(to_case(r.file)),
            replayed: r.replayed,
            likely_duplicates: r.likely_duplicates.into_iter().map(to_candidate).collect(),
        };
        Ok(kit::audit::target(Response::new(response), target))
    }

    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::GetCaseResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let case_ref = parsed(CaseRef::parse("case_ref", &request.get_ref().case_ref))?;
        let scope = who.scope(Permission::ReadCase);
        let file = self.0.file(&case_ref, &scope).await?;
        let target = format!("case:{}", file.case.id);
        let case = viewed(&scope, to_case(file));
        Ok(kit::audit::target(Response::new(pb::GetCaseResponse { case: Some(case) }), target))
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
        let cases = found.into_iter().map(|case| viewed(&scope, to_case(CaseFile::summary(case)))).collect();
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
            state: r.state,
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
            counts: page.counts.into_iter().map(|(s, count)| pb::StateCount { state: s.into(), count }).collect(),
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

    async fn list_duplicate_candidates(
        &self,
        request: Request<pb::ListDuplicateCandidatesRequest>,
    ) -> Result<Response<pb::ListDuplicateCandidatesResponse>, Status> {
        let scope = kit::auth::principal(&request)?.scope(Permission::ReadCase);
        let case_ref = parsed(CaseRef::parse("case_ref", &request.get_ref().case_ref))?;
        let found = self.0.duplicates(&case_ref, &scope).await?;
        let target = format!("case:{case_ref}");
        let response =
            pb::ListDuplicateCandidatesResponse { candidates: found.into_iter().map(to_candidate).collect() };
        Ok(kit::audit::target(Response::new(response), target))
    }

    async fn merge_case(
        &self,
        request: Request<pb::MergeCaseRequest>,
    ) -> Result<Response<pb::MergeCaseResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let m = parsed(MergeRequest::parse(&r.case_id, &r.into_case_id, &r.reason))?;
        let file = self.0.merge(&who, &m).await?;
        let target = format!("case:{} into:{}", m.case_id, m.into_case_id);
        let response = Response::new(pb::MergeCaseResponse { case: Some(to_case(file)) });
        Ok(kit::audit::target_with_detail(response, target, format!("merge reason: {}", m.reason)))
    }

    async fn unmerge_case(
        &self,
        request: Request<pb::UnmergeCaseRequest>,
    ) -> Result<Response<pb::UnmergeCaseResponse>, Status> {
        let who = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let u = parsed(UnmergeRequest::parse(&r.case_id, &r.reason))?;
        let file = self.0.unmerge(&who, &u).await?;
        let target = format!("case:{}", u.case_id);
        let response = Response::new(pb::UnmergeCaseResponse { case: Some(to_case(file)) });
        Ok(kit::audit::target_with_detail(response, target, format!("unmerge reason: {}", u.reason)))
    }
}

fn to_candidate(d: Duplicate) -> pb::DuplicateCandidate {
    let (k, c) = (d.candidate, d.case);
    pb::DuplicateCandidate {
        case_id: c.id.to_string(),
        case_no: c.case_no.into(),
        title: c.title,
        category_code: c.category_code,
        state: c.state.into(),
        grid_code: c.grid_code,
        village_code: c.village_code.into(),
        channel: c.channel.into(),
        registered_at: kit::time::local(c.registered_at),
        score: k.score,
        same_phone: k.same_phone,
        same_grid: k.same_grid,
        text_similarity: k.text_similarity,
    }
}

/// The case as the reader may see it: the status view for another system's client, the file for staff.
fn viewed(scope: &kit::auth::ScopeSet, case: pb::Case) -> pb::Case {
    if crate::status_view::client_only(scope) { crate::status_view::of(case) } else { case }
}

fn to_party(p: Party) -> pb::Party {
    pb::Party { name: p.name, phone: p.phone_masked, id_number: p.id_number_masked, role: p.role.into() }
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
        .map(|p| PartyInput { name: &p.name, role: p.role, phone: &p.phone, id_number: &p.id_number })
        .collect();
    NewCase::parse(&RegistrationInput {
        idempotency_key: &r.idempotency_key,
        center_code: &r.center_code,
        channel: r.channel,
        kind: r.kind,
        category_code: &r.category_code,
        urgency: r.urgency,
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
        case_no: c.case_no.into(),
        channel: c.channel.into(),
        kind: c.kind.into(),
        category_code: c.category_code,
        urgency: c.urgency.into(),
        title: c.title,
        description: c.description,
        grid_code: c.grid_code,
        village_code: c.village_code.into(),
        center_code: c.center_code.into(),
        parties: f.parties.into_iter().map(to_party).collect(),
        state: c.state.into(),
        current_task_id: c.current_task_id,
        current_unit_code: c.current_unit_code,
        reporter_id: c.reporter_id,
        overdue: c.overdue,
        awaiting_follow_up: c.awaiting_follow_up,
        registered_at: kit::time::local(c.registered_at),
        updated_at: kit::time::local(c.updated_at),
        timeline: f.timeline.into_iter().zip(1u64..).map(to_step).collect(),
        merged_into_case_id: c.merged_into.map(|u| u.to_string()).unwrap_or_default(),
        merged_into_case_no: f.merged_into_no,
        merged_cases: f.merged_cases.into_iter().map(to_merged).collect(),
        reporters: f.reporters.into_iter().map(to_reporter).collect(),
    }
}

/// The `seq`th step of the timeline, counting from 1.
fn to_step((t, seq): (TimelineEntry, u64)) -> pb::TimelineEntry {
    pb::TimelineEntry {
        seq,
        at: kit::time::local(t.at),
        actor: t.actor,
        action: t.action,
        from_state: t.from_state.map_or("", |s| s.as_str()).into(),
        to_state: t.to_state.as_str().into(),
        detail: t.detail,
        source: t.source,
    }
}

fn to_merged(m: MergedCase) -> pb::MergedCase {
    pb::MergedCase {
        case_id: m.case_id.to_string(),
        case_no: m.case_no.into(),
        merged_at: kit::time::local(m.merged_at),
        merged_by: m.merged_by,
        reason: m.reason,
    }
}

fn to_reporter(r: Reporter) -> pb::Reporter {
    pb::Reporter {
        case_id: r.case_id.to_string(),
        case_no: r.case_no.into(),
        channel: r.channel.into(),
        reporter_id: r.reporter_id,
        parties: r.parties.into_iter().map(to_party).collect(),
    }
}
