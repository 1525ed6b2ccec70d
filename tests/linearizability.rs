//! Evidence that every single-key command is linearizable under every strategy and shard count.
//!
//! Threads run random single-key commands, and moves of the store's injected clock, against a
//! store, recording for each command the instants (from one global atomic counter) just before
//! it was called and just after it returned, and the reply it got. Deadlines lie a few
//! milliseconds ahead and the clock moves by a few milliseconds, so keys expire while commands
//! race; each history uses 24 keys, fresh ones under a new prefix in a store that keeps every
//! earlier history's keys, so the maps grow (and resize) while histories run. A Wing–Gong checker with Lowe's memoization
//! (`linearizability/checker.rs`) then searches, key by key, for an order of the commands that
//! respects real time and, replayed on the sequential model of a key (`linearizability/model.rs`),
//! gives every command the reply it observed. Each key's sub-history, with every clock move,
//! is checked on its own: a history of the whole store that is linearizable has linearizable
//! projections, so every rejection is a real violation.
//!
//! Histories also run while the store migrates live between every ordered pair of strategies,
//! with shard counts going up and down (`engine/migration.rs`), and a deliberately broken
//! migration (copy every key, then switch, losing the writes in between) must be rejected.
//!
//! CI checks 5,000 histories per strategy, split over the shard counts, and 3,000 during
//! migrations (a few seconds in a debug build). For a longer soak run, set `CSTORE_LIN_HISTORIES` to the number of histories
//! per strategy, e.g.
//! `CSTORE_LIN_HISTORIES=100000 cargo test --release --test linearizability -- --nocapture`.

mod common;

