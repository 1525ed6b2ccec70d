//! What a benchmark runs, written once for every map: operation mixes, pre-generated
//! per-thread operation streams, and the driver that replays them on N threads.
//!
//! Both `cstore bench` and `benches/workloads.rs` use this module, so the command-line
//! comparison and the criterion comparison against other maps measure the same thing.
//! Streams are generated before the clock starts (keys already as `Bytes`), so only map
//! operations are timed; the same seed yields the same streams for every map measured.

use std::hint::black_box;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::engine::{CompactBytes, SetCondition, SetOptions, Store};

/// Keys in the key space when nobody says otherwise (`cstore bench --keys`, criterion runs).
pub const DEFAULT_KEYS: usize = 100_000;

/// Length of each thread's pre-generated stream. Long enough that replaying it cyclically
/// does not turn the run into a cache-friendly loop over a few keys, short enough to stay a
/// few megabytes per thread.
pub const OPS_PER_THREAD: usize = 1 << 16;

/// Seed of the first thread's stream; thread `i` uses `STREAM_SEED + i`.
pub const STREAM_SEED: u64 = 0x5eed_c570;

/// The value written by inserts. Values are small and static so that cloning one costs no
/// atomic reference count: the benchmark measures the map, not the allocator.
const INSERTED_VALUE: Bytes = Bytes::from_static(b"value:01");
/// The value written by updates, different from [`INSERTED_VALUE`] so an update changes data.
const UPDATED_VALUE: Bytes = Bytes::from_static(b"value:02");

/// The operations a workload is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Read a key (present or not).
    Get,
    /// Write a key, creating or overwriting it.
    Insert,
    /// Delete a key (present or not).
    Remove,
    /// Overwrite a key only if it exists (a read-modify-write; SET XX in Redis terms).
    Update,
}

/// One pre-generated operation.
#[derive(Clone, Debug)]
pub struct Op {
    pub kind: OpKind,
    pub key: Bytes,
}

/// Shares of each operation kind, each in `0.0..=1.0`, adding up to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    pub get: f64,
    pub insert: f64,
    pub remove: f64,
    pub update: f64,
}

impl Mix {
    /// The mixes of conc-map-bench, as percentages of get / insert / remove / update. Here
    /// they run over a fixed, prefilled key space with keys drawn uniformly, so a mix with
    /// removes settles where inserts and removes balance: half full for read-heavy and
    /// exchange, about 94% full for rapid-grow (conc-map-bench instead grows from empty).
    pub const READ_HEAVY: Mix = Mix::percent(98, 1, 1, 0);
    pub const EXCHANGE: Mix = Mix::percent(10, 40, 40, 10);
    pub const RAPID_GROW: Mix = Mix::percent(5, 80, 5, 10);
    pub const FIFTY_FIFTY: Mix = Mix::percent(50, 50, 0, 0);

    /// Every named workload, in the order reports list them.
    pub const NAMED: [(&'static str, Mix); 4] = [
        ("read-heavy", Mix::READ_HEAVY),
        ("exchange", Mix::EXCHANGE),
        ("rapid-grow", Mix::RAPID_GROW),
        ("50-50", Mix::FIFTY_FIFTY),
    ];

    const fn percent(get: u8, insert: u8, remove: u8, update: u8) -> Mix {
        assert!(get as u32 + insert as u32 + remove as u32 + update as u32 == 100, "a mix adds up to 100%");
        Mix {
            get: get as f64 / 100.0,
            insert: insert as f64 / 100.0,
            remove: remove as f64 / 100.0,
            update: update as f64 / 100.0,
        }
    }

    /// `read_ratio` gets, the rest inserts: over a fully prefilled key space the inserts
    /// overwrite existing keys, so the map's size stays constant (a cache-like workload).
    pub fn read_write(read_ratio: f64) -> Mix {
        let get = read_ratio.clamp(0.0, 1.0);
        Mix { get, insert: 1.0 - get, remove: 0.0, update: 0.0 }
    }

    /// The kind whose cumulative share first exceeds `draw` (a uniform sample in `0..1`).
    fn pick(&self, draw: f64) -> OpKind {
        let shares = [
            (OpKind::Get, self.get),
            (OpKind::Insert, self.insert),
            (OpKind::Remove, self.remove),
            (OpKind::Update, self.update),
        ];
        let mut threshold = 0.0;
        for (kind, share) in shares {
            threshold += share;
            if draw < threshold {
                return kind;
            }
        }
        // Rounding can leave the sum of the shares a hair below 1: the gap goes to the last
        // kind that has a share, so that a mix never produces a kind it does not contain.
        shares.iter().rev().find(|(_, share)| *share > 0.0).map_or(OpKind::Get, |&(kind, _)| kind)
    }
}

/// The name of key number `index` in a key space: Redis-like, fixed width (14 bytes).
pub fn key_name(index: usize) -> Bytes {
    Bytes::from(format!("key:{index:010}"))
}

/// One stream of `ops_per_thread` operations per thread, keys drawn uniformly from a key
/// space of `keys` keys. Stream `i` depends only on `seed + i`, so the first `n` streams
/// generated for many threads are exactly the streams generated for `n` threads.
///
/// Every operation owns its own copy of its key, so that threads never share a key's
/// reference count (which would add cache-line traffic that no map causes).
pub fn generate_streams(mix: Mix, keys: usize, threads: usize, ops_per_thread: usize, seed: u64) -> Vec<Vec<Op>> {
    let keys = keys.max(1);
    (0..threads)
        .map(|thread| {
            let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(thread as u64));
            (0..ops_per_thread.max(1))
                .map(|_| Op { kind: mix.pick(rng.random::<f64>()), key: key_name(rng.random_range(0..keys)) })
                .collect()
        })
        .collect()
}

