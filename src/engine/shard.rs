//! The contract every shard kind fulfils, and the sharded container that routes keys to
//! shards and keeps their counters.
//!
//! A shard kind only knows how to guard one map. Everything about Redis semantics (expiry,
//! conditions, counters) lives above it in `ops.rs`, written once for all kinds, so the
//! strategies cannot drift apart.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::compact::CompactBytes;
use super::entry::{Entry, Footprint, Write};

/// The hasher used by every map in the engine. foldhash is fast on short keys and randomly
/// seeded per map, which keeps an attacker from choosing colliding keys.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

/// One shard's map behind its synchronization.
pub(crate) trait Shard: Send + Sync + Sized {
    /// An empty shard with room for `capacity` keys before its map first grows (a hint: the
    /// copy-on-write shard's persistent map has nothing to reserve).
    fn with_capacity(capacity: usize) -> Self;

    /// Calls `f` with the entry stored under `key`, expired or not.
    fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R;

    /// Atomically replaces the entry under `key` with what `f` decides.
    ///
    /// `f` may run more than once (a lock-free shard retries when it loses a race) and a
    /// transition it computed may be applied after later runs, so `f` must be pure and
    /// everything a caller needs from it must travel in `R`: the returned `R` is the one
    /// computed together with the write that took effect.
    fn update<R>(&self, key: &[u8], f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R;

    /// Visits up to about `count` entries starting at the shard-local scan `position`
    /// (0 = start) and returns the next position, 0 when the shard is done.
    ///
    /// Guarantee: a key present in the shard from the first call to the last of one walk is
    /// visited at least once. No lock is held across calls, and at most one bounded chunk
    /// of work is done under a lock.
    fn scan(&self, position: u64, count: usize, order: &KeyHasher, visit: impl FnMut(&CompactBytes, &Entry)) -> u64;

    /// Calls `each` with batches of at most `size` keys until the shard is empty. `each` must
    /// remove every key it is given (through [`Shard::update`]) and nothing else may insert
    /// meanwhile: a migration's source shard, which takes no new keys, is drained this way.
    /// The whole drain costs O(keys), never a rescan per batch.
    fn drain_keys(&self, size: usize, each: impl FnMut(&[CompactBytes]));

    /// Stores each entry under its key, which has none here, in one step where the kind can
    /// (one lock, one published version): a migration moves a chunk of keys at once.
    fn insert_moved(&self, entries: &[(CompactBytes, Entry)]) {
        for (key, entry) in entries {
            self.update(key, |_| (Write::Put(entry.clone()), ()));
        }
    }

    /// Removes every key of `keys`, in one step where the kind can.
    fn remove_moved(&self, keys: &[CompactBytes]) {
        for key in keys {
            self.update(key, |_| (Write::Remove, ()));
        }
    }

    /// A uniformly chosen key of this shard (expired or not), if any.
    fn random_key(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes>;

    /// Removes every entry and returns the footprint of what was removed.
    fn clear(&self) -> Footprint;

    /// Nanoseconds callers have spent waiting for this shard's lock (0 for lock-free kinds).
    fn lock_wait_ns(&self) -> u64;

    /// Versions published so far, for kinds that publish snapshots.
    fn published_version(&self) -> Option<u64> {
        None
    }
}

/// Counters kept beside each shard, on the shard's own cache line, so that updating them
/// never contends with other shards.
#[derive(Default)]
pub(crate) struct ShardStats {
    keys: AtomicI64,
    bytes: AtomicI64,
    volatile: AtomicI64,
    expired: AtomicU64,
    evicted: AtomicU64,
}

impl ShardStats {
    pub(crate) fn apply(&self, delta: Footprint) {
        if delta.keys != 0 {
            self.keys.fetch_add(delta.keys, Ordering::Relaxed);
        }
        if delta.bytes != 0 {
            self.bytes.fetch_add(delta.bytes, Ordering::Relaxed);
        }
        if delta.volatile != 0 {
            self.volatile.fetch_add(delta.volatile, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_expired(&self) {
        self.expired.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bytes(&self) -> i64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn volatile(&self) -> i64 {
        self.volatile.load(Ordering::Relaxed)
    }
}

pub(crate) struct Slot<S> {
    pub(crate) map: S,
    pub(crate) stats: ShardStats,
    /// Where the active expiry sweeper resumes in this shard.
    pub(crate) sweep_position: AtomicU64,
}

/// The key space hashed into a power-of-two number of shards.
pub(crate) struct Shards<S> {
    slots: Box<[CachePadded<Slot<S>>]>,
    /// The store's hasher: picks the shard (low bits), places keys in SCAN's order (`scan.rs`)
    /// and orders keys inside lock-free shards (high bits).
    router: KeyHasher,
    mask: u64,
}

impl<S: Shard> Shards<S> {
    /// `count` shards, each with room for `capacity_per_shard` keys.
    pub(crate) fn new(count: usize, router: KeyHasher, capacity_per_shard: usize) -> Self {
        debug_assert!(count.is_power_of_two());
        let slots = (0..count)
            .map(|_| {
                CachePadded::new(Slot {
                    map: S::with_capacity(capacity_per_shard),
                    stats: ShardStats::default(),
                    sweep_position: AtomicU64::new(0),
                })
            })
            .collect();
        Shards { slots, router, mask: count as u64 - 1 }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn index_of(&self, key: &[u8]) -> usize {
        (self.router.hash_one(key) & self.mask) as usize
    }

    pub(crate) fn slot_for(&self, key: &[u8]) -> &Slot<S> {
        &self.slots[self.index_of(key)]
    }

    pub(crate) fn slot(&self, index: usize) -> &Slot<S> {
        &self.slots[index]
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot<S>> {
        self.slots.iter().map(|s| &**s)
    }

    pub(crate) fn router(&self) -> &KeyHasher {
        &self.router
    }
}

/// Totals over all shards.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub(crate) keys: i64,
    pub(crate) bytes: i64,
    pub(crate) volatile: i64,
    pub(crate) expired: u64,
    pub(crate) evicted: u64,
    pub(crate) lock_wait_ns: u64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, rhs: Totals) {
        self.keys += rhs.keys;
        self.bytes += rhs.bytes;
        self.volatile += rhs.volatile;
        self.expired += rhs.expired;
        self.evicted += rhs.evicted;
        self.lock_wait_ns += rhs.lock_wait_ns;
    }
}

pub(crate) fn totals<S: Shard>(shards: &Shards<S>) -> Totals {
    let mut t = Totals::default();
    for slot in shards.slots() {
        t.keys += slot.stats.keys.load(Ordering::Relaxed);
        t.bytes += slot.stats.bytes.load(Ordering::Relaxed);
        t.volatile += slot.stats.volatile.load(Ordering::Relaxed);
        t.expired += slot.stats.expired.load(Ordering::Relaxed);
        t.evicted += slot.stats.evicted.load(Ordering::Relaxed);
        t.lock_wait_ns += slot.map.lock_wait_ns();
    }
    t
}

/// Acquires a lock, timing only the slow path: an uncontended acquisition costs one
/// `try_lock`, a contended one adds its wait to `waited_ns`.
pub(crate) fn acquire<G>(try_lock: impl FnOnce() -> Option<G>, lock: impl FnOnce() -> G, waited_ns: &AtomicU64) -> G {
    if let Some(guard) = try_lock() {
        return guard;
    }
    let started = Instant::now();
    let guard = lock();
    let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    waited_ns.fetch_add(waited, Ordering::Relaxed);
    THREAD_LOCK_WAIT_NS.with(|total| total.set(total.get().saturating_add(waited)));
    guard
}

thread_local! {
    /// Lock wait of this thread so far: a traced command reports the difference across it.
    static THREAD_LOCK_WAIT_NS: Cell<u64> = const { Cell::new(0) };
}

/// Nanoseconds this thread has spent waiting for shard locks since it started.
pub fn thread_lock_wait_ns() -> u64 {
    THREAD_LOCK_WAIT_NS.with(Cell::get)
}
