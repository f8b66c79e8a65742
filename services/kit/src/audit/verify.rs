//! Verification: walks the chain in order a page at a time and names the first broken link.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::anchor::Anchor;
use super::chain::{AuditKey, GENESIS, hex};
use super::store;

/// How long records are kept before the purge may remove them (网络安全法 §21: six months); the purge trigger
/// in `migrations/2_audit.sql` enforces the same.
pub const RETENTION_DAYS: i64 = 180;

/// Records fetched per query while walking.
const PAGE: i64 = 1000;

/// How often `verify` reports progress, in records.
pub const PROGRESS_EVERY: u64 = 10_000;

/// The outcome of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records whose hash was recomputed (up to and including a broken one).
    pub checked: u64,
    /// The first record present: 1 unless a retention purge removed older ones, in which case its prev_hash
    /// is the anchor the rest is verified from.
    pub first_seq: Option<i64>,
    /// The head's sequence number when the walk began; records appended during the walk are left for the next.
    pub head_seq: i64,
    /// The first broken link; None when the chain is intact.
    pub broken: Option<Break>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Where and how the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The record at fault: the altered one, the first missing one of a gap, or the last one for a head mismatch.
    pub seq: i64,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The stored hash is not the HMAC of the record's fields: a field, or the hash, was altered.
    HashMismatch,
    /// Records `seq` up to `next_present - 1` are missing.
    Gap { next_present: i64 },
    /// The record's prev_hash is not the previous record's hash (or, for record 1, not the genesis link).
    PrevMismatch,
    /// The head does not point at the last record: records were removed from the end or the head was moved.
    HeadMismatch { last_seq: Option<i64> },
    /// The record an anchor names is not the one anchored (records were cut and the chain rewritten after).
    AnchorMismatch { anchored_at: DateTime<Utc> },
    /// The head is behind the latest anchor: records `seq` up to `anchor_seq` were cut and the head moved back.
    BehindAnchor { anchor_seq: i64, anchored_at: DateTime<Utc> },
    /// A record an anchor younger than the retention window names is gone: records were removed early.
    PurgedEarly { anchored_at: DateTime<Utc> },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seq = self.seq;
        match &self.kind {
            BreakKind::HashMismatch => write!(f, "seq {seq}: hash mismatch (the record was altered)"),
            BreakKind::Gap { next_present } => {
                write!(f, "seq {seq}: gap (records {seq}..{} are missing)", next_present - 1)
            }
            BreakKind::PrevMismatch => write!(f, "seq {seq}: prev_hash does not link to the record before"),
            BreakKind::HeadMismatch { last_seq } => match last_seq {
                Some(last) => write!(f, "seq {seq}: head mismatch (the last record is {last})"),
                None => write!(f, "seq {seq}: head mismatch (no records)"),
            },
            BreakKind::AnchorMismatch { anchored_at } => {
                write!(f, "seq {seq}: not the record anchored at {} (the chain was rewritten)", local(anchored_at))
            }
            BreakKind::BehindAnchor { anchor_seq, anchored_at } => write!(
                f,
                "seq {seq}: records {seq}..={anchor_seq} are missing (the anchor of {} names seq {anchor_seq}; the head was moved back)",
                local(anchored_at)
            ),
            BreakKind::PurgedEarly { anchored_at } => write!(
                f,
                "seq {seq}: purged before the {RETENTION_DAYS}-day retention ended (it was anchored at {})",
                local(anchored_at)
            ),
        }
    }
}

fn local(at: &DateTime<Utc>) -> String {
    crate::time::local(*at)
}

/// Recomputes every hash from the first record present to the head, checking that sequence numbers are
/// contiguous and each prev_hash is the hash before it. Memory stays one page however long the chain;
/// `progress` is called with the number checked every [`PROGRESS_EVERY`] records and at the end.
pub async fn verify(pool: &PgPool, key: &AuditKey, progress: impl FnMut(u64)) -> anyhow::Result<VerifyReport> {
    verify_anchored(pool, key, &[], progress).await
}

