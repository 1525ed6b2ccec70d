//! `Store`: routes each key to its shard, applies expiry, and keeps the counters. The two
//! primitives here, [`Store::read`] and [`Store::update`], are the only way commands touch
//! a shard; both are generic over the shard kind and reached through one `match`, so
//! dispatch is static.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use rand::RngExt;

use super::clock::{Clock, LazyNow};
use super::compact::{CompactBytes, MAX_STRING_LEN};
use super::config::{ConfigError, EngineConfig, Strategy, validate_shards};
use super::cow::CowShard;
use super::entry::{Entry, Footprint, Write};
use super::locked::{MutexShard, RwLockShard};
use super::lockfree::LockFreeShard;
use super::scan::{decode_cursor, encode_cursor, glob_match};
use super::shard::{Shard, Shards, Slot, Totals, totals};

/// Largest value a command may create, as Redis's default `proto-max-bulk-len` (512 MiB).
pub const DEFAULT_MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

enum Engine {
    Mutex(Shards<MutexShard>),
    RwLock(Shards<RwLockShard>),
    LockFree(Shards<LockFreeShard>),
    CopyOnWrite(Shards<CowShard>),
}

/// Runs `$body` with `$shards` bound to the engine's concrete shard container.
macro_rules! with_shards {
    ($engine:expr, $shards:ident => $body:expr) => {
        match $engine {
            Engine::Mutex($shards) => $body,
            Engine::RwLock($shards) => $body,
            Engine::LockFree($shards) => $body,
            Engine::CopyOnWrite($shards) => $body,
        }
    };
}

/// A concurrent key-value store. Share it between threads with `Arc<Store>`.
pub struct Store {
    engine: Engine,
    clock: Clock,
    strategy: Strategy,
    max_value_len: usize,
}

/// Chooses the strategy, shard count, clock and limits of a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreBuilder {
    strategy: Strategy,
    shards: u64,
    clock: Clock,
    max_value_len: usize,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        let config = EngineConfig::default();
        StoreBuilder {
            strategy: config.strategy,
            shards: u64::from(config.shards),
            clock: Clock::System,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
}

impl StoreBuilder {
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The number of shards: a power of two in 1..=4096 (checked by [`StoreBuilder::build`]).
    pub fn shards(mut self, shards: u64) -> Self {
        self.shards = shards;
        self
    }

    pub fn config(self, config: EngineConfig) -> Self {
        self.strategy(config.strategy).shards(u64::from(config.shards))
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The largest value APPEND, SETRANGE and INCRBYFLOAT may produce: 1 to
    /// [`MAX_STRING_LEN`] bytes (checked by [`StoreBuilder::build`]).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    pub fn build(self) -> Result<Store, ConfigError> {
        let shards = validate_shards(self.shards)?;
        if self.max_value_len == 0 || self.max_value_len > MAX_STRING_LEN {
            return Err(ConfigError::InvalidMaxValueLen(self.max_value_len));
        }
        let engine = match self.strategy {
            Strategy::Mutex => Engine::Mutex(Shards::new(shards)),
            Strategy::RwLock => Engine::RwLock(Shards::new(shards)),
            Strategy::LockFree => Engine::LockFree(Shards::new(shards)),
            Strategy::CopyOnWrite => Engine::CopyOnWrite(Shards::new(shards)),
        };
        Ok(Store { engine, clock: self.clock, strategy: self.strategy, max_value_len: self.max_value_len })
    }
}

