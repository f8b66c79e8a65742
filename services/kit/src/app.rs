//! A running service: its address, its tasks (gRPC server, outbox relay, consumers, schedulers) and the one
//! shutdown that stops them all in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::shutdown::{self, Shutdown, Trigger};

pub struct Running {
    name: &'static str,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    trigger: Arc<Trigger>,
    shutdown: Shutdown,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    /// Kept alive while the service runs and dropped when it stops (metrics collectors unregister then).
    held: Vec<Box<dyn std::any::Any + Send>>,
}

/// Stops a running service from elsewhere (tests, the suite).
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<Trigger>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.fire();
    }
}

impl Running {
    pub fn new(name: &'static str, addr: SocketAddr) -> Self {
        let (trigger, shutdown) = shutdown::channel();
        Self {
            name,
            addr,
            metrics_addr: None,
            trigger: Arc::new(trigger),
            shutdown,
            tasks: JoinSet::new(),
            held: Vec::new(),
        }
    }

    /// Serves GET /metrics on `listener` for as long as the service runs.
    pub fn serve_metrics(&mut self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        self.metrics_addr = Some(listener.local_addr()?);
        let shutdown = self.shutdown();
        self.spawn("metrics", crate::metrics::serve(listener, shutdown));
        Ok(())
    }

    /// Where GET /metrics answers, once [`Running::serve_metrics`] has started it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Keeps `thing` (a metrics collector) until the service stops.
    pub fn hold(&mut self, thing: impl std::any::Any + Send) {
        self.held.push(Box::new(thing));
    }

    /// The token a task watches to know when to finish.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn spawn(&mut self, label: &'static str, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.tasks.spawn(async move { (label, task.await) });
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.trigger.clone())
    }

    /// Runs until `signal` resolves or a task fails, then shuts every task down and waits for each to finish
    /// its current work (in-flight calls drain, consumers finish the message in hand, the relay publishes what
    /// was committed).
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut failure = None;
        let mut stopped = self.shutdown.clone();
        tokio::select! {
            biased;
            () = signal => {}
            () = stopped.wait() => {}
            Some(joined) = self.tasks.join_next() => failure = Some(describe(joined)),
        }
        if matches!(failure, Some(Ok(()))) && self.shutdown.is_down() {
            // A task that finished because shutdown had begun is not a failure.
            failure = None;
        }
        tracing::info!(service = self.name, "shutting down");
        self.trigger.fire();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = describe(joined) {
                tracing::error!(service = self.name, error = %e, "task failed during shutdown");
            }
        }
        tracing::info!(service = self.name, "stopped");
        match failure {
            Some(Err(e)) => Err(e),
            Some(Ok(())) => Err(anyhow::anyhow!("{}: a task ended before shutdown", self.name)),
            None => Ok(()),
        }
    }
}

fn describe(joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>) -> anyhow::Result<()> {
    match joined {
        Ok((_, Ok(()))) => Ok(()),
        Ok((label, Err(e))) => Err(e.context(label)),
        Err(e) => Err(anyhow::anyhow!("task panicked: {e}")),
    }
}

/// What every service starts from: its migrated pool, the bus, its bound listener, the running-service shell
/// and an outbox. Services build their own parts on top and spawn their tasks.
pub struct Foundation {
    pub pool: sqlx::PgPool,
    pub bus: crate::events::Bus,
    pub listener: tokio::net::TcpListener,
    pub app: Running,
    pub outbox: crate::events::Outbox,
    /// Checks the bearer token of every call the service answers, and records each in the audit trail.
    pub guard: crate::auth::layer::Guard,
}

