//! Prometheus metrics of `cstore operator`, in the OpenMetrics text format: reconciles,
//! failures by reason, reconcile duration, whether this replica holds the leader lease, and
//! its conversations with store pods (live reconfigurations sent, failures by reason).

use std::fmt;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::reconcile::FailureReason;
use super::store_client::StoreFailure;

/// Upper bounds of the reconcile duration buckets, in seconds: a reconcile is a handful of
/// API round trips, so from a millisecond to the API client's own timeouts.
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

type ReasonLabel = [(&'static str, &'static str); 1];

/// The exemplar of a reconcile duration: the trace of that reconcile, which Grafana links
/// to Tempo.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

/// The operator's metrics. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<ReasonLabel, Counter>,
    duration: HistogramWithExemplars<TraceExemplar>,
    leader: Gauge,
    live_reconfigurations: Counter,
    store_request_failures: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("cstore_operator"),
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: HistogramWithExemplars::new(DURATION_BUCKETS.into_iter()),
            leader: Gauge::default(),
            live_reconfigurations: Counter::default(),
            store_request_failures: Family::default(),
        };
        // Every reason is shown from the start, at zero, so that rate() and alerts see it.
        for reason in FailureReason::ALL {
            let _series = metrics.failures.get_or_create(&[("reason", reason.label())]);
        }
        for failure in StoreFailure::ALL {
            let _series = metrics.store_request_failures.get_or_create(&[("reason", failure.label())]);
        }
        let registry = &mut metrics.registry;
        registry.register(
            "reconciles",
            "Reconciles of ConcurrentStores, successful or not",
            metrics.reconciles.clone(),
        );
        registry.register("reconcile_failures", "Reconciles that failed, by reason", metrics.failures.clone());
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took, from start to status update",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and reconciles, else 0",
            metrics.leader.clone(),
        );
        registry.register(
            "live_reconfigurations",
            "CONFIG SETs of a spec's live settings (strategy, shards, memory, tracing) that a store pod accepted",
            metrics.live_reconfigurations.clone(),
        );
        registry.register(
            "store_request_failures",
            "Conversations with a store pod that failed, by reason",
            metrics.store_request_failures.clone(),
        );
        metrics
    }

    /// Starts timing a reconcile; finish it with [`ReconcileTimer::finish`].
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        ReconcileTimer { metrics: self, started: Instant::now() }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn live_reconfiguration_sent(&self) {
        self.live_reconfigurations.inc();
    }

    pub fn store_request_failed(&self, failure: StoreFailure) {
        self.store_request_failures.get_or_create(&[("reason", failure.label())]).inc();
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        text::encode_registry(&mut out, &self.registry)?;
        let mut per_scrape = Registry::with_prefix("cstore_operator");
        crate::telemetry::register_dropped_spans(&mut per_scrape);
        text::encode_registry(&mut out, &per_scrape)?;
        text::encode_eof(&mut out)?;
        Ok(out)
    }
}

/// A reconcile being timed.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl ReconcileTimer<'_> {
    /// Records the reconcile, with its failure reason if it failed and its trace if it was
    /// traced; returns how long it took.
    pub fn finish(self, failure: Option<FailureReason>, trace_id: Option<String>) -> Duration {
        let elapsed = self.started.elapsed();
        self.metrics.reconciles.inc();
        let exemplar = trace_id.map(|trace_id| TraceExemplar { trace_id });
        self.metrics.duration.observe(elapsed.as_secs_f64(), exemplar, None);
        if let Some(reason) = failure {
            self.metrics.failures.get_or_create(&[("reason", reason.label())]).inc();
        }
        elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_failures_and_leadership_are_exported() {
        let metrics = Metrics::new();
        metrics.reconcile_started().finish(None, None);
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736".to_owned();
        metrics.reconcile_started().finish(Some(FailureReason::Conflict), Some(trace_id));
        metrics.set_leader(true);
        metrics.live_reconfiguration_sent();
        metrics.store_request_failed(StoreFailure::Unreachable);
        let text = metrics.encode().unwrap();
        for line in [
            "cstore_operator_reconciles_total 2",
            "cstore_operator_reconcile_failures_total{reason=\"Conflict\"} 1",
            "cstore_operator_reconcile_failures_total{reason=\"InvalidSpec\"} 0",
            "cstore_operator_reconcile_duration_seconds_count 2",
            "cstore_operator_leader 1",
            "cstore_operator_live_reconfigurations_total 1",
            "cstore_operator_store_request_failures_total{reason=\"Unreachable\"} 1",
            "cstore_operator_store_request_failures_total{reason=\"Refused\"} 0",
            "cstore_operator_trace_spans_dropped_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let exemplar = "# {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"}";
        assert!(
            text.lines()
                .any(|l| l.starts_with("cstore_operator_reconcile_duration_seconds_bucket") && l.contains(exemplar)),
            "no exemplar in\n{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
