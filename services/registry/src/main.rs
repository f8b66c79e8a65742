//! `registry` serves the grid registry; `registry import FILE [--edition E] [--retire-missing]
//! [--establish-centers]` imports a division table (CSV or gzip CSV) and prints progress; `registry keygen KID`
//! prints a new Ed25519 signing key (64 hex digits, for SERVICE_KEY or AUTH_SIGNING_KEY) and its public JWK (for
//! the JWKS every service trusts). A service's key must have the kid `service:<name>`. `registry events …` runs
//! the operator's commands on the registry's consumer (kit::events::ops).

use anyhow::Context;

const USAGE: &str = "usage: registry   serves the grid registry, configured by the environment
       registry import FILE [--edition E] [--retire-missing] [--establish-centers]
       registry keygen KID   (e.g. service:intake, zongzhi-1)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help(&format!(
        "{USAGE}\n{}",
        kit::events::ops::USAGE.replace("<service>", registry::NAME).replacen("usage: ", "       ", 1)
    ));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("keygen") {
        let kid = args.get(1).context("usage: registry keygen KID (e.g. service:intake, zongzhi-1)")?;
        let seed = kit::auth::token::random_seed();
        let jwk = kit::auth::Signer::from_seed(kid, &seed, "", "").jwk()?;
        println!("private key (keep secret): {}", kit::auth::token::seed_hex(&seed));
        println!("public JWK (add to the JWKS): {}", serde_json::to_string(&jwk)?);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("import") {
        kit::telemetry::init(registry::NAME);
        let settings = registry::Settings::from_env().context("configuration")?;
        return import(&settings.common, &args[1..]).await;
    }
    kit::app::main(registry::NAME, registry::Settings::from_env, |s| &s.common, registry::build).await
}

async fn import(config: &kit::Config, args: &[String]) -> anyhow::Result<()> {
    let path =
        args.first().context("usage: registry import FILE [--edition E] [--retire-missing] [--establish-centers]")?;
    let mut opts = registry::tree::domain::ImportOptions { edition: "2023".into(), ..Default::default() };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--edition" => opts.edition = rest.next().context("--edition needs a value")?.clone(),
            "--retire-missing" => opts.retire_missing = true,
            "--establish-centers" => opts.establish_centers = true,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
    let started = std::time::Instant::now();
    let mut report = |p: registry::tree::domain::Progress| {
        eprintln!("{:>8.1}s {:<7} {:>8} / {}", started.elapsed().as_secs_f64(), p.phase, p.done, p.total);
    };
    let rows = registry::tree::import::parse(registry::tree::import::open_reader(file)?, &mut report)?;
    let pool = registry::connect(config).await?;
    let r = registry::tree::import::import(&pool, &rows, &opts, &mut report).await?;
    println!(
        "imported {} rows in {:.1}s: {} added, {} changed, {} retired, {} unchanged",
        r.rows,
        started.elapsed().as_secs_f64(),
        r.added,
        r.changed,
        r.retired,
        r.unchanged
    );
    Ok(())
}
