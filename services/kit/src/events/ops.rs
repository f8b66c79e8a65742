//! What an operator sees and does: each partition's lag, parked events and dead letters, the outbox backlog;
//! retrying or discarding dead letters; replaying one case's or one period's events to a consumer.
//!
//! A replay parks the chosen events for the consumer (marked as a replay), and the running service's retrier
//! applies them in case order like any parked event: the command needs no handler of its own, a live event of a
//! replayed case waits behind the replay, and handlers are idempotent, so re-applying an event that already
//! took effect changes nothing. Every command that changes something writes an audit record.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use prost::Message as _;
use proto::events::v1::Envelope;
use sqlx::PgPool;

use super::{Bus, PARTITIONS, partition_of};

#[derive(Debug, Clone)]
pub struct PartitionStatus {
    pub part: u32,
    /// Messages of the partition not yet delivered to the consumer.
    pub pending: u64,
    /// Delivered and not yet acknowledged.
    pub ack_pending: usize,
    pub redelivered: usize,
    /// Whether a replica holds the partition's lease now, and whether its JetStream consumer exists yet.
    pub held: bool,
    pub exists: bool,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub consumer: String,
    pub partitions: Vec<PartitionStatus>,
    /// Parked events still to be retried, and dead letters.
    pub parked: i64,
    pub dead: i64,
    pub outbox_backlog: i64,
    /// Seconds since the oldest unpublished outbox row was written (0 when none).
    pub outbox_oldest_secs: f64,
}

impl Status {
    /// Events not yet delivered or not yet acknowledged, over every partition. Saturating: JetStream has reported
    /// a consumer's pending count near `u64::MAX` while a killed service's consumer came back (fault F1,
    /// 2026-12-08), and a plain sum then panicked the caller.
    pub fn lag(&self) -> u64 {
        self.partitions.iter().fold(0u64, |sum, p| sum.saturating_add(p.pending).saturating_add(p.ack_pending as u64))
    }
}

/// The consumer's state across partitions, its parked events and the service's outbox.
pub async fn status(pool: &PgPool, bus: &Bus, consumer: &str) -> anyhow::Result<Status> {
    let stream = bus.jetstream().get_stream(bus.stream_name()).await?;
    let held: Vec<i32> = sqlx::query_scalar("SELECT part FROM event_lease WHERE name = $1 AND until >= now()")
        .bind(consumer)
        .fetch_all(pool)
        .await?;
    let mut partitions = Vec::with_capacity(PARTITIONS as usize);
    for part in 0..PARTITIONS {
        let info = stream.consumer_info(format!("{consumer}-{part:02}")).await.ok();
        partitions.push(PartitionStatus {
            part,
            pending: info.as_ref().map_or(0, |i| i.num_pending),
            ack_pending: info.as_ref().map_or(0, |i| i.num_ack_pending),
            redelivered: info.as_ref().map_or(0, |i| i.num_redelivered),
            held: held.contains(&i32::try_from(part).unwrap_or(-1)),
            exists: info.is_some(),
        });
    }
    let (parked, dead): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE NOT dead), count(*) FILTER (WHERE dead) FROM parked_event WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_one(pool)
    .await?;
    let (outbox_backlog, outbox_oldest_secs): (i64, f64) = sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) FROM outbox \
         WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(Status { consumer: consumer.to_owned(), partitions, parked, dead, outbox_backlog, outbox_oldest_secs })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub event_id: String,
    pub case_id: String,
    pub subject: String,
    pub attempts: i32,
    pub last_error: String,
    pub parked_at: DateTime<Utc>,
}

