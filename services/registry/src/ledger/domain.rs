//! The tree ledger (树形动态管理台账) and 工作指令 directives, as values: which class a case counts in, how a
//! case event moves a case and the counters of every node on its path, the nodes a case counts at, a node's
//! counts, and a directive with its recipients and their statuses. Proto-free and SQL-free.

use chrono::{DateTime, Utc};
use kit::{FieldError, code_enum, field};
use uuid::Uuid;

use crate::shared::is_grid_code;

code_enum! {
    /// Risks (风险隐患) are counted apart from every other kind (dispute, demand, inquiry).
    pub enum KindClass {
        Risk = "risk",
        Case = "case",
    }
}

impl KindClass {
    /// The class of a case's kind; a kind this service does not know is counted with the cases.
    pub fn of(kind: Option<kit::vocab::CaseKind>) -> KindClass {
        if kind == Some(kit::vocab::CaseKind::Risk) { KindClass::Risk } else { KindClass::Case }
    }
}

code_enum! {
    /// A ledger case is open (overdue or not) or closed.
    pub enum CaseState {
        Open = "open",
        Closed = "closed",
    }
}

/// A case as the ledger holds it: where it counts and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerCase {
    pub kind_class: KindClass,
    pub nodes: Vec<String>,
    pub state: CaseState,
    pub overdue: bool,
    /// The counters' shard it counts in (see migration 1014).
    pub shard: i16,
}

/// What an event does to a case already in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Overdue,
    Close,
    Reopen,
    /// Merged into another case (case.merged): no longer open, and not closed either — the matter is counted
    /// once, at the case it was merged into.
    Merge,
    /// A merge undone (case.unmerged): open again, not yet overdue.
    Unmerge,
}

/// A change to the three counters of every node on a case's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta {
    pub open: i64,
    pub overdue: i64,
    pub closed: i64,
}

/// The case's next (open, overdue) and the counters' delta, or None when the move changes nothing: an overdue
/// case missing a second deadline, a closed case closing again, an open case "reopening".
pub fn transition(open: bool, overdue: bool, m: Move) -> Option<(bool, bool, Delta)> {
    match (m, open, overdue) {
        (Move::Overdue, true, false) => Some((true, true, Delta { overdue: 1, ..Delta::default() })),
        (Move::Close, true, was) => Some((false, false, Delta { open: -1, overdue: -i64::from(was), closed: 1 })),
        // A reopened case starts a fresh open period, not yet overdue.
        (Move::Reopen, false, _) => Some((true, false, Delta { open: 1, closed: -1, ..Delta::default() })),
        // A merged case leaves the open count without entering the closed one. Intake merges only open cases
        // and never closes or reopens a merged one, so not-open here means merged for the unmerge.
        (Move::Merge, true, was) => Some((false, false, Delta { open: -1, overdue: -i64::from(was), closed: 0 })),
        (Move::Unmerge, false, _) => Some((true, false, Delta { open: 1, ..Delta::default() })),
        _ => None,
    }
}

/// The nodes a case counts at, bottom up and without repeats: its micro-grid and grid (a micro-grid code
/// extends its grid's by three digits), its village, then the event's area path (village .. province).
pub fn path_nodes(grid: &str, village: &str, area_path: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(area_path.len() + 2);
    if is_grid_code(grid) {
        out.push(grid.to_owned());
        if grid.len() == 18 {
            out.push(grid[..15].to_owned());
        }
    }
    for code in std::iter::once(village).chain(area_path.iter().map(String::as_str)) {
        if !code.is_empty() && !out.iter().any(|c| c == code) {
            out.push(code.to_owned());
        }
    }
    out
}

/// What applying one event did, for the consumer's log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// A 督办 card counted at every node on the case's path.
    Card,
    /// Not a ledger event (dispatch, acceptance, follow-up ...).
    NotLedger,
    /// A move that changes nothing in the case's current state, or a repeated registration.
    NoChange,
    UnknownCase,
}

