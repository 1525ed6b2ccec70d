//! `Store`: routes each key to the engine that holds it, applies expiry, and keeps the
//! counters. The two primitives here, [`Store::read`] and [`Store::update`], are the only way
//! commands touch the data.
//!
//! The store runs one [`Engine`] (`kinds.rs`), or two while it migrates from one to another
//! (`migration.rs`). Which is the [`Layout`], read once per operation from an `ArcSwap`: a
//! few nanoseconds and no shared write, so the steady state costs what a fixed engine did.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::clock::{Clock, Now};
use super::compact::{CompactBytes, MAX_STRING_LEN};
use super::config::{ConfigError, EngineConfig, Strategy, validate_shards};
use super::databases::Databases;
use super::entry::{Entry, Write};
use super::kinds::{Engine, Found, TtlSample, Updated};
use super::migration::{Migration, MigrationHistory};
use super::scan::{Geometry, Part, glob_match};
use super::shard::{Router, Totals};
use super::snapshot::Cut;
use super::sync::{Arc, ArcSwap, AtomicU64, AtomicUsize, Mutex, Ordering};
use super::transaction::TransactionGate;
use super::value::EncodingLimits;
use super::watch::Watches;

/// Largest value a command may create, as Redis's default `proto-max-bulk-len` (512 MiB).
pub const DEFAULT_MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// What the store runs right now. An operation loads it once and never loads it again
/// while it holds it: a migration waits for the previous layout's users while holding the
/// new one's gates (`migration.rs`), so a nested load could wait for itself.
pub(crate) enum Layout {
    Stable(Arc<Engine>),
    Migrating(Arc<Migration>),
    /// A point-in-time snapshot is being taken (`snapshot.rs`).
    Saving(Arc<Cut>),
}

impl Layout {
    pub(crate) fn geometry(&self) -> Geometry {
        let shape = |engine: &Engine| (engine.shard_count(), super::scan::engine_tag(engine.id()));
        match self {
            Layout::Stable(_) | Layout::Saving(_) => {
                let (shards, tag) = shape(self.running());
                Geometry::Stable { shards, tag }
            }
            Layout::Migrating(m) => Geometry::Migrating { source: shape(m.source()), target: shape(m.target()) },
        }
    }

    fn engine(&self, part: Part) -> &Engine {
        match (self, part) {
            (Layout::Stable(engine), _) => engine,
            (Layout::Saving(cut), _) => cut.engine(),
            (Layout::Migrating(m), Part::Source) => m.source(),
            (Layout::Migrating(m), Part::Target) => m.target(),
        }
    }

    /// The engines, source first.
    fn engines(&self) -> impl Iterator<Item = &Engine> {
        let (first, second) = match self {
            Layout::Stable(engine) => (&**engine, None),
            Layout::Saving(cut) => (cut.engine(), None),
            Layout::Migrating(m) => (m.source(), Some(m.target())),
        };
        std::iter::once(first).chain(second)
    }

    /// `read` of every engine's counters, combined with `add`, at an instant when a migration
    /// has no chunk half counted ([`Migration::counters`]).
    fn counted<T>(&self, read: impl Fn(&Engine) -> T, add: impl Fn(T, T) -> T) -> T {
        match self {
            Layout::Stable(engine) => read(engine),
            Layout::Saving(cut) => read(cut.engine()),
            Layout::Migrating(migration) => migration.counters(|source, target| add(read(source), read(target))),
        }
    }

    /// The engine whose configuration clients see as running: the source until the
    /// migration completes.
    pub(crate) fn running(&self) -> &Engine {
        self.engine(Part::Source)
    }
}

