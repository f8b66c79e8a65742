//! The producing side: events written to the outbox in the caller's transaction, and the relay that publishes
//! them to JetStream in outbox order (see the README, "The backbone").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Bus, Settings, lease, subject_for};
use crate::ids::CaseId;
use crate::shutdown::Shutdown;

/// Writes events into the outbox inside the caller's transaction, and wakes the relay after commit.
#[derive(Clone, Debug)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        Self { wake: Arc::new(Notify::new()) }
    }

    /// Adds one event to the transaction; it is published only if the transaction commits.
    pub async fn add(&self, tx: &mut PgConnection, case_id: CaseId, actor: &str, body: Body) -> sqlx::Result<Uuid> {
        let id = Uuid::new_v4();
        let subject = subject_for(&body, &case_id.to_string());
        let envelope = Envelope {
            event_id: id.to_string(),
            case_id: case_id.to_string(),
            occurred_at_ms: chrono::Utc::now().timestamp_millis(),
            actor: actor.to_owned(),
            body: Some(body),
        };
        let trace = serde_json::to_value(crate::telemetry::current_headers()).unwrap_or_default();
        sqlx::query("INSERT INTO outbox (id, subject, payload, trace) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(subject)
            .bind(envelope.encode_to_vec())
            .bind(trace)
            .execute(tx)
            .await?;
        Ok(id)
    }

    /// Tells the relay there is something to publish; call after commit.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes unpublished rows in outbox order until shutdown, and prunes what retention lets go.
    ///
    /// Only the replica holding the relay lease publishes: two relays claiming adjacent batches would publish
    /// one case's events out of order. No connection is held while JetStream answers: rows are read, published
    /// and awaited, then marked in a second statement. A crash in between republishes with the same message
    /// id, which JetStream drops as a duplicate.
    ///
    /// The lease is renewed when [`lease::RENEW`] has passed, not at every wake (two round trips fewer per
    /// batch, with its ping): a batch is only ever started within `RENEW` of a renewal, as a consumer's is, so a
    /// successor still takes over only after every publish this holder could have started.
    pub async fn relay(self, pool: PgPool, bus: Bus, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let holder = Uuid::new_v4();
        let mut backoff = Duration::from_millis(100);
        let mut pruned_at = tokio::time::Instant::now();
        let mut renewed: Option<tokio::time::Instant> = None;
        loop {
            let held = match renewed {
                Some(at) if at.elapsed() < lease::RENEW => Ok(true),
                _ => {
                    let asked = tokio::time::Instant::now();
                    let held = lease::acquire(&pool, "relay", 0, holder).await;
                    renewed = matches!(held, Ok(true)).then_some(asked);
                    held
                }
            };
            match held {
                Ok(true) => match relay_batch(&pool, &bus).await {
                    // A full batch may have more behind it. Anything committed after a shorter batch was read
                    // woke the relay meanwhile (the wake is kept until it waits), so it waits only when idle.
                    Ok(n) if n >= RELAY_BATCH as usize => {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    Ok(_) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay failed; retrying");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                },
                // Another replica relays; this one waits to take over if that one stops renewing.
                Ok(false) => backoff = lease::RENEW,
                Err(e) => {
                    tracing::warn!(error = %e, "relay lease unavailable; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = tokio::time::Instant::now();
                if let Err(e) = prune(&pool, bus.settings()).await {
                    tracing::warn!(error = %e, "pruning the outbox and inbox failed; next time");
                }
            }
            if shutdown.is_down() {
                // One last pass above published what was committed before shutdown; a successor may take
                // over at once.
                let _ = lease::release(&pool, "relay", 0, holder).await;
                return Ok(());
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(backoff.max(Duration::from_millis(500))) => {}
                () = shutdown.wait() => {}
            }
        }
    }
}

const RELAY_BATCH: i64 = 512;
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Rows deleted per statement when pruning, so pruning never holds a long lock.
const PRUNE_CHUNK: i64 = 5_000;

async fn relay_batch(pool: &PgPool, bus: &Bus) -> anyhow::Result<usize> {
    let rows: Vec<(Uuid, String, Vec<u8>, serde_json::Value)> = sqlx::query_as(
        "SELECT id, subject, payload, trace FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
    )
    .bind(RELAY_BATCH)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut pending = Vec::with_capacity(rows.len());
    for (id, subject, payload, trace) in rows {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.to_string().as_str());
        if let Ok(map) = serde_json::from_value::<HashMap<String, String>>(trace) {
            for (k, v) in map {
                headers.insert(k.as_str(), v.as_str());
            }
        }
        match bus.js.publish_with_headers(bus.subject(&subject), headers, payload.into()).await {
            Ok(ack) => pending.push((id, ack)),
            Err(e) => {
                tracing::warn!(error = %e, "publish failed; the rest of the batch waits");
                break;
            }
        }
    }
    // Only the acknowledged prefix is marked: a row after a failure is published again (a duplicate JetStream
    // drops), never skipped.
    let mut ids = Vec::with_capacity(pending.len());
    let mut failed = None;
    for (id, ack) in pending {
        match ack.await {
            Ok(_) => ids.push(id),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if !ids.is_empty() {
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").bind(&ids).execute(pool).await?;
        tracing::debug!(count = ids.len(), "outbox relayed");
    }
    if let Some(e) = failed {
        anyhow::bail!("JetStream did not acknowledge a publish: {e}");
    }
    Ok(ids.len())
}

/// Deletes published outbox rows and inbox rows older than their retention, a chunk at a time.
pub async fn prune(pool: &PgPool, settings: &Settings) -> anyhow::Result<(u64, u64)> {
    let outbox = prune_chunks(
        pool,
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) \
         LIMIT $2)",
        settings.outbox_keep,
    )
    .await?;
    let inbox = prune_chunks(
        pool,
        "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE handled_at < now() - make_interval(secs => $1) \
         LIMIT $2)",
        settings.inbox_keep,
    )
    .await?;
    if outbox + inbox > 0 {
        tracing::info!(outbox, inbox, "pruned published outbox rows and old inbox rows");
    }
    Ok((outbox, inbox))
}

/// Runs a chunked delete (`$1` the age in seconds, `$2` the chunk) until a chunk comes back short.
async fn prune_chunks(pool: &PgPool, delete: &'static str, keep: Duration) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let n = sqlx::query(delete).bind(keep.as_secs_f64()).bind(PRUNE_CHUNK).execute(pool).await?.rows_affected();
        total += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok(total);
        }
    }
}