#[path = "linearizability/checker.rs"]
mod checker;
#[path = "linearizability/model.rs"]
mod model;

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cstore::engine::{
    Clock, CompactBytes, EngineConfig, ExpireCondition, ManualClock, SetCondition, SetExpiry, SetOptions, SetOutcome,
    Store, StoreError, Strategy, Ttl, TtlUpdate, parse_integer,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use checker::{Operation, check};
use common::{CLOCK_START_MS, SHARD_COUNTS, with_each_configuration};
use model::{Command, KeySpec, KeyState, Reply, Timed};

/// Histories checked per strategy when `CSTORE_LIN_HISTORIES` is not set.
const DEFAULT_HISTORIES_PER_STRATEGY: usize = 5_000;

/// Operations per strategy that must overlap another thread's operation on the same key (the
/// default run records 160,000 operations per strategy; fewer histories ask for a hundredth).
const MIN_OVERLAPPING_PER_STRATEGY: usize = 500;

/// Keys per history: most commands go to the first [`HOT_KEYS`], so that commands from
/// different threads really meet on the same key; the others make the maps grow.
const KEYS: usize = 24;
const HOT_KEYS: usize = 2;

/// A racy INCR is usually caught within a handful of histories; this many without a rejection
/// means the checker has lost its teeth.
const RACY_HISTORIES_CAP: u64 = 20_000;

/// Deadlines lie from 1 ms in the past to this far ahead of the clock, and the clock moves
/// by up to 3 ms at a time: keys expire during histories.
const MAX_DELAY_MS: u64 = 4;

/// The shape of one recorded history.
struct Workload {
    threads: usize,
    commands_per_thread: usize,
}

/// Enough threads to outnumber the two cores CI has, so preemption adds interleavings that
/// parallelism alone would not produce, and few enough commands to keep each check instant.
const CONCURRENT: Workload = Workload { threads: 4, commands_per_thread: 8 };

type KeyHistory = Vec<Operation<Timed, Reply>>;

/// Something single-key commands can be run against: the real store, or a broken one. Clock
/// moves never reach it: the driver moves the clock itself.
trait Target: Sync {
    fn run(&self, key: &Bytes, command: &Command) -> Reply;
}

impl Target for Store {
    fn run(&self, key: &Bytes, command: &Command) -> Reply {
        match command {
            Command::Get => Reply::Value(self.get(key)),
            Command::Set { value, condition, return_previous, expiry } => {
                let options = SetOptions { condition: *condition, expiry: *expiry, return_previous: *return_previous };
                Reply::Set(self.set(key, value.clone(), options))
            }
            Command::Delete => Reply::Flag(self.delete(key)),
            Command::Incr => Reply::Integer(self.incr_by(key, 1)),
            Command::IncrByFloat { increment } => Reply::Float(self.incr_by_float(key, *increment)),
            Command::Expire { deadline, only_if_no_ttl } => {
                let condition = ExpireCondition { nx: *only_if_no_ttl, ..ExpireCondition::default() };
                Reply::Flag(self.expire_at(key, *deadline, condition))
            }
            Command::Ttl => Reply::Ttl(self.ttl(key)),
            Command::GetDel => Reply::Value(self.getdel(key)),
            Command::GetEx { update } => Reply::Value(self.getex(key, *update)),
            Command::Append { suffix } => Reply::Length(self.append(key, suffix)),
            Command::SetRange { offset, patch } => Reply::Length(self.setrange(key, *offset, patch)),
            Command::Persist => Reply::Flag(self.persist(key)),
            Command::HSet { field, value } => Reply::Length(self.hset(key, &[(field, value)])),
            Command::HDel { field } => Reply::Length(self.hdel(key, &[field])),
            Command::HGet { field } => {
                Reply::Value(self.read_hash(key, |hash| hash.and_then(|h| h.get(field)).cloned()))
            }
            Command::HLen => Reply::Length(self.read_hash(key, |hash| hash.map_or(0, |h| h.len()))),
            Command::HIncrBy { field } => Reply::Integer(self.hincr_by(key, field, 1)),
            Command::SAdd { member } => Reply::Length(self.sadd(key, &[member])),
            Command::SRem { member } => Reply::Length(self.srem(key, &[member])),
            Command::SIsMember { member } => {
                Reply::Length(self.read_set(key, |set| usize::from(set.is_some_and(|s| s.contains(member)))))
            }
            Command::SCard => Reply::Length(self.read_set(key, |set| set.map_or(0, |s| s.len()))),
            Command::SPop => Reply::Value(self.spop(key, 1).map(|popped| popped.into_iter().next())),
            Command::Advance { .. } => unreachable!("the driver moves the clock"),
        }
    }
}

/// A store on `clock`.
fn store_on(clock: &ManualClock, strategy: Strategy, shards: u64) -> Store {
    let clock = Clock::Manual(clock.clone());
    Store::builder().strategy(strategy).shards(shards).clock(clock).build().expect("valid configuration")
}

/// A store whose INCR is a read followed by a separate write, the classic lost update. Run
/// alone it behaves exactly like the real store; run concurrently it must be caught.
struct RacyIncrStore {
    store: Store,
}

impl Target for RacyIncrStore {
    fn run(&self, key: &Bytes, command: &Command) -> Reply {
        if *command != Command::Incr {
            return self.store.run(key, command);
        }
        let current = match self.store.get(key) {
            Err(error) => return Reply::Integer(Err(error)),
            Ok(None) => 0,
            Ok(Some(value)) => match parse_integer(&value) {
                Some(number) => number,
                None => return Reply::Integer(Err(StoreError::NotAnInteger)),
            },
        };
        // Give another thread the chance to slip in between the read and the write.
        thread::yield_now();
        let Some(next) = current.checked_add(1) else { return Reply::Integer(Err(StoreError::Overflow)) };
        let keep_ttl = SetOptions { expiry: SetExpiry::Keep, ..SetOptions::default() };
        self.store.set(key, next.to_string(), keep_ttl).unwrap();
        Reply::Integer(Ok(next))
    }
}

/// A store whose GET judges expiry by a clock reading taken after it loaded the entry: the
/// race issue 15 found (a key that was never absent read as absent when its entry expired
/// between the load and the reading and a write without a deadline had replaced it). Run
/// alone it behaves like the real store; with clock moves in the histories it must be caught.
struct LateClockGet {
    store: Store,
    clock: ManualClock,
}

impl Target for LateClockGet {
    fn run(&self, key: &Bytes, command: &Command) -> Reply {
        if *command != Command::Get {
            return self.store.run(key, command);
        }
        let loaded = self.store.get_with_deadline(key);
        // Give a write and a clock move the chance to slip in between.
        thread::yield_now();
        let now = self.clock.now_ms();
        let live = loaded.filter(|(_, deadline)| deadline.is_none_or(|at| now <= at));
        Reply::Value(live.map(|(value, _)| value.as_string().cloned()).transpose())
    }
}

/// A target's keys under a prefix, so that one long-lived store serves many histories, each
/// starting from absent keys.
struct Namespaced<'a, T> {
    target: &'a T,
    prefix: String,
}

