//! The secured bus, against the nats-server the harness runs with deploy/nats/nats.conf: a service's user
//! publishes only its own event kinds, reads only through its own consumers, and nobody connects without
//! the right password.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use kit::events::Bus;
use kit::testing::TestInfra;

/// A client as `user`, recording the server's complaints (permission violations arrive asynchronously).
async fn client_as(infra: &TestInfra, user: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let cfg = infra.nats_as(user);
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let client = kit::events::connect_options(&cfg)
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(&cfg.url)
        .await
        .unwrap();
    (client, errors)
}

/// A JetStream context that gives up on an unanswered request or publish after two seconds: a refused
/// message is dropped by the server, so no answer ever comes.
fn js(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_secs(2))
        .build(client)
}

fn subject(infra: &TestInfra, kind: &str) -> String {
    format!("{}.{kind}.00", infra.nats.prefix)
}

async fn kinds_on_stream(infra: &TestInfra) -> Vec<String> {
    use proto::events::v1::envelope::Body;
    infra
        .events()
        .await
        .iter()
        .filter_map(|e| e.body.as_ref().map(|b: &Body| kit::events::subject_of(b).to_owned()))
        .collect()
}

fn envelope(body: proto::events::v1::envelope::Body) -> Vec<u8> {
    use prost::Message as _;
    let e = proto::events::v1::Envelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        case_id: uuid::Uuid::new_v4().to_string(),
        occurred_at_ms: 0,
        actor: "test".into(),
        body: Some(body),
    };
    e.encode_to_vec()
}

#[tokio::test]
async fn a_wrong_password_or_none_cannot_connect() {
    let infra = TestInfra::new().await;
    let wrong = infra.nats.as_user("intake", "not-the-password");
    let refused = kit::events::connect_options(&wrong).connect(&wrong.url).await;
    assert!(refused.is_err(), "a wrong password connected");
    let anonymous = kit::config::NatsConfig::local(infra.nats.url.clone(), "x", "X");
    assert!(Bus::connect(&anonymous).await.is_err(), "an anonymous client connected");
    // Control: the right password connects and may create the stream.
    Bus::connect(&infra.nats_as("intake")).await.unwrap();
}

#[tokio::test]
async fn a_service_publishes_its_own_event_kinds_and_no_other() {
    use proto::events::v1::envelope::Body;
    let infra = TestInfra::new().await;
    Bus::connect(&infra.nats_as("intake")).await.unwrap();
    let (client, errors) = client_as(&infra, "intake").await;
    let js = js(client);

    let own = js.publish(subject(&infra, "case.registered"), envelope(Body::CaseRegistered(Default::default())).into());
    own.await.unwrap().await.expect("intake may publish case.registered");

    let forged =
        js.publish(subject(&infra, "case.followed_up"), envelope(Body::CaseFollowedUp(Default::default())).into());
    let outcome = match forged.await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(outcome.is_err(), "intake's user published a case.followed_up");
    kit::testing::eventually("the server reports the violation", 5, || {
        let errors = errors.clone();
        async move { errors.lock().unwrap().iter().any(|e| e.contains("Permissions Violation")).then_some(()) }
    })
    .await;
    assert_eq!(kinds_on_stream(&infra).await, ["case.registered"], "only intake's own event reached the stream");
}

#[tokio::test]
async fn a_service_reads_only_through_its_own_consumers() {
    use proto::events::v1::envelope::Body;
    let infra = TestInfra::new().await;
    let bus = Bus::connect(&infra.nats_as("subsidy")).await.unwrap();
    let (ops, _) = client_as(&infra, kit::bus_access::OPS_USER).await;
    js(ops)
        .publish(subject(&infra, "case.followed_up"), envelope(Body::CaseFollowedUp(Default::default())).into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Subsidy's own partition consumer: created, pulled and acknowledged.
    let (client, errors) = client_as(&infra, "subsidy").await;
    let js_subsidy = js(client.clone());
    let stream = js_subsidy.get_stream(bus.stream_name()).await.unwrap();
    let config = |name: &str| pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: format!("{}.*.*.00", infra.nats.prefix),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    let own = stream.get_or_create_consumer("subsidy-00", config("subsidy-00")).await.unwrap();
    let mut batch = own.fetch().max_messages(1).expires(Duration::from_secs(2)).messages().await.unwrap();
    let msg = batch.next().await.expect("one message").unwrap();
    msg.double_ack().await.expect("subsidy acknowledges on its own consumer");

    // Another service's consumer cannot be taken over: that would swallow its events.
    let theft = stream.get_or_create_consumer("intake-00", config("intake-00")).await;
    assert!(theft.is_err(), "subsidy's user created intake's consumer");
    // Nor can events be read around JetStream by subscribing to their subjects.
    let mut sniff = client.subscribe(format!("{}.>", infra.nats.prefix)).await.unwrap();
    client.flush().await.unwrap();
    let (ops, _) = client_as(&infra, kit::bus_access::OPS_USER).await;
    js(ops)
        .publish(subject(&infra, "case.closed"), envelope(Body::CaseClosed(Default::default())).into())
        .await
        .unwrap();
    let sniffed = tokio::time::timeout(Duration::from_secs(1), sniff.next()).await;
    assert!(!matches!(sniffed, Ok(Some(_))), "subsidy's user received a core subscription to the events");
    kit::testing::eventually("the server reports the violations", 5, || {
        let errors = errors.clone();
        async move {
            let errors = errors.lock().unwrap();
            let subscribe = errors.iter().any(|e| e.contains("Permissions Violation for Subscription"));
            let publish = errors.iter().any(|e| e.contains("Permissions Violation for Publish"));
            (subscribe && publish).then_some(())
        }
    })
    .await;
}
