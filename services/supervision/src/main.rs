//! The supervision binary: settings from the environment (once), then the service until SIGTERM, or the operator's
//! commands: `supervision events …` (kit::events::ops) and `supervision calendar import FILE [--center CODE]`,
//! which imports a working-day calendar (the State Council's schedule, `date,kind,name`) for a center or, without
//! `--center`, the national calendar, printing each step.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help(&format!(
        "usage: supervision   serves supervision, configured by the environment\n       \
         supervision calendar import FILE [--center CODE]\n{}",
        kit::events::ops::USAGE.replace("<service>", supervision::NAME).replacen("usage: ", "       ", 1)
    ));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("calendar") {
        kit::telemetry::init(supervision::NAME);
        let settings = supervision::Settings::from_env().context("configuration")?;
        return calendar(&settings, &args[1..]).await;
    }
    kit::app::main(supervision::NAME, supervision::Settings::from_env, |s| &s.common, supervision::build).await
}

async fn calendar(settings: &supervision::Settings, args: &[String]) -> anyhow::Result<()> {
    const USAGE: &str = "usage: supervision calendar import FILE [--center CODE]";
    let (Some("import"), Some(path)) = (args.first().map(String::as_str), args.get(1)) else {
        anyhow::bail!(USAGE);
    };
    let center = match args.get(2..) {
        Some([flag, code]) if flag == "--center" => kit::field::division_code("--center", code)?.to_owned(),
        Some([]) | None => String::new(),
        Some(_) => anyhow::bail!(USAGE),
    };
    let csv = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let started = std::time::Instant::now();
    let pool = supervision::connect(&settings.common).await?;
    let by = format!("operator:{}", std::env::var("USER").unwrap_or_default());
    let mut progress = |step: &str| eprintln!("{:>6.1}s {step}", started.elapsed().as_secs_f64());
    let done = supervision::service::clocks::import_calendar(&pool, &center, &csv, &by, &mut progress)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let whose = if center.is_empty() { "the national calendar".to_owned() } else { format!("center {center}") };
    println!("imported {} days of {:?} into {whose}, replacing {}", done.rows, done.years, done.replaced);
    Ok(())
}