/// One node with its counts; nodes without cases have zeros.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerNode {
    pub code: String,
    pub name: String,
    pub level: i32,
    pub risk_open: i64,
    pub risk_overdue: i64,
    pub risk_closed: i64,
    pub case_open: i64,
    pub case_overdue: i64,
    pub case_closed: i64,
    pub risk_yellow: i64,
    pub risk_red: i64,
    pub case_yellow: i64,
    pub case_red: i64,
}

code_enum! {
    pub enum RecipientStatus {
        Pending = "pending",
        Acknowledged = "acknowledged",
        Answered = "answered",
    }
}

/// A directive as issued, checked.
pub struct NewDirective<'a> {
    /// The signed-in caller who issues it (see `kit::auth::Principal::actor`).
    pub issued_by: &'a str,
    pub issuer: &'a str,
    pub target: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub due_at: DateTime<Utc>,
}

impl<'a> NewDirective<'a> {
    /// A directive as sent by `issued_by`, its deadline after `now`.
    pub fn parse(
        issued_by: &'a str,
        issuer_center_code: &'a str,
        target_code: &'a str,
        title: &'a str,
        body: &'a str,
        due: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        Ok(NewDirective {
            issued_by,
            issuer: field::division_code("issuer_center_code", issuer_center_code)?,
            target: field::division_code("target_code", target_code)?,
            title: field::text("title", title, 100)?,
            body: field::text("body", body, 4000)?,
            due_at: due_at(due, now)?,
        })
    }
}

/// A directive's deadline: an RFC 3339 time with an offset, after `now`.
pub fn due_at(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    let v = field::required("due_at", value)?;
    let at = DateTime::parse_from_rfc3339(v)
        .map_err(|_| FieldError::new("due_at", "must be an RFC 3339 time with an offset"))?
        .with_timezone(&Utc);
    if at <= now {
        return Err(FieldError::new("due_at", "must be in the future"));
    }
    Ok(at)
}

/// A directive's report: required, at most 4000 characters.
pub fn report(value: &str) -> Result<&str, FieldError> {
    field::text("report", value, 4000)
}

/// A recipient listing's status filter: empty for every status.
pub fn status_filter(value: &str) -> Result<Option<RecipientStatus>, FieldError> {
    match value.trim() {
        "" => Ok(None),
        s => RecipientStatus::parse("status", s).map(Some),
    }
}

/// Recipients are village centers, so a recipient page token is a 12-digit code below the target (or the
/// target itself, when the target is a village).
pub fn recipients_page_token<'a>(token: &'a str, target: &str) -> Result<&'a str, FieldError> {
    let after = token.trim();
    let issued = kit::division::is_code(after) && after.starts_with(crate::shared::child_prefix(target));
    if !after.is_empty() && !issued {
        return Err(FieldError::new("page_token", "is not a token this service issued"));
    }
    Ok(after)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Directive {
    pub id: Uuid,
    pub issuer_center_code: String,
    pub target_code: String,
    pub title: String,
    pub body: String,
    pub due_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recipient {
    pub center_code: String,
    pub name: String,
    pub status: RecipientStatus,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub report: Option<String>,
}

/// Status counts of the recipients under one child of the target (or of all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Totals {
    pub code: String,
    pub name: String,
    pub recipients: i64,
    pub pending: i64,
    pub acknowledged: i64,
    pub answered: i64,
    pub late: i64,
}

