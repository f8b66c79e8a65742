//! `routing` serves the routing table and dispatch; `routing events …` runs the operator's commands on its
//! consumer and outbox (kit::events::ops).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::app::main(routing::NAME, routing::Settings::from_env, |s| &s.common, routing::build).await
}
