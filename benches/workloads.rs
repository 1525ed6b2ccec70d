//! conc-map-bench style workloads: cstore in every strategy × shard count (1, 16, 256)
//! against `std::sync::RwLock<HashMap>`, dashmap, papaya and scc::HashMap.
//!
//! Every map runs through the same driver (`cstore::bench::workload`, also behind
//! `cstore bench`) on the same pre-generated per-thread operation streams, over a key space
//! prefilled before timing. Every map hashes with foldhash, as cstore does, so the
//! comparison is about concurrency design rather than hash functions. After criterion's own
//! output, a table per workload × thread count gives each map's throughput and its ratio to
//! the best baseline.
//!
//! `cargo bench --bench workloads` measures (about 10 minutes on 2 cores);
//! `cargo bench --bench workloads -- --test` and `cargo test --benches` run every benchmark
//! once on a small key space as a smoke test.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, measurement::WallTime};
use cstore::bench::report::{Table, ratio};
use cstore::bench::workload::{self, BenchMap, Mix, Op, RunLength};
use cstore::engine::{Store, Strategy};
use dashmap::DashMap;

type Hasher = foldhash::fast::RandomState;

const SHARD_COUNTS: [u64; 3] = [1, 16, 256];
const WARM_UP: Duration = Duration::from_secs(1);
const MEASUREMENT: Duration = Duration::from_secs(2);
const SAMPLES: usize = 10;

/// `std::sync::RwLock` around a `HashMap`: the coarse lock most code starts with.
struct StdRwLockMap(RwLock<HashMap<Bytes, Bytes, Hasher>>);

impl BenchMap for StdRwLockMap {
    type Value = Bytes;
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    fn insert(&self, key: &Bytes, value: Bytes) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), value);
    }

    fn remove(&self, key: &Bytes) -> bool {
        self.0.write().unwrap_or_else(PoisonError::into_inner).remove(key).is_some()
    }

    fn update(&self, key: &Bytes, value: Bytes) -> bool {
        self.0.write().unwrap_or_else(PoisonError::into_inner).get_mut(key).map(|slot| *slot = value).is_some()
    }
}

/// dashmap with its default shard count (four per core, rounded up to a power of two).
struct DashMapBaseline(DashMap<Bytes, Bytes, Hasher>);

impl BenchMap for DashMapBaseline {
    type Value = Bytes;
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        self.0.get(key).map(|entry| entry.value().clone())
    }

    fn insert(&self, key: &Bytes, value: Bytes) {
        self.0.insert(key.clone(), value);
    }

    fn remove(&self, key: &Bytes) -> bool {
        self.0.remove(key).is_some()
    }

    fn update(&self, key: &Bytes, value: Bytes) -> bool {
        self.0.get_mut(key).map(|mut slot| *slot = value).is_some()
    }
}

/// papaya on its own: the map inside cstore's LockFree shards, without cstore's layers.
struct PapayaBaseline(papaya::HashMap<Bytes, Bytes, Hasher>);

impl BenchMap for PapayaBaseline {
    type Value = Bytes;
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        self.0.pin().get(key).cloned()
    }

    fn insert(&self, key: &Bytes, value: Bytes) {
        self.0.pin().insert(key.clone(), value);
    }

    fn remove(&self, key: &Bytes) -> bool {
        self.0.pin().remove(key).is_some()
    }

    fn update(&self, key: &Bytes, value: Bytes) -> bool {
        self.0.pin().update(key.clone(), |_| value.clone()).is_some()
    }
}

/// scc::HashMap, through its synchronous API.
struct SccBaseline(scc::HashMap<Bytes, Bytes, Hasher>);

