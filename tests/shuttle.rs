//! Randomized concurrency testing (shuttle) of the engine's synchronization, built with
//! the test-only `shuttle` feature (`cargo test --features shuttle --test shuttle`, as
//! scripts/test.sh runs it). With it the engine takes its locks, atomics and `ArcSwap` from its sync facade
//! (`src/engine/sync.rs`) as shuttle's scheduled twins, so these tests drive the **real**
//! engine: a real `Store` of each strategy shuttle can schedule (`Mutex`, `RwLock`,
//! `CopyOnWrite`; papaya, behind `LockFree`, keeps atomics of its own that shuttle cannot see).
//!
//! - SCAN (`Locked::scan`, `CowShard::scan`, `reverse_window`, `Store::scan`): a walk returns
//!   every key present throughout while other threads delete, re-insert and insert keys.
//! - Live migration (`Store::migrate`, `Migration`, the gates and layout swaps of gates.rs):
//!   while keys move to an engine of another strategy and shard count, no increment is lost,
//!   no read misses a key that exists, and reads never go back in time.
//! - Point-in-time snapshots (`Store::snapshot`, `Cut`) beside a migration: the walk hands
//!   over one instant of the store while writers go on.
//! - Snapshots of several databases (`Databases::snapshot`): one instant of all of them
//!   while a writer moves from one to the other and they migrate; cutting them one after the
//!   other is caught.
//! - Transactions (`Store::exclusive`, `Store::pass`, transaction.rs): a reader under a pass
//!   and a snapshot's cut see a transaction whole, beside a migration too; transfers made
//!   without exclusivity are caught.
//!
//! Two models stay. The sweeper's stop protocol: the real `Sweeper` waits on a std channel
//! with `recv_timeout`, which never times out under shuttle (it would never run a pass), so
//! it stays outside the facade and is modelled here. And a model of the migration protocol,
//! for its negative controls: they show that a scenario of this kind catches four broken
//! migrations (remove before insert, no gate, no wait for the old layout's users, writers let
//! in while waiting for them), flaws that cannot be switched on in the real code without test
//! hooks in the engine; with a stop that does not join as the sweeper's control, a pass here
//! means something. Two of those flaws were also put into the real code by hand (a chunk
//! removed from the source before it is inserted into the target; gates opened before the
//! previous layout's users are gone): `a_live_migration_loses_no_increment_and_no_key` failed
//! within seconds on each ("read as absent", "lost an update").
#![cfg(feature = "shuttle")]

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::TryRecvError;

use cstore::engine::{CompactBytes, EngineConfig, SetOptions, Store, Strategy};
use shuttle::sync::atomic::{AtomicUsize, Ordering};
use shuttle::sync::{Arc, Mutex, RwLock, mpsc};
use shuttle::thread;

/// Schedules tried by each random and each PCT run of a model.
const ITERATIONS: usize = 10_000;
/// Schedules tried by each random and each PCT run on the real engine: each schedule builds a
/// store and runs thousands of scheduling points, so fewer fit in CI's minute.
const ENGINE_ITERATIONS: usize = 5_000;
/// Preemptions PCT places per schedule: bugs in small protocols need few.
const PCT_DEPTH: usize = 3;

/// Runs `scenario` `iterations` times under shuttle's random scheduler and as many under PCT.
/// The engine's counters use Relaxed atomics, which shuttle runs as SeqCst; it would warn so
/// once per run.
fn explore(iterations: usize, scenario: impl Fn() + Send + Sync + Clone + 'static) {
    let mut config = shuttle::Config::new();
    config.silence_warnings = true;
    shuttle::Runner::new(shuttle::scheduler::RandomScheduler::new(iterations), config.clone()).run(scenario.clone());
    shuttle::Runner::new(shuttle::scheduler::PctScheduler::new(PCT_DEPTH, iterations), config).run(scenario);
}

