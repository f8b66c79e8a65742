//! The ledger room's RPCs (the Ledger service: the tree ledger and directives): request → parsed values →
//! one call → response.
//!
//! Ledger reads stay open to every signed-in caller: a row is counts of open, overdue and closed cases per
//! node, with no case, party or person in it, and the tree it hangs on is public. Its risk counts (风险隐患: how
//! many hazards a village has, and how many are overdue) are not public: they are shown only at nodes the
//! caller's case-reading scope holds, and left out elsewhere. Directives are scoped: the
//! issuing center and the target lie in the issuer's IssueDirective scope, a recipient center in the
//! answerer's AnswerDirective scope, and a directive is seen only from its issuing side or a receiving side.

use kit::auth::Permission;
use kit::error::{Error, Result};
use kit::field;
use proto::registry::v1 as pb;
use sqlx::PgPool;
use tonic::Request;

use super::domain::{Directive, LedgerNode, NewDirective, Recipient, Totals, report, status_filter};
use super::service;
use crate::scope;
use crate::shared::{next_page_token, node_code, page_size};

/// A directive outside the caller's issuing and receiving sides is not found, as a missing one is.
async fn visible<T>(pool: &PgPool, request: &Request<T>, id: uuid::Uuid) -> Result<()> {
    let (_, issue) = scope::reach(request, Permission::IssueDirective)?;
    let (_, answer) = scope::reach(request, Permission::AnswerDirective)?;
    let d = service::directive(pool, id).await?;
    let prefixes = scope::node_prefixes(&answer);
    let received = service::has_recipient_under(pool, id, prefixes.as_deref()).await?;
    if scope::directive_visible(&issue, &d.issuer_center_code, received) {
        Ok(())
    } else {
        Err(Error::not_found(format!("directive {id}")))
    }
}

pub async fn get_ledger(pool: &PgPool, request: Request<pb::GetLedgerRequest>) -> Result<pb::GetLedgerResponse> {
    let (_, cases) = scope::reach(&request, Permission::ReadCase)?;
    let code = node_code("code", &request.get_ref().code)?;
    Ok(pb::GetLedgerResponse { row: Some(shown(&cases, service::get(pool, code).await?)) })
}

pub async fn list_ledger(pool: &PgPool, request: Request<pb::ListLedgerRequest>) -> Result<pb::ListLedgerResponse> {
    let (_, cases) = scope::reach(&request, Permission::ReadCase)?;
    let req = request.into_inner();
    let code = node_code("code", &req.code)?;
    let limit = page_size(req.page_size, 100, 1000);
    let node = service::get(pool, code).await?;
    let children = service::children(pool, &node, &req.page_token, limit).await?;
    let next_page_token = next_page_token(&children, limit, |c| &c.code);
    Ok(pb::ListLedgerResponse {
        node: Some(shown(&cases, node)),
        children: children.into_iter().map(|c| shown(&cases, c)).collect(),
        next_page_token,
    })
}

/// A row as the caller may see it: the risk counts only where their case-reading scope holds the node.
fn shown(cases: &kit::auth::ScopeSet, node: LedgerNode) -> pb::LedgerRow {
    let covered = cases.covers_node(&node.code);
    let mut row: pb::LedgerRow = node.into();
    if !covered {
        row.risks = None;
    }
    row
}

pub async fn issue_directive(
    pool: &PgPool,
    request: Request<pb::IssueDirectiveRequest>,
) -> Result<pb::IssueDirectiveResponse> {
    let (principal, scope) = scope::reach(&request, Permission::IssueDirective)?;
    let r = request.into_inner();
    let (issuer, target, now) = (&r.issuer_center_code, &r.target_code, chrono::Utc::now());
    let new = NewDirective::parse(principal.actor(), issuer, target, &r.title, &r.body, &r.due_at, now)?;
    scope::write(&scope, new.issuer, &format!("issuer center {}", new.issuer))?;
    scope::write(&scope, new.target, &format!("target {}", new.target))?;
    let (d, recipients) = service::issue(pool, &new).await?;
    Ok(pb::IssueDirectiveResponse { directive: Some(d.into()), recipients })
}

