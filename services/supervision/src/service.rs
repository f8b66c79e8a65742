//! Supervision's use cases behind its RPCs: verification and closure (核查/销号) and the follow-up visit (回访),
//! each one transaction over the domain's rules, the database and the outbox (whose events are protobuf), and
//! reading a case's deadlines. How the case was handled comes from supervision's own projection of routing's
//! events (`events`). The deadline scheduler, the rest of supervision's work, runs on its own clock rather than
//! behind a request, so it is a submodule of its own, [`scheduler`].

pub mod changes;
pub mod clocks;
pub mod rates;
pub mod resolution;
pub mod scheduler;
pub mod slips;

use chrono::Utc;
use kit::auth::{Permission, Principal};
use kit::events::Outbox;
use kit::ids::CaseId;
use kit::vocab::Satisfaction;
use proto::events::v1::{CaseClosed, CaseFollowedUp, CaseReopened, envelope::Body};
use sqlx::{PgConnection, PgPool};

use crate::db;
use crate::domain::policy::NewPolicy;
use crate::domain::{self, Closure, Deadline, FollowUp, Verdict, Verification, no_case};
use crate::error::{Error, Result};
use crate::scope::{self, acting};

/// The work behind supervision's RPCs.
#[derive(Clone)]
pub struct Supervision {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub slips: std::sync::Arc<slips::Printer>,
    /// The policy cache the consumer shares.
    pub clocks: std::sync::Arc<clocks::Clocks>,
    /// Keys the task slips' verification codes (the scheduler's, for 督办 slips).
    pub sealer: kit::pii::Sealer,
    /// Asked whether a task supervision has not seen resolved is resolved at routing ([`resolution`]).
    pub routing: resolution::Routing,
}

impl Supervision {
    /// Imports a calendar file for a center ('' for the national calendar), within the caller's rule-managing
    /// scope ([`clocks::may_import`]).
    pub async fn import_calendar(&self, p: &Principal, center_code: &str, csv: &str) -> Result<clocks::CalendarImport> {
        if !clocks::may_import(p, center_code) {
            let whose = if center_code.is_empty() { "the national calendar" } else { "this center's calendar" };
            return Err(Error::denied(format!("importing {whose}")));
        }
        let by = if p.person_id.is_empty() { &p.subject } else { &p.person_id };
        let done = clocks::import_calendar(&self.pool, center_code, csv, by, &mut |step| {
            tracing::info!(step, "calendar import")
        })
        .await?;
        self.clocks.forget_calendars();
        Ok(done)
    }

    /// Adds a time-policy version ([`clocks::may_manage_policy`]).
    pub async fn add_policy(&self, p: &Principal, policy: &NewPolicy) -> Result<i32> {
        if !clocks::may_manage_policy(p) {
            return Err(Error::denied("time policy needs a rule-managing grant at prefecture level or above"));
        }
        clocks::add_policy(&self.pool, policy, p.actor()).await
    }

    /// Every time-policy version, newest first, for whoever manages rules anywhere.
    pub async fn policies(&self) -> Result<Vec<(db::PolicyRow, String, chrono::DateTime<Utc>)>> {
        Ok(db::policies(&mut *self.pool.acquire().await?).await?)
    }

    /// Verifies the current round against the case's latest task: a pass closes it off the ledger, a failure
    /// reopens it into the next round. The caller is the verifier, within their area, and neither the case's
    /// reporter nor anyone who handled or was credited with one of its tasks. A resolution routing has recorded
    /// and supervision has not yet received is waited for ([`resolution`]), never refused as "not resolved".
    pub async fn verify(&self, p: &Principal, v: Verification, caller: &resolution::Caller) -> Result<Closure> {
        let unseen = match self.verify_seen(p, &v).await? {
            Ok(closure) => return Ok(closure),
            Err(unseen) => unseen,
        };
        // Asked with no connection held; the transaction that found the task unresolved is rolled back.
        let Some(task_id) = self.routing.latest_resolved(v.case_id, caller).await? else { return Err(unseen) };
        let started = std::time::Instant::now();
        while !db::task_resolved(&mut *self.pool.acquire().await?, &task_id).await? {
            if started.elapsed() >= resolution::WAIT {
                tracing::warn!(case_id = %v.case_id, task_id, "verification gave up waiting for case.resolved");
                return Err(resolution::still_on_its_way());
            }
            tokio::time::sleep(resolution::POLL).await;
        }
        // Routing and supervision agree now: whatever this answers is the case's real state.
        self.verify_seen(p, &v).await?
    }

