//! `zongzhi.audit.v1.Audit` over a real socket: newest-first paging with filters, refused tokens and times,
//! and chain verification.

#![allow(clippy::unwrap_used)]

mod audit_support;

use audit_support::{Harness, entry, superuser_tx};
use kit::audit::grpc::{AuditService, SERVICE_NAME};
use kit::testing::AuthedChannel as Channel;
use proto::audit::v1::audit_client::AuditClient;
use proto::audit::v1::{ListRecordsRequest, VerifyChainRequest};
use tonic::Code;

async fn serve(h: &Harness) -> (AuditClient<Channel>, kit::shutdown::Trigger) {
    let listener = kit::grpc::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, shutdown) = kit::shutdown::channel();
    let routes = tonic::service::Routes::new(AuditService::new(h.pool.clone(), h.key.clone()).server());
    let guard = kit::auth::layer::Guard {
        verifier: std::sync::Arc::new(kit::auth::Verifier::new(&kit::testing::keys().auth("registry").trust).unwrap()),
        audit: None,
        forwards: &[],
        deadline: None,
        trusted_proxies: kit::proxies::Proxies::default(),
        tls: None,
    };
    tokio::spawn(async move { kit::grpc::serve(listener, routes, &[SERVICE_NAME], guard, shutdown).await });
    (AuditClient::new(kit::testing::connect(&url).await), stop)
}

fn list(actor: &str, page_size: u32, page_token: &str) -> ListRecordsRequest {
    ListRecordsRequest { actor: actor.into(), page_size, page_token: page_token.into(), ..Default::default() }
}

#[tokio::test]
async fn lists_newest_first_in_pages_with_filters() {
    let h = Harness::new().await;
    for i in 1..=7 {
        h.log.append(entry(if i % 2 == 0 { "bob" } else { "alice" }, "ok")).await.unwrap();
    }
    let (mut client, _stop) = serve(&h).await;

    let mut seqs = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client.list_records(list("", 3, &token)).await.unwrap().into_inner();
        seqs.extend(page.records.iter().map(|r| r.seq));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((seqs, pages), (vec![7, 6, 5, 4, 3, 2, 1], 3));

    let alice = client.list_records(list("alice", 0, "")).await.unwrap().into_inner();
    assert_eq!(alice.records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 5, 3, 1]);
    let first = &alice.records[3];
    assert!(first.at.ends_with("+08:00"), "local time: {}", first.at);
    assert_eq!((first.hash.len(), first.prev_hash.as_str()), (64, "0".repeat(64).as_str()));
    assert_eq!(first.action, "/zongzhi.intake.v1.Intake/GetCase");

    let window = |since: &str, until: &str| ListRecordsRequest {
        since: since.into(),
        until: until.into(),
        target: "case:6f1c2a".into(),
        ..Default::default()
    };
    let all = client.list_records(window("2000-01-01T00:00:00+08:00", "")).await.unwrap().into_inner();
    assert_eq!(all.records.len(), 7);
    let none = client.list_records(window("", "2000-01-01T00:00:00Z")).await.unwrap().into_inner();
    assert!(none.records.is_empty());
}

#[tokio::test]
async fn refuses_tokens_it_did_not_issue_and_bad_times() {
    let h = Harness::new().await;
    h.append_n(3).await;
    let (mut client, _stop) = serve(&h).await;
    let issued = client.list_records(list("", 1, "")).await.unwrap().into_inner().next_page_token;
    let (seq, _) = issued.split_once('.').unwrap();
    let cases = [
        ("garbage", list("", 0, "not-a-token"), "page_token"),
        ("forged tag", list("", 0, &format!("{seq}.0000000000000000")), "page_token"),
        ("other seq", list("", 0, &issued.replacen(seq, "1", 1)), "page_token"),
        ("page too big", list("", 501, ""), "page_size"),
        ("bad since", ListRecordsRequest { since: "yesterday".into(), ..Default::default() }, "since"),
        (
            "until before since",
            ListRecordsRequest {
                since: "2026-01-02T00:00:00Z".into(),
                until: "2026-01-01T00:00:00Z".into(),
                ..Default::default()
            },
            "until",
        ),
    ];
    for (case, request, field) in cases {
        let status = client.list_records(request).await.expect_err(case);
        kit::testing::assert_refused(case, &status, Code::InvalidArgument, field);
    }
}

#[tokio::test]
async fn verify_chain_reports_intact_then_the_altered_record() {
    let h = Harness::new().await;
    h.append_n(4).await;
    let (mut client, _stop) = serve(&h).await;
    let ok = client.verify_chain(VerifyChainRequest {}).await.unwrap().into_inner();
    assert!(ok.intact && ok.checked == 4 && ok.first_seq == 1 && ok.head_seq == 4, "{ok:?}");

    let mut tx = superuser_tx(&h.pool).await;
    sqlx::query("UPDATE audit_log SET detail = '{}' WHERE seq = 3").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let broken = client.verify_chain(VerifyChainRequest {}).await.unwrap().into_inner();
    assert!(!broken.intact && broken.broken_seq == 3, "{broken:?}");
    assert_eq!(broken.broken_reason, "seq 3: hash mismatch (the record was altered)");
}
