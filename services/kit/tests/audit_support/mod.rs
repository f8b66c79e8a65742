//! What the audit tests share: a migrated schema with a running writer, and the superuser's ways around the
//! triggers that the chain must catch.

#![allow(clippy::unwrap_used, dead_code)]

use chrono::{DateTime, Utc};
use kit::audit::{AuditEntry, AuditKey, AuditLog, GENESIS};
use kit::shutdown::Trigger;
use kit::testing::TestInfra;
use sqlx::migrate::Migrator;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::JoinHandle;

/// A service with no tables of its own: the audit tables come with kit's migrations.
static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

const SCHEMA: &str = "svc";

pub struct Harness {
    pub infra: TestInfra,
    pub pool: PgPool,
    pub key: AuditKey,
    pub log: AuditLog,
    _stop: Trigger,
}

impl Harness {
    pub async fn new() -> Self {
        kit::testing::init_tracing();
        let infra = TestInfra::new().await;
        let db = infra.db(SCHEMA);
        Self::with(infra, db).await
    }

    /// The schema migrated by its owner and the writer run as a runtime role of its own, as a deployment
    /// with DATABASE_MIGRATION_URL runs it.
    pub async fn runtime_role() -> Self {
        kit::testing::init_tracing();
        let infra = TestInfra::new().await;
        let mut db = kit::config::DbConfig::new(infra.runtime_role().await, SCHEMA, 5);
        db.migration_url = Some(kit::config::Secret::new(infra.db_url.clone()));
        Self::with(infra, db).await
    }

    async fn with(infra: TestInfra, db: kit::config::DbConfig) -> Self {
        let pool = kit::db::connect_and_migrate(&db, &NO_MIGRATIONS).await.unwrap();
        let key = AuditKey::new([42; 32]);
        let (stop, shutdown) = kit::shutdown::channel();
        let (log, task) = AuditLog::start(pool.clone(), key.clone(), shutdown);
        tokio::spawn(task);
        Self { infra, pool, key, log, _stop: stop }
    }

    /// Another writer on its own pool, as a second replica of the service would run one.
    pub async fn writer(&self) -> (AuditLog, Trigger, JoinHandle<anyhow::Result<()>>) {
        let (stop, shutdown) = kit::shutdown::channel();
        let (log, task) = AuditLog::start(self.infra.pool(SCHEMA).await, self.key.clone(), shutdown);
        (log, stop, tokio::spawn(task))
    }

    pub async fn append_n(&self, n: usize) {
        for i in 0..n {
            self.log.append(entry(&format!("user-{i}"), if i % 3 == 2 { "denied" } else { "ok" })).await.unwrap();
        }
    }

    /// Moves records back in time and re-chains everything with the key: a record that really is that old,
    /// for testing the retention purge.
    pub async fn backdate(&self, seqs: &[i64], days: i32) {
        let mut tx = superuser_tx(&self.pool).await;
        sqlx::query("UPDATE audit_log SET at = at - make_interval(days => $2) WHERE seq = ANY($1)")
            .bind(seqs)
            .bind(days)
            .execute(&mut *tx)
            .await
            .unwrap();
        let rows: Vec<Row> = sqlx::query_as("SELECT * FROM audit_log ORDER BY seq").fetch_all(&mut *tx).await.unwrap();
        let mut prev = GENESIS.to_vec();
        for row in rows {
            let hash = self.key.record_hash(&prev, row.seq, row.at, &row.entry).to_vec();
            sqlx::query("UPDATE audit_log SET prev_hash = $2, hash = $3 WHERE seq = $1")
                .bind(row.seq)
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_head SET hash = $1").bind(&hash).execute(&mut *tx).await.unwrap();
            prev = hash;
        }
        tx.commit().await.unwrap();
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: DateTime<Utc>,
    #[sqlx(flatten)]
    entry: AuditEntry,
}

/// A transaction in which triggers do not fire, as a superuser can have it: what the chain is for.
pub async fn superuser_tx(pool: &PgPool) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    tx
}

pub fn entry(actor: &str, outcome: &str) -> AuditEntry {
    AuditEntry {
        actor: actor.to_owned(),
        role: "center_operator".into(),
        scope: "532901000000".into(),
        action: "/zongzhi.intake.v1.Intake/GetCase".into(),
        target: "case:6f1c2a".into(),
        outcome: outcome.to_owned(),
        reason: if outcome == "ok" { String::new() } else { "outside the grant's scope".into() },
        client_addr: "127.0.0.1:50000".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        detail: r#"{"field":"phone","purpose":"回访"}"#.into(),
    }
}