/// The engine configurations shuttle can schedule, each with one or two shards: few keys
/// per shard keep the schedules short, and two shards route keys apart.
const ENGINES: [EngineConfig; 4] = [
    EngineConfig { strategy: Strategy::Mutex, shards: 1 },
    EngineConfig { strategy: Strategy::RwLock, shards: 2 },
    EngineConfig { strategy: Strategy::CopyOnWrite, shards: 1 },
    EngineConfig { strategy: Strategy::CopyOnWrite, shards: 2 },
];

fn store(config: EngineConfig) -> Arc<Store> {
    Arc::new(Store::builder().config(config).build().expect("valid engine"))
}

fn set(store: &Store, key: &str, value: &str) {
    store.set(key.as_bytes(), value.as_bytes(), SetOptions::default()).unwrap();
}

fn value_of(store: &Store, key: &str) -> Option<i64> {
    store
        .get(key.as_bytes())
        .unwrap()
        .map(|value| cstore::engine::parse_integer(&value).expect("counters hold integers"))
}

/// Keys present for the whole walk.
const STABLE: [&str; 3] = ["stable:0", "stable:1", "stable:2"];
/// Keys deleted and re-inserted during the walk.
const CHURN: [&str; 3] = ["churn:0", "churn:1", "churn:2"];
/// Keys inserted during the walk.
const NEW: [&str; 2] = ["new:0", "new:1"];

/// Two writers change the store while one thread walks it with SCAN in chunks of `count`;
/// every stable key must be returned. Stable keys alternate with churn keys and one sits
/// last, so that each delete moves a key across the walk's position in one direction or the
/// other (a locked or copy-on-write shard fills the hole a delete leaves with its last key).
fn scan_returns_every_stable_key(config: EngineConfig, count: usize) {
    let store = store(config);
    for (churn, stable) in CHURN.into_iter().zip(STABLE) {
        set(&store, churn, "c");
        set(&store, stable, "s");
    }
    let churner = thread::spawn({
        let store = Arc::clone(&store);
        move || {
            for key in CHURN {
                store.delete(key.as_bytes());
                set(&store, key, "c");
            }
        }
    });
    let grower = thread::spawn({
        let store = Arc::clone(&store);
        move || {
            for key in NEW {
                set(&store, key, "n");
            }
            for key in CHURN.into_iter().rev() {
                store.delete(key.as_bytes());
            }
        }
    });
    let mut returned: HashSet<CompactBytes> = HashSet::new();
    let mut cursor = 0;
    loop {
        let (next, keys) = store.scan(cursor, None, count);
        returned.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    churner.join().unwrap();
    grower.join().unwrap();
    for key in STABLE {
        assert!(
            returned.contains(key.as_bytes()),
            "{config:?} COUNT {count}: stable key {key} was never returned; the walk returned {returned:?}"
        );
    }
}

#[test]
fn a_scan_walk_returns_every_key_present_throughout() {
    for config in ENGINES {
        for count in [1, 2] {
            explore(ENGINE_ITERATIONS, move || scan_returns_every_stable_key(config, count));
        }
    }
}

/// Keys that exist before the migration starts.
const OLD: [&str; 2] = ["old:0", "old:1"];
/// A key created during the migration.
const CREATED: &str = "created";

/// Two clients increment two keys that exist from the start and one that does not, a third
/// reads, while the store migrates from `from` to `to`. Every increment must return a
/// distinct next value (none lost), a key that exists must never read as absent, and reads
/// never go back in time.
fn migration_keeps_every_increment(from: EngineConfig, to: EngineConfig) {
    let store = store(from);
    for key in OLD {
        set(&store, key, "0");
    }
    let incrementers: Vec<_> = (0..2)
        .map(|client| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                [OLD[client], CREATED, OLD[client]]
                    .map(|key| (key, store.incr_by(key.as_bytes(), 1).expect("counters hold integers")))
            })
        })
        .collect();
    let reader = thread::spawn({
        let store = Arc::clone(&store);
        move || [OLD[0], OLD[1], OLD[0]].map(|key| (key, value_of(&store, key)))
    });
    store.migrate(to).expect("valid engine");
    check_increments(
        &format!("{from:?} -> {to:?}"),
        reader.join().unwrap(),
        incrementers.into_iter().flat_map(|incrementer| incrementer.join().unwrap()),
        |key| value_of(&store, key),
    );
    assert_eq!(store.engine_status().running, to);
}