impl<T: Target> Target for Namespaced<'_, T> {
    fn run(&self, key: &Bytes, command: &Command) -> Reply {
        let mut namespaced = self.prefix.clone().into_bytes();
        namespaced.extend_from_slice(key);
        self.target.run(&Bytes::from(namespaced), command)
    }
}

/// A broken live migration: copy every key into a second store, then switch to it. Writes
/// that land in the old store between the copy and the switch are lost.
struct CopyThenSwitch {
    stores: [Store; 2],
    current: AtomicUsize,
}

impl CopyThenSwitch {
    fn new(clock: &ManualClock) -> Self {
        let store = || store_on(clock, Strategy::RwLock, 16);
        CopyThenSwitch { stores: [store(), store()], current: AtomicUsize::new(0) }
    }

    fn migrate(&self) {
        let from = self.current.load(Ordering::SeqCst);
        let (source, target) = (&self.stores[from], &self.stores[1 - from]);
        target.clear();
        for key in source.keys(b"*") {
            let Some(value) = source.value(&key) else { continue };
            let expiry = match source.ttl(&key) {
                Ttl::ExpiresIn(ms) => SetExpiry::At(source.now_ms() + ms),
                Ttl::Persistent | Ttl::Missing => SetExpiry::Clear,
            };
            target.set(&key, value, SetOptions { expiry, ..SetOptions::default() }).unwrap();
        }
        // Let writers reach the old store before the switch.
        thread::yield_now();
        self.current.store(1 - from, Ordering::SeqCst);
    }
}

impl Target for CopyThenSwitch {
    fn run(&self, key: &Bytes, command: &Command) -> Reply {
        self.stores[self.current.load(Ordering::SeqCst)].run(key, command)
    }
}

/// A value for SET: mostly small integers (so INCR and APPEND of digits have numbers to work
/// on), sometimes text (so INCR meets `NotAnInteger`).
fn random_value(rng: &mut SmallRng) -> CompactBytes {
    let number = rng.random_range(0..100);
    CompactBytes::from(if rng.random_bool(0.7) { number.to_string() } else { format!("v{number}") })
}

/// A deadline relative to the clock when the command runs: `offset` ms after one before it
/// (see [`resolve`]).
fn random_offset(rng: &mut SmallRng) -> u64 {
    rng.random_range(0..=MAX_DELAY_MS + 1)
}

/// A planned command; its deadlines are offsets until [`resolve`] makes them absolute.
fn random_command(rng: &mut SmallRng) -> Command {
    let set = |rng: &mut SmallRng, condition| Command::Set {
        value: random_value(rng),
        condition,
        return_previous: rng.random_bool(0.5),
        expiry: match rng.random_range(0..10) {
            0..5 => SetExpiry::Clear,
            5..7 => SetExpiry::Keep,
            _ => SetExpiry::At(random_offset(rng)),
        },
    };
    let text = |rng: &mut SmallRng| CompactBytes::from(if rng.random_bool(0.5) { "7" } else { "x" });
    // Two fields or members, so that commands meet on them; "x" never counts.
    let element = |rng: &mut SmallRng| CompactBytes::from(if rng.random_bool(0.5) { "a" } else { "b" });
    if rng.random_bool(0.3) {
        return match rng.random_range(0..10) {
            0 => Command::HSet { field: element(rng), value: text(rng) },
            1 => Command::HDel { field: element(rng) },
            2 => Command::HGet { field: element(rng) },
            3 => Command::HLen,
            4 => Command::HIncrBy { field: element(rng) },
            5 => Command::SAdd { member: element(rng) },
            6 => Command::SRem { member: element(rng) },
            7 => Command::SIsMember { member: element(rng) },
            8 => Command::SCard,
            _ => Command::SPop,
        };
    }
    match rng.random_range(0..18) {
        0 => Command::Get,
        1 | 2 => set(rng, SetCondition::Always),
        3 => set(rng, SetCondition::IfAbsent),
        4 => set(rng, SetCondition::IfPresent),
        // INCR is the read-modify-write most likely to lose updates, so it comes up twice as often.
        5 | 6 => Command::Incr,
        7 => Command::IncrByFloat { increment: if rng.random_bool(0.5) { 0.5 } else { 1.25 } },
        8 => Command::Delete,
        9 => Command::Expire { deadline: random_offset(rng), only_if_no_ttl: rng.random_bool(0.3) },
        10 => Command::Ttl,
        11 => Command::GetDel,
        12 => Command::GetEx {
            update: match rng.random_range(0..3) {
                0 => TtlUpdate::Keep,
                1 => TtlUpdate::Persist,
                _ => TtlUpdate::At(random_offset(rng)),
            },
        },
        13 => Command::Append { suffix: text(rng) },
        14 => Command::SetRange { offset: rng.random_range(0..3), patch: text(rng) },
        15 => Command::Persist,
        _ => Command::Advance { ms: rng.random_range(1..=3) },
    }
}

