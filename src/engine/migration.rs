//! Live migration: a running [`Store`] moves to another strategy, shard count, or both,
//! while every operation goes on.
//!
//! # Guarantee
//! - Every single-key operation stays linearizable before, during and after a migration;
//!   values, TTLs and the counters (keys, memory, keys with a TTL) are carried exactly, and
//!   read exactly while it runs: the mover moves a chunk's counters from the source to the
//!   target under a sequence lock, so a reader never counts a chunk twice or not at all.
//! - No operation waits for more than one chunk: the mover holds a source shard's *gate* for
//!   at most [`MIGRATION_CHUNK`] keys bound for one target shard at a time (one read per key,
//!   then one insertion step into the target shard and one removal step from the source
//!   shard), then hands it over fairly. Readers never wait for a gate; writers to a shard that
//!   is not being moved right now take its gate shared, which costs one uncontended atomic.
//! - The mover takes at most half of one core (it rests as long as it worked), so that clients
//!   keep most of a small machine during a migration.
//! - SCAN keeps its guarantee across migrations (see `scan.rs`), and a walk's cursor stays
//!   valid through any number of them.
//!
//! # How
//! A migration publishes a [`Layout::Migrating`] with both engines. From then on the source
//! takes no new key: a key lives in the source while it has an entry there, and in the target
//! from the moment it has none, which is final. So:
//! - a read looks in the source, and in the target only when the source has no entry;
//! - a write takes the source shard's gate shared, then applies itself in the source when the
//!   key has an entry there, else in the target;
//! - the mover takes a source shard's gate exclusively, and for each key of a chunk inserts the
//!   entry into the target *before* removing it from the source, so a reader finds it in one
//!   place or the other at every instant, and no writer can change it in between.
//!
//! The layout is swapped with `ArcSwap`; the mover starts only once no operation still holds
//! the previous layout (after a swap, `Arc::strong_count` counts every guard, since arc-swap
//! pays its readers' debts on a swap), and the next migration only once no operation still
//! holds this one, so no write ever lands in an engine behind the mover's back. While it
//! waits for the previous layout's users, the mover holds every gate: a writer that still
//! runs on the old layout may create a key in the source, and a writer on the new one must
//! not create the same key in the target meanwhile (shuttle found that interleaving). So no
//! operation may load the layout while it holds it (`store.rs` never nests them).
//!
//! # How it is tested
//! `tests/migration.rs` runs every from→to pair of strategies and shard counts up and down
//! under concurrent clients and checks every value, TTL and counter, and reads the counters
//! while migrations run; `tests/redis_fuzz.rs` compares every reply with Redis's while the
//! engine migrates round and round; `tests/linearizability.rs`
//! checks histories that overlap migrations (and rejects a deliberately broken "copy, then
//! switch" migration); `tests/scan.rs` walks across migrations; `tests/shuttle.rs` runs this
//! code (increments, snapshots and counter reads during migrations) on shuttle's scheduler
//! (through `sync.rs`) between the engines shuttle can schedule
//! (all but `LockFree`: papaya's atomics are its own), and keeps a model of the protocol whose
//! deliberately broken variants show that its checks catch a broken migration.

use std::time::{Duration, Instant};

use super::clock::Now;
use super::compact::CompactBytes;
use super::config::{ConfigError, EngineConfig, Strategy, validate_shards};
use super::cow::trie_order;
use super::entry::{Decide, Entry, Footprint};
use super::gates::{Gates, release_fairly};
use super::kinds::{Engine, Found, Updated};
use super::store::{Layout, Store};
use super::sync::{Arc, AtomicU64, Ordering, sleep};

/// Keys the mover moves while holding one source shard's gate: the most any writer waits.
/// A chunk is also the mover's unit of work between rests (see [`MOVER_SLICE`]), so it sets
/// how long a client's worker can find its core taken: 64 keys take about 100 µs on our
/// 2-core machines, where 128 kept the GET p99 during migrations at 1.8–1.9× its level
/// before and 64 at 1.5–1.6×, for steps up to 1.4× longer (docs/BENCHMARKS.md, "Chunks of 64").
pub const MIGRATION_CHUNK: usize = 64;

