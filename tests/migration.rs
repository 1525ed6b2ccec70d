//! Live migration (`engine/migration.rs`): every from→to pair of strategies, shard counts up
//! and down, under concurrent readers and writers, carries every value, TTL and counter
//! exactly, and no operation fails.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{CLOCK_START_MS, b, manual_store};
use cstore::engine::{ConfigError, EngineConfig, ManualClock, SetExpiry, SetOptions, Store, StoreStats, Strategy, Ttl};

const KEYS: usize = 3_000;
const HOUR_MS: u64 = 60 * 60 * 1000;

fn config(strategy: Strategy, shards: u32) -> EngineConfig {
    EngineConfig { strategy, shards }
}

/// Keys `key:0..n`: every fourth with a TTL an hour ahead, every tenth already expired but
/// not reclaimed (the clock moves past its deadline after it was written).
fn fill(store: &Store, clock: &ManualClock, n: usize) {
    for i in 0..n {
        let expiry = match i {
            i if i.is_multiple_of(10) => SetExpiry::At(CLOCK_START_MS + 1),
            i if i.is_multiple_of(4) => SetExpiry::At(CLOCK_START_MS + HOUR_MS),
            _ => SetExpiry::Clear,
        };
        store
            .set(format!("key:{i}").as_bytes(), format!("value-{i}"), SetOptions { expiry, ..SetOptions::default() })
            .unwrap();
    }
    clock.advance(10);
}

/// Everything `fill` wrote is there, as it was written, with its TTL.
fn assert_filled(store: &Store, n: usize) {
    for i in 0..n {
        let key = format!("key:{i}");
        if i.is_multiple_of(10) {
            assert_eq!(store.get(key.as_bytes()).unwrap(), None, "{key} expired");
            continue;
        }
        assert_eq!(store.get(key.as_bytes()).unwrap(), Some(b(format!("value-{i}"))), "{key}");
        let expected = if i.is_multiple_of(4) { Ttl::ExpiresIn(HOUR_MS - 10) } else { Ttl::Persistent };
        assert_eq!(store.ttl(key.as_bytes()), expected, "{key}");
    }
}

/// The counters that must survive a migration exactly.
fn accounting(stats: StoreStats) -> (u64, u64, u64, u64) {
    (stats.keys, stats.volatile_keys, stats.memory_bytes, stats.expired_keys)
}

#[test]
fn every_strategy_pair_and_shard_change_carries_every_key_value_and_ttl() {
    let shard_steps: [(u32, u32); 4] = [(16, 256), (256, 1), (1, 4096), (4096, 16)];
    let mut step = 0;
    for from in Strategy::ALL {
        for to in Strategy::ALL {
            let (from_shards, to_shards) = shard_steps[step % shard_steps.len()];
            step += 1;
            let (store, clock) = manual_store(Store::builder().strategy(from).shards(u64::from(from_shards)));
            fill(&store, &clock, KEYS);
            let before = accounting(store.stats());

            let report = store.migrate(config(to, to_shards)).unwrap();
            let context = format!("{from} x {from_shards} -> {to} x {to_shards}");
            assert_eq!(report.keys_moved, KEYS as u64, "{context}: expired keys move too, unreclaimed");
            assert_eq!((store.strategy(), store.shard_count()), (to, to_shards as usize), "{context}");
            assert_eq!(accounting(store.stats()), before, "{context}: counters carried exactly");
            assert_filled(&store, KEYS);
            assert_eq!(store.len(), KEYS - KEYS / 10, "{context}: reads reclaimed the expired keys");
        }
    }
}

