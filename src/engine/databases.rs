//! Numbered databases, as Redis's `databases 16`: SELECT, SWAPDB, FLUSHDB and the rest.
//!
//! # Guarantee
//! Each database is a [`Store`] of its own (its own engine, counters, SCAN, expiry), so a
//! command on one costs what it would cost alone and KEYS, SCAN, DBSIZE, RANDOMKEY and
//! FLUSHDB look only at their database. What spans databases is shared, so it holds across
//! them exactly as within one: the transaction lock (an EXEC, MOVE or SWAPDB over several
//! databases is one transaction, `transaction.rs`), the WATCH registry, the clock, the
//! engine configuration (a migration moves every database), a point-in-time snapshot (one
//! cut of every database at one instant), `maxmemory` (memory is summed, and eviction draws
//! from every database in proportion to its keys, as Redis's `allkeys-random` does).
//!
//! # How
//! A database's store is created when first written to (the server reads a database never
//! used as one shared empty store), with the engine the server runs then: an unused
//! database costs one empty slot (an empty lock-free engine of 4,096 shards takes
//! about 70 MB, too much to keep sixteen of for nothing). Clients name databases by number;
//! a table maps each number to the slot of its store, and SWAPDB exchanges two entries with
//! every database held exclusively, so it is O(1) as in Redis and no operation sees it half
//! done. A store keeps its slot for life (walks such as a migration or a snapshot work on
//! slots, so a SWAPDB never waits for them) and learns its new number, which WATCH and the
//! removal hook use; a store created after a SWAPDB moved its slot looks its number up.
//!
//! A snapshot's cut over several databases takes every store's walk lock (in slot order,
//! the only order any caller takes more than one), then a pass, then the creation lock, so
//! that no database appears between the list of stores and the cut; it is installed in all
//! of them at one instant (`gates.rs`).
//!
//! # How it is tested
//! `tests/databases.rs` checks isolation, SWAPDB, FLUSHDB, lazy creation, a snapshot over
//! several databases under writers, and migration of every database, under every strategy;
//! `tests/server_databases.rs` drives SELECT, MOVE, SWAPDB, COPY ... DB and FLUSHDB through
//! the server, with AOF and RDB round trips, and checks that reads create no database; the
//! Redis oracle compares replies; `tests/shuttle.rs` explores the cut over two databases
//! beside a migration on shuttle's scheduler, and catches databases cut one after the other.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::RngExt as _;

use super::config::{ConfigError, EngineConfig};
use super::migration::{EngineStatus, MigrationProgress, MigrationReport};
use super::snapshot::PointInTime;
use super::store::{RemovalHook, Shared, Store, StoreStats};
use super::sweeper::SweepReport;
use super::sync::{Arc, AtomicUsize, Mutex, MutexGuard, Ordering};
use super::value::EncodingLimits;
use super::watch::Watcher;

/// Redis's default number of databases.
pub const DEFAULT_DATABASES: usize = 16;
/// The most databases a server may have: more than any deployment of Redis's numbered
/// databases uses, and each costs only a slot until used.
pub const MAX_DATABASES: usize = 4096;

/// The numbered databases of one server. Share it between threads with `Arc<Databases>`.
pub struct Databases {
    pub(crate) shared: Arc<Shared>,
    /// The stores, by slot; created when first used.
    slots: Box<[OnceLock<Store>]>,
    /// Database number → slot. Changed only by SWAPDB, with every database held.
    numbers: Box<[AtomicUsize]>,
    /// The engine a database gets when it is created, locked while one is (`module page`).
    creating: Mutex<EngineConfig>,
    /// Migrations of all the databases ([`Databases::migrate`]).
    migrations: Mutex<Migrations>,
    /// Where the next active-expiry pass starts, so that each database gets its turn.
    sweep_next: AtomicUsize,
}

#[derive(Default)]
struct Migrations {
    /// The one under way: its target, start, and the keys moved by databases already done.
    current: Option<(EngineConfig, Instant, u64)>,
    completed: u64,
    last: Option<MigrationReport>,
}

