//! Logs and traces. Spans always carry W3C trace context, across gRPC calls (metadata) and NATS messages
//! (headers); an OTLP exporter is switched on by OTEL_EXPORTER_OTLP_ENDPOINT.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber once per process (the suite runs several services in one process, tests
/// many): RUST_LOG filters (default `info`), LOG_FORMAT=json gives JSON lines, OTEL_EXPORTER_OTLP_ENDPOINT turns
/// on export. Later calls do nothing.
pub fn init(service: &'static str) {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|v| !v.is_empty());
    init_with(service, endpoint.as_deref());
}

/// The same with the OTLP endpoint given rather than read (tests point it at their own collector; the
/// environment is process-wide and changing it is unsafe).
pub fn init_with(service: &'static str, otlp_endpoint: Option<&str>) {
    use opentelemetry_otlp::WithExportConfig;
    if PROVIDER.get().is_some() {
        return;
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build());
    if let Some(endpoint) = otlp_endpoint {
        match opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("otlp exporter disabled: {e}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let otel =
        tracing_opentelemetry::layer().with_tracer(tracer).with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    // RUST_LOG filters what is logged, not what is traced: spans must exist for trace context to propagate
    // even when only warnings are logged.
    let registry = tracing_subscriber::registry().with(otel);
    let installed = if json {
        registry.with(tracing_subscriber::fmt::layer().json().with_filter(filter)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_target(false).with_filter(filter)).try_init()
    };
    if installed.is_ok() {
        let _ = PROVIDER.set(provider);
    }
}

/// Flushes spans still buffered for export; called last during shutdown.
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

/// The current span's context as W3C headers (`traceparent`, `tracestate`).
pub fn current_headers() -> HashMap<String, String> {
    let mut map = HashMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    map
}

/// A parent context read from W3C headers given as name/value pairs.
pub fn context_from<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Context {
    let map: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect();
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&map))
}

/// A parent context read from HTTP headers (`traceparent`, `tracestate`); an empty context when they are
/// absent or malformed, so the span starts a new trace.
pub fn context_from_headers(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Makes `span` a child of the context carried by `headers`.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    let _ = span.set_parent(parent);
}

pub(crate) struct MetadataInjector<'a>(pub &'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

pub(crate) struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