/// The four operations every benchmarked map offers. Implemented for [`Store`] here and for
/// the baseline maps in `benches/workloads.rs`; the driver is written once against it.
pub trait BenchMap: Sync {
    /// What `get` hands out: the map's own cheaply cloned value type.
    type Value;
    /// The value under `key`, cloned out of the map (as a server must, to reply with it).
    fn get(&self, key: &Bytes) -> Option<Self::Value>;
    /// Stores `value` under `key`, creating or overwriting it.
    fn insert(&self, key: &Bytes, value: Bytes);
    /// Deletes `key`; whether it was present.
    fn remove(&self, key: &Bytes) -> bool;
    /// Overwrites `key` only if it is present; whether it was.
    fn update(&self, key: &Bytes, value: Bytes) -> bool;
}

impl BenchMap for Store {
    type Value = CompactBytes;
    fn get(&self, key: &Bytes) -> Option<CompactBytes> {
        // The benchmark stores strings only.
        Store::get(self, key).ok().flatten()
    }

    fn insert(&self, key: &Bytes, value: Bytes) {
        self.put(key, value.into(), SetOptions::default());
    }

    fn remove(&self, key: &Bytes) -> bool {
        self.delete(key)
    }

    fn update(&self, key: &Bytes, value: Bytes) -> bool {
        self.put(key, value.into(), SetOptions { condition: SetCondition::IfPresent, ..SetOptions::default() })
    }
}

/// Writes every key of a key space of `keys` keys, so that runs start from a full map.
pub fn prefill(map: &impl BenchMap, keys: usize) {
    for index in 0..keys {
        map.insert(&key_name(index), INSERTED_VALUE);
    }
}

/// How long each thread of a run keeps replaying its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunLength {
    /// For this long after the start (checked every [`CLOCK_CHECK_INTERVAL`] operations).
    For(Duration),
    /// Exactly this many operations per thread (criterion's fixed iteration counts).
    OpsPerThread(u64),
}

/// How many operations run between two reads of the clock: reading it costs tens of
/// nanoseconds, about as much as an operation, so it is amortized over a batch.
const CLOCK_CHECK_INTERVAL: usize = 256;

/// Operations done and the wall-clock time they took, over all threads of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throughput {
    pub ops: u64,
    pub elapsed: Duration,
}

impl Throughput {
    /// Millions of operations per second (0 for a run that took no measurable time).
    pub fn mops_per_sec(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.ops as f64 / seconds / 1e6 } else { 0.0 }
    }
}

