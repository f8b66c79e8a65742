//! Configuration from the environment only, so the Kubernetes manifests are the one visible source of truth.

use std::net::SocketAddr;

// The settings of each part, defined with the part and gathered here, so callers keep reading them as
// `kit::config::…`.
pub use crate::db::{DEFAULT_DATABASE_URL, DbConfig};
pub use crate::env::{ConfigError, Secret, local_url, parse_or, peer_url, ports, string_or};
pub use crate::nats::{
    DEFAULT_EVENT_PREFIX, DEFAULT_EVENT_STREAM, DEFAULT_NATS_URL, NatsConfig, NatsCredentials, NatsTls,
};

/// What every service needs to run: where to listen, its database, its broker. It is the `common` part of each
/// service's `Settings`. `Debug` prints no secret (the keys show as `***`), so settings can be logged whole.
#[derive(Clone)]
pub struct Config {
    pub service: &'static str,
    pub grpc_addr: SocketAddr,
    /// Where GET /metrics is served (METRICS_ADDR; by default the gRPC port plus 1000).
    pub metrics_addr: SocketAddr,
    pub database: DbConfig,
    pub nats: NatsConfig,
    pub auth: crate::auth::AuthConfig,
    /// The SM4 key sealing personal data (PII_KEY), and earlier keys that still open old values
    /// (PII_RETIRED_KEYS).
    pub pii_key: [u8; 16],
    pub pii_retired: Vec<[u8; 16]>,
    /// The key of the audit hash chain (AUDIT_KEY).
    pub audit_key: crate::audit::AuditKey,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SM4 keys are plain byte arrays (the sealer takes them as they are); they print as `***`.
        f.debug_struct("Config")
            .field("service", &self.service)
            .field("grpc_addr", &self.grpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("database", &self.database)
            .field("nats", &self.nats)
            .field("auth", &self.auth)
            .field("pii_key", &"***")
            .field("pii_retired", &format_args!("[{} keys]", self.pii_retired.len()))
            .field("audit_key", &self.audit_key)
            .finish()
    }
}

impl Config {
    /// Reads the common settings: GRPC_ADDR, METRICS_ADDR, the database's ([`DbConfig::from_env`]),
    /// NATS_URL, EVENT_PREFIX, EVENT_STREAM, PII_KEY, PII_RETIRED_KEYS, AUDIT_KEY, and the trust settings of [`crate::auth::AuthConfig::from_env`].
    pub fn from_env(service: &'static str, default_port: u16) -> anyhow::Result<Self> {
        let grpc_addr = parse_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], default_port)))?;
        Ok(Self {
            service,
            grpc_addr,
            metrics_addr: parse_or("METRICS_ADDR", crate::metrics::default_addr(grpc_addr))?,
            database: DbConfig::from_env(service)?,
            nats: NatsConfig::from_env(service)?,
            auth: crate::auth::AuthConfig::from_env()?,
            pii_key: crate::pii::Sealer::key_from_env()?,
            pii_retired: crate::pii::Sealer::retired_from_env()?,
            audit_key: crate::audit::AuditKey::from_env()?,
        })
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn settings_print_no_secret() {
        let mut db = super::DbConfig::new("postgres://zz:hunter2@db/zongzhi", "intake", 5);
        db.schema = "intake".into();
        let nats = super::NatsConfig::local("nats://127.0.0.1:4222", "zongzhi", "ZONGZHI").as_user("intake", "s3cret");
        let printed = format!("{db:?} {nats:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn a_secret_never_prints() {
        let url = Secret::new("postgres://zz:hunter2@db/zongzhi".to_owned());
        assert_eq!(format!("{url:?}"), "Secret(***)");
        assert_eq!(url.expose(), "postgres://zz:hunter2@db/zongzhi");
    }
}
