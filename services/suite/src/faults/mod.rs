//! The fault suite (issue 7): each service and the gateway run as their own processes on a private database
//! and nats-server, clients register cases through the gateway while one fault happens, and afterwards the
//! databases are counted: acknowledged = cases = dispatched, nothing twice, nothing stuck. `cargo run
//! --release -p suite --bin faults -- all` runs every fault; `cargo test -p tests --test faults` a fast subset.

mod around;
pub mod count;
pub mod env;
pub mod load;
pub mod procs;
mod scenarios;

use std::fmt::Write as _;

pub use count::Counts;

/// The faults of issue 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    F1,
    F2,
    F3,
    F4,
    F5,
    F6,
    F7,
    F8,
    F9,
    F10,
    F11,
}

impl Fault {
    /// In the order `all` runs them: F6 restarts the machine's PostgreSQL, so it goes last.
    pub const ALL: [Fault; 11] = [
        Fault::F1,
        Fault::F2,
        Fault::F3,
        Fault::F4,
        Fault::F5,
        Fault::F7,
        Fault::F8,
        Fault::F9,
        Fault::F10,
        Fault::F11,
        Fault::F6,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id().eq_ignore_ascii_case(s))
    }

    pub fn id(self) -> &'static str {
        match self {
            Fault::F1 => "F1",
            Fault::F2 => "F2",
            Fault::F3 => "F3",
            Fault::F4 => "F4",
            Fault::F5 => "F5",
            Fault::F6 => "F6",
            Fault::F7 => "F7",
            Fault::F8 => "F8",
            Fault::F9 => "F9",
            Fault::F10 => "F10",
            Fault::F11 => "F11",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Fault::F1 => "kill -9 intake repeatedly",
            Fault::F2 => "kill -9 gateway, clients retry",
            Fault::F3 => "kill -9 producer commit→publish",
            Fault::F4 => "NATS stopped",
            Fault::F5 => "NATS kill -9",
            Fault::F6 => "PostgreSQL restart (immediate)",
            Fault::F7 => "consumer dies after commit, pre-ack",
            Fault::F8 => "supervision down across deadline",
            Fault::F9 => "1,000 client cancellations",
            Fault::F10 => "SIGTERM under load",
            Fault::F11 => "poison message in a burst",
        }
    }
}

/// How big a run is: `short` is the cargo-test size (smaller loads, F4's outage 10 s instead of 60 s).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub short: bool,
}

/// One fault's result: the counts, what else was checked, and every check that failed.
#[derive(Debug)]
pub struct Outcome {
    pub fault: Fault,
    pub counts: Counts,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs one fault in its own world and counts.
pub async fn run(fault: Fault, opts: Options) -> anyhow::Result<Outcome> {
    scenarios::run(fault, opts).await
}

pub fn header() -> String {
    format!(
        "{:<4} {:<36} {:>6} {:>6} {:>10} {:>9} {:>9} {:>6} {:>9} {:>6} {:>8} {:>7} {:>8} {:>5}  result",
        "",
        "fault",
        "acked",
        "cases",
        "dispatched",
        "dup tasks",
        "dup dlns",
        "fired",
        "dup fired",
        "ledger",
        "dup ledg",
        "credits",
        "dup cred",
        "dead"
    )
}

pub fn row(o: &Outcome) -> String {
    let c = &o.counts;
    let mut line = format!(
        "{:<4} {:<36} {:>6} {:>6} {:>10} {:>9} {:>9} {:>6} {:>9} {:>6} {:>8} {:>7} {:>8} {:>5}  {}",
        o.fault.id(),
        o.fault.title(),
        c.acked,
        c.cases,
        c.dispatched,
        c.dup_tasks,
        c.dup_deadlines,
        c.fired,
        c.dup_fired,
        c.ledger,
        c.dup_ledger,
        c.credits,
        c.dup_credits,
        c.dead_letters,
        if o.passed() { "PASS" } else { "FAIL" }
    );
    if !o.notes.is_empty() {
        let _ = write!(line, "  ({})", o.notes.join("; "));
    }
    for f in &o.failures {
        let _ = write!(line, "\n     ✗ {f}");
    }
    line
}