impl BenchMap for SccBaseline {
    type Value = Bytes;
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        self.0.read_sync(key, |_, value| value.clone())
    }

    fn insert(&self, key: &Bytes, value: Bytes) {
        self.0.upsert_sync(key.clone(), value);
    }

    fn remove(&self, key: &Bytes) -> bool {
        self.0.remove_sync(key).is_some()
    }

    fn update(&self, key: &Bytes, value: Bytes) -> bool {
        self.0.update_sync(key, |_, slot| *slot = value).is_some()
    }
}

/// One map configuration under test.
#[derive(Clone, Copy, Debug)]
enum Subject {
    Cstore(Strategy, u64),
    StdRwLock,
    DashMap,
    Papaya,
    Scc,
}

impl Subject {
    fn all() -> Vec<Subject> {
        let cstore = Strategy::ALL.into_iter().flat_map(|s| SHARD_COUNTS.map(|shards| Subject::Cstore(s, shards)));
        cstore.chain([Subject::StdRwLock, Subject::DashMap, Subject::Papaya, Subject::Scc]).collect()
    }

    fn label(self) -> String {
        match self {
            Subject::Cstore(strategy, shards) => format!("cstore-{strategy}-{shards}"),
            Subject::StdRwLock => "std-RwLock-HashMap".to_owned(),
            Subject::DashMap => "dashmap".to_owned(),
            Subject::Papaya => "papaya".to_owned(),
            Subject::Scc => "scc".to_owned(),
        }
    }

    fn is_baseline(self) -> bool {
        !matches!(self, Subject::Cstore(..))
    }
}

/// How big a run is. Criterion measures only when cargo passes `--bench` without `--test`;
/// otherwise (`cargo test --benches`, `-- --test`, `--list`) it runs each benchmark once as
/// a smoke test, which a small key space and short streams keep fast.
struct Scale {
    keys: usize,
    ops_per_thread: usize,
}

impl Scale {
    fn from_args() -> Scale {
        let args: Vec<String> = std::env::args().collect();
        let flag = |name: &str| args.iter().any(|arg| arg == name);
        if flag("--bench") && !flag("--test") && !flag("--list") {
            Scale { keys: workload::DEFAULT_KEYS, ops_per_thread: workload::OPS_PER_THREAD }
        } else {
            Scale { keys: 1_000, ops_per_thread: 1_000 }
        }
    }
}

/// The median throughput criterion measured for one map in one workload × thread count.
struct Outcome {
    workload: &'static str,
    threads: usize,
    subject: Subject,
    mops_per_sec: f64,
}

/// 1, 2, 4, and more only where the machine has more cores.
fn thread_counts() -> Vec<usize> {
    let mut counts = vec![1, 2, 4];
    counts.extend(workload::thread_counts_up_to_cores());
    counts.sort_unstable();
    counts.dedup();
    counts
}

fn run_workloads(criterion: &mut Criterion, scale: &Scale) -> Vec<Outcome> {
    let threads = thread_counts();
    let most_threads = threads.last().copied().unwrap_or(1);
    let mut outcomes = Vec::new();
    for (workload, mix) in Mix::NAMED {
        let streams =
            workload::generate_streams(mix, scale.keys, most_threads, scale.ops_per_thread, workload::STREAM_SEED);
        let mut group = criterion.benchmark_group(workload);
        for &thread_count in &threads {
            group.throughput(criterion::Throughput::Elements((scale.ops_per_thread * thread_count) as u64));
            for subject in Subject::all() {
                let id = BenchmarkId::new(subject.label(), format!("{thread_count}-threads"));
                let streams = &streams[..thread_count];
                let measured = match subject {
                    Subject::Cstore(strategy, shards) => {
                        let store =
                            Store::builder().strategy(strategy).shards(shards).build().expect("valid shard count");
                        bench_map(&mut group, id, &store, streams, scale)
                    }
                    Subject::StdRwLock => bench_map(&mut group, id, &StdRwLockMap(RwLock::default()), streams, scale),
                    Subject::DashMap => bench_map(
                        &mut group,
                        id,
                        &DashMapBaseline(DashMap::with_hasher(Hasher::default())),
                        streams,
                        scale,
                    ),
                    Subject::Papaya => {
                        let map = PapayaBaseline(papaya::HashMap::with_hasher(Hasher::default()));
                        bench_map(&mut group, id, &map, streams, scale)
                    }
                    Subject::Scc => bench_map(
                        &mut group,
                        id,
                        &SccBaseline(scc::HashMap::with_hasher(Hasher::default())),
                        streams,
                        scale,
                    ),
                };
                if let Some(mops_per_sec) = measured {
                    outcomes.push(Outcome { workload, threads: thread_count, subject, mops_per_sec });
                }
            }
        }
        group.finish();
    }
    outcomes
}

