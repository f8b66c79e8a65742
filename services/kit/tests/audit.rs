//! The audit trail against real PostgreSQL: group-committed chain, database-enforced append-only, tamper
//! detection by verify, failed writes failing the append, and shutdown draining the queue.

#![allow(clippy::unwrap_used)]

mod audit_support;

use audit_support::{Harness, entry, superuser_tx};
use kit::audit::{AuditError, BreakKind, verify};

#[tokio::test]
async fn concurrent_appends_from_two_replicas_form_one_contiguous_chain() {
    let h = Harness::new().await;
    // A second writer on its own pool stands for a second replica: the head lock keeps them one chain.
    let (other, _other_stop, _) = h.writer().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let log = if i % 2 == 0 { h.log.clone() } else { other.clone() };
        tasks.spawn(async move { log.append(entry(&format!("user-{i}"), "ok")).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_log ORDER BY seq").fetch_all(&h.pool).await.unwrap();
    assert_eq!(seqs, (1..=200).collect::<Vec<i64>>(), "seq is contiguous from 1");
    let mut seen = Vec::new();
    let report = verify(&h.pool, &h.key, |n| seen.push(n)).await.unwrap();
    assert!(report.intact(), "{:?}", report.broken);
    assert_eq!((report.checked, report.first_seq, report.head_seq), (200, Some(1), 200));
    assert_eq!(seen.last(), Some(&200), "progress ends with the total");
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_records() {
    let h = Harness::new().await;
    h.append_n(3).await;
    let refused = [
        ("update", "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"),
        ("delete", "DELETE FROM audit_log WHERE seq = 1"),
        ("truncate", "TRUNCATE audit_log"),
        ("delete head", "DELETE FROM audit_head"),
        ("truncate head", "TRUNCATE audit_head"),
    ];
    for (case, sql) in refused {
        let err = sqlx::query(sql).execute(&h.pool).await.expect_err(case);
        let code = err.as_database_error().and_then(|d| d.code()).unwrap_or_default();
        assert_eq!(code, "42501", "{case}: {err}");
    }
    let report = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    assert!(report.intact() && report.checked == 3, "{report:?}");
}

#[tokio::test]
async fn retention_purge_removes_only_the_oldest_records_past_180_days() {
    let h = Harness::new().await;
    h.append_n(5).await;
    // Records 1-3 made 200 days old, re-chained with the key as the writer would have chained them then.
    h.backdate(&[1, 2, 3], 200).await;
    assert!(verify(&h.pool, &h.key, |_| {}).await.unwrap().intact());
    let refused = |case: &'static str, sql: &'static str, why: &'static str| {
        let pool = h.pool.clone();
        async move {
            let err = sqlx::query(sql).execute(&pool).await.expect_err(case);
            assert!(err.to_string().contains(why), "{case}: {err}");
        }
    };
    refused("too young", "DELETE FROM audit_log WHERE seq = 4", "kept 180 days").await;
    refused("not the oldest", "DELETE FROM audit_log WHERE seq = 2", "oldest records first").await;
    sqlx::query("DELETE FROM audit_log WHERE seq <= 2").execute(&h.pool).await.unwrap();
    let report = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    assert!(report.intact(), "{:?}", report.broken);
    assert_eq!((report.checked, report.first_seq), (3, Some(3)), "verified from the anchor on");

    // Even when everything is old enough, the newest record stays for the head to point at.
    h.backdate(&[3, 4, 5], 200).await;
    refused("the newest", "DELETE FROM audit_log", "newest audit record").await;
    sqlx::query("DELETE FROM audit_log WHERE seq <= 4").execute(&h.pool).await.unwrap();
    let report = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    assert!(report.intact() && report.first_seq == Some(5), "{report:?}");
}

#[tokio::test]
async fn a_superuser_update_is_detected_at_that_record() {
    let h = Harness::new().await;
    h.append_n(10).await;
    let mut tx = superuser_tx(&h.pool).await;
    sqlx::query("UPDATE audit_log SET outcome = 'ok' WHERE seq = 6").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let report = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    let broken = report.broken.unwrap();
    assert_eq!((broken.seq, broken.kind), (6, BreakKind::HashMismatch));
    assert_eq!(report.checked, 6);
}

#[tokio::test]
async fn a_superuser_delete_is_detected_as_a_gap_or_at_the_head() {
    let h = Harness::new().await;
    h.append_n(10).await;
    let mut tx = superuser_tx(&h.pool).await;
    sqlx::query("DELETE FROM audit_log WHERE seq IN (4, 5)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let broken = verify(&h.pool, &h.key, |_| {}).await.unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.kind.clone()), (4, BreakKind::Gap { next_present: 6 }));
    assert_eq!(broken.to_string(), "seq 4: gap (records 4..5 are missing)");

    // Removing the newest record leaves no gap; the head still names it.
    let h = Harness::new().await;
    h.append_n(10).await;
    let mut tx = superuser_tx(&h.pool).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 10").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let broken = verify(&h.pool, &h.key, |_| {}).await.unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.kind), (10, BreakKind::HeadMismatch { last_seq: Some(9) }));
}

#[tokio::test]
async fn a_chain_verified_with_another_key_is_broken_at_the_first_record() {
    let h = Harness::new().await;
    h.append_n(2).await;
    let other = kit::audit::AuditKey::new([9; 32]);
    let broken = verify(&h.pool, &other, |_| {}).await.unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.kind), (1, BreakKind::HashMismatch));
}

#[tokio::test]
async fn a_failed_write_fails_the_append_and_the_writer_recovers() {
    let h = Harness::new().await;
    h.append_n(2).await;
    sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away").execute(&h.pool).await.unwrap();
    let err = h.log.append(entry("alice", "ok")).await.expect_err("the table is gone");
    assert!(matches!(err, AuditError::Write(_)), "{err}");
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(!status.message().contains("audit_log"), "the cause is not sent: {}", status.message());

    sqlx::query("ALTER TABLE audit_log_away RENAME TO audit_log").execute(&h.pool).await.unwrap();
    h.log.append(entry("alice", "ok")).await.unwrap();
    let report = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    assert!(report.intact() && report.checked == 3, "the failed batch left no trace: {report:?}");
}

#[tokio::test]
async fn shutdown_writes_what_is_queued_then_refuses() {
    let h = Harness::new().await;
    let (log, stop, task) = h.writer().await;
    let pending: Vec<_> = (0..50)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(entry(&format!("u{i}"), "ok")).await })
        })
        .collect();
    stop.fire();
    for p in pending {
        p.await.unwrap().unwrap();
    }
    // The writer ends once appends have gone quiet; after that an append is refused, never lost silently.
    task.await.unwrap().unwrap();
    assert!(matches!(log.append(entry("late", "ok")).await, Err(AuditError::Closed)));
    let report = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    assert!(report.intact() && report.checked == 50, "{report:?}");
}
