//! The registry's consumer: case events keep the tree ledger current. The inbox row and the ledger change share
//! one transaction, so a redelivered event changes nothing.

use kit::events::Handler;
use proto::events::v1::Envelope;
use sqlx::PgConnection;

use crate::ledger::domain::Applied;
use crate::ledger::service::apply_event;

pub struct LedgerHandler;

impl Handler for LedgerHandler {
    type Prepared = ();

    async fn prepare(&self, _event: &Envelope) -> anyhow::Result<()> {
        Ok(())
    }

    fn applies(&self, event: &Envelope) -> bool {
        crate::ledger::service::in_ledger(event)
    }

    async fn handle(&self, conn: &mut PgConnection, event: &Envelope, (): ()) -> anyhow::Result<()> {
        match apply_event(conn, event).await? {
            // Case ids are not personal data; the event carries no parties here, and none is logged.
            Applied::UnknownCase => {
                tracing::warn!(event_id = %event.event_id, case_id = %event.case_id, "ledger event for an unknown case; ignored");
            }
            Applied::NoChange => {
                tracing::debug!(event_id = %event.event_id, case_id = %event.case_id, "ledger event changes nothing");
            }
            Applied::Counted | Applied::Card | Applied::NotLedger => {}
        }
        Ok(())
    }
}