impl Databases {
    pub(crate) fn new(shared: Arc<Shared>, config: EngineConfig, count: usize) -> Result<Databases, ConfigError> {
        if !(1..=MAX_DATABASES).contains(&count) {
            return Err(ConfigError::InvalidDatabases(count));
        }
        let databases = Databases {
            shared,
            slots: (0..count).map(|_| OnceLock::new()).collect(),
            numbers: (0..count).map(AtomicUsize::new).collect(),
            creating: Mutex::new(config),
            migrations: Mutex::default(),
            sweep_next: AtomicUsize::new(0),
        };
        // Database 0 is the one every client starts in.
        databases.store_in_slot(0);
        Ok(databases)
    }

    /// How many databases there are (`databases`): numbers 0 to `count() - 1`.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// Database `number`, created now if it was never used; `None` when out of range.
    pub fn get(&self, number: usize) -> Option<&Store> {
        let slot = self.numbers.get(number)?.load(Ordering::Relaxed);
        Some(self.store_in_slot(slot))
    }

    /// Database `number` if it exists and was ever used (reading an unused database needs
    /// no store: it is empty).
    pub fn existing(&self, number: usize) -> Option<&Store> {
        let slot = self.numbers.get(number)?.load(Ordering::Relaxed);
        self.slots[slot].get()
    }

    /// The store in `slot` if created ([`RemovalHook`]s name stores by slot).
    pub fn in_slot(&self, slot: usize) -> Option<&Store> {
        self.slots.get(slot)?.get()
    }

    fn store_in_slot(&self, slot: usize) -> &Store {
        if let Some(store) = self.slots[slot].get() {
            return store;
        }
        let config = self.creating.lock();
        self.slots[slot].get_or_init(|| {
            let store = Store::new(Arc::clone(&self.shared), slot, *config);
            // A SWAPDB may have given the slot another number before its store existed.
            let number = self.numbers.iter().position(|owner| owner.load(Ordering::Relaxed) == slot);
            store.number.store(number.unwrap_or(slot), Ordering::Relaxed);
            store
        })
    }

    /// The databases ever used, by slot.
    pub fn created(&self) -> impl Iterator<Item = &Store> {
        self.slots.iter().filter_map(OnceLock::get)
    }

