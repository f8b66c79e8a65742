//! Routing's use cases, behind the RPCs and the consumer: dispatching a case by the rules, and moving a task
//! through 签收, 退单, review and 办结. Each change and its event commit in one transaction; the protobuf
//! they touch is the events they write and the registry client they ask who may be credited.

use chrono::Utc;
use kit::auth::{Permission, Principal};
use kit::events::Outbox;
use kit::ids::CaseId;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseAccepted, CaseDispatched, CaseResolved, CaseReturned, ReturnRejected};
use proto::registry::v1::GetPersonRequest;
use proto::registry::v1::registry_client::RegistryClient;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tonic::Code;
use uuid::Uuid;

use crate::db::{self, Change, NewTask};
use crate::domain::moves::{Accept, Resolve, Return, Review};
use crate::domain::queue::{Queue, QueuePage};
use crate::domain::{Case, Move, Rule, Target, Task, TaskState, Unit, UnitKind, route, slip_no};
use crate::error::{Error, Result};
use crate::scope::{self, acting, allow};
use crate::units::{Plan, Planner, SlipSeq};

pub mod joint;
pub mod manual;

#[derive(Clone)]
pub struct Tasks {
    pub pool: PgPool,
    pub outbox: Outbox,
    /// Asked who a resolution credits, when that is not the resolver themselves.
    pub registry: RegistryClient<kit::grpc::Channel>,
    /// The routing table, the registry's units and their duty.
    pub planner: std::sync::Arc<Planner>,
}

impl Tasks {
    pub async fn get(&self, p: &Principal, id: Uuid) -> Result<Task> {
        let mut conn = self.pool.acquire().await?;
        let task = db::task(&mut conn, id, false).await?.ok_or_else(|| not_found(id))?;
        if scope::can_read(p, &task) { Ok(task) } else { Err(not_found(id)) }
    }

    /// The case's tasks the caller may see, oldest first. Routing records a case and dispatches it in one
    /// transaction, so a case it knows has a task: none visible means unknown (or not yet registered here) or
    /// outside the caller's scope, and both answer the same NOT_FOUND.
    pub async fn of_case(&self, p: &Principal, case_id: CaseId) -> Result<Vec<Task>> {
        let mut conn = self.pool.acquire().await?;
        let tasks = db::tasks_of_case(&mut conn, case_id, &p.scope(Permission::ReadCase)).await?;
        if tasks.is_empty() { Err(Error::not_found(format!("case {case_id}"))) } else { Ok(tasks) }
    }

    /// The rules within the caller's rule-managing scope.
    pub async fn rules(&self, p: &Principal) -> Result<Vec<Rule>> {
        let mut conn = self.pool.acquire().await?;
        let (all, prefixes) = scope::rule_prefixes(p);
        Ok(db::rules_within(&mut conn, all, &prefixes).await?)
    }

    /// Creates or replaces the rule. Tasks already dispatched keep their unit; the rule applies from the next
    /// dispatch on. Both the new area and, when replacing, the old one must lie within the caller's scope, or
    /// one county could take over another's rule by its id.
    pub async fn put_rule(&self, p: &Principal, mut rule: Rule) -> Result<Rule> {
        allow(scope::rule_in_scope(p, &rule.area_prefix), "the rule's area is outside your scope")?;
        // Bound to the registry, asked before the transaction opens: a rule names a unit that exists and
        // receives cases, and remembers where it is stationed (a hop's receiving center uses its own rules).
        let unit = Unit { kind: rule.unit_kind, code: rule.unit_code.clone(), name: rule.unit_name.clone() };
        rule.unit_center = self.bound_unit(&unit, "rule.unit_code").await?;
        if let Some(f) = &rule.fallback {
            self.bound_unit(f, "rule.fallback_code").await?;
        }
        let mut tx = kit::audit::begin(&self.pool).await?;
        if let Some(old) = db::lock_rule_area(&mut tx, &rule.id).await? {
            allow(scope::rule_in_scope(p, &old), "the rule being replaced is outside your scope")?;
        }
        db::put_rule(&mut tx, &rule, Utc::now()).await?;
        tx.commit().await?;
        tracing::info!(rule_id = %rule.id, unit_code = %rule.unit_code, actor = p.actor(), "rule saved");
        Ok(rule)
    }

