//! The gateway's own audit trail: the calls it refuses itself.
//!
//! A call the gateway forwards is recorded by the service that answers it. A call it refuses (no token or a bad
//! one, a role that gives no such method, a client over its limits) reaches no service, so the gateway records
//! it in a chain of its own: the kit's audit tables in schema `gateway` (DATABASE_SCHEMA), chained with the
//! gateway's own AUDIT_KEY, and listed, verified and anchored like a service's (`Audit/ListRecords` and
//! `VerifyChain` on the gateway's gRPC port, `audit_verify --schema gateway`, the `audit-anchor` CronJob).
//! The gRPC face's token refusals are recorded by the auth layer ([`kit::auth::layer::Guard::forwards`]); the
//! JSON face's, and both faces' limits, by the Desk ([`Trail::refused`]).
//!
//! Every record is kept for 180 days, so each client address gets
//! [`kit::auth::layer::REFUSALS_BURST`] records of the Desk's refusals at once, then
//! [`kit::auth::layer::REFUSALS_PER_MINUTE`] a minute: past that its refusals are answered the same but only
//! counted (`zongzhi_refusals_unrecorded_total`), so a flood of garbage cannot grow the trail without bound.

use std::net::IpAddr;

use kit::audit::{AuditEntry, AuditKey, AuditLog};
use kit::auth::layer::{REFUSALS_BURST, REFUSALS_PER_MINUTE};
use kit::config::DbConfig;
use kit::throttle::Throttle;
use tonic::Status;

/// Where the trail is kept and the key that chains it.
#[derive(Debug, Clone)]
pub struct TrailSettings {
    pub database: DbConfig,
    pub key: AuditKey,
}

/// The gateway keeps no tables of its own: the kit's audit tables (and its event tables, unused) are all.
static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

/// The writer of the gateway's chain, and each address's budget of records.
#[derive(Debug)]
pub struct Trail {
    log: AuditLog,
    budget: Throttle<IpAddr>,
}

/// What [`Trail::start`] gives the gateway: the trail for the Desk, and the writer, pool and key for the
/// server's auth layer and audit service.
pub struct Started {
    pub trail: Trail,
    pub guard_audit: (AuditLog, AuditKey, sqlx::PgPool),
}

impl Trail {
    /// Migrates the gateway's schema and starts its audit writer on `app`.
    pub async fn start(settings: &TrailSettings, app: &mut kit::app::Running) -> anyhow::Result<Started> {
        let pool = kit::db::connect_and_migrate(&settings.database, &NO_MIGRATIONS).await?;
        let (log, writer) = AuditLog::start(pool.clone(), settings.key.clone(), app.shutdown());
        app.spawn("audit", writer);
        let trail = Trail { log: log.clone(), budget: Throttle::new(REFUSALS_BURST, REFUSALS_PER_MINUTE) };
        Ok(Started { trail, guard_audit: (log, settings.key.clone(), pool) })
    }

    /// Records the refusal of the call `entry` describes, unless `client` has spent its budget. The call is
    /// refused either way: a record that cannot be written is logged, not answered.
    pub async fn refused(&self, mut entry: AuditEntry, client: Option<IpAddr>, status: &Status) {
        if let Some(ip) = client
            && self.budget.take(&ip).is_err()
        {
            kit::metrics::counter("zongzhi_refusals_unrecorded_total", &[]).inc();
            return;
        }
        entry.outcome = kit::grpc::code_name(status.code()).into();
        entry.reason = status.message().to_owned();
        if let Err(err) = self.log.append(entry).await {
            tracing::error!(error = %err, "audit record of a refused call not written");
        }
    }
}
