//! The supervision binary: settings from the environment (once), then the service until SIGTERM, or the operator's
//! `events` commands.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::telemetry::init(supervision::NAME);
    let settings = supervision::Settings::from_env().context("configuration")?;
    // `supervision events …`: the operator's commands on this service's consumer and outbox (kit::events::ops).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("events") {
        return kit::events::ops::cli(supervision::NAME, &settings.common, &args[1..]).await;
    }
    let app = supervision::build(settings).await?;
    tracing::info!(addr = %app.addr(), "supervision listening");
    let result = app.run_until(kit::shutdown::signal()).await;
    kit::telemetry::flush();
    result
}
