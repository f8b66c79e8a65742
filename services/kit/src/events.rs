//! Events: the outbox a service writes in the same transaction as its change, the relay that publishes it to
//! JetStream with the outbox id as message id (JetStream drops a duplicate within its window), and durable
//! consumers that record each handled message in an inbox in the same transaction as their effect, so a
//! redelivered message changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use futures::StreamExt;
use prost::Message as _;
use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::NatsConfig;
use crate::shutdown::Shutdown;

/// The subject of an event body, below the prefix: the event catalogue in one place.
pub fn subject_of(body: &Body) -> &'static str {
    match body {
        Body::CaseRegistered(_) => "case.registered",
        Body::CaseDispatched(_) => "case.dispatched",
        Body::CaseAccepted(_) => "case.accepted",
        Body::CaseReturned(_) => "case.returned",
        Body::ReturnRejected(_) => "case.return_rejected",
        Body::CaseResolved(_) => "case.resolved",
        Body::CaseClosed(_) => "case.closed",
        Body::CaseFollowedUp(_) => "case.followed_up",
        Body::CaseReopened(_) => "case.reopened",
        Body::DeadlineMissed(_) => "case.overdue",
        Body::SubsidyCredited(_) => "subsidy.credited",
    }
}

/// How many partitions the stream's subjects are split into. A case's events all carry its partition as the
/// last subject token, so each consumer reads every partition through its own ordered consumer: one case's
/// events in order, different partitions in parallel. Fixed in code because every producer and consumer of a
/// deployment must agree on it; changing it means draining the stream first.
pub const PARTITIONS: u32 = 16;

/// The partition of a case: FNV-1a over the case id as written in the envelope, so every service (and any
/// other system publishing for us) computes the same one without sharing state.
pub fn partition_of(case_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in case_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTITIONS
}

/// The subject of an event below the prefix: `<kind>.<partition>`, e.g. `case.registered.07`.
pub fn subject_for(body: &Body, case_id: &str) -> String {
    format!("{}.{:02}", subject_of(body), partition_of(case_id))
}

/// The JetStream side: a connection, the suite's stream and its subject prefix.
#[derive(Clone, Debug)]
pub struct Bus {
    js: jetstream::Context,
    prefix: String,
    stream: String,
}

impl Bus {
    /// Connects as the configured user (over TLS when configured) and makes sure the stream for `<prefix>.>`
    /// exists.
    pub async fn connect(cfg: &NatsConfig) -> anyhow::Result<Self> {
        let client = connect_options(cfg)
            .connect(&cfg.url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to NATS at {}: {e}", cfg.url))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![format!("{}.>", cfg.prefix)],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            num_replicas: cfg.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot create JetStream stream {}: {e}", cfg.stream))?;
        Ok(Self { js, prefix: cfg.prefix.clone(), stream: cfg.stream.clone() })
    }

    pub fn subject(&self, name: &str) -> String {
        format!("{}.{}", self.prefix, name)
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }
}