/// `planned` with its deadline offsets made absolute at clock reading `now`, as the server
/// turns EX, PX, EXAT and PXAT into an absolute deadline: offset 0 is a deadline already past.
fn resolve(planned: &Command, now: u64) -> Command {
    let at = |offset: &u64| now - 1 + offset;
    match planned {
        Command::Set { value, condition, return_previous, expiry: SetExpiry::At(offset) } => Command::Set {
            value: value.clone(),
            condition: *condition,
            return_previous: *return_previous,
            expiry: SetExpiry::At(at(offset)),
        },
        Command::Expire { deadline, only_if_no_ttl } => {
            Command::Expire { deadline: at(deadline), only_if_no_ttl: *only_if_no_ttl }
        }
        Command::GetEx { update: TtlUpdate::At(offset) } => Command::GetEx { update: TtlUpdate::At(at(offset)) },
        other => other.clone(),
    }
}

/// One recorded history: where the clock started, and the operations of each key, clock
/// moves included in every key's.
struct History {
    start_ms: u64,
    keys: Vec<KeyHistory>,
}

/// Runs one history against `target`, whose clock is `clock`: each thread runs its own random
/// plan (drawn from `seed`) once all threads are ready.
fn record_history(target: &impl Target, clock: &ManualClock, workload: &Workload, seed: u64) -> History {
    let mut rng = SmallRng::seed_from_u64(seed);
    let plans: Vec<Vec<(usize, Command)>> = (0..workload.threads)
        .map(|_| {
            (0..workload.commands_per_thread)
                .map(|_| {
                    let key =
                        if rng.random_bool(0.7) { rng.random_range(0..HOT_KEYS) } else { rng.random_range(0..KEYS) };
                    (key, random_command(&mut rng))
                })
                .collect()
        })
        .collect();
    let keys: Vec<Bytes> = (0..KEYS).map(|key| Bytes::from(format!("k{key}"))).collect();
    let start_ms = clock.now_ms();
    // One counter orders every invocation and response: a response taken before an
    // invocation means the first command finished before the second began.
    let timeline = AtomicU64::new(0);
    let start = Barrier::new(workload.threads);
    let (keys, timeline, start) = (&keys, &timeline, &start);
    let per_thread: Vec<Vec<(usize, Operation<Timed, Reply>)>> = thread::scope(|scope| {
        let recorders: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(thread, plan)| {
                scope.spawn(move || {
                    start.wait();
                    plan.into_iter()
                        .map(|(key, planned)| {
                            let since = clock.now_ms();
                            let command = resolve(&planned, since);
                            let invoked = timeline.fetch_add(1, Ordering::SeqCst);
                            let output = match command {
                                Command::Advance { ms } => {
                                    clock.advance(ms);
                                    Reply::Advanced
                                }
                                _ => target.run(&keys[key], &command),
                            };
                            let responded = timeline.fetch_add(1, Ordering::SeqCst);
                            (key, Operation { thread, invoked, responded, op: Timed { since, command }, output })
                        })
                        .collect()
                })
            })
            .collect();
        recorders.into_iter().map(|recorder| recorder.join().expect("a recording thread panicked")).collect()
    });
    let mut by_key = vec![Vec::new(); KEYS];
    for (key, operation) in per_thread.into_iter().flatten() {
        match operation.op.command {
            Command::Advance { .. } => by_key.iter_mut().for_each(|history| history.push(operation.clone())),
            _ => by_key[key].push(operation),
        }
    }
    History { start_ms, keys: by_key }
}

