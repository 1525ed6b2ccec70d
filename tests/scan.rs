//! The SCAN guarantee: a full walk (cursor 0 back to 0) returns every key that exists for the
//! whole walk at least once, whatever other threads do meanwhile: insert new keys (so shards
//! grow), delete and re-insert keys (which moves keys inside a locked or copy-on-write shard),
//! and let keys expire while the sweeper reclaims them. Without concurrent writes a walk
//! returns exactly the live keys, each once, and MATCH filters them.
//!
//! Concurrent writers land wherever the scheduler puts them, and keys inserted before them
//! never move, so those tests pass a walk that goes the wrong way. The `MovingWrites` tests
//! write between the calls of a walk, deliberately: they delete in the shard the walk is in,
//! which moves stable keys across its position, while the store grows, shrinks and (in one of
//! them) changes strategy and shard count. A walk upwards instead of downwards inside a shard
//! fails them (checked by hand against `reverse_window`).

mod common;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ops::{bytes_of, walk, walk_with};
use common::{manual_store, with_each_configuration};
use cstore::engine::{ManualClock, SetExpiry, SetOptions, Store};

/// The coarse single shard, a sharded map, and many small shards.
const SHARD_COUNTS: [u64; 3] = [1, 16, 256];
/// COUNT values: one key per call (the longest walk), and larger chunks.
const COUNTS: [usize; 3] = [1, 10, 100];
/// Keys nobody touches during a walk: each must be returned.
const STABLE_KEYS: usize = 1500;
/// Keys deleted, re-inserted and given short expiries during a walk.
const CHURN_KEYS: usize = 300;
/// Keys inserted during a walk: they nearly double the key count, so that the maps behind the
/// shards reallocate while long walks are under way.
const NEW_KEYS: usize = 1500;

fn key(kind: &str, index: usize) -> Bytes {
    Bytes::from(format!("{kind}:{index}"))
}

fn stable_keys() -> impl Iterator<Item = Bytes> {
    (0..STABLE_KEYS).map(|index| key("stable", index))
}

fn put(store: &Store, key: &Bytes, expiry: SetExpiry) {
    store.set(key, Bytes::from_static(b"value"), SetOptions { expiry, ..SetOptions::default() }).unwrap();
}

/// A store holding the stable and the churn keys.
fn populated_store(strategy: cstore::engine::Strategy, shards: u64) -> (Store, ManualClock) {
    let (store, clock) = manual_store(Store::builder().strategy(strategy).shards(shards));
    for key in stable_keys().chain((0..CHURN_KEYS).map(|index| key("churn", index))) {
        put(&store, &key, SetExpiry::Clear);
    }
    (store, clock)
}

/// The writers' progress, as the reader sees it.
struct Writes<'a>(&'a AtomicU64);

impl Writes<'_> {
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Waits until the writers have made one more write: put between a reader's calls, it
    /// makes writes interleave with them however the threads are scheduled.
    fn wait_for_one(&self) {
        let seen = self.count();
        let give_up = Instant::now() + Duration::from_secs(30);
        while self.count() == seen {
            assert!(Instant::now() < give_up, "the writers stopped writing");
            thread::yield_now();
        }
    }
}

/// Clears the flag the writers run on when dropped, so that they stop even if the reader
/// panics (otherwise the scope would wait for them forever).
struct StopWhenDropped<'a>(&'a AtomicBool);

impl Drop for StopWhenDropped<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Runs `reader` while three threads write to `store` and the clock runs.
fn with_concurrent_writes<R: Send>(store: &Store, clock: &ManualClock, reader: impl FnOnce(&Writes) -> R + Send) -> R {
    let reading = AtomicBool::new(true);
    let writes = AtomicU64::new(0);
    let start = Barrier::new(4);
    // Each writer yields after every write so that, on a machine with fewer cores than
    // threads, the reader still gets its share of the CPU.
    let wrote = || {
        writes.fetch_add(1, Ordering::Relaxed);
        thread::yield_now();
    };
    thread::scope(|scope| {
        // New keys until NEW_KEYS exist, then delete and re-insert them in turn.
        scope.spawn(|| {
            start.wait();
            for round in (0..).take_while(|_| reading.load(Ordering::Relaxed)) {
                let key = key("new", round % NEW_KEYS);
                if round >= NEW_KEYS {
                    store.delete(&key);
                }
                put(store, &key, SetExpiry::Clear);
                wrote();
            }
        });
        // Churn keys: delete and re-insert one, give the next one a deadline 1 to 3 ms ahead.
        scope.spawn(|| {
            start.wait();
            for round in (0..).take_while(|_| reading.load(Ordering::Relaxed)) {
                let churned = key("churn", round % CHURN_KEYS);
                store.delete(&churned);
                put(store, &churned, SetExpiry::Clear);
                let expiring = key("churn", (round + 1) % CHURN_KEYS);
                put(store, &expiring, SetExpiry::At(clock.now_ms() + 1 + (round % 3) as u64));
                wrote();
            }
        });
        // Time passes and the sweeper reclaims what expired.
        scope.spawn(|| {
            start.wait();
            while reading.load(Ordering::Relaxed) {
                clock.advance(1);
                store.sweep_expired();
                thread::yield_now();
            }
        });
        let _stop_writers = StopWhenDropped(&reading);
        start.wait();
        reader(&Writes(&writes))
    })
}

