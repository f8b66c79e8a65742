//! Prometheus metrics: counters, gauges and histograms with labels, kept by `prometheus-client` (its families,
//! atomics and text exposition) in one registry per process, plus collectors that run at scrape time (a count
//! in the database), all served in the Prometheus text format (0.0.4) on GET /metrics, on a port of its own
//! (METRICS_ADDR).
//!
//! What kit adds is the lookup the services call: a metric by name and labels, created with its family on first
//! use, so a service names a series where it counts it and never registers anything. The measured cost of
//! moving from the hand-rolled registry is in the README ("Metrics").
//!
//! ```ignore
//! kit::metrics::counter("zongzhi_things_total", &[("kind", "x")]).inc();
//! kit::metrics::gauge("zongzhi_queue_depth", &[]).set(12.0);
//! kit::metrics::histogram("zongzhi_step_seconds", &[]).observe(0.012);
//! ```
//!
//! A handle is cheap to clone and cheap to use; looking one up by name takes two read locks and a map lookup
//! each, so code on a hot path keeps the handle.

mod collect;
pub mod layer;
mod serve;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, PoisonError, RwLock};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter as Count;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as Level;
use prometheus_client::metrics::histogram::Histogram as Buckets;

pub use collect::{Collector, Sample, collector, service_collector};
pub use serve::{default_addr, serve};

/// The metrics every service may expose, with their help text: one table, so the names are found in one place
/// and the README's table can be checked against it.
pub const HELP: &[(&str, &str)] = &[
    ("grpc_server_handled_total", "gRPC calls answered, by service, method and status code."),
    ("grpc_server_handling_seconds", "Time to answer a gRPC call, by service and method."),
    ("http_server_requests_total", "HTTP requests answered by the gateway's JSON face, by method, route and status."),
    ("http_server_request_duration_seconds", "Time to answer an HTTP request, by method and route."),
    ("zongzhi_db_pool_connections", "Connections the service's PostgreSQL pool holds (in use and idle)."),
    ("zongzhi_db_pool_idle_connections", "Idle connections in the service's PostgreSQL pool."),
    ("zongzhi_db_pool_max_connections", "The most connections the service's PostgreSQL pool may open."),
    ("zongzhi_outbox_unpublished", "Outbox rows committed but not yet published to JetStream."),
    ("zongzhi_outbox_oldest_unpublished_seconds", "Age of the oldest unpublished outbox row (0 when none)."),
    ("zongzhi_deadlines_due", "Pending supervision deadlines already past due (not yet fired)."),
    ("zongzhi_deadlines_fired_total", "Supervision deadlines fired (case.overdue written)."),
    ("zongzhi_consumer_handled_total", "Events a consumer handled, by consumer, partition and outcome."),
    ("zongzhi_consumer_redelivered_total", "Events a consumer received again (JetStream redeliveries)."),
    ("zongzhi_consumer_dead_letters_total", "Events a consumer gave up on and moved to the dead-letter stream."),
    ("zongzhi_consumer_lag", "Events in the stream not yet delivered to the consumer's partition."),
    ("zongzhi_consumer_handling_seconds", "Time a consumer took to handle one event."),
    ("zongzhi_scrape_collector_errors_total", "Scrape-time collectors that failed or timed out."),
    ("zongzhi_password_hashing_in_flight", "Password hashes running now (at most one per core)."),
    ("zongzhi_password_hashing_refused_total", "Sign-ins refused at once because every hashing slot was busy."),
    ("zongzhi_audit_unstaged_total", "Calls that committed a change without staging their audit record, by method."),
    ("zongzhi_json_old_enum_codes", "Enum values the JSON face read by their old lower-case code since start."),
    ("zongzhi_refusals_unrecorded_total", "Refused calls counted but not written to the gateway's trail (flood cap)."),
    (
        "zongzhi_refused_calls_throttled_total",
        "Refused calls of one caller beyond the per-minute audit cap, counted only.",
    ),
];

/// Histogram buckets in seconds: from a cache hit (1 ms) to a call about to time out (10 s).
pub const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Count);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn inc_by(&self, n: u64) {
        self.0.inc_by(n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Level<f64, AtomicU64>);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    pub fn add(&self, delta: f64) {
        self.0.inc_by(delta);
    }
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// Observations counted into [`SECONDS_BUCKETS`], with their sum and count.
#[derive(Clone, Debug)]
pub struct Histogram(Buckets);

impl Histogram {
    fn seconds() -> Buckets {
        Buckets::new(SECONDS_BUCKETS.iter().copied())
    }

    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }

    /// Observes the time elapsed since `start`, in seconds.
    pub fn observe_since(&self, start: std::time::Instant) {
        self.observe(start.elapsed().as_secs_f64());
    }
}

