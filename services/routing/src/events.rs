//! The dispatch consumer: a registered case is dispatched, a reopened one starts a new round and is
//! dispatched again, a merged one's open task is superseded and an unmerged one dispatched again, a missed
//! deadline marks its task overdue for the task queue, and 销号 / a reopening keep the case's closed flag (a
//! closed case is not moved by hand). Every other event is someone else's business.

use std::sync::Arc;

use kit::events::{Event, Handler, Outbox};
use kit::ids::{CaseId, CaseNo};
use kit::vocab::Urgency;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseRegistered, CaseReopened, DeadlineMissed};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db;
use crate::domain::Case;
use crate::service::{dispatch, dispatch_excluding};
use crate::units::{Plan, Planner};

pub struct DispatchHandler {
    pub outbox: Outbox,
    pub planner: Arc<Planner>,
}

/// What an event means to routing: the one match over the catalogue is [`DispatchHandler::select`].
pub enum Work {
    Registered(Box<CaseRegistered>),
    Reopened(CaseReopened),
    Overdue(DeadlineMissed),
    Merged,
    Unmerged,
    Closed,
}

impl Handler for DispatchHandler {
    type Work = Work;
    /// The routing table and the duty of the departments the case could go to, read before the batch's
    /// transaction (the registry is never asked while a connection is held).
    type Prepared = Plan;

    fn select(&self, event: &Event<'_>) -> Option<Work> {
        Some(match event.body {
            Body::CaseRegistered(e) => Work::Registered(Box::new(e.clone())),
            Body::CaseReopened(e) => Work::Reopened(e.clone()),
            Body::DeadlineMissed(e) => Work::Overdue(e.clone()),
            Body::CaseMerged(_) => Work::Merged,
            Body::CaseUnmerged(_) => Work::Unmerged,
            Body::CaseClosed(_) => Work::Closed,
            // Routing's own events, and supervision's and subsidy's outcomes, change nothing it decides on.
            Body::CaseDispatched(_)
            | Body::CaseAccepted(_)
            | Body::CaseReturned(_)
            | Body::ReturnRejected(_)
            | Body::CaseResolved(_)
            | Body::CaseEscalated(_)
            | Body::CaseRecalled(_)
            | Body::CaseFollowedUp(_)
            | Body::CaseSupervised(_)
            | Body::CaseJoint(_)
            | Body::SubsidyCredited(_) => return None,
        })
    }

    async fn prepare(&self, event: &Event<'_>, work: &Work) -> anyhow::Result<Plan> {
        let case = match work {
            Work::Registered(e) => Some(registered_case(event, e)),
            // A reopened or unmerged case is dispatched again by its rules.
            Work::Reopened(_) | Work::Unmerged => {
                let mut conn = self.planner.pool.acquire().await?;
                db::case(&mut conn, event.case_id).await?
            }
            // Nothing else is dispatched by the rules, so nothing else needs a plan.
            Work::Overdue(_) | Work::Merged | Work::Closed => None,
        };
        let Some(case) = case else { return Ok(Plan::default()) };
        Ok(self.planner.plan_reserving(&case.facts(), Some(&case.holding_center)).await?)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event<'_>, work: Work, plan: Plan) -> anyhow::Result<()> {
        let case_id = event.case_id;
        match work {
            Work::Registered(e) => self.registered(tx, event, &e, &plan).await,
            Work::Reopened(e) => self.reopened(tx, case_id, &e, &plan).await,
            Work::Overdue(e) => overdue(tx, case_id, &e).await,
            Work::Merged => merged(tx, case_id).await,
            Work::Unmerged => self.unmerged(tx, case_id, &plan).await,
            Work::Closed => {
                db::set_closed(tx, case_id, true).await?;
                Ok(())
            }
        }
    }

    fn committed(&self) {
        self.outbox.wake();
    }
}

impl DispatchHandler {
    async fn registered(
        &self,
        tx: &mut PgConnection,
        event: &Event<'_>,
        e: &CaseRegistered,
        plan: &Plan,
    ) -> anyhow::Result<()> {
        let case_id = event.case_id;
        let case = registered_case(event, e);
        if !db::insert_case(tx, &case).await? {
            // The inbox catches redeliveries; this is the same case registered under another event id.
            tracing::warn!(%case_id, "case already known to routing; not dispatched again");
            return Ok(());
        }
        // Just inserted: no unit has had the case, so none is excluded (a read fewer on every registration).
        dispatch_excluding(tx, &self.outbox, &case, "routing", plan, &[]).await?;
        Ok(())
    }

