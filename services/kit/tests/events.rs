//! The event backbone against real PostgreSQL and NATS, with a test handler that records what it applied:
//! per-case order across parallel partitions and two replicas, poison events parked and dead-lettered while
//! other cases flow, dead letters retried and discarded, a case replayed, undecodable messages, pruning, and
//! events a handler cannot apply acknowledged without a trace.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kit::events::{Bus, Event, Handler, ops};
use kit::testing::{TestInfra, eventually};
use proto::events::v1::envelope::Body;
use proto::events::v1::{CaseAccepted, Envelope};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The consumer's name: one of the services', since the bus lets each user use only its own consumers.
const NAME: &str = "routing";

/// Records each event as (case, n) with the order applied; fails on `poison`, and on `flaky` while `broken`.
#[derive(Clone)]
struct Recorder {
    broken: Arc<AtomicBool>,
}

impl Handler for Recorder {
    /// The acceptance's task id (its number) and handler.
    type Work = (String, String);
    type Prepared = ();

    /// An acceptance by `elsewhere` is another service's business here; so is every other kind.
    fn select(&self, event: &Event<'_>) -> Option<(String, String)> {
        match event.body {
            Body::CaseAccepted(a) if a.handler_id != "elsewhere" => Some((a.task_id.clone(), a.handler_id.clone())),
            Body::CaseAccepted(_)
            | Body::CaseRegistered(_)
            | Body::CaseDispatched(_)
            | Body::CaseReturned(_)
            | Body::ReturnRejected(_)
            | Body::CaseResolved(_)
            | Body::CaseClosed(_)
            | Body::CaseFollowedUp(_)
            | Body::CaseReopened(_)
            | Body::DeadlineMissed(_)
            | Body::CaseSupervised(_)
            | Body::CaseJoint(_)
            | Body::CaseMerged(_)
            | Body::CaseUnmerged(_)
            | Body::SubsidyCredited(_)
            | Body::CaseEscalated(_)
            | Body::CaseRecalled(_) => None,
        }
    }

    async fn prepare(&self, _event: &Event<'_>, _work: &(String, String)) -> anyhow::Result<()> {
        Ok(())
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: &Event<'_>,
        (task_id, handler_id): (String, String),
        (): (),
    ) -> anyhow::Result<()> {
        assert_ne!(handler_id, "elsewhere", "an event the handler cannot apply is never handed to it");
        let case_id = event.case_id.to_string();
        if handler_id == "poison" || (handler_id == "flaky" && self.broken.load(Ordering::SeqCst)) {
            // A write before the failure, which the savepoint must undo.
            sqlx::query("INSERT INTO applied (case_id, n) VALUES ($1, -1)").bind(&case_id).execute(&mut *conn).await?;
            anyhow::bail!("cannot apply {handler_id}");
        }
        let n: i32 = task_id.parse()?;
        sqlx::query("INSERT INTO applied (case_id, n) VALUES ($1, $2)").bind(&case_id).bind(n).execute(conn).await?;
        Ok(())
    }
}