/// What both migration tests check once their clients are done: a key that existed never
/// read as absent and its reads never went back; each key's increments returned 1..=n in
/// some order (none lost) and the key now holds n.
fn check_increments<K, V>(
    label: &str,
    reads: impl IntoIterator<Item = (K, Option<V>)>,
    increments: impl IntoIterator<Item = (K, V)>,
    value_now: impl Fn(K) -> Option<V>,
) where
    K: Copy + Eq + std::hash::Hash + std::fmt::Display,
    V: Copy + Ord + Default + std::fmt::Debug + TryFrom<usize>,
{
    let mut last_read = HashMap::new();
    for (key, value) in reads {
        let value = value.unwrap_or_else(|| panic!("{label}: key {key} read as absent during the migration"));
        let previous = last_read.insert(key, value).unwrap_or_default();
        assert!(value >= previous, "{label}: key {key} read {value:?} after {previous:?}");
    }
    let mut returned: HashMap<K, Vec<V>> = HashMap::new();
    for (key, value) in increments {
        returned.entry(key).or_default().push(value);
    }
    let count = |n: usize| V::try_from(n).unwrap_or_else(|_| panic!("{n} increments fit the counter type"));
    for (key, mut values) in returned {
        values.sort_unstable();
        let expected: Vec<V> = (1..=values.len()).map(count).collect();
        assert_eq!(values, expected, "{label}: increments of key {key} lost an update");
        assert_eq!(value_now(key), Some(count(values.len())), "{label}: key {key} lost an increment");
    }
}

#[test]
fn a_live_migration_loses_no_increment_and_no_key() {
    // Each configuration migrates to the next: every strategy to another, one shard to two
    // and two to one.
    for (index, from) in ENGINES.into_iter().enumerate() {
        let to = ENGINES[(index + 1) % ENGINES.len()];
        explore(ENGINE_ITERATIONS, move || migration_keeps_every_increment(from, to));
    }
}

/// A reader of the counters (DBSIZE's keys, the memory used) reads them twice while the store
/// migrates from `from` to `to`, with no writer: each reading must be the counters before,
/// each key counted once, though the mover moves a chunk's counters from the source to the
/// target in two steps (`Migration::counters` reads them between transfers).
fn counters_count_each_key_once(from: EngineConfig, to: EngineConfig) {
    let store = store(from);
    for key in OLD.into_iter().chain([CREATED]) {
        set(&store, key, "0");
    }
    let before = (store.stats().keys, store.memory_bytes());
    let reader = thread::spawn({
        let store = Arc::clone(&store);
        move || [(); 2].map(|()| (store.stats().keys, store.memory_bytes()))
    });
    store.migrate(to).expect("valid engine");
    for read in reader.join().unwrap() {
        assert_eq!(read, before, "{from:?} -> {to:?}: counters read during the migration");
    }
}

#[test]
fn counters_read_during_a_live_migration_count_each_key_once() {
    for (index, from) in ENGINES.into_iter().enumerate() {
        let to = ENGINES[(index + 1) % ENGINES.len()];
        explore(ENGINE_ITERATIONS, move || counters_count_each_key_once(from, to));
    }
}

/// Counters that one writer increments in turn, `LEAD` first: at every instant `LEAD` equals
/// `TRAIL` or is one ahead.
const LEAD: &str = "lead";
const TRAIL: &str = "trail";
/// A key deleted, then `BORN` created: no instant has both.
const DOOMED: &str = "doomed";
const BORN: &str = "born";
/// A key nobody writes: every snapshot holds it.
const UNTOUCHED: &str = "untouched";