/// A point-in-time reading of the store's counters (each exact on its own, not a snapshot
/// of all of them together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live keys, including expired ones that have not been reclaimed yet.
    pub keys: u64,
    /// Keys that carry an expiry.
    pub volatile_keys: u64,
    /// Approximate bytes used by keys, values and per-entry overhead.
    pub memory_bytes: u64,
    /// Keys removed because they expired (lazily or by the sweeper).
    pub expired_keys: u64,
    /// Keys removed to stay under a memory limit.
    pub evicted_keys: u64,
    /// Total time callers waited for shard locks (0 for lock-free strategies).
    pub lock_wait_ns: u64,
    /// For `CopyOnWrite`: snapshots published since the store was created, over all shards.
    pub published_versions: Option<u64>,
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn shard_count(&self) -> usize {
        with_shards!(&self.engine, shards => shards.len())
    }

    /// The shard that holds `key`, from 0 to `shard_count() - 1`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        with_shards!(&self.engine, shards => shards.index_of(key))
    }

    pub(crate) fn max_value_len(&self) -> usize {
        self.max_value_len
    }

    /// The store's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Reads the live entry under `key` (an expired entry reads as absent and is reclaimed).
    pub(crate) fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R {
        let now = LazyNow::new(&self.clock);
        with_shards!(&self.engine, shards => {
            let slot = shards.slot_for(key);
            let outcome = slot.map.read(key, |entry| match entry {
                Some(entry) if entry.has_expired(&now) => Err(f),
                live => Ok(f(live)),
            });
            outcome.unwrap_or_else(|f| {
                reclaim_if_expired(slot, key, &now);
                f(None)
            })
        })
    }

    /// Atomically applies `f` to the live entry under `key`. `f` must be pure: the
    /// lock-free strategy may run it more than once.
    pub(crate) fn update<R>(&self, key: &[u8], f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        let now = LazyNow::new(&self.clock);
        with_shards!(&self.engine, shards => update_slot(shards.slot_for(key), key, &now, f).0)
    }

    /// Number of keys (DBSIZE). Expired keys not yet reclaimed are counted, as in Redis.
    pub fn len(&self) -> usize {
        usize::try_from(self.totals().keys).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes used, cheap enough to read before every write.
    pub fn memory_bytes(&self) -> u64 {
        with_shards!(&self.engine, shards => non_negative(shards.slots().map(|s| s.stats.bytes()).sum()))
    }

    pub fn stats(&self) -> StoreStats {
        let t = self.totals();
        StoreStats {
            keys: non_negative(t.keys),
            volatile_keys: non_negative(t.volatile),
            memory_bytes: non_negative(t.bytes),
            expired_keys: t.expired,
            evicted_keys: t.evicted,
            lock_wait_ns: t.lock_wait_ns,
            published_versions: with_shards!(&self.engine, shards => {
                shards.slots().map(|s| s.map.published_version()).sum::<Option<u64>>()
            }),
        }
    }

    fn totals(&self) -> Totals {
        with_shards!(&self.engine, shards => totals(shards))
    }

    /// Removes every key (FLUSHDB) and returns how many were removed.
    pub fn clear(&self) -> usize {
        with_shards!(&self.engine, shards => {
            let mut removed = 0;
            for slot in shards.slots() {
                let gone = slot.map.clear();
                slot.stats.apply(Footprint::default() - gone);
                removed += gone.keys;
            }
            usize::try_from(removed).unwrap_or(0)
        })
    }

    /// One step of a SCAN walk: returns the next cursor (0 when the walk is complete) and
    /// live keys matching `pattern`.
    ///
    /// Guarantee: a full walk from cursor 0 back to 0 returns every key that exists for the
    /// whole walk at least once, whatever runs concurrently; a key may be returned more
    /// than once. `count` bounds the entries one call examines, as in Redis, and each shard
    /// is held (where it has a lock) for at most one chunk of `count` entries.
    pub fn scan(&self, cursor: u64, pattern: Option<&[u8]>, count: usize) -> (u64, Vec<CompactBytes>) {
        let now = self.now_ms();
        let count = count.max(1);
        with_shards!(&self.engine, shards => {
            let (mut shard, mut position) = decode_cursor(cursor);
            let mut keys = Vec::new();
            // `count` bounds the entries one call examines, as in Redis; empty shards cost
            // nothing toward it, so a sparse or empty store finishes in one call.
            let mut examined = 0;
            while examined < count {
                if shard >= shards.len() {
                    return (0, keys);
                }
                position = shards.slot(shard).map.scan(position, count - examined, shards.router(), |key, entry| {
                    examined += 1;
                    if !entry.is_expired(now) && pattern.is_none_or(|p| glob_match(p, key)) {
                        keys.push(key.clone());
                    }
                });
                if position == 0 {
                    shard += 1;
                    if shard == shards.len() {
                        return (0, keys);
                    }
                }
            }
            (encode_cursor(shard, position), keys)
        })
    }

    /// Every live key matching `pattern` (KEYS), each once. Built from SCAN chunks so that no
    /// lock is held for long, so it is not a point-in-time snapshot.
    pub fn keys(&self, pattern: &[u8]) -> Vec<CompactBytes> {
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan(cursor, Some(pattern), 1024);
            seen.extend(keys);
            if next == 0 {
                return seen.into_iter().collect();
            }
            cursor = next;
        }
    }

    /// A random live key (RANDOMKEY), or `None` when the store is empty.
    pub fn random_key(&self) -> Option<CompactBytes> {
        const ATTEMPTS: usize = 32;
        let mut rng = rand::rng();
        with_shards!(&self.engine, shards => {
            for _ in 0..ATTEMPTS {
                let shard = rng.random_range(0..shards.len());
                if let Some(key) = shards.slot(shard).map.random_key(&mut rng)
                    && self.exists(&key)
                {
                    return Some(key);
                }
            }
            // Sparse store: fall back to the first live key of a walk.
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan(cursor, None, 64);
                if let Some(key) = keys.into_iter().next() {
                    return Some(key);
                }
                if next == 0 {
                    return None;
                }
                cursor = next;
            }
        })
    }

    /// Evicts up to `n` random keys (the `allkeys-random` policy) and returns how many went.
    pub fn evict_random(&self, n: usize) -> usize {
        let mut evicted = 0;
        for _ in 0..n {
            let Some(key) = self.random_key() else { break };
            let removed = with_shards!(&self.engine, shards => {
                let slot = shards.slot_for(&key);
                let now = LazyNow::new(&self.clock);
                let removed = update_slot(slot, &key, &now, |live| (Write::Remove, live.is_some())).0;
                if removed {
                    slot.stats.count_evicted();
                }
                removed
            });
            evicted += usize::from(removed);
        }
        evicted
    }

    /// One active-expiry pass over the shards that hold keys with a TTL: examines up to
    /// `chunk` keys per step, repeats on a shard while more than a quarter of what it
    /// examined had expired (Redis's adaptive rule), and stops after `max_steps` steps.
    /// Each step reads one bounded chunk; each removal is its own short update.
    pub(crate) fn sweep_pass(&self, chunk: usize, max_steps: usize) -> (u64, u64) {
        let now = self.now_ms();
        let (mut examined, mut expired, mut steps) = (0u64, 0u64, 0usize);
        with_shards!(&self.engine, shards => {
            for slot in shards.slots() {
                while slot.stats.volatile() > 0 && steps < max_steps {
                    steps += 1;
                    let mut due = Vec::new();
                    let mut seen = 0u64;
                    let position = slot.sweep_position.load(Ordering::Relaxed);
                    let next = slot.map.scan(position, chunk, shards.router(), |key, entry| {
                        seen += 1;
                        if entry.is_expired(now) {
                            due.push(key.clone());
                        }
                    });
                    slot.sweep_position.store(next, Ordering::Relaxed);
                    let reclaimed =
                        due.iter().filter(|key| reclaim_if_expired(slot, key, &LazyNow::fixed(now))).count() as u64;
                    examined += seen;
                    expired += reclaimed;
                    if next == 0 || reclaimed * 4 <= seen {
                        break;
                    }
                }
            }
        });
        (examined, expired)
    }
}

