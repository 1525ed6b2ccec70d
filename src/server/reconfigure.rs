//! Applies `CONFIG SET strategy|shards` to the running store: a background thread migrates
//! every database live, one after the other (`engine/migration.rs`, `engine/databases.rs`),
//! until they run what the settings ask for.
//!
//! `CONFIG SET` answers `+OK` once the new configuration is accepted and this thread has been
//! told; it does not wait for the migration (a million keys take about a second). Progress and
//! completion show in `INFO cstore` (`migration_in_progress`, `strategy`, `shards`). A change
//! made while a migration runs is queued, not refused: the thread finishes the migration under
//! way, then goes straight to the latest configuration, so any number of changes coalesce into
//! at most one more migration.
//!
//! Each migration is a `migration` span with a link to the span of every traced CONFIG SET it
//! applies (not a parent: it outlives them, and may apply several). A CONFIG SET the operator
//! sent after `CLIENT TRACEPARENT` is a child of the reconcile that sent it, so a trace view
//! leads from the reconcile to the change, and from the migration back to both.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use opentelemetry::trace::SpanContext;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::config::RuntimeSettings;
use super::metrics::Metrics;
use crate::engine::Databases;

/// Wakes the migration thread, with the span of the request that changed the settings when it
/// is traced. Dropping it (with the server) ends the thread once the migration under way, if
/// any, is done.
pub(crate) struct Reconfigurer {
    wake: Sender<Option<SpanContext>>,
}

impl Reconfigurer {
    pub(crate) fn start(
        databases: Arc<Databases>,
        settings: Arc<RuntimeSettings>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Reconfigurer> {
        let (wake, woken) = mpsc::channel();
        std::thread::Builder::new()
            .name("cstore-migrate".into())
            .spawn(move || follow_settings(&databases, &settings, &metrics, &woken))?;
        Ok(Reconfigurer { wake })
    }

    /// Tells the thread that the engine settings may have changed, by the request whose span
    /// is `requested_by` (the migration links to it).
    pub(crate) fn settings_changed(&self, requested_by: Option<SpanContext>) {
        // The thread only ends when this sender is dropped, so the send cannot fail while
        // `self` exists; if it ever did, there would be nobody left to tell.
        let _ = self.wake.send(requested_by);
    }
}

fn follow_settings(
    databases: &Databases,
    settings: &RuntimeSettings,
    metrics: &Metrics,
    woken: &Receiver<Option<SpanContext>>,
) {
    while let Ok(first) = woken.recv() {
        let mut requests: Vec<SpanContext> = first.into_iter().collect();
        loop {
            // Several wake-ups while a migration ran need one look at the settings, not
            // several; the next migration applies all of them, so it links to all of them.
            requests.extend(woken.try_iter().flatten());
            let wanted = settings.engine();
            let running = databases.engine_status().running;
            if wanted == running {
                break;
            }
            let span = tracing::info_span!(
                "migration",
                cstore.from.strategy = %running.strategy,
                cstore.from.shards = running.shards,
                cstore.to.strategy = %wanted.strategy,
                cstore.to.shards = wanted.shards,
                cstore.keys_moved = tracing::field::Empty,
                cstore.longest_pause_us = tracing::field::Empty,
            );
            for request in requests.drain(..) {
                span.add_link(request);
            }
            let _entered = span.enter();
            match databases.migrate(wanted) {
                Ok(report) => {
                    span.record("cstore.keys_moved", report.keys_moved);
                    span.record("cstore.longest_pause_us", report.longest_pause.as_micros() as u64);
                    metrics.migration_completed(&report);
                    tracing::info!(
                        duration_ms = report.duration.as_millis() as u64,
                        keys = report.keys_moved,
                        "migrated from {} x {} to {} x {}",
                        running.strategy,
                        running.shards,
                        wanted.strategy,
                        wanted.shards
                    );
                }
                // CONFIG SET validated the values; a refusal here is a bug to report, and
                // retrying it would spin.
                Err(error) => {
                    tracing::error!(%error, "migration to {} x {} refused", wanted.strategy, wanted.shards);
                    break;
                }
            }
        }
    }
}
