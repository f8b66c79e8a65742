//! The case board (工作台), as the domain sees it: the request parsed, the states each queue shows, and the
//! keyset page it asks for. The cases are those a reader opens the system for, within their read scope,
//! filtered and counted in SQL (`db::board_page`, `db::board_counts`; never after fetching), overdue first,
//! then the oldest registration first.
//!
//! One call serves every board: a dispatcher's (a center's subtree by state), a grid worker's (their grids,
//! because their read scope is grid codes), and a center head's queues awaiting 核查 (`verification`: resolved)
//! and awaiting 回访 (`follow_up`: closed, not yet visited). The queues are a parameter rather than RPCs of
//! their own because they differ from the board only in the states they fix; scope, filters, order, paging and
//! counts are the same, and one query keeps them so. The queues read with ReadCase scope, like the board: a
//! center head sees what awaits 回访 without being the one who calls.

use chrono::{DateTime, Utc};
use kit::ids::CaseId;
use kit::{FieldError, code_enum, field, page};

use crate::domain::{Case, CaseState};

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
    pub state: i32,
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
        let state = CaseState::from_filter("state", r.state)?;
        if state.is_some() && queue != BoardQueue::Board {
            return Err(FieldError::new("state", format!("is fixed by queue {queue}; leave it unset")));
        }
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

    /// The states the board shows: the queue's, the one asked for, or every open one (all but closed and merged:
    /// a merged case is handled as the case it was merged into, so the board shows it once, there; its own
    /// count stays in `counts` under `merged`).
    pub fn states(&self) -> Vec<CaseState> {
        match (self.queue, self.state) {
            (BoardQueue::Verification, _) => vec![CaseState::Resolved],
            (BoardQueue::FollowUp, _) => vec![CaseState::Closed],
            (BoardQueue::Board, Some(s)) => vec![s],
            (BoardQueue::Board, None) => CaseState::ALL.iter().copied().filter(|s| s.is_open()).collect(),
        }
    }

    /// The filters a page token is bound to (not the page size, which may change between pages).
    pub fn fingerprint(&self) -> u64 {
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

/// Where a page ends: the last case's sort key (overdue first, then the oldest registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub on_time: bool,
    pub registered_at: DateTime<Utc>,
    pub id: CaseId,
}

impl Board {
    /// Where the page asked for starts: None for the first page, else the key its token carries, refused
    /// unless it was issued for these very filters.
    pub fn after(&self) -> std::result::Result<Option<After>, FieldError> {
        let Some(k) = page::decode(&self.token, self.fingerprint(), 3)? else { return Ok(None) };
        Ok(Some(After {
            on_time: !page::parse_flag(&k[0])?,
            registered_at: page::parse_time(&k[1])?.ok_or_else(page::bad_token)?,
            // A token this service issued (its fingerprint checked): the id is of a case it listed.
            id: CaseId::from_stored(page::parse_id(&k[2])?),
        }))
    }

    /// The token of the page after `cases`, empty when this page is the last.
    pub fn next_token(&self, cases: &[Case]) -> String {
        match cases.last() {
            Some(c) if cases.len() as i64 == self.limit => page::encode(
                self.fingerprint(),
                &[if c.overdue { "1" } else { "0" }.to_owned(), page::time(Some(c.registered_at)), c.id.to_string()],
            ),
            _ => String::new(),
        }
    }
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
            ("bad state", BoardInput { state: 99, ..input() }, "state"),
            (
                "state with a queue",
                BoardInput { queue: "follow_up", state: CaseState::Closed.into(), ..input() },
                "state",
            ),
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
        let a = Board::parse(&BoardInput { state: CaseState::Dispatched.into(), ..input() }).unwrap();
        let b = Board::parse(&BoardInput { state: CaseState::Accepted.into(), ..input() }).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        let small = Board::parse(&BoardInput { state: CaseState::Dispatched.into(), page_size: 2, ..input() }).unwrap();
        assert_eq!(a.fingerprint(), small.fingerprint(), "the page size may change between pages");
    }
}
