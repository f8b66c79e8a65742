//! Prometheus metrics: counters, gauges and histograms with labels, kept on atomics in one registry per
//! process, plus collectors that run at scrape time (a count in the database), all served as the Prometheus
//! text format on GET /metrics, on a port of its own (METRICS_ADDR).
//!
//! Hand-rolled rather than a client crate: the whole of it is a map of atomics and a text writer, and the
//! services need nothing else (no push, no exemplars, no OpenMetrics).
//!
//! ```ignore
//! kit::metrics::counter("zongzhi_things_total", &[("kind", "x")]).inc();
//! kit::metrics::gauge("zongzhi_queue_depth", &[]).set(12.0);
//! kit::metrics::histogram("zongzhi_step_seconds", &[]).observe(0.012);
//! ```
//!
//! A handle is cheap to clone and cheap to use; looking one up by name takes a lock and a map lookup, so code
//! on a hot path keeps the handle.

mod collect;
pub mod layer;
mod serve;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

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
];

/// Histogram buckets in seconds: from a cache hit (1 ms) to a call about to time out (10 s).
pub const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A monotonically increasing count.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (f64 kept as its bits).
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn add(&self, delta: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + delta).to_bits()));
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Observations counted into [`SECONDS_BUCKETS`], with their sum and count.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCore>);

