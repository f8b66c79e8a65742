//! Counting after a fault, from the services' own databases: what clients were told must equal what exists,
//! and nothing may exist twice.

use std::time::Duration;

use super::env::{CONSUMERS, Env};

/// One fault's figures (one table row).
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub acked: usize,
    pub cases: i64,
    pub dispatched: i64,
    /// A case with a second task, or a second `dispatched` step in its file (no case is reopened here).
    pub dup_tasks: i64,
    /// A task with two deadlines for one stage.
    pub dup_deadlines: i64,
    /// Deadlines fired, and overdue notices beyond one per fired deadline (in supervision's outbox, in the
    /// case file).
    pub fired: i64,
    pub dup_fired: i64,
    /// Cases the registry's tree ledger counts, and counts beyond one per case at the top of the tree.
    pub ledger: i64,
    pub dup_ledger: i64,
    pub credits: i64,
    pub dup_credits: i64,
    pub dead_letters: i64,
    /// Consumer lag, parked events and unpublished outbox rows left when counting (0 when quiet).
    pub backlog: i64,
    /// Where that backlog is: which consumer partitions lag and whether their lease lapsed (a hung consumer).
    pub stuck: Vec<String>,
}

impl Counts {
    /// The promise: acknowledged = cases = dispatched = in the ledger, nothing twice, nothing left behind.
    pub fn holds(&self) -> bool {
        i64::try_from(self.acked).is_ok_and(|a| a == self.cases)
            && self.cases == self.dispatched
            && self.cases == self.ledger
            && self.dup_tasks + self.dup_deadlines + self.dup_fired + self.dup_ledger + self.dup_credits == 0
            && self.backlog == 0
    }
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(pool).await?.unwrap_or(0))
}

/// Consumer lag, parked events and outbox backlog summed over every service, dead letters apart, and where the
/// backlog sits.
async fn backlog(env: &Env) -> anyhow::Result<(i64, i64, Vec<String>)> {
    let bus = kit::events::Bus::connect(&env.nats_cfg).await?;
    let (mut left, mut dead, mut stuck) = (0i64, 0i64, Vec::new());
    for consumer in CONSUMERS {
        let pool = env.pool(consumer).await?;
        let s = kit::events::ops::status(&pool, &bus, consumer).await?;
        let missing = s.partitions.iter().filter(|p| !p.exists).count();
        let lag = i64::try_from(s.lag().saturating_add(missing as u64)).unwrap_or(i64::MAX);
        left = left.saturating_add(lag).saturating_add(s.parked).saturating_add(s.outbox_backlog);
        dead += s.dead;
        for p in s.partitions.iter().filter(|p| p.pending > 0 || p.ack_pending > 0 || !p.exists) {
            let lease = if p.held { "lease held" } else { "lease lapsed" };
            stuck.push(format!("{consumer}-{:02}: {} pending, {} unacked, {lease}", p.part, p.pending, p.ack_pending));
        }
        if s.parked + s.outbox_backlog > 0 {
            stuck.push(format!("{consumer}: {} parked, {} unpublished", s.parked, s.outbox_backlog));
        }
        pool.close().await;
    }
    Ok((left, dead, stuck))
}

/// Counts everything once.
pub async fn count(env: &Env, acked: usize) -> anyhow::Result<Counts> {
    let intake = env.pool("intake").await?;
    let routing = env.pool("routing").await?;
    let supervision = env.pool("supervision").await?;
    let registry = env.pool("registry").await?;
    let subsidy = env.pool("subsidy").await?;
    let cases = scalar(&intake, "SELECT count(*) FROM cases").await?;
    let dispatched =
        scalar(&intake, "SELECT count(DISTINCT case_id) FROM timeline WHERE action = 'dispatched'").await?;
    let dup_steps =
        scalar(&intake, "SELECT count(*) - count(DISTINCT case_id) FROM timeline WHERE action = 'dispatched'").await?;
    let dup_task_rows = scalar(&routing, "SELECT count(*) - count(DISTINCT case_id) FROM tasks").await?;
    let dup_deadlines =
        scalar(&supervision, "SELECT count(*) - count(DISTINCT (case_id, task_id, stage)) FROM deadlines").await?;
    let fired = scalar(&supervision, "SELECT count(*) FROM deadlines WHERE state = 'fired'").await?;
    let overdue_out = scalar(&supervision, "SELECT count(*) FROM outbox WHERE subject LIKE 'case.overdue.%'").await?;
    let overdue_steps = scalar(&intake, "SELECT count(*) FROM timeline WHERE action = 'overdue'").await?;
    let ledger = scalar(&registry, "SELECT count(*) FROM ledger_cases").await?;
    let top = scalar(
        &registry,
        "SELECT sum(open_count + closed_count)::bigint FROM ledger_counts \
         WHERE code = (SELECT nodes[array_length(nodes, 1)] FROM ledger_cases LIMIT 1)",
    )
    .await?;
    let credits = scalar(&subsidy, "SELECT count(*) FROM credits").await?;
    let dup_credits = scalar(&subsidy, "SELECT count(*) - count(DISTINCT case_id) FROM credits").await?;
    let (left, dead, stuck) = backlog(env).await?;
    for p in [intake, routing, supervision, registry, subsidy] {
        p.close().await;
    }
    Ok(Counts {
        acked,
        cases,
        dispatched,
        dup_tasks: dup_steps + dup_task_rows,
        dup_deadlines,
        fired,
        dup_fired: (overdue_out - fired).max(0) + (overdue_steps - fired).max(0),
        ledger,
        dup_ledger: (top - ledger).max(0),
        credits,
        dup_credits,
        dead_letters: dead,
        backlog: left,
        stuck,
    })
}

/// Waits until everything acknowledged has flowed through every consumer and nothing is left to do (twice in
/// a row, a second apart), or `within` passes; returns the last counts either way.
pub async fn quiet(env: &Env, acked: usize, within: Duration) -> anyhow::Result<Counts> {
    let deadline = tokio::time::Instant::now() + within;
    let mut settled = 0;
    loop {
        let c = count(env, acked).await;
        let done = match &c {
            Ok(c) => {
                c.cases >= i64::try_from(acked).unwrap_or(i64::MAX)
                    && c.dispatched == c.cases
                    && c.ledger == c.cases
                    && c.backlog == 0
            }
            Err(_) => false,
        };
        settled = if done { settled + 1 } else { 0 };
        if settled >= 2 || tokio::time::Instant::now() >= deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
