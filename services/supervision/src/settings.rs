//! Supervision's settings: what every service needs ([`kit::Config`]) and how often the deadline scheduler
//! looks for due deadlines. Read from the environment once, in `main`; the suite and the tests compose them
//! with [`Settings::new`].

use std::path::PathBuf;
use std::time::Duration;

use kit::config::parse_or;

/// How often due deadlines are looked for by default, so how late past due one may fire.
pub const DEFAULT_DEADLINE_POLL: Duration = Duration::from_millis(1000);
/// The shortest poll accepted: a smaller DEADLINE_POLL_MS is raised to this rather than spinning.
pub const MIN_DEADLINE_POLL: Duration = Duration::from_millis(10);

/// Where the slips' CJK font is by default: Debian's fonts-wqy-microhei (the container image copies it there).
pub const DEFAULT_SLIP_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: kit::Config,
    /// How often the scheduler looks for due deadlines (DEADLINE_POLL_MS).
    pub deadline_poll: Duration,
    /// The TrueType/OpenType font (a .ttf, or the first face of a .ttc) printed slips embed (SLIP_FONT).
    pub slip_font: PathBuf,
    /// Routing, asked whether a task is resolved that supervision has not yet seen resolved (ROUTING_URL).
    pub routing_url: String,
}

impl Settings {
    /// The common settings with supervision's defaults.
    pub fn new(common: kit::Config) -> Self {
        Self {
            common,
            deadline_poll: DEFAULT_DEADLINE_POLL,
            slip_font: PathBuf::from(DEFAULT_SLIP_FONT),
            routing_url: kit::config::local_url(kit::config::ports::ROUTING),
        }
    }

    /// Reads the common settings ([`kit::Config::from_env`]), DEADLINE_POLL_MS (default 1000, at least 10) and
    /// SLIP_FONT and ROUTING_URL.
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::new(kit::Config::from_env(crate::NAME, crate::DEFAULT_PORT)?);
        let default_ms = u64::try_from(defaults.deadline_poll.as_millis()).unwrap_or(u64::MAX);
        let poll = Duration::from_millis(parse_or("DEADLINE_POLL_MS", default_ms)?);
        let slip_font = kit::config::string_or("SLIP_FONT", DEFAULT_SLIP_FONT).into();
        let routing_url = kit::config::peer_url("ROUTING_URL", kit::config::ports::ROUTING);
        Ok(Self { deadline_poll: poll.max(MIN_DEADLINE_POLL), slip_font, routing_url, ..defaults })
    }
}
