//! The same-key storm through the gateway, against intake's pool of 5 (the suite's `max_connections`): 200
//! concurrent registrations with one idempotency key make exactly one case and every call is answered, none
//! stalled into a pool timeout.

#![allow(clippy::unwrap_used)]

use tests::World;

/// 200 concurrent registrations with one key against intake's pool of 5 (the suite's `max_connections`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_key_storm_makes_one_case_and_answers_every_call() {
    let world = World::start().await;
    let (desk, _) = world.sign_in("gw-001").await;
    let request = world.dispute("storm-1");
    let storm = suite::storm::same_key(200, || {
        let (mut desk, request) = (desk.clone(), request.clone());
        async move { desk.register_case(request).await.map(tonic::Response::into_inner) }
    })
    .await;
    println!("{storm}");
    assert_eq!(storm.errors, Vec::<String>::new(), "every call answers: {storm:?}");
    assert_eq!(storm.answered, 200, "{storm:?}");
    assert_eq!(storm.created, 1, "exactly one call registers; the others replay it: {storm:?}");
    assert_eq!(storm.case_ids.len(), 1, "every answer names the same case: {storm:?}");
    let intake = world.infra.pool("intake").await;
    let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM cases").fetch_one(&intake).await.unwrap();
    assert_eq!(cases, 1, "one case in the database");
    // No call stalls the way a deadlocked pool did (ten seconds, then INTERNAL); the margin is for a loaded
    // debug build, where 200 calls take two or three seconds of CPU between them.
    assert!(storm.slowest < std::time::Duration::from_secs(8), "{storm}");
    world.stop().await;
}