/// Both engines of a migration in progress, and the gates of the source's shards.
pub(crate) struct Migration {
    source: Arc<Engine>,
    target: Arc<Engine>,
    gates: Gates,
    keys_total: u64,
    keys_moved: AtomicU64,
    /// Counts the mover's counter transfers twice, before and after each: odd while a
    /// chunk's keys, bytes and deadlines are counted in both engines or in neither (a
    /// sequence lock, so that a reader of the counters can tell; see [`Migration::counters`]).
    transfers: AtomicU64,
    started: Instant,
}

/// Optimistic reads of the counters [`Migration::counters`] tries before it stops the mover.
const OPTIMISTIC_COUNTER_READS: usize = 16;

impl Migration {
    fn new(source: Arc<Engine>, target: Arc<Engine>) -> Self {
        let gates = Gates::new(source.shard_count());
        let keys_total = u64::try_from(source.totals().keys).unwrap_or(0);
        Migration {
            source,
            target,
            gates,
            keys_total,
            keys_moved: AtomicU64::new(0),
            transfers: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// `read` of the source's and the target's counters, taken while no chunk is half
    /// counted: a moved chunk's keys are counted once, so that DBSIZE, INFO and the memory
    /// used are exact during a migration as outside one (with no client writing meanwhile).
    /// The read is retried if a transfer overlapped it; after a few retries it holds every
    /// gate instead, which stops the mover for one read.
    pub(crate) fn counters<T>(&self, read: impl Fn(&Engine, &Engine) -> T) -> T {
        for _ in 0..OPTIMISTIC_COUNTER_READS {
            let before = self.transfers.load(Ordering::Acquire);
            if before.is_multiple_of(2) {
                let value = read(&self.source, &self.target);
                // A read-modify-write, so that the counters' reads above stay before it; if it
                // finds no transfer since `before`, none overlapped them.
                if self.transfers.fetch_add(0, Ordering::AcqRel) == before {
                    return value;
                }
            }
            std::hint::spin_loop();
        }
        let _gates = self.gates.hold_all();
        read(&self.source, &self.target)
    }

    pub(crate) fn source(&self) -> &Engine {
        &self.source
    }

    pub(crate) fn target(&self) -> &Engine {
        &self.target
    }

    /// The source answers while it has an entry for the key; after that, the target.
    pub(crate) fn read<R, F: FnOnce(Option<&Entry>) -> R>(&self, key: &[u8], now: &Now, f: F) -> Found<R, F> {
        match self.source.read_if_present(key, now, f) {
            Found::Absent(f) => self.target.read(key, now, f),
            found => found,
        }
    }

    /// A write where the key lives, with the source shard's gate held so that the mover
    /// cannot move the key meanwhile.
    pub(crate) fn update<R>(&self, key: &[u8], now: &Now, mut f: impl Decide<R>) -> Updated<R> {
        let _gate = self.gates.pass(self.source.shard_of(key));
        match self.source.update_if_present(key, now, &mut f) {
            Some(updated) => updated,
            None => self.target.update(key, now, f),
        }
    }

    /// FLUSHALL during a migration: with every gate held, nothing moves and nobody writes.
    pub(crate) fn clear(&self) -> u64 {
        let _gates = self.gates.hold_all();
        self.source.clear() + self.target.clear()
    }

    /// Moves every key, shard by shard, chunk by chunk. Returns the longest a gate was held.
    ///
    /// A chunk is a group of keys with one source and one target shard, so that each shard
    /// takes it in one step (one lock, or one published version for `CopyOnWrite`). When the
    /// target has more shards than the source, the keys of one source shard spread over
    /// several target shards, so the mover reads that many chunks' worth of keys at once to
    /// keep each group near a full chunk.
    ///
    /// When either engine is `CopyOnWrite`, the mover lists many more keys at once
    /// ([`LISTED_KEYS`]) and puts each group in [`trie_order`], so that a chunk's keys are
    /// neighbours in a copy-on-write shard's trie: the chunk then copies a few shared paths
    /// of it, where keys in listing order copied one path each (a path copy clones whole trie
    /// nodes, a reference count per value in them). That made `CopyOnWrite` migrations two
    /// to three times slower than the others. The other kinds keep their listing order, in
    /// which their own removals walk memory in order.
    fn move_all(&self) -> Duration {
        let spread = (self.target.shard_count() / self.source.shard_count()).clamp(1, MAX_SPREAD);
        let copy_on_write = [&self.source, &self.target].iter().any(|e| e.config().strategy == Strategy::CopyOnWrite);
        let listed = if copy_on_write { LISTED_KEYS } else { 0 }.max(MIGRATION_CHUNK * spread);
        let mut longest_hold = Duration::ZERO;
        let mut pace = Pace::new();
        for shard in 0..self.source.shard_count() {
            self.source.drain_keys(shard, listed, |keys| {
                let mut keys: Vec<(usize, u32, &CompactBytes)> = keys
                    .iter()
                    .map(|key| (self.target.shard_of(key), if copy_on_write { trie_order(key) } else { 0 }, key))
                    .collect();
                // Stable, so that equal orders keep the listing's.
                keys.sort_by_key(|&(target, order, _)| (target, order));
                for group in keys.chunk_by(|a, b| a.0 == b.0) {
                    for chunk in group.chunks(MIGRATION_CHUNK) {
                        longest_hold = longest_hold.max(self.move_chunk(shard, chunk));
                        pace.rest_if_due();
                    }
                }
            });
        }
        longest_hold
    }

    /// Moves `chunk` (keys of source shard `shard`, each with its target shard, all the same)
    /// with the gate held, target first, then source: a concurrent reader finds each key in
    /// one of them. Returns how long the gate was held.
    fn move_chunk(&self, shard: usize, chunk: &[(usize, u32, &CompactBytes)]) -> Duration {
        let Some(&(target_shard, _, _)) = chunk.first() else { return Duration::ZERO };
        let gate = self.gates.hold(shard);
        let held = Instant::now();
        // A key deleted since the drain listed it has nothing to move. One read for the whole
        // chunk: a locked shard is locked once, not once per key, which shortens the hold.
        let listed: Vec<&CompactBytes> = chunk.iter().map(|&(_, _, key)| key).collect();
        let entries = self.source.entries_of(shard, &listed);
        let mut footprint = Footprint::default();
        for (key, entry) in &entries {
            footprint += Footprint::of(key, entry);
        }
        self.target.insert_moved(target_shard, &entries);
        let keys: Vec<CompactBytes> = entries.into_iter().map(|(key, _)| key).collect();
        self.source.remove_moved(shard, &keys);
        // Odd around the transfer: a reader of the counters retries (`counters`).
        self.transfers.fetch_add(1, Ordering::Acquire);
        self.target.transfer(target_shard, &self.source, shard, footprint);
        self.transfers.fetch_add(1, Ordering::Release);
        let hold = held.elapsed();
        self.keys_moved.fetch_add(keys.len() as u64, Ordering::Relaxed);
        release_fairly(gate);
        hold
    }
}

/// Most chunks' worth of keys the mover reads from a source shard at once to fill one chunk
/// per target shard, when the target has more shards than the source (see `move_all`).
const MAX_SPREAD: usize = 256;

/// Keys the mover lists from a source shard at once when either engine is `CopyOnWrite`, to
/// put them in [`trie_order`]: the more, the closer the neighbours in a chunk. A locked
/// source copies their handles under its lock, the others without one; it is the most any
/// migration already listed at once (`MIGRATION_CHUNK * MAX_SPREAD`).
const LISTED_KEYS: usize = MIGRATION_CHUNK * MAX_SPREAD;

/// How long the mover works before it rests as long again: it takes at most half of one
/// core, so that on a small machine the clients' requests keep most of the CPU during a
/// migration, at the price of a migration taking up to twice as long. The slice is short
/// because a thread that has just slept is favoured by the scheduler and runs its whole
/// slice before a client's worker gets the core back: with 1 ms slices the GET p99 during a
/// migration sat at 1.1 ms (docs/BENCHMARKS.md, "Live migration").
const MOVER_SLICE: Duration = Duration::from_micros(100);

/// The mover's rhythm: work for [`MOVER_SLICE`], then rest as long as that took.
struct Pace {
    since_rest: Instant,
}

impl Pace {
    fn new() -> Self {
        Pace { since_rest: Instant::now() }
    }

    fn rest_if_due(&mut self) {
        let worked = self.since_rest.elapsed();
        if worked >= MOVER_SLICE {
            sleep(worked);
            self.since_rest = Instant::now();
        }
    }
}

/// What one completed migration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    pub from: EngineConfig,
    pub to: EngineConfig,
    pub keys_moved: u64,
    pub duration: Duration,
    /// The longest the mover held one shard's gate: the most a writer could have waited.
    pub longest_pause: Duration,
}

/// A migration under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationProgress {
    pub target: EngineConfig,
    pub keys_moved: u64,
    /// Keys the source held when the migration started.
    pub keys_total: u64,
    pub elapsed: Duration,
}

