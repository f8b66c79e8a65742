//! The task queue (待办) as the domain sees it: the request parsed and the keyset page it asks for. The queue
//! is what a handler or a unit opens the system for: open tasks of the caller's units and the tasks the caller
//! handles (`scope::Reach`), filtered and counted in SQL (`db::queue_page`, `db::queue_counts`; never after
//! fetching), overdue first, then by the missed deadline's due time, then the oldest dispatch first.

use chrono::{DateTime, Utc};
use kit::{FieldError, page};
use uuid::Uuid;

use crate::domain::{OPEN, Task, TaskState};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// A queue request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// None: every open state.
    pub state: Option<TaskState>,
    pub mine: bool,
    pub unit_code: String,
    pub overdue_only: bool,
    pub limit: i64,
    pub token: String,
}

impl Queue {
    pub fn parse(
        state: i32,
        mine: bool,
        unit_code: &str,
        overdue_only: bool,
        page_size: u32,
        page_token: &str,
    ) -> std::result::Result<Self, FieldError> {
        let state = match TaskState::from_filter("state", state)? {
            None => None,
            Some(open) if OPEN.contains(&open) => Some(open),
            Some(_) => return Err(FieldError::new("state", "must be an open state: dispatched, accepted or returned")),
        };
        Ok(Self {
            state,
            mine,
            unit_code: kit::field::bounded("unit_code", unit_code, 64)?.to_owned(),
            overdue_only,
            limit: page::size(page_size, DEFAULT_PAGE, MAX_PAGE),
            token: page::clean_token(page_token)?,
        })
    }

    /// The filters a page token is bound to.
    pub fn fingerprint(&self, who: &str) -> u64 {
        let state = self.state.map_or("", TaskState::as_str);
        page::fingerprint(&[
            "tasks",
            state,
            if self.mine { who } else { "" },
            &self.unit_code,
            if self.overdue_only { "overdue" } else { "" },
        ])
    }
}

/// One page of the queue and its counts.
#[derive(Debug)]
pub struct QueuePage {
    pub tasks: Vec<Task>,
    pub next_page_token: String,
    /// Per open state, in [`OPEN`] order, whatever the state and overdue filters.
    pub counts: Vec<(TaskState, u64)>,
    pub overdue: u64,
}

/// Where a page ends: the last task's sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub on_time: bool,
    pub due: Option<DateTime<Utc>>,
    pub dispatched: DateTime<Utc>,
    pub id: Uuid,
}

impl Queue {
    /// Where the page asked for starts: None for the first page, else the key its token carries, refused
    /// unless it was issued for these very filters (and, for `mine`, this reader).
    pub fn after(&self, who: &str) -> std::result::Result<Option<After>, FieldError> {
        let Some(k) = page::decode(&self.token, self.fingerprint(who), 4)? else { return Ok(None) };
        Ok(Some(After {
            on_time: !page::parse_flag(&k[0])?,
            due: page::parse_time(&k[1])?,
            dispatched: page::parse_time(&k[2])?.ok_or_else(page::bad_token)?,
            id: page::parse_id(&k[3])?,
        }))
    }

    /// The token of the page after `tasks`, empty when this page is the last.
    pub fn next_token(&self, who: &str, tasks: &[Task]) -> String {
        match tasks.last() {
            Some(t) if tasks.len() as i64 == self.limit => page::encode(
                self.fingerprint(who),
                &[
                    if t.overdue { "1" } else { "0" }.to_owned(),
                    page::time(t.due_at),
                    page::time(Some(t.dispatched_at)),
                    t.id.to_string(),
                ],
            ),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: i32 = proto::vocab::v1::TaskState::Accepted as i32;

    #[test]
    fn queue_requests_parse_or_name_the_field() {
        let q = Queue::parse(0, true, "", false, 0, "").unwrap();
        assert_eq!((q.state, q.limit), (None, 50));
        assert_eq!(Queue::parse(ACCEPTED, false, "", false, 10_000, "").unwrap().limit, 200, "page size capped");
        let resolved = proto::vocab::v1::TaskState::Resolved as i32;
        for (name, state, unit, token, field) in [
            ("closed state", resolved, "", "", "state"),
            ("unknown state", 99, "", "", "state"),
            ("long unit", 0, &"U".repeat(65) as &str, "", "unit_code"),
            ("NUL in unit", 0, "532901003-SFS\0", "", "unit_code"),
            ("NUL in token", 0, "", "abc\0", "page_token"),
        ] {
            let err = Queue::parse(state, false, unit, false, 0, token).unwrap_err();
            assert_eq!(err.field, field, "{name}");
        }
    }

    #[test]
    fn a_token_is_bound_to_the_filters_and_the_reader_of_mine() {
        let q = Queue::parse(ACCEPTED, true, "", false, 0, "").unwrap();
        assert_ne!(q.fingerprint("a"), q.fingerprint("b"), "mine differs per reader");
        let all = Queue::parse(ACCEPTED, false, "", false, 0, "").unwrap();
        assert_eq!(all.fingerprint("a"), all.fingerprint("b"));
        assert_ne!(q.fingerprint("a"), all.fingerprint("a"));
    }
}