/// Writers go on while a migration from `from` to `to` and a snapshot run at the same time
/// (they take turns: store-wide walks run one at a time). The snapshot must hand over each
/// key once, and one instant of the store: the writers' invariants hold in it.
fn snapshot_is_one_instant(from: EngineConfig, to: EngineConfig) {
    let store = store(from);
    for key in [LEAD, TRAIL] {
        set(&store, key, "0");
    }
    set(&store, DOOMED, "d");
    set(&store, UNTOUCHED, "u");
    let counter = thread::spawn({
        let store = Arc::clone(&store);
        move || {
            for _ in 0..2 {
                for key in [LEAD, TRAIL] {
                    store.incr_by(key.as_bytes(), 1).expect("counters hold integers");
                }
            }
        }
    });
    let replacer = thread::spawn({
        let store = Arc::clone(&store);
        move || {
            store.delete(DOOMED.as_bytes());
            set(&store, BORN, "b");
        }
    });
    let migrator = thread::spawn({
        let store = Arc::clone(&store);
        move || store.migrate(to).expect("valid engine")
    });
    let mut taken: HashMap<String, Vec<u8>> = HashMap::new();
    store
        .snapshot()
        .for_each(|entry| {
            let key = String::from_utf8(entry.key.to_vec()).expect("the test's keys are text");
            let previous =
                taken.insert(key.clone(), entry.value.as_string().expect("the test stores strings").to_vec());
            assert!(previous.is_none(), "{from:?} -> {to:?}: the snapshot handed over {key} twice");
            Ok::<(), ()>(())
        })
        .expect("no flush, and emitting never fails");
    for thread in [counter, replacer] {
        thread.join().unwrap();
    }
    migrator.join().unwrap();
    let counter_at_cut = |key: &str| -> i64 {
        let value = taken.get(key).unwrap_or_else(|| panic!("{from:?} -> {to:?}: the snapshot has no {key}"));
        cstore::engine::parse_integer(value).expect("counters hold integers")
    };
    let (lead, trail) = (counter_at_cut(LEAD), counter_at_cut(TRAIL));
    assert!(lead == trail || lead == trail + 1, "{from:?} -> {to:?}: the snapshot has {LEAD} {lead}, {TRAIL} {trail}");
    assert!(
        !(taken.contains_key(DOOMED) && taken.contains_key(BORN)),
        "{from:?} -> {to:?}: the snapshot has {DOOMED}, deleted before {BORN} was created, beside {BORN}"
    );
    assert!(taken.contains_key(UNTOUCHED), "{from:?} -> {to:?}: the snapshot lost {UNTOUCHED}");
}

#[test]
fn a_snapshot_beside_a_migration_hands_over_one_instant() {
    for (index, from) in ENGINES.into_iter().enumerate() {
        let to = ENGINES[(index + 1) % ENGINES.len()];
        explore(ENGINE_ITERATIONS, move || snapshot_is_one_instant(from, to));
    }
}

/// A writer increments a counter in database 0, then the same counter in database 1, twice,
/// while every database migrates; a snapshot of the databases is one instant of all of them
/// (`Databases::snapshot`, gates.rs's `install_all_behind_gates`) when database 0's count is
/// database 1's or one more. `together: false` cuts each database on its own, one after the
/// other: the broken control.
fn databases_are_cut_at_one_instant(from: EngineConfig, to: EngineConfig, together: bool) {
    let databases = Arc::new(Store::builder().config(from).build_databases(2).expect("valid engine"));
    for number in 0..2 {
        set(databases.get(number).unwrap(), LEAD, "0");
    }
    let counter = thread::spawn({
        let databases = Arc::clone(&databases);
        move || {
            for _ in 0..2 {
                for number in 0..2 {
                    databases.get(number).unwrap().incr_by(LEAD.as_bytes(), 1).expect("counters hold integers");
                }
            }
        }
    });
    let migrator = thread::spawn({
        let databases = Arc::clone(&databases);
        move || databases.migrate(to).expect("valid engine")
    });
    let mut counts = [0i64; 2];
    let mut take = |number: usize, cut: cstore::engine::PointInTime<'_>| {
        cut.for_each(|entry| {
            let value = entry.value.as_string().expect("the test stores strings");
            counts[number] = cstore::engine::parse_integer(value).expect("counters hold integers");
            Ok::<(), ()>(())
        })
        .expect("no flush, and emitting never fails");
    };
    if together {
        databases.snapshot().into_iter().for_each(|(number, cut)| take(number, cut));
    } else {
        for number in 0..2 {
            take(number, databases.get(number).unwrap().snapshot());
        }
    }
    counter.join().unwrap();
    migrator.join().unwrap();
    let [zero, one] = counts;
    assert!(zero == one || zero == one + 1, "{from:?} -> {to:?}: the databases were cut apart: {counts:?}");
}