/// Checks every key's sub-history, each starting from an absent key.
fn check_each_key(history: &History) -> Result<(), String> {
    for (key, operations) in history.keys.iter().enumerate() {
        check::<KeySpec>(&KeyState::absent(history.start_ms), operations)
            .map_err(|violation| format!("key k{key}: {violation}"))?;
    }
    Ok(())
}

/// The operations of one key's sub-history that are commands on the key, not clock moves.
fn key_commands(operations: &KeyHistory) -> impl Iterator<Item = &Operation<Timed, Reply>> {
    operations.iter().filter(|op| !matches!(op.op.command, Command::Advance { .. }))
}

/// Clock moves in a history.
fn clock_moves(history: &History) -> usize {
    history.keys.first().map_or(0, |operations| operations.len() - key_commands(operations).count())
}

/// Commands on keys in a history.
fn commands(history: &History) -> usize {
    history.keys.iter().map(|operations| key_commands(operations).count()).sum()
}

/// How many operations overlap in real time with another thread's operation on the same key:
/// the evidence that the histories were concurrent, not a string of sequential calls.
fn overlapping_operations(history: &History) -> usize {
    history
        .keys
        .iter()
        .map(|operations| {
            key_commands(operations)
                .filter(|op| {
                    key_commands(operations).any(|other| {
                        other.thread != op.thread && other.invoked < op.responded && op.invoked < other.responded
                    })
                })
                .count()
        })
        .sum()
}

/// Histories per strategy: `CSTORE_LIN_HISTORIES`, or the CI default.
fn histories_per_strategy() -> usize {
    match std::env::var("CSTORE_LIN_HISTORIES") {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("CSTORE_LIN_HISTORIES must be a count, got {text:?}")),
        Err(_) => DEFAULT_HISTORIES_PER_STRATEGY,
    }
}

/// What was checked for one strategy, over all its shard counts.
#[derive(Default)]
struct Summary {
    strategy: Strategy,
    histories: usize,
    operations: usize,
    overlapping: usize,
    clock_moves: usize,
    elapsed: Duration,
}

impl Summary {
    fn print(&self) {
        let Summary { strategy, histories, operations, overlapping, clock_moves, elapsed } = self;
        let overlap_percent = 100.0 * *overlapping as f64 / (*operations).max(1) as f64;
        eprintln!(
            "linearizable: {strategy:<11} shards {SHARD_COUNTS:?}: {histories} histories, {operations} ops \
             ({overlap_percent:.0}% overlapping another thread's op on the same key), {clock_moves} clock moves, \
             {elapsed:.2?}"
        );
    }
}

#[test]
fn every_single_key_command_is_linearizable_under_every_configuration() {
    let per_shard_count = histories_per_strategy().div_ceil(SHARD_COUNTS.len());
    let mut summary: Option<Summary> = None;
    // Configurations come strategy by strategy, so a strategy's summary is complete (and
    // printed, even if a later strategy fails) once its last shard count has run.
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let started = Instant::now();
        let summary = match &mut summary {
            Some(summary) if summary.strategy == strategy => summary,
            other => other.insert(Summary { strategy, ..Summary::default() }),
        };
        // One store for all the histories of a configuration, each under its own prefix: the
        // keys of earlier histories stay, so the maps grow and resize while histories run.
        let clock = ManualClock::new(CLOCK_START_MS);
        let store = store_on(&clock, strategy, shards);
        for index in 0..per_shard_count {
            // Distinct plans per shard count; the same plans for every strategy.
            let seed = shards << 32 | index as u64;
            let namespaced = Namespaced { target: &store, prefix: format!("h{index}:") };
            let history = record_history(&namespaced, &clock, &CONCURRENT, seed);
            if let Err(violation) = check_each_key(&history) {
                panic!("history {index} (plan seed {seed}) under {strategy} x {shards} shards: {violation}");
            }
            summary.histories += 1;
            summary.operations += commands(&history);
            summary.overlapping += overlapping_operations(&history);
            summary.clock_moves += clock_moves(&history);
        }
        summary.elapsed += started.elapsed();
        if SHARD_COUNTS.last() == Some(&shards) {
            summary.print();
            // Histories whose commands never overlapped would prove nothing: demand the
            // concurrency, not just report it. 2-5% of operations overlap on a loaded 2-core
            // machine; this floor is a fraction of that.
            assert!(
                summary.overlapping >= MIN_OVERLAPPING_PER_STRATEGY.min(summary.operations / 100),
                "{strategy}: only {} of {} operations overlapped another thread's on the same key",
                summary.overlapping,
                summary.operations
            );
        }
    });
}