impl Totals {
    /// The totals over every branch, under the target's code.
    pub fn sum(target: &str, branches: &[Totals]) -> Totals {
        let mut all = Totals { code: target.to_owned(), ..Totals::default() };
        for b in branches {
            all.recipients += b.recipients;
            all.pending += b.pending;
            all.acknowledged += b.acknowledged;
            all.answered += b.answered;
            all.late += b.late;
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_count_each_open_period_once() {
        let d = |open, overdue, closed| Delta { open, overdue, closed };
        let cases = [
            ("overdue while open", (true, false, Move::Overdue), Some((true, true, d(0, 1, 0)))),
            ("overdue again", (true, true, Move::Overdue), None),
            ("overdue after closing", (false, false, Move::Overdue), None),
            ("close on time", (true, false, Move::Close), Some((false, false, d(-1, 0, 1)))),
            ("close overdue", (true, true, Move::Close), Some((false, false, d(-1, -1, 1)))),
            ("close twice", (false, false, Move::Close), None),
            ("reopen", (false, false, Move::Reopen), Some((true, false, d(1, 0, -1)))),
            ("reopen an open case", (true, false, Move::Reopen), None),
            ("merge an overdue case", (true, true, Move::Merge), Some((false, false, d(-1, -1, 0)))),
            ("merge twice", (false, false, Move::Merge), None),
            ("unmerge", (false, false, Move::Unmerge), Some((true, false, d(1, 0, 0)))),
            ("unmerge an open case", (true, false, Move::Unmerge), None),
        ];
        for (name, (open, overdue, m), want) in cases {
            assert_eq!(transition(open, overdue, m), want, "{name}");
        }
    }

    #[test]
    fn directives_name_the_field_they_refuse() {
        /// issuer_center_code, target_code, title, body, due_at.
        const OK: [&str; 5] = ["532901000000", "532901003000", "排查", "排查隐患", "2099-01-01T00:00:00+08:00"];
        let now = Utc::now();
        let directive = |i: usize, value: &str| {
            let mut f = OK;
            f[i] = value;
            NewDirective::parse("p", f[0], f[1], f[2], f[3], f[4], now).err().map(|e| e.field)
        };
        assert_eq!(directive(0, OK[0]), None);
        let (long, body) = ("x".repeat(101), "排".repeat(4001));
        for (field, i, value) in [
            ("issuer_center_code", 0, ""),
            ("target_code", 1, "532901003001002"),
            ("title", 2, long.as_str()),
            ("title", 2, "a\0b"),
            ("title", 2, " "),
            ("body", 3, ""),
            ("body", 3, body.as_str()),
            ("due_at", 4, "tomorrow"),
            ("due_at", 4, "next week"),
            ("due_at", 4, "2099-01-01T00:00:00"),
            ("due_at", 4, "2000-01-01T00:00:00Z"),
        ] {
            assert_eq!(directive(i, value).as_deref(), Some(field), "{value:?}");
        }
        assert_eq!(report("").unwrap_err().field, "report");
        assert_eq!(status_filter(" "), Ok(None));
        assert_eq!(status_filter("answered"), Ok(Some(RecipientStatus::Answered)));
        assert_eq!(status_filter("done").unwrap_err().field, "status");
    }

    #[test]
    fn recipient_tokens_are_village_codes_below_the_target() {
        assert_eq!(recipients_page_token("", "532901000000"), Ok(""));
        assert_eq!(recipients_page_token("532901003001", "532901000000"), Ok("532901003001"));
        for bad in ["532902003001", "532901003001002", "x", "😀"] {
            assert_eq!(recipients_page_token(bad, "532901000000").unwrap_err().field, "page_token", "{bad}");
        }
        let b = |n| Totals { recipients: n, pending: n, ..Totals::default() };
        assert_eq!(
            Totals::sum("t", &[b(1), b(2)]),
            Totals { code: "t".into(), recipients: 3, pending: 3, ..Totals::default() }
        );
        assert_eq!(KindClass::of(Some(kit::vocab::CaseKind::Risk)), KindClass::Risk);
        assert_eq!(KindClass::of(Some(kit::vocab::CaseKind::Dispute)), KindClass::Case);
        assert_eq!(KindClass::of(None), KindClass::Case);
    }

    #[test]
    fn path_nodes_adds_grids_and_skips_repeats() {
        let area: Vec<String> = ["532901001001", "532901001000", "532901000000"].map(String::from).into();
        let got = path_nodes("532901001001001002", "532901001001", &area);
        assert_eq!(got[..3], ["532901001001001002", "532901001001001", "532901001001"]);
        assert_eq!(got.len(), 5);
        assert_eq!(path_nodes("", "532901001001", &[]), vec!["532901001001".to_owned()]);
    }
}
