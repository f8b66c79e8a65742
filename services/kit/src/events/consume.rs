//! The consuming side: one durable pull consumer per partition, batches applied in one transaction with a
//! savepoint per event, and a retrier that applies parked events in case order.
//!
//! Why batches: one commit per event capped a consumer at about a hundred events a second on this box; a
//! commit per batch is what lets every consumer keep pace with intake. Why savepoints: one event that fails
//! must not undo the others of its batch, so it is rolled back alone and parked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use prost::Message as _;
use proto::events::v1::Envelope;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use super::parked::{Parking, park};
use super::pull::Puller;
use super::{Bus, Event, Handler, PARTITIONS, lease};
use crate::shutdown::Shutdown;

/// Messages in flight per partition: the batch a partition applies in one transaction.
pub const BATCH: usize = 256;

pub(super) struct Ctx<H> {
    pub(super) name: String,
    pub(super) pool: PgPool,
    pub(super) bus: Bus,
    pub(super) handler: H,
    /// Batches in flight at once across the partitions: each holds a pooled connection, and the pool is the
    /// service's, shared with its RPCs.
    slots: tokio::sync::Semaphore,
}

/// Runs the service's consumers until shutdown: one per partition, each applying its partition's events in
/// stream order, plus the retrier of parked events.
pub async fn consume<H: Handler>(
    name: &str,
    pool: PgPool,
    bus: Bus,
    handler: H,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stream = bus.js.get_stream(&bus.stream).await?;
    // Before partitions there was one consumer named after the service; left alone it would keep every message
    // pending forever, so it goes.
    if stream.consumer_info(name).await.is_ok() {
        let _ = stream.delete_consumer(name).await;
        tracing::info!(consumer = name, "removed the pre-partition consumer");
    }
    let slots = tokio::sync::Semaphore::new(bus.settings.consumer_connections.max(1));
    let ctx = Arc::new(Ctx { name: name.to_owned(), pool, bus, handler, slots });
    let mut tasks = JoinSet::new();
    for part in 0..PARTITIONS {
        tasks.spawn(partition(ctx.clone(), part, shutdown.clone()));
    }
    tasks.spawn(super::parked::retrier(ctx.clone(), shutdown.clone()));
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

pub(super) enum Stop {
    /// Another replica holds the partition (or took it over).
    NotHeld,
    Failed(anyhow::Error),
    /// A pull was cut short (the connection to NATS broke).
    PullBroken(String),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Failed(e.into())
    }
}

/// Works one partition while this replica holds its lease; waits to take it over otherwise. Errors are retried
/// here with backoff, so a partition never stops for good while the service runs.
async fn partition<H: Handler>(ctx: Arc<Ctx<H>>, part: u32, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let holder = Uuid::new_v4();
    let mut backoff = Duration::from_millis(250);
    loop {
        match run_partition(&ctx, part, holder, &mut shutdown).await {
            Ok(()) => return Ok(()),
            Err(Stop::NotHeld) => backoff = lease::RENEW,
            Err(Stop::Failed(e)) => {
                tracing::warn!(consumer = %ctx.name, part, error = %e, "partition consumer failed; restarting");
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(Stop::PullBroken(e)) => {
                // Messages delivered to a pull that broke come back after the ack wait; resuming sooner could
                // apply a newer event of their case first.
                tracing::warn!(consumer = %ctx.name, part, error = %e, "a pull broke; resuming after the ack wait");
                backoff = lease::ACK_WAIT + Duration::from_secs(1);
            }
        }
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            () = tokio::time::sleep(backoff) => {}
        }
    }
}