/// As [`verify`], and checks the chain against signed anchors ([`super::anchor`], already checked against
/// their key): each anchored record present must be the one anchored, the head may not be behind the latest
/// anchor, and no record anchored within the retention window may be gone.
pub async fn verify_anchored(
    pool: &PgPool,
    key: &AuditKey,
    anchors: &[Anchor],
    mut progress: impl FnMut(u64),
) -> anyhow::Result<VerifyReport> {
    let anchored: HashMap<i64, &Anchor> = anchors.iter().map(|a| (a.seq, a)).collect();
    let (head_seq, head_hash) = store::head(pool).await?;
    let mut report = VerifyReport { checked: 0, first_seq: None, head_seq, broken: None };
    // The last record checked: its seq and hash.
    let mut last: Option<(i64, Vec<u8>)> = None;
    loop {
        let after = last.as_ref().map_or(0, |(seq, _)| *seq);
        let page = store::page(pool, after, head_seq, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for record in page {
            let seq = record.seq;
            // A record that does not follow its predecessor is not counted as checked; one that does is, even
            // when its own hash or its anchor then fails.
            let broken = link_break(last.as_ref(), &record).or_else(|| {
                report.first_seq.get_or_insert(seq);
                report.checked += 1;
                record_break(key, &anchored, &record)
            });
            if broken.is_some() {
                report.broken = broken;
                progress(report.checked);
                return Ok(report);
            }
            if report.checked.is_multiple_of(PROGRESS_EVERY) {
                progress(report.checked);
            }
            last = Some((seq, record.hash));
        }
    }
    progress(report.checked);
    report.broken = head_break(head_seq, &head_hash, last);
    if report.broken.is_none() {
        // Records past the head: the head was moved back by hand (the runtime role may update it), leaving the
        // newest records outside the walk.
        if let (Some(last), head) = store::last_and_head(pool).await?
            && last > head
        {
            report.broken = Some(Break { seq: head, kind: BreakKind::HeadMismatch { last_seq: Some(last) } });
        }
    }
    if report.broken.is_none() {
        report.broken = anchor_break(&report, anchors, Utc::now());
    }
    Ok(report)
}

/// Whether `record` follows the last one checked: the next sequence number, chained to its hash (a first
/// record above 1 follows a retention purge: its prev_hash is taken as the anchor).
fn link_break(last: Option<&(i64, Vec<u8>)>, record: &store::Record) -> Option<Break> {
    let seq = record.seq;
    match last {
        Some((prev_seq, _)) if seq != prev_seq + 1 => {
            Some(Break { seq: prev_seq + 1, kind: BreakKind::Gap { next_present: seq } })
        }
        Some((_, prev_hash)) if &record.prev_hash != prev_hash => Some(Break { seq, kind: BreakKind::PrevMismatch }),
        None if seq == 1 && record.prev_hash != GENESIS => Some(Break { seq, kind: BreakKind::PrevMismatch }),
        _ => None,
    }
}

/// Whether the record is what its hash says, and what its anchor (if any) says.
fn record_break(key: &AuditKey, anchored: &HashMap<i64, &Anchor>, record: &store::Record) -> Option<Break> {
    let seq = record.seq;
    if key.record_hash(&record.prev_hash, seq, record.at, &record.entry)[..] != record.hash[..] {
        return Some(Break { seq, kind: BreakKind::HashMismatch });
    }
    anchored
        .get(&seq)
        .filter(|a| a.hash != hex(&record.hash))
        .map(|a| Break { seq, kind: BreakKind::AnchorMismatch { anchored_at: a.at } })
}

/// What the anchors say about the ends of an otherwise intact chain: the head behind the latest anchor (the
/// newest records cut), or an anchored record younger than the retention window gone (the oldest cut early).
fn anchor_break(report: &VerifyReport, anchors: &[Anchor], now: DateTime<Utc>) -> Option<Break> {
    if let Some(latest) = anchors.iter().max_by_key(|a| a.seq)
        && latest.seq > report.head_seq
    {
        let kind = BreakKind::BehindAnchor { anchor_seq: latest.seq, anchored_at: latest.at };
        return Some(Break { seq: report.head_seq + 1, kind });
    }
    let first = report.first_seq.unwrap_or(report.head_seq + 1);
    let window = now - chrono::Duration::days(RETENTION_DAYS);
    anchors
        .iter()
        .filter(|a| a.seq >= 1 && a.seq < first && a.at > window)
        .min_by_key(|a| a.seq)
        .map(|a| Break { seq: a.seq, kind: BreakKind::PurgedEarly { anchored_at: a.at } })
}

/// The head must name the last record and its hash. An empty table is intact only at the genesis head: the
/// purge trigger never removes the newest record, so records behind a later head cannot all be gone.
fn head_break(head_seq: i64, head_hash: &[u8], last: Option<(i64, Vec<u8>)>) -> Option<Break> {
    match last {
        Some((seq, hash)) if seq == head_seq && hash == head_hash => None,
        None if head_seq == 0 && head_hash == GENESIS => None,
        last_seq => Some(Break { seq: head_seq, kind: BreakKind::HeadMismatch { last_seq: last_seq.map(|l| l.0) } }),
    }
}
