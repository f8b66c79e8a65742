//! One fault run's private world: a fresh database, a private nats-server, and every service and the gateway
//! as its own process on its own ports, with the Dali demo seeded. Dropping it kills every child and drops
//! the database; the logs stay in the run directory when the run failed (or ZZ_FAULT_KEEP is set).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kit::auth::{KeySet, Role};
use kit::config::NatsConfig;
use sqlx::Connection as _;

use super::procs::{Nats, Proc, free_port};
use crate::seed::Demo;

/// The services in start order (the registry first: the others ask it at start and while working).
pub const SERVICES: [&str; 5] = ["registry", "routing", "intake", "supervision", "subsidy"];
/// The consumers, by the name each uses for its durable consumers and inbox.
pub const CONSUMERS: [&str; 5] = ["intake", "routing", "registry", "supervision", "subsidy"];

pub struct Env {
    pub dir: PathBuf,
    pub nats: Nats,
    pub nats_cfg: NatsConfig,
    pub procs: BTreeMap<&'static str, Proc>,
    pub gateway: SocketAddr,
    pub keys: KeySet,
    pub demo: Demo,
    admin_url: String,
    pub db_url: String,
    db_name: String,
    /// Set when the run passed: its directory is removed on drop.
    pub passed: bool,
}

/// Where the service binaries are: ZZ_BIN_DIR, else the profile directory of the running executable
/// (target/<profile>/, also for a test binary in target/<profile>/deps/). Built there if missing.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("ZZ_BIN_DIR")
        && !dir.is_empty()
    {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("executable without a directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let missing: Vec<&str> = SERVICES.iter().chain(&["gateway"]).copied().filter(|b| !dir.join(b).exists()).collect();
    if !missing.is_empty() {
        build(&dir, &missing)?;
    }
    Ok(dir)
}

/// `cargo build [--release] -p <each missing binary>` into the same target directory.
fn build(dir: &Path, bins: &[&str]) -> anyhow::Result<()> {
    let release = dir.file_name().is_some_and(|n| n == "release");
    let target = dir.parent().context("profile directory without a target directory")?;
    let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build").env("CARGO_TARGET_DIR", target);
    if release {
        cmd.arg("--release");
    }
    for b in bins {
        cmd.args(["-p", b]);
    }
    eprintln!("fault suite: building {} into {}", bins.join(", "), dir.display());
    let status = cmd.status().context("run cargo build for the service binaries")?;
    anyhow::ensure!(status.success(), "cargo build of {bins:?} failed");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What every process of the fault world gets: its database, its own nats-server, the keys, fast retries and
/// polls, the peers' addresses, and `extra`.
fn common_env(
    db_url: &str,
    nats_cfg: &NatsConfig,
    keys: &KeySet,
    jwks: &std::path::Path,
    extra: &[(&str, &str)],
    addrs: &BTreeMap<&str, SocketAddr>,
) -> BTreeMap<String, String> {
    let url = |s: &str| format!("http://{}", addrs[s]);
    let mut common: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| common.insert(k.to_owned(), v);
    set("PATH", std::env::var("PATH").unwrap_or_default());
    set("RUST_LOG", std::env::var("ZZ_FAULT_LOG").unwrap_or_else(|_| "info,sqlx=warn,async_nats=warn".into()));
    set("DATABASE_URL", db_url.to_owned());
    // PostgreSQL serves 100 connections to everyone on the machine; two fault worlds at a time must fit.
    set("DATABASE_MAX_CONNECTIONS", std::env::var("ZZ_FAULT_DB_CONNECTIONS").unwrap_or_else(|_| "5".into()));
    set("NATS_URL", nats_cfg.url.clone());
    // The fault world's own nats-server runs without users (faults are about processes dying, not about
    // who may publish; the bus's permissions are tested in kit/tests/bus.rs).
    set("NATS_ANONYMOUS", "true".into());
    set("EVENT_PREFIX", nats_cfg.prefix.clone());
    set("EVENT_STREAM", nats_cfg.stream.clone());
    // Poison becomes a dead letter within seconds, and a peer back within a few seconds is waited for.
    set("EVENT_MAX_ATTEMPTS", "6".into());
    set("EVENT_RETRY_BASE_MS", "200".into());
    set("PII_KEY", hex(&kit::pii::DEV_KEY));
    set("AUDIT_KEY", hex(&kit::audit::DEV_KEY));
    set("AUTH_JWKS_FILE", jwks.display().to_string());
    set("AUTH_ISSUER", keys.issuer.clone());
    set("AUTH_AUDIENCE", keys.audience.clone());
    set("DEADLINE_POLL_MS", "200".into());
    for (k, v) in extra {
        set(k, (*v).to_owned());
    }
    for (var, peer) in [
        ("REGISTRY_URL", "registry"),
        ("ROUTING_URL", "routing"),
        ("INTAKE_URL", "intake"),
        ("SUPERVISION_URL", "supervision"),
        ("SUBSIDY_URL", "subsidy"),
    ] {
        common.insert(var.into(), url(peer));
    }
    common
}

/// One process's environment: the common one with its own addresses (a metrics port, and the gateway's HTTP
/// port), its schema, its service key, and the registry's signing key.
fn service_env(
    common: &BTreeMap<String, String>,
    name: &str,
    grpc: SocketAddr,
    keys: &KeySet,
) -> anyhow::Result<BTreeMap<String, String>> {
    let addr = || -> anyhow::Result<String> { Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)).to_string()) };
    let mut env = common.clone();
    env.insert("GRPC_ADDR".into(), grpc.to_string());
    env.insert("METRICS_ADDR".into(), addr()?);
    if name == "gateway" {
        env.insert("HTTP_ADDR".into(), addr()?);
    } else {
        env.insert("DATABASE_SCHEMA".into(), name.into());
    }
    if let Some(seed) = keys.services.get(name) {
        env.insert("SERVICE_KEY".into(), hex(seed));
    }
    if name == "registry" {
        env.insert("AUTH_SIGNING_KEY".into(), hex(&keys.issuer_seed));
        env.insert("AUTH_SIGNING_KID".into(), keys.issuer_kid.clone());
    }
    Ok(env)
}