/// Histories checked while the store migrates, when `CSTORE_LIN_HISTORIES` is not set.
const DEFAULT_HISTORIES_DURING_MIGRATIONS: usize = 3_000;
/// Keys that only make each migration long enough for histories to overlap it.
const FILLER_KEYS: usize = 4_000;

/// Engines to migrate through, in an order where every strategy follows every strategy
/// (itself included, with another shard count) and shard counts go up and down.
fn migration_cycle() -> Vec<EngineConfig> {
    const SHARDS: [u32; 6] = [4096, 1, 256, 16, 2, 64];
    let strategies = Strategy::ALL.iter().flat_map(|&from| Strategy::ALL.iter().flat_map(move |&to| [from, to]));
    strategies.zip(SHARDS.iter().cycle()).map(|(strategy, &shards)| EngineConfig { strategy, shards }).collect()
}

#[test]
fn every_single_key_command_is_linearizable_during_live_migrations() {
    let histories =
        std::env::var("CSTORE_LIN_HISTORIES").map_or(DEFAULT_HISTORIES_DURING_MIGRATIONS, |_| histories_per_strategy());
    let clock = ManualClock::new(CLOCK_START_MS);
    let store = store_on(&clock, Strategy::RwLock, 16);
    for i in 0..FILLER_KEYS {
        store.set(format!("filler:{i}").as_bytes(), "x", SetOptions::default()).unwrap();
    }
    let cycle = migration_cycle();
    let recording = AtomicBool::new(true);
    let (overlapped, operations, pairs) = thread::scope(|scope| {
        let migrator = scope.spawn(|| {
            let mut pairs = BTreeSet::new();
            for target in cycle.iter().cycle().take_while(|_| recording.load(Ordering::Relaxed)) {
                let report = store.migrate(*target).expect("the cycle's engines are valid");
                pairs.insert((report.from.strategy.name(), report.to.strategy.name()));
            }
            pairs
        });
        let mut overlapped = 0;
        let mut operations = 0;
        for index in 0..histories {
            let before = store.engine_status();
            let namespaced = Namespaced { target: &store, prefix: format!("h{index}:") };
            let history = record_history(&namespaced, &clock, &CONCURRENT, index as u64);
            let after = store.engine_status();
            if let Err(violation) = check_each_key(&history) {
                panic!("history {index} during a migration from {:?}: {violation}", before.running);
            }
            let migrated = before.migration.is_some()
                || after.migration.is_some()
                || before.migrations_completed != after.migrations_completed;
            overlapped += usize::from(migrated);
            operations += commands(&history);
            for key in 0..KEYS {
                store.delete(format!("h{index}:k{key}").as_bytes());
            }
        }
        recording.store(false, Ordering::Relaxed);
        (overlapped, operations, migrator.join().expect("migrations never fail"))
    });
    eprintln!(
        "linearizable during migrations: {histories} histories, {operations} ops, {overlapped} histories overlapped a migration; strategy pairs migrated: {}",
        pairs.len()
    );
    assert!(overlapped * 4 >= histories, "only {overlapped} of {histories} histories overlapped a migration");
    assert_eq!(pairs.len(), 16, "every from->to pair of strategies migrated at least once: {pairs:?}");
}

#[test]
fn checker_rejects_a_copy_then_switch_migration() {
    let rejected = (0..RACY_HISTORIES_CAP).find_map(|seed| {
        let clock = ManualClock::new(CLOCK_START_MS);
        let broken = CopyThenSwitch::new(&clock);
        let migrating = AtomicBool::new(true);
        let history = thread::scope(|scope| {
            scope.spawn(|| {
                while migrating.load(Ordering::Relaxed) {
                    broken.migrate();
                }
            });
            let history = record_history(&broken, &clock, &CONCURRENT, seed);
            migrating.store(false, Ordering::Relaxed);
            history
        });
        check_each_key(&history).err().map(|violation| (seed, violation))
    });
    let Some((seed, violation)) = rejected else {
        panic!("the checker accepted {RACY_HISTORIES_CAP} histories of a migration that loses writes");
    };
    eprintln!(
        "copy-then-switch migration caught in history {} of at most {RACY_HISTORIES_CAP}:
{violation}",
        seed + 1
    );
}

