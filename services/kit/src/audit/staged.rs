//! A mutating call's record, staged in the action's own transaction.
//!
//! The auth layer opens a [`Call`] for every audited call it admits. A handler opens the transaction that
//! changes something with [`begin`] (or calls [`stage`] inside one it has), which first writes the call's
//! record to `audit_pending` in that transaction: if the transaction commits, the record is in the database
//! with it; if it rolls back, or the staging fails, neither is. After the answer the layer hands the record,
//! now with its outcome and the handler's target, to the writer, which chains it and deletes the staged row in
//! one transaction ([`super::AuditLog::complete`]). A staged row left behind (the process died after the
//! commit, or the chain could not be written then) is chained by [`sweep`], which the writer runs every
//! [`SWEEP_EVERY`] for rows older than [`STAGED_GRACE`].
//!
//! Outside a call (consumers, schedulers, imports from the command line) there is nothing to stage, and
//! [`begin`] is a plain `BEGIN`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::chain::AuditKey;
use super::{AuditEntry, store};

/// How long a staged row waits for its call to complete it before the sweeper chains it instead: far longer
/// than any call takes from its commit to its answer.
pub const STAGED_GRACE: Duration = Duration::from_secs(60);

/// How often the writer sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// What the sweeper writes in `detail` of a record it chained from a staged row.
pub const SWEPT_DETAIL: &str = r#"{"recorded":"from the action's transaction; the call's answer was not seen"}"#;

/// One audited call in progress: its record as the layer knows it before the answer, and whether a handler
/// staged it.
pub struct Call {
    pub(crate) id: Uuid,
    pub(crate) entry: AuditEntry,
    /// What the request named (set by the codec as it decodes the request).
    pub(crate) decoded: Arc<Mutex<Option<String>>>,
    pub(crate) staged: AtomicBool,
    pub(crate) unchanged: AtomicBool,
}

tokio::task_local! {
    static CALL: Arc<Call>;
}

impl Call {
    pub(crate) fn new(entry: AuditEntry, decoded: Arc<Mutex<Option<String>>>) -> Arc<Self> {
        Arc::new(Self {
            id: Uuid::new_v4(),
            entry,
            decoded,
            staged: AtomicBool::new(false),
            unchanged: AtomicBool::new(false),
        })
    }

    /// Runs `call` (the handler) with this call's record in reach of [`begin`] and [`stage`].
    pub(crate) fn scope<F: std::future::Future>(
        self: Arc<Self>,
        call: F,
    ) -> impl std::future::Future<Output = F::Output> {
        CALL.scope(self, call)
    }

    pub(crate) fn staged(&self) -> bool {
        self.staged.load(Ordering::Acquire)
    }

    pub(crate) fn unchanged(&self) -> bool {
        self.unchanged.load(Ordering::Acquire)
    }

    /// What the request named, if the codec saw one.
    pub(crate) fn decoded_target(&self) -> Option<String> {
        self.decoded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Opens a transaction with the current call's record staged in it (see the module's comment).
pub async fn begin(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    stage(&mut tx).await?;
    Ok(tx)
}

/// Stages the current call's record in the transaction `conn` is in. Outside an audited call it does nothing;
/// staged twice in one call (two transactions), the first row stands.
pub async fn stage(conn: &mut PgConnection) -> sqlx::Result<()> {
    let Ok(call) = CALL.try_with(Arc::clone) else { return Ok(()) };
    let mut e = call.entry.clone();
    if let Some(target) = call.decoded_target() {
        e.target = target;
    }
    e.outcome = "ok".into();
    e.make_storable();
    let [actor, role, scope, action, target, outcome, reason, client_addr, trace_id, detail] = e.fields();
    sqlx::query(
        "INSERT INTO audit_pending (id, actor, role, scope, action, target, outcome, reason, client_addr, \
                                    trace_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(call.id)
    .bind(actor)
    .bind(role)
    .bind(scope)
    .bind(action)
    .bind(target)
    .bind(outcome)
    .bind(reason)
    .bind(client_addr)
    .bind(trace_id)
    .bind(detail)
    .execute(conn)
    .await?;
    call.staged.store(true, Ordering::Release);
    Ok(())
}

/// Tells the layer that this changing call changed nothing (a replay answered from what an earlier call
/// wrote), so that it had nothing to stage.
pub fn unchanged() {
    if let Ok(call) = CALL.try_with(Arc::clone) {
        call.unchanged.store(true, Ordering::Release);
    }
}

/// Chains every staged row older than `older_than` (oldest first) and deletes it, in one transaction;
/// returns how many. Replicas may sweep at once: a row is deleted by one transaction only.
pub async fn sweep(pool: &PgPool, key: &AuditKey, older_than: Duration) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let secs = older_than.as_secs_f64();
    let mut rows: Vec<(chrono::DateTime<chrono::Utc>, AuditEntry)> = sqlx::query_as::<_, Staged>(
        "DELETE FROM audit_pending WHERE id IN ( \
           SELECT id FROM audit_pending WHERE staged_at < now() - make_interval(secs => $1) \
           ORDER BY staged_at LIMIT 500 FOR UPDATE SKIP LOCKED) \
         RETURNING staged_at, actor, role, scope, action, target, outcome, reason, client_addr, trace_id, detail",
    )
    .bind(secs)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|s| (s.staged_at, s.entry))
    .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    rows.sort_by_key(|(at, _)| *at);
    let entries: Vec<AuditEntry> = rows
        .into_iter()
        .map(|(_, mut e)| {
            e.detail = SWEPT_DETAIL.into();
            e
        })
        .collect();
    let refs: Vec<&AuditEntry> = entries.iter().collect();
    store::append(&mut tx, key, &refs, &[]).await?;
    tx.commit().await?;
    tracing::warn!(records = entries.len(), "audit records chained from their actions' transactions by the sweeper");
    Ok(entries.len())
}

#[derive(sqlx::FromRow)]
struct Staged {
    staged_at: chrono::DateTime<chrono::Utc>,
    #[sqlx(flatten)]
    entry: AuditEntry,
}
