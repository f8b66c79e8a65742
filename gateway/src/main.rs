//! `gateway` serves the one client API, as gRPC and as JSON over HTTP.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help("usage: gateway   serves the client API (gRPC and JSON), configured by the environment");
    kit::telemetry::init(gateway::NAME);
    let settings = gateway::Settings::from_env().context("configuration")?;
    let gw = gateway::build(settings).await?;
    tracing::info!(grpc = %gw.app.addr(), http = %gw.http_addr, "gateway listening");
    let result = gw.app.run_until(kit::shutdown::signal()).await;
    kit::telemetry::flush();
    result
}
