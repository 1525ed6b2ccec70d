//! One engine: a strategy's shard kind times a shard count, reached through one `match` so
//! that dispatch stays static. A [`Store`](super::Store) runs one engine, or two while it
//! migrates from one to the other (`migration.rs`); everything here works on one engine and
//! knows nothing of migrations.
//!
//! The write path lives here too ([`Engine::update`] and [`Engine::update_if_present`]):
//! expiry turns "keep a dead entry" into its removal, and the shard's counters change with
//! the transition that took effect.

use super::clock::Now;
use super::compact::CompactBytes;
use super::config::{EngineConfig, Strategy};
use super::cow::CowShard;
use super::entry::{Decide, Entry, Footprint, Write};
use super::locked::{MutexShard, RwLockShard};
use super::lockfree::LockFreeShard;
use super::scan::reverse_window;
use super::shard::{Router, Shard, Shards, Slot, Totals, totals};
use super::sync::Ordering;

enum Kind {
    Mutex(Shards<MutexShard>),
    RwLock(Shards<RwLockShard>),
    LockFree(Shards<LockFreeShard>),
    CopyOnWrite(Shards<CowShard>),
}

/// Runs `$body` with `$shards` bound to the engine's concrete shard container.
macro_rules! with_shards {
    ($kind:expr, $shards:ident => $body:expr) => {
        match $kind {
            Kind::Mutex($shards) => $body,
            Kind::RwLock($shards) => $body,
            Kind::LockFree($shards) => $body,
            Kind::CopyOnWrite($shards) => $body,
        }
    };
}

/// A strategy's shards. Every engine of one store routes with the store's hasher, so a key
/// has the same hash, and the same place in SCAN's order, in every engine (see `scan.rs`).
pub(crate) struct Engine {
    /// Distinguishes this engine from the store's earlier and later ones (SCAN cursors name
    /// the engine their position belongs to).
    id: u64,
    strategy: Strategy,
    kind: Kind,
}

/// What [`Engine::read`] found: an answer, or a dead entry that must be reclaimed first.
pub(crate) enum Found<R, F> {
    Answered(R),
    /// The entry under the key has expired: reclaim it, then answer `F` with no entry.
    Expired(F),
    /// No entry at all under the key (only [`Engine::read_if_present`] says so).
    Absent(F),
}