/// Asserts that `returned` holds every stable key.
fn assert_every_stable_key_returned(returned: &[Bytes], context: &str) {
    let returned: HashSet<&Bytes> = returned.iter().collect();
    let missing: Vec<Bytes> = stable_keys().filter(|key| !returned.contains(key)).collect();
    assert!(missing.is_empty(), "{context}: {} stable keys never returned, e.g. {:?}", missing.len(), missing.first());
}

fn assert_each_once(returned: &[Bytes], context: &str) {
    let mut seen = HashSet::new();
    let repeated: Vec<&Bytes> = returned.iter().filter(|key| !seen.insert(*key)).collect();
    assert!(repeated.is_empty(), "{context}: returned more than once: {repeated:?}");
}

#[test]
fn a_walk_returns_every_key_present_throughout_while_others_write() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        for count in COUNTS {
            let (store, clock) = populated_store(strategy, shards);
            let (returned, writes) = with_concurrent_writes(&store, &clock, |writes| {
                let before = writes.count();
                let returned = walk_with(&store, 0, None, count, |_| writes.wait_for_one());
                (returned, writes.count() - before)
            });
            assert_every_stable_key_returned(&returned, &format!("COUNT {count}"));
            assert!(writes > 0, "COUNT {count}: no write overlapped the walk, so it proved nothing");
        }
    });
}

#[test]
fn keys_returns_each_key_once_and_every_key_present_throughout_while_others_write() {
    // KEYS makes its SCAN calls back to back, with no hook to interleave writes, so it runs
    // until enough runs overlapped writes (each run is checked).
    const OVERLAPPED_RUNS: usize = 3;
    const MAX_RUNS: usize = 1000;
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let (store, clock) = populated_store(strategy, shards);
        let overlapped = with_concurrent_writes(&store, &clock, |writes| {
            let mut overlapped = 0;
            for _ in 0..MAX_RUNS {
                let before = writes.count();
                let returned: Vec<Bytes> = store.keys(b"*").into_iter().map(bytes_of).collect();
                assert_every_stable_key_returned(&returned, "KEYS *");
                assert_each_once(&returned, "KEYS *");
                overlapped += usize::from(writes.count() > before);
                if overlapped == OVERLAPPED_RUNS {
                    break;
                }
                writes.wait_for_one();
            }
            overlapped
        });
        assert_eq!(overlapped, OVERLAPPED_RUNS, "too few KEYS runs overlapped a write to prove anything");
    });
}

/// A store with persistent keys, keys expiring later, and keys already expired but not yet
/// reclaimed; returns it with its live keys.
fn store_with_expired_keys(strategy: cstore::engine::Strategy, shards: u64) -> (Store, BTreeSet<Bytes>) {
    let (store, clock) = manual_store(Store::builder().strategy(strategy).shards(shards));
    let now = clock.now_ms();
    let mut live = BTreeSet::new();
    for index in 0..3000 {
        let (key, expiry) = match index % 4 {
            0 => (key("expired", index), SetExpiry::At(now + 5)),
            1 => (key("expiring", index), SetExpiry::At(now + 1000)),
            _ => (key("persistent", index), SetExpiry::Clear),
        };
        put(&store, &key, expiry);
        if !key.starts_with(b"expired") {
            live.insert(key);
        }
    }
    clock.advance(10);
    (store, live)
}

