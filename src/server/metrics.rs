//! Prometheus metrics of `cstore serve`, in the OpenMetrics text format.
//!
//! Recording a command touches only series created up front, indexed by the command's
//! position in the command table: three relaxed atomic additions (outcome counter, latency
//! bucket, latency sum), no lock and no hashing. `prometheus-client`'s own `Histogram` takes a
//! mutex per observation, so commands use a small atomic histogram encoded by a collector.
//! Store-wide numbers (keys, memory, expiries, lock waits, the running engine and its
//! migration) are read from the engine when Prometheus scrapes.

use std::fmt;
use std::iter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::engine::{EngineStatus, MigrationReport, StoreStats, Strategy};

/// The `Content-Type` of [`Metrics::encode`]'s output, which Prometheus negotiates and parses.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with `cstore_`.
const PREFIX: &str = "cstore";

/// Upper bounds of the command latency buckets, in nanoseconds: 10 µs to 1 s in 1-2.5-5
/// steps, since most commands finish well under a millisecond.
const BUCKET_BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

const NANOS_PER_SECOND: f64 = 1e9;

/// How a command ended, as the `outcome` label of `cstore_commands_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and answered normally (a nil or a zero is still `Ok`).
    Ok,
    /// Ran and answered an error: wrong type, syntax, out of range, ...
    Error,
    /// Refused before running: no authentication (`-NOAUTH`) or memory full (`-OOM`).
    Rejected,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Rejected];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The metrics of one server. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    commands: Arc<CommandTable>,
    unknown_commands: Counter,
    connected_clients: Gauge,
    connections: Counter,
    rejected_connections: Counter,
    migrations: Counter,
    migration_duration: Histogram,
    rdb_saves: Counter,
    rdb_save_failures: Counter,
    rdb_save_duration: Histogram,
    aof_rewrites: Counter,
    aof_rewrite_failures: Counter,
    aof_rewrite_duration: Histogram,
    aof_write_failures: Counter,
    aof_fsync_duration: Histogram,
}