/// A concurrent key-value store: one database. Share it between threads with `Arc<Store>`;
/// several databases that share transactions and WATCH are a [`Databases`].
pub struct Store {
    pub(crate) layout: ArcSwap<Layout>,
    /// What this store shares with the other databases of its [`Databases`] (alone, its own).
    pub(crate) shared: Arc<Shared>,
    /// Which store of its [`Databases`] this is; never changes (see `number`).
    pub(crate) slot: usize,
    /// The database number clients reach this store by: `slot` until SWAPDB exchanges it
    /// with another's (`databases.rs`). WATCH and the removal hook name databases by it.
    pub(crate) number: AtomicUsize,
    /// Numbers the engines (SCAN cursors name theirs).
    pub(crate) next_engine_id: AtomicU64,
    /// Held for the whole of a migration or snapshot: store-wide walks run one at a time.
    pub(crate) walking: Mutex<()>,
    pub(crate) migration_history: Mutex<MigrationHistory>,
    /// Monotonic counters of engines a migration retired, so that they never go backwards.
    pub(crate) retired: RetiredCounters,
    /// The shard where the next active-expiry pass starts (`sweep_pass`).
    sweep_next: AtomicUsize,
    /// INFO keyspace's `avg_ttl`: a running estimate from the sweeper's samples.
    avg_ttl_ms: AtomicU64,
}

/// What the databases of one server share: one transaction lock and one WATCH registry
/// (a transaction may span databases), one clock, the limits and the removal hook.
pub(crate) struct Shared {
    /// Every engine of every database routes with this hasher, so a key keeps its SCAN slot
    /// across migrations.
    pub(crate) router: Router,
    clock: Clock,
    max_value_len: usize,
    /// The compact encodings' thresholds for new versions of collections.
    encoding_limits: ArcSwap<EncodingLimits>,
    /// Told of every key a store removes by itself (eviction, active and lazy expiry), after
    /// the engine has let go of its locks: the server logs them to the AOF.
    removal_hook: OnceLock<RemovalHook>,
    /// Transactions hold it exclusively, commands pass through it (`transaction.rs`).
    pub(crate) transactions: TransactionGate,
    /// Watched keys, told of every change (`watch.rs`).
    pub(crate) watches: Watches,
}

/// See [`Store::set_removal_hook`]: called with the store's slot in its [`Databases`]
/// ([`Databases::slot`]; 0 for a store of its own) and the key.
pub type RemovalHook = Box<dyn Fn(usize, &[u8]) + Send + Sync>;

/// Expired and evicted keys and lock waits of engines that are gone.
#[derive(Default)]
pub(crate) struct RetiredCounters {
    expired: AtomicU64,
    evicted: AtomicU64,
    lock_wait_ns: AtomicU64,
}

impl RetiredCounters {
    pub(crate) fn absorb(&self, engine: &Engine) {
        let totals = engine.totals();
        self.expired.fetch_add(totals.expired, Ordering::Relaxed);
        self.evicted.fetch_add(totals.evicted, Ordering::Relaxed);
        self.lock_wait_ns.fetch_add(totals.lock_wait_ns, Ordering::Relaxed);
    }
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
        let (config, shared) = self.validate()?;
        Ok(Store::new(Arc::new(shared), 0, config))
    }

    /// `count` databases, 1 to [`MAX_DATABASES`](crate::engine::MAX_DATABASES), that share transactions and WATCH. Each is
    /// created with this builder's engine when first used.
    pub fn build_databases(self, count: usize) -> Result<Databases, ConfigError> {
        let (config, shared) = self.validate()?;
        Databases::new(Arc::new(shared), config, count)
    }

    fn validate(self) -> Result<(EngineConfig, Shared), ConfigError> {
        let shards = validate_shards(self.shards)?;
        if self.max_value_len == 0 || self.max_value_len > MAX_STRING_LEN {
            return Err(ConfigError::InvalidMaxValueLen(self.max_value_len));
        }
        let shared = Shared {
            router: Router::default(),
            clock: self.clock,
            max_value_len: self.max_value_len,
            encoding_limits: ArcSwap::from_pointee(EncodingLimits::default()),
            removal_hook: OnceLock::new(),
            transactions: TransactionGate::default(),
            watches: Watches::default(),
        };
        Ok((EngineConfig { strategy: self.strategy, shards: shards as u32 }, shared))
    }
}