#[test]
fn a_snapshot_cuts_every_database_at_one_instant() {
    for (index, from) in ENGINES.into_iter().enumerate() {
        let to = ENGINES[(index + 1) % ENGINES.len()];
        explore(ENGINE_ITERATIONS, move || databases_are_cut_at_one_instant(from, to, true));
    }
}

#[test]
#[should_panic(expected = "the databases were cut apart")]
fn databases_cut_one_after_the_other_are_caught() {
    explore(ENGINE_ITERATIONS, || databases_are_cut_at_one_instant(ENGINES[0], ENGINES[1], false));
}

/// Two accounts whose total every transaction keeps: a transfer moves one unit between them.
const ACCOUNTS: [&str; 2] = ["account:a", "account:b"];
const TOTAL: i64 = 20;

/// One transfer, as a transaction when `atomically` (else as two separate increments: the
/// broken control).
fn transfer(store: &Store, atomically: bool) {
    let _held = atomically.then(|| store.exclusive());
    store.incr_by(ACCOUNTS[0].as_bytes(), -1).expect("accounts hold integers");
    store.incr_by(ACCOUNTS[1].as_bytes(), 1).expect("accounts hold integers");
}

/// Transfers run while a reader reads both accounts under a pass and a snapshot is taken, and,
/// with `to`, while the store migrates: the reader and the snapshot must each see the total.
fn transactions_are_seen_whole(from: EngineConfig, to: Option<EngineConfig>, atomically: bool) {
    let store = store(from);
    for account in ACCOUNTS {
        set(&store, account, "10");
    }
    let transfers = thread::spawn({
        let store = Arc::clone(&store);
        move || {
            for _ in 0..2 {
                transfer(&store, atomically);
            }
        }
    });
    let migrator = to.map(|to| {
        let store = Arc::clone(&store);
        thread::spawn(move || store.migrate(to).expect("valid engine"))
    });
    for _ in 0..2 {
        let pass = store.pass();
        let balances: Vec<Option<i64>> = ACCOUNTS.iter().map(|account| value_of(&store, account)).collect();
        drop(pass);
        let total: i64 = balances.iter().map(|balance| balance.expect("the accounts exist")).sum();
        assert_eq!(total, TOTAL, "{from:?} -> {to:?}: a transaction seen split: by a reader: {balances:?}");
    }
    let mut total = 0;
    store
        .snapshot()
        .for_each(|entry| {
            total += cstore::engine::parse_integer(entry.value.as_string().expect("accounts are strings"))
                .expect("accounts hold integers");
            Ok::<(), ()>(())
        })
        .expect("no flush, and emitting never fails");
    assert_eq!(total, TOTAL, "{from:?} -> {to:?}: a transaction seen split: by a snapshot's cut");
    transfers.join().unwrap();
    if let Some(migrator) = migrator {
        migrator.join().unwrap();
    }
}

#[test]
fn every_reader_and_snapshot_sees_a_transaction_whole() {
    for (index, from) in ENGINES.into_iter().enumerate() {
        let to = ENGINES[(index + 1) % ENGINES.len()];
        explore(ENGINE_ITERATIONS, move || transactions_are_seen_whole(from, None, true));
        explore(ENGINE_ITERATIONS, move || transactions_are_seen_whole(from, Some(to), true));
    }
}

