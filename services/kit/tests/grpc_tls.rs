//! gRPC over TLS (issue 19: bearer tokens never cross the network in clear): a server given a certificate
//! serves TLS only; a client dialing `https://` checks the server against GRPC_TLS_CA and is served; a client in
//! clear, or one trusting another CA, is not; and the audit record still names the caller's address.

#![allow(clippy::unwrap_used)]

mod audit_support;

use audit_support::Harness;
use kit::testing::TestCerts;
use proto::audit::v1::ListRecordsRequest;
use proto::audit::v1::audit_client::AuditClient;

#[tokio::test]
async fn a_tls_port_serves_checked_clients_only() {
    let h = Harness::new().await;
    let certs = TestCerts::make();
    let listener = kit::grpc::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_stop, shutdown) = kit::shutdown::channel();
    // With an audit trail, the scaffold serves its Audit service itself.
    let routes = tonic::service::Routes::default();
    let guard = kit::auth::layer::Guard {
        verifier: std::sync::Arc::new(kit::auth::Verifier::new(&kit::testing::keys().auth("intake").trust).unwrap()),
        audit: Some((h.log.clone(), h.key.clone(), h.pool.clone())),
        forwards: &[],
        deadline: None,
        trusted_proxies: kit::proxies::Proxies::default(),
        tls: Some(kit::tls::ServerTls::from_files(&certs.path("leaf.pem"), &certs.path("leaf.key")).unwrap()),
    };
    tokio::spawn(async move { kit::grpc::serve(listener, routes, &[], guard, shutdown).await });
    let token = kit::testing::keys().admin(kit::auth::Role::AuditAdmin);
    let list = || ListRecordsRequest { page_size: 10, ..Default::default() };

    // This test binary has one test, so setting the process's trusted CA races with nothing.
    kit::tls::trust_ca(Some(certs.path("ca.pem")));
    let secure = kit::grpc::channel_with_token(&format!("https://localhost:{port}"), &token).unwrap();
    AuditClient::new(secure.clone()).list_records(list()).await.expect("served over TLS");
    let records = AuditClient::new(secure).list_records(list()).await.unwrap().into_inner().records;
    let mine = records.iter().find(|r| r.action.ends_with("/ListRecords")).expect("the first call is recorded");
    assert_eq!(mine.client_addr, "127.0.0.1", "the peer is known through TLS: {mine:?}");

    let clear = kit::grpc::channel_with_token(&format!("http://localhost:{port}"), &token).unwrap();
    let refused = AuditClient::new(clear).list_records(list()).await.unwrap_err();
    assert!(
        matches!(refused.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal),
        "{refused:?}"
    );

    kit::tls::trust_ca(Some(certs.path("other.pem")));
    let stranger = kit::grpc::channel_with_token(&format!("https://localhost:{port}"), &token).unwrap();
    let refused = AuditClient::new(stranger).list_records(list()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "a server the CA did not certify: {refused:?}");

    kit::tls::trust_ca(None);
    let err = kit::grpc::channel_with_token(&format!("https://localhost:{port}"), &token).unwrap_err();
    assert!(err.to_string().contains("GRPC_TLS_CA"), "{err}");
}
