//! The projection: case events become supervision's view of each case, its tasks and its deadlines (督办),
//! exactly once per event (the inbox), and once per task and stage (the deadlines' unique key).

use chrono::{DateTime, Utc};
use kit::events::{Event, Handler};
use kit::ids::CaseId;
use kit::vocab::Urgency;
use proto::events::v1::envelope::Body;
use proto::events::v1::{
    CaseAccepted, CaseDispatched, CaseJoint, CaseMerged, CaseRegistered, CaseReopened, CaseResolved, CaseReturned,
    ReturnRejected,
};
use sqlx::PgConnection;

use crate::db::{self, CaseFacts};
use crate::domain::{DeadlineState, Stage};
use crate::service::changes::end_pause_when_done;
use crate::service::clocks::Clocks;

#[derive(Default)]
pub struct ProjectionHandler {
    pub clocks: std::sync::Arc<Clocks>,
}

/// What an event means to supervision's projection: the one match over the catalogue is
/// [`ProjectionHandler::select`].
pub enum Work {
    Registered(CaseRegistered),
    Dispatched(CaseDispatched),
    Accepted(CaseAccepted),
    Returned(CaseReturned),
    ReturnRejected(ReturnRejected),
    Resolved(CaseResolved),
    Reopened(CaseReopened),
    Joint(CaseJoint),
    Merged(CaseMerged),
    Unmerged,
    /// The task was taken back: 召回, or a hop that superseded a live task.
    Recalled {
        task_id: String,
    },
}

impl Handler for ProjectionHandler {
    type Work = Work;
    type Prepared = ();

    fn select(&self, event: &Event<'_>) -> Option<Work> {
        Some(match event.body {
            Body::CaseRegistered(r) => Work::Registered(r.clone()),
            Body::CaseDispatched(d) => Work::Dispatched(d.clone()),
            Body::CaseAccepted(a) => Work::Accepted(a.clone()),
            Body::CaseReturned(r) => Work::Returned(r.clone()),
            Body::ReturnRejected(r) => Work::ReturnRejected(r.clone()),
            Body::CaseResolved(r) => Work::Resolved(r.clone()),
            Body::CaseReopened(r) => Work::Reopened(r.clone()),
            Body::CaseJoint(j) => Work::Joint(j.clone()),
            Body::CaseMerged(m) => Work::Merged(m.clone()),
            Body::CaseUnmerged(_) => Work::Unmerged,
            Body::CaseRecalled(r) => Work::Recalled { task_id: r.task_id.clone() },
            Body::CaseEscalated(e) if !e.superseded_task_id.is_empty() => {
                Work::Recalled { task_id: e.superseded_task_id.clone() }
            }
            // A hop with no live task ends no clock; the dispatch that follows starts one.
            Body::CaseEscalated(_) => return None,
            // Outcomes supervision wrote itself, the grades and clock changes it recorded itself, and a credit
            // change no deadline.
            Body::CaseClosed(_)
            | Body::CaseFollowedUp(_)
            | Body::DeadlineMissed(_)
            | Body::CaseSupervised(_)
            | Body::SubsidyCredited(_) => return None,
        })
    }

    async fn prepare(&self, _event: &Event<'_>, _work: &Work) -> anyhow::Result<()> {
        Ok(())
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event<'_>, work: Work, (): ()) -> anyhow::Result<()> {
        let case_id = event.case_id;
        let at = event.occurred_at();
        match work {
            Work::Registered(r) => registered(tx, case_id, &r).await?,
            Work::Dispatched(d) => self.dispatched(tx, case_id, &d, at).await?,
            Work::Accepted(a) => self.accepted(tx, case_id, &a, at).await?,
            Work::Returned(r) => {
                db::set_returned(tx, case_id, &r.task_id, true, at).await?;
                db::settle(tx, &r.task_id, Stage::Accept, DeadlineState::Cancelled, at).await?;
            }
            Work::ReturnRejected(r) => self.return_rejected(tx, case_id, &r.task_id, at).await?,
            Work::Resolved(r) => {
                // The envelope's actor is who resolved it; routing records them as the task's handler.
                let resolution = db::Resolution {
                    case_id,
                    task_id: &r.task_id,
                    resolved_by: event.actor(),
                    resolver_id: &r.resolver_id,
                    outcome: kit::vocab::Outcome::from_proto("outcome", r.outcome).map_or("", |o| o.as_str()),
                    at,
                };
                db::resolve_task(tx, &resolution).await?;
                self.end_pause(tx, case_id, &r.task_id, Stage::Resolve, at).await?;
                db::settle(tx, &r.task_id, Stage::Resolve, DeadlineState::Met, at).await?;
            }
            Work::Reopened(r) => reopened(tx, case_id, &r).await?,
            Work::Joint(j) => self.joint(tx, case_id, &j, at).await?,
            Work::Merged(m) => merged(tx, case_id, &m).await?,
            // Routing dispatches the case again; its deadlines start with that dispatch.
            Work::Unmerged => db::set_merged(tx, case_id, None).await?,
            Work::Recalled { task_id } => self.recalled(tx, case_id, &task_id, at).await?,
        }
        Ok(())
    }
}