impl Env {
    /// Starts everything and seeds the demo. `extra` variables go to every service (retry timing, polls);
    /// `first` ones (service, variable, value) only to that service's first start (a fault hook armed once).
    pub async fn start(label: &str, extra: &[(&str, &str)], first: &[(&str, &str, &str)]) -> anyhow::Result<Self> {
        let bins = bin_dir()?;
        let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let dir = std::env::temp_dir().join(format!("zz-fault-{label}-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let nats = Nats::start(&dir).await?;
        let admin_url = kit::config::string_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let db_name = format!("zz_fault_{tag}");
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.context("PostgreSQL (TEST_DATABASE_URL)")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).execute(&mut admin).await?;
        let db_url = format!("{}/{db_name}", admin_url.rsplit_once('/').context("database url")?.0);
        let nats_cfg = NatsConfig::local(nats.url(), format!("zzf_{tag}"), format!("ZZF_{tag}"));
        let keys = KeySet::generate("fault-issuer", "zongzhi", "zongzhi")?;
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, serde_json::to_string(&keys.jwks)?)?;

        let addr = || -> anyhow::Result<SocketAddr> { Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))) };
        let mut addrs = BTreeMap::new();
        for s in SERVICES.iter().chain(&["gateway"]) {
            addrs.insert(*s, addr()?);
        }
        let common = common_env(&db_url, &nats_cfg, &keys, &jwks, extra, &addrs);
        let mut procs = BTreeMap::new();
        for name in SERVICES.iter().chain(&["gateway"]).copied() {
            let env = service_env(&common, name, addrs[name], &keys)?;
            procs.insert(name, Proc::new(name, bins.join(name), env, &dir, addrs[name]));
        }
        let mut env = Self {
            dir,
            nats,
            nats_cfg,
            procs,
            gateway: addrs["gateway"],
            keys,
            demo: Demo { grids: vec![], grid_workers: vec![], center_code: String::new(), users: vec![] },
            admin_url,
            db_url,
            db_name,
            passed: false,
        };
        for name in SERVICES.iter().chain(&["gateway"]).copied() {
            let armed: Vec<(&str, &str)> =
                first.iter().filter(|(s, _, _)| *s == name).map(|(_, k, v)| (*k, *v)).collect();
            env.proc(name).start_with(&armed).await?;
        }
        env.seed().await?;
        Ok(env)
    }

    async fn seed(&mut self) -> anyhow::Result<()> {
        let pool = self.pool("registry").await?;
        let token = self.keys.token("fault-seed", &[(Role::BusinessAdmin, "*")])?;
        let registry = format!("http://{}", self.procs["registry"].addr);
        let routing = format!("http://{}", self.procs["routing"].addr);
        self.demo = crate::seed::seed(&pool, &registry, &routing, &token, &mut |_| {}).await.context("seeding")?;
        Ok(())
    }

    pub fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs.get_mut(name).unwrap_or_else(|| panic!("no process {name}"))
    }

    /// A small pool on one service's schema, for counting.
    pub async fn pool(&self, schema: &str) -> anyhow::Result<sqlx::PgPool> {
        let cfg = kit::config::DbConfig::new(self.db_url.clone(), schema, 2);
        kit::db::connect(&cfg).await
    }

    /// A token for the load: registering and reading cases anywhere.
    pub fn clerk_token(&self) -> anyhow::Result<String> {
        self.keys.token("fault-clerk", &[(Role::IntakeClerk, "*"), (Role::Dispatcher, "*")])
    }

    /// Every service's logs so far, to look for errors that must not happen.
    pub fn logs(&self) -> String {
        self.procs.values().map(Proc::logs).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Children first (each Proc kills its own on drop), so nothing holds the database.
        self.procs.clear();
        self.nats.kill9();
        let admin_url = self.admin_url.clone();
        let db_name = self.db_name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
        if self.passed && std::env::var("ZZ_FAULT_KEEP").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("fault suite: logs kept in {}", self.dir.display());
        }
    }
}

/// How long to wait for a service to come back.
pub const READY: Duration = Duration::from_secs(60);
