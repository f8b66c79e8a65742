//! Events: the outbox a service writes in the same transaction as its change, the relay that publishes it to
//! JetStream with the outbox id as message id (JetStream drops a duplicate within its window), and durable
//! consumers that record each handled message in an inbox in the same transaction as their effect, so a
//! redelivered message changes nothing.
//!
//! At scale: subjects carry the case's partition, each consumer reads every partition through its own durable
//! consumer in batches (one commit per batch, a savepoint per event), so one case's events apply in order and
//! different cases in parallel ([`consume`]). An event that fails is parked with its error and retried with
//! backoff; a case with a parked event parks its later events too, so order holds; after the last attempt it is
//! a dead letter an operator lists, retries or discards ([`ops`]). Leases keep one replica on each partition and
//! on the relay.

mod consume;
mod lease;
pub mod ops;
mod outbox;
mod parked;
mod pull;

pub use consume::{BATCH, consume};
pub use outbox::{Outbox, prune};

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use proto::events::v1::Envelope;
use proto::events::v1::envelope::Body;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ids::CaseId;
use crate::nats::NatsConfig;
pub use crate::nats::{PARTITIONS, Settings};

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
        Body::CaseSupervised(_) => "case.supervised",
        Body::CaseJoint(_) => "case.joint",
        Body::CaseMerged(_) => "case.merged",
        Body::CaseUnmerged(_) => "case.unmerged",
        Body::SubsidyCredited(_) => "subsidy.credited",
        Body::CaseEscalated(_) => "case.escalated",
        Body::CaseRecalled(_) => "case.recalled",
    }
}

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

/// The JetStream side: a connection, the suite's stream and its subject prefix, and the backbone's settings.
#[derive(Clone, Debug)]
pub struct Bus {
    js: jetstream::Context,
    prefix: String,
    stream: String,
    settings: Settings,
}

impl Bus {
    /// Connects as the configured user (over TLS when configured) and makes sure the stream for `<prefix>.>`
    /// exists, created with the limits in code. A service may create the stream but not change it (its bus
    /// user has no update right, so no one service can alter what all rely on): when the stream's limits
    /// differ from the code's, it says so, and an operator applies them with `<service> events setup` as `ops`.
    pub async fn connect(cfg: &NatsConfig) -> anyhow::Result<Self> {
        let client = connect_options(cfg)
            .connect(&cfg.url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to NATS at {}: {e}", cfg.url))?;
        let js = jetstream::new(client);
        let settings = cfg.events.clone();
        settings.check()?;
        let wanted = stream_config(cfg, &settings);
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot create JetStream stream {}: {e}", cfg.stream))?;
        if let Ok(info) = stream.info().await {
            let have = &info.config;
            if (have.max_age, have.max_bytes, have.discard) != (wanted.max_age, wanted.max_bytes, wanted.discard) {
                tracing::warn!(stream = %cfg.stream, "the stream's limits differ from the configured ones; run `events setup` as ops");
            }
        }
        Ok(Self { js, prefix: cfg.prefix.clone(), stream: cfg.stream.clone(), settings })
    }

    /// Applies the configured limits to an existing stream (the `ops` user's right).
    pub async fn apply_stream_config(&self, cfg: &NatsConfig) -> anyhow::Result<()> {
        self.js
            .create_or_update_stream(stream_config(cfg, &self.settings))
            .await
            .map_err(|e| anyhow::anyhow!("cannot update JetStream stream {}: {e}", cfg.stream))?;
        Ok(())
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

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// The stream, as code: file storage, the duplicate window the relay's message ids rely on, and limits that
/// refuse rather than drop (`DiscardPolicy::New`).
fn stream_config(cfg: &NatsConfig, settings: &Settings) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{}.>", cfg.prefix)],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        max_age: settings.stream_max_age,
        max_bytes: settings.stream_max_bytes,
        discard: stream::DiscardPolicy::New,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The connection options of a configured user: its credentials and its own inbox prefix (the only subjects
/// the bus lets it subscribe to, see [`crate::bus_access`]), and TLS.
pub fn connect_options(cfg: &NatsConfig) -> async_nats::ConnectOptions {
    let mut opts = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
    if let Some(c) = &cfg.credentials {
        opts = opts
            .user_and_password(c.user.clone(), c.password.expose().clone())
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

/// A case event as a consumer gets it: decoded once, its case id parsed once, its kind known. Events that are
/// not this (undecodable bytes, a case id that is not a UUID) never reach a handler: they are dead letters at
/// once, kept with their bytes for an operator.
pub struct Event<'a> {
    pub case_id: CaseId,
    pub envelope: &'a Envelope,
    pub body: &'a Body,
}

impl<'a> Event<'a> {
    /// The event in `envelope`; `Ok(None)` for one of a kind this build does not know (no body: a newer
    /// producer's), which changes nothing here; `Err` for one that can never apply.
    pub fn read(envelope: &'a Envelope) -> Result<Option<Self>, &'static str> {
        let case_id = Uuid::parse_str(&envelope.case_id).map_err(|_| "the event's case id is not a UUID")?;
        // The producer issued it; parsed once here, typed from here on.
        let case_id = CaseId::from_stored(case_id);
        Ok(envelope.body.as_ref().map(|body| Event { case_id, envelope, body }))
    }

    pub fn id(&self) -> &str {
        &self.envelope.event_id
    }

    /// Who caused it (a person's id, or a service's name).
    pub fn actor(&self) -> &str {
        &self.envelope.actor
    }

    /// When it happened; an envelope without a time counts from now rather than from 1970 (which would, say,
    /// fire a deadline at once).
    pub fn occurred_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self.envelope.occurred_at_ms {
            0 => chrono::Utc::now(),
            ms => crate::time::from_ms(ms),
        }
    }
}

/// What a consumer does with one event.
///
/// `select` is the one place a consumer names every kind of the catalogue (an exhaustive match): it says what,
/// if anything, the event means here, as the consumer's own [`Handler::Work`]; a new kind fails to compile
/// there and nowhere else. An event it selects nothing for is acknowledged without a transaction or an inbox
/// row (applying it any number of times changes nothing, and about half of what each consumer receives is
/// another service's business). `select` is pure and may be called more than once for one event.
///
/// `prepare` runs next, outside any transaction: whatever the effect needs from another service is asked
/// there, so no pooled connection waits on a remote call. `handle` then runs inside the transaction that also
/// records the event in the inbox; an error rolls its effect back and the event is parked for a retry, while
/// other cases flow on. `prepare` may run more than once for one event (a batch applied again, a redelivery),
/// so whatever it writes itself must be harmless to repeat or to leave unused.
pub trait Handler: Send + Sync + 'static {
    type Work: Send + Sync;
    type Prepared: Send;

    fn select(&self, event: &Event<'_>) -> Option<Self::Work>;

    fn prepare<'a>(
        &'a self,
        event: &'a Event<'a>,
        work: &'a Self::Work,
    ) -> impl std::future::Future<Output = anyhow::Result<Self::Prepared>> + Send + 'a;

    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event<'a>,
        work: Self::Work,
        prepared: Self::Prepared,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'a;

    /// Called after a transaction that applied events committed: a handler that wrote to its outbox wakes the
    /// relay here.
    fn committed(&self) {}
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