/// Runs `streams.len()` threads against `map`, thread `i` replaying `streams[i]` cyclically
/// for `length`, all released at once; returns the total operations and the wall time from
/// release until the last thread finished.
///
/// Fails (without panicking) if a thread cannot be spawned or a map operation panics.
pub fn drive<M: BenchMap>(map: &M, streams: &[Vec<Op>], length: RunLength) -> anyhow::Result<Throughput> {
    let gate = StartGate::default();
    thread::scope(|scope| {
        let mut workers = Vec::with_capacity(streams.len());
        for (index, ops) in streams.iter().enumerate() {
            let gate = &gate;
            let spawned = thread::Builder::new()
                .name(format!("bench-{index}"))
                .spawn_scoped(scope, move || gate.wait_for_start().then(|| replay(map, ops, length)));
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    // Release the threads already waiting so that the scope can end.
                    gate.open(false);
                    return Err(error).context(format!("cannot spawn benchmark thread {}", index + 1));
                }
            }
        }
        // Start the clock before opening the gate: once it opens, the workers may take every
        // core, and this thread might only read the clock after they are done.
        let started = Instant::now();
        gate.open(true);
        // Join every worker before looking at any result: a panicked worker left unjoined
        // would make the scope itself panic.
        let results: Vec<_> = workers.into_iter().map(|worker| worker.join()).collect();
        let elapsed = started.elapsed();
        let mut ops = 0;
        for result in results {
            ops += result.map_err(|_| anyhow!("a benchmark thread panicked"))?.unwrap_or(0);
        }
        Ok(Throughput { ops, elapsed })
    })
}

/// One thread's run: replays `ops` cyclically until `length` is reached; returns how many
/// operations it did.
fn replay(map: &impl BenchMap, ops: &[Op], length: RunLength) -> u64 {
    if ops.is_empty() {
        return 0;
    }
    enum Stop {
        /// At this instant; `None` when it lies beyond what `Instant` can represent.
        At(Option<Instant>),
        After(u64),
    }
    let stop = match length {
        RunLength::For(duration) => Stop::At(Instant::now().checked_add(duration)),
        RunLength::OpsPerThread(total) => Stop::After(total),
    };
    let mut done: u64 = 0;
    loop {
        for batch in ops.chunks(CLOCK_CHECK_INTERVAL) {
            let batch = match stop {
                Stop::After(total) => &batch[..batch.len().min(usize::try_from(total - done).unwrap_or(usize::MAX))],
                Stop::At(_) => batch,
            };
            for op in batch {
                apply(map, op);
            }
            done += batch.len() as u64;
            let finished = match stop {
                Stop::After(total) => done >= total,
                Stop::At(deadline) => deadline.is_some_and(|deadline| Instant::now() >= deadline),
            };
            if finished {
                return done;
            }
        }
    }
}

fn apply(map: &impl BenchMap, op: &Op) {
    match op.kind {
        OpKind::Get => {
            black_box(map.get(&op.key));
        }
        OpKind::Insert => map.insert(&op.key, INSERTED_VALUE),
        OpKind::Remove => {
            black_box(map.remove(&op.key));
        }
        OpKind::Update => {
            black_box(map.update(&op.key, UPDATED_VALUE));
        }
    }
}

/// Holds worker threads until every one of them exists, then releases them together (or
/// tells them to give up when one could not be spawned). A `Barrier` cannot do the latter:
/// a missing thread would leave the others waiting forever.
#[derive(Default)]
struct StartGate {
    /// `None` while closed; then whether to run.
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl StartGate {
    fn open(&self, run: bool) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = Some(run);
        self.opened.notify_all();
    }

    /// Waits until the gate opens; whether to run.
    fn wait_for_start(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = self.opened.wait_while(state, |state| state.is_none()).unwrap_or_else(PoisonError::into_inner);
        state.unwrap_or(false)
    }
}

