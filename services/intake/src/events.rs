//! The case-file consumer: every other service's case events become timeline steps and move the projected
//! state, exactly once per event (the inbox and the timeline's unique event id both guard it).

use kit::events::Handler;
use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{self, NewStep};
use crate::domain::{flags_for, step_for};

pub struct CaseFileHandler;

impl Handler for CaseFileHandler {
    type Prepared = ();

    async fn prepare(&self, _event: &Envelope) -> anyhow::Result<()> {
        Ok(())
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Envelope, (): ()) -> anyhow::Result<()> {
        let Some(body) = &event.body else { return Ok(()) };
        let Some(step) = step_for(body) else { return Ok(()) };
        let Ok(case_id) = Uuid::parse_str(&event.case_id) else {
            tracing::warn!(event_id = %event.event_id, "event without a valid case id; ignored");
            return Ok(());
        };
        let Some((from, current_task)) = db::lock_state(tx, case_id).await? else {
            tracing::warn!(%case_id, "event for a case intake does not know; ignored");
            return Ok(());
        };
        if db::has_step(tx, case_id, &event.event_id).await? {
            // Replayed: the file shows it already, and applying it again would move the state back.
            return Ok(());
        }
        // A step of a task the case has moved on from (superseded by a reopening or a new dispatch) is history,
        // not the case's state: it is recorded and moves nothing.
        let stale = matches!(step_task(body), Some(t) if !current_task.is_empty() && t != current_task);
        let to = if stale { from.clone() } else { step.to_state.map_or(from.as_str(), |s| s.as_str()).to_owned() };
        let at = kit::time::from_ms(event.occurred_at_ms);
        let task = step.task.as_ref().map(|(t, u)| (t.as_str(), u.as_str()));
        db::set_state(tx, case_id, &to, task, at).await?;
        let flags = flags_for(body);
        if flags != crate::domain::Flags::default() {
            db::set_flags(tx, case_id, flags).await?;
        }
        let new = NewStep {
            case_id,
            at,
            actor: &event.actor,
            action: step.action,
            from_state: &from,
            to_state: &to,
            detail: &step.detail,
            source: step.source,
            event_id: Some(&event.event_id),
        };
        db::append_step(tx, &new).await?;
        Ok(())
    }
}

/// The task a handling event is about; None for events about the whole case. Dispatch names the task it
/// creates, so it is never stale.
fn step_task(body: &Body) -> Option<&str> {
    match body {
        Body::CaseAccepted(e) => Some(&e.task_id),
        Body::CaseReturned(e) => Some(&e.task_id),
        Body::ReturnRejected(e) => Some(&e.task_id),
        Body::CaseResolved(e) => Some(&e.task_id),
        Body::CaseRegistered(_)
        | Body::CaseDispatched(_)
        | Body::CaseClosed(_)
        | Body::CaseFollowedUp(_)
        | Body::CaseReopened(_)
        | Body::DeadlineMissed(_)
        | Body::SubsidyCredited(_) => None,
    }
}
