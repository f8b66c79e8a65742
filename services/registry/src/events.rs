//! The registry's consumer: case events keep the tree ledger current. The inbox row and the ledger change share
//! one transaction, so a redelivered event changes nothing.

use kit::events::{Event, Handler};
use sqlx::PgConnection;

use crate::ledger::domain::Applied;
use crate::ledger::service::{self, Work};

pub struct LedgerHandler;

impl Handler for LedgerHandler {
    type Work = Work;
    type Prepared = ();

    fn select(&self, event: &Event<'_>) -> Option<Work> {
        service::select(event.body)
    }

    async fn prepare(&self, _event: &Event<'_>, _work: &Work) -> anyhow::Result<()> {
        Ok(())
    }

    async fn handle(&self, conn: &mut PgConnection, event: &Event<'_>, work: Work, (): ()) -> anyhow::Result<()> {
        match service::apply(conn, event, work).await? {
            // Case ids are not personal data; the event carries no parties here, and none is logged.
            Applied::UnknownCase => {
                tracing::warn!(event_id = %event.id(), case_id = %event.case_id, "ledger event for an unknown case; ignored");
            }
            Applied::NoChange => {
                tracing::debug!(event_id = %event.id(), case_id = %event.case_id, "ledger event changes nothing");
            }
            Applied::Counted | Applied::Card | Applied::NotLedger => {}
        }
        Ok(())
    }
}
