//! The case-file consumer: every other service's case events become timeline steps and move the projected
//! state, exactly once per event (the inbox and the timeline's unique event id both guard it).

use kit::events::Handler;
use proto::events::v1::Envelope;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::db::{self, NewStep};
use crate::domain::{flags_for, step_for};

pub struct CaseFileHandler;

impl Handler for CaseFileHandler {
    async fn handle(&self, tx: &mut Transaction<'static, Postgres>, event: &Envelope) -> anyhow::Result<()> {
        let Some(body) = &event.body else { return Ok(()) };
        let Some(step) = step_for(body) else { return Ok(()) };
        let Ok(case_id) = Uuid::parse_str(&event.case_id) else {
            tracing::warn!(event_id = %event.event_id, "event without a valid case id; ignored");
            return Ok(());
        };
        let Some(from) = db::lock_state(tx, case_id).await? else {
            tracing::warn!(%case_id, "event for a case intake does not know; ignored");
            return Ok(());
        };
        let to = step.to_state.map_or(from.as_str(), |s| s.as_str()).to_owned();
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
