//! The contract every shard kind fulfils, and the sharded container that routes keys to
//! shards and keeps their counters.
//!
//! A shard kind only knows how to guard one map. Everything about Redis semantics (expiry,
//! conditions, counters) lives above it in `ops.rs`, written once for all kinds, so the
//! strategies cannot drift apart.

use std::cell::Cell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::compact::CompactBytes;
use super::config::MAX_SHARDS;
use super::entry::{Entry, Footprint, Write};
use super::sync::{Arc, AtomicI64, AtomicU64, Mutex, MutexGuard, Ordering};

/// The hasher inside each map of the engine. foldhash is fast on short keys and randomly
/// seeded per map; a map's own layout never leaves the process (no reply depends on it), so
/// nothing lets a client learn that seed.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

/// Routes keys to shards and orders SCAN, for every engine a store runs: SipHash-1-3 (std's
/// `RandomState`) under a random key from the operating system (std draws it once per thread
/// and steps it for every `RandomState`, so each store has its own), as Redis keys its dictionaries with SipHash and a random
/// seed. Unlike foldhash, SipHash is a pseudo-random function of its key: a client that
/// learns where some keys went (SCAN reveals which keys share a shard, as Redis's reveals
/// which share a bucket) learns nothing about where any other key goes, so crowding one
/// shard costs it a trial insert per shard for every key it lands there, not a computation.
/// The router only picks a shard (once per operation); the maps keep foldhash.
#[derive(Clone, Debug, Default)]
pub(crate) struct Router(std::hash::RandomState);

impl Router {
    /// The shard-routing hash: its low bits pick the shard and place the key in SCAN's slot
    /// order (`scan.rs`).
    pub(crate) fn route(&self, key: &[u8]) -> u64 {
        self.0.hash_one(key)
    }

    /// The hash that orders keys inside a lock-free shard's SCAN walk: the same keyed
    /// function over a different input (a tag byte first), so it is independent of
    /// [`Router::route`] and of each map's hasher, and a cursor that carries its high bits
    /// (`scan.rs`) tells a client nothing about where keys are routed or stored.
    pub(crate) fn order(&self, key: &[u8]) -> u64 {
        let mut hasher = self.0.build_hasher();
        hasher.write_u8(ORDER_TAG);
        key.hash(&mut hasher);
        hasher.finish()
    }
}

/// The first byte [`Router::order`] hashes. A `route` input is a key's 8-byte length, then
/// the key; an `order` input is this tag, then the same: for keys shorter than 2^56 bytes no
/// input of one is an input of the other, so their outputs are independent.
const ORDER_TAG: u8 = 0xa5;

/// One shard's map behind its synchronization.
pub(crate) trait Shard: Send + Sync + Sized {
    /// Whether the shard needs each key's routing hash ([`Router::route`]) to find it: the
    /// lock-free shard keeps one map per slot, and the slot comes from that hash.
    const BY_SLOT: bool = false;

    /// An empty shard with room for `capacity` keys before its map first grows (a hint: the
    /// copy-on-write shard's persistent map has nothing to reserve), owning `slots` slots of
    /// SCAN's order (`scan.rs`).
    fn with_capacity(capacity: usize, slots: usize) -> Self;

