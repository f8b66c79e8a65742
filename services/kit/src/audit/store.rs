//! The audit tables: plain async functions over a connection.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::AuditEntry;
use super::chain::AuditKey;

/// One stored record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Record {
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

const COLUMNS: &str = "seq, at, actor, role, scope, action, target, outcome, reason, client_addr, trace_id, detail, \
                       prev_hash, hash";

/// The end of the chain, locked until the transaction ends, with the database's clock read after the lock
/// was granted: the one clock every replica shares, so times follow the sequence. The staged rows `claimed`
/// (of the calls whose records this transaction chains, see `staged`) are deleted in the same statement: one
/// round trip fewer per batch.
pub(crate) async fn lock_head(
    tx: &mut PgConnection,
    claimed: &[uuid::Uuid],
) -> sqlx::Result<(i64, Vec<u8>, DateTime<Utc>)> {
    // MATERIALIZED keeps the lock inside the CTE, so clock_timestamp() is evaluated after any wait for it. A
    // data-modifying CTE runs whether or not the query reads it.
    sqlx::query_as(
        "WITH claimed AS (DELETE FROM audit_pending WHERE id = ANY($1)), \
              head AS MATERIALIZED (SELECT seq, hash FROM audit_head FOR UPDATE) \
         SELECT seq, hash, clock_timestamp() FROM head",
    )
    .bind(claimed)
    .fetch_one(tx)
    .await
}

/// The head without locking it.
pub(crate) async fn head(db: impl PgExecutor<'_>) -> sqlx::Result<(i64, Vec<u8>)> {
    sqlx::query_as("SELECT seq, hash FROM audit_head").fetch_one(db).await
}

/// The last record's seq and the head's, read in one statement (one snapshot): a writer inserts its records
/// and moves the head in one statement too, so the two differ only when someone moved the head by hand.
pub(crate) async fn last_and_head(db: impl PgExecutor<'_>) -> sqlx::Result<(Option<i64>, i64)> {
    sqlx::query_as("SELECT (SELECT max(seq) FROM audit_log), (SELECT seq FROM audit_head)").fetch_one(db).await
}

/// Chains `entries` onto the locked head and inserts them in one statement, deleting the staged rows `claimed`
/// (see [`lock_head`]); returns the new head.
pub(crate) async fn append(
    tx: &mut PgConnection,
    key: &AuditKey,
    entries: &[&AuditEntry],
    claimed: &[uuid::Uuid],
) -> sqlx::Result<(i64, Vec<u8>)> {
    let (mut seq, mut prev, at) = lock_head(tx, claimed).await?;
    let n = entries.len();
    let mut seqs = Vec::with_capacity(n);
    let mut prevs = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut text: [Vec<&str>; 10] = Default::default();
    for e in entries {
        seq += 1;
        let hash = key.record_hash(&prev, seq, at, e).to_vec();
        seqs.push(seq);
        prevs.push(std::mem::replace(&mut prev, hash.clone()));
        hashes.push(hash);
        for (column, value) in text.iter_mut().zip(e.fields()) {
            column.push(value);
        }
    }
    let [actor, role, scope, action, target, outcome, reason, client_addr, trace_id, detail] = text;
    // The insert and the head move in one statement: one round trip fewer per batch, and round trips, not
    // fsyncs, are what a commit mostly waits for here.
    sqlx::query(
        "WITH inserted AS ( \
           INSERT INTO audit_log (seq, at, actor, role, scope, action, target, outcome, reason, client_addr, \
                                  trace_id, detail, prev_hash, hash) \
           SELECT u.seq, $2, u.actor, u.role, u.scope, u.action, u.target, u.outcome, u.reason, u.client_addr, \
                  u.trace_id, u.detail, u.prev_hash, u.hash \
           FROM UNNEST($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                       $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::bytea[]) \
             AS u(seq, actor, role, scope, action, target, outcome, reason, client_addr, trace_id, detail, \
                  prev_hash, hash)) \
         UPDATE audit_head SET seq = $15, hash = $16",
    )
    .bind(&seqs)
    .bind(at)
    .bind(&actor)
    .bind(&role)
    .bind(&scope)
    .bind(&action)
    .bind(&target)
    .bind(&outcome)
    .bind(&reason)
    .bind(&client_addr)
    .bind(&trace_id)
    .bind(&detail)
    .bind(&prevs)
    .bind(&hashes)
    .bind(seq)
    .bind(&prev)
    .execute(&mut *tx)
    .await?;
    Ok((seq, prev))
}

/// Records with `after < seq <= upto`, in order, at most `limit`: one page of a chain walk.
pub(crate) async fn page(db: impl PgExecutor<'_>, after: i64, upto: i64, limit: i64) -> sqlx::Result<Vec<Record>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    )))
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// What ListRecords filters on; empty strings and None match everything.
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only records before this one (the page token).
    pub before: Option<i64>,
}

/// Matching records newest first, at most `limit`. The SQL is assembled from fixed fragments (values are
/// bound), so each filter combination gets a plan that can use its index instead of one `$1 = '' OR …` plan.
pub(crate) async fn list(db: impl PgExecutor<'_>, f: &Filter<'_>, limit: i64) -> sqlx::Result<Vec<Record>> {
    let mut conditions = vec!["true"];
    let pairs: [(bool, &'static str); 6] = [
        (!f.actor.is_empty(), "actor = $1"),
        (!f.action.is_empty(), "action = $2"),
        (!f.target.is_empty(), "target = $3"),
        (f.since.is_some(), "at >= $4"),
        (f.until.is_some(), "at < $5"),
        (f.before.is_some(), "seq < $6"),
    ];
    conditions.extend(pairs.iter().filter(|(on, _)| *on).map(|(_, sql)| *sql));
    let sql = format!(
        // Parameters a fragment leaves out are still bound: their types travel with them, which PostgreSQL accepts.
        "SELECT {COLUMNS} FROM audit_log WHERE {} ORDER BY seq DESC LIMIT $7",
        conditions.join(" AND ")
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.actor)
        .bind(f.action)
        .bind(f.target)
        .bind(f.since)
        .bind(f.until)
        .bind(f.before)
        .bind(limit)
        .fetch_all(db)
        .await
}