    /// The center a unit is at (a department's station, or the center itself), refusing by `field` a unit the
    /// registry does not know or that is retired.
    async fn bound_unit(&self, unit: &Unit, field: &str) -> Result<String> {
        let units = &self.planner.units;
        match unit.kind {
            UnitKind::Department => match units.department(&unit.code).await? {
                None => Err(Error::invalid(field, "is not a department the registry knows")),
                Some(d) if d.duty == crate::domain::Duty::Retired => {
                    Err(Error::invalid(field, "is a retired department; it receives no cases"))
                }
                Some(d) => Ok(d.center_code),
            },
            UnitKind::Center => match units.center(&unit.code).await? {
                None => Err(Error::invalid(field, "is not a center the registry knows")),
                Some(_) => Ok(unit.code.to_string()),
            },
        }
    }

    /// 签收: the handling clock starts now, with the caller as the handler.
    pub async fn accept(&self, p: &Principal, a: Accept) -> Result<Task> {
        let handler = acting("handler_id", &a.handler_id, p)?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let (task, to) = locked(&mut tx, a.task_id, Move::Accept, |t| {
            scope::gate(p, t, allow(scope::can_handle(p, t), "the task is not your unit's"))
        })
        .await?;
        let change = Change { handler_id: Some(&handler), ..Change::to(to) };
        db::apply(&mut tx, task.id, &change, Utc::now()).await?;
        let body = Body::CaseAccepted(CaseAccepted { task_id: task.id.to_string(), handler_id: handler.clone() });
        self.finish(tx, &task, &handler, body).await
    }

    /// 退单: the task waits for the center's review.
    pub async fn return_task(&self, p: &Principal, r: Return) -> Result<Task> {
        let handler = acting("handler_id", &r.handler_id, p)?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let (task, to) = locked(&mut tx, r.task_id, Move::Return, |t| {
            scope::gate(p, t, allow(scope::can_handle(p, t), "the task is not your unit's"))
        })
        .await?;
        let change =
            Change { handler_id: Some(&handler), return_reason: Some((r.reason_code, &r.reason)), ..Change::to(to) };
        db::apply(&mut tx, task.id, &change, Utc::now()).await?;
        let body = Body::CaseReturned(CaseReturned {
            task_id: task.id.to_string(),
            reason_code: r.reason_code.as_str().into(),
            reason: r.reason.clone(),
        });
        self.finish(tx, &task, &handler, body).await
    }

    /// Approving supersedes the task, excludes its unit for the round and dispatches the case again in the
    /// same transaction; rejecting sends the task back to the unit. Returns the reviewed task and, when
    /// approved, the new one.
    pub async fn review(&self, p: &Principal, r: Review) -> Result<(Task, Option<Task>)> {
        let reviewer = acting("reviewer_id", &r.reviewer_id, p)?;
        // An approval dispatches again by the rules: the plan (table and duty) is made before the transaction.
        let plan = if r.approve { self.plan_for_task(r.task_id).await? } else { Plan::default() };
        let mut tx = kit::audit::begin(&self.pool).await?;
        // The case is locked before the task, in the same order as a reopening, so the two cannot deadlock.
        let case_id = db::case_of_task(&mut tx, r.task_id).await?.ok_or_else(|| not_found(r.task_id))?;
        let case = db::lock_case(&mut tx, case_id).await?.ok_or_else(|| not_found(r.task_id))?;
        let mv = if r.approve { Move::ApproveReturn } else { Move::RejectReturn };
        let (task, to) = locked(&mut tx, r.task_id, mv, |t| scope::gate(p, t, scope::can_review(p, t))).await?;
        let change = Change { review: Some((&reviewer, &r.note)), ..Change::to(to) };
        db::apply(&mut tx, task.id, &change, Utc::now()).await?;
        if !r.approve {
            let body = Body::ReturnRejected(ReturnRejected { task_id: task.id.to_string(), note: r.note.clone() });
            return Ok((self.finish(tx, &task, &reviewer, body).await?, None));
        }
        db::exclude(&mut tx, case.id, case.round, task.unit_kind, &task.unit_code).await?;
        let next = dispatch(&mut tx, &self.outbox, &case, &reviewer, &plan).await?;
        let reviewed = db::task(&mut tx, task.id, false).await?.ok_or_else(|| not_found(task.id))?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(task_id = %task.id, next_task_id = %next.id, "return approved; case re-dispatched");
        Ok((reviewed, Some(next)))
    }