impl Shared {
    pub(crate) fn clock_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// [`Store::now_ms`], the same for every database.
    pub(crate) fn now_ms(&self) -> u64 {
        self.transactions.frozen_ms().unwrap_or_else(|| self.clock_ms())
    }

    pub(crate) fn encoding_limits(&self) -> EncodingLimits {
        **self.encoding_limits.load()
    }

    pub(crate) fn set_encoding_limits(&self, limits: EncodingLimits) {
        self.encoding_limits.store(Arc::new(limits));
    }

    pub(crate) fn set_removal_hook(&self, hook: RemovalHook) -> Result<(), RemovalHook> {
        self.removal_hook.set(hook)
    }
}

impl Store {
    /// Database `slot` of those sharing `shared`, empty, running `config` (already validated).
    pub(crate) fn new(shared: Arc<Shared>, slot: usize, config: EngineConfig) -> Store {
        let engine = Engine::new(0, config, &shared.router, 0);
        Store {
            layout: ArcSwap::from_pointee(Layout::Stable(Arc::new(engine))),
            shared,
            slot,
            number: AtomicUsize::new(slot),
            next_engine_id: AtomicU64::new(1),
            walking: Mutex::new(()),
            migration_history: Mutex::default(),
            retired: RetiredCounters::default(),
            sweep_next: AtomicUsize::new(0),
            avg_ttl_ms: AtomicU64::new(0),
        }
    }

    /// The database number clients reach this store by (0 for a store of its own).
    pub fn number(&self) -> usize {
        self.number.load(Ordering::Relaxed)
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

    /// The strategy running now (during a migration, the one being migrated from).
    pub fn strategy(&self) -> Strategy {
        self.layout.load().running().config().strategy
    }

    /// The shard count running now (during a migration, the one being migrated from).
    pub fn shard_count(&self) -> usize {
        self.layout.load().running().shard_count()
    }

    /// The shard that holds `key` in the running engine, from 0 to `shard_count() - 1`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.layout.load().running().shard_of(key)
    }

    pub(crate) fn max_value_len(&self) -> usize {
        self.shared.max_value_len
    }

    /// The thresholds of the compact encodings (Redis's `hash-max-listpack-entries` and the
    /// like) that writes from now on apply.
    pub fn encoding_limits(&self) -> EncodingLimits {
        self.shared.encoding_limits()
    }

    pub fn set_encoding_limits(&self, limits: EncodingLimits) {
        self.shared.set_encoding_limits(limits);
    }

    /// The store's time, in milliseconds since the Unix epoch: its clock's, or while a
    /// transaction runs, the instant it started (`transaction.rs`).
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// "Now" for one operation, read before it looks at any entry (see [`Now`]).
    pub(crate) fn now(&self) -> Now {
        Now(self.now_ms())
    }

    /// Reads the live entry under `key` (an expired entry reads as absent and is reclaimed).
    pub(crate) fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R {
        self.read_at(key, &self.now(), f)
    }

    /// [`Store::read`] at a "now" the caller already read.
    pub(crate) fn read_at<R>(&self, key: &[u8], now: &Now, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        let found = match &**self.layout.load() {
            Layout::Stable(engine) => engine.read(key, now, f),
            Layout::Saving(cut) => cut.engine().read(key, now, f),
            Layout::Migrating(migration) => migration.read(key, now, f),
        };
        match found {
            Found::Answered(reply) => reply,
            // The loaded entry had expired, but a write may have replaced it since: answer
            // from what the reclaiming update saw, which is the key's state at that instant
            // (answering "absent" outright could deny a key that never was absent).
            Found::Expired(f) | Found::Absent(f) => {
                let live = self.update_at(key, now, |live| (Write::Keep, live.cloned())).reply;
                f(live.as_ref())
            }
        }
    }

    /// Atomically applies `f` to the live entry under `key`. `f` must be pure: the
    /// lock-free strategy may run it more than once.
    pub(crate) fn update<R>(&self, key: &[u8], f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        self.update_at(key, &self.now(), f).reply
    }