/// The one write path: applies `f` to the live entry, turns "keep an expired entry" into
/// its removal, refuses to store an entry that is already expired, and keeps the shard's
/// counters exact. Returns `f`'s reply and whether an expired entry was reclaimed.
///
/// The counter change is computed inside the closure and returned with the reply, so it
/// always belongs to the transition that took effect (see [`Shard::update`]).
fn update_slot<S: Shard, R>(
    slot: &Slot<S>,
    key: &[u8],
    now: &LazyNow<'_>,
    mut f: impl FnMut(Option<&Entry>) -> (Write, R),
) -> (R, bool) {
    let (reply, delta, reclaimed) = slot.map.update(key, |current| {
        let live = current.filter(|entry| !entry.has_expired(now));
        let dead = current.is_some() && live.is_none();
        let (write, reply) = f(live);
        let write = match write {
            Write::Keep if dead => Write::Remove,
            Write::Put(entry) if entry.has_expired(now) => Write::Remove,
            other => other,
        };
        let after = match &write {
            Write::Keep => Footprint::of_slot(key, current),
            Write::Put(entry) => Footprint::of(key, entry),
            Write::Remove => Footprint::default(),
        };
        (write, (reply, after - Footprint::of_slot(key, current), dead))
    });
    slot.stats.apply(delta);
    if reclaimed {
        slot.stats.count_expired();
    }
    (reply, reclaimed)
}

/// Removes `key` if its entry has expired; returns whether it did.
fn reclaim_if_expired<S: Shard>(slot: &Slot<S>, key: &[u8], now: &LazyNow<'_>) -> bool {
    update_slot(slot, key, now, |_| (Write::Keep, ())).1
}
