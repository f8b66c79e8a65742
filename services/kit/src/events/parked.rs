//! Parking and the retrier. The consumer parks an event it cannot apply now (with its error, or behind an
//! earlier parked event of its case); the retrier applies parked events case by case, each case's in stream
//! order, with backoff; after the last attempt an event is a dead letter and its case waits here for an
//! operator (`ops`).

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use proto::events::v1::Envelope;
use sqlx::PgConnection;
use tracing::Instrument;

use super::consume::{Ctx, Item};
use super::{Event, Handler};
use crate::shutdown::Shutdown;

/// Applies due parked events, each case's in stream order, until shutdown.
pub(super) async fn retrier<H: Handler>(ctx: Arc<Ctx<H>>, mut shutdown: Shutdown) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Err(e) = retry_due(&ctx).await {
            tracing::warn!(consumer = %ctx.name, error = %e, "retrying parked events failed; next round");
        }
    }
}

async fn retry_due<H: Handler>(ctx: &Ctx<H>) -> anyhow::Result<()> {
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT case_id FROM (SELECT DISTINCT ON (case_id) case_id, dead, next_at FROM parked_event \
         WHERE consumer = $1 ORDER BY case_id, stream_seq) head WHERE NOT dead AND next_at <= now() LIMIT 512",
    )
    .bind(&ctx.name)
    .fetch_all(&ctx.pool)
    .await?;
    for case_id in due {
        apply_parked_case(ctx, &case_id).await?;
    }
    Ok(())
}

struct Head {
    event_id: String,
    payload: Vec<u8>,
    attempts: i32,
    dead: bool,
    due: bool,
}

async fn head(conn: &mut PgConnection, consumer: &str, case_id: &str) -> sqlx::Result<Option<Head>> {
    let row: Option<(String, Vec<u8>, i32, bool, bool)> = sqlx::query_as(
        "SELECT event_id, payload, attempts, dead, next_at <= now() FROM parked_event \
         WHERE consumer = $1 AND case_id = $2 ORDER BY stream_seq LIMIT 1",
    )
    .bind(consumer)
    .bind(case_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(event_id, payload, attempts, dead, due)| Head { event_id, payload, attempts, dead, due }))
}

/// Applies the case's head event while it is due and succeeds; a failure counts an attempt, sets the next
/// retry, and after the last attempt leaves a dead letter that stops the case here until an operator acts.
async fn apply_parked_case<H: Handler>(ctx: &Ctx<H>, case_id: &str) -> anyhow::Result<()> {
    loop {
        let Some(first) = head(&mut *ctx.pool.acquire().await?, &ctx.name, case_id).await? else { return Ok(()) };
        if first.dead || !first.due {
            return Ok(());
        }
        let envelope = Envelope::decode(first.payload.as_slice());
        let event = match &envelope {
            Ok(env) => Event::read(env).map_err(|why| anyhow::anyhow!(why)),
            Err(e) => Err(anyhow::anyhow!("undecodable event: {e}")),
        };
        let selected = match event {
            Ok(Some(event)) => match ctx.handler.select(&event) {
                Some(work) => {
                    let p = ctx.handler.prepare(&event, &work).await;
                    Ok(Some((event, work, p)))
                }
                None => Ok(None),
            },
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let mut tx = ctx.pool.begin().await?;
        if !lock_case(&mut tx, &ctx.name, case_id).await? {
            return Ok(());
        }
        match head(&mut tx, &ctx.name, case_id).await? {
            Some(h) if h.event_id == first.event_id && !h.dead => {}
            _ => continue,
        }
        let outcome = match selected {
            Ok(Some((event, work, Ok(p)))) => {
                let span = tracing::info_span!("consume parked", consumer = %ctx.name, event_id = %event.id());
                ctx.handler.handle(&mut tx, &event, work, p).instrument(span).await
            }
            Ok(Some((_, _, Err(e)))) | Err(e) => Err(e),
            // Nothing this consumer applies (an operator queued it, or its kind is unknown here): done.
            Ok(None) => Ok(()),
        };
        match outcome {
            Ok(()) => {
                sqlx::query("DELETE FROM parked_event WHERE consumer = $1 AND event_id = $2")
                    .bind(&ctx.name)
                    .bind(&first.event_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                ctx.handler.committed();
                tracing::info!(consumer = %ctx.name, event_id = %first.event_id, "parked event applied");
            }
            Err(e) => {
                tx.rollback().await?;
                return failed_again(ctx, case_id, &first, &e).await;
            }
        }
    }
}

/// Takes the consumer's retry lock on the case for the transaction, so two replicas' retriers never work one
/// case at once; false when another holds it.
async fn lock_case(tx: &mut PgConnection, consumer: &str, case_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("parked/{consumer}/{case_id}"))
        .fetch_one(tx)
        .await
}

/// Counts a failed attempt at the case's head event and sets its next retry; after the last attempt it is a
/// dead letter, and its case waits for an operator.
async fn failed_again<H: Handler>(ctx: &Ctx<H>, case_id: &str, first: &Head, e: &anyhow::Error) -> anyhow::Result<()> {
    let attempts = first.attempts.saturating_add(1);
    let dead = attempts >= ctx.bus.settings.max_attempts;
    sqlx::query(
        "UPDATE parked_event SET attempts = $3, next_at = now() + make_interval(secs => $4), \
         last_error = $5, dead = $6 WHERE consumer = $1 AND event_id = $2",
    )
    .bind(&ctx.name)
    .bind(&first.event_id)
    .bind(attempts)
    .bind(ctx.bus.settings.backoff(attempts).as_secs_f64())
    .bind(truncate(&format!("{e:#}")))
    .bind(dead)
    .execute(&ctx.pool)
    .await?;
    if dead {
        crate::metrics::consumer(&ctx.name, format!("{:02}", super::partition_of(case_id))).dead_lettered.inc();
        tracing::error!(consumer = %ctx.name, event_id = %first.event_id, attempts, error = %e,
            "event is a dead letter; its case waits for an operator");
    } else {
        tracing::warn!(consumer = %ctx.name, event_id = %first.event_id, attempts, error = %e,
            "parked event failed again");
    }
    Ok(())
}

/// The longest error text kept with a parked event.
const ERROR_CHARS: usize = 2_000;

/// How the consumer parks an event it cannot apply now.
#[derive(Clone, Copy)]
pub(super) enum Parking {
    /// Behind an earlier parked event of its case; applied when it becomes the head.
    Behind,
    /// It failed once; retried after the first backoff, or dead if one attempt is all there is.
    Failed,
    /// It can never apply (undecodable): dead at once.
    Dead,
}

pub(super) async fn park(
    conn: &mut PgConnection,
    settings: &super::Settings,
    consumer: &str,
    it: &Item,
    (event_id, case_id): (&str, &str),
    how: Parking,
    error: &str,
) -> sqlx::Result<()> {
    let (attempts, dead, delay) = match how {
        Parking::Behind => (0, false, 0.0),
        Parking::Failed => (1, settings.max_attempts <= 1, settings.backoff(1).as_secs_f64()),
        Parking::Dead => (1, true, 0.0),
    };
    sqlx::query(
        "INSERT INTO parked_event (consumer, event_id, case_id, stream_seq, subject, payload, attempts, next_at, \
         last_error, dead) VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $9, $10) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(case_id)
    .bind(it.seq)
    .bind(it.msg.subject.as_str())
    .bind(it.msg.payload.as_ref())
    .bind(attempts)
    .bind(delay)
    .bind(truncate(error))
    .bind(dead)
    .execute(conn)
    .await?;
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(ERROR_CHARS).collect()
}
