//! The gRPC face, transport only: request → parsed domain value → one call → response, and the mapping of
//! the domain's aggregates to protobuf.

use kit::grpc::parsed;
use kit::ids::CaseId;
use kit::{FieldError, field};
use proto::routing::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::joint::{CoHandler, CoMove, NOTE_CHARS};
use crate::domain::moves::{Accept, Escalation, ManualDispatch, Recall, Resolve, Return, Review};
use crate::domain::queue::Queue;
use crate::domain::{ReturnReason, Rule, Task, UnitKind};
use crate::service::Tasks;
use crate::service::joint::CoUnit;

pub struct RoutingService(pub Tasks);

fn to_co(c: CoHandler) -> pb::CoHandler {
    pb::CoHandler {
        id: c.id.to_string(),
        case_id: c.case_id.to_string(),
        task_id: c.lead_task_id.to_string(),
        unit_kind: c.unit_kind.into(),
        unit_code: c.unit_code.into(),
        unit_name: c.unit_name,
        state: c.state.into(),
        reason: c.reason,
        summoned_by: c.summoned_by,
        summoned_at: kit::time::local(c.summoned_at),
        reported_by: c.reported_by,
        reported_at: kit::time::local_opt(c.reported_at),
        contribution: c.contribution,
        contributed_at: kit::time::local_opt(c.contributed_at),
        released_by: c.released_by,
        released_at: kit::time::local_opt(c.released_at),
        release_reason: c.release_reason,
    }
}

#[tonic::async_trait]
impl pb::routing_server::Routing for RoutingService {
    async fn get_task(&self, request: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let id = parsed(field::uuid("task_id", &request.get_ref().task_id))?;
        let task = self.0.get(&p, id).await?;
        Ok(Response::new(pb::GetTaskResponse { task: Some(to_task(task)) }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let case_id = parsed(CaseId::parse("case_id", &request.get_ref().case_id))?;
        let tasks = self.0.of_case(&p, case_id).await?;
        Ok(Response::new(pb::ListTasksResponse { tasks: tasks.into_iter().map(to_task).collect() }))
    }

    async fn accept_task(
        &self,
        request: Request<pb::AcceptTaskRequest>,
    ) -> Result<Response<pb::AcceptTaskResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let accept = parsed(Accept::parse(&r.task_id, &r.handler_id))?;
        let task = self.0.accept(&p, accept).await?;
        Ok(Response::new(pb::AcceptTaskResponse { task: Some(to_task(task)) }))
    }

    async fn return_task(
        &self,
        request: Request<pb::ReturnTaskRequest>,
    ) -> Result<Response<pb::ReturnTaskResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let ret = parsed(Return::parse(&r.task_id, &r.handler_id, &r.reason_code, &r.reason))?;
        let task = self.0.return_task(&p, ret).await?;
        Ok(Response::new(pb::ReturnTaskResponse { task: Some(to_task(task)) }))
    }