impl Metrics {
    /// Creates every series up front: `command_names` is the command table, in the order of
    /// the indexes later given to [`Metrics::record_command`].
    pub fn new(command_names: &[&'static str]) -> Self {
        let commands = Arc::new(CommandTable {
            names: command_names.to_vec(),
            series: (0..command_names.len() * STRIPES).map(|_| CachePadded::default()).collect(),
        });
        let metrics = Metrics {
            registry: Registry::with_prefix(PREFIX),
            commands,
            unknown_commands: Counter::default(),
            connected_clients: Gauge::default(),
            connections: Counter::default(),
            rejected_connections: Counter::default(),
            migrations: Counter::default(),
            // 10 ms to about 3 minutes: a million keys move in about a second.
            migration_duration: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
            rdb_saves: Counter::default(),
            rdb_save_failures: Counter::default(),
            // 1 ms to about 9 minutes: an empty store to many gigabytes.
            rdb_save_duration: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            aof_rewrites: Counter::default(),
            aof_rewrite_failures: Counter::default(),
            aof_rewrite_duration: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            aof_write_failures: Counter::default(),
            // 10 µs (a page-cache-only device) to about 10 s (a stalled disk).
            aof_fsync_duration: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Self {
        let registry = &mut self.registry;
        registry.register_collector(Box::new(Arc::clone(&self.commands)));
        registry.register(
            "unknown_commands",
            "Requests naming a command cstore does not know",
            self.unknown_commands.clone(),
        );
        registry.register("connected_clients", "Client connections open now", self.connected_clients.clone());
        registry.register("connections", "Client connections accepted", self.connections.clone());
        registry.register(
            "rejected_connections",
            "Client connections refused because maxclients was reached",
            self.rejected_connections.clone(),
        );
        registry.register(
            "build",
            "The cstore version",
            Info::new([("version", env!("CARGO_PKG_VERSION").to_owned())]),
        );
        registry.register("migrations", "Live migrations to another strategy or shard count completed", {
            self.migrations.clone()
        });
        registry.register_with_unit(
            "migration_duration",
            "How long each live migration took, from start to the switch to the new engine",
            Unit::Seconds,
            self.migration_duration.clone(),
        );
        registry.register("rdb_saves", "Snapshots (SAVE, BGSAVE, save rules, shutdown) written", {
            self.rdb_saves.clone()
        });
        registry.register("rdb_save_failures", "Snapshots that failed; the previous file was kept", {
            self.rdb_save_failures.clone()
        });
        registry.register_with_unit(
            "rdb_save_duration",
            "How long each successful snapshot took to write, fsync included",
            Unit::Seconds,
            self.rdb_save_duration.clone(),
        );
        registry.register("aof_rewrites", "AOF rewrites (BGREWRITEAOF, automatic, appendonly turned on) done", {
            self.aof_rewrites.clone()
        });
        registry.register("aof_rewrite_failures", "AOF rewrites that failed; the previous files stayed in use", {
            self.aof_rewrite_failures.clone()
        });
        registry.register_with_unit(
            "aof_rewrite_duration",
            "How long each successful AOF rewrite took, from its cut to the new manifest",
            Unit::Seconds,
            self.aof_rewrite_duration.clone(),
        );
        registry.register(
            "aof_write_failures",
            "Failed writes or fsyncs of the AOF (each retried; writes are refused meanwhile)",
            self.aof_write_failures.clone(),
        );
        registry.register_with_unit(
            "aof_fsync_duration",
            "How long each fsync of the AOF took (a group commit's: one per batch of writes)",
            Unit::Seconds,
            self.aof_fsync_duration.clone(),
        );
        self
    }

    /// Records a finished AOF rewrite: its duration if it succeeded.
    pub fn aof_rewrite_finished(&self, succeeded: Option<Duration>) {
        match succeeded {
            Some(duration) => {
                self.aof_rewrites.inc();
                self.aof_rewrite_duration.observe(duration.as_secs_f64());
            }
            None => drop(self.aof_rewrite_failures.inc()),
        }
    }

    /// Records a failed write or fsync of the AOF.
    pub fn aof_write_failed(&self) {
        self.aof_write_failures.inc();
    }

    /// Records one fsync of the AOF.
    pub fn aof_fsynced(&self, duration: Duration) {
        self.aof_fsync_duration.observe(duration.as_secs_f64());
    }

    /// Records a finished snapshot: its duration if it succeeded.
    pub fn rdb_save_finished(&self, succeeded: Option<Duration>) {
        match succeeded {
            Some(duration) => {
                self.rdb_saves.inc();
                self.rdb_save_duration.observe(duration.as_secs_f64());
            }
            None => drop(self.rdb_save_failures.inc()),
        }
    }

    /// Records a completed live migration.
    pub fn migration_completed(&self, report: &MigrationReport) {
        self.migrations.inc();
        self.migration_duration.observe(report.duration.as_secs_f64());
    }

    /// Records one executed command. Lock-free and allocation-free: call it on every command.
    pub fn record_command(&self, command_index: usize, outcome: Outcome, elapsed: Duration) {
        debug_assert!(command_index < self.commands.names.len(), "command {command_index} is not in the table");
        let Some(series) = self.commands.series.get(command_index * STRIPES + stripe()) else { return };
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        series.outcomes[outcome as usize].fetch_add(1, Relaxed);
        // A bucket counts observations <= its bound; past the last bound is +Inf.
        series.buckets[BUCKET_BOUNDS_NS.partition_point(|&bound| bound < nanos)].fetch_add(1, Relaxed);
        series.sum_ns.fetch_add(nanos, Relaxed);
    }

    /// Records a request for a command that does not exist (no label: the name is the
    /// client's, and unbounded).
    pub fn unknown_command(&self) {
        self.unknown_commands.inc();
    }

    pub fn client_connected(&self) {
        self.connections.inc();
        self.connected_clients.inc();
    }

    pub fn client_disconnected(&self) {
        self.connected_clients.dec();
    }

    /// A connection refused because `maxclients` was reached.
    pub fn connection_rejected(&self) {
        self.rejected_connections.inc();
    }

    /// Commands executed since start, whatever their outcome (INFO's
    /// `total_commands_processed`). Sums every series: for scrapes and INFO, not hot paths.
    pub fn total_commands(&self) -> u64 {
        self.commands.series.iter().flat_map(|series| series.outcomes.iter()).map(|count| count.load(Relaxed)).sum()
    }

    /// Client connections open now.
    pub fn connected_clients(&self) -> i64 {
        self.connected_clients.get()
    }

    /// Every metric in the OpenMetrics text format (serve it with [`CONTENT_TYPE`]), with the
    /// store-wide ones taken from `stats` and `engine`.
    pub fn encode(&self, stats: &StoreStats, engine: &EngineStatus) -> Result<String, fmt::Error> {
        let mut out = String::new();
        text::encode_registry(&mut out, &self.registry)?;
        text::encode_registry(&mut out, &self.store_registry(stats, engine))?;
        text::encode_eof(&mut out)?;
        Ok(out)
    }

    /// The store-wide metrics as of `stats` and `engine`: built per scrape, so nothing shared
    /// is written.
    fn store_registry(&self, stats: &StoreStats, engine: &EngineStatus) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "engine",
            "The strategy and shard count the store runs (during a migration, the one it leaves)",
            Info::new([
                ("strategy", engine.running.strategy.name().to_owned()),
                ("shards", engine.running.shards.to_string()),
            ]),
        );
        registry.register(
            "migration_in_progress",
            "1 while a live migration moves keys to another engine",
            ConstGauge::new(i64::from(engine.migration.is_some())),
        );
        registry.register(
            "migration_keys_moved",
            "Keys the live migration under way has moved so far",
            ConstGauge::new(engine.migration.map_or(0, |m| m.keys_moved) as i64),
        );
        registry.register("keys", "Keys in the store, including expired ones not yet reclaimed", {
            ConstGauge::new(stats.keys)
        });
        registry.register("volatile_keys", "Keys that carry an expiry", ConstGauge::new(stats.volatile_keys));
        registry.register_with_unit(
            "memory",
            "Approximate memory used by keys, values and per-entry overhead",
            Unit::Bytes,
            ConstGauge::new(stats.memory_bytes),
        );
        registry.register("expired_keys", "Keys removed because they expired", ConstCounter::new(stats.expired_keys));
        registry.register(
            "evicted_keys",
            "Keys removed to stay under maxmemory",
            ConstCounter::new(stats.evicted_keys),
        );
        // Lock-free engines have no locks to wait for.
        if engine.running.strategy != Strategy::LockFree {
            registry.register_with_unit(
                "lock_wait",
                "Time callers spent waiting for shard locks",
                Unit::Seconds,
                ConstCounter::new(stats.lock_wait_ns as f64 / NANOS_PER_SECOND),
            );
        }
        crate::telemetry::register_dropped_spans(&mut registry);
        if let Some(versions) = stats.published_versions {
            registry.register(
                "published_versions",
                "Snapshots published by CopyOnWrite writers",
                ConstCounter::new(versions),
            );
        }
        registry
    }
}

/// How many copies of each command's series there are. Each thread records into one copy
/// (threads take turns picking theirs), so two worker threads running the same command
/// (every GET of a GET-heavy load) do not bounce one cache line between their cores on each
/// command; reading sums the copies.
const STRIPES: usize = 4;

/// The copy of the series this thread records into.
fn stripe() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        if stripe.get() == usize::MAX {
            stripe.set(NEXT.fetch_add(1, Relaxed) % STRIPES);
        }
        stripe.get()
    })
}

