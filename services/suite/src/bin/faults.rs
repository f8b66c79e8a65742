//! The fault suite: `cargo run --release -p suite --bin faults -- all` (or `-- F1 F4 …`; `--short` for the
//! cargo-test sizes). Each fault starts its own database, nats-server and one process per service, drives
//! registrations through the gateway while the fault happens, and prints one table row of counts. F6 restarts
//! the machine's PostgreSQL and runs last. Exits non-zero when any fault fails.

use suite::faults::{self, Fault, Options};

#[tokio::main]
async fn main() {
    kit::cli::help(
        "usage: faults [--short] all | F1 … F11   (--short: the cargo-test sizes; F6 restarts PostgreSQL and runs last)",
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let short = args.iter().any(|a| a == "--short");
    let mut chosen: Vec<Fault> = Vec::new();
    for a in args.iter().filter(|a| !a.starts_with("--")) {
        if a == "all" {
            chosen.extend(Fault::ALL);
        } else if let Some(f) = Fault::parse(a) {
            chosen.push(f);
        } else {
            eprintln!("unknown fault {a:?}: use all, F1 … F11, --short");
            std::process::exit(2);
        }
    }
    if chosen.is_empty() {
        eprintln!("usage: faults [--short] all | F1 … F11");
        std::process::exit(2);
    }
    println!("{}", faults::header());
    let mut failed = 0;
    for fault in chosen {
        // Ctrl-C or SIGTERM drops the running fault, whose world then kills its processes and drops its
        // database on the way out.
        let outcome = tokio::select! {
            o = faults::run(fault, Options { short }) => Some(o),
            () = kit::shutdown::signal() => None,
        };
        let Some(outcome) = outcome else {
            eprintln!("interrupted during {}", fault.id());
            std::process::exit(130);
        };
        match outcome {
            Ok(outcome) => {
                failed += usize::from(!outcome.passed());
                println!("{}", faults::row(&outcome));
            }
            Err(e) => {
                failed += 1;
                println!("{:<4} {:<36} could not run: {e:#}", fault.id(), fault.title());
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
