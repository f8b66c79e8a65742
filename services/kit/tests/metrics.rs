//! The metrics endpoint against a real database: the pool and outbox collector reads the outbox as it is,
//! a stopped service's collector is no longer asked, and counters come out in the text format.

#![allow(clippy::unwrap_used)]

use kit::testing::{TestInfra, sample, scrape};

#[tokio::test]
async fn the_endpoint_reports_pool_use_and_the_outbox_backlog() {
    let infra = TestInfra::new().await;
    let pool = kit::db::connect_and_migrate(&infra.db("metrics_kit"), &sqlx::migrate::Migrator::DEFAULT).await.unwrap();
    // Two rows waiting (the older a minute old) and one already published, which must not count.
    sqlx::query(
        "INSERT INTO outbox (id, subject, payload, created_at, published_at) VALUES \
         (gen_random_uuid(), 'x', '', now() - interval '60 seconds', NULL), \
         (gen_random_uuid(), 'x', '', now(), NULL), \
         (gen_random_uuid(), 'x', '', now() - interval '1 hour', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (trigger, shutdown) = kit::shutdown::channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(kit::metrics::serve(listener, shutdown));
    let collector = kit::metrics::service_collector("metrics_kit", pool.clone());
    kit::metrics::counter("kit_metrics_test_total", &[("case", "one")]).inc_by(3);

    let text = scrape(addr).await;
    let at = |name: &str| sample(&text, &format!("{name}{{service=\"metrics_kit\"}}"));
    assert_eq!(at("zongzhi_outbox_unpublished"), Some(2.0), "{text}");
    let oldest = at("zongzhi_outbox_oldest_unpublished_seconds").unwrap();
    assert!((60.0..600.0).contains(&oldest), "the oldest unpublished row is a minute old: {oldest}");
    assert!(at("zongzhi_db_pool_connections").unwrap() >= 1.0, "{text}");
    assert!(at("zongzhi_db_pool_idle_connections").is_some(), "{text}");
    assert_eq!(at("zongzhi_db_pool_max_connections"), Some(5.0), "{text}");
    assert_eq!(sample(&text, "kit_metrics_test_total{case=\"one\"}"), Some(3.0), "{text}");
    assert!(text.contains("# TYPE zongzhi_outbox_unpublished gauge\n"), "{text}");

    sqlx::query("UPDATE outbox SET published_at = now()").execute(&pool).await.unwrap();
    let text = scrape(addr).await;
    assert_eq!(sample(&text, "zongzhi_outbox_unpublished{service=\"metrics_kit\"}"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "zongzhi_outbox_oldest_unpublished_seconds{service=\"metrics_kit\"}"), Some(0.0));

    drop(collector);
    let text = scrape(addr).await;
    assert!(!text.contains("service=\"metrics_kit\""), "a dropped collector is not asked: {text}");
    trigger.fire();
    server.await.unwrap().unwrap();
    pool.close().await;
}

#[test]
fn the_readme_lists_every_metric() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for (name, _) in kit::metrics::HELP {
        assert!(readme.contains(&format!("`{name}`")), "README's metrics table lacks `{name}`");
    }
}