/// case.registered: the case and its place (area, grid, reporter, center), which its clocks and reads need.
async fn registered(tx: &mut PgConnection, case_id: CaseId, r: &CaseRegistered) -> anyhow::Result<()> {
    let place = db::Place {
        area_path: &r.area_path,
        grid_code: &r.grid_code,
        reporter_id: &r.reporter_id,
        center_code: &r.center_code,
        center_name: &r.center_name,
        area_names: &r.area_names,
        category_name: &r.category_name,
    };
    db::upsert_case(tx, &facts(case_id, &r.case_no, &r.category_code, r.urgency), Some(&place)).await?;
    Ok(())
}

/// case.reopened: a new round. Supervision's own reopenings come back here too; advancing to a round is
/// idempotent.
async fn reopened(tx: &mut PgConnection, case_id: CaseId, r: &CaseReopened) -> anyhow::Result<()> {
    let round = i32::try_from(r.round).unwrap_or(i32::MAX);
    db::upsert_case(tx, &facts(case_id, "", "", 0), None).await?;
    db::advance_round(tx, case_id, round).await?;
    db::supersede_open(tx, case_id, round).await?;
    db::cancel_pending(tx, case_id).await?;
    Ok(())
}

/// case.merged: handled as the case it was merged into, so every open task of any round is superseded and every
/// pending deadline cancelled, as a reopening does for the rounds it ends.
async fn merged(tx: &mut PgConnection, case_id: CaseId, m: &CaseMerged) -> anyhow::Result<()> {
    let into = if m.into_case_no.is_empty() { &m.into_case_id } else { &m.into_case_no };
    db::set_merged(tx, case_id, Some(into)).await?;
    db::supersede_open(tx, case_id, i32::MAX).await?;
    db::cancel_pending(tx, case_id).await?;
    Ok(())
}

impl ProjectionHandler {
    /// case.dispatched: the task, and its accept clock.
    async fn dispatched(
        &self,
        tx: &mut PgConnection,
        case_id: CaseId,
        d: &CaseDispatched,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let case = db::upsert_case(tx, &facts(case_id, &d.case_no, &d.category_code, d.urgency), None).await?;
        let dispatch = db::Dispatch {
            case_id,
            task_id: &d.task_id,
            unit_code: &d.unit_code,
            unit_name: &d.unit_name,
            slip_no: &d.slip_no,
            attempt: i32::try_from(d.attempt).unwrap_or(i32::MAX),
            case_no: &d.case_no,
            category_code: &d.category_code,
            at,
        };
        db::record_dispatch(tx, &dispatch).await?;
        db::supersede_returned(tx, case_id, &d.task_id, dispatch.attempt).await?;
        // A dispatch seen again after its task moved on (a replay) starts no clock: any deadline of the task
        // means the accept stage was already reached.
        if db::task_deadline_states(tx, &d.task_id).await?.is_empty() {
            self.start_clock_of(tx, &case, &d.task_id, Stage::Accept, at, false).await?;
        }
        Ok(())
    }

    /// case.accepted: the accept clock is met and 签收 starts the handling clock, unless the task was cancelled
    /// meanwhile (returned, or its round reopened): an acceptance seen late never starts a clock for a stage
    /// already passed.
    async fn accepted(
        &self,
        tx: &mut PgConnection,
        case_id: CaseId,
        a: &CaseAccepted,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        db::accept_task(tx, case_id, &a.task_id, &a.handler_id, at).await?;
        self.end_pause(tx, case_id, &a.task_id, Stage::Accept, at).await?;
        db::settle(tx, &a.task_id, Stage::Accept, DeadlineState::Met, at).await?;
        let states = db::task_deadline_states(tx, &a.task_id).await?;
        if !states.iter().any(|&(_, state)| state == DeadlineState::Cancelled) {
            self.start_clock(tx, case_id, &a.task_id, Stage::Resolve, at, false).await?;
        }
        Ok(())
    }

    /// case.return_rejected: the task goes back to its unit, which must now accept it: the accept clock the
    /// return stopped starts again from the rejection, unless the task has moved past accepting meanwhile.
    async fn return_rejected(
        &self,
        tx: &mut PgConnection,
        case_id: CaseId,
        task_id: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        db::set_returned(tx, case_id, task_id, false, at).await?;
        let states = db::task_deadline_states(tx, task_id).await?;
        let stopped = states.contains(&(Stage::Accept, DeadlineState::Cancelled));
        if stopped && !states.iter().any(|&(stage, _)| stage == Stage::Resolve) {
            self.start_clock(tx, case_id, task_id, Stage::Accept, at, true).await?;
        }
        Ok(())
    }

