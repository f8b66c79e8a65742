//! The services' PostgreSQL connections over TLS: a DATABASE_URL with `sslmode=verify-ca` and the server's CA
//! as `sslrootcert` connects encrypted and checked (rustls, compiled into sqlx), migrations included.

#![allow(clippy::unwrap_used)]

use sqlx::migrate::Migrator;

static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

#[tokio::test]
async fn a_service_pool_connects_over_checked_tls() {
    let infra = kit::testing::TestInfra::new().await;
    let plain = infra.pool("public").await;
    let on: String = sqlx::query_scalar("SHOW ssl").fetch_one(&plain).await.unwrap();
    assert_eq!(on, "on", "the test server serves TLS (Debian's default, with its snakeoil certificate)");
    // Debian's certificate is self-signed: it is its own CA.
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file").fetch_one(&plain).await.unwrap();
    let url = format!("{}?sslmode=verify-ca&sslrootcert={cert}", infra.db_url);
    let pool = kit::db::connect_and_migrate(&kit::config::DbConfig::new(url, "svc", 2), &NO_MIGRATIONS).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&pool).await.unwrap();
    assert!(encrypted, "the pooled connection is TLS");
    // The certificate is checked, not only used: Debian's names the machine, not 127.0.0.1, so verify-full
    // (the production setting, which also checks the name) refuses it. (A CA that did not sign it cannot be shown
    // refused here: the platform's trust store, which the services also read, holds Debian's self-signed
    // certificate itself.)
    let by_name = format!("{}?sslmode=verify-full&sslrootcert={cert}", infra.db_url);
    let refused = match kit::db::connect(&kit::config::DbConfig::new(by_name, "svc", 1)).await {
        Ok(pool) => sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let err = refused.expect_err("a certificate for another name is refused");
    assert!(err.to_lowercase().contains("certificate") || err.contains("name"), "{err}");
}
