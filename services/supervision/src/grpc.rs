//! The gRPC face, transport only: request → parsed domain value → one call → the aggregate mapped to protobuf.

use kit::field;
use kit::ids::CaseId;
use proto::supervision::v1 as pb;
use tonic::{Request, Response, Status};

use crate::db::PolicyRow;
use crate::domain::changes::{ChangeRequest, ClockChange, Decision, NOTE_CHARS};
use crate::domain::policy::NewPolicy;
use crate::domain::rates::{Figures, Format, RatesQuery, RatesTable};
use crate::domain::{Closure, Deadline, FollowUp, SlipRecord, Stage, TASK_SLIP_PREFIX, TaskSlip, Verification};
use crate::service::Supervision;

pub struct SupervisionService(pub Supervision);

#[tonic::async_trait]
impl pb::supervision_server::Supervision for SupervisionService {
    async fn verify_case(
        &self,
        request: Request<pb::VerifyCaseRequest>,
    ) -> Result<Response<pb::VerifyCaseResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let v = Verification::parse(&r.case_id, &r.verifier_id, r.passed, &r.closure_reason, &r.note)
            .map_err(|e| kit::grpc::invalid(&e))?;
        let caller = crate::service::resolution::Caller::of(request.metadata());
        let closure = self.0.verify(&p, v, &caller).await?;
        Ok(Response::new(pb::VerifyCaseResponse { closure: Some(to_closure(closure)) }))
    }

    async fn follow_up(&self, request: Request<pb::FollowUpRequest>) -> Result<Response<pb::FollowUpResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let f =
            FollowUp::parse(&r.case_id, &r.visitor_id, r.satisfaction, &r.note).map_err(|e| kit::grpc::invalid(&e))?;
        let (closure, reopened) = self.0.follow_up(&p, f).await?;
        Ok(Response::new(pb::FollowUpResponse { closure: Some(to_closure(closure)), reopened }))
    }

    async fn list_deadlines(
        &self,
        request: Request<pb::ListDeadlinesRequest>,
    ) -> Result<Response<pb::ListDeadlinesResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let case_id = CaseId::parse("case_id", &request.get_ref().case_id).map_err(|e| kit::grpc::invalid(&e))?;
        let deadlines = self.0.deadlines(&p, case_id).await?;
        Ok(Response::new(pb::ListDeadlinesResponse { deadlines: deadlines.into_iter().map(to_deadline).collect() }))
    }

    async fn import_calendar(
        &self,
        request: Request<pb::ImportCalendarRequest>,
    ) -> Result<Response<pb::ImportCalendarResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let center = r.center_code.trim();
        let center = if center.is_empty() {
            center
        } else {
            field::division_code("center_code", center).map_err(|e| kit::grpc::invalid(&e))?
        };
        let done = self.0.import_calendar(&p, center, &r.csv).await?;
        Ok(Response::new(pb::ImportCalendarResponse {
            rows: u32::try_from(done.rows).unwrap_or(u32::MAX),
            years: done.years,
            replaced: done.replaced,
        }))
    }

    async fn list_slips(
        &self,
        request: Request<pb::ListSlipsRequest>,
    ) -> Result<Response<pb::ListSlipsResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let case_id = CaseId::parse("case_id", &request.get_ref().case_id).map_err(|e| kit::grpc::invalid(&e))?;
        let (tasks, slips) = self.0.slips(&p, case_id).await?;
        // Each dispatch's task slip, then the 督办 slips, all in issue order.
        let mut all: Vec<(chrono::DateTime<chrono::Utc>, pb::Slip)> =
            tasks.into_iter().map(|(t, code)| (t.issued_at(), to_task_slip(t, code))).collect();
        all.extend(slips.into_iter().map(|s| (s.issued_at, to_slip(s))));
        all.sort_by_key(|(at, _)| *at);
        Ok(Response::new(pb::ListSlipsResponse { slips: all.into_iter().map(|(_, s)| s).collect() }))
    }

    async fn acknowledge_slip(
        &self,
        request: Request<pb::AcknowledgeSlipRequest>,
    ) -> Result<Response<pb::AcknowledgeSlipResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let number = field::text("number", &request.get_ref().number, 64).map_err(|e| kit::grpc::invalid(&e))?;
        let slip = self.0.acknowledge_slip(&p, number).await?;
        Ok(Response::new(pb::AcknowledgeSlipResponse { slip: Some(to_slip(slip)) }))
    }

    async fn get_slip_pdf(
        &self,
        request: Request<pb::GetSlipPdfRequest>,
    ) -> Result<Response<pb::GetSlipPdfResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let number = field::text("number", &request.get_ref().number, 64).map_err(|e| kit::grpc::invalid(&e))?;
        let pdf = if number.starts_with(TASK_SLIP_PREFIX) {
            self.0.print_task_slip(&p, number).await?
        } else {
            let slip = self.0.slip(&p, number).await?;
            self.0.slips.print(&slip)?
        };
        Ok(Response::new(pb::GetSlipPdfResponse { pdf, filename: format!("{number}.pdf") }))
    }

    async fn request_clock_change(
        &self,
        request: Request<pb::RequestClockChangeRequest>,
    ) -> Result<Response<pb::RequestClockChangeResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let req = ChangeRequest::parse(&r.task_id, &r.stage, r.kind, &r.reason, &r.new_due_at)
            .map_err(|e| kit::grpc::invalid(&e))?;
        let change = self.0.request_change(&p, req).await?;
        Ok(Response::new(pb::RequestClockChangeResponse { change: Some(to_change(change)) }))
    }

    async fn decide_clock_change(
        &self,
        request: Request<pb::DecideClockChangeRequest>,
    ) -> Result<Response<pb::DecideClockChangeResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let d = Decision::parse(&r.id, r.approve, &r.note).map_err(|e| kit::grpc::invalid(&e))?;
        let change = self.0.decide_change(&p, d).await?;
        Ok(Response::new(pb::DecideClockChangeResponse { change: Some(to_change(change)) }))
    }

    async fn resume_clock(
        &self,
        request: Request<pb::ResumeClockRequest>,
    ) -> Result<Response<pb::ResumeClockResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let task_id = field::text("task_id", &r.task_id, 64).map_err(|e| kit::grpc::invalid(&e))?;
        let stage = Stage::parse("stage", r.stage.trim()).map_err(|e| kit::grpc::invalid(&e))?;
        let note = field::bounded("note", &r.note, NOTE_CHARS).map_err(|e| kit::grpc::invalid(&e))?;
        let change = self.0.resume(&p, task_id, stage, note).await?;
        Ok(Response::new(pb::ResumeClockResponse { change: Some(to_change(change)) }))
    }

    async fn list_clock_changes(
        &self,
        request: Request<pb::ListClockChangesRequest>,
    ) -> Result<Response<pb::ListClockChangesResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let case_id = CaseId::parse("case_id", &request.get_ref().case_id).map_err(|e| kit::grpc::invalid(&e))?;
        let changes = self.0.changes(&p, case_id).await?;
        Ok(Response::new(pb::ListClockChangesResponse { changes: changes.into_iter().map(to_change).collect() }))
    }

    async fn add_time_policy(
        &self,
        request: Request<pb::AddTimePolicyRequest>,
    ) -> Result<Response<pb::AddTimePolicyResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let scores = [r.score_on_time, r.score_yellow, r.score_red];
        let policy = NewPolicy::parse(&r.rules, r.remind_at_percent, r.red_after_percent, scores, r.max_extensions)
            .map_err(|e| kit::grpc::invalid(&e))?;
        let version = self.0.add_policy(&p, &policy).await?;
        let added = self.0.policies().await?.into_iter().find(|(row, _, _)| row.version == version);
        Ok(Response::new(pb::AddTimePolicyResponse { policy: added.map(to_policy) }))
    }

    async fn list_time_policies(
        &self,
        request: Request<pb::ListTimePoliciesRequest>,
    ) -> Result<Response<pb::ListTimePoliciesResponse>, Status> {
        kit::auth::principal(&request)?;
        let policies = self.0.policies().await?;
        Ok(Response::new(pb::ListTimePoliciesResponse { policies: policies.into_iter().map(to_policy).collect() }))
    }

    async fn get_rates(&self, request: Request<pb::GetRatesRequest>) -> Result<Response<pb::GetRatesResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let q = RatesQuery::parse(&r.node_code, &r.by, &r.from, &r.to).map_err(|e| kit::grpc::invalid(&e))?;
        let table = self.0.rates(&p, q).await?;
        Ok(Response::new(to_rates(table)))
    }

    async fn export_rates(
        &self,
        request: Request<pb::ExportRatesRequest>,
    ) -> Result<Response<pb::ExportRatesResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let q = RatesQuery::parse(&r.node_code, &r.by, &r.from, &r.to).map_err(|e| kit::grpc::invalid(&e))?;
        let format = Format::parse("format", &r.format).map_err(|e| kit::grpc::invalid(&e))?;
        let table = self.0.rates(&p, q).await?;
        let file = crate::export::export(&table, format)?;
        Ok(Response::new(pb::ExportRatesResponse {
            content: file.bytes,
            filename: file.filename,
            content_type: file.content_type.into(),
        }))
    }
}