impl Engine {
    /// `shards` must already be validated (a power of two within the limit). `expected_keys`
    /// sizes the maps up front, so that a migration's target does not grow (and rehash a
    /// whole shard under its lock) while keys move in.
    pub(crate) fn new(id: u64, config: EngineConfig, router: &Router, expected_keys: u64) -> Engine {
        let shards = config.shards as usize;
        let router = router.clone();
        let per_shard = usize::try_from(expected_keys).unwrap_or(usize::MAX).div_ceil(shards);
        let kind = match config.strategy {
            Strategy::Mutex => Kind::Mutex(Shards::new(shards, router, per_shard)),
            Strategy::RwLock => Kind::RwLock(Shards::new(shards, router, per_shard)),
            Strategy::LockFree => Kind::LockFree(Shards::new(shards, router, per_shard)),
            Strategy::CopyOnWrite => Kind::CopyOnWrite(Shards::new(shards, router, per_shard)),
        };
        Engine { id, strategy: config.strategy, kind }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn config(&self) -> EngineConfig {
        EngineConfig { strategy: self.strategy, shards: self.shard_count() as u32 }
    }

    pub(crate) fn shard_count(&self) -> usize {
        with_shards!(&self.kind, shards => shards.len())
    }

    pub(crate) fn shard_of(&self, key: &[u8]) -> usize {
        with_shards!(&self.kind, shards => shards.index_of(key))
    }

    /// Calls `f` with the live entry under `key`, or says that a dead one must be reclaimed.
    pub(crate) fn read<R, F: FnOnce(Option<&Entry>) -> R>(&self, key: &[u8], now: &Now, f: F) -> Found<R, F> {
        match self.read_if_present(key, now, f) {
            Found::Absent(f) => Found::Answered(f(None)),
            found => found,
        }
    }

    /// [`Engine::read`] that leaves `f` uncalled when the key has no entry at all.
    pub(crate) fn read_if_present<R, F: FnOnce(Option<&Entry>) -> R>(
        &self,
        key: &[u8],
        now: &Now,
        f: F,
    ) -> Found<R, F> {
        with_shards!(&self.kind, shards => {
            let (slot, route) = shards.locate(key);
            slot.map.read(key, route, |entry| match entry {
            None => Found::Absent(f),
            Some(entry) if entry.has_expired(now) => Found::Expired(f),
            live => Found::Answered(f(live)),
        })
        })
    }

    /// Atomically applies `f` to the live entry under `key` (see [`transition`]).
    pub(crate) fn update<R>(&self, key: &[u8], now: &Now, f: impl Decide<R>) -> Updated<R> {
        self.update_observed(key, now, |_| {}, f)
    }

    /// [`Engine::update`] that first shows `observe` the entry as stored (expired or not),
    /// inside the same atomic step: a point-in-time snapshot keeps the version a write is
    /// about to replace (`snapshot.rs`). Like `f`, `observe` may run more than once.
    pub(crate) fn update_observed<R>(
        &self,
        key: &[u8],
        now: &Now,
        mut observe: impl FnMut(Option<&Entry>),
        mut f: impl FnMut(Option<&Entry>) -> (Write, R),
    ) -> Updated<R> {
        with_shards!(&self.kind, shards => {
            let (slot, route) = shards.locate(key);
            let (reply, change) = slot.map.update(key, route, |current| {
                observe(current);
                transition(key, current, now, &mut f)
            });
            Updated::record(slot, key, reply, change)
        })
    }

    /// [`Engine::update`] when the key has an entry (live or dead); `None`, without calling
    /// `f` or changing anything, when it has none.
    pub(crate) fn update_if_present<R>(
        &self,
        key: &[u8],
        now: &Now,
        mut f: impl FnMut(Option<&Entry>) -> (Write, R),
    ) -> Option<Updated<R>> {
        with_shards!(&self.kind, shards => {
            let (slot, route) = shards.locate(key);
            let outcome = slot.map.update(key, route, |current| match current {
                None => (Write::Keep, None),
                Some(_) => {
                    let (write, outcome) = transition(key, current, now, &mut f);
                    (write, Some(outcome))
                }
            });
            outcome.map(|(reply, change)| Updated::record(slot, key, reply, change))
        })
    }

    /// The entries of those of `keys` (all of shard `index`) that have one, expired or not.
    pub(crate) fn entries_of(&self, index: usize, keys: &[&CompactBytes]) -> Vec<(CompactBytes, Entry)> {
        with_shards!(&self.kind, shards => shards.slot(index).map.entries_of(keys, shards.router()))
    }

    /// Stores the entries, whose keys all belong to shard `index` and have no entry here,
    /// without touching the counters: the migration moves their footprint itself (see
    /// [`Engine::transfer`]).
    pub(crate) fn insert_moved(&self, index: usize, entries: &[(CompactBytes, Entry)]) {
        with_shards!(&self.kind, shards => {
            let slot = shards.slot(index);
            slot.map.insert_moved(entries, shards.router());
            for (key, _) in entries.iter().filter(|(_, entry)| entry.is_volatile()) {
                slot.expires.insert(key);
            }
        })
    }

    /// Removes the keys, which all belong to shard `index`, without touching the counters.
    pub(crate) fn remove_moved(&self, index: usize, keys: &[CompactBytes]) {
        with_shards!(&self.kind, shards => shards.slot(index).map.remove_moved(keys, shards.router()))
    }

    /// Moves `footprint` from `from`'s shard `from_index` to this engine's shard `index`.
    pub(crate) fn transfer(&self, index: usize, from: &Engine, from_index: usize, footprint: Footprint) {
        with_shards!(&self.kind, shards => shards.slot(index).stats.apply(footprint));
        with_shards!(&from.kind, shards => shards.slot(from_index).stats.apply(Footprint::default() - footprint));
    }

    /// Calls `each` with batches of at most `size` keys of shard `index` until the shard is
    /// empty. `each` must remove every key it is given, and nothing may insert into the
    /// shard meanwhile (a migration's source takes no new keys).
    pub(crate) fn drain_keys(&self, index: usize, size: usize, each: impl FnMut(&[CompactBytes])) {
        with_shards!(&self.kind, shards => shards.slot(index).map.drain_keys(size, each))
    }

    /// One chunk of a SCAN walk of shard `index` from the shard-local `position`: visits up
    /// to about `count` entries and returns the next position (0 when the shard is done).
    pub(crate) fn scan_shard(
        &self,
        index: usize,
        position: u64,
        count: usize,
        visit: impl FnMut(&CompactBytes, &Entry),
    ) -> u64 {
        with_shards!(&self.kind, shards => shards.slot(index).map.scan(position, count, shards.router(), visit))
    }

    /// One bounded step of active expiry in shard `index`: looks at the next `chunk` keys of
    /// its expires index from where the last step stopped, drops from the index the keys
    /// that no longer carry a deadline, and returns those that have expired (dropped too: the
    /// caller reclaims them). `None` when the index is empty.
    ///
    /// The entries are read with the index locked (see [`Expires`](super::shard::Expires) for
    /// why that keeps every key with a deadline indexed); writers take the index's lock only
    /// after their shard's, never inside it, so the two never wait for each other in a cycle.
    pub(crate) fn expired_in_shard(&self, index: usize, now: u64, chunk: usize) -> Option<SweepStep> {
        with_shards!(&self.kind, shards => {
            let slot = shards.slot(index);
            let mut keys = slot.expires.lock();
            if keys.is_empty() {
                return None;
            }
            let (window, next) = reverse_window(slot.sweep_position.load(Ordering::Relaxed), keys.len(), chunk);
            let mut due = Vec::new();
            let examined = window.len() as u64;
            let mut ttls = TtlSample::default();
            // Downwards, so that a swap-remove only moves a key already looked at.
            for position in window.rev() {
                let Some(key) = keys.get_index(position) else { continue };
                let (drop_key, expired) = slot.map.read(key, shards.route(key), |entry| match entry {
                    Some(entry) if entry.is_volatile() => {
                        let expired = entry.is_expired(now);
                        if !expired {
                            ttls.add(entry.expires_at - now);
                        }
                        (expired, expired)
                    }
                    _ => (true, false),
                });
                if drop_key && let Some(key) = keys.swap_remove_index(position) && expired {
                    due.push(key);
                }
            }
            slot.sweep_position.store(next, Ordering::Relaxed);
            Some(SweepStep { due, examined, ttls, shard_done: next == 0 })
        })
    }

    /// A random key of a random shard (expired or not), if that shard has any.
    pub(crate) fn random_key(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        use rand::RngExt;
        with_shards!(&self.kind, shards => {
            let shard = rng.random_range(0..shards.len());
            shards.slot(shard).map.random_key(rng)
        })
    }

    /// Counts one key evicted from the shard that holds `key`.
    pub(crate) fn count_evicted(&self, key: &[u8]) {
        with_shards!(&self.kind, shards => shards.slot_for(key).stats.count_evicted())
    }

    /// Removes every key and returns how many were removed.
    pub(crate) fn clear(&self) -> u64 {
        with_shards!(&self.kind, shards => {
            let mut removed = 0;
            for slot in shards.slots() {
                // The index first: a write that lands after it was cleared adds its key again.
                slot.expires.clear();
                let gone = slot.map.clear();
                slot.stats.apply(Footprint::default() - gone);
                removed += gone.keys;
            }
            u64::try_from(removed).unwrap_or(0)
        })
    }

    pub(crate) fn memory_bytes(&self) -> i64 {
        with_shards!(&self.kind, shards => shards.memory_bytes())
    }

    pub(crate) fn totals(&self) -> Totals {
        with_shards!(&self.kind, shards => totals(shards))
    }

    /// For `CopyOnWrite`: snapshots published by this engine's shards.
    pub(crate) fn published_versions(&self) -> Option<u64> {
        with_shards!(&self.kind, shards => shards.slots().map(|s| s.map.published_version()).sum::<Option<u64>>())
    }
}

/// What one step of active expiry found in a shard.
pub(crate) struct SweepStep {
    pub(crate) due: Vec<CompactBytes>,
    pub(crate) examined: u64,
    /// The remaining lifetimes of the examined keys that have not expired.
    pub(crate) ttls: TtlSample,
    /// The step reached the end of the shard (the next one starts over).
    pub(crate) shard_done: bool,
}

/// Remaining lifetimes seen by the sweeper, for INFO keyspace's `avg_ttl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TtlSample {
    pub(crate) sum_ms: u64,
    pub(crate) count: u64,
}

