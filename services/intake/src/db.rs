//! Intake's queries: plain functions over a connection or transaction, reading and writing the domain's types
//! (a row decodes straight into [`Case`], [`Party`] or [`TimelineEntry`]; states, channels and kinds are bound
//! as values, never spelled as SQL literals).

use chrono::{DateTime, Utc};
use kit::auth::ScopeSet;
use kit::ids::{CaseId, CaseRef};
use sqlx::PgConnection;

use crate::domain::board::{After, Board, BoardPage, BoardQueue};
use crate::domain::categories::{Category, NewCategory};
use crate::domain::{Case, CaseState, Flags, NewCase, Party, PartyRole, Place, TimelineEntry};
use crate::scope::CASES;

pub mod merges;

pub(crate) const CASE_COLUMNS: &str = "id, case_no, idempotency_key, center_code, channel, kind, category_code, urgency, title, \
    description, grid_code, village_code, area_path, reporter_id, state, current_task_id, current_unit_code, \
    registered_at, updated_at, operator_id, units, overdue, awaiting_follow_up, merged_into";

/// The current (highest) version of the category, with its name at that version, when that version is active
/// and of the given kind. An older active version does not count: a newer inactive one withdraws the code.
pub async fn category_version(conn: &mut PgConnection, code: &str, kind: &str) -> sqlx::Result<Option<(i32, String)>> {
    sqlx::query_as(
        "SELECT version, name FROM (SELECT version, kind, active, name FROM categories WHERE code = $1 \
         ORDER BY version DESC LIMIT 1) c WHERE kind = $2 AND active",
    )
    .bind(code)
    .bind(kind)
    .fetch_optional(conn)
    .await
}

/// Takes the next number of the center's day, committed on its own (see `Cases::register_case`).
pub async fn next_seq(conn: &mut PgConnection, center_prefix: &str, local_day: &str) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO case_numbers (center_prefix, local_day, last_seq) VALUES ($1, $2, 1) \
         ON CONFLICT (center_prefix, local_day) DO UPDATE SET last_seq = case_numbers.last_seq + 1 \
         RETURNING last_seq",
    )
    .bind(center_prefix)
    .bind(local_day)
    .fetch_one(conn)
    .await
}

pub struct Registration<'a> {
    pub id: CaseId,
    /// The registration's fingerprint, compared when the idempotency key comes again.
    pub digest: &'a [u8],
    pub case_no: &'a str,
    pub category_version: i32,
    pub at: DateTime<Utc>,
    pub new: &'a NewCase,
    pub place: &'a Place,
}

/// Inserts the case unless its idempotency key exists, and answers the row as written; None when the key
/// existed (nothing written).
pub async fn insert_case(conn: &mut PgConnection, r: &Registration<'_>) -> sqlx::Result<Option<Case>> {
    let n = r.new;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO cases (id, case_no, idempotency_key, center_code, channel, kind, category_code, \
         category_version, urgency, title, description, grid_code, village_code, area_path, reporter_id, \
         operator_id, state, registered_at, updated_at, registration_digest) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$18,$19) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {CASE_COLUMNS}"
    )))
    .bind(r.id)
    .bind(r.case_no)
    .bind(&n.idempotency_key)
    .bind(&n.center_code)
    .bind(n.channel)
    .bind(n.kind)
    .bind(&n.category_code)
    .bind(r.category_version)
    .bind(n.urgency)
    .bind(&n.title)
    .bind(&n.description)
    .bind(&r.place.grid_code)
    .bind(&r.place.village_code)
    .bind(&r.place.area_path)
    .bind(&n.reporter_id)
    .bind(&n.operator_id)
    .bind(CaseState::Registered)
    .bind(r.at)
    .bind(r.digest)
    .fetch_optional(conn)
    .await
}

pub struct SealedParty<'a> {
    pub name: &'a str,
    pub role: PartyRole,
    pub phone_sealed: Option<Vec<u8>>,
    pub phone_masked: String,
    pub id_number_sealed: Option<Vec<u8>>,
    pub id_number_masked: String,
    /// The phone's blind index (`duplicates::phone_index`), for finding the same caller without decrypting.
    pub phone_index: Option<Vec<u8>>,
}

