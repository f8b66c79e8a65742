//! Supervision's settings: what every service needs ([`kit::Config`]) and how often the deadline scheduler
//! looks for due deadlines. Read from the environment once, in `main`; the suite and the tests compose them
//! with [`Settings::new`].

use std::time::Duration;

use kit::config::parse_or;

/// How often due deadlines are looked for by default, so how late past due one may fire.
pub const DEFAULT_DEADLINE_POLL: Duration = Duration::from_millis(1000);
/// The shortest poll accepted: a smaller DEADLINE_POLL_MS is raised to this rather than spinning.
pub const MIN_DEADLINE_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: kit::Config,
    /// How often the scheduler looks for due deadlines (DEADLINE_POLL_MS).
    pub deadline_poll: Duration,
}

impl Settings {
    /// The common settings with supervision's defaults.
    pub fn new(common: kit::Config) -> Self {
        Self { common, deadline_poll: DEFAULT_DEADLINE_POLL }
    }

    /// Reads the common settings ([`kit::Config::from_env`]) and DEADLINE_POLL_MS (default 1000, at least 10).
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::new(kit::Config::from_env(crate::NAME, crate::DEFAULT_PORT)?);
        let default_ms = u64::try_from(defaults.deadline_poll.as_millis()).unwrap_or(u64::MAX);
        let poll = Duration::from_millis(parse_or("DEADLINE_POLL_MS", default_ms)?);
        Ok(Self { deadline_poll: poll.max(MIN_DEADLINE_POLL), ..defaults })
    }
}
