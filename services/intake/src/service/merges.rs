//! 疑似重复件 and merging: the likely duplicates of a case, merging one case into another as one matter, and
//! undoing it. A merge happens under row locks on both cases taken lower id first, so two merges can never
//! cross into a cycle; the chain of merges is walked before each one. The state change, both files' timeline
//! steps and the event (case.merged / case.unmerged) commit in one transaction.

use std::collections::HashMap;

use chrono::Utc;
use kit::auth::{Permission, Principal, ScopeSet};
use kit::ids::{CaseId, CaseRef};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseMerged, CaseUnmerged};
use sqlx::{PgConnection, PgPool};

use super::{Cases, case_not_found};
use crate::db::merges::{self as mdb, Around, NewMerge};
use crate::db::{self, NewStep};
use crate::domain::duplicates::{self, Candidate, Known, MergeRequest, Probe, UnmergeRequest};
use crate::domain::{Case, CaseFile, CaseState, MergedCase, Party, Reporter, TimelineEntry};
use crate::error::{Error, Result};
use crate::scope::covers;

/// The newest open cases of one village and window the matcher scores by text (phone matches come besides
/// them). Each is fetched and scored at every registration, so this bounds what a registration costs: with
/// `loop_bench 60 150` (one village) 2,000 achieved 53 registrations/s, 200 achieved 92/s and 50 achieved
/// 107/s. A village with more open cases of one category group in the window than this has a backlog no text
/// match would rescue.
const NEARBY_LIMIT: i64 = 50;

/// A likely duplicate: why it is one, and the case as its list entry shows it.
#[derive(Debug, Clone)]
pub struct Duplicate {
    pub candidate: Candidate,
    pub case: Case,
}

impl Cases {
    /// The likely duplicates of the case `case_ref` among the cases `scope` reads; the case itself must be
    /// readable.
    pub async fn duplicates(&self, case_ref: &CaseRef, scope: &ScopeSet) -> Result<Vec<Duplicate>> {
        let case = {
            let mut conn = self.pool.acquire().await?;
            db::case_by_ref(&mut conn, case_ref)
                .await?
                .filter(|c| covers(scope, c))
                .ok_or_else(|| case_not_found(case_ref))?
        };
        self.duplicates_of(&case, scope).await
    }

    /// See [`likely_duplicates`].
    pub async fn duplicates_of(&self, case: &Case, scope: &ScopeSet) -> Result<Vec<Duplicate>> {
        likely_duplicates(&self.pool, case, scope).await
    }

