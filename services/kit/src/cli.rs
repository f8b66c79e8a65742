//! What every command line of the suite answers the same way: `--help` (or `-h`) prints the command's usage and
//! exits 0 before anything is connected or started, so an operator can ask any binary what it takes, and CI can
//! check each command the README shows still exists (`.ci/readme`).

use std::io::Write;

/// Prints `usage` and exits 0 when `--help` or `-h` is among the arguments; returns otherwise.
pub fn help(usage: &str) {
    if asks_for_help(std::env::args().skip(1)) {
        // A reader that stops early (`| head`) is not an error of ours.
        let _ = writeln!(std::io::stdout(), "{}", usage.trim_end());
        std::process::exit(0);
    }
}

fn asks_for_help(mut args: impl Iterator<Item = String>) -> bool {
    args.any(|a| a == "--help" || a == "-h")
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_is_asked_anywhere_among_the_arguments() {
        let asks = |args: &[&str]| super::asks_for_help(args.iter().map(|a| (*a).to_owned()));
        assert!(asks(&["--help"]) && asks(&["-h"]) && asks(&["events", "status", "--help"]));
        assert!(!asks(&[]) && !asks(&["events", "status"]) && !asks(&["--helpful"]));
    }
}
