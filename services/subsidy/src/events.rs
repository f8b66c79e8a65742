//! The consumer: a registered case's place is kept (for scoped reads of credits), and a case the citizen
//! confirmed (满意 / 基本满意) credits its resolver, once per event (the inbox) and once per case (the
//! credits' unique case id).

use kit::events::Handler;
use proto::events::v1::CaseFollowedUp;
use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::PgConnection;
use uuid::Uuid;

use kit::vocab::Satisfaction;

use crate::service::{Confirmed, Ledger, Standing};

pub struct FollowUpHandler(pub Ledger);

/// The follow-up if it confirms the result (满意 / 基本满意), the only event that pays.
fn confirming(event: &Envelope) -> Option<&CaseFollowedUp> {
    let Some(Body::CaseFollowedUp(f)) = &event.body else { return None };
    match Satisfaction::parse("satisfaction", &f.satisfaction) {
        Ok(s) if s.confirms_result() => Some(f),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(event_id = %event.event_id, error = %e, "follow-up with an unknown satisfaction; ignored");
            None
        }
    }
}

impl Handler for FollowUpHandler {
    /// The resolver's standing in the registry, for a confirming follow-up.
    type Prepared = Option<Standing>;

    async fn prepare(&self, event: &Envelope) -> anyhow::Result<Option<Standing>> {
        let Some(f) = confirming(event) else { return Ok(None) };
        let Ok(case_id) = Uuid::parse_str(&event.case_id) else { return Ok(None) };
        Ok(Some(self.0.standing_for(case_id, &f.resolver_id).await?))
    }

    /// A registration (where the case is) and a follow-up (what may be paid); as in `handle`, nothing else.
    fn applies(&self, event: &Envelope) -> bool {
        match &event.body {
            Some(Body::CaseFollowedUp(_) | Body::CaseRegistered(_)) => true,
            Some(
                Body::CaseEscalated(_)
                | Body::CaseRecalled(_)
                | Body::CaseDispatched(_)
                | Body::CaseAccepted(_)
                | Body::CaseReturned(_)
                | Body::ReturnRejected(_)
                | Body::CaseResolved(_)
                | Body::CaseClosed(_)
                | Body::CaseReopened(_)
                | Body::DeadlineMissed(_)
                | Body::CaseSupervised(_)
                | Body::CaseJoint(_)
                | Body::SubsidyCredited(_)
                | Body::CaseMerged(_)
                | Body::CaseUnmerged(_),
            )
            | None => false,
        }
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Envelope, standing: Option<Standing>) -> anyhow::Result<()> {
        let Some(body) = &event.body else { return Ok(()) };
        match body {
            Body::CaseFollowedUp(_) => {}
            Body::CaseRegistered(r) => return registered(tx, event, r).await,
            // Nothing else pays or changes where a case is: a hop or a recall moves who holds it, not who
            // resolved it.
            Body::CaseEscalated(_)
            | Body::CaseRecalled(_)
            | Body::CaseDispatched(_)
            | Body::CaseAccepted(_)
            | Body::CaseReturned(_)
            | Body::ReturnRejected(_)
            | Body::CaseResolved(_)
            | Body::CaseClosed(_)
            | Body::CaseReopened(_)
            | Body::DeadlineMissed(_)
            | Body::CaseSupervised(_)
            | Body::CaseJoint(_)
            | Body::SubsidyCredited(_) => return Ok(()),
            // A merged case is never closed or followed up itself (supervision refuses it), so it is never
            // credited; its matter is paid once, on the case it was merged into.
            Body::CaseMerged(_) | Body::CaseUnmerged(_) => return Ok(()),
        }
        let (Some(f), Some(standing)) = (confirming(event), standing) else { return Ok(()) };
        let Ok(case_id) = Uuid::parse_str(&event.case_id) else {
            tracing::warn!(event_id = %event.event_id, "follow-up without a valid case id; ignored");
            return Ok(());
        };
        let confirmed =
            Confirmed { case_id, case_no: &f.case_no, category_code: &f.category_code, resolver_id: &f.resolver_id };
        self.0.credit(tx, &confirmed, standing).await?;
        Ok(())
    }

    fn committed(&self) {
        self.0.outbox.wake();
    }
}

/// Keeps where the case is, so a center reads the credits of its own area.
async fn registered(
    tx: &mut PgConnection,
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