/// The connection options of a configured user: its credentials and its own inbox prefix (the only subjects
/// the bus lets it subscribe to, see [`crate::bus_access`]), and TLS.
pub fn connect_options(cfg: &NatsConfig) -> async_nats::ConnectOptions {
    let mut opts = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
    if let Some(c) = &cfg.credentials {
        opts = opts
            .user_and_password(c.user.clone(), c.password.clone())
            .custom_inbox_prefix(crate::bus_access::inbox_prefix(&c.user));
    }
    if let Some(ca) = &cfg.tls.ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &cfg.tls.client {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    opts.require_tls(cfg.tls.required)
}

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
    pub async fn add(&self, tx: &mut PgConnection, case_id: Uuid, actor: &str, body: Body) -> sqlx::Result<Uuid> {
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

    /// Publishes unpublished rows in order until shutdown. Rows are claimed with SKIP LOCKED so replicas
    /// share the work, marked published only after JetStream acknowledged them; a crash in between
    /// republishes with the same message id, which JetStream drops as a duplicate.
    pub async fn relay(self, pool: PgPool, bus: Bus, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match relay_batch(&pool, &bus).await {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            if shutdown.is_down() {
                // One last pass above published what was committed before shutdown.
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

async fn relay_batch(pool: &PgPool, bus: &Bus) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, String, Vec<u8>, serde_json::Value)> = sqlx::query_as(
        "SELECT id, subject, payload, trace FROM outbox WHERE published_at IS NULL \
         ORDER BY seq LIMIT 128 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for (id, subject, payload, trace) in rows {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.to_string().as_str());
        if let Ok(map) = serde_json::from_value::<HashMap<String, String>>(trace) {
            for (k, v) in map {
                headers.insert(k.as_str(), v.as_str());
            }
        }
        let ack = bus.js.publish_with_headers(bus.subject(&subject), headers, payload.into()).await?;
        acks.push(ack);
        ids.push(id);
    }
    for ack in acks {
        ack.await?;
    }
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::debug!(count = ids.len(), "outbox relayed");
    Ok(ids.len())
}

/// What a consumer does with one event, inside the transaction that also records it in the inbox. An error
/// rolls both back and the message is redelivered later.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'a;

    /// Called after the transaction committed: a handler that wrote to its outbox wakes the relay here.
    fn committed(&self) {}
}

/// Runs a durable pull consumer named after the service over every subject of the stream, handling one
/// message at a time in stream order (max one unacknowledged), until shutdown.
pub async fn consume<H: Handler>(
    name: &str,
    pool: PgPool,
    bus: Bus,
    handler: H,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stream = bus.js.get_stream(&bus.stream).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: format!("{}.>", bus.prefix),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 1,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    loop {
        let msg = tokio::select! {
            () = shutdown.wait() => return Ok(()),
            next = messages.next() => match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(consumer = name, error = %e, "consumer stream error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                None => anyhow::bail!("consumer {name}: message stream ended"),
            },
        };
        // The message in hand is finished even when shutdown begins meanwhile: it is not raced.
        handle_one(name, &pool, &handler, &msg).await;
    }
}

async fn handle_one<H: Handler>(name: &str, pool: &PgPool, handler: &H, msg: &jetstream::Message) {
    let pairs: Vec<(&str, &str)> = msg
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .filter_map(|(k, vs)| vs.first().map(|v| (k.as_ref(), v.as_str())))
        .collect();
    let span = tracing::info_span!("consume", otel.name = %msg.subject, otel.kind = "consumer", consumer = name);
    crate::telemetry::set_parent(&span, crate::telemetry::context_from(pairs));
    async {
        let envelope = match Envelope::decode(msg.payload.as_ref()) {
            Ok(e) => e,
            Err(e) => {
                // A message that can never be read is terminated rather than redelivered forever.
                tracing::error!(subject = %msg.subject, error = %e, "undecodable event; terminated");
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        match apply(name, pool, handler, &msg.subject, &envelope).await {
            Ok(applied) => {
                if !applied {
                    tracing::debug!(event_id = %envelope.event_id, "duplicate event skipped");
                }
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "ack failed; the event will be redelivered and skipped");
                }
            }
            Err(e) => {
                tracing::warn!(event_id = %envelope.event_id, error = %e, "event handling failed; redelivering");
                let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
    .instrument(span)
    .await;
}

/// Records the event in the inbox and applies it, in one transaction. Returns false for a duplicate.
pub async fn apply<H: Handler>(
    name: &str,
    pool: &PgPool,
    handler: &H,
    subject: &str,
    envelope: &Envelope,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let fresh =
        sqlx::query("INSERT INTO inbox (consumer, message_id, subject) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(&envelope.event_id)
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !fresh {
        return Ok(false);
    }
    handler.handle(&mut tx, envelope).await?;
    tx.commit().await?;
    handler.committed();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_keeps_its_partition_everywhere() {
        // A golden value: every deployed producer and consumer computes this, so it must never change.
        assert_eq!(partition_of("6f1c2a3e-0000-4000-8000-000000000001"), 11);
        assert_eq!(
            subject_for(&Body::CaseClosed(Default::default()), "6f1c2a3e-0000-4000-8000-000000000001"),
            "case.closed.11"
        );
        assert_eq!(partition_of(""), 0x811c_9dc5 % PARTITIONS);
        let spread: std::collections::HashSet<u32> =
            (0..1000).map(|_| partition_of(&Uuid::new_v4().to_string())).collect();
        assert_eq!(spread.len(), PARTITIONS as usize, "1,000 random cases reach every partition");
    }
}
