//! The span pipeline: the SDK's batch processor on its own thread, wrapped so that every span
//! that will never reach the collector is counted, and so that a collector that is down, slow
//! or refusing costs the application one atomic increment per span and nothing more.
//!
//! The SDK drops spans silently when its queue is full and does not expose how many. So
//! admission is decided here: a span is handed to the batch processor only while fewer than
//! `max_queue_size` spans are in flight (queued, or in a batch not yet handed to the exporter);
//! the SDK's own queue has that capacity, so it never overflows, and every drop is ours to count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};

use super::settings::{ExportSettings, OtlpProtocol, Sampling};

/// Spans dropped since the process started: queue full, or the export failed or timed out.
static DROPPED_SPANS: AtomicU64 = AtomicU64::new(0);

/// Seconds since the epoch of the last drop warning, so a collector outage logs a line every
/// [`WARNING_INTERVAL`] rather than one per span.
static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
const WARNING_INTERVAL: Duration = Duration::from_secs(30);

/// Spans dropped since the process started.
pub fn dropped_spans() -> u64 {
    DROPPED_SPANS.load(Ordering::Relaxed)
}

fn count_dropped(spans: usize, why: &dyn std::fmt::Display) {
    let total = DROPPED_SPANS.fetch_add(spans as u64, Ordering::Relaxed) + spans as u64;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if now >= last + WARNING_INTERVAL.as_secs()
        && LAST_WARNING.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        tracing::warn!(dropped_total = total, reason = %why, "trace spans are being dropped");
    }
}

/// Builds the tracer provider exporting to `settings`. Must run inside the tokio runtime: the
/// gRPC exporter's connection lives there.
pub fn provider(
    settings: &ExportSettings,
    sampling: Sampling,
    resource: Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let exporter = CountingExporter { inner: otlp_exporter(settings)?, in_flight: Arc::clone(&in_flight) };
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_max_queue_size(settings.max_queue_size).build())
        .build();
    let processor = AdmissionProcessor { inner: batch, in_flight, limit: settings.max_queue_size };
    let root = if sampling.ratio >= 1.0 { Sampler::AlwaysOn } else { Sampler::TraceIdRatioBased(sampling.ratio) };
    let sampler = if sampling.parent_based { Sampler::ParentBased(Box::new(root)) } else { root };
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

fn otlp_exporter(settings: &ExportSettings) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let exporter = match settings.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(settings.timeout)
            .build()?,
        OtlpProtocol::HttpProtobuf => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(settings.endpoint.clone())
                .with_timeout(settings.timeout);
            // The blocking HTTP client owns a runtime of its own, which may not be created
            // from inside an async context: build it on a plain thread.
            std::thread::scope(|scope| scope.spawn(|| builder.build()).join())
                .map_err(|_| anyhow::anyhow!("building the OTLP/HTTP exporter panicked"))??
        }
    };
    Ok(exporter)
}

/// Lets a span into the batch queue only while there is room, counting the ones refused.
#[derive(Debug)]
struct AdmissionProcessor<P> {
    inner: P,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

impl<P: SpanProcessor> SpanProcessor for AdmissionProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            count_dropped(1, &"the export queue is full (collector slow or unreachable)");
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Frees queue room as batches leave for the collector and counts the spans of failed exports.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    in_flight: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        self.in_flight.fetch_sub(spans, Ordering::AcqRel);
        let started = Instant::now();
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            let why = format!("export failed after {:?}: {error}", started.elapsed());
            count_dropped(spans, &why);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