/// One copy of one command's series. Cache-padded so that commands recorded on different
/// cores do not contend for one cache line.
#[derive(Debug, Default)]
struct CommandSeries {
    /// Indexed by `Outcome as usize`.
    outcomes: [AtomicU64; Outcome::ALL.len()],
    /// Observations per bucket, not cumulative; the last one is +Inf. Their sum is the
    /// histogram's count, so count and buckets always agree.
    buckets: [AtomicU64; BUCKET_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

#[derive(Debug)]
struct CommandTable {
    names: Vec<&'static str>,
    /// `STRIPES` copies per command, command by command.
    series: Box<[CachePadded<CommandSeries>]>,
}

impl CommandTable {
    /// Each command's name and its series, summed over the copies.
    fn totals(&self) -> impl Iterator<Item = (&'static str, CommandSeries)> + '_ {
        self.names.iter().zip(self.series.chunks(STRIPES)).map(|(name, copies)| {
            let total = CommandSeries::default();
            for copy in copies {
                let add = |to: &AtomicU64, from: &AtomicU64| to.fetch_add(from.load(Relaxed), Relaxed);
                for (to, from) in total.outcomes.iter().zip(&copy.outcomes) {
                    add(to, from);
                }
                for (to, from) in total.buckets.iter().zip(&copy.buckets) {
                    add(to, from);
                }
                add(&total.sum_ns, &copy.sum_ns);
            }
            (*name, total)
        })
    }
}

impl Collector for CommandTable {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "commands",
            "Commands executed, by command and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (name, series) in self.totals() {
            for outcome in Outcome::ALL {
                let labels = [("command", name), ("outcome", outcome.label())];
                let count = series.outcomes[outcome as usize].load(Relaxed);
                family.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "command_duration",
            "Time to execute a command, from parsed request to reply.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        let upper_bounds = BUCKET_BOUNDS_NS.map(|ns| ns as f64 / NANOS_PER_SECOND);
        for (name, series) in self.totals() {
            let buckets: Vec<(f64, u64)> = upper_bounds
                .iter()
                .copied()
                .chain(iter::once(f64::INFINITY))
                .zip(series.buckets.iter().map(|bucket| bucket.load(Relaxed)))
                .collect();
            let count = buckets.iter().map(|&(_, observations)| observations).sum();
            let sum = series.sum_ns.load(Relaxed) as f64 / NANOS_PER_SECOND;
            let labels = [("command", name)];
            family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    const COMMANDS: [&str; 3] = ["get", "set", "ping"];

    fn metrics() -> Metrics {
        Metrics::new(&COMMANDS)
    }

    fn engine(strategy: Strategy) -> EngineStatus {
        EngineStatus {
            running: EngineConfig { strategy, shards: 8 },
            migration: None,
            migrations_completed: 0,
            last_migration: None,
        }
    }

    fn encoded(metrics: &Metrics, stats: &StoreStats) -> String {
        metrics.encode(stats, &engine(Strategy::RwLock)).unwrap()
    }

    fn assert_has_line(text: &str, line: &str) {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }

    #[test]
    fn commands_are_counted_by_name_and_outcome() {
        let metrics = metrics();
        metrics.record_command(0, Outcome::Ok, Duration::from_micros(5));
        metrics.record_command(0, Outcome::Ok, Duration::from_micros(5));
        metrics.record_command(1, Outcome::Rejected, Duration::from_micros(5));
        metrics.record_command(1, Outcome::Error, Duration::from_micros(5));
        metrics.unknown_command();
        let text = encoded(&metrics, &StoreStats::default());
        assert_has_line(&text, "# TYPE cstore_commands counter");
        assert_has_line(&text, "cstore_commands_total{command=\"get\",outcome=\"ok\"} 2");
        assert_has_line(&text, "cstore_commands_total{command=\"get\",outcome=\"error\"} 0");
        assert_has_line(&text, "cstore_commands_total{command=\"set\",outcome=\"rejected\"} 1");
        assert_has_line(&text, "cstore_commands_total{command=\"set\",outcome=\"error\"} 1");
        assert_has_line(&text, "cstore_commands_total{command=\"ping\",outcome=\"ok\"} 0");
        assert_has_line(&text, "cstore_unknown_commands_total 1");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn latency_buckets_are_cumulative_and_bounded_inclusively() {
        let metrics = metrics();
        for micros in [3, 10, 11, 700, 2_000_000] {
            metrics.record_command(2, Outcome::Ok, Duration::from_micros(micros));
        }
        let text = encoded(&metrics, &StoreStats::default());
        assert_has_line(&text, "# TYPE cstore_command_duration_seconds histogram");
        assert_has_line(&text, "# UNIT cstore_command_duration_seconds seconds");
        let bucket =
            |le: &str, n: u64| format!("cstore_command_duration_seconds_bucket{{le=\"{le}\",command=\"ping\"}} {n}");
        assert_has_line(&text, &bucket("0.00001", 2)); // 3 µs and exactly 10 µs
        assert_has_line(&text, &bucket("0.000025", 3));
        assert_has_line(&text, &bucket("0.001", 4));
        assert_has_line(&text, &bucket("1.0", 4));
        assert_has_line(&text, &bucket("+Inf", 5));
        assert_has_line(&text, "cstore_command_duration_seconds_count{command=\"ping\"} 5");
        assert_has_line(&text, "cstore_command_duration_seconds_sum{command=\"ping\"} 2.000724");
        assert_has_line(&text, "cstore_command_duration_seconds_count{command=\"get\"} 0");
    }

    #[test]
    fn connections_are_tracked() {
        let metrics = metrics();
        metrics.client_connected();
        metrics.client_connected();
        metrics.client_disconnected();
        metrics.connection_rejected();
        assert_eq!(metrics.connected_clients(), 1);
        let text = encoded(&metrics, &StoreStats::default());
        assert_has_line(&text, "cstore_connected_clients 1");
        assert_has_line(&text, "cstore_connections_total 2");
        assert_has_line(&text, "cstore_rejected_connections_total 1");
    }

    #[test]
    fn store_metrics_come_from_the_stats_given() {
        let stats = StoreStats {
            keys: 10,
            volatile_keys: 4,
            memory_bytes: 2048,
            expired_keys: 3,
            evicted_keys: 2,
            lock_wait_ns: 1_500_000_000,
            published_versions: Some(7),
        };
        let text = metrics().encode(&stats, &engine(Strategy::CopyOnWrite)).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let build_info = format!("cstore_build_info{{version=\"{version}\"}} 1");
        for line in [
            build_info.as_str(),
            "cstore_engine_info{strategy=\"CopyOnWrite\",shards=\"8\"} 1",
            "cstore_migration_in_progress 0",
            "cstore_keys 10",
            "cstore_volatile_keys 4",
            "# UNIT cstore_memory_bytes bytes",
            "cstore_memory_bytes 2048",
            "cstore_expired_keys_total 3",
            "cstore_evicted_keys_total 2",
            "cstore_lock_wait_seconds_total 1.5",
            "cstore_published_versions_total 7",
        ] {
            assert_has_line(&text, line);
        }
        assert_eq!(text.matches("# EOF").count(), 1, "one exposition, one EOF");
    }

    #[test]
    fn lock_free_stores_report_no_lock_wait() {
        let text = metrics().encode(&StoreStats::default(), &engine(Strategy::LockFree)).unwrap();
        assert!(!text.contains("lock_wait"), "{text}");
        assert!(!text.contains("published_versions"), "{text}");
    }

    #[test]
    fn migrations_are_counted_and_timed_and_the_one_under_way_shows() {
        let metrics = metrics();
        let from = EngineConfig { strategy: Strategy::RwLock, shards: 16 };
        let to = EngineConfig { strategy: Strategy::LockFree, shards: 256 };
        metrics.migration_completed(&MigrationReport {
            from,
            to,
            keys_moved: 10,
            duration: Duration::from_millis(30),
            longest_pause: Duration::from_micros(50),
        });
        let migrating = EngineStatus {
            migration: Some(crate::engine::MigrationProgress {
                target: from,
                keys_moved: 42,
                keys_total: 100,
                elapsed: Duration::from_millis(5),
            }),
            ..engine(Strategy::LockFree)
        };
        let text = metrics.encode(&StoreStats::default(), &migrating).unwrap();
        for line in [
            "cstore_migrations_total 1",
            "cstore_migration_duration_seconds_count 1",
            "cstore_migration_duration_seconds_bucket{le=\"0.04\"} 1",
            "cstore_migration_in_progress 1",
            "cstore_migration_keys_moved 42",
            "cstore_engine_info{strategy=\"LockFree\",shards=\"8\"} 1",
        ] {
            assert_has_line(&text, line);
        }
    }

    #[test]
    fn aof_rewrites_write_failures_and_fsyncs_are_counted() {
        let metrics = metrics();
        metrics.aof_rewrite_finished(Some(Duration::from_millis(3)));
        metrics.aof_rewrite_finished(None);
        metrics.aof_write_failed();
        metrics.aof_fsynced(Duration::from_micros(15));
        metrics.aof_fsynced(Duration::from_micros(15));
        let text = encoded(&metrics, &StoreStats::default());
        assert_has_line(&text, "cstore_aof_rewrites_total 1");
        assert_has_line(&text, "cstore_aof_rewrite_failures_total 1");
        assert_has_line(&text, "cstore_aof_write_failures_total 1");
        assert_has_line(&text, "cstore_aof_rewrite_duration_seconds_count 1");
        assert_has_line(&text, "cstore_aof_fsync_duration_seconds_count 2");
        assert_has_line(&text, "cstore_aof_fsync_duration_seconds_bucket{le=\"0.00001\"} 0");
        assert_has_line(&text, "cstore_aof_fsync_duration_seconds_bucket{le=\"0.00002\"} 2");
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let metrics = metrics();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..10_000u64 {
                        metrics.record_command(0, Outcome::Ok, Duration::from_nanos(i * 100));
                    }
                });
            }
        });
        let text = encoded(&metrics, &StoreStats::default());
        assert_has_line(&text, "cstore_commands_total{command=\"get\",outcome=\"ok\"} 40000");
        assert_has_line(&text, "cstore_command_duration_seconds_count{command=\"get\"} 40000");
        assert_has_line(&text, "cstore_command_duration_seconds_bucket{le=\"+Inf\",command=\"get\"} 40000");
    }
}