    /// [`Store::update`] at a "now" the caller already read: a command whose reply or write
    /// depends on the time (GETEX, EXPIRE, TTL) uses the same instant as the expiry check.
    pub(crate) fn update_at<R>(
        &self,
        key: &[u8],
        now: &Now,
        f: impl FnMut(Option<&Entry>) -> (Write, R),
    ) -> Updated<R> {
        let updated = match &**self.layout.load() {
            Layout::Stable(engine) => engine.update(key, now, f),
            Layout::Saving(cut) => cut.update(key, now, f),
            Layout::Migrating(migration) => migration.update(key, now, f),
        };
        if updated.changed {
            self.shared.watches.touch(self.number(), key, updated.reclaimed);
        }
        if updated.reclaimed {
            self.removed(key);
        }
        updated
    }

    /// Whether `key` has a live entry, without reclaiming an expired one (a reclaim is a
    /// change, and WATCH must not cause one by looking).
    pub(crate) fn is_live(&self, key: &[u8]) -> bool {
        let now = self.now();
        let present = |entry: Option<&Entry>| entry.is_some();
        let found = match &**self.layout.load() {
            Layout::Stable(engine) => engine.read(key, &now, present),
            Layout::Saving(cut) => cut.engine().read(key, &now, present),
            Layout::Migrating(migration) => migration.read(key, &now, present),
        };
        matches!(found, Found::Answered(true))
    }

    /// Sets what is called with every key the store removes by itself: evicted
    /// ([`Store::evict_random`]) or expired (active or lazy reclaim; also when a write finds
    /// its key expired). It is called on the removing thread once the engine's locks are
    /// released, possibly while the caller of a write holds its own locks, so it should only
    /// note the key. Set once; later calls return the hook back.
    pub fn set_removal_hook(&self, hook: RemovalHook) -> Result<(), RemovalHook> {
        self.shared.set_removal_hook(hook)
    }

    fn removed(&self, key: &[u8]) {
        if let Some(hook) = self.shared.removal_hook.get() {
            hook(self.slot, key);
        }
    }

    /// Removes `key` if its entry has expired; returns whether it did.
    fn reclaim_if_expired(&self, key: &[u8], now: &Now) -> bool {
        self.update_at(key, now, |_| (Write::Keep, ())).reclaimed
    }

    /// Number of keys (DBSIZE). Expired keys not yet reclaimed are counted, as in Redis.
    ///
    /// Exact when no write is in flight. Otherwise each write's change of the count lands in
    /// its shard's counter just after the write itself (the counters are per shard, so that
    /// writers never contend on one), and the shards are summed one by one: the answer counts
    /// every write that completed before the call began and none that began after it returned,
    /// so it is off from the number of keys at any instant of the call by at most the number
    /// of writes in flight meanwhile (during a live migration, by at most one more
    /// `MIGRATION_CHUNK` of keys being handed from one engine's counters to the other's).
    /// `tests/engine.rs` checks these bounds under concurrent writers.
    pub fn len(&self) -> usize {
        usize::try_from(self.totals().keys).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes used, cheap enough to read before every write.
    pub fn memory_bytes(&self) -> u64 {
        non_negative(self.layout.load().counted(Engine::memory_bytes, |a, b| a + b))
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
            published_versions: self.layout.load().engines().map(Engine::published_versions).sum(),
        }
    }

    fn totals(&self) -> Totals {
        let mut sum = Totals {
            expired: self.retired.expired.load(Ordering::Relaxed),
            evicted: self.retired.evicted.load(Ordering::Relaxed),
            lock_wait_ns: self.retired.lock_wait_ns.load(Ordering::Relaxed),
            ..Totals::default()
        };
        sum += self.layout.load().counted(Engine::totals, |mut a, b| {
            a += b;
            a
        });
        sum
    }