/// Whichever check the scheduler trips first (a reader's or the snapshot's), the split is
/// caught.
#[test]
#[should_panic(expected = "a transaction seen split")]
fn a_transfer_made_without_exclusivity_is_caught() {
    explore(ITERATIONS, || transactions_are_seen_whole(ENGINES[1], None, false));
}

/// What the sweeper thread did, to check the stop protocol against.
#[derive(Default)]
struct PassLog {
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// Steps in one pass; each takes the store's lock once, as `Store::sweep_pass` holds a shard
/// for one chunk per step.
const PASS_STEPS: usize = 2;

/// `Sweeper` of sweeper.rs, over shuttle's channel and threads.
struct ModelSweeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ModelSweeper {
    /// `Sweeper::start`. The real loop is `while let Err(Timeout) = stopped.recv_timeout(..)`;
    /// shuttle's `recv_timeout` never times out, so each interval is modelled as yielding to
    /// the other threads (the sweeper sleeps) and then polling: `Empty` is the timeout, and a
    /// message or a dropped sender ends the loop, as they do in the real one.
    fn start(store: Arc<Mutex<u64>>, log: Arc<PassLog>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            while let Err(TryRecvError::Empty) = wait_one_interval(&stopped) {
                // `store.sweep_expired()`, then `on_pass(report)`.
                log.started.fetch_add(1, Ordering::SeqCst);
                for _ in 0..PASS_STEPS {
                    *store.lock().unwrap() += 1;
                }
                log.finished.fetch_add(1, Ordering::SeqCst);
            }
        });
        ModelSweeper { stop: Some(stop), thread: Some(thread) }
    }

    /// `Sweeper::stop`.
    fn stop(mut self) {
        self.shutdown();
    }

    /// `Sweeper::shutdown`: hang up the channel, then wait for the thread.
    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `impl Drop for Sweeper`.
impl Drop for ModelSweeper {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_one_interval(stopped: &mpsc::Receiver<()>) -> Result<(), TryRecvError> {
    thread::yield_now();
    stopped.try_recv()
}

/// Starts a sweeper while a client uses the store, ends it with `end`, and checks that when
/// `end` returns no pass is in progress and none starts afterwards. A protocol that never
/// ended would fail too: shuttle reports a deadlock or runs out of steps.
fn ending_the_sweeper_ends_every_pass(end: fn(ModelSweeper)) {
    let store = Arc::new(Mutex::new(0));
    let log = Arc::new(PassLog::default());
    let sweeper = ModelSweeper::start(Arc::clone(&store), Arc::clone(&log));
    let client = thread::spawn({
        let store = Arc::clone(&store);
        move || {
            for _ in 0..2 {
                *store.lock().unwrap() += 1;
            }
        }
    });
    thread::yield_now();
    end(sweeper);
    let started = log.started.load(Ordering::SeqCst);
    assert_eq!(started, log.finished.load(Ordering::SeqCst), "stopping returned while a pass was in progress");
    // Let every other thread run, then look again.
    client.join().unwrap();
    for _ in 0..3 {
        thread::yield_now();
    }
    assert_eq!(log.started.load(Ordering::SeqCst), started, "a pass started after stopping returned");
}

#[test]
fn stopping_the_sweeper_waits_for_its_pass_and_ends_it() {
    explore(ITERATIONS, || ending_the_sweeper_ends_every_pass(ModelSweeper::stop));
}

#[test]
fn dropping_the_sweeper_waits_for_its_pass_and_ends_it() {
    explore(ITERATIONS, || ending_the_sweeper_ends_every_pass(drop));
}

#[test]
#[should_panic(expected = "stopping returned")]
fn a_stop_that_does_not_join_is_caught() {
    explore(ITERATIONS, || {
        ending_the_sweeper_ends_every_pass(|mut sweeper| {
            // Detach the thread, so that stopping only hangs up the channel.
            drop(sweeper.thread.take());
            sweeper.stop();
        })
    });
}

/// A key of the migration model.
type Key = u32;

/// Which engines a migration model's operation sees: `Store`'s `Layout` (`Stable(source)`,
/// `Migrating`, `Stable(target)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Source,
    Migrating,
    Target,
}