    /// Merges `m.case_id` into `m.into_case_id` (dispatch scope over both) and answers the target's file.
    pub async fn merge(&self, who: &Principal, m: &MergeRequest) -> Result<CaseFile> {
        let read = who.scope(Permission::ReadCase);
        let mut tx = kit::audit::begin(&self.pool).await?;
        let locked = mdb::lock_pair(&mut tx, m.case_id, m.into_case_id).await?;
        let (case, into) = (readable(&locked, m.case_id, &read)?, readable(&locked, m.into_case_id, &read)?);
        may_dispatch(who, &[case, into])?;
        if case.state == CaseState::Merged {
            return Err(precondition("case_id", "is already merged; unmerge it first"));
        }
        if !case.state.is_open() {
            return Err(precondition("case_id", &format!("is {}; only an open case is merged", case.state)));
        }
        let chain: HashMap<CaseId, CaseId> = mdb::chain_from(&mut tx, into.id, 64).await?.into_iter().collect();
        duplicates::check_merge(case.id, into.id, into.state != CaseState::Closed, |x| chain.get(&x).copied())
            .map_err(|e| precondition(&e.field, &e.reason))?;
        if into.state == CaseState::Merged {
            return Err(precondition("into_case_id", "is itself merged into another case; merge into that one"));
        }
        let now = Utc::now();
        let actor = who.actor();
        mdb::set_merged(&mut tx, case.id, into.id, now).await?;
        let merge = NewMerge { case_id: case.id, into_case_id: into.id, reason: &m.reason, by: actor, at: now };
        mdb::insert_merge(&mut tx, &merge).await?;
        let away = format!("合并至 {}: {}", into.case_no, m.reason);
        step(&mut tx, case, actor, ("merged", CaseState::Merged), &away, now).await?;
        let came = format!("{} 合并入本件, 其报告人一并回访: {}", case.case_no, m.reason);
        step(&mut tx, into, actor, ("merged_in", into.state), &came, now).await?;
        let event = CaseMerged {
            into_case_id: into.id.to_string(),
            into_case_no: into.case_no.to_string(),
            reason: m.reason.clone(),
        };
        self.outbox.add(&mut tx, case.id, actor, Body::CaseMerged(event)).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %m.case_id, into_case_id = %m.into_case_id, "case merged");
        self.file(&CaseRef::Id(m.into_case_id), &read).await
    }

    /// Undoes the case's merge (dispatch scope over both cases): it is registered again, for routing to
    /// dispatch by its rules; the merge stays in the history. Answers the case's own file.
    pub async fn unmerge(&self, who: &Principal, u: &UnmergeRequest) -> Result<CaseFile> {
        let read = who.scope(Permission::ReadCase);
        let case_ref = CaseRef::Id(u.case_id);
        // Which case it is merged into decides the second lock; it is checked again under both locks.
        let target = {
            let mut conn = self.pool.acquire().await?;
            let case = db::case_by_ref(&mut conn, &case_ref)
                .await?
                .filter(|c| covers(&read, c))
                .ok_or_else(|| case_not_found(&case_ref))?;
            may_dispatch(who, &[&case])?;
            case.merged_into.ok_or_else(|| precondition("case_id", &format!("is {}, not merged", case.state)))?
        };
        let mut tx = kit::audit::begin(&self.pool).await?;
        let locked = mdb::lock_pair(&mut tx, u.case_id, target).await?;
        let case = readable(&locked, u.case_id, &read)?;
        if case.merged_into != Some(target) {
            return Err(precondition("case_id", "was unmerged or merged again meanwhile; read it and retry"));
        }
        let into = locked.iter().find(|c| c.id == target).ok_or_else(|| case_not_found(&target.to_string()))?;
        may_dispatch(who, &[case, into])?;
        let now = Utc::now();
        let actor = who.actor();
        mdb::end_merge(&mut tx, case.id, actor, &u.reason, now).await?;
        mdb::set_unmerged(&mut tx, case.id, now).await?;
        let back = format!("撤销合并 (原合并至 {}), 重新分流: {}", into.case_no, u.reason);
        step(&mut tx, case, actor, ("unmerged", CaseState::Registered), &back, now).await?;
        let out = format!("{} 撤销合并, 另行办理: {}", case.case_no, u.reason);
        step(&mut tx, into, actor, ("unmerged_out", into.state), &out, now).await?;
        let event = CaseUnmerged { from_case_id: target.to_string(), reason: u.reason.clone() };
        self.outbox.add(&mut tx, u.case_id, actor, Body::CaseUnmerged(event)).await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(case_id = %u.case_id, from_case_id = %target, "case unmerged");
        self.file(&case_ref, &read).await
    }
}

/// Open cases of the case's village, a compatible category and within the window either side of it, whose text
/// is alike or whose parties share a phone (by blind index), likeliest first; only those `scope` reads. One
/// query narrows by the partial index on open cases (village, registered_at); the scoring is in Rust.
pub async fn likely_duplicates(pool: &PgPool, case: &Case, scope: &ScopeSet) -> Result<Vec<Duplicate>> {
    if !searchable(case) {
        return Ok(vec![]);
    }
    let mut conn = pool.acquire().await?;
    let phone_indexes = mdb::phone_indexes(&mut conn, case.id).await?;
    likely_duplicates_on(&mut conn, case, scope, phone_indexes).await
}

/// [`likely_duplicates`] on a connection the caller holds, with the case's phone indexes (its parties' in
/// order) as the caller knows them.
pub async fn likely_duplicates_on(
    conn: &mut PgConnection,
    case: &Case,
    scope: &ScopeSet,
    phone_indexes: Vec<Vec<u8>>,
) -> Result<Vec<Duplicate>> {
    if !searchable(case) {
        return Ok(vec![]);
    }
    let window = duplicates::DEFAULT_WINDOW;
    let around = Around {
        village_code: &case.village_code,
        category_group: case.category_code.get(..2).unwrap_or_default(),
        from: case.registered_at - window,
        to: case.registered_at + window,
        except: case.id,
        phone_indexes: &phone_indexes,
        limit: NEARBY_LIMIT,
    };
    let nearby = mdb::nearby_open(conn, &around).await?;
    let mut readable: HashMap<CaseId, Case> = HashMap::with_capacity(nearby.len());
    let mut known: Vec<Known> = Vec::with_capacity(nearby.len());
    for n in nearby.into_iter().filter(|n| covers(scope, &n.case)) {
        let c = n.case;
        known.push(Known {
            case_id: c.id,
            case_no: c.case_no.clone(),
            village_code: c.village_code.to_string(),
            grid_code: c.grid_code.clone(),
            category_code: c.category_code.clone(),
            text: format!("{} {}", c.title, c.description),
            // The database matched the phones by index; the matcher needs only to know that one did.
            phone_indexes: if n.same_phone { phone_indexes.clone() } else { vec![] },
            registered_at: c.registered_at,
        });
        readable.insert(c.id, c);
    }
    let probe = Probe {
        village_code: case.village_code.to_string(),
        grid_code: case.grid_code.clone(),
        category_code: case.category_code.clone(),
        text: format!("{} {}", case.title, case.description),
        phone_indexes,
        at: case.registered_at,
    };
    Ok(duplicates::candidates(&probe, &known, window)
        .into_iter()
        .filter_map(|candidate| Some(Duplicate { case: readable.remove(&candidate.case_id)?, candidate }))
        .collect())
}