    /// Removes every key (FLUSHDB) and returns how many were removed.
    pub fn clear(&self) -> usize {
        // Watched keys that exist change; a key created after this look is touched by its
        // own write.
        let number = self.number();
        for key in self.shared.watches.watched_keys(number) {
            if self.is_live(&key) {
                self.shared.watches.touch(number, &key, false);
            }
        }
        let removed = match &**self.layout.load() {
            Layout::Stable(engine) => engine.clear(),
            Layout::Saving(cut) => cut.clear(),
            Layout::Migrating(migration) => migration.clear(),
        };
        usize::try_from(removed).unwrap_or(0)
    }

    /// One step of a SCAN walk: returns the next cursor (0 when the walk is complete) and
    /// live keys matching `pattern`.
    ///
    /// Guarantee: a full walk from cursor 0 back to 0 returns every key that exists for the
    /// whole walk at least once, whatever runs concurrently, migrations included; a key may
    /// be returned more than once. `count` bounds the entries one call examines, as in Redis,
    /// and each shard is held (where it has a lock) for at most one chunk of `count` entries.
    /// The order and the cursor are explained in `scan.rs`.
    pub fn scan(&self, cursor: u64, pattern: Option<&[u8]>, count: usize) -> (u64, Vec<CompactBytes>) {
        let now = self.now_ms();
        let count = count.max(1);
        let layout = self.layout.load();
        let geometry = layout.geometry();
        let mut walk = geometry.resume(cursor);
        let mut keys = Vec::new();
        // `count` bounds the entries one call examines, as in Redis; empty shards cost
        // nothing toward it, so a sparse or empty store finishes in one call.
        let mut examined = 0;
        while examined < count {
            let (part, shard) = geometry.shard(&walk);
            walk.offset = layout.engine(part).scan_shard(shard, walk.offset, count - examined, |key, entry| {
                examined += 1;
                if !entry.is_expired(now) && pattern.is_none_or(|p| glob_match(p, key)) {
                    keys.push(key.clone());
                }
            });
            if walk.offset == 0 && !geometry.advance(&mut walk) {
                return (0, keys);
            }
        }
        (geometry.cursor(&walk), keys)
    }

    /// Every live key matching `pattern` (KEYS), each once. Built from SCAN chunks so that no
    /// lock is held for long, so it is not a point-in-time snapshot.
    pub fn keys(&self, pattern: &[u8]) -> Vec<CompactBytes> {
        let mut keys = Vec::new();
        self.keys_while(pattern, &mut keys, |_| true);
        keys
    }

    /// [`Store::keys`] into `keys`, asking `proceed` after each chunk (a SCAN step of up to
    /// 1,024 entries) whether to go on: a server stops once the keys gathered would take more
    /// memory than the client may hold. Returns whether every key was gathered; if so they
    /// are sorted, each once (a SCAN walk may return a key twice).
    pub fn keys_while(
        &self,
        pattern: &[u8],
        keys: &mut Vec<CompactBytes>,
        mut proceed: impl FnMut(&Vec<CompactBytes>) -> bool,
    ) -> bool {
        let mut cursor = 0;
        loop {
            let (next, chunk) = self.scan(cursor, Some(pattern), 1024);
            keys.extend(chunk);
            if !proceed(keys) {
                return false;
            }
            if next == 0 {
                // Sorting then deduplicating needs no memory beyond the keys themselves.
                keys.sort_unstable();
                keys.dedup();
                return true;
            }
            cursor = next;
        }
    }