/// Inserts the party and answers it as [`parties`] reads it.
pub async fn insert_party(
    conn: &mut PgConnection,
    case_id: CaseId,
    ordinal: i32,
    p: &SealedParty<'_>,
    registered_at: DateTime<Utc>,
) -> sqlx::Result<Party> {
    sqlx::query_as(
        "INSERT INTO case_parties (case_id, ordinal, name, role, phone_sealed, phone_masked, id_number_sealed, \
         id_number_masked, phone_index, registered_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) \
         RETURNING name, role, phone_masked, id_number_masked",
    )
    .bind(case_id)
    .bind(ordinal)
    .bind(p.name)
    .bind(p.role)
    .bind(&p.phone_sealed)
    .bind(&p.phone_masked)
    .bind(&p.id_number_sealed)
    .bind(&p.id_number_masked)
    .bind(&p.phone_index)
    .bind(registered_at)
    .fetch_one(conn)
    .await
}

pub struct NewStep<'a> {
    pub case_id: CaseId,
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    /// None for the registration, stored as an empty state.
    pub from_state: Option<CaseState>,
    pub to_state: CaseState,
    pub detail: &'a str,
    pub source: &'a str,
    pub event_id: Option<&'a str>,
}

/// Appends the step and answers it as [`timeline`] reads it.
pub async fn append_step(conn: &mut PgConnection, s: &NewStep<'_>) -> sqlx::Result<TimelineEntry> {
    insert_step(conn, s, "").await?.ok_or(sqlx::Error::RowNotFound)
}

/// Appends the step an event makes, unless the file shows that event already (its id is unique in the
/// timeline); true when it was appended.
pub async fn append_event_step(conn: &mut PgConnection, s: &NewStep<'_>) -> sqlx::Result<bool> {
    let unless_seen = "ON CONFLICT ON CONSTRAINT timeline_event_id_key DO NOTHING";
    Ok(insert_step(conn, s, unless_seen).await?.is_some())
}

async fn insert_step(
    conn: &mut PgConnection,
    s: &NewStep<'_>,
    on_conflict: &'static str,
) -> sqlx::Result<Option<TimelineEntry>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO timeline (case_id, at, actor, action, from_state, to_state, detail, source, event_id) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) {on_conflict} \
         RETURNING at, actor, action, NULLIF(from_state, '') AS from_state, to_state, detail, source"
    )))
    .bind(s.case_id)
    .bind(s.at)
    .bind(s.actor)
    .bind(s.action)
    .bind(s.from_state.map_or("", CaseState::as_str))
    .bind(s.to_state)
    .bind(s.detail)
    .bind(s.source)
    .bind(s.event_id)
    .fetch_optional(conn)
    .await
}

/// What a replay is checked against: the case registered under a key, as first registered.
#[derive(Debug, sqlx::FromRow)]
pub struct KeyedCase {
    pub id: CaseId,
    pub center_code: String,
    pub category_code: String,
    /// None for cases registered before digests were kept (migration 1002).
    pub registration_digest: Option<Vec<u8>>,
}