/// The engine a store runs, and its migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    /// The running configuration (during a migration, the source's).
    pub running: EngineConfig,
    pub migration: Option<MigrationProgress>,
    pub migrations_completed: u64,
    pub last_migration: Option<MigrationReport>,
}

/// Completed migrations, for [`Store::engine_status`].
#[derive(Default)]
pub(crate) struct MigrationHistory {
    completed: u64,
    last: Option<MigrationReport>,
}

impl Store {
    /// Moves the store to `target` (strategy, shard count or both) while it keeps serving,
    /// and returns when every key has moved. Migrations and snapshots run one at a time: a
    /// migration waits for the one before it to finish. Moving to the running configuration does nothing.
    pub fn migrate(&self, target: EngineConfig) -> Result<MigrationReport, ConfigError> {
        validate_shards(u64::from(target.shards))?;
        let _one_walk_at_a_time = self.walking.lock();
        let started = Instant::now();
        let source = match &**self.layout.load() {
            Layout::Stable(engine) => Arc::clone(engine),
            // Outside a walk the layout is always stable, and every walk holds the lock.
            Layout::Migrating(_) | Layout::Saving(_) => return Err(ConfigError::MigrationInProgress),
        };
        let from = source.config();
        if from == target {
            return Ok(MigrationReport {
                from,
                to: target,
                keys_moved: 0,
                duration: Duration::ZERO,
                longest_pause: Duration::ZERO,
            });
        }
        let id = self.next_engine_id.fetch_add(1, Ordering::Relaxed);
        // Room for every key the source holds, plus a margin for keys written meanwhile.
        let expected_keys = u64::try_from(source.totals().keys).unwrap_or(0).saturating_mul(9) / 8;
        let engine = Arc::new(Engine::new(id, target, &self.shared.router, expected_keys));
        let migration = Arc::new(Migration::new(Arc::clone(&source), Arc::clone(&engine)));

        self.install_behind_gates(&migration.gates, Layout::Migrating(Arc::clone(&migration)), || ());
        let longest_pause = migration.move_all();
        let keys_moved = migration.keys_moved.load(Ordering::Relaxed);

        self.install(Layout::Stable(engine));
        // Nothing can reach the source any more: keep its monotonic counters.
        self.retired.absorb(&source);
        let report = MigrationReport { from, to: target, keys_moved, duration: started.elapsed(), longest_pause };
        let mut history = self.migration_history.lock();
        history.completed += 1;
        history.last = Some(report);
        Ok(report)
    }

    /// The running engine and the migration under way, if any. Never waits for a migration.
    pub fn engine_status(&self) -> EngineStatus {
        let layout = self.layout.load();
        let migration = match &**layout {
            Layout::Stable(_) | Layout::Saving(_) => None,
            Layout::Migrating(m) => Some(MigrationProgress {
                target: m.target.config(),
                keys_moved: m.keys_moved.load(Ordering::Relaxed),
                keys_total: m.keys_total,
                elapsed: m.started.elapsed(),
            }),
        };
        let history = self.migration_history.lock();
        EngineStatus {
            running: layout.running().config(),
            migration,
            migrations_completed: history.completed,
            last_migration: history.last,
        }
    }
}