    /// 办结: the unit reports the outcome and who is credited with it. The caller becomes the task's handler
    /// (the one who resolved it, kept apart from supervision); the credited resolver is the caller unless the
    /// request names a grid worker or mediator of the case's place.
    pub async fn resolve(&self, p: &Principal, r: Resolve) -> Result<Task> {
        let actor = p.actor().to_owned();
        let resolver = if r.resolver_id.is_empty() { actor.clone() } else { r.resolver_id.clone() };
        if resolver != actor {
            // Decided before the remote call, so a caller outside scope learns nothing and costs no lookup.
            let mut conn = self.pool.acquire().await?;
            let task = db::task(&mut conn, r.task_id, false).await?.ok_or_else(|| not_found(r.task_id))?;
            drop(conn);
            scope::gate(p, &task, allow(scope::can_resolve(p, &task), "only the accepting handler or its unit"))?;
            self.check_creditable(&resolver, &task).await?;
        }
        let mut tx = kit::audit::begin(&self.pool).await?;
        let (task, to) = locked(&mut tx, r.task_id, Move::Resolve, |t| {
            scope::gate(p, t, allow(scope::can_resolve(p, t), "only the accepting handler or its unit"))
        })
        .await?;
        joint::owed_before_resolving(&mut tx, task.id).await?;
        let change =
            Change { handler_id: Some(&actor), outcome: Some((r.outcome, &r.note, &resolver)), ..Change::to(to) };
        db::apply(&mut tx, task.id, &change, Utc::now()).await?;
        let body = Body::CaseResolved(CaseResolved {
            task_id: task.id.to_string(),
            outcome: r.outcome.into(),
            resolver_id: resolver.clone(),
        });
        self.finish(tx, &task, &actor, body).await
    }

    /// The plan for dispatching the case of a task again; an unknown task gets an empty plan (the locked read
    /// that follows answers NOT_FOUND).
    async fn plan_for_task(&self, task_id: Uuid) -> Result<Plan> {
        let case = {
            let mut conn = self.pool.acquire().await?;
            match db::case_of_task(&mut conn, task_id).await? {
                Some(id) => db::case(&mut conn, id).await?,
                None => None,
            }
        };
        match case {
            Some(c) => self.planner.plan(&c.facts()).await,
            None => Ok(Plan::default()),
        }
    }

    /// Asks the registry (with routing's own identity) whether `person` may be credited with the task's case.
    async fn check_creditable(&self, person: &str, task: &Task) -> Result<()> {
        let request = GetPersonRequest { id: person.to_owned() };
        let found = match self.registry.clone().get_person(request).await {
            Ok(r) => r.into_inner().person,
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => None,
            Err(s) => {
                tracing::warn!(status = %s, "registry call failed");
                return Err(Error::Unavailable("the grid registry"));
            }
        };
        let ok = found.is_some_and(|p| scope::creditable(p.role, &p.home_code, task));
        allow(ok, "resolver_id must be you or a grid worker or mediator of the case's place")
    }

    /// Writes the transition's event, commits both, wakes the relay and returns the task as committed.
    async fn finish(
        &self,
        mut tx: Transaction<'static, Postgres>,
        task: &Task,
        actor: &str,
        body: Body,
    ) -> Result<Task> {
        let event = kit::events::subject_of(&body);
        self.outbox.add(&mut tx, task.case_id, actor, body).await?;
        let updated = db::task(&mut tx, task.id, false).await?.ok_or_else(|| not_found(task.id))?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(task_id = %task.id, case_id = %task.case_id, state = %updated.state, event, "task moved");
        Ok(updated)
    }
}

impl Tasks {
    /// The caller's task queue: a page of the open tasks within their reach, and the counts per state.
    pub async fn queue(&self, p: &Principal, q: &Queue) -> Result<QueuePage> {
        let after = q.after(p.actor())?;
        let reach = scope::queue_reach(p);
        let mine = if q.mine { p.actor() } else { "" };
        let mut conn = self.pool.acquire().await?;
        let tasks = db::queue_page(&mut conn, &reach, q, mine, after.as_ref()).await?;
        let (counts, overdue) = db::queue_counts(&mut conn, &reach, q, mine).await?;
        let next_page_token = q.next_token(p.actor(), &tasks);
        Ok(QueuePage { tasks, next_page_token, counts, overdue })
    }
}