pub async fn dead_letters(pool: &PgPool, consumer: &str, limit: i64) -> sqlx::Result<Vec<DeadLetter>> {
    sqlx::query_as(
        "SELECT event_id, case_id, subject, attempts, last_error, parked_at FROM parked_event \
         WHERE consumer = $1 AND dead ORDER BY parked_at, stream_seq LIMIT $2",
    )
    .bind(consumer)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Gives dead letters (one, or all with `None`) a fresh set of attempts, due now. Returns how many.
pub async fn retry_dead(pool: &PgPool, consumer: &str, event_id: Option<&str>) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE parked_event SET dead = false, attempts = 0, next_at = now() \
         WHERE consumer = $1 AND dead AND ($2::text IS NULL OR event_id = $2)",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Drops one dead letter for good; the case's next parked event becomes its head. True when it existed.
pub async fn discard_dead(pool: &PgPool, consumer: &str, event_id: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query("DELETE FROM parked_event WHERE consumer = $1 AND event_id = $2 AND dead")
        .bind(consumer)
        .bind(event_id)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

#[derive(Debug, Clone)]
pub enum ReplayScope {
    /// Every event of one case still in the stream.
    Case(String),
    /// Every event published in [from, to).
    Period { from: DateTime<Utc>, to: DateTime<Utc> },
}

/// How far a replay has got: events read from the stream, of how many at most, and queued for the consumer.
#[derive(Debug, Clone, Copy)]
pub struct ReplayProgress {
    pub scanned: u64,
    pub total: u64,
    pub queued: u64,
}

/// Queues the scope's events for the consumer, in stream order; returns their ids. The running service applies
/// them (watch with [`replay_remaining`]).
pub async fn replay(
    pool: &PgPool,
    bus: &Bus,
    consumer: &str,
    scope: &ReplayScope,
    mut progress: impl FnMut(ReplayProgress),
) -> anyhow::Result<Vec<String>> {
    let mut reader = reader(bus, scope).await?;
    let total = reader.info().await?.num_pending;
    let mut done = ReplayProgress { scanned: 0, total, queued: 0 };
    let mut queued = Vec::new();
    if total == 0 {
        progress(done);
        return Ok(queued);
    }
    let mut messages = reader.messages().await?;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let info = msg.info().map_err(|e| anyhow::anyhow!("message without metadata: {e}"))?;
        let last = info.pending == 0;
        let seq = i64::try_from(info.stream_sequence)?;
        let published = info.published.unix_timestamp_nanos();
        done.scanned += 1;
        let in_period = match scope {
            ReplayScope::Period { to, .. } => published < i128::from(to.timestamp_nanos_opt().unwrap_or(i64::MAX)),
            ReplayScope::Case(_) => true,
        };
        if !in_period {
            progress(done);
            break;
        }
        if let Ok(env) = Envelope::decode(msg.payload.as_ref()) {
            let wanted = match scope {
                ReplayScope::Case(id) => &env.case_id == id,
                ReplayScope::Period { .. } => true,
            };
            if wanted {
                queue(pool, consumer, &env, seq, &msg).await?;
                queued.push(env.event_id);
                done.queued += 1;
            }
        }
        if done.scanned.is_multiple_of(500) || last {
            progress(done);
        }
        if last {
            break;
        }
    }
    Ok(queued)
}

/// An ordered reader of the stream over the scope: the case's partition from the start, or every subject from
/// the period's start.
async fn reader(bus: &Bus, scope: &ReplayScope) -> anyhow::Result<jetstream::consumer::Consumer<pull::OrderedConfig>> {
    let stream = bus.jetstream().get_stream(bus.stream_name()).await?;
    let (filter_subject, deliver_policy) = match scope {
        ReplayScope::Case(id) => {
            (format!("{}.*.*.{:02}", bus.prefix(), partition_of(id)), jetstream::consumer::DeliverPolicy::All)
        }
        ReplayScope::Period { from, .. } => {
            let nanos = i128::from(from.timestamp_nanos_opt().unwrap_or(0));
            let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)?;
            (format!("{}.>", bus.prefix()), jetstream::consumer::DeliverPolicy::ByStartTime { start_time })
        }
    };
    Ok(stream.create_consumer(pull::OrderedConfig { filter_subject, deliver_policy, ..Default::default() }).await?)
}