#[test]
fn checker_rejects_a_store_with_a_racy_increment() {
    // Run alone, the racy store is indistinguishable from the real one: what gets rejected
    // below is the race, not a difference in semantics.
    let sequential = Workload { threads: 1, commands_per_thread: 32 };
    for seed in 0..200 {
        let clock = ManualClock::new(CLOCK_START_MS);
        let racy = RacyIncrStore { store: store_on(&clock, Strategy::RwLock, 16) };
        let history = record_history(&racy, &clock, &sequential, seed);
        if let Err(violation) = check_each_key(&history) {
            panic!("a sequential history of the racy store was rejected (seed {seed}): {violation}");
        }
    }

    let rejected = (0..RACY_HISTORIES_CAP).find_map(|seed| {
        let clock = ManualClock::new(CLOCK_START_MS);
        let racy = RacyIncrStore { store: store_on(&clock, Strategy::RwLock, 16) };
        check_each_key(&record_history(&racy, &clock, &CONCURRENT, seed)).err().map(|violation| (seed, violation))
    });
    let Some((seed, violation)) = rejected else {
        panic!("the checker accepted {RACY_HISTORIES_CAP} histories of a store whose INCR loses updates");
    };
    eprintln!("racy INCR caught in history {} of at most {RACY_HISTORIES_CAP}:\n{violation}", seed + 1);
}

#[test]
fn checker_rejects_a_get_that_reads_the_clock_late() {
    let rejected = (0..RACY_HISTORIES_CAP).find_map(|seed| {
        let clock = ManualClock::new(CLOCK_START_MS);
        let late = LateClockGet { store: store_on(&clock, Strategy::RwLock, 16), clock: clock.clone() };
        check_each_key(&record_history(&late, &clock, &CONCURRENT, seed)).err().map(|violation| (seed, violation))
    });
    let Some((seed, violation)) = rejected else {
        panic!("the checker accepted {RACY_HISTORIES_CAP} histories of a GET that reads the clock late");
    };
    eprintln!("late clock reading caught in history {} of at most {RACY_HISTORIES_CAP}:\n{violation}", seed + 1);
}

/// A hand-written operation: `thread` ran `command` from instant `invoked` to `responded` and
/// saw `output`; the clock read [`CLOCK_START_MS`] when it was invoked.
fn op(thread: usize, invoked: u64, responded: u64, command: Command, output: Reply) -> Operation<Timed, Reply> {
    Operation { thread, invoked, responded, op: Timed { since: CLOCK_START_MS, command }, output }
}

fn start() -> KeyState {
    KeyState::absent(CLOCK_START_MS)
}

fn set(value: &'static str) -> Command {
    set_expiring(value, SetExpiry::Clear)
}

fn set_expiring(value: &'static str, expiry: SetExpiry) -> Command {
    Command::Set { value: CompactBytes::from(value), condition: SetCondition::Always, return_previous: false, expiry }
}

fn written() -> Reply {
    Reply::Set(Ok(SetOutcome { written: true, previous: None }))
}

fn value(text: &'static str) -> Reply {
    Reply::Value(Ok(Some(CompactBytes::from(text))))
}

#[test]
fn checker_accepts_a_concurrent_linearizable_history() {
    // The SET of "5" spans every other command, so it may take effect anywhere inside it:
    // the first GET saw the key before it, the INCR (invoked later, returned first) too,
    // and the last GET after it. Only the order GET, INCR, SET, GET works.
    let history = [
        op(0, 0, 20, set("5"), written()),
        op(1, 1, 2, Command::Get, Reply::Value(Ok(None))),
        op(2, 3, 6, Command::Incr, Reply::Integer(Ok(1))),
        op(1, 7, 10, Command::Get, value("5")),
    ];
    check::<KeySpec>(&start(), &history).expect("linearizable");
}

#[test]
fn checker_rejects_a_stale_read_after_two_completed_sets() {
    let history = [
        op(0, 0, 1, set("first"), written()),
        op(1, 2, 3, set("second"), written()),
        op(2, 4, 5, Command::Get, value("first")),
    ];
    let violation = check::<KeySpec>(&start(), &history).expect_err("the GET must see the second SET");
    assert!(violation.report.contains("thread 2: Timed"), "the report lists the operations:\n{violation}");
}

