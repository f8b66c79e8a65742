use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::telemetry::init(supervision::NAME);
    let config = kit::Config::from_env(supervision::NAME, supervision::DEFAULT_PORT).context("configuration")?;
    let app = supervision::build(config, supervision::Peers::from_env()).await?;
    tracing::info!(addr = %app.addr(), "supervision listening");
    let result = app.run_until(kit::shutdown::signal()).await;
    kit::telemetry::flush();
    result
}