    /// SWAPDB: clients of database `a` see `b`'s data from now on, and the other way round.
    /// Watched keys of either database that exist in either count as changed, as Redis's
    /// `touchAllWatchedKeysInDb`. Call it with the databases held exclusively
    /// ([`Databases::exclusive`]), so that the swap is one instant for every operation.
    /// Creates neither database: an unused one swaps as its empty slot.
    pub fn swap(&self, a: usize, b: usize) -> Result<(), ConfigError> {
        let count = self.count();
        if a >= count || b >= count {
            return Err(ConfigError::InvalidDatabase(a.max(b)));
        }
        if a == b {
            return Ok(());
        }
        let (first, second) = (self.existing(a), self.existing(b));
        let exists = |key: &[u8]| [first, second].into_iter().flatten().any(|store| store.is_live(key));
        for number in [a, b] {
            for key in self.shared.watches.watched_keys(number).iter().filter(|key| exists(key)) {
                self.shared.watches.touch(number, key, false);
            }
        }
        let (slot_a, slot_b) = (self.numbers[a].load(Ordering::Relaxed), self.numbers[b].load(Ordering::Relaxed));
        self.numbers[a].store(slot_b, Ordering::Relaxed);
        self.numbers[b].store(slot_a, Ordering::Relaxed);
        for (store, number) in [(first, b), (second, a)] {
            if let Some(store) = store {
                store.number.store(number, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// FLUSHALL: empties every database; returns how many keys were removed.
    pub fn clear(&self) -> usize {
        self.created().map(Store::clear).sum()
    }

    /// Keys in every database.
    pub fn len(&self) -> usize {
        self.created().map(Store::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.created().all(Store::is_empty)
    }

    /// Bytes used by every database.
    pub fn memory_bytes(&self) -> u64 {
        self.created().map(Store::memory_bytes).sum()
    }

    /// The counters of every database summed.
    pub fn stats(&self) -> StoreStats {
        self.created().map(|store| store.stats()).fold(StoreStats::default(), |sum, stats| StoreStats {
            keys: sum.keys + stats.keys,
            volatile_keys: sum.volatile_keys + stats.volatile_keys,
            memory_bytes: sum.memory_bytes + stats.memory_bytes,
            expired_keys: sum.expired_keys + stats.expired_keys,
            evicted_keys: sum.evicted_keys + stats.evicted_keys,
            lock_wait_ns: sum.lock_wait_ns + stats.lock_wait_ns,
            published_versions: match (sum.published_versions, stats.published_versions) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            },
        })
    }

    /// The store's time (see [`Store::now_ms`]), the same in every database.
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    pub fn encoding_limits(&self) -> EncodingLimits {
        self.shared.encoding_limits()
    }

    /// [`Store::set_encoding_limits`] for every database.
    pub fn set_encoding_limits(&self, limits: EncodingLimits) {
        self.shared.set_encoding_limits(limits);
    }

    /// [`Store::set_removal_hook`] for every database (the hook is told each store's slot).
    pub fn set_removal_hook(&self, hook: RemovalHook) -> Result<(), RemovalHook> {
        self.shared.set_removal_hook(hook)
    }

    /// UNWATCH, whatever databases the watched keys are in.
    pub fn unwatch(&self, watcher: &mut Watcher) {
        self.store_in_slot(0).unwatch(watcher);
    }

    /// [`Store::watched_changed`] over every database: call it with the databases held
    /// exclusively.
    pub fn watched_changed(&self, watcher: &Watcher) -> bool {
        watcher.changed(|number| self.existing(number))
    }

    /// Evicts up to `n` random keys from the databases, each drawn from a database chosen
    /// in proportion to its keys (`allkeys-random` over all of them, as Redis's).
    pub fn evict_random(&self, n: usize) -> usize {
        let mut rng = rand::rng();
        // Counted once per call, not per key: a count sums every shard's counter, and
        // eviction runs before writes under memory pressure. Each eviction is taken off its
        // database's count, so the draws stay in proportion.
        let mut sizes: Vec<(&Store, usize)> = self.created().map(|store| (store, store.len())).collect();
        let mut evicted = 0;
        for _ in 0..n {
            let total: usize = sizes.iter().map(|(_, keys)| keys).sum();
            if total == 0 {
                break;
            }
            let mut pick = rng.random_range(0..total);
            let Some((store, keys)) = sizes.iter_mut().find(|(_, keys)| {
                let here = pick < *keys;
                pick = pick.saturating_sub(*keys);
                here
            }) else {
                break;
            };
            let gone = store.evict_random(1);
            // Nothing left to evict there (its keys went meanwhile): draw from the others.
            *keys = if gone == 0 { 0 } else { *keys - 1 };
            evicted += gone;
        }
        evicted
    }

    /// One active-expiry pass over the databases, [`Store::sweep_expired`]'s budget shared
    /// among them: each pass starts at the database after the one the last pass started at.
    pub fn sweep_expired(&self) -> SweepReport {
        let started = Instant::now();
        let stores: Vec<&Store> = self.created().collect();
        let first = self.sweep_next.fetch_add(1, Ordering::Relaxed);
        let mut report = SweepReport::default();
        for index in 0..stores.len() {
            let Some(left) = super::sweeper::SWEEP_BUDGET.checked_sub(started.elapsed()) else { break };
            let pass = stores[(first + index) % stores.len()].sweep_with_budget(left.max(Duration::from_micros(1)));
            report.examined += pass.examined;
            report.expired += pass.expired;
        }
        report
    }

    /// Moves every database to `target`, live (see [`Store::migrate`]), one after the other;
    /// a database first used meanwhile is created with `target`. Returns one report for all.
    pub fn migrate(&self, target: EngineConfig) -> Result<MigrationReport, ConfigError> {
        super::config::validate_shards(u64::from(target.shards))?;
        let started = Instant::now();
        let from = {
            let mut creating = self.creating.lock();
            std::mem::replace(&mut *creating, target)
        };
        self.migrations.lock().current = Some((target, started, 0));
        let mut report = MigrationReport {
            from,
            to: target,
            keys_moved: 0,
            duration: Duration::ZERO,
            longest_pause: Duration::ZERO,
        };
        let mut result = Ok(());
        for store in self.created() {
            match store.migrate(target) {
                Ok(done) => {
                    report.keys_moved += done.keys_moved;
                    report.longest_pause = report.longest_pause.max(done.longest_pause);
                    if let Some((_, _, moved)) = &mut self.migrations.lock().current {
                        *moved += done.keys_moved;
                    }
                }
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        report.duration = started.elapsed();
        let mut migrations = self.migrations.lock();
        migrations.current = None;
        result?;
        if report.from != report.to {
            migrations.completed += 1;
            migrations.last = Some(report);
        }
        Ok(report)
    }

    /// The engine the databases run, and the migration under way. The running configuration
    /// is the one every database runs; during a migration, the one being migrated from until
    /// the last database has moved.
    pub fn engine_status(&self) -> EngineStatus {
        let migrations = self.migrations.lock();
        let target = *self.creating.lock();
        let statuses: Vec<(EngineStatus, u64)> =
            self.created().map(|store| (store.engine_status(), store.len() as u64)).collect();
        let running = statuses.iter().map(|(status, _)| status.running).find(|running| *running != target);
        let migration = migrations.current.map(|(target, started, moved_before)| {
            // Keys still to move: those of the database moving now, and all of those not
            // moved yet.
            let (mut keys_moved, mut keys_total) = (moved_before, moved_before);
            for (status, keys) in &statuses {
                match status.migration {
                    Some(progress) => {
                        keys_moved += progress.keys_moved;
                        keys_total += progress.keys_total;
                    }
                    None if status.running != target => keys_total += keys,
                    None => {}
                }
            }
            MigrationProgress { target, keys_moved, keys_total, elapsed: started.elapsed() }
        });
        EngineStatus {
            running: running.unwrap_or(target),
            migration,
            migrations_completed: migrations.completed,
            last_migration: migrations.last,
        }
    }

    /// A point-in-time snapshot of every database ever used, cut at one instant: the
    /// database numbers at the cut, in order, with their cuts. Waits while a migration or
    /// another snapshot runs. The caller must hold no pass.
    pub fn snapshot(&self) -> Vec<(usize, PointInTime<'_>)> {
        loop {
            let stores: Vec<&Store> = self.created().collect();
            let walks = stores.iter().map(|store| (*store, store.walking.lock())).collect();
            let _pass = self.pass();
            if let Some(cut) = self.cut_if_unchanged(walks) {
                return cut;
            }
        }
    }

    /// [`Databases::snapshot`], or `None` at once when a migration, another snapshot or a
    /// transaction runs (see [`Store::try_snapshot`]).
    pub fn try_snapshot(&self) -> Option<Vec<(usize, PointInTime<'_>)>> {
        let walks = self.try_walks()?;
        let _pass = self.shared.try_pass()?;
        self.cut_if_unchanged(walks)
    }

    /// [`Databases::try_snapshot`] for a caller that holds a pass or exclusivity already (a
    /// command: FLUSHALL saving the emptied databases), which takes no other: `None` at once
    /// when a migration or another snapshot runs.
    pub fn try_snapshot_in_command(&self) -> Option<Vec<(usize, PointInTime<'_>)>> {
        self.cut_if_unchanged(self.try_walks()?)
    }

    fn try_walks(&self) -> Option<Vec<(&Store, MutexGuard<'_, ()>)>> {
        self.created().map(|store| store.walking.try_lock().map(|walk| (store, walk))).collect()
    }

    /// Cuts `walks`' stores unless a database was created since they were listed. The caller
    /// holds a pass or exclusivity, so that the cut splits no transaction (`transaction.rs`).
    fn cut_if_unchanged<'a>(
        &'a self,
        walks: Vec<(&'a Store, MutexGuard<'a, ()>)>,
    ) -> Option<Vec<(usize, PointInTime<'a>)>> {
        let _no_new_database = self.creating.lock();
        if self.created().count() != walks.len() {
            return None;
        }
        let numbers: Vec<usize> = walks.iter().map(|(store, _)| store.number()).collect();
        let mut cuts: Vec<_> = numbers.into_iter().zip(Store::cut_together(walks)).collect();
        cuts.sort_by_key(|(number, _)| *number);
        Some(cuts)
    }
}
