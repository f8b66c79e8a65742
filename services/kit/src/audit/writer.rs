//! The writer: appends are queued and group-committed, so a busy service pays one transaction (and one fsync)
//! for many records, while each caller still waits until its own record is durable.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::chain::AuditKey;
use super::{AuditEntry, AuditError, store};
use crate::shutdown::Shutdown;

/// The most records one transaction takes: big enough to amortise the commit, small enough to keep the lock
/// on the head short.
const MAX_BATCH: usize = 500;

/// Queued appends beyond this make callers wait to enqueue (back-pressure instead of unbounded memory).
const QUEUE: usize = 8 * MAX_BATCH;

/// After shutdown, how long the writer keeps waiting for appends from calls still draining.
const SHUTDOWN_IDLE: Duration = Duration::from_secs(2);

struct Pending {
    entry: AuditEntry,
    /// The row the call staged in its action's transaction, which this record completes.
    staged: Option<uuid::Uuid>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// A handle to the service's audit writer; cheap to clone into every handler.
#[derive(Clone, Debug)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
}

impl AuditLog {
    /// The handle and the writer task, which the service spawns (`Running::spawn("audit", task)`). The task
    /// ends after shutdown once it has written everything queued.
    pub fn start(
        pool: PgPool,
        key: AuditKey,
        shutdown: Shutdown,
    ) -> (AuditLog, impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (AuditLog { queue: tx }, run(pool, key, rx, shutdown))
    }

    /// Records `entry` and returns once it is committed. An error means it was not recorded, and the caller
    /// must then fail the action.
    pub async fn append(&self, entry: AuditEntry) -> Result<(), AuditError> {
        self.enqueue(entry, None).await
    }

    /// Records `entry` in place of the row its call staged (`staged`), deleting that row in the same
    /// transaction. The row may be gone: rolled back with its action (a replay that wrote nothing), or, when
    /// this comes over a minute late, chained by the sweeper, and then the call has two records, the swept one
    /// saying so. A record twice is better than a record lost to guessing which of the two happened.
    pub async fn complete(&self, entry: AuditEntry, staged: uuid::Uuid) -> Result<(), AuditError> {
        self.enqueue(entry, Some(staged)).await
    }

    async fn enqueue(&self, mut entry: AuditEntry, staged: Option<uuid::Uuid>) -> Result<(), AuditError> {
        entry.make_storable();
        let (done, committed) = oneshot::channel();
        self.queue.send(Pending { entry, staged, done }).await.map_err(|_| AuditError::Closed)?;
        committed.await.unwrap_or(Err(AuditError::Closed))
    }
}

async fn run(
    pool: PgPool,
    key: AuditKey,
    mut rx: mpsc::Receiver<Pending>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The first tick is at once: rows a stopped process left staged are chained as the service starts.
    let mut sweeps = tokio::time::interval(super::staged::SWEEP_EVERY);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Whatever has queued while the previous batch committed goes into the next one.
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    // Every handle is gone: nothing more can arrive.
                    return Ok(());
                }
                commit(&pool, &key, &mut batch).await;
            }
            _ = sweeps.tick() => {
                if let Err(e) = super::staged::sweep(&pool, &key, super::staged::STAGED_GRACE).await {
                    tracing::error!(error = %e, "staged audit records not swept; next try in a while");
                }
            }
            () = shutdown.wait() => break,
        }
    }
    // In-flight calls are still draining after shutdown and may append; keep writing until they go quiet.
    while let Ok(n) = tokio::time::timeout(SHUTDOWN_IDLE, rx.recv_many(&mut batch, MAX_BATCH)).await {
        if n == 0 {
            return Ok(());
        }
        commit(&pool, &key, &mut batch).await;
    }
    // From here an append fails with Closed (so its action fails); what is already queued is still written.
    rx.close();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&pool, &key, &mut batch).await;
    }
    tracing::debug!("audit writer stopped");
    Ok(())
}

/// Writes one batch and answers each waiter. A failure fails the whole batch (it was one transaction) and
/// the writer carries on with the next, which may find the database back.
async fn commit(pool: &PgPool, key: &AuditKey, batch: &mut Vec<Pending>) {
    let result = write(pool, key, batch).await.map_err(|e| {
        tracing::error!(error = %e, records = batch.len(), "audit batch not written");
        AuditError::Write(Arc::new(e))
    });
    for pending in batch.drain(..) {
        // A caller that gave up waiting no longer needs the answer.
        let _ = pending.done.send(result.clone());
    }
}

async fn write(pool: &PgPool, key: &AuditKey, batch: &[Pending]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let staged: Vec<uuid::Uuid> = batch.iter().filter_map(|p| p.staged).collect();
    let entries: Vec<&AuditEntry> = batch.iter().map(|p| &p.entry).collect();
    let (seq, _) = store::append(&mut tx, key, &entries, &staged).await?;
    tx.commit().await?;
    tracing::trace!(records = entries.len(), head = seq, "audit batch committed");
    Ok(())
}
