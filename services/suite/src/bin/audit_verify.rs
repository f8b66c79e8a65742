//! `cargo run -p suite --bin audit_verify -- --schema intake [--anchors FILE]`: walks each named service's
//! audit chain and says whether it is intact (exit 0) or where it first breaks (exit 1); exit 2 when it cannot
//! check at all. With `--anchors`, the chain is also checked against the signed anchors in FILE
//! (`audit_anchor`), whose public key is AUDIT_ANCHOR_PUBLIC_KEY: a chain whose newest records were cut and
//! whose head was moved back, or whose oldest were purged early, verifies alone but not against its anchors.
//! DATABASE_URL (default the local `zongzhi` database) and AUDIT_KEY (64 hex digits) as the service has them.

use std::process::ExitCode;

use kit::audit::anchor::{self, AnchorCheck};
use kit::audit::{AuditKey, PROGRESS_EVERY, verify_anchored};
use suite::audit_cli;

const USAGE: &str = "usage: audit_verify --schema SERVICE[,SERVICE…] [--anchors FILE]   \
(DATABASE_URL, AUDIT_KEY, and with --anchors AUDIT_ANCHOR_PUBLIC_KEY, from the environment)";

#[tokio::main]
async fn main() -> ExitCode {
    kit::cli::help(USAGE);
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// True when every chain is intact.
async fn run() -> anyhow::Result<bool> {
    let args = audit_cli::parse(std::env::args().skip(1), USAGE)?;
    // The demo suite keys its chain with the development key, so verifying the demo needs no key set.
    let key = if std::env::var("AUDIT_KEY").map_or(true, |k| k.trim().is_empty()) {
        eprintln!("warning: AUDIT_KEY is unset; verifying with the development key (the demo suite's)");
        AuditKey::dev()
    } else {
        AuditKey::from_env()?
    };
    let check = match &args.anchors {
        Some(_) => Some(AnchorCheck::from_env()?),
        None => None,
    };
    let mut intact = true;
    for schema in &args.schemas {
        let anchors = match (&args.anchors, &check) {
            (Some(file), Some(check)) => anchor::read(file, schema, check)?,
            _ => Vec::new(),
        };
        intact &= verify_one(schema, &key, &anchors, args.anchors.is_some()).await?;
    }
    Ok(intact)
}

async fn verify_one(schema: &str, key: &AuditKey, anchors: &[anchor::Anchor], anchored: bool) -> anyhow::Result<bool> {
    let pool = audit_cli::pool(schema).await?;
    println!("verifying the audit chain of schema {schema}");
    if anchored {
        match anchors.iter().max_by_key(|a| a.seq) {
            Some(latest) => println!(
                "  against {} signed anchors, the latest seq {} at {}",
                anchors.len(),
                latest.seq,
                kit::time::local(latest.at)
            ),
            None => println!("  warning: the anchor file holds no anchor of schema {schema}"),
        }
    }
    let report = verify_anchored(&pool, key, anchors, |checked| {
        if checked > 0 && checked.is_multiple_of(PROGRESS_EVERY) {
            println!("  checked {checked} records");
        }
    })
    .await?;
    match &report.broken {
        None => {
            let range = report.first_seq.map(|s| format!(" (seq {s}..={})", report.head_seq)).unwrap_or_default();
            println!("chain intact: {} records{range}", report.checked);
            Ok(true)
        }
        Some(broken) => {
            println!("chain BROKEN at {broken}");
            println!("  {} records checked; everything before seq {} verified", report.checked, broken.seq);
            Ok(false)
        }
    }
}
