//! Likely duplicates and merges: the candidates' narrowing query, the merge chain, the merges table, and what a
//! target's file lists of the cases merged into it.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use sqlx::PgConnection;

use super::CASE_COLUMNS;
use crate::domain::{Case, CaseState, MergedCase, Party, PartyRole};

/// An open case of the village within the window, and whether a party of it has a phone whose blind index is
/// one of the probe's.
#[derive(Debug, sqlx::FromRow)]
pub struct Nearby {
    #[sqlx(flatten)]
    pub case: Case,
    pub same_phone: bool,
}

/// The phones' blind indexes of the case's parties.
pub async fn phone_indexes(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT phone_index FROM case_parties WHERE case_id = $1 AND phone_index IS NOT NULL ORDER BY ordinal",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// Where the candidates' search looks.
pub struct Around<'a> {
    pub village_code: &'a str,
    /// The category's major group (two digits).
    pub category_group: &'a str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub except: CaseId,
    pub phone_indexes: &'a [Vec<u8>],
    pub limit: i64,
}

/// The open cases of the village registered in [from, to] in the category's group, but the one asked about:
/// the newest `limit`, and besides them, of the newest `limit` cases anywhere with a party of the same phone in
/// the window, those that are the village's, so a phone match is never cut off by a busy village. Each arm is
/// a bounded index range, newest first; each id found is read by its key (a `LIMIT 1` lateral, which the
/// planner cannot turn into a scan of `cases` when its statistics are young), and a party's phone is checked
/// on its own case's rows. So a phone on thousands of cases (a habitual caller, or the benchmark's one reporter) costs the same
/// as a rare one. The state predicate is spelled exactly as the partial index `cases_open_by_village` is
/// (migration 1007): a bound parameter could not prove the index applies under a generic plan.
/// `open_predicate_matches_the_states` keeps the two in step.
pub async fn nearby_open(conn: &mut PgConnection, a: &Around<'_>) -> sqlx::Result<Vec<Nearby>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT n.*, \
                coalesce((SELECT bool_or(p.phone_index = ANY($6::bytea[])) FROM case_parties p \
                     WHERE p.case_id = n.id), false) AS same_phone \
         FROM ( \
             (SELECT n.id FROM cases n WHERE {AROUND} ORDER BY n.registered_at DESC LIMIT $7) \
             UNION \
             (SELECT m.case_id FROM unnest($6::bytea[]) ph \
                 CROSS JOIN LATERAL (SELECT p.case_id FROM case_parties p WHERE p.phone_index = ph \
                     AND p.registered_at >= $3 AND p.registered_at <= $4 ORDER BY p.registered_at DESC LIMIT $7) m) \
         ) k (id) \
         CROSS JOIN LATERAL (SELECT {CASE_COLUMNS} FROM cases WHERE id = k.id LIMIT 1) n \
         WHERE {AROUND} \
         ORDER BY n.registered_at DESC"
    )))
    .bind(a.village_code)
    .bind(a.category_group)
    .bind(a.from)
    .bind(a.to)
    .bind(a.except)
    .bind(a.phone_indexes)
    .bind(a.limit)
    .fetch_all(conn)
    .await
}

/// The window of `nearby_open`, over `cases n`.
const AROUND: &str = "n.village_code = $1 AND n.state NOT IN ('closed', 'merged') AND n.registered_at >= $3 \
    AND n.registered_at <= $4 AND left(n.category_code, 2) = $2 AND n.id <> $5";

/// The states `nearby_open` and the partial index spell out as not open.
pub const NOT_OPEN_IN_SQL: [&str; 2] = ["closed", "merged"];

/// Both cases, locked, lower id first: two merges touching the same cases queue in one order and never
/// deadlock, and neither sees the other's chain half-written.
pub async fn lock_pair(conn: &mut PgConnection, a: CaseId, b: CaseId) -> sqlx::Result<Vec<Case>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(vec![a, b])
    .fetch_all(conn)
    .await
}

/// The chain of merges from `start`: each case it is merged into, in order, at most `max` hops.
pub async fn chain_from(conn: &mut PgConnection, start: CaseId, max: i32) -> sqlx::Result<Vec<(CaseId, CaseId)>> {
    sqlx::query_as(
        "WITH RECURSIVE chain (id, into_id, depth) AS ( \
             SELECT id, merged_into, 1 FROM cases WHERE id = $1 AND merged_into IS NOT NULL \
             UNION ALL \
             SELECT c.id, c.merged_into, chain.depth + 1 FROM cases c JOIN chain ON c.id = chain.into_id \
             WHERE c.merged_into IS NOT NULL AND chain.depth < $2) \
         SELECT id, into_id FROM chain ORDER BY depth",
    )
    .bind(start)
    .bind(max)
    .fetch_all(conn)
    .await
}