/// Queues one event for the consumer as a parked event due now (once: a second replay finds it queued).
async fn queue(pool: &PgPool, consumer: &str, env: &Envelope, seq: i64, msg: &jetstream::Message) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO parked_event (consumer, event_id, case_id, stream_seq, subject, payload, last_error) \
         VALUES ($1, $2, $3, $4, $5, $6, 'replay') ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(&env.event_id)
    .bind(&env.case_id)
    .bind(seq)
    .bind(msg.subject.as_str())
    .bind(msg.payload.as_ref())
    .execute(pool)
    .await?;
    Ok(())
}

/// Of the replayed events, how many are still parked and how many of those are dead.
pub async fn replay_remaining(pool: &PgPool, consumer: &str, ids: &[String]) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE dead) FROM parked_event WHERE consumer = $1 AND event_id = ANY($2)",
    )
    .bind(consumer)
    .bind(ids)
    .fetch_one(pool)
    .await
}

/// The operator's commands, `<service>` standing for the service's command name.
pub const USAGE: &str = "usage: <service> events status
       <service> events dead [--limit N]
       <service> events retry EVENT_ID | --all
       <service> events discard EVENT_ID
       <service> events replay --case CASE_ID | --from RFC3339 --to RFC3339 [--no-wait]
       <service> events prune
       <service> events setup   (as NATS_USER=ops: apply the stream limits in code)";

/// What the operator's commands need of the service's configuration.
pub struct OpsConfig {
    pub database: crate::db::DbConfig,
    pub nats: crate::nats::NatsConfig,
    pub audit_key: crate::audit::AuditKey,
}

