use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::telemetry::init(routing::NAME);
    let config = kit::Config::from_env(routing::NAME, routing::DEFAULT_PORT).context("configuration")?;
    let app = routing::build(config, routing::Peers::from_env()).await?;
    tracing::info!(addr = %app.addr(), "routing listening");
    let result = app.run_until(kit::shutdown::signal()).await;
    kit::telemetry::flush();
    result
}