    /// Calls `f` with the entry stored under `key`, expired or not. `route` is the key's
    /// routing hash where [`Shard::BY_SLOT`] says the shard needs it, else anything.
    fn read<R>(&self, key: &[u8], route: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R;

    /// Atomically replaces the entry under `key` (`route` as in [`Shard::read`]) with what
    /// `f` decides.
    ///
    /// `f` may run more than once (a lock-free shard retries when it loses a race) and a
    /// transition it computed may be applied after later runs, so `f` must be pure and
    /// everything a caller needs from it must travel in `R`: the returned `R` is the one
    /// computed together with the write that took effect.
    fn update<R>(&self, key: &[u8], route: u64, f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R;

    /// Visits up to about `count` entries starting at the shard-local scan `position`
    /// (0 = start) and returns the next position, 0 when the shard is done.
    ///
    /// Guarantee: a key present in the shard from the first call to the last of one walk is
    /// visited at least once. No lock is held across calls, and at most one bounded chunk
    /// of work is done under a lock.
    fn scan(&self, position: u64, count: usize, order: &Router, visit: impl FnMut(&CompactBytes, &Entry)) -> u64;

    /// Calls `each` with batches of at most `size` keys until the shard is empty. `each` must
    /// remove every key it is given (through [`Shard::update`]) and nothing else may insert
    /// meanwhile: a migration's source shard, which takes no new keys, is drained this way.
    /// The whole drain costs O(keys), never a rescan per batch.
    fn drain_keys(&self, size: usize, each: impl FnMut(&[CompactBytes]));

    /// The entries of those of `keys` that have one, expired or not, read in one step where
    /// the kind can (one lock): a migration reads a chunk of keys at once.
    fn entries_of(&self, keys: &[&CompactBytes], router: &Router) -> Vec<(CompactBytes, Entry)> {
        keys.iter()
            .filter_map(|&key| {
                // Hashed only for a kind that needs it, as `Shards::route` does.
                let route = if Self::BY_SLOT { router.route(key) } else { 0 };
                self.read(key, route, |entry| Some((key.clone(), entry?.clone())))
            })
            .collect()
    }

    /// Stores each entry under its key, which has none here, in one step where the kind can
    /// (one lock, one published version): a migration moves a chunk of keys at once.
    fn insert_moved(&self, entries: &[(CompactBytes, Entry)], router: &Router) {
        for (key, entry) in entries {
            self.update(key, router.route(key), |_| (Write::Put(entry.clone()), ()));
        }
    }

    /// Removes every key of `keys`, in one step where the kind can.
    fn remove_moved(&self, keys: &[CompactBytes], router: &Router) {
        for key in keys {
            self.update(key, router.route(key), |_| (Write::Remove, ()));
        }
    }

    /// A random key of this shard (expired or not), if any: uniformly chosen, except where a
    /// kind says otherwise (`lockfree.rs`).
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
/// never contends with other shards; except the bytes, which go to the shard's stripe of
/// [`Shards::memory_bytes`].
pub(crate) struct ShardStats {
    keys: AtomicI64,
    bytes: ByteStripe,
    volatile: AtomicI64,
    expired: AtomicU64,
    evicted: AtomicU64,
}

/// The bytes of every shard `i` with `i % BYTE_STRIPES` alike. `maxmemory` reads the memory
/// use before every write, so it must cost a few loads however many shards there are (with
/// a counter per shard it cost 4,096 loads at 4,096 shards: a quarter of the SET
/// throughput). Up to [`BYTE_STRIPES`] shards, each has a stripe of its own.
type ByteStripe = Arc<CachePadded<AtomicI64>>;

/// Stripes of an engine's byte count: reading the count costs this many loads.
const BYTE_STRIPES: usize = 16;

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
}

pub(crate) struct Slot<S> {
    pub(crate) map: S,
    pub(crate) stats: ShardStats,
    /// The keys of this shard that may carry a deadline: what active expiry walks.
    pub(crate) expires: Expires,
    /// Where the active expiry sweeper resumes in [`Slot::expires`].
    pub(crate) sweep_position: AtomicU64,
}

/// A shard's expires index, as Redis keeps its `expires` dictionary beside the keys: active
/// expiry walks it, so its cost follows the keys that carry a deadline, never all keys.
///
/// It holds every key whose stored entry carries a deadline (and possibly keys that no longer
/// do: only the sweeper removes keys, after looking at their entry). A write adds its key
/// after its change took effect, when it stored a deadline that the entry it replaced did not
/// already carry (`transition` in kinds.rs); a write of a key without a deadline, the common
/// case, never touches the index. The sweeper looks at an entry and drops its key with the
/// index locked, and a writer adds its key after its own change, so a key whose entry gains a
/// deadline after the sweeper looked is added again after the sweeper dropped it. A write that
/// keeps the replaced entry's deadline (INCR, APPEND, SET KEEPTTL) adds nothing: the key was
/// indexed by the write that stored that deadline, unless the sweeper dropped it because it
/// had expired, and then the new entry, with the same deadline, has expired too and the
/// sweeper reclaims it.
///
/// A dense set with swap-remove: the sweeper walks it downwards from a stored position, like
/// SCAN over a locked shard (`locked.rs`), and each step is bounded by its chunk.
#[derive(Default)]
pub(crate) struct Expires(Mutex<indexmap::IndexSet<CompactBytes, KeyHasher>>);

impl Expires {
    pub(crate) fn insert(&self, key: &[u8]) {
        let mut keys = self.0.lock();
        if !keys.contains(key) {
            keys.insert(CompactBytes::from(key));
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, indexmap::IndexSet<CompactBytes, KeyHasher>> {
        self.0.lock()
    }

    pub(crate) fn clear(&self) {
        // Swapped out and dropped after the lock is released.
        drop(std::mem::take(&mut *self.0.lock()));
    }
}

/// The key space hashed into a power-of-two number of shards.
pub(crate) struct Shards<S> {
    slots: Box<[CachePadded<Slot<S>>]>,
    /// What the slots' [`ShardStats`] add their bytes to.
    byte_stripes: Box<[ByteStripe]>,
    /// The store's router: picks the shard and places keys in SCAN's order (`scan.rs`).
    router: Router,
    mask: u64,
}

impl<S: Shard> Shards<S> {
    /// `count` shards, each with room for `capacity_per_shard` keys.
    pub(crate) fn new(count: usize, router: Router, capacity_per_shard: usize) -> Self {
        debug_assert!(count.is_power_of_two());
        let byte_stripes: Box<[ByteStripe]> = (0..count.min(BYTE_STRIPES)).map(|_| ByteStripe::default()).collect();
        let slots = (0..count)
            .map(|index| {
                CachePadded::new(Slot {
                    map: S::with_capacity(capacity_per_shard, MAX_SHARDS as usize / count),
                    stats: ShardStats {
                        keys: AtomicI64::new(0),
                        bytes: Arc::clone(&byte_stripes[index % byte_stripes.len()]),
                        volatile: AtomicI64::new(0),
                        expired: AtomicU64::new(0),
                        evicted: AtomicU64::new(0),
                    },
                    expires: Expires::default(),
                    sweep_position: AtomicU64::new(0),
                })
            })
            .collect();
        Shards { slots, byte_stripes, router, mask: count as u64 - 1 }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The routing hash of `key` where anything needs it (0 where nothing does): one shard
    /// of a kind that is not [`Shard::BY_SLOT`] needs no hash, so the coarse single-lock
    /// configuration routes for free.
    pub(crate) fn route(&self, key: &[u8]) -> u64 {
        if self.mask == 0 && !S::BY_SLOT { 0 } else { self.router.route(key) }
    }

    pub(crate) fn index_of(&self, key: &[u8]) -> usize {
        (self.route(key) & self.mask) as usize
    }

    /// The slot that holds `key`, and the key's hash for [`Shard::read`] and
    /// [`Shard::update`]: computed once per operation.
    pub(crate) fn locate(&self, key: &[u8]) -> (&Slot<S>, u64) {
        let route = self.route(key);
        (&self.slots[(route & self.mask) as usize], route)
    }

    pub(crate) fn slot_for(&self, key: &[u8]) -> &Slot<S> {
        self.locate(key).0
    }

    pub(crate) fn slot(&self, index: usize) -> &Slot<S> {
        &self.slots[index]
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot<S>> {
        self.slots.iter().map(|s| &**s)
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// The bytes of every shard: at most [`BYTE_STRIPES`] loads.
    pub(crate) fn memory_bytes(&self) -> i64 {
        self.byte_stripes.iter().map(|stripe| stripe.load(Ordering::Relaxed)).sum()
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
    let mut t = Totals { bytes: shards.memory_bytes(), ..Totals::default() };
    for slot in shards.slots() {
        t.keys += slot.stats.keys.load(Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock-free shard's SCAN cursor carries the high bits of a key's order hash; were it
    /// the routing hash (as it once was), a client would read routing bits off its cursors.
    #[test]
    fn scan_order_bits_are_not_routing_bits() {
        let router = Router::default();
        // 32 bits each: agreement by chance on one of 10,000 keys is a 1-in-400,000 event.
        let shared = (0..10_000)
            .map(|i| format!("key:{i}"))
            .filter(|key| router.order(key.as_bytes()) >> 32 == router.route(key.as_bytes()) >> 32)
            .count();
        assert_eq!(shared, 0, "order and routing agree on {shared} of 10,000 keys");
    }

    /// Each store draws its own routing key: the same keys land in different shards of two
    /// stores, so what a client learns about one store's placement says nothing about another's.
    #[test]
    fn each_router_has_its_own_key() {
        let (a, b) = (Router::default(), Router::default());
        let same = (0..1_000)
            .filter(|i| a.route(format!("key:{i}").as_bytes()) == b.route(format!("key:{i}").as_bytes()))
            .count();
        assert_eq!(same, 0);
    }
}
