//! Subsidy's use cases, the ledger (以案定补): crediting the resolver of a confirmed case (asking the registry
//! over gRPC whether they are eligible, and writing `subsidy.credited` to the outbox in the same transaction),
//! reading credits within the caller's reach, and reading and adding tariff versions.

use chrono::Utc;
use kit::auth::Principal;
use kit::events::Outbox;
use kit::ids::CaseId;
use proto::events::v1::{SubsidyCredited, envelope::Body};
use proto::registry::v1::GetPersonRequest;
use proto::registry::v1::registry_client::RegistryClient;
use sqlx::{PgConnection, PgPool};
use tonic::Code;

use crate::db;
use crate::domain::{Credit, CreditQuery, Decision, NewTariffRule, TariffRule, pick_tariff};
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Ledger {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub registry: RegistryClient<kit::grpc::Channel>,
}

/// A case the citizen confirmed at the follow-up, to be credited to whoever resolved it.
pub struct Confirmed<'a> {
    pub case_id: CaseId,
    pub case_no: &'a str,
    pub category_code: &'a str,
    pub resolver_id: &'a str,
}

/// Credit under this rule, or record why not.
enum Verdict {
    Credit(TariffRule),
    Skip(Decision, String),
}

/// What the registry says of a resolver, asked before the consumer's transaction opens.
#[derive(Debug, Clone)]
pub enum Standing {
    Eligible,
    Ineligible(String),
    Unknown(String),
    /// Not asked: the case was credited already.
    NotAsked,
}

impl Ledger {
    /// The resolver's standing, asked before any transaction opens so no pooled connection waits on the
    /// registry. A case already credited costs no remote call. An unreachable registry is an error, so the
    /// event is retried rather than decided without it.
    pub async fn standing_for(&self, case_id: CaseId, resolver_id: &str) -> anyhow::Result<Standing> {
        if db::is_credited(&mut *self.pool.acquire().await?, case_id).await? {
            return Ok(Standing::NotAsked);
        }
        self.standing(resolver_id).await
    }

    /// Credits the resolver inside the caller's transaction (the consumer's, with its inbox row), writing
    /// `subsidy.credited` to the outbox, or records why not.
    pub async fn credit(
        &self,
        tx: &mut PgConnection,
        c: &Confirmed<'_>,
        standing: Standing,
    ) -> anyhow::Result<Decision> {
        match self.decide(tx, c, standing).await? {
            Verdict::Skip(decision, reason) => {
                db::record_decision(tx, c.case_id, c.resolver_id, decision, &reason).await?;
                tracing::info!(case_id = %c.case_id, %decision, "case not credited");
                Ok(decision)
            }
            Verdict::Credit(rule) => self.write_credit(tx, c, &rule).await,
        }
    }

    async fn decide(&self, tx: &mut PgConnection, c: &Confirmed<'_>, standing: Standing) -> anyhow::Result<Verdict> {
        // Checked again inside the transaction; the unique constraint still decides under a race.
        if db::is_credited(tx, c.case_id).await? {
            return Ok(Verdict::Skip(Decision::AlreadyCredited, "the case was credited before".into()));
        }
        match standing {
            Standing::Eligible => {}
            Standing::Ineligible(why) => return Ok(Verdict::Skip(Decision::Ineligible, why)),
            Standing::Unknown(why) => return Ok(Verdict::Skip(Decision::UnknownPerson, why)),
            Standing::NotAsked => anyhow::bail!("the resolver's standing was not asked; retrying"),
        }
        let rules = db::active_tariffs(tx).await?;
        match pick_tariff(&rules, c.category_code) {
            Some(rule) => Ok(Verdict::Credit(rule.clone())),
            None => {
                Ok(Verdict::Skip(Decision::NoTariff, format!("no active tariff for category {:?}", c.category_code)))
            }
        }
    }

    async fn standing(&self, person_id: &str) -> anyhow::Result<Standing> {
        if person_id.trim().is_empty() {
            return Ok(Standing::Unknown("the case names no resolver".into()));
        }
        let request = GetPersonRequest { id: person_id.to_owned() };
        match self.registry.clone().get_person(request).await {
            Ok(answer) => match answer.into_inner().person {
                Some(p) if p.subsidy_eligible => Ok(Standing::Eligible),
                Some(_) => Ok(Standing::Ineligible("the person is not registered as subsidy-eligible".into())),
                None => Ok(Standing::Unknown("the registry returned no person".into())),
            },
            Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => {
                Ok(Standing::Unknown("the person is not in the grid registry".into()))
            }
            Err(s) => anyhow::bail!("the grid registry is unavailable: {}", s.code()),
        }
    }

    async fn write_credit(
        &self,
        tx: &mut PgConnection,
        c: &Confirmed<'_>,
        rule: &TariffRule,
    ) -> anyhow::Result<Decision> {
        let credit = Credit::priced(c.case_id, c.case_no, c.resolver_id, rule, Utc::now());
        if !db::insert_credit(tx, &credit).await? {
            db::record_decision(tx, c.case_id, c.resolver_id, Decision::AlreadyCredited, "credited concurrently")
                .await?;
            return Ok(Decision::AlreadyCredited);
        }
        db::record_decision(tx, c.case_id, c.resolver_id, Decision::Credited, &rule.pricing()).await?;
        let event = SubsidyCredited {
            credit_id: credit.id.to_string(),
            person_id: credit.person_id.clone(),
            amount_fen: credit.amount_fen,
            tariff_rule_id: credit.tariff_rule_id.clone(),
            tariff_version: u32::try_from(credit.tariff_version).unwrap_or_default(),
        };
        self.outbox.add(tx, c.case_id, crate::NAME, Body::SubsidyCredited(event)).await?;
        tracing::info!(case_id = %c.case_id, credit_id = %credit.id, amount_fen = credit.amount_fen, "case credited");
        Ok(Decision::Credited)
    }

    /// The matching credits within the caller's reach and their sum in fen.
    pub async fn credits(&self, p: &Principal, q: &CreditQuery) -> Result<(Vec<Credit>, i64)> {
        let mut conn = self.pool.acquire().await?;
        let credits = db::credits(&mut conn, q, &p.scope(kit::auth::Permission::ReadCredits)).await?;
        let total = credits.iter().map(|c| c.amount_fen).sum();
        Ok((credits, total))
    }

    pub async fn tariffs(&self) -> Result<Vec<TariffRule>> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::active_tariffs(&mut conn).await?)
    }

    /// Adds the next version of the tariff rule, recording the caller as its author; see
    /// [`crate::scope::may_write_tariffs`] for who may.
    pub async fn put_tariff(&self, p: &Principal, rule: NewTariffRule) -> Result<TariffRule> {
        if !crate::scope::may_write_tariffs(p) {
            return Err(Error::denied(
                "tariffs are deployment-wide: they need a grant over the whole deployment or a prefecture",
            ));
        }
        let mut tx = kit::audit::begin(&self.pool).await?;
        let saved = db::insert_next_tariff(&mut tx, &rule, p.actor()).await?;
        tx.commit().await?;
        tracing::info!(rule_id = %saved.id, version = saved.version, actor = p.actor(), "tariff version added");
        Ok(saved)
    }
}
