//! A method a server does not have answers UNIMPLEMENTED on every port, whoever asks (no token, a root token,
//! a garbage token): the gRPC convention, so a client tells "no such method" from "not allowed". Made-up paths
//! share one metric series and leave no audit record, however many there are.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use kit::testing::{sample, scrape};
use tests::{Rng, World};
use tonic::Code;

/// Calls `path` on `addr` over a fresh connection (see [`tests::raw_call`]).
async fn call(addr: SocketAddr, path: &str, token: Option<&str>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    match tests::raw_call(channel, path, token).await {
        Ok(()) => tonic::Status::ok("answered"),
        Err(status) => status,
    }
}

#[tokio::test]
async fn made_up_and_foreign_methods_answer_unimplemented_on_every_port() {
    let world = World::start().await;
    let s = &world.suite;
    // Each port with its own service and a real method of another port's service.
    let ports: [(&str, SocketAddr, &str, &str); 6] = [
        ("gateway", s.gateway_grpc, "zongzhi.gateway.v1.Desk", "/zongzhi.intake.v1.Intake/RegisterCase"),
        ("intake", s.intake, "zongzhi.intake.v1.Intake", "/zongzhi.routing.v1.Routing/ListTasks"),
        ("routing", s.routing, "zongzhi.routing.v1.Routing", "/zongzhi.intake.v1.Intake/GetCase"),
        ("registry", s.registry, "zongzhi.registry.v1.Tree", "/zongzhi.gateway.v1.Desk/GetCase"),
        ("supervision", s.supervision, "zongzhi.supervision.v1.Supervision", "/zongzhi.subsidy.v1.Subsidy/ListCredits"),
        ("subsidy", s.subsidy, "zongzhi.subsidy.v1.Subsidy", "/zongzhi.supervision.v1.Supervision/ListDeadlines"),
    ];
    let tokens = [None, Some(world.root_token.as_str()), Some("not.a.token")];
    let mut rng = Rng(0x5eed);
    const INVENTED: usize = 40;
    for (name, addr, own, foreign) in ports {
        let mut paths = vec![foreign.to_owned(), format!("/{own}/NoSuchMethod"), "/x/y".to_owned()];
        paths.extend((0..INVENTED).map(|_| format!("/zz.scan{}.Svc/M{}", rng.next() % 1_000_000, rng.next())));
        for path in &paths {
            for token in tokens {
                let status = call(addr, path, token).await;
                assert_eq!(status.code(), Code::Unimplemented, "{name} {path} token {token:?}: {status:?}");
                assert!(!status.message().contains("scan"), "the made-up path is not echoed: {status:?}");
            }
        }
        // A method the port does serve is still decided by its token, not answered UNIMPLEMENTED.
        let health = call(addr, "/grpc.health.v1.Health/Check", None).await;
        assert_ne!(health.code(), Code::Unimplemented, "{name}: {health:?}");
    }

    // One series for every made-up path, and none named after one.
    for (name, _, _, _) in ports {
        let metrics = world.suite.metrics.iter().find(|(n, _)| *n == name).map(|(_, a)| *a).unwrap();
        let text = scrape(metrics).await;
        assert!(!text.contains("zz.scan") && !text.contains("NoSuchMethod"), "{name}:\n{text}");
        let unrouted =
            r#"grpc_server_handled_total{grpc_code="UNIMPLEMENTED",grpc_method="unrouted",grpc_service="unrouted"}"#;
        let counted = sample(&text, unrouted).unwrap_or_else(|| panic!("{name}: no {unrouted} in\n{text}"));
        assert!(counted >= (3 * (INVENTED + 3)) as f64, "{name}: {counted}");
    }

    // No audit record for any of them, in any service's trail.
    for schema in ["intake", "routing", "registry", "supervision", "subsidy", "gateway"] {
        let pool = world.infra.pool(schema).await;
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action LIKE '/zz.scan%' OR action LIKE '%NoSuchMethod' \
             OR action = '/x/y' OR action NOT LIKE '/zongzhi.' || $1 || '.%' AND action NOT LIKE '/zongzhi.audit.%'",
        )
        .bind(schema)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(recorded, 0, "{schema} recorded calls it does not serve");
    }
    world.stop().await;
}
