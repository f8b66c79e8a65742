//! `intake` serves registration and the case file; `intake events …` runs the operator's commands on its
//! consumer and outbox (kit::events::ops).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::app::main(intake::NAME, intake::Settings::from_env, |s| &s.common, intake::build).await
}