/// A counter named `name` with `labels`, created on first use. Its name ends in `_total` (added when missing).
pub fn counter(name: &'static str, labels: &[(&str, &str)]) -> Counter {
    match REGISTRY.family(name, Kind::Counter) {
        Some(Fam::Counter(f)) => Counter(f.get_or_create_owned(&label_set(labels))),
        _ => Counter::default(),
    }
}

/// A gauge named `name` with `labels`, created on first use.
pub fn gauge(name: &'static str, labels: &[(&str, &str)]) -> Gauge {
    match REGISTRY.family(name, Kind::Gauge) {
        Some(Fam::Gauge(f)) => Gauge(f.get_or_create_owned(&label_set(labels))),
        _ => Gauge::default(),
    }
}

/// A histogram of seconds named `name` with `labels`, created on first use.
pub fn histogram(name: &'static str, labels: &[(&str, &str)]) -> Histogram {
    match REGISTRY.family(name, Kind::Histogram) {
        Some(Fam::Histogram(f)) => Histogram(f.get_or_create_owned(&label_set(labels))),
        _ => Histogram(Histogram::seconds()),
    }
}

/// The handles a JetStream consumer updates for one partition (the event-backbone work wires them).
///
/// `handled` counts events applied (outcome `ok`) and `skipped` events acknowledged without effect (already
/// in the inbox, or not for this consumer); `failed` counts handler errors that will be retried; `redelivered`
/// counts deliveries JetStream reports as not the first (`info.delivered > 1`); `dead_lettered` counts events
/// moved to the dead-letter stream; `lag` is set from the consumer's `num_pending` after each fetch;
/// `handling` observes seconds per event.
#[derive(Clone, Debug)]
pub struct ConsumerMetrics {
    pub handled: Counter,
    pub skipped: Counter,
    pub failed: Counter,
    pub redelivered: Counter,
    pub dead_lettered: Counter,
    pub lag: Gauge,
    pub handling: Histogram,
}

/// The metrics of `consumer` (the durable consumer's name, e.g. `routing`) on `partition`; look it up once
/// per partition and keep it.
pub fn consumer(consumer: &str, partition: impl std::fmt::Display) -> ConsumerMetrics {
    let partition = partition.to_string();
    let at = [("consumer", consumer), ("partition", partition.as_str())];
    let outcome = |o| [("consumer", consumer), ("partition", partition.as_str()), ("outcome", o)];
    ConsumerMetrics {
        handled: counter("zongzhi_consumer_handled_total", &outcome("ok")),
        skipped: counter("zongzhi_consumer_handled_total", &outcome("skipped")),
        failed: counter("zongzhi_consumer_handled_total", &outcome("error")),
        redelivered: counter("zongzhi_consumer_redelivered_total", &at),
        dead_lettered: counter("zongzhi_consumer_dead_letters_total", &at),
        lag: gauge("zongzhi_consumer_lag", &at),
        handling: histogram("zongzhi_consumer_handling_seconds", &at),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A label set as a family keys it: owned pairs, sorted by name, so the same set in another order is the same
/// series.
type Labels = Vec<(String, String)>;

fn label_set(labels: &[(&str, &str)]) -> Labels {
    let mut set: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    set.sort();
    set
}

type HistogramFamily = Family<Labels, Buckets, fn() -> Buckets>;

/// One family of series: a name's kind and its series by label set.
#[derive(Clone, Debug)]
enum Fam {
    Counter(Family<Labels, Count>),
    Gauge(Family<Labels, Level<f64, AtomicU64>>),
    Histogram(HistogramFamily),
}

impl Fam {
    fn kind(&self) -> Kind {
        match self {
            Fam::Counter(_) => Kind::Counter,
            Fam::Gauge(_) => Kind::Gauge,
            Fam::Histogram(_) => Kind::Histogram,
        }
    }
}

/// The families by name, and the registry that exports them. One per process: in the demo suite, which runs
/// every service in one process, any service's /metrics shows the whole process, and the labels say which
/// service a series is of.
struct Registry {
    families: RwLock<HashMap<&'static str, Fam>>,
    exported: RwLock<prometheus_client::registry::Registry>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    families: RwLock::new(HashMap::new()),
    exported: RwLock::new(prometheus_client::registry::Registry::default()),
});

impl Registry {
    /// The family `name`, registered with its help text on first use; None (logged) when the name is already
    /// another kind's, so a naming slip costs a series, not the scrape.
    fn family(&self, name: &'static str, kind: Kind) -> Option<Fam> {
        let found = self.families.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        let fam = match found {
            Some(fam) => fam,
            None => {
                let mut families = self.families.write().unwrap_or_else(PoisonError::into_inner);
                families.entry(name).or_insert_with(|| self.register(name, kind)).clone()
            }
        };
        if fam.kind() == kind {
            return Some(fam);
        }
        tracing::error!(metric = name, wanted = kind.name(), "metric already registered with another kind");
        None
    }

    fn register(&self, name: &'static str, kind: Kind) -> Fam {
        let fam = match kind {
            Kind::Counter => Fam::Counter(Family::default()),
            Kind::Gauge => Fam::Gauge(Family::default()),
            Kind::Histogram => Fam::Histogram(Family::new_with_constructor(Histogram::seconds)),
        };
        let mut exported = self.exported.write().unwrap_or_else(PoisonError::into_inner);
        // The exposition adds a counter's `_total` itself; the registry adds the help text's full stop.
        let help = help(name);
        match &fam {
            Fam::Counter(f) => exported.register(name.trim_end_matches("_total"), help, f.clone()),
            Fam::Gauge(f) => exported.register(name, help, f.clone()),
            Fam::Histogram(f) => exported.register(name, help, f.clone()),
        }
        fam
    }
}

/// The help text of `name` as the registry takes it: without its full stop, which the registry adds ('' when
/// `HELP` has none).
fn help(name: &str) -> &'static str {
    HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| h.trim_end_matches('.'))
}

