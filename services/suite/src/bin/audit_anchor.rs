//! `cargo run -p suite --bin audit_anchor -- --schema intake,routing --anchors FILE`: signs each named
//! service's audit head (sequence number and hash, with the time) with AUDIT_ANCHOR_KEY and appends it to FILE,
//! one JSON line per anchor, flushed to disk. Run it periodically (the deployment's CronJob, hourly) with a key
//! no service holds, writing to storage the services cannot reach; `audit_verify --anchors FILE` then catches
//! records cut from either end of a chain. `audit_anchor keygen` prints a new key and its public half.

use std::process::ExitCode;

use kit::audit::anchor::{self, AnchorKey};
use suite::audit_cli;

const USAGE: &str = "usage: audit_anchor --schema SERVICE[,SERVICE…] --anchors FILE   \
(DATABASE_URL and AUDIT_ANCHOR_KEY from the environment)
       audit_anchor keygen   prints a new AUDIT_ANCHOR_KEY and its AUDIT_ANCHOR_PUBLIC_KEY";

#[tokio::main]
async fn main() -> ExitCode {
    kit::cli::help(USAGE);
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("keygen") {
        let seed = kit::auth::token::random_seed();
        let key = AnchorKey::from_seed(&seed)?;
        println!("AUDIT_ANCHOR_KEY={}", kit::auth::token::seed_hex(&seed));
        println!("AUDIT_ANCHOR_PUBLIC_KEY={}", key.public());
        return Ok(());
    }
    let args = audit_cli::parse(std::env::args().skip(1), USAGE)?;
    let file = args.anchors.ok_or_else(|| anyhow::anyhow!("--anchors is required\n{USAGE}"))?;
    let key = AnchorKey::from_env()?;
    for (i, schema) in args.schemas.iter().enumerate() {
        let pool = audit_cli::pool(schema).await?;
        let signed = anchor::anchor(&pool, schema, &key).await?;
        anchor::append(&file, &signed)?;
        println!(
            "[{}/{}] anchored {schema} at seq {} ({})",
            i + 1,
            args.schemas.len(),
            signed.seq,
            kit::time::local(signed.at)
        );
    }
    Ok(())
}
