//! The gRPC face, transport only: request → parsed domain value → one call → response, and the mapping of
//! the domain's aggregates to protobuf.

use kit::grpc::parsed;
use kit::{FieldError, field};
use proto::routing::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::moves::{Accept, Escalation, ManualDispatch, Recall, Resolve, Return, Review};
use crate::domain::queue::Queue;
use crate::domain::{Outcome, ReturnReason, Rule, Task};
use crate::service::Tasks;

pub struct RoutingService(pub Tasks);

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
        let case_id = parsed(field::uuid("case_id", &request.get_ref().case_id))?;
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
        let resolve = parsed(Resolve::parse(&r.task_id, &r.resolver_id, &r.outcome, &r.note))?;
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
                &r.urgency,
                &r.unit_kind,
                &r.unit_code,
                &r.unit_name,
            )
            .and_then(|rule| rule.with_fallback("rule.", &r.fallback_kind, &r.fallback_code, &r.fallback_name)),
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
        let q = parsed(Queue::parse(&r.state, r.mine, &r.unit_code, r.overdue_only, r.page_size, &r.page_token))?;
        let page = self.0.queue(&p, &q).await?;
        Ok(Response::new(pb::ListTaskQueueResponse {
            tasks: page.tasks.into_iter().map(to_task).collect(),
            next_page_token: page.next_page_token,
            counts: page
                .counts
                .into_iter()
                .map(|(s, count)| pb::StateCount { state: s.as_str().to_owned(), count })
                .collect(),
            overdue: page.overdue,
        }))
    }

    async fn dispatch_case(
        &self,
        request: Request<pb::DispatchCaseRequest>,
    ) -> Result<Response<pb::DispatchCaseResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let d = parsed(ManualDispatch::parse(&r.case_id, &r.unit_kind, &r.unit_code, &r.reason, &r.expected_task_id))?;
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
        case_no: t.case_no,
        slip_no: t.slip_no,
        unit_code: t.unit_code,
        unit_name: t.unit_name,
        unit_kind: t.unit_kind.as_str().into(),
        state: t.state.as_str().into(),
        rule_id: t.rule_id,
        attempt: u32::try_from(t.attempt).unwrap_or_default(),
        category_code: t.category_code,
        return_reason: t.return_reason,
        outcome: t.outcome.map_or("", Outcome::as_str).into(),
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
        urgency: r.urgency.map(|u| u.as_str().to_owned()).unwrap_or_default(),
        unit_kind: r.unit_kind.as_str().into(),
        unit_code: r.unit_code,
        unit_name: r.unit_name,
        fallback_kind: r.fallback.as_ref().map_or("", |f| f.kind.as_str()).into(),
        fallback_code: r.fallback.as_ref().map(|f| f.code.clone()).unwrap_or_default(),
        fallback_name: r.fallback.map(|f| f.name).unwrap_or_default(),
        unit_center: r.unit_center,
    }
}
