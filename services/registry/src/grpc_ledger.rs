//! The Ledger gRPC face: the tree ledger and directives. Request → parsed values → one call → response.
//!
//! Ledger reads stay open to every signed-in caller: a row is counts of open, overdue and closed cases per
//! node, with no case, party or person in it, and the tree it hangs on is public. Directives are scoped: the
//! issuing center and the target lie in the issuer's IssueDirective scope, a recipient center in the
//! answerer's AnswerDirective scope, and a directive is seen only from its issuing side or a receiving side.

use chrono::{DateTime, Utc};
use kit::auth::Permission;
use kit::{FieldError, field};
use proto::registry::v1 as pb;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::directive::{self, DirectiveRow, NewDirective, RecipientRow, RecipientStatus, Totals};
use crate::domain::is_grid_code;
use crate::error::Error;
use crate::ledger::{self, LedgerRow};
use crate::scope;

pub struct LedgerService {
    pub pool: PgPool,
}

fn bad(e: FieldError) -> Status {
    kit::grpc::invalid(&e)
}

/// A division code or a grid code.
fn node_code<'a>(name: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let v = field::required(name, value)?;
    if kit::division::is_code(v) || is_grid_code(v) {
        Ok(v)
    } else {
        Err(FieldError::new(name, "must be a 12-digit division code or a 15/18-digit grid code"))
    }
}

fn page_size(requested: u32) -> i64 {
    i64::from(if requested == 0 { 100 } else { requested.min(1000) })
}

fn due_at(value: &str) -> Result<DateTime<Utc>, FieldError> {
    let v = field::required("due_at", value)?;
    let at = DateTime::parse_from_rfc3339(v)
        .map_err(|_| FieldError::new("due_at", "must be an RFC 3339 time with an offset"))?
        .with_timezone(&Utc);
    if at <= Utc::now() {
        return Err(FieldError::new("due_at", "must be in the future"));
    }
    Ok(at)
}

impl LedgerService {
    /// A directive outside the caller's issuing and receiving sides is not found, as a missing one is.
    async fn visible<T>(&self, request: &Request<T>, id: uuid::Uuid) -> Result<(), Status> {
        let (_, issue) = scope::reach(request, Permission::IssueDirective)?;
        let (_, answer) = scope::reach(request, Permission::AnswerDirective)?;
        let d = directive::directive(&self.pool, id).await?;
        let prefixes = scope::node_prefixes(&answer);
        let received = directive::has_recipient_under(&self.pool, id, prefixes.as_deref()).await?;
        if scope::directive_visible(&issue, &d, received) {
            Ok(())
        } else {
            Err(Error::NotFound(format!("directive {id}")).into())
        }
    }
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn get_ledger(
        &self,
        request: Request<pb::GetLedgerRequest>,
    ) -> Result<Response<pb::GetLedgerResponse>, Status> {
        let code = node_code("code", &request.get_ref().code).map_err(bad)?;
        let row = ledger::get(&self.pool, code).await?;
        Ok(Response::new(pb::GetLedgerResponse { row: Some(to_row(row)) }))
    }