/// The case becomes merged into `into`: handled there, no longer overdue or awaiting a visit.
pub async fn set_merged(conn: &mut PgConnection, case_id: CaseId, into: CaseId, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cases SET state = $3, merged_into = $2, overdue = FALSE, awaiting_follow_up = FALSE, \
         updated_at = $4 WHERE id = $1",
    )
    .bind(case_id)
    .bind(into)
    .bind(CaseState::Merged)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The case is registered again, to be dispatched anew. Its current task stays named (superseded by the merge),
/// so a late step of that task reads as stale until routing's new dispatch names the next one.
pub async fn set_unmerged(conn: &mut PgConnection, case_id: CaseId, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE cases SET state = $2, merged_into = NULL, updated_at = $3 WHERE id = $1")
        .bind(case_id)
        .bind(CaseState::Registered)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub struct NewMerge<'a> {
    pub case_id: CaseId,
    pub into_case_id: CaseId,
    pub reason: &'a str,
    pub by: &'a str,
    pub at: DateTime<Utc>,
}

pub async fn insert_merge(conn: &mut PgConnection, m: &NewMerge<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO case_merges (case_id, into_case_id, reason, merged_by, merged_at) VALUES ($1,$2,$3,$4,$5)",
    )
    .bind(m.case_id)
    .bind(m.into_case_id)
    .bind(m.reason)
    .bind(m.by)
    .bind(m.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the case's live merge, keeping its row; returns the case it was merged into.
pub async fn end_merge(
    conn: &mut PgConnection,
    case_id: CaseId,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<Option<CaseId>> {
    sqlx::query_scalar(
        "UPDATE case_merges SET unmerged_at = $4, unmerged_by = $2, unmerge_reason = $3 \
         WHERE case_id = $1 AND unmerged_at IS NULL RETURNING into_case_id",
    )
    .bind(case_id)
    .bind(by)
    .bind(reason)
    .bind(at)
    .fetch_optional(conn)
    .await
}

/// The cases merged into `target`, directly or through a case merged into it, still merged, oldest merge first.
pub async fn merged_into(conn: &mut PgConnection, target: CaseId) -> sqlx::Result<Vec<MergedCase>> {
    sqlx::query_as(
        "WITH RECURSIVE tree (id, depth) AS ( \
             SELECT id, 1 FROM cases WHERE merged_into = $1 \
             UNION ALL \
             SELECT c.id, tree.depth + 1 FROM cases c JOIN tree ON c.merged_into = tree.id WHERE tree.depth < 64) \
         SELECT m.case_id, c.case_no, m.merged_at, m.merged_by, m.reason \
         FROM tree JOIN cases c ON c.id = tree.id \
         JOIN case_merges m ON m.case_id = tree.id AND m.unmerged_at IS NULL \
         ORDER BY m.merged_at, m.id",
    )
    .bind(target)
    .fetch_all(conn)
    .await
}

/// The cases by id, in no particular order.
pub async fn cases(conn: &mut PgConnection, ids: &[CaseId]) -> sqlx::Result<Vec<Case>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ANY($1)")))
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// The parties who reported a case (role reporter or applicant), masked, in order.
/// The roles of a case's parties who reported the matter (followed up after it closes).
pub const REPORTING: [PartyRole; 2] = [PartyRole::Reporter, PartyRole::Applicant];

pub async fn reporting_parties(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<Party>> {
    sqlx::query_as(
        "SELECT name, role, phone_masked, id_number_masked FROM case_parties \
         WHERE case_id = $1 AND role = ANY($2) ORDER BY ordinal",
    )
    .bind(case_id)
    .bind(REPORTING.to_vec())
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_predicate_matches_the_states() {
        let not_open: Vec<&str> = CaseState::ALL.iter().filter(|s| !s.is_open()).map(|s| s.as_str()).collect();
        assert_eq!(not_open, NOT_OPEN_IN_SQL);
        let migration = include_str!("../../migrations/1007_duplicates.sql");
        assert!(migration.contains("WHERE state NOT IN ('closed', 'merged')"));
    }
}