pub async fn keyed_case(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<KeyedCase>> {
    sqlx::query_as("SELECT id, center_code, category_code, registration_digest FROM cases WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
}

/// A case by id or by case number.
pub async fn case_by_ref(conn: &mut PgConnection, case_ref: &CaseRef) -> sqlx::Result<Option<Case>> {
    match case_ref {
        CaseRef::Id(id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1")))
                .bind(id)
                .fetch_optional(conn)
                .await
        }
        CaseRef::No(no) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_no = $1")))
                .bind(no)
                .fetch_optional(conn)
                .await
        }
    }
}

/// The case's state and current task, locked for the rest of the consumer's transaction so concurrent events
/// apply one after another.
pub async fn lock_state(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Option<(CaseState, String)>> {
    sqlx::query_as("SELECT state, current_task_id FROM cases WHERE id = $1 FOR UPDATE")
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

pub async fn set_state(
    conn: &mut PgConnection,
    case_id: CaseId,
    state: CaseState,
    task: Option<(&str, &str)>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cases SET state = $2, updated_at = $3, \
         current_task_id = COALESCE($4, current_task_id), current_unit_code = COALESCE($5, current_unit_code), \
         units = CASE WHEN $5 IS NULL OR $5 = '' OR $5 = ANY(units) THEN units ELSE array_append(units, $5) END \
         WHERE id = $1",
    )
    .bind(case_id)
    .bind(state)
    .bind(at)
    .bind(task.map(|t| t.0))
    .bind(task.map(|t| t.1))
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies the board's flags an event moves (after the state it moved), so a closed case is never overdue.
pub async fn set_flags(conn: &mut PgConnection, case_id: CaseId, f: Flags) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cases SET overdue = COALESCE($2, overdue) AND state <> ALL($4), \
         awaiting_follow_up = COALESCE($3, awaiting_follow_up) WHERE id = $1",
    )
    .bind(case_id)
    .bind(f.overdue)
    .bind(f.awaiting_follow_up)
    .bind(vec![CaseState::Closed, CaseState::Merged])
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn parties(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<Party>> {
    sqlx::query_as(
        "SELECT name, role, phone_masked, id_number_masked FROM case_parties WHERE case_id = $1 ORDER BY ordinal",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// The timeline, oldest first; the registration's empty from-state reads as None.
pub async fn timeline(conn: &mut PgConnection, case_id: CaseId) -> sqlx::Result<Vec<TimelineEntry>> {
    sqlx::query_as(
        "SELECT at, actor, action, NULLIF(from_state, '') AS from_state, to_state, detail, source FROM timeline \
         WHERE case_id = $1 ORDER BY at, id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// A page of a center's cases that `scope` may read, newest first, after the (registered_at, id) cursor. The
/// scope is applied here, in SQL, so a page is never short of what the reader may see.
pub async fn list_cases(
    conn: &mut PgConnection,
    center_code: &str,
    scope: &ScopeSet,
    after: Option<(DateTime<Utc>, CaseId)>,
    limit: i64,
) -> sqlx::Result<Vec<Case>> {
    let (at, id) = after.unzip();
    let reach = scope.sql(&CASES, 5);
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE center_code = $1 \
         AND ($2::timestamptz IS NULL OR (registered_at, id) < ($2, $3)) AND {reach} \
         ORDER BY registered_at DESC, id DESC LIMIT $4"
    );
    reach
        .bind(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(center_code).bind(at).bind(id).bind(limit))
        .fetch_all(conn)
        .await
}

/// One party's sealed phone or ID number.
pub async fn sealed_party_field(
    conn: &mut PgConnection,
    case_id: CaseId,
    ordinal: i32,
    id_number: bool,
) -> sqlx::Result<Option<Option<Vec<u8>>>> {
    let sql = if id_number {
        "SELECT id_number_sealed FROM case_parties WHERE case_id = $1 AND ordinal = $2"
    } else {
        "SELECT phone_sealed FROM case_parties WHERE case_id = $1 AND ordinal = $2"
    };
    sqlx::query_scalar(sql).bind(case_id).bind(ordinal).fetch_optional(conn).await
}

/// Takes one read of `actor`'s hourly unmask budget and answers how many the hour has used with it (so a
/// value above the limit means refused). One statement under the row's lock: parallel reads count one by one.
pub async fn take_unmask(conn: &mut PgConnection, actor: &str) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO unmask_quota (actor, window_start, used) VALUES ($1, now(), 1) \
         ON CONFLICT (actor) DO UPDATE SET \
           window_start = CASE WHEN unmask_quota.window_start <= now() - interval '1 hour' THEN now() \
                          ELSE unmask_quota.window_start END, \
           used = CASE WHEN unmask_quota.window_start <= now() - interval '1 hour' THEN 1 \
                  ELSE unmask_quota.used + 1 END \
         RETURNING used",
    )
    .bind(actor)
    .fetch_one(conn)
    .await
}

/// The board's place, category and time filters, as $1–$4 (see [`bind_board_filters`]); the reader's scope
/// follows each query's own parameters.
const BOARD_WHERE: &str = "($1 = '' OR area_path @> ARRAY[$1]::text[]) \
    AND ($2 = '' OR starts_with(category_code, $2)) \
    AND ($3::timestamptz IS NULL OR registered_at >= $3) \
    AND ($4::timestamptz IS NULL OR registered_at < $4)";

/// A query with the board's filters bound as $1–$4 of [`BOARD_WHERE`].
fn bind_board_filters<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    b: &'q Board,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query.bind(&b.center_code).bind(&b.category_prefix).bind(b.registered_after).bind(b.registered_before)
}

/// Ascending: overdue first, then the oldest registration.
const BOARD_SORT_KEY: &str = "(NOT overdue, registered_at, id)";

/// One page of the board within the reader's reach, after the cursor.
pub async fn board_page(
    conn: &mut PgConnection,
    scope: &ScopeSet,
    b: &Board,
    after: Option<&After>,
) -> sqlx::Result<Vec<Case>> {
    let reach = scope.sql(&CASES, 12);
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE {BOARD_WHERE} AND {reach} AND state = ANY($5::text[]) \
         AND (NOT $6 OR overdue) AND (NOT $7 OR awaiting_follow_up) \
         AND ($8::bool IS NULL OR {BOARD_SORT_KEY} > ($8, $9, $10)) \
         ORDER BY {BOARD_SORT_KEY} LIMIT $11"
    );
    let query = bind_board_filters(sqlx::query_as(sqlx::AssertSqlSafe(sql)), b)
        .bind(b.states())
        .bind(b.overdue_only)
        .bind(b.queue == BoardQueue::FollowUp)
        .bind(after.map(|a| a.on_time))
        .bind(after.map(|a| a.registered_at))
        .bind(after.map(|a| a.id))
        .bind(b.limit);
    reach.bind(query).fetch_all(conn).await
}

/// The board's counts (per state, overdue, awaiting 核查 and 回访) over the place, category and time filters; the
/// page's cases are left empty.
pub async fn board_counts(conn: &mut PgConnection, scope: &ScopeSet, b: &Board) -> sqlx::Result<BoardPage> {
    let reach = scope.sql(&CASES, 5);
    let sql = format!(
        "SELECT state, count(*), count(*) FILTER (WHERE overdue), count(*) FILTER (WHERE awaiting_follow_up) \
         FROM cases WHERE {BOARD_WHERE} AND {reach} GROUP BY state"
    );
    let rows: Vec<(CaseState, i64, i64, i64)> =
        reach.bind(bind_board_filters(sqlx::query_as(sqlx::AssertSqlSafe(sql)), b)).fetch_all(conn).await?;
    let count = |s: CaseState| rows.iter().find(|r| r.0 == s).map_or(0, |r| r.1.unsigned_abs());
    Ok(BoardPage {
        cases: vec![],
        next_page_token: String::new(),
        counts: CaseState::ALL.iter().map(|s| (*s, count(*s))).collect(),
        overdue: rows.iter().map(|r| r.2.unsigned_abs()).sum(),
        awaiting_verification: count(CaseState::Resolved),
        awaiting_follow_up: rows.iter().map(|r| r.3.unsigned_abs()).sum(),
    })
}

const CATEGORY_COLUMNS: &str = "code, version, kind, name, active, created_by";

/// The current version of each code, by code; inactive ones only when asked for.
pub async fn current_categories(conn: &mut PgConnection, include_inactive: bool) -> sqlx::Result<Vec<Category>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CATEGORY_COLUMNS} FROM (SELECT DISTINCT ON (code) {CATEGORY_COLUMNS} FROM categories ORDER BY code, version DESC) c \
         WHERE $1 OR active ORDER BY code"
    )))
    .bind(include_inactive)
    .fetch_all(conn)
    .await
}

/// Inserts version max + 1 of the code. Concurrent puts of one code queue on a transaction-scoped advisory lock
/// (the rows they would lock may not exist yet), so neither fails on the primary key.
pub async fn insert_next_version(conn: &mut PgConnection, new: &NewCategory, actor: &str) -> sqlx::Result<Category> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('intake.categories'), hashtext($1))")
        .bind(&new.code)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO categories (code, version, kind, name, active, created_by) \
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5 FROM categories WHERE code = $1 \
         RETURNING {CATEGORY_COLUMNS}"
    )))
    .bind(&new.code)
    .bind(new.kind)
    .bind(&new.name)
    .bind(new.active)
    .bind(actor)
    .fetch_one(conn)
    .await
}
