//! An exhausted pool fails fast: with intake's pool of 2 taken by registrations blocked on a lock another
//! session holds, a further call is answered UNAVAILABLE ("retry") after the acquire timeout, not after a
//! ten-second stall and not as INTERNAL; once the lock goes, the blocked registrations complete.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kit::testing::{TestInfra, eventually};
use proto::intake::v1::intake_client::IntakeClient;
use proto::intake::v1::*;
use sqlx::Connection as _;
use tonic::Code;

fn request(key: &str) -> RegisterCaseRequest {
    RegisterCaseRequest {
        idempotency_key: key.into(),
        center_code: "532901003000".into(),
        channel: proto::vocab::v1::Channel::WalkIn.into(),
        kind: proto::vocab::v1::CaseKind::Dispute.into(),
        category_code: "0106".into(),
        urgency: proto::vocab::v1::Urgency::Normal.into(),
        title: "工地拖欠工资".into(),
        description: String::new(),
        location_code: "532901003001".into(),
        parties: vec![PartyInput {
            name: "王五".into(),
            phone: String::new(),
            id_number: String::new(),
            role: proto::vocab::v1::PartyRole::Applicant.into(),
        }],
        reporter_id: String::new(),
        operator_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_unavailable_at_once() {
    let infra = TestInfra::new().await;
    let reg_cfg = infra.config(registry::NAME);
    registry::import_dali(&registry::connect(&reg_cfg).await.unwrap()).await.unwrap();
    let (registry_url, stop_registry) =
        kit::testing::spawn(registry::build(registry::Settings::new(reg_cfg)).await.unwrap());
    let mut cfg = infra.config(intake::NAME);
    cfg.database.max_connections = 2;
    cfg.database.acquire_timeout = Duration::from_millis(500);
    let settings = intake::Settings { registry_url, ..intake::Settings::new(cfg) };
    let (url, stop) = kit::testing::spawn(intake::build(settings).await.unwrap());
    let client = IntakeClient::new(kit::testing::connect(&url).await);
    // The case-number counter exists once a first case is registered.
    client.clone().register_case(request("first")).await.unwrap();

    // Another session takes the counter table, so registrations wait inside their transactions, each holding
    // one of the pool's two connections.
    let mut locker = sqlx::PgConnection::connect(&infra.db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE intake.case_numbers IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let blocked: Vec<_> = (0..2)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.register_case(request(&format!("blocked-{i}"))).await })
        })
        .collect();
    let watcher = infra.pool("intake").await;
    eventually("both registrations wait on the lock", 10, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&watcher)
        .await
        .unwrap();
        (waiting == 2).then_some(())
    })
    .await;

    let started = Instant::now();
    // A well-formed case number, so the handler gets as far as its own acquire.
    let refused =
        client.clone().get_case(GetCaseRequest { case_ref: "532901003-20250101-00001".into() }).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    // Refused by the handler's own acquire or, as the pool is just as empty for it, by the audit record's.
    assert!(refused.message().contains("retry"), "{refused:?}");
    assert!(took < Duration::from_secs(3), "refused after {took:?}, not at the acquire timeout");

    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    for call in blocked {
        call.await.unwrap().unwrap();
    }
    stop.stop();
    stop_registry.stop();
}
