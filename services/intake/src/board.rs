//! The case board (工作台): the cases a reader opens the system for, within their read scope, filtered and
//! counted in SQL (never after fetching), overdue first, then the oldest registration first.
//!
//! One call serves every board: a dispatcher's (a center's subtree by state), a grid worker's (their grids,
//! because their read scope is grid codes), and a center head's queues awaiting 核查 (`verification`: resolved)
//! and awaiting 回访 (`follow_up`: closed, not yet visited). The queues are a parameter rather than RPCs of
//! their own because they differ from the board only in the states they fix; scope, filters, order, paging and
//! counts are the same, and one query keeps them so. The queues read with ReadCase scope, like the board: a
//! center head sees what awaits 回访 without being the one who calls.

use chrono::{DateTime, Utc};
use kit::auth::ScopeSet;
use kit::{FieldError, code_enum, field};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::CASE_COLUMNS;
use crate::domain::{Case, CaseState};
use crate::error::Result;
use crate::scope::Filter;
use crate::service::Cases;
use kit::page;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

code_enum! {
    pub enum BoardQueue {
        Board = "board",
        Verification = "verification",
        FollowUp = "follow_up",
    }
}

/// A board request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// Empty: everywhere the reader may read.
    pub center_code: String,
    pub queue: BoardQueue,
    pub state: Option<CaseState>,
    pub category_prefix: String,
    pub registered_after: Option<DateTime<Utc>>,
    pub registered_before: Option<DateTime<Utc>>,
    pub overdue_only: bool,
    pub limit: i64,
    pub token: String,
}

/// The request's fields as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoardInput<'a> {
    pub center_code: &'a str,
    pub queue: &'a str,
    pub state: &'a str,
    pub category_prefix: &'a str,
    pub registered_after: &'a str,
    pub registered_before: &'a str,
    pub overdue_only: bool,
    pub page_size: u32,
    pub page_token: &'a str,
}

impl Board {
    pub fn parse(r: &BoardInput<'_>) -> std::result::Result<Self, FieldError> {
        let center_code = match field::bounded("center_code", r.center_code, 12)? {
            "" => String::new(),
            _ => field::division_code("center_code", r.center_code)?.to_owned(),
        };
        let queue = match field::bounded("queue", r.queue, 32)? {
            "" => BoardQueue::Board,
            q => BoardQueue::parse("queue", q)?,
        };
        let state = match field::bounded("state", r.state, 32)? {
            "" => None,
            _ if queue != BoardQueue::Board => {
                return Err(FieldError::new("state", format!("is fixed by queue {queue}; leave it empty")));
            }
            s => Some(CaseState::parse("state", s)?),
        };
        let category_prefix = field::bounded("category_prefix", r.category_prefix, 4)?;
        if !category_prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("category_prefix", "must be up to 4 digits of a category code"));
        }
        Ok(Self {
            center_code,
            queue,
            state,
            category_prefix: category_prefix.to_owned(),
            registered_after: time("registered_after", r.registered_after)?,
            registered_before: time("registered_before", r.registered_before)?,
            overdue_only: r.overdue_only,
            limit: page::size(r.page_size, DEFAULT_PAGE, MAX_PAGE),
            token: page::clean_token(r.page_token)?,
        })
    }

    /// The states the board shows: the queue's, the one asked for, or every open one (all but closed).
    fn states(&self) -> Vec<CaseState> {
        match (self.queue, self.state) {
            (BoardQueue::Verification, _) => vec![CaseState::Resolved],
            (BoardQueue::FollowUp, _) => vec![CaseState::Closed],
            (BoardQueue::Board, Some(s)) => vec![s],
            (BoardQueue::Board, None) => CaseState::ALL.iter().copied().filter(|s| *s != CaseState::Closed).collect(),
        }
    }

    fn fingerprint(&self) -> u64 {
        let (after, before) = (page::time(self.registered_after), page::time(self.registered_before));
        page::fingerprint(&[
            "board",
            &self.center_code,
            self.queue.as_str(),
            self.state.map_or("", CaseState::as_str),
            &self.category_prefix,
            &after,
            &before,
            if self.overdue_only { "overdue" } else { "" },
        ])
    }
}

fn time(name: &str, value: &str) -> std::result::Result<Option<DateTime<Utc>>, FieldError> {
    match field::bounded(name, value, 40)? {
        "" => Ok(None),
        v => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| FieldError::new(name, "must be an RFC 3339 time, e.g. 2026-11-27T08:00:00+08:00")),
    }
}

/// One page of the board and its counts.
#[derive(Debug)]
pub struct BoardPage {
    pub cases: Vec<Case>,
    pub next_page_token: String,
    /// Every state in lifecycle order, over the place, category and time filters only.
    pub counts: Vec<(CaseState, u64)>,
    pub overdue: u64,
    pub awaiting_verification: u64,
    pub awaiting_follow_up: u64,
}

/// Where a page ends: the last case's sort key.
struct After {
    on_time: bool,
    registered_at: DateTime<Utc>,
    id: Uuid,
}