    async fn review_return(
        &self,
        request: Request<pb::ReviewReturnRequest>,
    ) -> Result<Response<pb::ReviewReturnResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let review = parsed(Review::parse(&r.task_id, &r.reviewer_id, r.approve, &r.note))?;
        let (task, next) = self.0.review(&p, review).await?;
        Ok(Response::new(pb::ReviewReturnResponse { task: Some(to_task(task)), next_task: next.map(to_task) }))
    }

    async fn resolve_task(
        &self,
        request: Request<pb::ResolveTaskRequest>,
    ) -> Result<Response<pb::ResolveTaskResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let resolve = parsed(Resolve::parse(&r.task_id, &r.resolver_id, r.outcome, &r.note))?;
        let task = self.0.resolve(&p, resolve).await?;
        Ok(Response::new(pb::ResolveTaskResponse { task: Some(to_task(task)) }))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let rules = self.0.rules(&p).await?;
        Ok(Response::new(pb::ListRulesResponse { rules: rules.into_iter().map(to_rule).collect() }))
    }

    async fn put_rule(&self, request: Request<pb::PutRuleRequest>) -> Result<Response<pb::PutRuleResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = parsed(request.into_inner().rule.ok_or_else(|| FieldError::new("rule", "is required")))?;
        let rule = parsed(
            Rule::parse(
                "rule.",
                &r.id,
                r.priority,
                &r.category_prefix,
                &r.area_prefix,
                r.urgency,
                r.unit_kind,
                &r.unit_code,
                &r.unit_name,
            )
            .and_then(|rule| rule.with_fallback("rule.", r.fallback_kind, &r.fallback_code, &r.fallback_name)),
        )?;
        let rule = self.0.put_rule(&p, rule).await?;
        Ok(Response::new(pb::PutRuleResponse { rule: Some(to_rule(rule)) }))
    }

    async fn list_task_queue(
        &self,
        request: Request<pb::ListTaskQueueRequest>,
    ) -> Result<Response<pb::ListTaskQueueResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let q = parsed(Queue::parse(r.state, r.mine, &r.unit_code, r.overdue_only, r.page_size, &r.page_token))?;
        let page = self.0.queue(&p, &q).await?;
        Ok(Response::new(pb::ListTaskQueueResponse {
            tasks: page.tasks.into_iter().map(to_task).collect(),
            next_page_token: page.next_page_token,
            counts: page.counts.into_iter().map(|(s, count)| pb::StateCount { state: s.into(), count }).collect(),
            overdue: page.overdue,
        }))
    }

    async fn summon_co_handlers(
        &self,
        request: Request<pb::SummonCoHandlersRequest>,
    ) -> Result<Response<pb::SummonCoHandlersResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let task_id = parsed(field::uuid("task_id", &r.task_id))?;
        let reason = parsed(field::text("reason", &r.reason, NOTE_CHARS))?;
        let mut co = Vec::with_capacity(r.co_units.len());
        for (i, c) in r.co_units.iter().enumerate() {
            let name = parsed(field::bounded(&format!("co_units[{i}].name"), &c.name, 100))?;
            let kind = parsed(UnitKind::from_proto(&format!("co_units[{i}].kind"), c.kind))?;
            co.push(CoUnit { kind, code: c.code.clone(), name: name.to_owned() });
        }
        let summoned = self.0.summon(&p, task_id, &co, reason).await?;
        Ok(Response::new(pb::SummonCoHandlersResponse { co_handlers: summoned.into_iter().map(to_co).collect() }))
    }

    async fn report_in(&self, request: Request<pb::ReportInRequest>) -> Result<Response<pb::ReportInResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let id = parsed(field::uuid("id", &request.get_ref().id))?;
        let co = self.0.move_co(&p, id, CoMove::ReportIn, "").await?;
        Ok(Response::new(pb::ReportInResponse { co_handler: Some(to_co(co)) }))
    }

    async fn record_contribution(
        &self,
        request: Request<pb::RecordContributionRequest>,
    ) -> Result<Response<pb::RecordContributionResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let id = parsed(field::uuid("id", &r.id))?;
        let note = parsed(field::text("note", &r.note, NOTE_CHARS))?;
        let co = self.0.move_co(&p, id, CoMove::Contribute, note).await?;
        Ok(Response::new(pb::RecordContributionResponse { co_handler: Some(to_co(co)) }))
    }

    async fn release_co_handler(
        &self,
        request: Request<pb::ReleaseCoHandlerRequest>,
    ) -> Result<Response<pb::ReleaseCoHandlerResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let id = parsed(field::uuid("id", &r.id))?;
        let reason = parsed(field::text("reason", &r.reason, NOTE_CHARS))?;
        let co = self.0.move_co(&p, id, CoMove::Release, reason).await?;
        Ok(Response::new(pb::ReleaseCoHandlerResponse { co_handler: Some(to_co(co)) }))
    }

    async fn list_co_handlers(
        &self,
        request: Request<pb::ListCoHandlersRequest>,
    ) -> Result<Response<pb::ListCoHandlersResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let task_id = parsed(field::uuid("task_id", &request.get_ref().task_id))?;
        let co = self.0.co_handlers(&p, task_id).await?;
        Ok(Response::new(pb::ListCoHandlersResponse { co_handlers: co.into_iter().map(to_co).collect() }))
    }

    async fn dispatch_case(
        &self,
        request: Request<pb::DispatchCaseRequest>,
    ) -> Result<Response<pb::DispatchCaseResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let d = parsed(ManualDispatch::parse(&r.case_id, r.unit_kind, &r.unit_code, &r.reason, &r.expected_task_id))?;
        let (task, superseded) = self.0.dispatch_case(&p, d).await?;
        Ok(Response::new(pb::DispatchCaseResponse { task: Some(to_task(task)), superseded: superseded.map(to_task) }))
    }

    async fn recall_task(
        &self,
        request: Request<pb::RecallTaskRequest>,
    ) -> Result<Response<pb::RecallTaskResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let recall = parsed(Recall::parse(&r.task_id, &r.reason))?;
        let task = self.0.recall_task(&p, recall).await?;
        Ok(Response::new(pb::RecallTaskResponse { task: Some(to_task(task)) }))
    }

    async fn escalate_case(
        &self,
        request: Request<pb::EscalateCaseRequest>,
    ) -> Result<Response<pb::EscalateCaseResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let e = parsed(Escalation::parse(&r.case_id, &r.direction, &r.to_center_code, &r.reason, &r.expected_task_id))?;
        let (task, superseded) = self.0.escalate(&p, e).await?;
        Ok(Response::new(pb::EscalateCaseResponse { task: Some(to_task(task)), superseded: superseded.map(to_task) }))
    }
}

