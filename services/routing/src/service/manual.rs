//! A dispatcher's hand on a case: 分流交办 by hand (overriding the rules), 召回, and the hops between centers
//! (上报 up, 下派 down). The caller's Dispatch scope must hold the case's holding center (its center or one
//! above it). Everything the registry must say is asked before the transaction opens; inside it the case row
//! is locked and the live task checked against the one the dispatcher saw, so of two dispatchers acting at
//! once exactly one wins and the other gets FAILED_PRECONDITION.

use chrono::Utc;
use kit::FieldError;
use kit::auth::{Permission, Principal};
use kit::ids::{CaseId, UnitCode};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseEscalated, CaseRecalled};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{self, NewHop};
use crate::domain::joint::{Hop, check_hop};
use crate::domain::moves::{Escalation, ManualDispatch, Recall, Standing, may_take, skips_level};
use crate::domain::{Case, Duty, Move, Target, Task, UnitKind, Via};
use crate::error::{Error, Result};
use crate::service::{Tasks, dispatch, issue, not_found};

impl Tasks {
    /// 分流交办 by hand. Returns the new task and the task it superseded, if one was live.
    pub async fn dispatch_case(&self, p: &Principal, d: ManualDispatch) -> Result<(Task, Option<Task>)> {
        let case = self.case_in_hand(p, d.case_id).await?;
        let target = self.manual_target(p, d.unit_kind, &d.unit_code).await?;
        let actor = p.actor().to_owned();
        let mut tx = kit::audit::begin(&self.pool).await?;
        let (case, live) = lock_in_hand(&mut tx, p, &case.holding_center, d.case_id, d.expected_task).await?;
        let superseded = match live {
            Some(id) => Some(recall(&mut tx, self, &case, id, &actor, &d.reason, true).await?),
            None => None,
        };
        let task = issue(&mut tx, &self.outbox, &case, &actor, &target, &d.reason, None).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %case.id, task_id = %task.id, unit_code = %task.unit_code, actor, "dispatched by hand");
        Ok((task, superseded))
    }

    /// 召回: the live task is superseded; the case waits at its holding center for a dispatch by hand.
    pub async fn recall_task(&self, p: &Principal, r: Recall) -> Result<Task> {
        let actor = p.actor().to_owned();
        let mut tx = kit::audit::begin(&self.pool).await?;
        let case_id = db::case_of_task(&mut tx, r.task_id).await?.ok_or_else(|| not_found(r.task_id))?;
        let case = db::lock_case(&mut tx, case_id).await?.ok_or_else(|| not_found(r.task_id))?;
        let task = db::task(&mut tx, r.task_id, true).await?.ok_or_else(|| not_found(r.task_id))?;
        if !may_dispatch(p, &case) {
            return Err(if crate::scope::can_read(p, &task) {
                Error::denied("the case is held by a center outside your dispatch scope")
            } else {
                not_found(r.task_id)
            });
        }
        if Move::Recall.from(task.state).is_none() {
            return Err(Error::failed_precondition(format!(
                "task_id: task {} is {}; cannot recall it",
                task.id, task.state
            )));
        }
        let recalled = recall(&mut tx, self, &case, task.id, &actor, &r.reason, false).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %case.id, task_id = %task.id, actor, "task recalled");
        Ok(recalled)
    }

    /// 上报 or 下派: the case moves to `to_center`, superseding its live task; the receiving center's own rules
    /// dispatch it in the same transaction, or that center keeps it (兜底) for a dispatch by hand. Returns the
    /// new task and the superseded one.
    pub async fn escalate(&self, p: &Principal, e: Escalation) -> Result<(Task, Option<Task>)> {
        let case = self.case_in_hand(p, e.case_id).await?;
        self.may_move(&case, &e).await?;
        let mut arriving = case.facts();
        arriving.holding_center = e.to_center.clone();
        let plan = self.planner.plan(&arriving).await?;

        let actor = p.actor().to_owned();
        let mut tx = kit::audit::begin(&self.pool).await?;
        let (mut case, live) = lock_in_hand(&mut tx, p, &case.holding_center, e.case_id, e.expected_task).await?;
        let at = Utc::now();
        // The hop itself says which task it superseded (case.escalated), so no separate 召回 event is written.
        if let Some(id) = live {
            db::recall(&mut tx, id, &actor, &e.reason, at).await?;
        }
        let from = std::mem::replace(&mut case.holding_center, e.to_center.clone());
        db::set_holding_center(&mut tx, case.id, &case.holding_center).await?;
        let up = e.hop == Hop::Up;
        let skipped = up && kit::division::parent(&from).as_deref() != Some(e.to_center.as_str());
        let hop = NewHop {
            case_id: case.id,
            up,
            from: &from,
            to: &e.to_center,
            skip_level: skipped,
            reason: &e.reason,
            actor: &actor,
            superseded: live,
            at,
        };
        db::insert_hop(&mut tx, &hop).await?;
        let event = CaseEscalated {
            direction: if up { "up" } else { "down" }.into(),
            from_center: from.clone(),
            to_center: e.to_center.clone(),
            reason: e.reason.clone(),
            skip_level: skipped,
            superseded_task_id: live.map(|t| t.to_string()).unwrap_or_default(),
            case_no: case.case_no.to_string(),
        };
        self.outbox.add(&mut tx, case.id, &actor, Body::CaseEscalated(event)).await?;
        let task = dispatch(&mut tx, &self.outbox, &case, &actor, &plan).await?;
        let superseded = match live {
            Some(id) => db::task(&mut tx, id, false).await?,
            None => None,
        };
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %case.id, from, to = %e.to_center, task_id = %task.id, actor, "case moved between centers");
        Ok((task, superseded))
    }

    /// Whether the case may hop to `e.to_center` at all: one level at a time (an urgent category may skip
    /// levels upward), to a center over the case's place that the registry knows.
    async fn may_move(&self, case: &Case, e: &Escalation) -> Result<()> {
        let urgent = {
            let mut conn = self.pool.acquire().await?;
            db::urgent_categories(&mut conn).await?
        };
        let skip = skips_level(&case.category_code, &urgent);
        let rename = |f: FieldError| Error::invalid("to_center_code", f.reason);
        check_hop(e.hop, &case.holding_center, &e.to_center, skip).map_err(rename)?;
        if !case.area_path.contains(&e.to_center) {
            return Err(Error::invalid("to_center_code", "is not a center over the case's place"));
        }
        if self.planner.units.center(&e.to_center).await?.is_none() {
            return Err(Error::invalid("to_center_code", "has no center the registry knows"));
        }
        Ok(())
    }

    /// The case, if the caller may act on it by hand: its holding center within their Dispatch scope. A case
    /// they cannot even read answers NOT_FOUND, as an unknown one does.
    async fn case_in_hand(&self, p: &Principal, id: CaseId) -> Result<Case> {
        let mut conn = self.pool.acquire().await?;
        let case = db::case(&mut conn, id).await?.ok_or_else(|| case_not_found(id))?;
        if may_dispatch(p, &case) {
            Ok(case)
        } else if p.scope(Permission::ReadCase).covers_place(&case.area_path, &case.grid_code) {
            Err(Error::denied("the case is held by a center outside your dispatch scope"))
        } else {
            Err(case_not_found(id))
        }
    }

    /// The unit a dispatch by hand names, as the registry knows it: refused by `unit_code` when unknown,
    /// retired, or stationed outside the caller's Dispatch scope. A 轮驻 department off duty may still be
    /// called by hand (the dispatcher overrides the schedule, as 随驻 departments are called).
    async fn manual_target(&self, p: &Principal, kind: UnitKind, code: &UnitCode) -> Result<Target> {
        let scope = p.scope(Permission::Dispatch);
        let units = &self.planner.units;
        let (center, name) = match kind {
            UnitKind::Department => {
                let d = units
                    .department(code)
                    .await?
                    .ok_or_else(|| Error::invalid("unit_code", "is not a department the registry knows"))?;
                if d.duty == Duty::Retired {
                    return Err(Error::invalid("unit_code", "is a retired department; it receives no cases"));
                }
                (d.center_code, d.name)
            }
            UnitKind::Center => {
                let name = units
                    .center(code)
                    .await?
                    .ok_or_else(|| Error::invalid("unit_code", "is not a center the registry knows"))?;
                (code.to_string(), format!("{name}综治中心"))
            }
        };
        if !scope.covers_node(&center) {
            return Err(Error::invalid("unit_code", "is outside your dispatch scope"));
        }
        Ok(Target { unit_kind: kind, unit_code: code.clone(), unit_name: name, rule_id: None, via: Via::Manual })
    }
}

