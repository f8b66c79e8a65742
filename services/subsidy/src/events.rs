//! The follow-up consumer: a case the citizen confirmed (满意 / 基本满意) credits its resolver, once per
//! event (the inbox) and once per case (the credits' unique case id).

use kit::events::Handler;
use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::domain::Satisfaction;
use crate::ledger::{Confirmed, Ledger};

pub struct FollowUpHandler(pub Ledger);

impl Handler for FollowUpHandler {
    async fn handle(&self, tx: &mut Transaction<'static, Postgres>, event: &Envelope) -> anyhow::Result<()> {
        let Some(Body::CaseFollowedUp(f)) = &event.body else { return Ok(()) };
        let Ok(case_id) = Uuid::parse_str(&event.case_id) else {
            tracing::warn!(event_id = %event.event_id, "follow-up without a valid case id; ignored");
            return Ok(());
        };
        match Satisfaction::parse("satisfaction", &f.satisfaction) {
            Ok(s) if s.confirms_result() => {}
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(event_id = %event.event_id, error = %e, "follow-up with an unknown satisfaction; ignored");
                return Ok(());
            }
        }
        let confirmed =
            Confirmed { case_id, case_no: &f.case_no, category_code: &f.category_code, resolver_id: &f.resolver_id };
        self.0.credit(tx, &confirmed).await?;
        Ok(())
    }

    fn committed(&self) {
        self.0.outbox.wake();
    }
}
