use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::telemetry::init(subsidy::NAME);
    let config = kit::Config::from_env(subsidy::NAME, subsidy::DEFAULT_PORT).context("configuration")?;
    let app = subsidy::build(config, subsidy::Peers::from_env()).await?;
    tracing::info!(addr = %app.addr(), "subsidy listening");
    let result = app.run_until(kit::shutdown::signal()).await;
    kit::telemetry::flush();
    result
}
