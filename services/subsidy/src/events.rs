//! The consumer: a registered case's place is kept (for scoped reads of credits), and a case the citizen
//! confirmed (满意 / 基本满意) credits its resolver, once per event (the inbox) and once per case (the
//! credits' unique case id).

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
        let Some(body) = &event.body else { return Ok(()) };
        let f = match body {
            Body::CaseFollowedUp(f) => f,
            Body::CaseRegistered(r) => return registered(tx, event, r).await,
            // Nothing else pays or changes where a case is.
            Body::CaseDispatched(_)
            | Body::CaseAccepted(_)
            | Body::CaseReturned(_)
            | Body::ReturnRejected(_)
            | Body::CaseResolved(_)
            | Body::CaseClosed(_)
            | Body::CaseReopened(_)
            | Body::DeadlineMissed(_)
            | Body::SubsidyCredited(_) => return Ok(()),
        };
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

/// Keeps where the case is, so a center reads the credits of its own area.
async fn registered(
    tx: &mut Transaction<'static, Postgres>,
    event: &Envelope,
    r: &proto::events::v1::CaseRegistered,
) -> anyhow::Result<()> {
    let Ok(case_id) = Uuid::parse_str(&event.case_id) else {
        tracing::warn!(event_id = %event.event_id, "registration without a valid case id; ignored");
        return Ok(());
    };
    crate::db::insert_case(tx, case_id, &r.area_path, &r.grid_code).await?;
    Ok(())
}
