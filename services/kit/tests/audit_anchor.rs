//! What the chain alone cannot see, and the anchors and the runtime role catch: a superuser cutting the newest
//! records and moving the head back, rewriting the chain after the cut, purging the oldest records before the
//! retention window ends; an anchor file written without the key; and the runtime role, which may append and
//! move the head but cannot change, delete or truncate a record, or drop or disable the triggers.

#![allow(clippy::unwrap_used)]

mod audit_support;

use audit_support::{Harness, entry, superuser_tx};
use kit::audit::anchor::{self, AnchorCheck, AnchorKey};
use kit::audit::{BreakKind, verify, verify_anchored};

fn keys() -> (AnchorKey, AnchorCheck) {
    let key = AnchorKey::from_seed(&[9; 32]).unwrap();
    let check = AnchorCheck::from_public(key.public()).unwrap();
    (key, check)
}

/// Cuts every record after `keep` and moves the head back to it, around the triggers, as a superuser can.
async fn cut_after(h: &Harness, keep: i64) {
    let mut tx = superuser_tx(&h.pool).await;
    sqlx::query("DELETE FROM audit_log WHERE seq > $1").bind(keep).execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = (SELECT hash FROM audit_log WHERE seq = $1)")
        .bind(keep)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_cut_chain_verifies_alone_but_not_against_its_anchor() {
    let h = Harness::new().await;
    let (key, check) = keys();
    let dir = tempdir();
    let file = dir.join("anchors.jsonl");
    h.append_n(5).await;
    anchor::append(&file, &anchor::anchor(&h.pool, "svc", &key).await.unwrap()).unwrap();
    h.append_n(3).await;
    anchor::append(&file, &anchor::anchor(&h.pool, "svc", &key).await.unwrap()).unwrap();
    let anchors = anchor::read(&file, "svc", &check).unwrap();
    assert_eq!(anchors.iter().map(|a| a.seq).collect::<Vec<_>>(), [5, 8]);
    assert!(verify_anchored(&h.pool, &h.key, &anchors, |_| {}).await.unwrap().intact());

    // The newest two records cut and the head moved back: the chain alone still verifies.
    cut_after(&h, 6).await;
    let alone = verify(&h.pool, &h.key, |_| {}).await.unwrap();
    assert!(alone.intact() && alone.head_seq == 6, "what the anchors are for: {alone:?}");
    let report = verify_anchored(&h.pool, &h.key, &anchors, |_| {}).await.unwrap();
    let broken = report.broken.unwrap();
    assert_eq!(broken.seq, 7, "{broken}");
    assert!(matches!(broken.kind, BreakKind::BehindAnchor { anchor_seq: 8, .. }), "{broken}");
    assert!(broken.to_string().contains("records 7..=8 are missing"), "{broken}");

    // New records appended after the cut fill the numbers again, but not with the anchored record.
    for i in 0..3 {
        h.log.append(entry(&format!("later-{i}"), "ok")).await.unwrap();
    }
    let broken = verify_anchored(&h.pool, &h.key, &anchors, |_| {}).await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 8, "{broken}");
    assert!(matches!(broken.kind, BreakKind::AnchorMismatch { .. }), "{broken}");
}

#[tokio::test]
async fn oldest_records_purged_before_the_retention_window_are_named() {
    let h = Harness::new().await;
    let (key, check) = keys();
    let dir = tempdir();
    let file = dir.join("anchors.jsonl");
    h.append_n(3).await;
    anchor::append(&file, &anchor::anchor(&h.pool, "svc", &key).await.unwrap()).unwrap();
    h.append_n(3).await;
    // Records 1-4 deleted around the purge trigger: what is left verifies from record 5's prev_hash.
    let mut tx = superuser_tx(&h.pool).await;
    sqlx::query("DELETE FROM audit_log WHERE seq <= 4").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert!(verify(&h.pool, &h.key, |_| {}).await.unwrap().intact(), "the chain alone cannot tell");
    let anchors = anchor::read(&file, "svc", &check).unwrap();
    let broken = verify_anchored(&h.pool, &h.key, &anchors, |_| {}).await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3, "{broken}");
    assert!(matches!(broken.kind, BreakKind::PurgedEarly { .. }), "{broken}");
}

#[tokio::test]
async fn an_anchor_not_signed_with_the_key_is_refused_naming_its_line() {
    let h = Harness::new().await;
    let (key, check) = keys();
    let dir = tempdir();
    let file = dir.join("anchors.jsonl");
    h.append_n(2).await;
    let good = anchor::anchor(&h.pool, "svc", &key).await.unwrap();
    anchor::append(&file, &good).unwrap();
    // Someone without the key writes an anchor pinning an earlier head, to excuse a cut.
    let forged = kit::audit::anchor::Anchor { seq: 1, ..good.clone() };
    anchor::append(&file, &forged).unwrap();
    let err = anchor::read(&file, "svc", &check).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    // And a key of their own does not help.
    let other = AnchorKey::from_seed(&[1; 32]).unwrap();
    let file2 = dir.join("others.jsonl");
    anchor::append(&file2, &anchor::anchor(&h.pool, "svc", &other).await.unwrap()).unwrap();
    assert!(anchor::read(&file2, "svc", &check).is_err());
}

#[tokio::test]
async fn the_runtime_role_appends_but_cannot_rewrite_the_trail() {
    let h = Harness::runtime_role().await;
    h.append_n(3).await;
    let refused = [
        ("update", "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"),
        ("delete", "DELETE FROM audit_log WHERE seq = 1"),
        ("truncate", "TRUNCATE audit_log"),
        ("drop trigger", "DROP TRIGGER audit_log_no_update ON audit_log"),
        ("disable triggers", "ALTER TABLE audit_log DISABLE TRIGGER ALL"),
        ("drop table", "DROP TABLE audit_log"),
        ("replica mode", "SET session_replication_role = replica"),
        ("delete head", "DELETE FROM audit_head"),
        ("migration history", "DELETE FROM _sqlx_migrations"),
    ];
    for (case, sql) in refused {
        let err = sqlx::query(sql).execute(&h.pool).await.expect_err(case);
        let code = err.as_database_error().and_then(|d| d.code()).unwrap_or_default();
        assert_eq!(code, "42501", "{case}: {err}");
    }
    // Moving the head back is possible for the runtime role: that is what the anchors catch.
    sqlx::query("UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_log WHERE seq = 2)")
        .execute(&h.pool)
        .await
        .unwrap();
    let broken = verify(&h.pool, &h.key, |_| {}).await.unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.kind.clone()), (2, BreakKind::HeadMismatch { last_seq: Some(3) }), "{broken}");
}

/// A directory of the test's own, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("zz-anchor-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}