fn to_task(t: Task) -> pb::Task {
    pb::Task {
        id: t.id.to_string(),
        case_id: t.case_id.to_string(),
        case_no: t.case_no.into(),
        slip_no: t.slip_no,
        unit_code: t.unit_code.into(),
        unit_name: t.unit_name,
        unit_kind: t.unit_kind.into(),
        state: t.state.into(),
        rule_id: t.rule_id,
        attempt: u32::try_from(t.attempt).unwrap_or_default(),
        category_code: t.category_code,
        return_reason: t.return_reason,
        outcome: t.outcome.map(i32::from).unwrap_or_default(),
        outcome_note: t.outcome_note,
        handler_id: t.handler_id,
        resolver_id: t.resolver_id,
        dispatched_at: kit::time::local(t.dispatched_at),
        accepted_at: kit::time::local_opt(t.accepted_at),
        resolved_at: kit::time::local_opt(t.resolved_at),
        round: u32::try_from(t.round).unwrap_or_default(),
        return_reason_code: t.return_reason_code.map_or("", ReturnReason::as_str).into(),
        overdue: t.overdue,
        due_at: kit::time::local_opt(t.due_at),
        overdue_stage: t.overdue_stage,
        holding_center: t.holding_center,
        center_code: t.center_code,
        dispatch_reason: t.dispatch_reason,
        via: t.via.as_str().into(),
        recall_reason: t.recall_reason,
    }
}

fn to_rule(r: Rule) -> pb::Rule {
    pb::Rule {
        id: r.id,
        priority: r.priority,
        category_prefix: r.category_prefix,
        area_prefix: r.area_prefix,
        urgency: r.urgency.map(i32::from).unwrap_or_default(),
        unit_kind: r.unit_kind.into(),
        unit_code: r.unit_code.into(),
        unit_name: r.unit_name,
        fallback_kind: r.fallback.as_ref().map(|f| i32::from(f.kind)).unwrap_or_default(),
        fallback_code: r.fallback.as_ref().map(|f| f.code.to_string()).unwrap_or_default(),
        fallback_name: r.fallback.map(|f| f.name).unwrap_or_default(),
        unit_center: r.unit_center,
    }
}