    async fn list_ledger(
        &self,
        request: Request<pb::ListLedgerRequest>,
    ) -> Result<Response<pb::ListLedgerResponse>, Status> {
        let req = request.into_inner();
        let code = node_code("code", &req.code).map_err(bad)?;
        let limit = page_size(req.page_size);
        let node = ledger::get(&self.pool, code).await?;
        let children = ledger::children(&self.pool, &node, &req.page_token, limit).await?;
        let next_page_token = match children.last() {
            Some(last) if children.len() as i64 == limit => last.code.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListLedgerResponse {
            node: Some(to_row(node)),
            children: children.into_iter().map(to_row).collect(),
            next_page_token,
        }))
    }

    async fn issue_directive(
        &self,
        request: Request<pb::IssueDirectiveRequest>,
    ) -> Result<Response<pb::IssueDirectiveResponse>, Status> {
        let (principal, scope) = scope::reach(&request, Permission::IssueDirective)?;
        let r = request.into_inner();
        let new = NewDirective {
            issued_by: principal.actor(),
            issuer: field::division_code("issuer_center_code", &r.issuer_center_code).map_err(bad)?,
            target: field::division_code("target_code", &r.target_code).map_err(bad)?,
            title: field::text("title", &r.title, 100).map_err(bad)?,
            body: field::text("body", &r.body, 4000).map_err(bad)?,
            due_at: due_at(&r.due_at).map_err(bad)?,
        };
        scope::write(&scope, new.issuer, &format!("issuer center {}", new.issuer))?;
        scope::write(&scope, new.target, &format!("target {}", new.target))?;
        let (d, recipients) = directive::issue(&self.pool, &new).await?;
        Ok(Response::new(pb::IssueDirectiveResponse { directive: Some(to_directive(d)), recipients }))
    }

    async fn acknowledge_directive(
        &self,
        request: Request<pb::AcknowledgeDirectiveRequest>,
    ) -> Result<Response<pb::AcknowledgeDirectiveResponse>, Status> {
        let (principal, scope) = scope::reach(&request, Permission::AnswerDirective)?;
        let r = request.get_ref();
        let id = field::uuid("directive_id", &r.directive_id).map_err(bad)?;
        let center = field::division_code("center_code", &r.center_code).map_err(bad)?;
        scope::write(&scope, center, &format!("center {center}"))?;
        let row = directive::acknowledge(&self.pool, id, center, principal.actor()).await?;
        tracing::info!(directive_id = %id, center, "directive acknowledged");
        Ok(Response::new(pb::AcknowledgeDirectiveResponse { recipient: Some(to_recipient(row)) }))
    }

    async fn answer_directive(
        &self,
        request: Request<pb::AnswerDirectiveRequest>,
    ) -> Result<Response<pb::AnswerDirectiveResponse>, Status> {
        let (principal, scope) = scope::reach(&request, Permission::AnswerDirective)?;
        let r = request.get_ref();
        let id = field::uuid("directive_id", &r.directive_id).map_err(bad)?;
        let center = field::division_code("center_code", &r.center_code).map_err(bad)?;
        let report = field::text("report", &r.report, 4000).map_err(bad)?;
        scope::write(&scope, center, &format!("center {center}"))?;
        let row = directive::answer(&self.pool, id, center, report, principal.actor()).await?;
        // The report may name people; only that it arrived is logged.
        tracing::info!(directive_id = %id, center, "directive answered");
        Ok(Response::new(pb::AnswerDirectiveResponse { recipient: Some(to_recipient(row)) }))
    }

    async fn get_directive(
        &self,
        request: Request<pb::GetDirectiveRequest>,
    ) -> Result<Response<pb::GetDirectiveResponse>, Status> {
        let id = field::uuid("id", &request.get_ref().id).map_err(bad)?;
        self.visible(&request, id).await?;
        let (d, totals, branches) = directive::get(&self.pool, id).await?;
        Ok(Response::new(pb::GetDirectiveResponse {
            directive: Some(to_directive(d)),
            totals: Some(to_totals(&totals)),
            branches: branches
                .iter()
                .map(|b| pb::DirectiveBranch { code: b.code.clone(), name: b.name.clone(), totals: Some(to_totals(b)) })
                .collect(),
        }))
    }

    async fn list_directive_recipients(
        &self,
        request: Request<pb::ListDirectiveRecipientsRequest>,
    ) -> Result<Response<pb::ListDirectiveRecipientsResponse>, Status> {
        let id = field::uuid("directive_id", &request.get_ref().directive_id).map_err(bad)?;
        self.visible(&request, id).await?;
        let r = request.into_inner();
        let status = match r.status.trim() {
            "" => None,
            s => Some(RecipientStatus::parse("status", s).map_err(bad)?),
        };
        let limit = page_size(r.page_size);
        let rows = directive::recipients(&self.pool, id, status, &r.page_token, limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if rows.len() as i64 == limit => last.center_code.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListDirectiveRecipientsResponse {
            recipients: rows.into_iter().map(to_recipient).collect(),
            next_page_token,
        }))
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_row(r: LedgerRow) -> pb::LedgerRow {
    pb::LedgerRow {
        code: r.code,
        name: r.name,
        level: u32::try_from(r.level).unwrap_or(0),
        risks: Some(pb::LedgerCounts {
            open: count(r.risk_open),
            overdue: count(r.risk_overdue),
            closed: count(r.risk_closed),
        }),
        cases: Some(pb::LedgerCounts {
            open: count(r.case_open),
            overdue: count(r.case_overdue),
            closed: count(r.case_closed),
        }),
    }
}

fn to_directive(d: DirectiveRow) -> pb::Directive {
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

fn to_totals(t: &Totals) -> pb::DirectiveTotals {
    pb::DirectiveTotals {
        recipients: count(t.recipients),
        pending: count(t.pending),
        acknowledged: count(t.acknowledged),
        answered: count(t.answered),
        late: count(t.late),
    }
}

fn to_recipient(r: RecipientRow) -> pb::DirectiveRecipient {
    pb::DirectiveRecipient {
        center_code: r.center_code,
        name: r.name,
        status: r.status,
        acknowledged_at: kit::time::local_opt(r.acknowledged_at),
        answered_at: kit::time::local_opt(r.answered_at),
        report: r.report.unwrap_or_default(),
    }
}
