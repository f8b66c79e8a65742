use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::telemetry::init(intake::NAME);
    let config = kit::Config::from_env(intake::NAME, intake::DEFAULT_PORT).context("configuration")?;
    let app = intake::build(config, intake::Peers::from_env()).await?;
    tracing::info!(addr = %app.addr(), "intake listening");
    let result = app.run_until(kit::shutdown::signal()).await;
    kit::telemetry::flush();
    result
}