    async fn reopened(
        &self,
        tx: &mut PgConnection,
        case_id: CaseId,
        e: &CaseReopened,
        plan: &Plan,
    ) -> anyhow::Result<()> {
        let Some(mut case) = db::lock_case(tx, case_id).await? else {
            tracing::warn!(%case_id, "reopening of a case routing does not know; ignored");
            return Ok(());
        };
        // Supervision numbers the rounds; a reopening for a round already started is a stale repeat.
        let round = i32::try_from(e.round).unwrap_or(0);
        if round > 0 && round <= case.round {
            tracing::info!(%case_id, round, current = case.round, "reopening for a round already started; ignored");
            return Ok(());
        }
        // A new round starts with no exclusions: units that returned the case before may get it again.
        case.round = if round > 0 { round } else { case.round + 1 };
        db::set_round(tx, case_id, case.round).await?;
        db::set_closed(tx, case_id, false).await?;
        let superseded = db::supersede_open(tx, case_id, chrono::Utc::now()).await?;
        tracing::info!(%case_id, round = case.round, supervision_round = e.round, superseded, "case reopened");
        // A reopened case is dispatched again at the center that holds it, by that center's rules.
        dispatch(tx, &self.outbox, &case, "routing", plan).await?;
        Ok(())
    }

    /// case.unmerged: the merge was a mistake, so the case is dispatched again by the rules, in its current
    /// round. Anything still open (a redelivery under another event id) is superseded first, so the case never
    /// has two live tasks.
    async fn unmerged(&self, tx: &mut PgConnection, case_id: CaseId, plan: &Plan) -> anyhow::Result<()> {
        let Some(case) = db::lock_case(tx, case_id).await? else {
            tracing::warn!(%case_id, "unmerge of a case routing does not know; ignored");
            return Ok(());
        };
        db::supersede_open(tx, case_id, chrono::Utc::now()).await?;
        tracing::info!(%case_id, round = case.round, "case unmerged; dispatched again");
        dispatch(tx, &self.outbox, &case, "routing", plan).await?;
        Ok(())
    }
}

/// case.merged: the case is handled as the one it was merged into, so its live task (any open one) is
/// superseded, as a reopening supersedes the round it ends. Repeating it supersedes nothing more.
async fn merged(tx: &mut PgConnection, case_id: CaseId) -> anyhow::Result<()> {
    if db::lock_case(tx, case_id).await?.is_none() {
        tracing::warn!(%case_id, "merge of a case routing does not know; ignored");
        return Ok(());
    }
    let superseded = db::supersede_open(tx, case_id, chrono::Utc::now()).await?;
    tracing::info!(%case_id, superseded, "case merged; its open tasks superseded");
    Ok(())
}

/// The case a registration records: held by its registering center.
fn registered_case(event: &Event<'_>, e: &CaseRegistered) -> Case {
    Case {
        id: event.case_id,
        // Intake issued it.
        case_no: CaseNo::from_stored(e.case_no.clone()),
        category_code: e.category_code.clone(),
        // Intake checked it; a value this service does not know is read as normal, never left unrouted.
        urgency: Urgency::or_normal(e.urgency),
        village_code: e.village_code.clone(),
        area_path: e.area_path.clone(),
        grid_code: e.grid_code.clone(),
        center_code: e.center_code.clone(),
        round: 1,
        registered_at: event.occurred_at(),
        holding_center: e.center_code.clone(),
        closed: false,
    }
}

/// case.overdue: the task's deadline was missed. The inbox makes a redelivery a no-op, and marking is itself
/// idempotent (the earliest due time wins), so a repeat under another event id changes nothing either.
async fn overdue(tx: &mut PgConnection, case_id: CaseId, e: &DeadlineMissed) -> anyhow::Result<()> {
    let Ok(task_id) = Uuid::parse_str(&e.task_id) else {
        tracing::warn!(%case_id, task_id = %e.task_id, "overdue notice without a valid task id; ignored");
        return Ok(());
    };
    let due = if e.due_ms > 0 { kit::time::from_ms(e.due_ms) } else { chrono::Utc::now() };
    let stage = proto::json::code_of::<proto::vocab::v1::Stage>(e.stage);
    if !db::mark_overdue(tx, task_id, stage, due).await? {
        tracing::warn!(%case_id, %task_id, "overdue notice for a task routing does not know; ignored");
    }
    Ok(())
}