impl TtlSample {
    pub(crate) fn add(&mut self, ttl_ms: u64) {
        self.sum_ms = self.sum_ms.saturating_add(ttl_ms);
        self.count += 1;
    }

    pub(crate) fn merge(&mut self, other: TtlSample) {
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.count += other.count;
    }
}

/// The outcome of a write: `f`'s reply, the shard's counters already updated.
pub(crate) struct Updated<R> {
    pub(crate) reply: R,
    /// Whether an expired entry was removed.
    pub(crate) reclaimed: bool,
    /// Whether the key's entry changed at all (stored, even unchanged, or removed): what
    /// WATCH counts (`watch.rs`).
    pub(crate) changed: bool,
}

impl<R> Updated<R> {
    fn record<S: Shard>(slot: &Slot<S>, key: &[u8], reply: R, change: Change) -> Self {
        slot.stats.apply(change.delta);
        if change.reclaimed {
            slot.stats.count_expired();
        }
        if change.new_deadline {
            slot.expires.insert(key);
        }
        Updated { reply, reclaimed: change.reclaimed, changed: change.changed }
    }
}

/// What a transition did besides its reply, computed inside the shard's atomic step.
struct Change {
    /// The change of the shard's counters.
    delta: Footprint,
    /// Whether an expired entry was removed.
    reclaimed: bool,
    /// Whether the stored entry now carries a deadline the replaced one did not: the key goes
    /// into the shard's expires index.
    new_deadline: bool,
    /// Whether an entry was stored or removed.
    changed: bool,
}