#[test]
fn checker_rejects_reads_that_go_back_in_time() {
    // Both reads overlap the SET, but the one that finished first saw the new value and the
    // later one the old: each is fine alone, together they are not linearizable.
    let history = [
        op(0, 0, 10, set("new"), written()),
        op(1, 1, 2, Command::Get, value("new")),
        op(2, 3, 4, Command::Get, Reply::Value(Ok(None))),
    ];
    assert!(check::<KeySpec>(&start(), &history).is_err());
}

#[test]
fn checker_rejects_a_lost_increment() {
    let history =
        [op(0, 0, 3, Command::Incr, Reply::Integer(Ok(1))), op(1, 1, 2, Command::Incr, Reply::Integer(Ok(1)))];
    assert!(check::<KeySpec>(&start(), &history).is_err());
}

/// Expiry is checked against the clock moves of the history: a key read after the clock has
/// passed its deadline is gone, and a read that overlaps the move may see either side.
#[test]
fn checker_follows_the_clock_through_expiry() {
    let deadline = CLOCK_START_MS + 2;
    let advance = Command::Advance { ms: 3 };
    let stale = [
        op(0, 0, 1, set_expiring("v", SetExpiry::At(deadline)), written()),
        op(1, 2, 3, advance.clone(), Reply::Advanced),
        // Invoked after the move: the driver read the moved clock just before.
        Operation {
            op: Timed { since: CLOCK_START_MS + 3, command: Command::Get },
            ..op(0, 4, 5, Command::Get, value("v"))
        },
    ];
    let violation = check::<KeySpec>(&start(), &stale).expect_err("the key expired before the GET began");
    assert!(violation.report.contains("Advance"), "{violation}");
    for seen in [value("v"), Reply::Value(Ok(None))] {
        let racing = [
            op(0, 0, 1, set_expiring("v", SetExpiry::At(deadline)), written()),
            op(1, 2, 5, advance.clone(), Reply::Advanced),
            op(0, 3, 6, Command::Get, seen.clone()),
        ];
        check::<KeySpec>(&start(), &racing).unwrap_or_else(|violation| panic!("{seen:?}: {violation}"));
    }
    // TTL answers from the reading the command took: 2 ms before the move, or expired after.
    let ttl = |reply| {
        [
            op(0, 0, 1, set_expiring("v", SetExpiry::At(deadline)), written()),
            op(1, 2, 5, advance.clone(), Reply::Advanced),
            op(0, 3, 6, Command::Ttl, Reply::Ttl(reply)),
        ]
    };
    check::<KeySpec>(&start(), &ttl(Ttl::ExpiresIn(2))).expect("read before the move");
    check::<KeySpec>(&start(), &ttl(Ttl::Missing)).expect("read after the move");
    assert!(check::<KeySpec>(&start(), &ttl(Ttl::ExpiresIn(1))).is_err(), "no reading gives 1 ms");
}

#[test]
fn model_follows_redis_ttl_rules() {
    let now = CLOCK_START_MS;
    let state = model::Stored { value: model::Val::Str(CompactBytes::from("41")), deadline: now + 10 };
    // INCR, APPEND and SETRANGE keep the TTL; a plain SET clears it; EXPIRE on a missing key
    // fails; a deadline reached deletes, a deadline passed reads as absent.
    let kept = |command: Command| model::step(Some(&state), &command, now).0.is_some_and(|s| s.deadline == now + 10);
    assert!(kept(Command::Incr) && kept(Command::Append { suffix: CompactBytes::from("x") }));
    assert!(kept(Command::SetRange { offset: 0, patch: CompactBytes::from("5") }));
    assert!(model::step(Some(&state), &set("1"), now).0.is_some_and(|s| s.deadline == u64::MAX));
    let expire = Command::Expire { deadline: now + 5, only_if_no_ttl: false };
    assert_eq!(model::step(None, &expire, now), (None, Reply::Flag(false)));
    let expire_now = Command::Expire { deadline: now, only_if_no_ttl: false };
    assert_eq!(model::step(Some(&state), &expire_now, now), (None, Reply::Flag(true)));
    assert_eq!(model::step(Some(&state), &Command::Get, now + 11), (None, Reply::Value(Ok(None))));
    assert_eq!(model::step(Some(&state), &Command::Get, now + 10), (Some(state.clone()), value("41")));
}
