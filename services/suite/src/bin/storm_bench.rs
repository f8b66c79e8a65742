//! `cargo run --release -p suite --bin storm_bench [CALLS] [ROUNDS]`: the same-key storm. CALLS (default 200)
//! concurrent RegisterCase calls through the gateway carrying one idempotency key, against intake's pool of 5
//! (the suite's `max_connections`), ROUNDS times (default 5), each round with a fresh key. Prints per round the
//! calls answered, cases created, errors and elapsed time, then the cases in intake's table (one per round if
//! idempotency holds). Runs the suite on a scratch database and stream it removes afterwards;
//! TEST_DATABASE_URL and TEST_NATS_URL name the servers (default local).

use kit::auth::{KeySet, Role};
use proto::gateway::v1::desk_client::DeskClient;
use suite::bench::{Scratch, TOWNSHIP, registration};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kit::cli::help(
        "usage: storm_bench [CALLS] [ROUNDS]   (defaults 200 and 5; TEST_DATABASE_URL and TEST_NATS_URL name the servers)",
    );
    let calls: usize = std::env::args().nth(1).map_or(Ok(200), |a| a.parse())?;
    let rounds: usize = std::env::args().nth(2).map_or(Ok(5), |a| a.parse())?;
    println!("$ cargo run --release -p suite --bin storm_bench {calls} {rounds}");
    let scratch = Scratch::create("storm_bench").await?;
    let result = storms(&scratch, calls, rounds).await;
    scratch.drop_all().await?;
    result
}

async fn storms(scratch: &Scratch, calls: usize, rounds: usize) -> anyhow::Result<()> {
    let keys = KeySet::generate("bench-issuer", "zongzhi", "zongzhi")?;
    let (suite, _) = scratch.suite(&keys).await?;
    let result = async {
        let token = keys.token("storm-clerk", &[(Role::IntakeClerk, TOWNSHIP)])?;
        let desk = DeskClient::new(kit::grpc::channel_with_token(&format!("http://{}", suite.gateway_grpc), &token)?);
        let mut errors = 0;
        for round in 1..=rounds {
            let request = registration(&format!("storm-{round}"));
            let storm = suite::storm::same_key(calls, || {
                let (mut desk, request) = (desk.clone(), request.clone());
                async move { desk.register_case(request).await.map(tonic::Response::into_inner) }
            })
            .await;
            println!("round {round}: {storm}");
            for e in storm.errors.iter().take(3) {
                println!("  error: {e}");
            }
            errors += storm.errors.len();
        }
        let intake = scratch.pool("intake", 1).await?;
        let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM cases").fetch_one(&intake).await?;
        println!("{rounds} storms of {calls}: {cases} case(s) in intake (want {rounds}), {errors} error(s) (want 0)");
        anyhow::Ok(())
    }
    .await;
    suite.stop().await?;
    result
}