/// The case's holding center lies within the caller's Dispatch scope.
fn may_dispatch(p: &Principal, case: &Case) -> bool {
    p.scope(Permission::Dispatch).covers_node(&case.holding_center)
}

fn case_not_found(id: CaseId) -> Error {
    Error::not_found(format!("case {id}"))
}

/// Locks the case and its live task, and checks the dispatcher's view still holds: the case is where it was
/// seen (`seen_at`), not closed nor awaiting verification, and its live task is the one expected.
async fn lock_in_hand(
    conn: &mut PgConnection,
    p: &Principal,
    seen_at: &str,
    id: CaseId,
    expected: Option<Uuid>,
) -> Result<(Case, Option<Uuid>)> {
    let case = db::lock_case(conn, id).await?.ok_or_else(|| case_not_found(id))?;
    if case.holding_center != seen_at {
        if !may_dispatch(p, &case) {
            return Err(Error::denied("the case has moved to a center outside your dispatch scope"));
        }
        return Err(Error::failed_precondition("case_id: the case moved to another center meanwhile"));
    }
    let (live, latest) = db::lock_live(conn, id).await?;
    may_take(Standing { closed: case.closed, live, latest }, expected).map_err(Error::failed_precondition)?;
    Ok((case, live))
}

/// Supersedes the live task `id` with its 召回 event; `redispatch` when a dispatch by hand follows.
async fn recall(
    conn: &mut PgConnection,
    tasks: &Tasks,
    case: &Case,
    id: Uuid,
    actor: &str,
    reason: &str,
    redispatch: bool,
) -> Result<Task> {
    db::recall(conn, id, actor, reason, Utc::now()).await?;
    let event = CaseRecalled {
        task_id: id.to_string(),
        reason: reason.into(),
        center_code: case.holding_center.clone(),
        case_no: case.case_no.to_string(),
        redispatch,
    };
    tasks.outbox.add(conn, case.id, actor, Body::CaseRecalled(event)).await?;
    db::task(conn, id, false).await?.ok_or_else(|| not_found(id))
}