#[test]
fn without_writes_a_walk_returns_each_live_key_once_and_no_expired_key() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let (store, live) = store_with_expired_keys(strategy, shards);
        for count in COUNTS {
            let returned = walk(&store, 0, None, count);
            assert_each_once(&returned, &format!("COUNT {count}"));
            assert_eq!(returned.into_iter().collect::<BTreeSet<_>>(), live, "COUNT {count}");
        }
    });
}

#[test]
fn without_writes_keys_returns_each_live_key_once_and_no_expired_key() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let (store, live) = store_with_expired_keys(strategy, shards);
        let returned: Vec<Bytes> = store.keys(b"*").into_iter().map(bytes_of).collect();
        assert_each_once(&returned, "KEYS *");
        assert_eq!(returned.into_iter().collect::<BTreeSet<_>>(), live);
    });
}

#[test]
fn match_returns_exactly_the_live_keys_the_pattern_matches() {
    // Each pattern with the same filter written out by hand.
    type Filter = fn(&str) -> bool;
    let patterns: &[(&str, Filter)] = &[
        ("*", |_| true),
        ("user:*:name", |key| key.starts_with("user:") && key.ends_with(":name")),
        ("session:?", |key| key.strip_prefix("session:").is_some_and(|rest| rest.len() == 1)),
        ("session:1[0-4]", |key| ["session:10", "session:11", "session:12", "session:13", "session:14"].contains(&key)),
        // Only expired keys match this one.
        ("user:1?", |key| key.strip_prefix("user:1").is_some_and(|rest| rest.len() == 1)),
        ("[^u]*", |key| !key.starts_with('u')),
        ("*:age", |key| key.ends_with(":age")),
        ("nothing*", |_| false),
    ];
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let (store, clock) = manual_store(Store::builder().strategy(strategy).shards(shards));
        let mut live = Vec::new();
        for index in 0..300 {
            for name in [format!("user:{index}:name"), format!("user:{index}:age"), format!("session:{index}")] {
                put(&store, &Bytes::from(name.clone()), SetExpiry::Clear);
                live.push(name);
            }
            // Matching keys that have expired must not come back either.
            put(&store, &key("user", index), SetExpiry::At(clock.now_ms() + 1));
        }
        clock.advance(2);
        for &(pattern, filter) in patterns {
            let expected: BTreeSet<Bytes> =
                live.iter().filter(|key| filter(key)).map(|key| Bytes::from(key.clone())).collect();
            for count in COUNTS {
                let returned = walk(&store, 0, Some(pattern.as_bytes()), count);
                assert_each_once(&returned, &format!("MATCH {pattern} COUNT {count}"));
                assert_eq!(returned.into_iter().collect::<BTreeSet<_>>(), expected, "MATCH {pattern} COUNT {count}");
            }
            let returned: Vec<Bytes> = store.keys(pattern.as_bytes()).into_iter().map(bytes_of).collect();
            assert_each_once(&returned, &format!("KEYS {pattern}"));
            assert_eq!(returned.into_iter().collect::<BTreeSet<_>>(), expected, "KEYS {pattern}");
        }
    });
}

/// Engine changes a walk lives through: strategies change, shard counts go up and down,
/// between every pair of shard kinds.
const MIGRATIONS: [(cstore::engine::Strategy, u32); 6] = [
    (cstore::engine::Strategy::Mutex, 4096),
    (cstore::engine::Strategy::LockFree, 1),
    (cstore::engine::Strategy::CopyOnWrite, 64),
    (cstore::engine::Strategy::RwLock, 2),
    (cstore::engine::Strategy::LockFree, 256),
    (cstore::engine::Strategy::CopyOnWrite, 1),
];

fn migrate(store: &Store, (strategy, shards): (cstore::engine::Strategy, u32)) {
    store.migrate(cstore::engine::EngineConfig { strategy, shards }).expect("valid engine");
}

#[test]
fn a_cursor_survives_strategy_and_shard_count_changes_between_calls() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        for migrations_per_pause in [1, 2] {
            let (store, _clock) = populated_store(strategy, shards);
            let mut pending = MIGRATIONS.iter().copied();
            let mut calls = 0;
            let returned = walk_with(&store, 0, None, 40, |_| {
                calls += 1;
                // Every 7 calls, change the engine; with two changes per pause the cursor's
                // engine is gone, not just the source of the migration under way.
                if calls % 7 == 0 {
                    pending.by_ref().take(migrations_per_pause).for_each(|next| migrate(&store, next));
                }
            });
            let context = format!("{migrations_per_pause} migrations per pause");
            assert_eq!(pending.next(), None, "{context}: the walk ended before every migration ran");
            assert_every_stable_key_returned(&returned, &context);
        }
    });
}

