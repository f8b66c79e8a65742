//! The gRPC face, transport only: request → parsed domain value → one call → the aggregate mapped to protobuf.

use kit::field;
use proto::supervision::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{Closure, Deadline, FollowUp, Verification};
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
        let closure = self.0.verify(&p, v).await?;
        Ok(Response::new(pb::VerifyCaseResponse { closure: Some(to_closure(closure)) }))
    }

    async fn follow_up(&self, request: Request<pb::FollowUpRequest>) -> Result<Response<pb::FollowUpResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let f =
            FollowUp::parse(&r.case_id, &r.visitor_id, &r.satisfaction, &r.note).map_err(|e| kit::grpc::invalid(&e))?;
        let (closure, reopened) = self.0.follow_up(&p, f).await?;
        Ok(Response::new(pb::FollowUpResponse { closure: Some(to_closure(closure)), reopened }))
    }

    async fn list_deadlines(
        &self,
        request: Request<pb::ListDeadlinesRequest>,
    ) -> Result<Response<pb::ListDeadlinesResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let case_id = field::uuid("case_id", &request.get_ref().case_id).map_err(|e| kit::grpc::invalid(&e))?;
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
}

fn to_closure(c: Closure) -> pb::Closure {
    pb::Closure {
        case_id: c.case_id.to_string(),
        round: u32::try_from(c.round).unwrap_or_default(),
        state: c.state.as_str().into(),
        closure_reason: c.closure_reason.map_or("", |r| r.as_str()).into(),
        resolver_id: c.resolver_id,
        satisfaction: c.satisfaction.map_or("", |s| s.as_str()).into(),
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
        state: d.state.as_str().into(),
        fired_at: kit::time::local_opt(d.fired_at),
    }
}