impl Foundation {
    pub async fn start(
        name: &'static str,
        config: &crate::Config,
        migrations: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<Self> {
        let verifier = Arc::new(crate::auth::Verifier::load(&config.auth.trust).await?);
        let pool = crate::db::connect_and_migrate(&config.database, migrations).await?;
        let bus = crate::events::Bus::connect(&config.nats).await?;
        let listener = crate::grpc::bind(config.grpc_addr).await?;
        let mut app = Running::new(name, listener.local_addr()?);
        app.serve_metrics(crate::grpc::bind(config.metrics_addr).await?)?;
        app.hold(crate::metrics::service_collector(name, pool.clone()));
        let (audit, writer) = crate::audit::AuditLog::start(pool.clone(), config.audit_key.clone(), app.shutdown());
        app.spawn("audit", writer);
        app.spawn("jwks", verifier.clone().follow(app.shutdown()));
        app.follow_revocations(&verifier, &config.auth, name)?;
        let guard = crate::auth::layer::Guard {
            verifier,
            audit: Some((audit, config.audit_key.clone(), pool.clone())),
            forwards: &[],
            deadline: None,
            trusted_proxies: config.auth.trusted_proxies.clone(),
            tls: config.auth.server_tls.clone(),
        };
        Ok(Self { pool, bus, listener, app, outbox: crate::events::Outbox::new(), guard })
    }
}

/// The body of every service's `main`, written once: telemetry, the settings loaded and validated once,
/// `SERVICE events …` for the operator's commands on the service's consumer and outbox ([`crate::events::ops`]),
/// otherwise build, log the address, run until SIGTERM or Ctrl-C, and flush the spans.
///
/// `load` reads the service's `Settings` (the only place it reads the environment), `common` picks out the
/// shared [`crate::Config`] the operator commands need, and `build` starts the service from the settings.
pub async fn main<S, Built>(
    name: &'static str,
    load: impl FnOnce() -> anyhow::Result<S>,
    common: impl FnOnce(&S) -> &crate::Config,
    build: impl FnOnce(S) -> Built,
) -> anyhow::Result<()>
where
    Built: Future<Output = anyhow::Result<Running>>,
{
    use anyhow::Context as _;

    crate::cli::help(&format!(
        "usage: {name}   serves, configured by the environment (see the README's Configuration)\n{}",
        crate::events::ops::USAGE.replace("<service>", name).replacen("usage: ", "       ", 1)
    ));
    crate::telemetry::init(name);
    let settings = load().context("configuration")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("events") {
        let c = common(&settings);
        let ops = crate::events::ops::OpsConfig {
            database: c.database.clone(),
            nats: c.nats.clone(),
            audit_key: c.audit_key.clone(),
        };
        return crate::events::ops::cli(name, &ops, &args[1..]).await;
    }
    let app = build(settings).await?;
    tracing::info!(service = name, addr = %app.addr(), "listening");
    let result = app.run_until(crate::shutdown::signal()).await;
    crate::telemetry::flush();
    result
}

impl Running {
    /// Starts following the registry's list of ended tokens for `service`'s verifier, when `auth` names a
    /// registry to follow (see `kit::auth::revocation`).
    pub fn follow_revocations(
        &mut self,
        verifier: &Arc<crate::auth::Verifier>,
        auth: &crate::auth::AuthConfig,
        service: &str,
    ) -> anyhow::Result<()> {
        use crate::auth::revocation;
        if let Some(url) = &auth.revocations_url {
            let fetch = revocations_from(url, auth.identity(service)?)?;
            let follower = revocation::follow(verifier.clone(), fetch, auth.revocation_poll, self.shutdown());
            self.spawn("revocations", follower);
        }
        Ok(())
    }
}

/// A fetcher of the registry's revocations at `url`, asked with this service's own identity.
fn revocations_from(
    url: &str,
    identity: Arc<crate::auth::ServiceIdentity>,
) -> anyhow::Result<impl FnMut(i64) -> crate::auth::revocation::Fetched + Send + use<>> {
    use crate::auth::revocation::{Fetched, Revoked};
    use proto::registry::v1 as pb;
    let client = pb::auth_client::AuthClient::new(crate::grpc::service_channel(url, identity)?);
    Ok(move |after_seq| {
        let mut client = client.clone();
        Box::pin(async move {
            let mut request = tonic::Request::new(pb::ListRevocationsRequest { after_seq });
            request.set_timeout(std::time::Duration::from_secs(5));
            let answer = client.list_revocations(request).await?.into_inner();
            Ok(answer
                .revocations
                .into_iter()
                .map(|r| Revoked {
                    seq: r.seq,
                    subject: r.subject,
                    not_before: u64::try_from(r.not_before).unwrap_or(0),
                })
                .collect())
        }) as Fetched
    })
}