    /// A random live key (RANDOMKEY), or `None` when the store is empty.
    pub fn random_key(&self) -> Option<CompactBytes> {
        const ATTEMPTS: usize = 32;
        let mut rng = rand::rng();
        for _ in 0..ATTEMPTS {
            let candidate = match &**self.layout.load() {
                Layout::Stable(engine) => engine.random_key(&mut rng),
                Layout::Saving(cut) => cut.engine().random_key(&mut rng),
                // During a migration, draw from the engine that holds more keys.
                Layout::Migrating(m) => {
                    let source_keys = m.source().totals().keys;
                    let engine = if source_keys >= m.target().totals().keys { m.source() } else { m.target() };
                    engine.random_key(&mut rng)
                }
            };
            if let Some(key) = candidate
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
    }

    /// Evicts up to `n` random keys (the `allkeys-random` policy) and returns how many went.
    pub fn evict_random(&self, n: usize) -> usize {
        let mut evicted = 0;
        for _ in 0..n {
            let Some(key) = self.random_key() else { break };
            let removed = self.update_at(&key, &self.now(), |live| (Write::Remove, live.is_some())).reply;
            if removed {
                // Counted in the running engine; a retired engine's counts are carried over.
                self.layout.load().running().count_evicted(&key);
                self.removed(&key);
                evicted += 1;
            }
        }
        evicted
    }

    /// One active-expiry pass, Redis's `activeExpireCycle` over shards: starting at the shard
    /// after the one the last pass stopped at (so that every shard gets its turn, however
    /// many there are), each shard's expires index is sampled `chunk` keys at a time, again
    /// while more than a tenth of a sample had expired, and the pass stops once it has been
    /// round every shard or has run for `budget`. Each step reads one bounded chunk; each
    /// removal is its own short update.
    pub(crate) fn sweep_pass(&self, chunk: usize, budget: Duration) -> (u64, u64) {
        let started = Instant::now();
        let now = self.now_ms();
        let (mut examined, mut expired) = (0u64, 0u64);
        let mut ttls = TtlSample::default();
        // Shards are numbered over the layout's engines, source first; the layout may change
        // between steps, and the pass follows it.
        let shards = |layout: &Layout| layout.engines().map(Engine::shard_count).sum::<usize>();
        let total = shards(&self.layout.load());
        let first = self.sweep_next.load(Ordering::Relaxed) % total;
        let mut next = first;
        let mut visited = 0;
        while visited < total && started.elapsed() < budget {
            // Look under the layout, reclaim after letting go of it: a reclaim loads it again.
            let step = {
                let layout = self.layout.load();
                let mut shard = next % shards(&layout).max(1);
                layout.engines().find_map(|engine| match engine.shard_count() {
                    count if shard < count => Some(engine.expired_in_shard(shard, now, chunk)),
                    count => {
                        shard -= count;
                        None
                    }
                })
            };
            let Some(Some(step)) = step else {
                (next, visited) = (next + 1, visited + 1);
                continue;
            };
            // Under a pass: a transaction's frozen time may still see these keys alive.
            let reclaimed = {
                let _pass = self.pass();
                step.due.iter().filter(|key| self.reclaim_if_expired(key, &Now(now))).count() as u64
            };
            examined += step.examined;
            expired += reclaimed;
            ttls.merge(step.ttls);
            // Stay on a shard while much of what it holds has expired, as Redis does.
            if step.shard_done || reclaimed * 10 <= step.examined {
                (next, visited) = (next + 1, visited + 1);
            }
        }
        self.sweep_next.store(next, Ordering::Relaxed);
        self.update_avg_ttl(ttls);
        (examined, expired)
    }

    /// Redis's estimate (`activeExpireCycle`): each pass's mean remaining lifetime weighs 2%
    /// against the previous estimate's 98%; the first sample is taken as is, and a store
    /// without keys that expire has none.
    fn update_avg_ttl(&self, ttls: TtlSample) {
        let estimate = if self.totals().volatile <= 0 {
            0
        } else if let Some(sampled) = ttls.sum_ms.checked_div(ttls.count) {
            match self.avg_ttl_ms.load(Ordering::Relaxed) {
                0 => sampled,
                previous => previous / 50 * 49 + sampled / 50,
            }
        } else {
            return;
        };
        self.avg_ttl_ms.store(estimate, Ordering::Relaxed);
    }

    /// INFO keyspace's `avg_ttl`: the estimated mean remaining lifetime, in milliseconds, of
    /// the keys that expire, kept up to date by active expiry (0 when none expire).
    pub fn avg_ttl_ms(&self) -> u64 {
        // Without keys that expire there is nothing to average, whatever the last pass saw.
        if self.totals().volatile <= 0 { 0 } else { self.avg_ttl_ms.load(Ordering::Relaxed) }
    }
}