/// With no client writing, the counters read during a migration are the counters before it:
/// a chunk on its way is counted in one engine, never in both or in neither.
#[test]
fn counters_read_during_a_migration_count_each_key_once() {
    for (from, to) in [
        (Strategy::RwLock, Strategy::Mutex),
        (Strategy::Mutex, Strategy::LockFree),
        (Strategy::CopyOnWrite, Strategy::RwLock),
    ] {
        let (store, clock) = manual_store(Store::builder().strategy(from).shards(16));
        fill(&store, &clock, KEYS);
        let before = accounting(store.stats());
        let bytes = store.memory_bytes();
        let done = AtomicBool::new(false);
        let reads = thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) {
                    assert_eq!(accounting(store.stats()), before, "{from} -> {to}: counters read mid-migration");
                    assert_eq!(store.memory_bytes(), bytes, "{from} -> {to}: memory read mid-migration");
                    reads += 1;
                }
                reads
            });
            for shards in [256, 1, 16] {
                store.migrate(config(to, shards)).unwrap();
                store.migrate(config(from, shards)).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            reader.join().expect("the reader saw the counters off")
        });
        assert!(reads > 0);
    }
}

#[test]
fn writers_and_readers_never_fail_or_lose_a_write_during_migrations() {
    const WRITERS: usize = 3;
    let (store, clock) = manual_store(Store::builder().strategy(Strategy::RwLock).shards(16));
    fill(&store, &clock, KEYS);
    let done = AtomicBool::new(false);
    let increments: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
    let walk = [
        config(Strategy::Mutex, 4096),
        config(Strategy::LockFree, 1),
        config(Strategy::CopyOnWrite, 256),
        config(Strategy::RwLock, 2),
        config(Strategy::LockFree, 64),
        config(Strategy::Mutex, 1),
        config(Strategy::CopyOnWrite, 16),
    ];
    thread::scope(|scope| {
        for (writer, count) in increments.iter().enumerate() {
            let (store, done) = (&store, &done);
            scope.spawn(move || {
                let counter = format!("counter:{writer}");
                let own = format!("own:{writer}");
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    assert_eq!(store.incr_by(counter.as_bytes(), 1), Ok(i as i64 + 1), "{counter}");
                    count.fetch_add(1, Ordering::Relaxed);
                    store.set(own.as_bytes(), i.to_string(), SetOptions::default()).unwrap();
                    assert_eq!(store.get(own.as_bytes()).unwrap(), Some(b(i.to_string())), "read your own write");
                    i += 1;
                }
            });
        }
        let (store, done) = (&store, &done);
        scope.spawn(move || {
            let mut round = 0usize;
            while !done.load(Ordering::Relaxed) {
                let i = (round * 7919) % KEYS;
                round += 1;
                if !i.is_multiple_of(10) {
                    assert_eq!(store.get(format!("key:{i}").as_bytes()).unwrap(), Some(b(format!("value-{i}"))));
                }
            }
        });
        for target in walk {
            store.migrate(target).unwrap();
            thread::sleep(Duration::from_millis(5));
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_filled(&store, KEYS);
    for (writer, count) in increments.iter().enumerate() {
        let expected = count.load(Ordering::Relaxed);
        assert!(expected > 0, "writer {writer} ran during the migrations");
        assert_eq!(store.get(format!("counter:{writer}").as_bytes()).unwrap(), Some(b(expected.to_string())));
    }
    assert_eq!(store.engine_status().migrations_completed, walk.len() as u64);
}

#[test]
fn status_shows_the_migration_under_way_and_reports_the_last_one() {
    let (store, clock) = manual_store(Store::builder().strategy(Strategy::Mutex).shards(4));
    fill(&store, &clock, 100_000);
    let target = config(Strategy::LockFree, 64);
    let mut seen = None;
    thread::scope(|scope| {
        let migrating = scope.spawn(|| store.migrate(target).unwrap());
        while !migrating.is_finished() {
            if let Some(progress) = store.engine_status().migration {
                assert_eq!(progress.target, target);
                assert_eq!(progress.keys_total, 100_000);
                assert!(progress.keys_moved <= progress.keys_total);
                seen = Some(progress);
            }
        }
    });
    assert!(seen.is_some(), "a 100,000-key migration was never seen in progress");
    let status = store.engine_status();
    assert_eq!((status.running, status.migration, status.migrations_completed), (target, None, 1));
    let last = status.last_migration.unwrap();
    assert_eq!((last.from, last.to, last.keys_moved), (config(Strategy::Mutex, 4), target, 100_000));
    assert!(last.longest_pause <= last.duration);
}

#[test]
fn flushall_expiry_and_eviction_work_while_migrating() {
    let (store, clock) = manual_store(Store::builder().strategy(Strategy::CopyOnWrite).shards(8));
    fill(&store, &clock, 50_000);
    thread::scope(|scope| {
        let migrating = scope.spawn(|| store.migrate(config(Strategy::RwLock, 128)).unwrap());
        // The sweeper reclaims the expired tenth wherever each key lives now.
        let swept = store.sweep_expired();
        assert!(swept.examined > 0);
        assert_eq!(store.evict_random(10), 10);
        migrating.join().unwrap();
    });
    assert_eq!(store.stats().evicted_keys, 10, "evictions counted across the migration");
    store.clear();
    assert_eq!(accounting(store.stats()).0, 0);
    assert_eq!(store.memory_bytes(), 0);

    fill(&store, &clock, 20_000);
    thread::scope(|scope| {
        let migrating = scope.spawn(|| store.migrate(config(Strategy::LockFree, 2)).unwrap());
        thread::sleep(Duration::from_millis(1));
        store.clear();
        migrating.join().unwrap();
    });
    assert!(store.is_empty(), "FLUSHALL during a migration leaves nothing behind");
    assert_eq!(store.memory_bytes(), 0);
}

/// A `CopyOnWrite` source forgets the keys it hands over but keeps their places in its SCAN
/// order, so that its other keys keep theirs (`cow.rs`). Keys that clients delete from it
/// meanwhile stay deleted, and neither a walk nor RANDOMKEY ever returns a key that was gone
/// throughout, whatever the target.
#[test]
fn keys_deleted_from_a_copy_on_write_source_while_it_drains_stay_deleted() {
    const N: usize = 20_000;
    for (shards, target) in [(1u64, config(Strategy::Mutex, 4)), (4, config(Strategy::CopyOnWrite, 64))] {
        let (store, _clock) = manual_store(Store::builder().strategy(Strategy::CopyOnWrite).shards(shards));
        for i in 0..N {
            store.set(format!("key:{i}").as_bytes(), format!("value-{i}"), SetOptions::default()).unwrap();
        }
        let deleted_before_the_walk: Vec<usize> = (0..N).step_by(4).collect();
        for &i in &deleted_before_the_walk {
            assert!(store.delete(format!("key:{i}").as_bytes()));
        }
        thread::scope(|scope| {
            let migrating = scope.spawn(|| store.migrate(target).unwrap());
            // Deletes from both ends of the key space, so that some hit keys not yet moved.
            for i in (1..N).step_by(4).chain((2..N).step_by(4).rev()) {
                assert!(store.delete(format!("key:{i}").as_bytes()), "key:{i} was there");
            }
            let (mut cursor, mut walked) = (0, Vec::new());
            loop {
                let (next, keys) = store.scan(cursor, None, 100);
                walked.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            for key in walked.iter().chain(store.random_key().iter()) {
                let i: usize = std::str::from_utf8(&key[4..]).unwrap().parse().unwrap();
                assert_ne!(i % 4, 0, "{target:?}: key:{i} was deleted before the walk and returned");
            }
            migrating.join().unwrap();
        });
        for i in 0..N {
            let expected = (i % 4 == 3).then(|| b(format!("value-{i}")));
            assert_eq!(store.get(format!("key:{i}").as_bytes()).unwrap(), expected, "{target:?}: key:{i}");
        }
        assert_eq!(store.stats().keys, (N / 4) as u64, "{target:?}");
    }
}

#[test]
fn migrating_to_the_running_engine_does_nothing_and_bad_shards_are_refused() {
    let (store, clock) = manual_store(Store::builder().strategy(Strategy::RwLock).shards(16));
    fill(&store, &clock, 10);
    let report = store.migrate(config(Strategy::RwLock, 16)).unwrap();
    assert_eq!(report.keys_moved, 0);
    assert_eq!(store.engine_status().migrations_completed, 0);
    for shards in [0, 3, 8192] {
        assert_eq!(store.migrate(config(Strategy::Mutex, shards)), Err(ConfigError::InvalidShards(u64::from(shards))));
    }
    assert_eq!(store.strategy(), Strategy::RwLock);
}