/// The task locked for the transaction, and the state `mv` takes it to. `allowed` decides the caller's right
/// on the locked row first, so someone outside scope never learns the task's state; then FAILED_PRECONDITION
/// when its state does not allow the move (which also makes the loser of two racing calls fail, once the
/// winner commits).
async fn locked(
    conn: &mut PgConnection,
    id: Uuid,
    mv: Move,
    allowed: impl FnOnce(&Task) -> Result<()>,
) -> Result<(Task, TaskState)> {
    let task = db::task(conn, id, true).await?.ok_or_else(|| not_found(id))?;
    allowed(&task)?;
    let state = task.state;
    let to = mv
        .from(state)
        .ok_or_else(|| Error::failed_precondition(format!("task {id} is {state}; cannot {} it", mv.verb())))?;
    Ok((task, to))
}

/// The one answer for a task that is not there or not the caller's to see.
pub(crate) fn not_found(id: Uuid) -> Error {
    Error::not_found(format!("task {id}"))
}

/// Dispatches the case by the rules (兜底 to its holding center when none applies, or when no unit the best
/// rule names receives cases today) as a new task in the caller's transaction, with its case.dispatched event.
/// The caller holds the case's row lock, and made `plan` before opening the transaction.
pub async fn dispatch(conn: &mut PgConnection, outbox: &Outbox, case: &Case, actor: &str, plan: &Plan) -> Result<Task> {
    let excluded = db::excluded(conn, case.id, case.round).await?;
    dispatch_excluding(conn, outbox, case, actor, plan, &excluded).await
}

/// [`dispatch`] past the units in `excluded` (those whose return was approved this round), for a caller that
/// knows them: a case inserted in this transaction has none, since no unit has had it.
pub async fn dispatch_excluding(
    conn: &mut PgConnection,
    outbox: &Outbox,
    case: &Case,
    actor: &str,
    plan: &Plan,
    excluded: &[(UnitKind, String)],
) -> Result<Task> {
    let target = route(&plan.rules, &case.facts(), excluded, &plan.roster);
    issue(conn, outbox, case, actor, &target, "", plan.slip.as_ref()).await
}

/// Issues a 交办单 for the case to `target`: a new task numbered by the holding center, and its
/// case.dispatched event. `reason` is a dispatcher's, for a dispatch by hand. The slip takes the number
/// `reserved` for it when that is the holding center's, else the next one inside the transaction.
pub async fn issue(
    conn: &mut PgConnection,
    outbox: &Outbox,
    case: &Case,
    actor: &str,
    target: &Target,
    reason: &str,
    reserved: Option<&SlipSeq>,
) -> Result<Task> {
    let at = Utc::now();
    let center = kit::division::significant(&case.holding_center);
    let slip = match reserved {
        Some(r) if r.center_prefix == center => slip_no(center, &r.day, r.seq),
        _ => {
            let day = kit::time::local_date(at);
            slip_no(center, &day, db::next_slip_seq(conn, center, &day).await?)
        }
    };
    let id = Uuid::new_v4();
    let rule_id = target.rule_id.as_deref().unwrap_or("");
    let new = NewTask {
        id,
        case,
        slip_no: &slip,
        unit_kind: target.unit_kind,
        unit_code: &target.unit_code,
        unit_name: &target.unit_name,
        rule_id,
        at,
        center_code: &case.holding_center,
        via: target.via,
        reason,
    };
    // Numbered, inserted and read back as the answer in one statement.
    let task = db::insert_task(conn, &new).await?;
    let event = CaseDispatched {
        task_id: id.to_string(),
        slip_no: slip.clone(),
        unit_code: target.unit_code.to_string(),
        unit_name: target.unit_name.clone(),
        unit_kind: target.unit_kind.into(),
        rule_id: rule_id.into(),
        attempt: u32::try_from(task.attempt).unwrap_or_default(),
        case_no: case.case_no.to_string(),
        urgency: case.urgency.into(),
        category_code: case.category_code.clone(),
        reason: reason.into(),
        center_code: case.holding_center.clone(),
        via: target.via.as_str().into(),
    };
    outbox.add(conn, case.id, actor, Body::CaseDispatched(event)).await?;
    tracing::info!(task_id = %id, case_id = %case.id, slip_no = %slip, unit_code = %target.unit_code, rule_id, via = %target.via, "case dispatched");
    Ok(task)
}