/// The registry and `extra` samples (from collectors, as gauges) in the Prometheus text format.
pub(crate) fn render(extra: &[Sample]) -> String {
    let mut out = String::new();
    let exported = REGISTRY.exported.read().unwrap_or_else(PoisonError::into_inner);
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &exported);
    drop(exported);
    let mut scraped = prometheus_client::registry::Registry::default();
    let mut families: Vec<(&'static str, Family<Labels, Level<f64, AtomicU64>>)> = Vec::new();
    for s in extra {
        let family = match families.iter().find(|(n, _)| *n == s.name) {
            Some((_, f)) => f.clone(),
            None => {
                let f = Family::default();
                scraped.register(s.name, help(s.name), f.clone());
                families.push((s.name, f.clone()));
                f
            }
        };
        let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        family.get_or_create(&label_set(&labels)).set(s.value);
    }
    let _ = prometheus_text::encode(&mut out, &scraped);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn series_render_in_the_text_format() {
        counter("kit_test_calls_total", &[("b", "2"), ("a", "q\"uote")]).inc_by(3);
        counter("kit_test_calls_total", &[("a", "q\"uote"), ("b", "2")]).inc();
        gauge("kit_test_depth", &[]).set(2.5);
        let h = histogram("kit_test_seconds", &[("m", "x")]);
        h.observe(0.003);
        h.observe(20.0);
        let text = render(&[Sample::new("kit_test_extra", &[("s", "intake")], 7.0)]);
        for want in [
            "# TYPE kit_test_calls_total counter\n",
            "kit_test_calls_total{a=\"q\\\"uote\",b=\"2\"} 4\n",
            "kit_test_depth 2.5\n",
            "# TYPE kit_test_seconds histogram\n",
            "kit_test_seconds_bucket{m=\"x\",le=\"0.0025\"} 0\n",
            "kit_test_seconds_bucket{m=\"x\",le=\"0.005\"} 1\n",
            "kit_test_seconds_bucket{m=\"x\",le=\"10\"} 1\n",
            "kit_test_seconds_bucket{m=\"x\",le=\"+Inf\"} 2\n",
            "kit_test_seconds_sum{m=\"x\"} 20.003\n",
            "kit_test_seconds_count{m=\"x\"} 2\n",
            "kit_test_extra{s=\"intake\"} 7.0\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn a_name_keeps_its_first_kind() {
        counter("kit_test_kind_total", &[]).inc();
        gauge("kit_test_kind_total", &[("x", "1")]).set(9.0);
        let text = render(&[]);
        assert!(text.contains("# TYPE kit_test_kind_total counter\n"), "{text}");
        assert!(
            !text.contains("kit_test_kind_total{x=\"1\"}"),
            "a gauge under a counter's name is not exported:\n{text}"
        );
    }

    #[test]
    fn consumer_handles_share_series_per_partition() {
        let a = consumer("kit_test_consumer", 3);
        let b = consumer("kit_test_consumer", 3);
        a.redelivered.inc();
        b.redelivered.inc();
        a.lag.set(11.0);
        assert_eq!(b.redelivered.get(), 2);
        let text = render(&[]);
        assert!(
            text.contains("zongzhi_consumer_redelivered_total{consumer=\"kit_test_consumer\",partition=\"3\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("zongzhi_consumer_lag{consumer=\"kit_test_consumer\",partition=\"3\"} 11.0\n"), "{text}");
    }
}
