//! Collectors: async functions run at each scrape, for values that live elsewhere (a count in PostgreSQL, a
//! pool's size), so nothing has to keep a gauge up to date between scrapes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// One gauge value produced at scrape time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &'static str, labels: &[(&'static str, &str)], value: f64) -> Self {
        Self { name, labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(), value }
    }
}

type Collect = dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Sample>>> + Send>> + Send + Sync;

/// Registered collectors by id, so a dropped [`Collector`] removes its own.
type Registered = Vec<(u64, Arc<Collect>)>;

static COLLECTORS: LazyLock<Mutex<Registered>> = LazyLock::new(|| Mutex::new(Vec::new()));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registered collector; dropping it unregisters it (a stopped service stops being asked). Keep it for as
/// long as the service runs, e.g. with `kit::app::Running::hold`.
#[derive(Debug)]
#[must_use = "a collector is unregistered when dropped"]
pub struct Collector(u64);

impl Drop for Collector {
    fn drop(&mut self) {
        lock().retain(|(id, _)| *id != self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Registered> {
    COLLECTORS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registers `f`, run at every scrape; its samples are exported as gauges. A collector that fails or takes
/// longer than two seconds is skipped for that scrape and counted in `zongzhi_scrape_collector_errors_total`.
pub fn collector<F, Fut>(f: F) -> Collector
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Vec<Sample>>> + Send + 'static,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let f: Arc<Collect> = Arc::new(move || Box::pin(f()));
    lock().push((id, f));
    Collector(id)
}

/// Runs every registered collector concurrently and gathers their samples.
pub(crate) async fn gather() -> Vec<Sample> {
    let collectors: Vec<Arc<Collect>> = lock().iter().map(|(_, f)| f.clone()).collect();
    let runs = collectors.iter().map(|f| tokio::time::timeout(Duration::from_secs(2), f()));
    let mut samples = Vec::new();
    for result in futures::future::join_all(runs).await {
        match result {
            Ok(Ok(mut s)) => samples.append(&mut s),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics collector failed");
                super::counter("zongzhi_scrape_collector_errors_total", &[]).inc();
            }
            Err(_) => {
                tracing::warn!("metrics collector timed out");
                super::counter("zongzhi_scrape_collector_errors_total", &[]).inc();
            }
        }
    }
    samples
}

/// What every service with a database reports: its pool's use, and its outbox backlog (rows committed but not
/// yet published, and how old the oldest is), labelled with the service's name.
pub fn service_collector(service: &'static str, pool: sqlx::PgPool) -> Collector {
    collector(move || {
        let pool = pool.clone();
        async move {
            let at = [("service", service)];
            let mut samples = vec![
                Sample::new("zongzhi_db_pool_connections", &at, f64::from(pool.size())),
                Sample::new("zongzhi_db_pool_idle_connections", &at, pool.num_idle() as f64),
                Sample::new("zongzhi_db_pool_max_connections", &at, f64::from(pool.options().get_max_connections())),
            ];
            // The partial index outbox_unpublished keeps this cheap however long the published history is.
            let (backlog, oldest): (i64, f64) = sqlx::query_as(
                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
                 FROM outbox WHERE published_at IS NULL",
            )
            .fetch_one(&pool)
            .await?;
            samples.push(Sample::new("zongzhi_outbox_unpublished", &at, backlog as f64));
            samples.push(Sample::new("zongzhi_outbox_oldest_unpublished_seconds", &at, oldest));
            Ok(samples)
        }
    })
}