/// Prefills `map`, lets criterion time it (one iteration = every thread replays its whole
/// stream once), and returns the median Mops/s of criterion's measured samples, or `None`
/// when criterion's filter skipped it.
fn bench_map<M: BenchMap>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    map: &M,
    streams: &[Vec<Op>],
    scale: &Scale,
) -> Option<f64> {
    workload::prefill(map, scale.keys);
    let mut samples = Vec::new();
    group.bench_function(id, |bencher| {
        bencher.iter_custom(|iterations| {
            let length = RunLength::OpsPerThread(iterations * scale.ops_per_thread as u64);
            let run = workload::drive(map, streams, length).expect("benchmark threads run");
            samples.push(run.mops_per_sec());
            run.elapsed
        });
    });
    // Criterion warms up first, then takes its samples: the last calls are the measured ones.
    let mut measured: Vec<f64> = samples.into_iter().rev().take(SAMPLES).collect();
    measured.sort_by(f64::total_cmp);
    measured.get(measured.len() / 2).copied()
}

/// One table per workload × thread count, fastest first, with every map's ratio to the
/// fastest baseline.
fn ratio_tables(outcomes: &[Outcome]) -> String {
    let mut text = String::new();
    let mut cases: Vec<(&str, usize)> = outcomes.iter().map(|o| (o.workload, o.threads)).collect();
    cases.dedup();
    for (workload, threads) in cases {
        let mut rows: Vec<&Outcome> =
            outcomes.iter().filter(|o| (o.workload, o.threads) == (workload, threads)).collect();
        rows.sort_by(|a, b| b.mops_per_sec.total_cmp(&a.mops_per_sec));
        let Some(best_baseline) = rows.iter().copied().find(|o| o.subject.is_baseline()) else { continue };
        text.push_str(&format!(
            "\n{workload}, {threads} thread{}: best baseline {} at {:.2} Mops/s\n\n",
            if threads == 1 { "" } else { "s" },
            best_baseline.subject.label(),
            best_baseline.mops_per_sec,
        ));
        let mut table = Table::new(["map", "Mops/s", "vs best baseline"]);
        for row in rows {
            table.push_row([
                row.subject.label(),
                format!("{:.2}", row.mops_per_sec),
                format!("{:.2}", ratio(row.mops_per_sec, best_baseline.mops_per_sec)),
            ]);
        }
        text.push_str(&table.render());
    }
    text
}

fn main() {
    let scale = Scale::from_args();
    // Defaults keep a full run near 10 minutes on 2 cores; criterion's own flags
    // (--warm-up-time, --measurement-time, --sample-size) still override them. Per-benchmark
    // plots are off: 192 of them take long to draw, and the ratio tables are the report.
    let mut criterion = Criterion::default()
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .sample_size(SAMPLES)
        .without_plots()
        .configure_from_args();
    let outcomes = run_workloads(&mut criterion, &scale);
    criterion.final_summary();
    // Nothing was measured when criterion only listed the benchmarks or filtered them all out.
    if !outcomes.is_empty() {
        println!(
            "\nThroughput per workload and thread count (median of criterion's samples; ratio to the best baseline):"
        );
        print!("{}", ratio_tables(&outcomes));
    }
}
