//! `zongzhi.audit.v1.Audit`: the service every service can add to its routes to list and verify its own trail.
//! It checks no authorization itself; the caller's auth layer decides who may reach it.

use chrono::{DateTime, Utc};
use proto::audit::v1 as pb;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use super::chain::{AuditKey, hex};
use super::store::{self, Filter, Record};
use crate::FieldError;
use crate::status::{internal, invalid};

pub use pb::audit_server::SERVICE_NAME;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Debug, Clone)]
pub struct AuditService {
    pool: PgPool,
    key: AuditKey,
}

impl AuditService {
    pub fn new(pool: PgPool, key: AuditKey) -> Self {
        Self { pool, key }
    }

    /// The tonic server, ready for `Routes::add_service`.
    pub fn server(self) -> pb::audit_server::AuditServer<Self> {
        pb::audit_server::AuditServer::new(self)
    }

    /// `<seq>.<tag>`: the last record of a page and a keyed tag, so a token that was not issued here is refused
    /// instead of silently paging from somewhere else.
    fn token(&self, seq: i64) -> String {
        format!("{seq}.{}", hex(&self.key.token_tag(seq)))
    }

    fn parse_token(&self, token: &str) -> Result<Option<i64>, FieldError> {
        let token = token.trim();
        if token.is_empty() {
            return Ok(None);
        }
        let bad = crate::page::bad_token;
        let (seq, tag) = token.split_once('.').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if hex(&self.key.token_tag(seq)) != tag {
            return Err(bad());
        }
        Ok(Some(seq))
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn list_records(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        let r = request.into_inner();
        let (filter, page_size) = self.parse_list(&r).map_err(|e| invalid(&e))?;
        let mut records = store::list(&self.pool, &filter, i64::from(page_size) + 1)
            .await
            .map_err(|e| internal("listing audit records", &e))?;
        // One more than the page was asked for, to know whether another page follows.
        let more = records.len() > page_size as usize;
        records.truncate(page_size as usize);
        let next_page_token = match records.last() {
            Some(last) if more => self.token(last.seq),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRecordsResponse {
            records: records.into_iter().map(to_pb).collect(),
            next_page_token,
        }))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let report = super::verify(&self.pool, &self.key, |_| {})
            .await
            .map_err(|e| internal("verifying the audit chain", &e))?;
        if let Some(broken) = &report.broken {
            tracing::error!(broken = %broken, "audit chain broken");
        }
        Ok(Response::new(pb::VerifyChainResponse {
            intact: report.intact(),
            checked: report.checked,
            first_seq: report.first_seq.unwrap_or(0),
            head_seq: report.head_seq,
            broken_seq: report.broken.as_ref().map_or(0, |b| b.seq),
            broken_reason: report.broken.as_ref().map(ToString::to_string).unwrap_or_default(),
        }))
    }
}

impl AuditService {
    /// Parses the fields in the message's own order, so the first bad one reported is the first in the request.
    fn parse_list<'a>(&self, r: &'a pb::ListRecordsRequest) -> Result<(Filter<'a>, u32), FieldError> {
        let since = time("since", &r.since)?;
        let until = time("until", &r.until)?;
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            return Err(FieldError::new("until", "must be after since"));
        }
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => return Err(FieldError::new("page_size", format!("must be at most {MAX_PAGE}"))),
            n => n,
        };
        let before = self.parse_token(&r.page_token)?;
        let filter =
            Filter { actor: r.actor.trim(), action: r.action.trim(), target: r.target.trim(), since, until, before };
        Ok((filter, page_size))
    }
}

fn time(field: &str, value: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| FieldError::new(field, "is not an RFC 3339 time, e.g. 2026-11-27T09:00:00+08:00"))
}

fn to_pb(r: Record) -> pb::Record {
    let e = r.entry;
    pb::Record {
        seq: r.seq,
        at: crate::time::local(r.at),
        actor: e.actor,
        role: e.role,
        scope: e.scope,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        reason: e.reason,
        client_addr: e.client_addr,
        trace_id: e.trace_id,
        detail: e.detail,
        prev_hash: hex(&r.prev_hash),
        hash: hex(&r.hash),
    }
}
