//! The ledger's use cases: case events applied to the ledger (inside the consumer's transaction), ledger
//! reads, and directives issued, acknowledged, answered and read.
//!
//! Directive recipients are the village-level centers (村/社区综治中心) below the target, or the target itself
//! when it is a village: they are the leaf centers that act on a directive (grids have workers, not centers).
//! A village without a center receives nothing; its township center remains responsible for it.

use kit::error::{Error, Result};
use kit::events::Event;
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseRegistered, Envelope};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::db::{self, NewCase};
use super::domain::{
    Applied, CaseState, Directive, KindClass, LedgerNode, Move, NewDirective, Recipient, RecipientStatus, Totals,
    path_nodes, recipients_page_token, transition,
};
use crate::shared::page_token;

/// What a case event means to the ledger: the one match over the event catalogue is [`select`].
pub enum Work {
    Register(Box<CaseRegistered>),
    /// A 督办 card (yellow or red) counted at every node of the case's path.
    Card {
        red: bool,
    },
    Move(Move),
}

/// What the event changes in the ledger, kind by kind; `None` for what it does not count.
pub fn select(body: &Body) -> Option<Work> {
    Some(match body {
        Body::CaseRegistered(r) => Work::Register(Box::new(r.clone())),
        Body::DeadlineMissed(_) => Work::Move(Move::Overdue),
        Body::CaseClosed(_) => Work::Move(Move::Close),
        Body::CaseReopened(_) => Work::Move(Move::Reopen),
        Body::CaseMerged(_) => Work::Move(Move::Merge),
        Body::CaseUnmerged(_) => Work::Move(Move::Unmerge),
        // The other steps of supervision (reminders, clock changes) are the case file's, not the ledger's.
        Body::CaseSupervised(s) => match s.action.as_str() {
            "yellow" => Work::Card { red: false },
            "red" => Work::Card { red: true },
            _ => return None,
        },
        // Handling steps and outcomes that do not open, close or make a case overdue. A hop (上报 / 下派) or a
        // recall moves who holds the case, not where it happened: the ledger counts cases by their place.
        Body::CaseDispatched(_)
        | Body::CaseAccepted(_)
        | Body::CaseReturned(_)
        | Body::ReturnRejected(_)
        | Body::CaseResolved(_)
        | Body::CaseFollowedUp(_)
        | Body::CaseJoint(_)
        | Body::SubsidyCredited(_)
        | Body::CaseEscalated(_)
        | Body::CaseRecalled(_) => return None,
    })
}

/// Applies what a case event means to the ledger inside the caller's transaction (the consumer's, which also
/// holds the inbox row).
pub async fn apply(conn: &mut PgConnection, event: &Event<'_>, work: Work) -> anyhow::Result<Applied> {
    let case_id = event.case_id;
    let m = match work {
        Work::Register(r) => return register(conn, event, &r).await,
        Work::Card { red } => {
            let Some(case) = db::lock_case(conn, case_id).await? else { return Ok(Applied::UnknownCase) };
            db::add_card(conn, &case, red).await?;
            return Ok(Applied::Card);
        }
        Work::Move(m) => m,
    };
    let Some(case) = db::lock_case(conn, case_id).await? else { return Ok(Applied::UnknownCase) };
    let Some((open, overdue, d)) = transition(case.state == CaseState::Open, case.overdue, m) else {
        return Ok(Applied::NoChange);
    };
    let state = if open { CaseState::Open } else { CaseState::Closed };
    db::set_case(conn, case_id, state, overdue).await?;
    db::add_to_counts(conn, &case, d).await?;
    Ok(Applied::Counted)
}

/// One encoded event applied as the consumer would (a loader's batch, the ledger bench).
pub async fn apply_event(conn: &mut PgConnection, envelope: &Envelope) -> anyhow::Result<Applied> {
    let Ok(Some(event)) = Event::read(envelope) else { return Ok(Applied::UnknownCase) };
    match select(event.body) {
        Some(work) => apply(conn, &event, work).await,
        None => Ok(Applied::NotLedger),
    }
}

async fn register(conn: &mut PgConnection, event: &Event<'_>, r: &CaseRegistered) -> anyhow::Result<Applied> {
    let mut area = r.area_path.clone();
    if area.is_empty() && !r.village_code.is_empty() {
        // An event without its path (older producers): the registry's own tree supplies it.
        area = crate::tree::db::path_up(conn, &r.village_code).await?.into_iter().map(|n| n.code).collect();
    }
    let nodes = path_nodes(&r.grid_code, &r.village_code, &area);
    if nodes.is_empty() {
        return Ok(Applied::UnknownCase);
    }
    // The event's kind is read once, as the enum: the class follows from it, the row keeps its code.
    let kind = kit::vocab::CaseKind::from_proto("kind", r.kind).ok();
    let class = KindClass::of(kind);
    let kind = kind.map_or("", |k| k.as_str());
    let case = NewCase {
        case_id: event.case_id,
        kind,
        class,
        village_code: &r.village_code,
        grid_code: &r.grid_code,
        nodes: &nodes,
        registered_at: event.occurred_at(),
        // Partitions are at most 16, so the cast is exact.
        shard: kit::events::partition_of(&event.envelope.case_id) as i16,
    };
    Ok(if db::open_case(conn, &case).await? { Applied::Counted } else { Applied::NoChange })
}