/// The `ArcSwap<Layout>` of store.rs: a load takes a reference to the current layout and a
/// swap replaces it, each in one atomic step, and after a swap the old layout's count covers
/// every operation still holding it (arc-swap pays its readers' debts on a swap), which is
/// what `wait_until_unused` in migration.rs waits on.
struct LayoutCell {
    state: Mutex<(Phase, HashMap<u8, usize>)>,
}

impl LayoutCell {
    fn load(&self) -> Phase {
        let mut state = self.state.lock().unwrap();
        let phase = state.0;
        *state.1.entry(phase as u8).or_default() += 1;
        phase
    }

    fn release(&self, phase: Phase) {
        *self.state.lock().unwrap().1.entry(phase as u8).or_default() -= 1;
    }

    fn swap_and_wait(&self, next: Phase, wait: bool) {
        let old = std::mem::replace(&mut self.state.lock().unwrap().0, next);
        while wait && self.state.lock().unwrap().1.get(&(old as u8)).copied().unwrap_or(0) > 0 {
            thread::yield_now();
        }
    }
}

/// What a broken migration gets wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MigrationFlaw {
    None,
    /// `Migration::move_key` removing from the source before inserting into the target.
    RemoveBeforeInsert,
    /// Writers not taking the gate (`Migration::update`), so the mover races them.
    NoGate,
    /// `Store::migrate` not waiting for operations that still hold the previous layout.
    NoWaitForOldLayout,
    /// `Store::migrate` letting writers on the new layout in while it waits for the old one's.
    GatesOpenWhileWaiting,
}

/// `Migration` of migration.rs over one shard per engine: `source` and `target` stand for
/// the engines' maps, `gate` for the source shard's gate.
struct MigrationModel {
    layout: LayoutCell,
    source: Mutex<HashMap<Key, u64>>,
    target: Mutex<HashMap<Key, u64>>,
    gate: RwLock<()>,
    flaw: MigrationFlaw,
}

impl MigrationModel {
    fn new(initial: &[(Key, u64)], flaw: MigrationFlaw) -> Self {
        MigrationModel {
            layout: LayoutCell { state: Mutex::new((Phase::Source, HashMap::new())) },
            source: Mutex::new(initial.iter().copied().collect()),
            target: Mutex::new(HashMap::new()),
            gate: RwLock::new(()),
            flaw,
        }
    }

    /// `Store::read`: the source while it has the key, else the target.
    fn get(&self, key: Key) -> Option<u64> {
        let phase = self.layout.load();
        let value = match phase {
            Phase::Source => self.source.lock().unwrap().get(&key).copied(),
            Phase::Migrating => {
                let in_source = self.source.lock().unwrap().get(&key).copied();
                in_source.or_else(|| self.target.lock().unwrap().get(&key).copied())
            }
            Phase::Target => self.target.lock().unwrap().get(&key).copied(),
        };
        self.layout.release(phase);
        value
    }

    /// `Store::update` with INCR: where the key lives, under the gate while migrating.
    fn incr(&self, key: Key) -> u64 {
        let increment = |map: &Mutex<HashMap<Key, u64>>| {
            let mut map = map.lock().unwrap();
            let value = map.entry(key).or_default();
            *value += 1;
            *value
        };
        let phase = self.layout.load();
        let value = match phase {
            Phase::Source => increment(&self.source),
            Phase::Target => increment(&self.target),
            Phase::Migrating => {
                let _gate = (self.flaw != MigrationFlaw::NoGate).then(|| self.gate.read().unwrap());
                // `update_if_present` on the source, else `update` on the target.
                let in_source = {
                    let mut source = self.source.lock().unwrap();
                    source.get_mut(&key).map(|value| {
                        *value += 1;
                        *value
                    })
                };
                in_source.unwrap_or_else(|| increment(&self.target))
            }
        };
        self.layout.release(phase);
        value
    }

