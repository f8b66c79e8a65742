//! The consumer: a registered case's place is kept (for scoped reads of credits), and a case the citizen
//! confirmed (满意 / 基本满意) credits its resolver, once per event (the inbox) and once per case (the
//! credits' unique case id).

use kit::events::{Event, Handler};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseFollowedUp, CaseRegistered};
use sqlx::PgConnection;

use kit::vocab::Satisfaction;

use crate::service::{Confirmed, Ledger, Standing};

pub struct FollowUpHandler(pub Ledger);

/// What an event means to subsidy: the one match over the catalogue is [`FollowUpHandler::select`].
pub enum Work {
    /// Where the case is, for scoped reads of credits.
    Registered(Box<CaseRegistered>),
    /// A follow-up that confirms the result (满意 / 基本满意), the only event that pays.
    Confirmed(CaseFollowedUp),
}

impl Handler for FollowUpHandler {
    type Work = Work;
    /// The resolver's standing in the registry, for a confirming follow-up.
    type Prepared = Option<Standing>;

    fn select(&self, event: &Event<'_>) -> Option<Work> {
        match event.body {
            Body::CaseRegistered(r) => Some(Work::Registered(Box::new(r.clone()))),
            Body::CaseFollowedUp(f) => match Satisfaction::from_proto("satisfaction", f.satisfaction) {
                Ok(s) if s.confirms_result() => Some(Work::Confirmed(f.clone())),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(event_id = %event.id(), error = %e, "follow-up with an unknown satisfaction; ignored");
                    None
                }
            },
            // Nothing else pays or changes where a case is: a hop or a recall moves who holds it, not who
            // resolved it. A merged case is never closed or followed up itself (supervision refuses it), so it
            // is never credited; its matter is paid once, on the case it was merged into.
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
            | Body::CaseUnmerged(_) => None,
        }
    }

    async fn prepare(&self, event: &Event<'_>, work: &Work) -> anyhow::Result<Option<Standing>> {
        let Work::Confirmed(f) = work else { return Ok(None) };
        Ok(Some(self.0.standing_for(event.case_id, &f.resolver_id).await?))
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Event<'_>,
        work: Work,
        standing: Option<Standing>,
    ) -> anyhow::Result<()> {
        match (work, standing) {
            // Keeps where the case is, so a center reads the credits of its own area.
            (Work::Registered(r), _) => crate::db::insert_case(tx, event.case_id, &r.area_path, &r.grid_code).await?,
            (Work::Confirmed(f), Some(standing)) => {
                let confirmed = Confirmed {
                    case_id: event.case_id,
                    case_no: &f.case_no,
                    category_code: &f.category_code,
                    resolver_id: &f.resolver_id,
                };
                self.0.credit(tx, &confirmed, standing).await?;
            }
            (Work::Confirmed(_), None) => {}
        }
        Ok(())
    }

    fn committed(&self) {
        self.0.outbox.wake();
    }
}
