//! The deadline scheduler: issues graded supervision (督办) from PostgreSQL, not from in-memory timers, so a
//! restart across a due time issues each grade exactly once and replicas share the work. Each deadline walks
//! reminder (临期提醒) → yellow (黄牌, the deadline missed: `case.overdue`) → red (红牌); each grade is a
//! numbered 《督办提示单》 to the unit, until the stage is done, stopped or the red card is out.

use std::time::Duration;

use kit::events::Outbox;
use kit::shutdown::Shutdown;
use proto::events::v1::{CaseSupervised, DeadlineMissed, envelope::Body};
use sqlx::{PgConnection, PgPool};

use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use crate::db::{self, DueGrade};
use crate::domain::policy::Grade;
use crate::domain::{DeadlineState, SlipRecord};
use crate::slip;

/// Deadlines fired per transaction; a larger backlog is worked off in several.
const BATCH: i64 = 100;

/// Polls every `every` until shutdown. A failed pass is logged and retried on the next tick. `sealer` keys
/// the slips' verification codes.
pub async fn run(
    pool: PgPool,
    outbox: Outbox,
    sealer: kit::pii::Sealer,
    every: Duration,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    loop {
        loop {
            match issue_due(&pool, &outbox, &sealer).await {
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

/// In one transaction: claims the deadlines whose next grade is due, issues each grade's slip (once: the slip's
/// unique key), moves each deadline on to its next grade, and writes `case.overdue` for each yellow card.
/// Returns how many deadlines were claimed.
pub async fn issue_due(pool: &PgPool, outbox: &Outbox, sealer: &kit::pii::Sealer) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let due = db::claim_due_grades(&mut tx, BATCH).await?;
    let now = Utc::now();
    let mut missed = Vec::new();
    for d in &due {
        let next = match d.grade {
            Grade::Reminder => Some((Grade::Yellow, d.due_at)),
            Grade::Yellow => d.red_at.map(|at| (Grade::Red, at)),
            Grade::Red => None,
        };
        let record = slip_record(&mut tx, sealer, d, now).await?;
        let issued = db::insert_slip(&mut tx, &record).await?;
        db::graded(&mut tx, d.id, d.grade, next).await?;
        if !issued {
            continue;
        }
        if announce(&mut tx, outbox, d, &record).await? {
            missed.push(d);
        }
        tracing::info!(case_id = %d.case_id, slip = %record.number, grade = %d.grade, "supervision slip issued");
    }
    tx.commit().await?;
    if !due.is_empty() {
        outbox.wake();
    }
    for d in &missed {
        tracing::info!(case_id = %d.case_id, deadline_id = %d.id, stage = %d.stage, "deadline missed");
    }
    kit::metrics::counter("zongzhi_deadlines_fired_total", &[]).inc_by(missed.len() as u64);
    Ok(due.len())
}

/// The slip of the grade `d` is due for, numbered in its center's yearly series (督-year-sequence).
async fn slip_record(
    tx: &mut PgConnection,
    sealer: &kit::pii::Sealer,
    d: &DueGrade,
    now: DateTime<Utc>,
) -> anyhow::Result<SlipRecord> {
    let prefix = if d.center_code.is_empty() { "000000" } else { kit::division::significant(&d.center_code) };
    let year = now.with_timezone(&kit::time::shanghai()).year();
    let seq = db::next_slip_seq(tx, prefix, year).await?;
    let number = format!("{prefix}-督-{year}-{seq:05}");
    Ok(SlipRecord {
        id: Uuid::new_v4(),
        verification_code: slip::verification_code(sealer, &number, &d.unit_code, &d.case_no, d.due_at),
        number,
        case_id: d.case_id,
        task_id: d.task_id.clone(),
        stage: d.stage,
        grade: d.grade,
        unit_code: d.unit_code.clone(),
        unit_name: d.unit_name.clone(),
        center_code: d.center_code.clone(),
        center_name: d.center_name.clone(),
        copy_to: copy_to(d.grade, &d.center_code),
        // The names are the case's, read with the slip when it is printed; the row keeps codes.
        copy_to_name: String::new(),
        case_no: d.case_no.clone(),
        category_code: d.category_code.clone(),
        category_name: String::new(),
        due_at: d.due_at,
        issued_at: now,
        acknowledged_at: None,
        acknowledged_by: String::new(),
    })
}

/// Writes what an issued slip tells the other services: `case.overdue` for a yellow card on a pending deadline
/// (true then: the deadline is missed), then the slip itself as `case.supervised`, whatever its grade (after
/// the missed deadline, so the file reads "missed", then "yellow card issued").
async fn announce(tx: &mut PgConnection, outbox: &Outbox, d: &DueGrade, record: &SlipRecord) -> anyhow::Result<bool> {
    let missed = d.grade == Grade::Yellow && d.state == DeadlineState::Pending;
    if missed {
        let event = DeadlineMissed {
            deadline_id: d.id.to_string(),
            task_id: d.task_id.clone(),
            stage: d.stage.into(),
            due_ms: d.due_at.timestamp_millis(),
        };
        outbox.add(tx, d.case_id, crate::NAME, Body::DeadlineMissed(event)).await?;
    }
    let event = CaseSupervised {
        task_id: d.task_id.clone(),
        stage: d.stage.into(),
        action: d.grade.as_str().into(),
        slip_no: record.number.clone(),
        unit_code: d.unit_code.clone(),
        copy_to: record.copy_to.clone(),
        due_ms: d.due_at.timestamp_millis(),
        note: String::new(),
    };
    outbox.add(tx, d.case_id, crate::NAME, Body::CaseSupervised(event)).await?;
    Ok(missed)
}

/// Whom a grade's slip is copied to: the case's center for a reminder or a yellow card; the center above it for
/// a red card (escalated one level).
fn copy_to(grade: Grade, center_code: &str) -> String {
    match grade {
        Grade::Reminder | Grade::Yellow => center_code.to_owned(),
        Grade::Red => kit::division::parent(center_code).unwrap_or_default(),
    }
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