    /// `Store::migrate`: publish the migration, wait for the old layout's users, move every
    /// key one chunk (here: one key) at a time under the gate, publish the target.
    fn migrate(&self) {
        let wait = self.flaw != MigrationFlaw::NoWaitForOldLayout;
        let closed = (self.flaw != MigrationFlaw::GatesOpenWhileWaiting).then(|| self.gate.write().unwrap());
        self.layout.swap_and_wait(Phase::Migrating, wait);
        drop(closed);
        let keys: Vec<Key> = self.source.lock().unwrap().keys().copied().collect();
        for key in keys {
            let _gate = self.gate.write().unwrap();
            let Some(value) = self.source.lock().unwrap().get(&key).copied() else { continue };
            if self.flaw == MigrationFlaw::RemoveBeforeInsert {
                self.source.lock().unwrap().remove(&key);
                thread::yield_now();
                self.target.lock().unwrap().insert(key, value);
            } else {
                self.target.lock().unwrap().insert(key, value);
                self.source.lock().unwrap().remove(&key);
            }
        }
        self.layout.swap_and_wait(Phase::Target, wait);
    }
}

/// Two clients increment two keys that exist from the start and one that does not, a third
/// reads, while the store migrates. Every increment must return a distinct next value (none
/// lost), a key that exists must never read as absent, and reads never go back in time.
fn model_migration_keeps_every_increment(flaw: MigrationFlaw) {
    const OLD: [Key; 2] = [1, 2];
    const NEW: Key = 3;
    let model = Arc::new(MigrationModel::new(&[(OLD[0], 0), (OLD[1], 0)], flaw));
    let incrementers: Vec<_> = (0..2)
        .map(|client| {
            let model = Arc::clone(&model);
            thread::spawn(move || [OLD[client], NEW, OLD[client]].map(|key| (key, model.incr(key))))
        })
        .collect();
    let reader = thread::spawn({
        let model = Arc::clone(&model);
        move || [OLD[0], OLD[1], OLD[0]].map(|key| (key, model.get(key)))
    });
    model.migrate();
    check_increments(
        "broken migration",
        reader.join().unwrap(),
        incrementers.into_iter().flat_map(|incrementer| incrementer.join().unwrap()),
        |key| model.get(key),
    );
}

#[test]
fn the_migration_model_loses_no_increment_and_no_key() {
    explore(ITERATIONS, || model_migration_keeps_every_increment(MigrationFlaw::None));
}

// shuttle seeds its random scheduler afresh on each run, so a flaw may show as any of the
// violations the scenario checks: each of these expects their common prefix. Like every
// negative control here, each explores under the random scheduler and then under PCT, so
// that a flaw goes unseen only if both miss it (the random one alone missed this one once
// in CI, in 10,000 schedules).
#[test]
#[should_panic(expected = "broken migration")]
fn a_migration_that_removes_before_it_inserts_is_caught() {
    explore(ITERATIONS, || model_migration_keeps_every_increment(MigrationFlaw::RemoveBeforeInsert));
}

#[test]
#[should_panic(expected = "broken migration")]
fn a_migration_without_the_gate_is_caught() {
    explore(ITERATIONS, || model_migration_keeps_every_increment(MigrationFlaw::NoGate));
}

#[test]
#[should_panic(expected = "broken migration")]
fn a_migration_that_does_not_wait_for_the_old_layout_is_caught() {
    explore(ITERATIONS, || model_migration_keeps_every_increment(MigrationFlaw::NoWaitForOldLayout));
}

#[test]
#[should_panic(expected = "broken migration")]
fn a_migration_that_lets_new_writers_in_while_old_ones_run_is_caught() {
    explore(ITERATIONS, || model_migration_keeps_every_increment(MigrationFlaw::GatesOpenWhileWaiting));
}