#[derive(Debug)]
struct HistogramCore {
    /// Per bucket, not cumulative: an observation touches one atomic; the text writer sums.
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, v: f64) {
        let i = SECONDS_BUCKETS.iter().position(|b| v <= *b).unwrap_or(SECONDS_BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .0
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + v).to_bits()));
        self.0.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observes the time elapsed since `start`, in seconds.
    pub fn observe_since(&self, start: std::time::Instant) {
        self.observe(start.elapsed().as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

/// A counter named `name` with `labels`, created on first use.
pub fn counter(name: &'static str, labels: &[(&str, &str)]) -> Counter {
    match REGISTRY.get_or_insert(name, labels, Kind::Counter) {
        Metric::Counter(c) => c,
        _ => Counter(Arc::default()),
    }
}

/// A gauge named `name` with `labels`, created on first use.
pub fn gauge(name: &'static str, labels: &[(&str, &str)]) -> Gauge {
    match REGISTRY.get_or_insert(name, labels, Kind::Gauge) {
        Metric::Gauge(g) => g,
        _ => Gauge(Arc::default()),
    }
}

/// A histogram of seconds named `name` with `labels`, created on first use.
pub fn histogram(name: &'static str, labels: &[(&str, &str)]) -> Histogram {
    match REGISTRY.get_or_insert(name, labels, Kind::Histogram) {
        Metric::Histogram(h) => h,
        _ => Histogram(Arc::new(HistogramCore::new())),
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

#[derive(Clone, Debug)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl HistogramCore {
    fn new() -> Self {
        Self {
            buckets: (0..=SECONDS_BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// Series by (name, rendered label set). One per process: in the demo suite, which runs every service in one
/// process, any service's /metrics shows the whole process, and the labels say which service a series is of.
struct Registry {
    series: RwLock<HashMap<(&'static str, String), Metric>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry { series: RwLock::new(HashMap::new()) });

impl Registry {
    fn get_or_insert(&self, name: &'static str, labels: &[(&str, &str)], kind: Kind) -> Metric {
        let key = (name, render_labels(labels));
        if let Some(m) = self.series.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return self.checked(m.clone(), name, kind);
        }
        let mut series = self.series.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another name with the same spelling but a different kind would make the exposition invalid.
        if let Some(((_, _), other)) = series.iter().find(|((n, _), _)| *n == name) {
            let other = other.clone();
            if kind_of(&other) != kind {
                return self.checked(other, name, kind);
            }
        }
        series
            .entry(key)
            .or_insert_with(|| match kind {
                Kind::Counter => Metric::Counter(Counter(Arc::default())),
                Kind::Gauge => Metric::Gauge(Gauge(Arc::default())),
                Kind::Histogram => Metric::Histogram(Histogram(Arc::new(HistogramCore::new()))),
            })
            .clone()
    }

    /// The metric if it has the kind asked for; otherwise a detached one (logged), so a naming slip costs a
    /// series, not the scrape.
    fn checked(&self, m: Metric, name: &str, kind: Kind) -> Metric {
        if kind_of(&m) == kind {
            return m;
        }
        tracing::error!(metric = name, wanted = kind.name(), "metric already registered with another kind");
        Metric::Gauge(Gauge(Arc::default()))
    }
}

fn kind_of(m: &Metric) -> Kind {
    match m {
        Metric::Counter(_) => Kind::Counter,
        Metric::Gauge(_) => Kind::Gauge,
        Metric::Histogram(_) => Kind::Histogram,
    }
}

/// `a="x",b="y"`, sorted by name so the same set in another order is the same series.
fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut out = String::new();
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    out
}

/// Label values escape backslash, double quote and newline (the text format's rule).
fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn help(name: &str) -> Option<&'static str> {
    HELP.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// The registry and `extra` samples (from collectors, gauges) in the Prometheus text format, families sorted
/// by name.
pub(crate) fn render(extra: &[Sample]) -> String {
    let mut families: std::collections::BTreeMap<&str, (Kind, Vec<String>)> = std::collections::BTreeMap::new();
    let series = REGISTRY.series.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    for ((name, labels), metric) in series.iter() {
        let lines = &mut families.entry(name).or_insert_with(|| (kind_of(metric), Vec::new())).1;
        match metric {
            Metric::Counter(c) => lines.push(line(name, "", labels, "", c.get() as f64)),
            Metric::Gauge(g) => lines.push(line(name, "", labels, "", g.get())),
            Metric::Histogram(h) => histogram_lines(lines, name, labels, h),
        }
    }
    for s in extra {
        let labels = render_labels(&s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
        families
            .entry(s.name)
            .or_insert_with(|| (Kind::Gauge, Vec::new()))
            .1
            .push(line(s.name, "", &labels, "", s.value));
    }
    let mut out = String::new();
    for (name, (kind, mut lines)) in families {
        lines.sort();
        if let Some(h) = help(name) {
            let _ = writeln!(out, "# HELP {name} {h}");
        }
        let _ = writeln!(out, "# TYPE {name} {}", kind.name());
        for l in lines {
            out.push_str(&l);
        }
    }
    out
}

fn histogram_lines(lines: &mut Vec<String>, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0u64;
    for (i, bound) in SECONDS_BUCKETS.iter().map(|b| b.to_string()).chain(["+Inf".to_owned()]).enumerate() {
        cumulative += h.0.buckets[i].load(Ordering::Relaxed);
        lines.push(line(name, "_bucket", labels, &format!("le=\"{bound}\""), cumulative as f64));
    }
    lines.push(line(name, "_sum", labels, "", f64::from_bits(h.0.sum.load(Ordering::Relaxed))));
    lines.push(line(name, "_count", labels, "", h.count() as f64));
}

fn line(name: &str, suffix: &str, labels: &str, extra: &str, value: f64) -> String {
    let sep = if labels.is_empty() || extra.is_empty() { "" } else { "," };
    let set = if labels.is_empty() && extra.is_empty() { String::new() } else { format!("{{{labels}{sep}{extra}}}") };
    format!("{name}{suffix}{set} {}\n", number(value))
}

/// Integers without a fraction; the text format's spellings of infinities and NaN.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
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
            "kit_test_extra{s=\"intake\"} 7\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn a_name_keeps_its_first_kind() {
        counter("kit_test_kind", &[]).inc();
        gauge("kit_test_kind", &[("x", "1")]).set(9.0);
        let text = render(&[]);
        assert!(text.contains("# TYPE kit_test_kind counter\n"), "{text}");
        assert!(!text.contains("kit_test_kind{x=\"1\"}"), "a gauge under a counter's name is not exported:\n{text}");
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
        assert!(text.contains("zongzhi_consumer_lag{consumer=\"kit_test_consumer\",partition=\"3\"} 11\n"), "{text}");
    }
}