/// A node (division or grid) with its counts.
pub async fn get(pool: &PgPool, code: &str) -> Result<LedgerNode> {
    db::node(pool, code).await?.ok_or_else(|| Error::not_found(format!("node {code}")))
}

/// A page of the node's children with their counts, in code order after `after`.
pub async fn children(pool: &PgPool, parent: &LedgerNode, after: &str, limit: i64) -> Result<Vec<LedgerNode>> {
    let after = page_token(after, &parent.code)?;
    Ok(db::children(pool, parent, after, limit).await?)
}

/// Issues the directive and its recipients in one transaction. The issuer must be a center at or above the
/// target, and the subtree must hold at least one village center.
pub async fn issue(pool: &PgPool, new: &NewDirective<'_>) -> Result<(Directive, u64)> {
    let mut tx = kit::audit::begin(pool).await?;
    if !crate::centers::db::is_center(&mut tx, new.issuer).await? {
        return Err(Error::invalid("issuer_center_code", "is not a center"));
    }
    let path = crate::tree::db::path_up(&mut tx, new.target).await?;
    if path.is_empty() {
        return Err(Error::not_found(format!("division {}", new.target)));
    }
    if !path.iter().any(|n| n.code == new.issuer) {
        return Err(Error::invalid("target_code", "is not at or below the issuer's center"));
    }
    let id = Uuid::new_v4();
    let row = db::insert_directive(&mut tx, id, new).await?;
    let recipients = db::insert_recipients(&mut tx, id, new.target).await?;
    if recipients == 0 {
        return Err(Error::failed_precondition(format!("no village center below {}", new.target)));
    }
    tx.commit().await?;
    tracing::info!(directive_id = %id, issuer = new.issuer, target = new.target, recipients, "directive issued");
    Ok((row, recipients))
}

/// pending → acknowledged, by the signed-in `actor`.
pub async fn acknowledge(pool: &PgPool, id: Uuid, center: &str, actor: &str) -> Result<Recipient> {
    let mut tx = kit::audit::begin(pool).await?;
    let moved = db::acknowledge(&mut tx, id, center, actor).await?;
    tx.commit().await?;
    match moved {
        Some(r) => Ok(r),
        None => Err(refusal(pool, id, center, RecipientStatus::Pending).await),
    }
}

/// acknowledged → answered, with the report, by the signed-in `actor`.
pub async fn answer(pool: &PgPool, id: Uuid, center: &str, report: &str, actor: &str) -> Result<Recipient> {
    let mut tx = kit::audit::begin(pool).await?;
    let moved = db::answer(&mut tx, id, center, report, actor).await?;
    tx.commit().await?;
    match moved {
        Some(r) => Ok(r),
        None => Err(refusal(pool, id, center, RecipientStatus::Acknowledged).await),
    }
}

/// Why a conditional update matched nothing: an unknown directive or recipient, or a recipient in another status
/// than the move needs. The update itself is the guard, so two racing calls cannot both succeed.
async fn refusal(pool: &PgPool, id: Uuid, center: &str, needed: RecipientStatus) -> Error {
    match db::recipient_status(pool, id, center).await {
        Err(e) => e.into(),
        Ok(Some(s)) => Error::failed_precondition(format!("the recipient is {s}; this step needs it {needed}")),
        Ok(None) => match directive(pool, id).await {
            Ok(_) => Error::not_found(format!("recipient {center} of directive {id}")),
            Err(e) => e,
        },
    }
}

pub async fn directive(pool: &PgPool, id: Uuid) -> Result<Directive> {
    db::directive(pool, id).await?.ok_or_else(|| Error::not_found(format!("directive {id}")))
}

/// Whether a recipient center of directive `id` lies under one of the code prefixes (`None`: anywhere).
pub async fn has_recipient_under(pool: &PgPool, id: Uuid, prefixes: Option<&[String]>) -> Result<bool> {
    let Some(prefixes) = prefixes else { return Ok(true) };
    if prefixes.is_empty() {
        return Ok(false);
    }
    Ok(db::has_recipient_like(pool, id, prefixes).await?)
}

/// The directive, its overall totals, and totals per child of the target.
pub async fn get_directive(pool: &PgPool, id: Uuid) -> Result<(Directive, Totals, Vec<Totals>)> {
    let d = directive(pool, id).await?;
    let branches = db::branch_totals(pool, id, d.due_at).await?;
    let all = Totals::sum(&d.target_code, &branches);
    Ok((d, all, branches))
}

/// A page of recipients in center-code order after `after`, optionally in one status.
pub async fn recipients(
    pool: &PgPool,
    id: Uuid,
    status: Option<RecipientStatus>,
    after: &str,
    limit: i64,
) -> Result<Vec<Recipient>> {
    let target = directive(pool, id).await?.target_code;
    let after = recipients_page_token(after, &target)?;
    Ok(db::recipients(pool, id, status, after, limit).await?)
}