/// Thread counts worth measuring on this machine: powers of two up to the available cores,
/// plus the core count itself when it is not a power of two (1, 2 on two cores; 1, 2, 4, 6
/// on six).
pub fn thread_counts_up_to_cores() -> Vec<usize> {
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let mut counts: Vec<usize> =
        std::iter::successors(Some(1_usize), |n| n.checked_mul(2)).take_while(|&n| n <= cores).collect();
    if counts.last() != Some(&cores) {
        counts.push(cores);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Strategy;

    fn share(streams: &[Vec<Op>], kind: OpKind) -> f64 {
        let ops: Vec<&Op> = streams.iter().flatten().collect();
        ops.iter().filter(|op| op.kind == kind).count() as f64 / ops.len() as f64
    }

    #[test]
    fn named_mixes_add_up_to_one() {
        for (name, mix) in Mix::NAMED {
            let total = mix.get + mix.insert + mix.remove + mix.update;
            assert!((total - 1.0).abs() < 1e-9, "{name} adds up to {total}");
        }
    }

    #[test]
    fn generated_streams_follow_the_mix() {
        let streams = generate_streams(Mix::EXCHANGE, 1000, 2, 50_000, 7);
        for (kind, expected) in
            [(OpKind::Get, 0.10), (OpKind::Insert, 0.40), (OpKind::Remove, 0.40), (OpKind::Update, 0.10)]
        {
            let actual = share(&streams, kind);
            assert!((actual - expected).abs() < 0.01, "{kind:?}: {actual} instead of {expected}");
        }
    }

    #[test]
    fn extreme_ratios_produce_only_one_kind() {
        assert_eq!(share(&generate_streams(Mix::read_write(1.0), 10, 1, 1000, 1), OpKind::Get), 1.0);
        assert_eq!(share(&generate_streams(Mix::read_write(0.0), 10, 1, 1000, 1), OpKind::Insert), 1.0);
    }

    #[test]
    fn streams_are_reproducible_and_a_prefix_of_larger_runs() {
        let two = generate_streams(Mix::READ_HEAVY, 500, 2, 100, 3);
        let four = generate_streams(Mix::READ_HEAVY, 500, 4, 100, 3);
        for (small, large) in two.iter().zip(&four) {
            assert!(small.iter().zip(large).all(|(a, b)| a.kind == b.kind && a.key == b.key));
        }
        assert!(two[0].iter().zip(&two[1]).any(|(a, b)| a.key != b.key), "threads get different streams");
        assert!(two.iter().flatten().all(|op| op.key.len() == 14 && op.key < key_name(500)));
    }

    #[test]
    fn driver_runs_exact_operation_counts_on_every_thread() {
        let store = Store::builder().strategy(Strategy::LockFree).shards(4).build().unwrap();
        prefill(&store, 100);
        assert_eq!(store.len(), 100);
        let streams = generate_streams(Mix::FIFTY_FIFTY, 100, 3, 1000, 1);
        // 2500 is not a multiple of the stream length nor of the clock-check batch.
        let run = drive(&store, &streams, RunLength::OpsPerThread(2500)).unwrap();
        assert_eq!(run.ops, 3 * 2500);
        assert!(run.mops_per_sec() > 0.0);
        assert_eq!(store.len(), 100, "a get/insert mix over a full key space keeps its size");
    }

    #[test]
    fn driver_stops_after_the_duration() {
        let store = Store::builder().build().unwrap();
        let streams = generate_streams(Mix::EXCHANGE, 100, 2, 10, 1);
        let run = drive(&store, &streams, RunLength::For(Duration::from_millis(30))).unwrap();
        assert!(run.elapsed >= Duration::from_millis(30));
        assert!(run.ops > 0);
    }

    /// A map whose every operation fails, as a buggy map under test would.
    struct FailingMap;

    impl BenchMap for FailingMap {
        type Value = Bytes;
        fn get(&self, _: &Bytes) -> Option<Bytes> {
            panic!("get failed")
        }
        fn insert(&self, _: &Bytes, _: Bytes) {
            panic!("insert failed")
        }
        fn remove(&self, _: &Bytes) -> bool {
            panic!("remove failed")
        }
        fn update(&self, _: &Bytes, _: Bytes) -> bool {
            panic!("update failed")
        }
    }

    #[test]
    fn driver_reports_a_panicking_map_as_an_error() {
        let streams = generate_streams(Mix::FIFTY_FIFTY, 10, 2, 10, 1);
        let error = drive(&FailingMap, &streams, RunLength::OpsPerThread(10)).unwrap_err();
        assert_eq!(error.to_string(), "a benchmark thread panicked");
    }

    #[test]
    fn store_updates_only_existing_keys() {
        let store = Store::builder().build().unwrap();
        let key = key_name(1);
        assert!(!BenchMap::update(&store, &key, UPDATED_VALUE));
        assert_eq!(BenchMap::get(&store, &key), None);
        BenchMap::insert(&store, &key, INSERTED_VALUE);
        assert!(BenchMap::update(&store, &key, UPDATED_VALUE));
        assert_eq!(BenchMap::get(&store, &key), Some(CompactBytes::from(UPDATED_VALUE)));
        assert!(BenchMap::remove(&store, &key));
        assert!(!BenchMap::remove(&store, &key));
    }

    #[test]
    fn thread_counts_start_at_one_and_reach_the_core_count() {
        let counts = thread_counts_up_to_cores();
        assert_eq!(counts[0], 1);
        assert_eq!(counts.last().copied(), thread::available_parallelism().ok().map(usize::from));
        assert!(counts.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
