//! `subsidy` serves the ledger of credits (以案定补); `subsidy events …` runs the operator's commands on its
//! consumer and outbox (kit::events::ops).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::app::main(subsidy::NAME, subsidy::Settings::from_env, |s| &s.common, subsidy::build).await
}
