//! 三率 and rankings behind GetRates and ExportRates: the caller's reach over the node, the one aggregate
//! (`db::count_rates`), the score rule of the current policy, and the ranking (`domain::rates`).

use chrono::Utc;
use kit::auth::{Permission, Principal};
use sqlx::PgConnection;

use super::Supervision;
use crate::db;
use crate::domain::policy::ScoreRule;
use crate::domain::rates::{RatesQuery, RatesTable};
use crate::error::{Error, Result};

impl Supervision {
    /// The figures under the query's node, for a caller whose ReadCase scope covers the node (a grant at the
    /// node or above it). The tree is no secret (any signed-in principal reads it), so a node outside the scope
    /// is refused as PERMISSION_DENIED rather than hidden as NOT_FOUND.
    pub async fn rates(&self, p: &Principal, q: RatesQuery) -> Result<RatesTable> {
        if !p.scope(Permission::ReadCase).covers_node(&q.node_code) {
            return Err(Error::denied(format!("the rates of {} are outside your area", q.node_code)));
        }
        let mut conn = self.pool.acquire().await?;
        rates_table(&mut conn, q).await
    }
}

/// Counts, scores and ranks; no scope check (the bench and the service share it).
pub async fn rates_table(conn: &mut PgConnection, q: RatesQuery) -> Result<RatesTable> {
    let (version, rule) = score_rule(conn).await?;
    let counted = db::count_rates(conn, q.by, &q.node_code, q.period.start(), q.period.end(), Utc::now()).await?;
    Ok(RatesTable::new(q, counted, rule, version))
}

/// The score rule of the current time policy (its highest version): one rule for the whole table.
async fn score_rule(conn: &mut PgConnection) -> Result<(i32, ScoreRule)> {
    let version = db::latest_policy_version(conn).await?.ok_or_else(|| Error::not_found("time policy"))?;
    let row = db::policy(conn, version).await?.ok_or_else(|| Error::not_found("time policy"))?;
    Ok((version, ScoreRule { on_time: row.score_on_time, yellow: row.score_yellow, red: row.score_red }))
}