async fn run_partition<H: Handler>(ctx: &Ctx<H>, part: u32, holder: Uuid, shutdown: &mut Shutdown) -> Result<(), Stop> {
    let part_no = i32::try_from(part).unwrap_or(i32::MAX);
    let held = {
        let _slot = ctx.slots.acquire().await?;
        lease::acquire(&ctx.pool, &ctx.name, part_no, holder).await?
    };
    if !held {
        return Err(Stop::NotHeld);
    }
    let durable = format!("{}-{part:02}", ctx.name);
    let metrics = crate::metrics::consumer(&ctx.name, format!("{part:02}"));
    let stream = ctx.bus.js.get_stream(&ctx.bus.stream).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: format!("{}.*.*.{part:02}", ctx.bus.prefix),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: lease::ACK_WAIT,
                max_ack_pending: BATCH as i64,
                ..Default::default()
            },
        )
        .await?;
    let mut puller = Puller::new(&ctx.bus.js, consumer).await?;
    let mut renewed = tokio::time::Instant::now();
    loop {
        if shutdown.is_down() {
            // Every message this replica pulled is acknowledged (pulls are explicit and finished), so a
            // successor may start at once.
            lease::release(&ctx.pool, &ctx.name, part_no, holder).await?;
            return Ok(());
        }
        if renewed.elapsed() >= lease::RENEW {
            let _slot = ctx.slots.acquire().await?;
            if !lease::renew(&mut *ctx.pool.acquire().await?, &ctx.name, part_no, holder).await? {
                return Err(Stop::NotHeld);
            }
            renewed = tokio::time::Instant::now();
        }
        // What is there now, up to a batch; when nothing is, wait up to a second for the next message. Pulls
        // are never abandoned halfway (no prefetch, no cancelled wait), so nothing is ever delivered to this
        // replica that it does not hold in hand.
        let (mut batch, mut broken) = puller.pull(BATCH, true).await?;
        if batch.is_empty() && broken.is_none() {
            (batch, broken) = puller.pull(1, false).await?;
        }
        if !batch.is_empty() && run_batch(ctx, part_no, holder, batch, shutdown, &metrics).await? {
            renewed = tokio::time::Instant::now();
        }
        if let Some(e) = broken {
            // A pull cut short may have had messages delivered that never arrived; pulling again at once could
            // take newer ones of the same case before those come back (see `partition`).
            return Err(Stop::PullBroken(e));
        }
    }
}

/// One message and what it carries.
pub(super) struct Item {
    pub(super) msg: jetstream::Message,
    pub(super) seq: i64,
    pub(super) envelope: Option<Envelope>,
}

impl Item {
    /// The message with its stream sequence and, when it decodes, its envelope.
    fn of(msg: jetstream::Message) -> Self {
        let seq = msg.info().map(|i| i64::try_from(i.stream_sequence).unwrap_or(i64::MAX)).unwrap_or(0);
        let envelope = Envelope::decode(msg.payload.as_ref()).ok();
        Item { msg, seq, envelope }
    }

    /// The id the inbox knows the message by (as `open_batch` recorded it), its case, and the event it holds.
    fn read(&self) -> (String, &str, Result<Option<Event<'_>>, &'static str>) {
        match &self.envelope {
            Some(env) => (env.event_id.clone(), env.case_id.as_str(), Event::read(env)),
            None => (format!("seq:{}", self.seq), "", Err("undecodable event")),
        }
    }
}

