//! The task queue (待办): what a handler or a unit opens the system for. Open tasks of the caller's units and
//! the tasks the caller handles, filtered and counted in SQL (never after fetching), overdue first, then by
//! the missed deadline's due time, then the oldest dispatch first.

use chrono::{DateTime, Utc};
use kit::FieldError;
use kit::auth::{Permission, Principal};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::TASK_COLUMNS;
use crate::domain::{OPEN, Task, TaskState};
use crate::error::Result;
use crate::service::Tasks;
use kit::page;

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
        state: &str,
        mine: bool,
        unit_code: &str,
        overdue_only: bool,
        page_size: u32,
        page_token: &str,
    ) -> std::result::Result<Self, FieldError> {
        let state = match kit::field::bounded("state", state, 32)? {
            "" => None,
            s => match TaskState::parse("state", s)? {
                open if OPEN.contains(&open) => Some(open),
                _ => return Err(FieldError::new("state", "must be an open state: dispatched, accepted or returned")),
            },
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
    fn fingerprint(&self, who: &str) -> u64 {
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

/// Whose tasks a caller's queue holds: the units of their HandleTask and ReadCase grants (unit scope), and
/// the tasks they handle themselves (a grid worker's own work). A center's tree scope is not a unit: a
/// dispatcher's view of cases is the case board, not this queue.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub all: bool,
    pub units: Vec<String>,
    pub handler: String,
}

impl Reach {
    pub fn of(p: &Principal) -> Self {
        let handle = p.scope(Permission::HandleTask);
        let read = p.scope(Permission::ReadCase);
        let mut units = handle.units;
        units.extend(read.units);
        units.sort();
        units.dedup();
        Self { all: handle.all, units, handler: handle.own.unwrap_or_default() }
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
struct After {
    on_time: bool,
    due: Option<DateTime<Utc>>,
    dispatched: DateTime<Utc>,
    id: Uuid,
}

impl Tasks {
    pub async fn queue(&self, p: &Principal, q: &Queue) -> Result<QueuePage> {
        let filters = q.fingerprint(p.actor());
        let after = match page::decode(&q.token, filters, 4)? {
            None => None,
            Some(k) => Some(After {
                on_time: !page::parse_flag(&k[0])?,
                due: page::parse_time(&k[1])?,
                dispatched: page::parse_time(&k[2])?.ok_or_else(page::bad_token)?,
                id: page::parse_id(&k[3])?,
            }),
        };
        let reach = Reach::of(p);
        let mine = if q.mine { p.actor() } else { "" };
        let mut conn = self.pool.acquire().await?;
        let tasks = page_of(&mut conn, &reach, q, mine, after.as_ref()).await?;
        let (counts, overdue) = counts(&mut conn, &reach, q, mine).await?;
        let next_page_token = match tasks.last() {
            Some(t) if tasks.len() as i64 == q.limit => page::encode(
                filters,
                &[
                    if t.overdue { "1" } else { "0" }.to_owned(),
                    page::time(t.due_at),
                    page::time(Some(t.dispatched_at)),
                    t.id.to_string(),
                ],
            ),
            _ => String::new(),
        };
        Ok(QueuePage { tasks, next_page_token, counts, overdue })
    }
}

/// The queue's WHERE clause over `tasks t`, minus the state and overdue filters and the cursor: the caller's
/// reach ($1 all, $2 units, $3 own handler id), `mine` ($4) and the unit filter ($5).
const REACH: &str = "($1 OR t.unit_code = ANY($2::text[]) OR ($3 <> '' AND t.handler_id = $3)) \
    AND ($4 = '' OR t.handler_id = $4) AND ($5 = '' OR t.unit_code = $5)";

/// The sort key, ascending: overdue first, then the missed deadline's due time, then the oldest dispatch.
const SORT_KEY: &str = "(NOT t.overdue, COALESCE(t.due_at, 'infinity'::timestamptz), t.dispatched_at, t.id)";

async fn page_of(
    conn: &mut PgConnection,
    reach: &Reach,
    q: &Queue,
    mine: &str,
    after: Option<&After>,
) -> sqlx::Result<Vec<Task>> {
    let states: Vec<TaskState> = q.state.map_or_else(|| OPEN.to_vec(), |s| vec![s]);
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t JOIN cases c ON c.id = t.case_id \
         WHERE t.state = ANY($6::text[]) AND {REACH} AND (NOT $7 OR t.overdue) \
         AND ($8::bool IS NULL OR {SORT_KEY} > ($8, COALESCE($9, 'infinity'::timestamptz), $10, $11)) \
         ORDER BY {SORT_KEY} LIMIT $12"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(reach.all)
        .bind(&reach.units)
        .bind(&reach.handler)
        .bind(mine)
        .bind(&q.unit_code)
        .bind(states)
        .bind(q.overdue_only)
        .bind(after.map(|a| a.on_time))
        .bind(after.and_then(|a| a.due))
        .bind(after.map(|a| a.dispatched))
        .bind(after.map(|a| a.id))
        .bind(q.limit)
        .fetch_all(conn)
        .await
}

/// Open tasks per state within the reach, `mine` and the unit filter, and how many of them are overdue.
async fn counts(
    conn: &mut PgConnection,
    reach: &Reach,
    q: &Queue,
    mine: &str,
) -> sqlx::Result<(Vec<(TaskState, u64)>, u64)> {
    let sql = format!(
        "SELECT t.state, count(*), count(*) FILTER (WHERE t.overdue) FROM tasks t \
         WHERE t.state = ANY($6::text[]) AND {REACH} GROUP BY t.state"
    );
    let rows: Vec<(TaskState, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(reach.all)
        .bind(&reach.units)
        .bind(&reach.handler)
        .bind(mine)
        .bind(&q.unit_code)
        .bind(&OPEN[..])
        .fetch_all(conn)
        .await?;
    let count = |s: TaskState| rows.iter().find(|r| r.0 == s).map_or(0, |r| r.1.unsigned_abs());
    let overdue = rows.iter().map(|r| r.2.unsigned_abs()).sum();
    Ok((OPEN.iter().map(|s| (*s, count(*s))).collect(), overdue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_requests_parse_or_name_the_field() {
        let q = Queue::parse("", true, "", false, 0, "").unwrap();
        assert_eq!((q.state, q.limit), (None, 50));
        assert_eq!(Queue::parse("accepted", false, "", false, 10_000, "").unwrap().limit, 200, "page size capped");
        for (name, state, unit, token, field) in [
            ("closed state", "resolved", "", "", "state"),
            ("unknown state", "nope", "", "", "state"),
            ("NUL in state", "dispatched\0", "", "", "state"),
            ("long unit", "", &"U".repeat(65) as &str, "", "unit_code"),
            ("NUL in unit", "", "532901003-SFS\0", "", "unit_code"),
            ("NUL in token", "", "", "abc\0", "page_token"),
        ] {
            let err = Queue::parse(state, false, unit, false, 0, token).unwrap_err();
            assert_eq!(err.field, field, "{name}");
        }
    }

    #[test]
    fn a_token_is_bound_to_the_filters_and_the_reader_of_mine() {
        let q = Queue::parse("accepted", true, "", false, 0, "").unwrap();
        assert_ne!(q.fingerprint("a"), q.fingerprint("b"), "mine differs per reader");
        let all = Queue::parse("accepted", false, "", false, 0, "").unwrap();
        assert_eq!(all.fingerprint("a"), all.fingerprint("b"));
        assert_ne!(q.fingerprint("a"), all.fingerprint("a"));
    }
}