/// `<service> events …`: the operator's commands, run with the service's own configuration (its schema, its
/// bus credentials). Changes are recorded in the service's audit trail as actor `ops:<OPERATOR or USER>`.
pub async fn cli(service: &'static str, config: &OpsConfig, args: &[String]) -> anyhow::Result<()> {
    let pool = crate::db::connect(&config.database).await?;
    let bus = Bus::connect(&config.nats).await?;
    let (trigger, shutdown) = crate::shutdown::channel();
    let (audit, writer) = crate::audit::AuditLog::start(pool.clone(), config.audit_key.clone(), shutdown);
    let writer = tokio::spawn(writer);
    let record = |action: &str, target: String, outcome: String| {
        let entry = operator_entry(action, target, outcome);
        let audit = audit.clone();
        async move { audit.append(entry).await.map_err(|e| anyhow::anyhow!("audit: {e}")) }
    };
    let arg = |i: usize| args.get(i).map(String::as_str);
    let result = match arg(0) {
        Some("status") => print_status(&status(&pool, &bus, service).await?),
        Some("dead") => {
            let limit = match (arg(1), arg(2)) {
                (Some("--limit"), Some(n)) => n.parse()?,
                _ => 100,
            };
            print_dead(&dead_letters(&pool, service, limit).await?)
        }
        Some("retry") => {
            let which = match arg(1) {
                Some("--all") => None,
                Some(id) => Some(id),
                None => anyhow::bail!("{USAGE}"),
            };
            let n = retry_dead(&pool, service, which).await?;
            record("retry", which.unwrap_or("all").to_owned(), format!("ok: {n}")).await?;
            println!("{n} dead letters will be retried now");
            Ok(())
        }
        Some("discard") => {
            let id = arg(1).ok_or_else(|| anyhow::anyhow!("{USAGE}"))?;
            let found = discard_dead(&pool, service, id).await?;
            record("discard", id.to_owned(), if found { "ok".into() } else { "NOT_FOUND".into() }).await?;
            anyhow::ensure!(found, "no dead letter {id} for {service}");
            println!("discarded {id}");
            Ok(())
        }
        Some("replay") => replay_cli(&pool, &bus, service, &args[1..], record).await,
        Some("setup") => {
            bus.apply_stream_config(&config.nats).await?;
            record("setup", bus.stream_name().to_owned(), "ok".into()).await?;
            println!("stream {} has the configured limits", bus.stream_name());
            Ok(())
        }
        Some("prune") => {
            let (outbox, inbox) = super::prune(&pool, bus.settings()).await?;
            println!("pruned {outbox} outbox rows and {inbox} inbox rows");
            Ok(())
        }
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    trigger.fire();
    let _ = writer.await;
    result
}

/// The audit record of an operator's command: actor `ops:<OPERATOR or USER>`, action `events <command>`.
fn operator_entry(action: &str, target: String, outcome: String) -> crate::audit::AuditEntry {
    let operator = crate::env::string_or("OPERATOR", &crate::env::string_or("USER", "unknown"));
    crate::audit::AuditEntry {
        actor: format!("ops:{operator}"),
        role: "operator".into(),
        action: format!("events {action}"),
        target,
        outcome,
        ..Default::default()
    }
}

fn print_status(s: &Status) -> anyhow::Result<()> {
    println!("consumer {}: lag {} events, {} parked, {} dead", s.consumer, s.lag(), s.parked, s.dead);
    println!("outbox: {} unpublished, oldest {:.1} s", s.outbox_backlog, s.outbox_oldest_secs);
    println!("{:>4} {:>10} {:>11} {:>11} {:>5}", "part", "pending", "ack_pending", "redelivered", "held");
    for p in &s.partitions {
        println!("{:>4} {:>10} {:>11} {:>11} {:>5}", p.part, p.pending, p.ack_pending, p.redelivered, p.held);
    }
    Ok(())
}

fn print_dead(dead: &[DeadLetter]) -> anyhow::Result<()> {
    for d in dead {
        println!(
            "{}  case {}  {}  attempts {}  parked {}\n    {}",
            d.event_id,
            d.case_id,
            d.subject,
            d.attempts,
            crate::time::local(d.parked_at),
            d.last_error
        );
    }
    Ok(())
}

async fn replay_cli<F, Fut>(pool: &PgPool, bus: &Bus, service: &str, args: &[String], record: F) -> anyhow::Result<()>
where
    F: Fn(&str, String, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut case = None;
    let (mut from, mut to, mut wait) = (None, None, true);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--case" => case = Some(value()?),
            "--from" => from = Some(DateTime::parse_from_rfc3339(&value()?)?.with_timezone(&Utc)),
            "--to" => to = Some(DateTime::parse_from_rfc3339(&value()?)?.with_timezone(&Utc)),
            "--no-wait" => wait = false,
            other => anyhow::bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let scope = match (case, from, to) {
        (Some(c), None, None) => ReplayScope::Case(c),
        (None, Some(from), Some(to)) if from < to => ReplayScope::Period { from, to },
        _ => anyhow::bail!("{USAGE}"),
    };
    let target = match &scope {
        ReplayScope::Case(c) => format!("case {c}"),
        ReplayScope::Period { from, to } => format!("{} .. {}", from.to_rfc3339(), to.to_rfc3339()),
    };
    let ids = replay(pool, bus, service, &scope, |p| {
        eprintln!("read {:>8} / {:<8} queued {:>8}", p.scanned, p.total, p.queued);
    })
    .await?;
    record("replay", target, format!("ok: {} queued", ids.len())).await?;
    println!("{} events queued for {service}", ids.len());
    if !wait || ids.is_empty() {
        return Ok(());
    }
    // The running service applies them; report until none is left or only dead letters are.
    loop {
        let (left, dead) = replay_remaining(pool, service, &ids).await?;
        eprintln!("applied {:>8} / {}  ({dead} dead)", ids.len() as i64 - left, ids.len());
        if left == dead {
            anyhow::ensure!(dead == 0, "{dead} replayed events are dead letters: see `events dead`");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_saturates_on_a_bogus_pending_count() {
        let part =
            |pending| PartitionStatus { part: 0, pending, ack_pending: 1, redelivered: 0, held: true, exists: true };
        let status = |partitions| Status {
            consumer: "x".into(),
            partitions,
            parked: 0,
            dead: 0,
            outbox_backlog: 0,
            outbox_oldest_secs: 0.0,
        };
        assert_eq!(status(vec![part(2), part(3)]).lag(), 7);
        assert_eq!(status(vec![part(u64::MAX), part(3)]).lag(), u64::MAX);
    }
}