/// Applies a batch, retrying the whole transaction until it commits: nothing is acknowledged before that, and
/// nothing later of this partition is pulled meanwhile, so a database outage delays events and reorders none.
/// True when a transaction ran (and so renewed the lease).
///
/// A batch is first applied without a savepoint per event: two round trips per event fewer, and events rarely
/// fail. When one does, that transaction is rolled back and the batch applied again with savepoints, so the
/// failing event is parked alone (its prepare step runs again, which is why it must have no lasting effect
/// but a gap, see [`Handler::prepare`]).
async fn run_batch<H: Handler>(
    ctx: &Ctx<H>,
    part: i32,
    holder: Uuid,
    batch: Vec<jetstream::Message>,
    shutdown: &Shutdown,
    metrics: &crate::metrics::ConsumerMetrics,
) -> Result<bool, Stop> {
    delivered(&batch, metrics);
    let items: Vec<Item> = batch.into_iter().map(Item::of).collect();
    let wanted: Vec<bool> = items.iter().map(|it| wants(&ctx.handler, it)).collect();
    if !wanted.contains(&true) {
        // Nothing here for this consumer: acknowledged as it is, no transaction.
        metrics.skipped.inc_by(items.len() as u64);
        ack_all(&items).await;
        return Ok(false);
    }
    let mut backoff = Duration::from_millis(200);
    let mut careful = false;
    loop {
        let started = std::time::Instant::now();
        let slot = ctx.slots.acquire().await?;
        let outcome = apply_batch(ctx, part, holder, &items, &wanted, careful).await;
        drop(slot);
        match outcome {
            Err(Stop::Failed(e)) if !careful && e.is::<EventFailed>() => {
                // Rolled back whole: apply it again with a savepoint per event, so only the failing one parks.
                careful = true;
            }
            Ok(tally) => {
                if tally.applied + tally.parked + tally.dead > 0 {
                    exit_after_commit_hook();
                }
                tally.count(metrics, started.elapsed().as_secs_f64() / items.len().max(1) as f64);
                ack_all(&items).await;
                if tally.applied > 0 {
                    ctx.handler.committed();
                }
                return Ok(true);
            }
            Err(stop @ (Stop::NotHeld | Stop::PullBroken(_))) => return Err(stop),
            Err(Stop::Failed(e)) => {
                tracing::warn!(consumer = %ctx.name, part, error = %e, "batch failed; retrying it");
                if shutdown.is_down() {
                    // Unacknowledged, the batch is redelivered to whoever holds the partition next; the lease
                    // is left to expire so that happens before the successor pulls anything newer.
                    return Err(Stop::NotHeld);
                }
                for it in &items {
                    let _ = it.msg.ack_with(AckKind::Progress).await;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What a pull tells before anything is applied: the partition's lag after it, and its redeliveries.
fn delivered(batch: &[jetstream::Message], metrics: &crate::metrics::ConsumerMetrics) {
    if let Some(info) = batch.last().and_then(|m| m.info().ok()) {
        metrics.lag.set(info.pending as f64);
    }
    let redelivered = batch.iter().filter(|m| m.info().is_ok_and(|i| i.delivered > 1)).count();
    metrics.redelivered.inc_by(redelivered as u64);
}

/// Acknowledges every item of a batch; a failed ack means a redelivery, which the inbox then skips.
async fn ack_all(items: &[Item]) {
    for it in items {
        if let Err(e) = it.msg.ack().await {
            tracing::warn!(error = %e, "ack failed; the event will be redelivered and skipped");
        }
    }
}

/// A test hook for the fault suite (F7), inert unless ZZ_FAULT_EXIT_AFTER_COMMIT=<n> is set: the process dies
/// as if killed (-9, exit status 137) right after the n-th batch whose effects committed and before that batch
/// is acknowledged, so the suite can prove a redelivered, already applied batch changes nothing.
fn exit_after_commit_hook() {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static COMMITTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let at = AT.get_or_init(|| std::env::var("ZZ_FAULT_EXIT_AFTER_COMMIT").ok()?.trim().parse().ok());
    if let Some(n) = at
        && COMMITTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= *n
    {
        tracing::warn!("ZZ_FAULT_EXIT_AFTER_COMMIT: exiting after a committed, unacknowledged batch");
        std::process::exit(137);
    }
}

/// What a batch did: events applied, skipped (seen before, or waiting behind their case), parked after
/// failing, and dead at once.
#[derive(Default)]
struct Tally {
    applied: usize,
    skipped: usize,
    parked: usize,
    dead: usize,
}

impl Tally {
    /// Counts a committed batch in the partition's metrics, with the seconds it took per event.
    fn count(&self, metrics: &crate::metrics::ConsumerMetrics, per_event: f64) {
        metrics.handled.inc_by(self.applied as u64);
        metrics.skipped.inc_by(self.skipped as u64);
        metrics.failed.inc_by(self.parked as u64);
        metrics.dead_lettered.inc_by(self.dead as u64);
        metrics.handling.observe(per_event);
    }
}

/// An event's handler failed in a batch applied without savepoints (see [`run_batch`]).
#[derive(Debug)]
struct EventFailed;

impl std::fmt::Display for EventFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event failed in a batch without savepoints")
    }
}

impl std::error::Error for EventFailed {}

/// The batch's `wanted` events in one transaction (the others were acknowledged as skipped); with a
/// savepoint per event when `careful`, else failing whole with [`EventFailed`] at the first event that fails.
async fn apply_batch<H: Handler>(
    ctx: &Ctx<H>,
    part: i32,
    holder: Uuid,
    all: &[Item],
    wanted: &[bool],
    careful: bool,
) -> Result<Tally, Stop> {
    let items: Vec<&Item> = all.iter().zip(wanted).filter(|(_, w)| **w).map(|(it, _)| it).collect();
    let prepared = prepare_all(ctx, &items).await;
    let mut tx = ctx.pool.begin().await?;
    let Some(Opened { mut fresh, mut parked }) = open_batch(&mut tx, ctx, part, holder, &items).await? else {
        return Err(Stop::NotHeld);
    };
    let mut tally = Tally { skipped: all.len() - items.len(), ..Tally::default() };
    for (it, prep) in items.iter().copied().zip(prepared) {
        let (id, case, read) = it.read();
        let id = id.as_str();
        let event = match read {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(why) => {
                // Never applicable, so never retried: a dead letter at once, kept with the raw bytes.
                if fresh.remove(id) {
                    park(&mut tx, &ctx.bus.settings, &ctx.name, it, (id, case), Parking::Dead, why).await?;
                    tally.dead += 1;
                }
                continue;
            }
        };
        if !fresh.remove(id) {
            tally.skipped += 1;
            continue;
        }
        if parked.contains(case) {
            let why = "waits behind an earlier event of its case";
            park(&mut tx, &ctx.bus.settings, &ctx.name, it, (id, case), Parking::Behind, why).await?;
            tally.skipped += 1;
            continue;
        }
        // Selected when the batch was filtered; `select` is pure, so it selects the same again.
        let Some((work, prep)) = prep else { continue };
        let span = event_span(&ctx.name, &it.msg);
        match handle_one(&mut tx, ctx, &event, (work, prep), careful).instrument(span).await? {
            Ok(()) => tally.applied += 1,
            Err(e) => {
                tracing::warn!(consumer = %ctx.name, event_id = %id, error = %e, "event failed; parked for a retry");
                let why = format!("{e:#}");
                park(&mut tx, &ctx.bus.settings, &ctx.name, it, (id, case), Parking::Failed, &why).await?;
                parked.insert(case.to_owned());
                tally.parked += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(tally)
}

/// Remote work first, outside the transaction: each item's prepare step, None for an item with nothing to
/// prepare (a dead letter, or a kind this build does not know).
async fn prepare_all<H: Handler>(ctx: &Ctx<H>, items: &[&Item]) -> Vec<Option<(H::Work, anyhow::Result<H::Prepared>)>> {
    let mut prepared = Vec::with_capacity(items.len());
    for it in items {
        prepared.push(match it.envelope.as_ref().map(Event::read) {
            Some(Ok(Some(event))) => match ctx.handler.select(&event) {
                Some(work) => {
                    let p = ctx.handler.prepare(&event, &work).await;
                    Some((work, p))
                }
                None => None,
            },
            Some(Ok(None) | Err(_)) | None => None,
        });
    }
    prepared
}

/// Applies one event in the batch's transaction: under a savepoint when `careful`, so its failure is its own
/// (the inner result); otherwise a failure fails the whole batch with [`EventFailed`] (the transaction is
/// dropped, so nothing of the batch happened). A failed prepare touched nothing: it is the event's failure in
/// either mode.
async fn handle_one<H: Handler>(
    tx: &mut PgConnection,
    ctx: &Ctx<H>,
    event: &Event<'_>,
    (work, prep): (H::Work, anyhow::Result<H::Prepared>),
    careful: bool,
) -> Result<anyhow::Result<()>, Stop> {
    match prep {
        Ok(p) if careful => {
            sqlx::query("SAVEPOINT event").execute(&mut *tx).await?;
            let r = ctx.handler.handle(&mut *tx, event, work, p).await;
            let end = if r.is_ok() { "RELEASE SAVEPOINT event" } else { "ROLLBACK TO SAVEPOINT event" };
            sqlx::query(end).execute(&mut *tx).await?;
            Ok(r)
        }
        Ok(p) => match ctx.handler.handle(tx, event, work, p).await {
            Ok(()) => Ok(Ok(())),
            Err(_) => Err(Stop::Failed(EventFailed.into())),
        },
        Err(e) => Ok(Err(e)),
    }
}

/// Whether the consumer applies an item: one it selects work for, and one that can never apply (it becomes a
/// dead letter in the batch's transaction). One of a kind this build does not know changes nothing here.
fn wants<H: Handler>(handler: &H, it: &Item) -> bool {
    match it.envelope.as_ref().map(Event::read) {
        None | Some(Err(_)) => true,
        Some(Ok(None)) => false,
        Some(Ok(Some(event))) => handler.select(&event).is_some(),
    }
}

/// What a batch's first statement found: the ids new to the inbox, and the cases with a parked event.
struct Opened {
    fresh: HashSet<String>,
    parked: HashSet<String>,
}

/// The batch's first statement, one round trip for three things: renews the lease (which fences the batch, see
/// [`lease::renew`]), records the batch in the inbox (only if the lease was renewed) and reads which of its cases
/// have a parked event. None when another replica holds the partition now.
async fn open_batch<H: Handler>(
    conn: &mut PgConnection,
    ctx: &Ctx<H>,
    part: i32,
    holder: Uuid,
    items: &[&Item],
) -> sqlx::Result<Option<Opened>> {
    let (ids, subjects): (Vec<String>, Vec<String>) = items
        .iter()
        .map(|it| {
            let id = it.envelope.as_ref().map_or_else(|| format!("seq:{}", it.seq), |e| e.event_id.clone());
            (id, it.msg.subject.to_string())
        })
        .unzip();
    let cases: Vec<&str> = items.iter().filter_map(|it| it.envelope.as_ref()).map(|e| e.case_id.as_str()).collect();
    // The inbox insert names the lease's CTE, so it runs after the renewal and only when it renewed.
    let (held, fresh, parked): (bool, Vec<String>, Vec<String>) = sqlx::query_as(concat!(
        "WITH lease AS (",
        lease::renewal!(),
        " RETURNING 1), \
         fresh AS ( \
             INSERT INTO inbox (consumer, message_id, subject) \
             SELECT $1, m, s FROM UNNEST($5::text[], $6::text[]) AS u(m, s) WHERE EXISTS (SELECT 1 FROM lease) \
             ON CONFLICT DO NOTHING RETURNING message_id) \
         SELECT EXISTS (SELECT 1 FROM lease), \
                ARRAY(SELECT message_id FROM fresh), \
                ARRAY(SELECT DISTINCT case_id FROM parked_event WHERE consumer = $1 AND case_id = ANY($7))"
    ))
    .bind(&ctx.name)
    .bind(part)
    .bind(holder)
    .bind(lease::TERM.as_secs_f64())
    .bind(&ids)
    .bind(&subjects)
    .bind(&cases)
    .fetch_one(conn)
    .await?;
    Ok(held.then(|| Opened { fresh: fresh.into_iter().collect(), parked: parked.into_iter().collect() }))
}

/// A consumer span that joins the producer's trace (the relay copied it into the message headers).
fn event_span(consumer: &str, msg: &jetstream::Message) -> tracing::Span {
    let pairs: Vec<(&str, &str)> = msg
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .filter_map(|(k, vs)| vs.first().map(|v| (k.as_ref(), v.as_str())))
        .collect();
    let span = tracing::info_span!("consume", otel.name = %msg.subject, otel.kind = "consumer", consumer);
    crate::telemetry::set_parent(&span, crate::telemetry::context_from(pairs));
    span
}