impl Cases {
    pub async fn board(&self, scope: &ScopeSet, b: &Board) -> Result<BoardPage> {
        let filters = b.fingerprint();
        let after = match page::decode(&b.token, filters, 3)? {
            None => None,
            Some(k) => Some(After {
                on_time: !page::parse_flag(&k[0])?,
                registered_at: page::parse_time(&k[1])?.ok_or_else(page::bad_token)?,
                id: page::parse_id(&k[2])?,
            }),
        };
        let reach = Filter::from(scope);
        let mut conn = self.pool.acquire().await?;
        let cases = page_of(&mut conn, &reach, b, after.as_ref()).await?;
        let mut page = counts(&mut conn, &reach, b).await?;
        page.next_page_token = match cases.last() {
            Some(c) if cases.len() as i64 == b.limit => page::encode(
                filters,
                &[if c.overdue { "1" } else { "0" }.to_owned(), page::time(Some(c.registered_at)), c.id.to_string()],
            ),
            _ => String::new(),
        };
        page.cases = cases;
        Ok(page)
    }
}

/// The reader's scope ($1 all, $2 nodes: area-path codes or grid-code prefixes, $3 units, $4 own or client
/// actor) and the place, category and time filters ($5–$8), as in [`crate::db::list_cases`].
const WHERE: &str = "($1 OR area_path && $2::text[] \
        OR EXISTS (SELECT 1 FROM unnest($2::text[]) n WHERE starts_with(grid_code, n)) \
        OR units && $3::text[] OR ($4 <> '' AND (operator_id = $4 OR reporter_id = $4))) \
    AND ($5 = '' OR area_path @> ARRAY[$5]::text[]) \
    AND ($6 = '' OR starts_with(category_code, $6)) \
    AND ($7::timestamptz IS NULL OR registered_at >= $7) \
    AND ($8::timestamptz IS NULL OR registered_at < $8)";

/// Ascending: overdue first, then the oldest registration.
const SORT_KEY: &str = "(NOT overdue, registered_at, id)";

async fn page_of(conn: &mut PgConnection, f: &Filter, b: &Board, after: Option<&After>) -> sqlx::Result<Vec<Case>> {
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE {WHERE} AND state = ANY($9::text[]) \
         AND (NOT $10 OR overdue) AND (NOT $11 OR awaiting_follow_up) \
         AND ($12::bool IS NULL OR {SORT_KEY} > ($12, $13, $14)) \
         ORDER BY {SORT_KEY} LIMIT $15"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.all)
        .bind(&f.nodes)
        .bind(&f.units)
        .bind(&f.actor)
        .bind(&b.center_code)
        .bind(&b.category_prefix)
        .bind(b.registered_after)
        .bind(b.registered_before)
        .bind(b.states())
        .bind(b.overdue_only)
        .bind(b.queue == BoardQueue::FollowUp)
        .bind(after.map(|a| a.on_time))
        .bind(after.map(|a| a.registered_at))
        .bind(after.map(|a| a.id))
        .bind(b.limit)
        .fetch_all(conn)
        .await
}

async fn counts(conn: &mut PgConnection, f: &Filter, b: &Board) -> sqlx::Result<BoardPage> {
    let sql = format!(
        "SELECT state, count(*), count(*) FILTER (WHERE overdue), count(*) FILTER (WHERE awaiting_follow_up) \
         FROM cases WHERE {WHERE} GROUP BY state"
    );
    let rows: Vec<(CaseState, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.all)
        .bind(&f.nodes)
        .bind(&f.units)
        .bind(&f.actor)
        .bind(&b.center_code)
        .bind(&b.category_prefix)
        .bind(b.registered_after)
        .bind(b.registered_before)
        .fetch_all(conn)
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> BoardInput<'static> {
        BoardInput::default()
    }

    #[test]
    fn board_requests_parse_or_name_the_field() {
        let b = Board::parse(&input()).unwrap();
        assert_eq!((b.queue, b.limit), (BoardQueue::Board, 50));
        assert!(!b.states().contains(&CaseState::Closed), "the board shows open cases unless asked");
        let v = Board::parse(&BoardInput { queue: "verification", ..input() }).unwrap();
        assert_eq!(v.states(), [CaseState::Resolved]);
        let t = Board::parse(&BoardInput { registered_after: "2026-11-27T08:00:00+08:00", ..input() }).unwrap();
        assert_eq!(t.registered_after.unwrap().to_rfc3339(), "2026-11-27T00:00:00+00:00");
        let long = "9".repeat(13);
        for (name, r, field) in [
            ("bad center", BoardInput { center_code: "5329", ..input() }, "center_code"),
            ("long center", BoardInput { center_code: &long, ..input() }, "center_code"),
            ("NUL center", BoardInput { center_code: "53290100300\0", ..input() }, "center_code"),
            ("bad queue", BoardInput { queue: "inbox", ..input() }, "queue"),
            ("bad state", BoardInput { state: "lost", ..input() }, "state"),
            ("state with a queue", BoardInput { queue: "follow_up", state: "closed", ..input() }, "state"),
            ("letters in category", BoardInput { category_prefix: "01a", ..input() }, "category_prefix"),
            ("long category", BoardInput { category_prefix: "01021", ..input() }, "category_prefix"),
            ("bad time", BoardInput { registered_before: "yesterday", ..input() }, "registered_before"),
            ("NUL in token", BoardInput { page_token: "x\0", ..input() }, "page_token"),
        ] {
            assert_eq!(Board::parse(&r).unwrap_err().field, field, "{name}");
        }
    }

    #[test]
    fn a_token_is_bound_to_the_filters() {
        let a = Board::parse(&BoardInput { state: "dispatched", ..input() }).unwrap();
        let b = Board::parse(&BoardInput { state: "accepted", ..input() }).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        let small = Board::parse(&BoardInput { state: "dispatched", page_size: 2, ..input() }).unwrap();
        assert_eq!(a.fingerprint(), small.fingerprint(), "the page size may change between pages");
    }
}