/// A walk between migrations resumes where it was in slot order: it revisits at most the
/// shard it was in (of the coarser engine), never what it had already finished.
#[test]
fn a_cursor_resumes_in_slot_order_after_a_migration() {
    use cstore::engine::Strategy::{LockFree, Mutex, RwLock};
    let pairs: [((cstore::engine::Strategy, u32), (cstore::engine::Strategy, u32)); 3] =
        [((Mutex, 16), (LockFree, 256)), ((LockFree, 256), (Mutex, 16)), ((Mutex, 64), (RwLock, 64))];
    for (from, to) in pairs {
        let (store, _clock) = populated_store(from.0, u64::from(from.1));
        let total = STABLE_KEYS + CHURN_KEYS;
        let (mut cursor, mut returned) = (0, Vec::new());
        while returned.len() < total / 2 {
            let (next, keys) = store.scan(cursor, None, 10);
            returned.extend(keys.into_iter().map(bytes_of));
            cursor = next;
        }
        migrate(&store, to);
        returned.extend(walk(&store, cursor, None, 10));
        let context = format!("{from:?} -> {to:?}");
        assert_every_stable_key_returned(&returned, &context);
        // The coarser engine has 16 or 64 shards: one shard's keys again at most.
        let duplicates = returned.len() - returned.iter().collect::<HashSet<_>>().len();
        assert!(duplicates <= 3 * total / 16, "{context}: {duplicates} keys returned twice");
    }
}

#[test]
fn a_walk_overlapping_live_migrations_and_writes_returns_every_key_present_throughout() {
    with_each_configuration(&[16], |strategy, shards| {
        let (store, clock) = populated_store(strategy, shards);
        let migrating = AtomicBool::new(true);
        let (returned, migrations) = thread::scope(|scope| {
            // A migration every few milliseconds: each walk lives through one now and then,
            // and still ends (a walk revisits its shard of a coarser engine after each one).
            let migrator = scope.spawn(|| {
                let mut done = 0;
                while migrating.load(Ordering::Relaxed) {
                    migrate(&store, MIGRATIONS[done % MIGRATIONS.len()]);
                    done += 1;
                    thread::sleep(Duration::from_millis(3));
                }
                done
            });
            let returned = with_concurrent_writes(&store, &clock, |writes| {
                let before = store.engine_status().migrations_completed;
                let mut returned = Vec::new();
                // Several walks, so that some start and end in different engines.
                while store.engine_status().migrations_completed < before + 8 {
                    returned.push(walk_with(&store, 0, None, 50, |_| writes.wait_for_one()));
                }
                returned
            });
            migrating.store(false, Ordering::Relaxed);
            (returned, migrator.join().expect("migrations never fail"))
        });
        assert!(migrations >= 8, "only {migrations} migrations ran");
        for (index, walk) in returned.iter().enumerate() {
            assert_every_stable_key_returned(walk, &format!("walk {index}"));
        }
    });
}

/// New keys the writes between a walk's calls insert per call and per unit of COUNT while the
/// walk is in its first half: a COUNT 1 walk ends with about three times the keys it started
/// with, so that the maps behind the shards reallocate under it.
const GROWTH_PER_CALL: usize = 4;
/// Oldest non-stable keys deleted per call and per unit of COUNT in the walk's second half,
/// anywhere in the store: it shrinks again.
const SHRINK_PER_CALL: usize = 8;

/// A store whose shards each hold their churn keys below their stable keys: the churn keys
/// are inserted first, and the locked and copy-on-write shards keep a shard's keys in a dense
/// vector in insertion order, deleting by moving the last key into the hole.
fn layered_store(strategy: cstore::engine::Strategy, shards: u64) -> (Store, ManualClock) {
    let (store, clock) = manual_store(Store::builder().strategy(strategy).shards(shards));
    for key in (0..CHURN_KEYS).map(|index| key("churn", index)).chain(stable_keys()) {
        put(&store, &key, SetExpiry::Clear);
    }
    (store, clock)
}