/// A case without a village or a category group has nothing to be compared with.
fn searchable(case: &Case) -> bool {
    !case.village_code.is_empty() && case.category_code.len() >= 2
}

/// What the file of `case` shows of merging: the number of the case it is merged into, the cases merged into
/// it, and every reporter of the matter (its own, then each merged case's the reader may read).
pub(super) async fn ties(
    conn: &mut PgConnection,
    case: &Case,
    scope: &ScopeSet,
) -> sqlx::Result<(String, Vec<MergedCase>, Vec<Reporter>)> {
    let into_no = match case.merged_into {
        Some(into) => mdb::cases(conn, &[into]).await?.pop().map(|c| c.case_no.into_string()).unwrap_or_default(),
        None => String::new(),
    };
    let merged = mdb::merged_into(conn, case.id).await?;
    let ids: Vec<CaseId> = merged.iter().map(|m| m.case_id).collect();
    let mut sources = if ids.is_empty() { vec![] } else { mdb::cases(conn, &ids).await? };
    sources.retain(|c| covers(scope, c));
    sources.sort_by_key(|c| ids.iter().position(|i| *i == c.id));
    let mut reporters = Vec::with_capacity(sources.len() + 1);
    for c in std::iter::once(case).chain(sources.iter()) {
        reporters.push(reporter(c, mdb::reporting_parties(conn, c.id).await?));
    }
    Ok((into_no, merged, reporters))
}

/// The file of a case just registered, from what its registration wrote: nothing is merged into it or it into
/// anything yet, and its reporters are its own reporting parties (those [`mdb::reporting_parties`] reads).
pub(super) fn new_file(case: Case, parties: Vec<Party>, timeline: Vec<TimelineEntry>) -> CaseFile {
    let reporting = parties.iter().filter(|p| mdb::REPORTING.contains(&p.role)).cloned().collect();
    let reporters = vec![reporter(&case, reporting)];
    CaseFile { case, parties, timeline, merged_into_no: String::new(), merged_cases: vec![], reporters }
}

fn reporter(c: &Case, parties: Vec<Party>) -> Reporter {
    Reporter {
        case_id: c.id,
        case_no: c.case_no.clone(),
        channel: c.channel,
        reporter_id: c.reporter_id.clone(),
        parties,
    }
}

/// The locked case if the reader may read it; NOT_FOUND otherwise, exactly as for a missing case.
fn readable<'a>(locked: &'a [Case], id: CaseId, read: &ScopeSet) -> Result<&'a Case> {
    locked.iter().find(|c| c.id == id && covers(read, c)).ok_or_else(|| case_not_found(&id.to_string()))
}

/// Merging moves both cases' handling: the caller needs dispatch scope over each.
fn may_dispatch(who: &Principal, cases: &[&Case]) -> Result<()> {
    let dispatch = who.scope(Permission::Dispatch);
    if cases.iter().all(|c| covers(&dispatch, c)) {
        Ok(())
    } else {
        Err(Error::denied("merging needs dispatch scope over both cases"))
    }
}

/// A refusal the cases' state decides, naming the field whose case is in the way.
fn precondition(field: &str, why: &str) -> Error {
    Error::failed_precondition(format!("{field} {why}"))
}

/// One step of a case file written by the merge itself (not from an event), moving it `(action, to)`.
async fn step(
    conn: &mut PgConnection,
    case: &Case,
    actor: &str,
    (action, to): (&str, CaseState),
    detail: &str,
    at: chrono::DateTime<Utc>,
) -> sqlx::Result<()> {
    let s = NewStep {
        case_id: case.id,
        at,
        actor,
        action,
        from_state: Some(case.state),
        to_state: to,
        detail,
        source: "intake",
        event_id: None,
    };
    db::append_step(conn, &s).await.map(drop)
}