fn to_policy((row, created_by, created_at): (PolicyRow, String, chrono::DateTime<chrono::Utc>)) -> pb::TimePolicy {
    pb::TimePolicy {
        version: row.version,
        rules: row.rules,
        remind_at_percent: row.remind_at_percent,
        red_after_percent: row.red_after_percent,
        score_on_time: row.score_on_time,
        score_yellow: row.score_yellow,
        score_red: row.score_red,
        max_extensions: row.max_extensions,
        created_by,
        created_at: kit::time::local(created_at),
    }
}

fn to_change(c: ClockChange) -> pb::ClockChange {
    pb::ClockChange {
        id: c.id.to_string(),
        case_id: c.case_id.to_string(),
        task_id: c.task_id,
        stage: c.stage.as_str().into(),
        kind: c.kind.into(),
        reason: c.reason,
        state: c.state.into(),
        new_due_at: kit::time::local_opt(c.new_due_at),
        due_before: kit::time::local_opt(c.due_before),
        due_after: kit::time::local_opt(c.due_after),
        requested_by: c.requested_by,
        requested_at: kit::time::local(c.requested_at),
        decided_by: c.decided_by,
        decided_at: kit::time::local_opt(c.decided_at),
        decision_note: c.decision_note,
        resumed_by: c.resumed_by,
        resumed_at: kit::time::local_opt(c.resumed_at),
    }
}