    /// 吹哨报到: a summoned unit's 报到 clock starts at the summons, is met by its 报到 and stopped by its release.
    async fn joint(
        &self,
        tx: &mut PgConnection,
        case_id: CaseId,
        j: &proto::events::v1::CaseJoint,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let seen = db::CoHandlerSeen {
            co_id: &j.co_id,
            lead_task_id: &j.task_id,
            case_id,
            unit_code: &j.unit_code,
            unit_name: &j.unit_name,
            state: &j.action,
            at,
        };
        match j.action.as_str() {
            "summoned" => {
                db::record_co_handler(tx, &seen).await?;
                if db::task_deadline_states(tx, &j.co_id).await?.is_empty() {
                    self.start_clock(tx, case_id, &j.co_id, Stage::Report, at, false).await?;
                }
            }
            "reported_in" => {
                db::record_co_handler(tx, &seen).await?;
                db::settle(tx, &j.co_id, Stage::Report, DeadlineState::Met, at).await?;
            }
            "released" => {
                db::record_co_handler(tx, &seen).await?;
                db::settle(tx, &j.co_id, Stage::Report, DeadlineState::Cancelled, at).await?;
            }
            "contributed" => db::record_co_handler(tx, &seen).await?,
            other => tracing::warn!(%case_id, action = other, "case.joint with an action this build does not know"),
        }
        Ok(())
    }

    /// The task was taken back (召回, a re-dispatch or a hop): it is superseded and its clocks stop, as a
    /// return's accept clock does; a pause in force ends first, so the time it stood is accounted for.
    async fn recalled(
        &self,
        conn: &mut PgConnection,
        case_id: CaseId,
        task_id: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        db::supersede_task(conn, case_id, task_id).await?;
        for stage in [Stage::Accept, Stage::Resolve] {
            self.end_pause(conn, case_id, task_id, stage, at).await?;
            db::settle(conn, task_id, stage, DeadlineState::Cancelled, at).await?;
        }
        Ok(())
    }

    /// A stage done while paused ends its pause first ([`end_pause_when_done`]).
    async fn end_pause(
        &self,
        conn: &mut PgConnection,
        case_id: CaseId,
        task_id: &str,
        stage: Stage,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        Ok(end_pause_when_done(conn, case_id, task_id, stage, at).await?)
    }

    /// Adds the pending deadline for the stage, due when the case's policy says on its place's calendar
    /// ([`Clocks::plan`]); with `restart`, a cancelled one of the stage starts again.
    async fn start_clock(
        &self,
        conn: &mut PgConnection,
        case_id: CaseId,
        task_id: &str,
        stage: Stage,
        at: DateTime<Utc>,
        restart: bool,
    ) -> anyhow::Result<()> {
        let case = db::lock_case(conn, case_id).await?.unwrap_or_else(|| unknown_case(case_id));
        self.start_clock_of(conn, &case, task_id, stage, at, restart).await
    }

    /// [`Self::start_clock`] for a case the transaction has already locked and read.
    async fn start_clock_of(
        &self,
        conn: &mut PgConnection,
        case: &crate::domain::Case,
        task_id: &str,
        stage: Stage,
        at: DateTime<Utc>,
        restart: bool,
    ) -> anyhow::Result<()> {
        if task_id.is_empty() {
            tracing::warn!(case_id = %case.case_id, stage = %stage, "event without a task id; no deadline");
            return Ok(());
        }
        let deadline = self.clocks.plan(conn, case, task_id, stage, at).await?;
        db::insert_deadline(conn, &deadline, restart).await?;
        Ok(())
    }
}

/// A case whose registration supervision has not seen: normal urgency, no category, no place (the national
/// calendar and the policy's fallback rule).
fn unknown_case(case_id: CaseId) -> crate::domain::Case {
    crate::domain::Case {
        case_id,
        case_no: String::new(),
        category_code: String::new(),
        urgency: Urgency::Normal,
        round: 1,
        area_path: Vec::new(),
        grid_code: String::new(),
        reporter_id: String::new(),
        policy_version: None,
    }
}

/// What an event says of the case. An urgency it names but this service does not know is normal
/// ([`Urgency::or_normal`]), so a case is never left without a deadline because of an unexpected value; an
/// unset one leaves the known urgency as it is.
fn facts<'a>(case_id: CaseId, case_no: &'a str, category_code: &'a str, urgency: i32) -> CaseFacts<'a> {
    let urgency = (urgency != 0).then(|| Urgency::or_normal(urgency));
    CaseFacts { case_id, case_no, category_code, urgency }
}
