//! Logs and traces for every subcommand: one `tracing` subscriber with an env filter
//! (`RUST_LOG`), text or JSON logs on standard error, and, when an OTLP endpoint is
//! configured, an OpenTelemetry layer that exports cstore's own spans through a batch
//! processor. A collector that is down, slow or refusing never blocks the process: spans are
//! dropped, counted ([`dropped_spans`], exported as a metric) and warned about at a bounded rate.

mod export;
pub mod propagation;
pub mod sampler;
pub mod settings;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use self::export::dropped_spans;
pub use self::settings::{OtlpArgs, Sampling};
use crate::server::config::LogFormat;

/// Registers `trace_spans_dropped` (a counter, as of now) in a per-scrape registry.
pub fn register_dropped_spans(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "trace_spans_dropped",
        "Trace spans dropped because the collector was unreachable, slow or refusing",
        prometheus_client::metrics::counter::ConstCounter::new(dropped_spans()),
    );
}

/// Who is being traced.
pub struct Process<'a> {
    /// `service.name` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one.
    pub default_service_name: &'static str,
    pub log_format: LogFormat,
    pub otlp: &'a OtlpArgs,
    /// Resource attributes beyond service, version, pod and namespace.
    pub attributes: Vec<KeyValue>,
    /// Which root spans the SDK keeps (see [`OtlpArgs::sampling`]).
    pub sampling: Sampling,
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber. Call it inside the tokio runtime (the gRPC exporter's
/// connection lives there), once per process.
pub fn init(process: Process<'_>) -> anyhow::Result<Telemetry> {
    // The exporters' HTTP stacks use rustls, which wants its crypto provider named when a
    // build links more than one; an error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let export = process.otlp.export()?;
    let sampling = process.sampling;
    let provider = match &export {
        Some(settings) => Some(export::provider(settings, sampling, resource(&process))?),
        None => None,
    };
    if provider.is_some() {
        sampler::set_exporting();
    }
    let otel_layer = provider.as_ref().map(|provider| {
        // Only cstore's own spans: the HTTP and gRPC crates' spans would add noise, and those
        // of the exporter itself would feed back into the pipeline. Info and above only, so
        // that exporting does not switch on the debug and trace call sites of hot paths.
        let only_ours = Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO);
        tracing_opentelemetry::layer().with_tracer(provider.tracer(env!("CARGO_PKG_NAME"))).with_filter(only_ours)
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match process.log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel_layer)
        .try_init()
        .map_err(|error| anyhow::anyhow!("cannot install the tracing subscriber: {error}"))?;
    if let Some(settings) = &export {
        tracing::info!(endpoint = %settings.endpoint, protocol = ?settings.protocol, ratio = sampling.ratio, "exporting traces");
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Whether spans are exported at all; when not, nothing should pay for building them.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued, waiting at most `timeout` for the collector.
    pub async fn shutdown(self, timeout: Duration) {
        let Some(provider) = self.provider else { return };
        // The SDK's shutdown blocks on the batch thread; keep it off the async workers.
        let flushing = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout));
        match tokio::time::timeout(timeout + Duration::from_secs(1), flushing).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "spans may have been lost at shutdown"),
            Ok(Err(_)) | Err(_) => tracing::warn!(?timeout, "the span export did not finish at shutdown"),
        }
    }
}

/// The process's resource: what OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say, the
/// default service name when they say none, the version, the pod and namespace from the
/// downward API variables POD_NAME and POD_NAMESPACE, and the caller's attributes.
fn resource(process: &Process<'_>) -> Resource {
    let from_environment = Resource::builder().build();
    let named = from_environment
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let mut attributes = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if !named {
        attributes.push(KeyValue::new("service.name", process.default_service_name));
    }
    for (key, variable) in [("k8s.pod.name", "POD_NAME"), ("k8s.namespace.name", "POD_NAMESPACE")] {
        let present = from_environment.get(&opentelemetry::Key::from_static_str(key)).is_some();
        if let (false, Ok(value)) = (present, std::env::var(variable)) {
            attributes.push(KeyValue::new(key, Value::from(value)));
        }
    }
    attributes.extend(process.attributes.iter().cloned());
    let detected = from_environment.iter().map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
    Resource::builder_empty().with_attributes(detected.chain(attributes)).build()
}