fn to_task_slip(t: TaskSlip, verification_code: String) -> pb::Slip {
    pb::Slip {
        due_at: kit::time::local(t.due_at()),
        issued_at: kit::time::local(t.issued_at()),
        number: t.number,
        case_id: t.case_id.to_string(),
        case_no: t.case_no,
        task_id: t.task_id,
        stage: Stage::Accept.as_str().into(),
        grade: 0,
        unit_code: t.unit_code,
        center_code: t.center_code,
        copy_to: String::new(),
        acknowledged_at: String::new(),
        acknowledged_by: String::new(),
        verification_code,
        kind: "task".into(),
        unit_name: t.unit_name,
    }
}

fn to_rates(t: RatesTable) -> pb::GetRatesResponse {
    let q = &t.query;
    pb::GetRatesResponse {
        node_code: q.node_code.clone(),
        by: q.by.as_str().into(),
        from: q.period.from.to_string(),
        to: q.period.to.to_string(),
        total: Some(to_rate_row(0, "", &t.total)),
        rows: t.rows.iter().map(|(rank, key, f)| to_rate_row(*rank, key, f)).collect(),
        score_on_time: t.rule.on_time,
        score_yellow: t.rule.yellow,
        score_red: t.rule.red,
        policy_version: t.policy_version,
    }
}

fn to_rate_row(rank: u32, key: &str, f: &Figures) -> pb::RateRow {
    let bp = |r: crate::domain::rates::Rate| r.basis_points().map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let c = &f.counts;
    pb::RateRow {
        key: key.into(),
        // Supervision keeps codes, not the registry's names.
        name: key.into(),
        rank,
        accept_due: c.accept_due,
        accept_on_time: c.accept_on_time,
        accept_on_time_bp: bp(f.accept_on_time),
        resolve_due: c.resolve_due,
        resolve_on_time: c.resolve_on_time,
        resolve_on_time_bp: bp(f.resolve_on_time),
        visits: c.visits,
        satisfied: c.satisfied,
        basically_satisfied: c.basically_satisfied,
        satisfaction_bp: bp(f.satisfaction),
        yellow: c.yellow,
        red: c.red,
        score: f.score,
    }
}

fn to_slip(s: SlipRecord) -> pb::Slip {
    pb::Slip {
        number: s.number,
        case_id: s.case_id.to_string(),
        case_no: s.case_no,
        task_id: s.task_id,
        stage: s.stage.as_str().into(),
        grade: s.grade.into(),
        unit_code: s.unit_code,
        center_code: s.center_code,
        copy_to: s.copy_to,
        due_at: kit::time::local(s.due_at),
        issued_at: kit::time::local(s.issued_at),
        acknowledged_at: kit::time::local_opt(s.acknowledged_at),
        acknowledged_by: s.acknowledged_by,
        verification_code: s.verification_code,
        kind: "supervision".into(),
        unit_name: s.unit_name,
    }
}

fn to_closure(c: Closure) -> pb::Closure {
    pb::Closure {
        case_id: c.case_id.to_string(),
        round: u32::try_from(c.round).unwrap_or_default(),
        state: c.state.into(),
        closure_reason: c.closure_reason.map_or("", |r| r.as_str()).into(),
        resolver_id: c.resolver_id,
        satisfaction: c.satisfaction.map(i32::from).unwrap_or_default(),
        closed_at: kit::time::local(c.closed_at),
    }
}

fn to_deadline(d: Deadline) -> pb::Deadline {
    pb::Deadline {
        id: d.id.to_string(),
        case_id: d.case_id.to_string(),
        task_id: d.task_id,
        stage: d.stage.as_str().into(),
        due_at: kit::time::local(d.due_at),
        state: d.state.into(),
        fired_at: kit::time::local_opt(d.fired_at),
        paused_at: kit::time::local_opt(d.paused_at),
    }
}