    /// Verifies on what supervision has seen of the case's tasks; the inner error is a refusal for want of a
    /// resolved task, which may only be late.
    async fn verify_seen(&self, p: &Principal, v: &Verification) -> Result<Result<Closure>> {
        let v = Verification { verifier_id: acting("verifier_id", &v.verifier_id, p)?, ..v.clone() };
        let known = db::case(&mut *self.pool.acquire().await?, v.case_id).await?;
        scope::gate(p, Permission::Verify, v.case_id, known.as_ref())?;
        let mut tx = kit::audit::begin(&self.pool).await?;
        let case = db::lock_case(&mut tx, v.case_id).await?.ok_or_else(|| no_case(v.case_id))?;
        not_merged(&mut tx, v.case_id).await?;
        // The tasks as supervision's consumer has seen them (routing's events), read under the case lock.
        let tasks = db::case_tasks(&mut tx, v.case_id).await?;
        let hands = tasks.iter().flat_map(|t| [t.handler_id.as_str(), t.resolved_by.as_str(), t.resolver_id.as_str()]);
        scope::apart(&v.verifier_id, &case.reporter_id, hands)?;
        if db::closure(&mut tx, v.case_id, case.round).await?.is_some() {
            return Err(Error::failed_precondition(format!("round {} was already verified", case.round)));
        }
        let task = match domain::latest_resolved(tasks) {
            Ok(task) => task,
            Err(unseen) => return Ok(Err(unseen)),
        };
        if db::task_verified(&mut tx, &task.task_id).await? {
            // The round was reopened and its new task has not been resolved (or not yet seen).
            return Ok(Err(Error::failed_precondition(
                "the reopened case was not resolved again: closing a case never resolved",
            )));
        }
        let closure = Closure::of(&v, &case, &task, Utc::now());
        db::insert_closure(&mut tx, &closure).await?;
        match v.verdict {
            Verdict::Close(reason) => {
                let event = CaseClosed {
                    round: round_u32(case.round),
                    closure_reason: reason.as_str().into(),
                    resolver_id: closure.resolver_id.clone(),
                    category_code: closure.category_code.clone(),
                    case_no: closure.case_no.clone(),
                };
                self.outbox.add(&mut tx, v.case_id, &v.verifier_id, Body::CaseClosed(event)).await?;
            }
            Verdict::Reopen => {
                let why = domain::reopen_failed_verification(&v.note);
                self.reopen(&mut tx, v.case_id, case.round, &v.verifier_id, why).await?;
            }
        }
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %v.case_id, round = case.round, state = %closure.state, "case verified");
        Ok(Ok(closure))
    }

    /// Records the citizen's satisfaction with the closed round; unsatisfied reopens the case (重办). The
    /// caller is the visitor, within their area, and neither the reporter nor the round's handler or resolver
    /// (the visit decides whether the resolver is paid).
    pub async fn follow_up(&self, p: &Principal, f: FollowUp) -> Result<(Closure, bool)> {
        let f = FollowUp { visitor_id: acting("visitor_id", &f.visitor_id, p)?, ..f };
        let mut tx = kit::audit::begin(&self.pool).await?;
        let case = db::lock_case(&mut tx, f.case_id).await?;
        scope::gate(p, Permission::FollowUp, f.case_id, case.as_ref())?;
        let case = case.ok_or_else(|| no_case(f.case_id))?;
        not_merged(&mut tx, f.case_id).await?;
        let closure = db::closure(&mut tx, f.case_id, case.round).await?;
        let c = domain::awaiting_follow_up(closure.as_ref(), case.round)?;
        scope::apart(&f.visitor_id, &case.reporter_id, [c.resolver_id.as_str(), c.handler_id.as_str()])?;
        let closure = db::record_follow_up(&mut tx, &f, case.round).await?;
        let event = CaseFollowedUp {
            round: round_u32(case.round),
            satisfaction: f.satisfaction.into(),
            resolver_id: closure.resolver_id.clone(),
            category_code: closure.category_code.clone(),
            case_no: closure.case_no.clone(),
        };
        self.outbox.add(&mut tx, f.case_id, &f.visitor_id, Body::CaseFollowedUp(event)).await?;
        let reopened = f.satisfaction == Satisfaction::Unsatisfied;
        if reopened {
            self.reopen(&mut tx, f.case_id, case.round, &f.visitor_id, domain::REOPEN_UNSATISFIED.into()).await?;
        }
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %f.case_id, round = case.round, satisfaction = %f.satisfaction, "case followed up");
        Ok((closure, reopened))
    }

    /// The case's deadlines, for a caller who may read the case; a unit's handlers get the deadlines of their
    /// own unit's tasks; NOT_FOUND alike for an unknown case and for one outside the caller's scope.
    pub async fn deadlines(&self, p: &Principal, case_id: CaseId) -> Result<Vec<Deadline>> {
        let mut conn = self.pool.acquire().await?;
        let case = db::case(&mut conn, case_id).await?;
        if scope::readable(p, case_id, case.as_ref()).is_ok() {
            return Ok(db::deadlines(&mut conn, case_id).await?);
        }
        let units = p.scope(kit::auth::Permission::ReadCase).units;
        let tasks = if units.is_empty() { vec![] } else { db::tasks_of_units(&mut conn, case_id, &units).await? };
        if tasks.is_empty() {
            return Err(no_case(case_id));
        }
        let all = db::deadlines(&mut conn, case_id).await?;
        Ok(all.into_iter().filter(|d| tasks.contains(&d.task_id)).collect())
    }

    /// Starts the next round and writes `case.reopened`, inside the caller's transaction.
    async fn reopen(
        &self,
        tx: &mut PgConnection,
        case_id: CaseId,
        round: i32,
        actor: &str,
        reason: String,
    ) -> Result<()> {
        let next = round + 1;
        db::advance_round(tx, case_id, next).await?;
        let event = CaseReopened { round: round_u32(next), reason };
        self.outbox.add(tx, case_id, actor, Body::CaseReopened(event)).await?;
        Ok(())
    }
}

fn round_u32(round: i32) -> u32 {
    u32::try_from(round).unwrap_or_default()
}

/// A case merged into another is handled, closed and visited there: verifying or following it up itself would
/// close and credit one matter twice.
async fn not_merged(conn: &mut PgConnection, case_id: CaseId) -> Result<()> {
    match db::merged_into(conn, case_id).await? {
        Some(into) => {
            Err(Error::failed_precondition(format!("case_id is merged into {into}: verify and follow up that case")))
        }
        None => Ok(()),
    }
}