pub async fn acknowledge_directive(
    pool: &PgPool,
    request: Request<pb::AcknowledgeDirectiveRequest>,
) -> Result<pb::AcknowledgeDirectiveResponse> {
    let (principal, scope) = scope::reach(&request, Permission::AnswerDirective)?;
    let r = request.get_ref();
    let id = field::uuid("directive_id", &r.directive_id)?;
    let center = field::division_code("center_code", &r.center_code)?;
    scope::write(&scope, center, &format!("center {center}"))?;
    let row = service::acknowledge(pool, id, center, principal.actor()).await?;
    tracing::info!(directive_id = %id, center, "directive acknowledged");
    Ok(pb::AcknowledgeDirectiveResponse { recipient: Some(row.into()) })
}

pub async fn answer_directive(
    pool: &PgPool,
    request: Request<pb::AnswerDirectiveRequest>,
) -> Result<pb::AnswerDirectiveResponse> {
    let (principal, scope) = scope::reach(&request, Permission::AnswerDirective)?;
    let r = request.get_ref();
    let id = field::uuid("directive_id", &r.directive_id)?;
    let center = field::division_code("center_code", &r.center_code)?;
    let report = report(&r.report)?;
    scope::write(&scope, center, &format!("center {center}"))?;
    let row = service::answer(pool, id, center, report, principal.actor()).await?;
    // The report may name people; only that it arrived is logged.
    tracing::info!(directive_id = %id, center, "directive answered");
    Ok(pb::AnswerDirectiveResponse { recipient: Some(row.into()) })
}

pub async fn get_directive(
    pool: &PgPool,
    request: Request<pb::GetDirectiveRequest>,
) -> Result<pb::GetDirectiveResponse> {
    let id = field::uuid("id", &request.get_ref().id)?;
    visible(pool, &request, id).await?;
    let (d, totals, branches) = service::get_directive(pool, id).await?;
    Ok(pb::GetDirectiveResponse {
        directive: Some(d.into()),
        totals: Some(to_totals(&totals)),
        branches: branches
            .iter()
            .map(|b| pb::DirectiveBranch { code: b.code.clone(), name: b.name.clone(), totals: Some(to_totals(b)) })
            .collect(),
    })
}

pub async fn list_directive_recipients(
    pool: &PgPool,
    request: Request<pb::ListDirectiveRecipientsRequest>,
) -> Result<pb::ListDirectiveRecipientsResponse> {
    let id = field::uuid("directive_id", &request.get_ref().directive_id)?;
    visible(pool, &request, id).await?;
    let r = request.into_inner();
    let status = status_filter(&r.status)?;
    let limit = page_size(r.page_size, 100, 1000);
    let rows = service::recipients(pool, id, status, &r.page_token, limit).await?;
    let next_page_token = next_page_token(&rows, limit, |r| &r.center_code);
    Ok(pb::ListDirectiveRecipientsResponse { recipients: rows.into_iter().map(Into::into).collect(), next_page_token })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl From<LedgerNode> for pb::LedgerRow {
    fn from(r: LedgerNode) -> Self {
        pb::LedgerRow {
            code: r.code,
            name: r.name,
            level: u32::try_from(r.level).unwrap_or(0),
            risks: Some(pb::LedgerCounts {
                open: count(r.risk_open),
                overdue: count(r.risk_overdue),
                closed: count(r.risk_closed),
                yellow: count(r.risk_yellow),
                red: count(r.risk_red),
            }),
            cases: Some(pb::LedgerCounts {
                open: count(r.case_open),
                overdue: count(r.case_overdue),
                closed: count(r.case_closed),
                yellow: count(r.case_yellow),
                red: count(r.case_red),
            }),
        }
    }
}

impl From<Directive> for pb::Directive {
    fn from(d: Directive) -> Self {
        pb::Directive {
            id: d.id.to_string(),
            issuer_center_code: d.issuer_center_code,
            target_code: d.target_code,
            title: d.title,
            body: d.body,
            due_at: kit::time::local(d.due_at),
            issued_at: kit::time::local(d.issued_at),
        }
    }
}

fn to_totals(t: &Totals) -> pb::DirectiveTotals {
    pb::DirectiveTotals {
        recipients: count(t.recipients),
        pending: count(t.pending),
        acknowledged: count(t.acknowledged),
        answered: count(t.answered),
        late: count(t.late),
    }
}

impl From<Recipient> for pb::DirectiveRecipient {
    fn from(r: Recipient) -> Self {
        pb::DirectiveRecipient {
            center_code: r.center_code,
            name: r.name,
            status: r.status.as_str().to_owned(),
            acknowledged_at: kit::time::local_opt(r.acknowledged_at),
            answered_at: kit::time::local_opt(r.answered_at),
            report: r.report.unwrap_or_default(),
        }
    }
}
