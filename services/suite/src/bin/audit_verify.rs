//! `cargo run -p suite --bin audit_verify -- --schema intake`: walks one service's audit chain and says
//! whether it is intact (exit 0) or where it first breaks (exit 1); exit 2 when it cannot check at all.
//! DATABASE_URL (default the local `zongzhi` database) and AUDIT_KEY (64 hex digits) as the service has them.

use std::process::ExitCode;

use kit::audit::{AuditKey, PROGRESS_EVERY, verify};
use kit::config::string_or;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const USAGE: &str = "usage: audit_verify --schema SERVICE   (DATABASE_URL, AUDIT_KEY from the environment)";

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

/// True when the chain is intact.
async fn run() -> anyhow::Result<bool> {
    let schema = schema_arg(std::env::args().skip(1))?;
    // The demo suite keys its chain with the development key, so verifying the demo needs no key set.
    let key = if std::env::var("AUDIT_KEY").map_or(true, |k| k.trim().is_empty()) {
        eprintln!("warning: AUDIT_KEY is unset; verifying with the development key (the demo suite's)");
        AuditKey::dev()
    } else {
        AuditKey::from_env()?
    };
    let url = string_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zongzhi");
    let options = url
        .parse::<PgConnectOptions>()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL does not parse: {e}"))?
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {}: {e}", kit::db::redact(&url)))?;
    // Checked first, so a wrong schema reads as such rather than as a missing-relation error.
    let has_trail: bool = sqlx::query_scalar("SELECT to_regclass('audit_head') IS NOT NULL").fetch_one(&pool).await?;
    if !has_trail {
        anyhow::bail!("schema {schema:?} has no audit trail (audit_head not found)");
    }
    println!("verifying the audit chain of schema {schema}");
    let report = verify(&pool, &key, |checked| {
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

/// `--schema NAME` or `--schema=NAME`, in the form kit accepts for DATABASE_SCHEMA.
fn schema_arg(mut args: impl Iterator<Item = String>) -> anyhow::Result<String> {
    let mut schema = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--schema" => schema = args.next(),
            a if a.starts_with("--schema=") => schema = Some(a["--schema=".len()..].to_owned()),
            "-h" | "--help" => anyhow::bail!("{USAGE}"),
            other => anyhow::bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    let schema = schema.ok_or_else(|| anyhow::anyhow!("--schema is required\n{USAGE}"))?;
    if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        anyhow::bail!("--schema must be lowercase letters, digits and underscores, got {schema:?}");
    }
    Ok(schema)
}
