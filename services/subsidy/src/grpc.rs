//! The gRPC face, transport only: request → parsed domain value → one call → the aggregate mapped to protobuf.

use proto::subsidy::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{Credit, CreditQuery, NewTariffRule, TariffRule};
use crate::service::Ledger;

pub struct SubsidyService(pub Ledger);

#[tonic::async_trait]
impl pb::subsidy_server::Subsidy for SubsidyService {
    async fn list_credits(
        &self,
        request: Request<pb::ListCreditsRequest>,
    ) -> Result<Response<pb::ListCreditsResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let query = CreditQuery::parse(&r.case_id, &r.person_id).map_err(|e| kit::grpc::invalid(&e))?;
        let (credits, total_fen) = self.0.credits(&p, &query).await?;
        Ok(Response::new(pb::ListCreditsResponse { credits: credits.into_iter().map(to_credit).collect(), total_fen }))
    }

    async fn list_tariff_rules(
        &self,
        _request: Request<pb::ListTariffRulesRequest>,
    ) -> Result<Response<pb::ListTariffRulesResponse>, Status> {
        let rules = self.0.tariffs().await?;
        Ok(Response::new(pb::ListTariffRulesResponse { rules: rules.into_iter().map(to_rule).collect() }))
    }

    async fn put_tariff_rule(
        &self,
        request: Request<pb::PutTariffRuleRequest>,
    ) -> Result<Response<pb::PutTariffRuleResponse>, Status> {
        let p = kit::auth::principal(&request)?;
        let r = request.get_ref();
        let rule = NewTariffRule::parse(&r.id, &r.category_prefix, r.amount_fen, &r.description, r.active)
            .map_err(|e| kit::grpc::invalid(&e))?;
        let saved = self.0.put_tariff(&p, rule).await?;
        let target = format!("tariff:{} version:{}", saved.id, saved.version);
        Ok(kit::audit::target(Response::new(pb::PutTariffRuleResponse { rule: Some(to_rule(saved)) }), target))
    }
}

fn to_credit(c: Credit) -> pb::Credit {
    pb::Credit {
        id: c.id.to_string(),
        case_id: c.case_id.to_string(),
        case_no: c.case_no,
        person_id: c.person_id,
        amount_fen: c.amount_fen,
        tariff_rule_id: c.tariff_rule_id,
        tariff_version: u32::try_from(c.tariff_version).unwrap_or_default(),
        credited_at: kit::time::local(c.credited_at),
    }
}

fn to_rule(r: TariffRule) -> pb::TariffRule {
    pb::TariffRule {
        id: r.id,
        version: u32::try_from(r.version).unwrap_or_default(),
        category_prefix: r.category_prefix,
        amount_fen: r.amount_fen,
        description: r.description,
        active: r.active,
        created_by: r.created_by,
    }
}
