//! The deadline scheduler: fires due deadlines from PostgreSQL, not from in-memory timers, so a restart
//! across a deadline fires it exactly once and replicas share the work.

use std::time::Duration;

use kit::events::Outbox;
use kit::shutdown::Shutdown;
use proto::events::v1::{DeadlineMissed, envelope::Body};
use sqlx::PgPool;

use crate::db;

/// Deadlines fired per transaction; a larger backlog is worked off in several.
const BATCH: i64 = 100;

/// Polls every `every` until shutdown. A failed pass is logged and retried on the next tick.
pub async fn run(pool: PgPool, outbox: Outbox, every: Duration, mut shutdown: Shutdown) -> anyhow::Result<()> {
    loop {
        loop {
            match fire_due(&pool, &outbox).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "firing deadlines failed; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// In one transaction: claims the due pending deadlines, marks them fired and writes `case.overdue` for each.
pub async fn fire_due(pool: &PgPool, outbox: &Outbox) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let fired = db::fire_due(&mut tx, BATCH).await?;
    for d in &fired {
        let event = DeadlineMissed {
            deadline_id: d.id.to_string(),
            task_id: d.task_id.clone(),
            stage: d.stage.as_str().into(),
            due_ms: d.due_at.timestamp_millis(),
        };
        outbox.add(&mut tx, d.case_id, crate::NAME, Body::DeadlineMissed(event)).await?;
    }
    tx.commit().await?;
    if !fired.is_empty() {
        outbox.wake();
        for d in &fired {
            tracing::info!(case_id = %d.case_id, deadline_id = %d.id, stage = %d.stage, "deadline missed");
        }
    }
    kit::metrics::counter("zongzhi_deadlines_fired_total", &[]).inc_by(fired.len() as u64);
    Ok(fired.len())
}

/// Reports, at each scrape, the pending deadlines already past due: more than a poll's worth means the
/// scheduler is stalled or behind.
pub fn due_collector(pool: PgPool) -> kit::metrics::Collector {
    kit::metrics::collector(move || {
        let pool = pool.clone();
        async move {
            let due = db::count_due(&mut *pool.acquire().await?).await?;
            Ok(vec![kit::metrics::Sample::new("zongzhi_deadlines_due", &[], due as f64)])
        }
    })
}