/// Writes between the calls of one walk, made where they can hurt it. In the shard the walk
/// is in (the shard of the last key it returned), each call deletes the oldest non-stable
/// keys, which moves the keys on top of that shard, often stable ones, down into the holes. A
/// walk in the right direction (downwards, `reverse_window` in scan.rs) has seen the top
/// already and meets the moved keys again further down; a walk upwards has passed the holes
/// and never sees them. Meanwhile the store grows by new keys during the first half of the
/// walk and shrinks during the second, so shard sizes change under every cursor.
struct MovingWrites<'a> {
    store: &'a Store,
    count: usize,
    /// The non-stable keys present, oldest first.
    movable: VecDeque<Bytes>,
    /// Every key present at some time during the walk: a walk returns no other.
    existed: HashSet<Bytes>,
    new_keys: usize,
    walked_shard: usize,
    returned: usize,
}

impl<'a> MovingWrites<'a> {
    fn new(store: &'a Store, count: usize) -> Self {
        let movable: VecDeque<Bytes> = (0..CHURN_KEYS).map(|index| key("churn", index)).collect();
        let existed = movable.iter().cloned().chain(stable_keys()).collect();
        MovingWrites { store, count, movable, existed, new_keys: 0, walked_shard: 0, returned: 0 }
    }

    /// The writes after a call that returned `returned`.
    fn after_call(&mut self, returned: &[Bytes]) {
        if let Some(last) = returned.last() {
            self.walked_shard = self.store.shard_of(last);
        }
        self.returned += returned.len();
        if self.returned < STABLE_KEYS / 2 {
            for _ in 0..GROWTH_PER_CALL * self.count {
                let new = key("new", self.new_keys);
                self.new_keys += 1;
                put(self.store, &new, SetExpiry::Clear);
                self.existed.insert(new.clone());
                self.movable.push_back(new);
            }
        } else {
            let shrink = (SHRINK_PER_CALL * self.count).min(self.movable.len());
            for old in self.movable.drain(..shrink) {
                self.store.delete(&old);
            }
        }
        for _ in 0..self.count {
            let walked_shard = self.walked_shard;
            let Some(oldest) = self.movable.iter().position(|key| self.store.shard_of(key) == walked_shard) else {
                break;
            };
            let moved_under_the_walk = self.movable.remove(oldest).expect("the position was just found");
            self.store.delete(&moved_under_the_walk);
        }
    }

    /// Asserts Redis's guarantee for the walk that returned `returned`: every stable key at
    /// least once, and no key that never existed.
    fn assert_guarantee(&self, returned: &[Bytes], context: &str) {
        assert_every_stable_key_returned(returned, context);
        let invented: Vec<&Bytes> = returned.iter().filter(|key| !self.existed.contains(*key)).collect();
        assert!(invented.is_empty(), "{context}: returned keys that never existed: {invented:?}");
        assert!(self.new_keys > 0, "{context}: the store never grew under the walk");
    }
}

#[test]
fn a_walk_returns_every_key_present_throughout_while_keys_move_under_it_and_shards_grow_and_shrink() {
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        for count in COUNTS {
            let (store, _clock) = layered_store(strategy, shards);
            let mut writes = MovingWrites::new(&store, count);
            let returned = walk_with(&store, 0, None, count, |returned| writes.after_call(returned));
            writes.assert_guarantee(&returned, &format!("COUNT {count}"));
        }
    });
}

#[test]
fn a_walk_returns_every_key_present_throughout_while_keys_move_under_it_across_engine_changes() {
    // Calls between two engine changes. Each engine runs once: a change away from a
    // one-shard engine sends the walk back to its start (see `scan.rs`), so a walk that went
    // on changing engines might never end.
    const CALLS_PER_ENGINE: usize = 5;
    with_each_configuration(&SHARD_COUNTS, |strategy, shards| {
        let (store, _clock) = layered_store(strategy, shards);
        let mut writes = MovingWrites::new(&store, 10);
        let mut pending = MIGRATIONS.iter().copied();
        let mut calls = 0;
        let returned = walk_with(&store, 0, None, 10, |returned| {
            writes.after_call(returned);
            calls += 1;
            if calls % CALLS_PER_ENGINE == 0 {
                pending.next().into_iter().for_each(|next| migrate(&store, next));
            }
        });
        assert_eq!(pending.next(), None, "the walk ended before every engine ran");
        writes.assert_guarantee(&returned, "engine changes between calls");
    });
}