/// The one write rule: applies `f` to the live entry, turns "keep an expired entry" into its
/// removal, refuses to store an entry that is already expired, and computes the counters'
/// change. Returns the write with `f`'s reply and the [`Change`].
///
/// The change is computed inside the shard's closure and returned with the reply, so it
/// always belongs to the transition that took effect (see [`Shard::update`]).
fn transition<R>(
    key: &[u8],
    current: Option<&Entry>,
    now: &Now,
    f: &mut impl FnMut(Option<&Entry>) -> (Write, R),
) -> (Write, (R, Change)) {
    let live = current.filter(|entry| !entry.has_expired(now));
    let dead = current.is_some() && live.is_none();
    let (write, reply) = f(live);
    let write = match write {
        Write::Keep if dead => Write::Remove,
        Write::Put(entry) if entry.has_expired(now) => Write::Remove,
        other => other,
    };
    let (after, new_deadline) = match &write {
        Write::Keep => (Footprint::of_slot(key, current), false),
        Write::Put(entry) => {
            let kept = current.is_some_and(|old| old.expires_at == entry.expires_at);
            (Footprint::of(key, entry), entry.is_volatile() && !kept)
        }
        Write::Remove => (Footprint::default(), false),
    };
    let delta = after - Footprint::of_slot(key, current);
    let changed = match &write {
        Write::Keep => false,
        Write::Put(_) => true,
        Write::Remove => current.is_some(),
    };
    (write, (reply, Change { delta, reclaimed: dead, new_deadline, changed }))
}