struct Node {
    stop: kit::shutdown::Trigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Node {
    async fn stop(self) {
        self.stop.fire();
        self.task.await.unwrap().unwrap();
    }
}

async fn setup(infra: &TestInfra) -> (PgPool, Bus) {
    let pool = kit::db::connect_and_migrate(&infra.db(NAME), &sqlx::migrate::Migrator::DEFAULT).await.unwrap();
    sqlx::query("CREATE TABLE applied (id BIGSERIAL PRIMARY KEY, case_id TEXT NOT NULL, n INT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let bus = Bus::connect(&infra.nats).await.unwrap();
    (pool, bus)
}

fn start(pool: &PgPool, bus: &Bus, handler: Recorder) -> Node {
    let (stop, shutdown) = kit::shutdown::channel();
    let task = tokio::spawn(kit::events::consume(NAME, pool.clone(), bus.clone(), handler, shutdown));
    Node { stop, task }
}

fn event(n: usize, handler_id: &str) -> Body {
    Body::CaseAccepted(CaseAccepted { task_id: n.to_string(), handler_id: handler_id.into() })
}

/// Each case's numbers in the order they were applied.
async fn applied(pool: &PgPool, case_id: &Uuid) -> Vec<i32> {
    sqlx::query_scalar("SELECT n FROM applied WHERE case_id = $1 ORDER BY id")
        .bind(case_id.to_string())
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn total(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM applied").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn each_case_applies_in_order_while_two_replicas_share_the_partitions() {
    let infra = TestInfra::new().await;
    let (pool, bus) = setup(&infra).await;
    let cases: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let publish = |from: usize, to: usize| {
        let (infra, cases) = (&infra, &cases);
        async move {
            for n in from..to {
                for c in cases {
                    infra.publish(*c, "test", event(n, "h")).await;
                }
            }
        }
    };
    publish(0, 5).await;
    let recorder = Recorder { broken: Arc::default() };
    let a = start(&pool, &bus, recorder.clone());
    let b = start(&pool, &bus, recorder.clone());
    publish(5, 10).await;
    eventually("every event applied", 60, || async { (total(&pool).await == 400).then_some(()) }).await;
    for c in &cases {
        assert_eq!(applied(&pool, c).await, (0..10).collect::<Vec<i32>>(), "case {c}: once each, in order");
    }
    // The leases split nothing twice: every partition has one holder.
    let holders: i64 = sqlx::query_scalar("SELECT count(*) FROM event_lease WHERE name = $1")
        .bind(NAME)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(holders, i64::from(kit::events::PARTITIONS));
    a.stop().await;
    // The stopped replica gave its partitions up: the other takes them over and goes on in order.
    publish(10, 12).await;
    eventually("the survivor applies the rest", 60, || async { (total(&pool).await == 480).then_some(()) }).await;
    for c in &cases {
        assert_eq!(applied(&pool, c).await, (0..12).collect::<Vec<i32>>(), "case {c} after the handover");
    }
    b.stop().await;
}

#[tokio::test]
async fn a_poison_event_parks_its_case_becomes_a_dead_letter_and_the_rest_flows() {
    let infra = TestInfra::new().await;
    let (pool, bus) = setup(&infra).await;
    let node = start(&pool, &bus, Recorder { broken: Arc::default() });
    let (sick, well) = (Uuid::new_v4(), (0..20).map(|_| Uuid::new_v4()).collect::<Vec<_>>());
    infra.publish(sick, "test", event(0, "h")).await;
    let poison = infra.publish(sick, "test", event(1, "poison")).await;
    infra.publish(sick, "test", event(2, "h")).await;
    for c in &well {
        for n in 0..3 {
            infra.publish(*c, "test", event(n, "h")).await;
        }
    }
    eventually("the healthy cases applied", 30, || async { (total(&pool).await == 61).then_some(()) }).await;
    assert_eq!(applied(&pool, &sick).await, [0], "the poison's write was undone, and its case stops behind it");

    let dead = eventually("the poison is a dead letter", 30, || async {
        let d = ops::dead_letters(&pool, NAME, 10).await.unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].event_id.as_str(), dead[0].case_id.as_str()), (poison.as_str(), sick.to_string().as_str()));
    assert_eq!(dead[0].attempts, bus.settings().max_attempts, "every attempt was used");
    assert!(dead[0].last_error.contains("cannot apply poison"), "{}", dead[0].last_error);
    let status = ops::status(&pool, &bus, NAME).await.unwrap();
    assert_eq!((status.dead, status.parked), (1, 1), "the dead letter, and the event waiting behind it");
    assert_eq!(status.lag(), 0, "nothing is stuck on the stream: the partition flows on");

    // Discarding the dead letter lets the case go on, in order.
    assert!(ops::discard_dead(&pool, NAME, &poison).await.unwrap());
    eventually("the waiting event applied", 30, || async { (applied(&pool, &sick).await == [0, 2]).then_some(()) })
        .await;
    assert_eq!(ops::status(&pool, &bus, NAME).await.unwrap().parked, 0);
    node.stop().await;
}

#[tokio::test]
async fn an_event_the_handler_cannot_apply_is_acknowledged_with_no_inbox_row() {
    let infra = TestInfra::new().await;
    let (pool, bus) = setup(&infra).await;
    let node = start(&pool, &bus, Recorder { broken: Arc::default() });
    let case = Uuid::new_v4();
    let mut ignored = Vec::new();
    for n in 0..6 {
        let by = if n % 2 == 1 { "elsewhere" } else { "h" };
        let id = infra.publish(case, "test", event(n, by)).await;
        if n % 2 == 1 {
            ignored.push(id);
        }
    }
    eventually("the applicable events applied", 30, || async {
        (applied(&pool, &case).await == [0, 2, 4]).then_some(())
    })
    .await;
    eventually("the stream drained", 30, || async {
        (ops::status(&pool, &bus, NAME).await.ok()?.lag() == 0).then_some(())
    })
    .await;
    let recorded: Vec<String> = sqlx::query_scalar("SELECT message_id FROM inbox").fetch_all(&pool).await.unwrap();
    assert_eq!(recorded.len(), 3, "one inbox row per applied event: {recorded:?}");
    assert!(ignored.iter().all(|id| !recorded.contains(id)), "no inbox row for an event that changes nothing");
    node.stop().await;
}

#[tokio::test]
async fn a_dead_letter_retried_after_the_fault_is_fixed_applies_in_order() {
    let infra = TestInfra::new().await;
    let (pool, bus) = setup(&infra).await;
    let broken = Arc::new(AtomicBool::new(true));
    let node = start(&pool, &bus, Recorder { broken: broken.clone() });
    let case = Uuid::new_v4();
    let flaky = infra.publish(case, "test", event(0, "flaky")).await;
    infra.publish(case, "test", event(1, "h")).await;
    eventually("a dead letter", 30, || async {
        (ops::dead_letters(&pool, NAME, 10).await.unwrap().len() == 1).then_some(())
    })
    .await;
    assert!(applied(&pool, &case).await.is_empty(), "nothing of the case applied out of order");
    broken.store(false, Ordering::SeqCst);
    assert_eq!(ops::retry_dead(&pool, NAME, Some(&flaky)).await.unwrap(), 1);
    eventually("the case applied", 30, || async { (applied(&pool, &case).await == [0, 1]).then_some(()) }).await;
    node.stop().await;
}

#[tokio::test]
async fn a_replay_reapplies_one_case_and_an_undecodable_message_is_a_dead_letter() {
    let infra = TestInfra::new().await;
    let (pool, bus) = setup(&infra).await;
    let node = start(&pool, &bus, Recorder { broken: Arc::default() });
    let (case, other) = (Uuid::new_v4(), Uuid::new_v4());
    for n in 0..3 {
        infra.publish(case, "test", event(n, "h")).await;
        infra.publish(other, "test", event(n, "h")).await;
    }
    // Garbage on a partition subject: nothing can read it, so it is dead at once with its raw bytes.
    bus.jetstream().publish(bus.subject("case.accepted.03"), "not protobuf \u{0}".into()).await.unwrap().await.unwrap();
    // A well-formed event whose case id is not a UUID: no handler is given it, and it is dead at once too.
    let nameless = Envelope {
        event_id: Uuid::new_v4().to_string(),
        case_id: "not-a-case".into(),
        body: Some(event(0, "h")),
        ..Default::default()
    };
    let payload = prost::Message::encode_to_vec(&nameless);
    bus.jetstream().publish(bus.subject("case.accepted.05"), payload.into()).await.unwrap().await.unwrap();
    eventually("all applied", 30, || async { (total(&pool).await == 6).then_some(()) }).await;
    let mut dead = eventually("the garbage and the nameless event are dead letters", 30, || async {
        let d = ops::dead_letters(&pool, NAME, 10).await.unwrap();
        (d.len() == 2).then_some(d)
    })
    .await;
    dead.sort_by(|a, b| a.last_error.cmp(&b.last_error));
    assert_eq!(
        (dead[0].last_error.as_str(), dead[1].last_error.as_str()),
        ("the event's case id is not a UUID", "undecodable event")
    );
    assert_eq!(dead[0].case_id, "not-a-case");

    // The projection of one case is lost; a replay rebuilds it, in order, and leaves the other alone.
    sqlx::query("DELETE FROM applied WHERE case_id = $1").bind(case.to_string()).execute(&pool).await.unwrap();
    let mut seen = Vec::new();
    let ids =
        ops::replay(&pool, &bus, NAME, &ops::ReplayScope::Case(case.to_string()), |p| seen.push(p)).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(seen.last().is_some_and(|p| p.queued == 3), "progress was reported");
    eventually("the case rebuilt", 30, || async { (applied(&pool, &case).await == [0, 1, 2]).then_some(()) }).await;
    assert_eq!(applied(&pool, &other).await, [0, 1, 2]);
    assert_eq!(ops::replay_remaining(&pool, NAME, &ids).await.unwrap(), (0, 0));
    node.stop().await;
}

#[tokio::test]
async fn retention_prunes_published_outbox_rows_and_old_inbox_rows_only() {
    let infra = TestInfra::new().await;
    let (pool, bus) = setup(&infra).await;
    sqlx::query(
        "INSERT INTO outbox (id, subject, payload, created_at, published_at) VALUES \
         (gen_random_uuid(), 'old published', '', now() - interval '10 days', now() - interval '10 days'), \
         (gen_random_uuid(), 'old unpublished', '', now() - interval '10 days', NULL), \
         (gen_random_uuid(), 'new published', '', now(), now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO inbox (consumer, message_id, subject, handled_at) VALUES \
         ('c', 'old', 's', now() - interval '30 days'), ('c', 'new', 's', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(kit::events::prune(&pool, bus.settings()).await.unwrap(), (1, 1));
    let left: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM outbox ORDER BY subject").fetch_all(&pool).await.unwrap();
    assert_eq!(left, ["new published", "old unpublished"], "an unpublished row is never pruned");
    let inbox: Vec<String> = sqlx::query_scalar("SELECT message_id FROM inbox").fetch_all(&pool).await.unwrap();
    assert_eq!(inbox, ["new"]);
    let mut too_short = bus.settings().clone();
    too_short.inbox_keep = std::time::Duration::from_secs(3600);
    assert!(too_short.check().is_err(), "an inbox that forgets sooner than the stream is refused");
}
