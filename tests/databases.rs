//! Numbered databases (`engine/databases.rs`): isolation, lazy creation, SWAPDB, WATCH
//! across databases, one snapshot cut over all of them under writers, migration of every
//! database, and eviction drawing from all of them; under every strategy.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::with_each_configuration;
use cstore::engine::{
    ConfigError, Databases, EngineConfig, MAX_DATABASES, SetOptions, Store, Strategy, Value, Watcher,
};

fn with_each_strategy_databases(mut test: impl FnMut(Databases)) {
    with_each_configuration(&[1, 8], |strategy, shards| {
        test(Store::builder().strategy(strategy).shards(shards).build_databases(16).unwrap());
    });
}

fn set(store: &Store, key: &str, value: &str) {
    store.set(key.as_bytes(), value, SetOptions::default()).unwrap();
}

fn get(store: &Store, key: &str) -> Option<String> {
    store.get(key.as_bytes()).unwrap().map(|value| String::from_utf8(value.to_vec()).unwrap())
}

#[test]
fn databases_hold_separate_keys() {
    with_each_strategy_databases(|databases| {
        let (zero, one) = (databases.get(0).unwrap(), databases.get(1).unwrap());
        set(zero, "k", "zero");
        set(one, "k", "one");
        set(one, "only-one", "x");
        assert_eq!((get(zero, "k").as_deref(), get(one, "k").as_deref()), (Some("zero"), Some("one")));
        assert_eq!((zero.len(), one.len(), databases.len()), (1, 2, 3));
        assert_eq!(zero.keys(b"*").len(), 1, "KEYS sees its own database only");
        zero.clear();
        assert_eq!((zero.len(), get(one, "k").as_deref()), (0, Some("one")), "FLUSHDB empties one database");
        assert_eq!(databases.clear(), 2, "FLUSHALL empties every database");
        assert!(databases.is_empty());
    });
}

#[test]
fn a_database_is_created_when_first_used() {
    let databases = Store::builder().strategy(Strategy::LockFree).build_databases(16).unwrap();
    assert_eq!(databases.created().count(), 1, "database 0 exists from the start");
    assert!(databases.existing(7).is_none());
    assert!(databases.get(16).is_none(), "out of range");
    let seven = databases.get(7).unwrap();
    assert_eq!(seven.number(), 7);
    assert!(databases.existing(7).is_some());
    assert_eq!(databases.created().count(), 2);
}

#[test]
fn the_number_of_databases_is_bounded() {
    assert_eq!(Store::builder().build_databases(0).err(), Some(ConfigError::InvalidDatabases(0)));
    let too_many = MAX_DATABASES + 1;
    assert_eq!(Store::builder().build_databases(too_many).err(), Some(ConfigError::InvalidDatabases(too_many)));
    assert_eq!(Store::builder().build_databases(MAX_DATABASES).unwrap().count(), MAX_DATABASES);
}

#[test]
fn swapdb_exchanges_what_two_numbers_reach() {
    with_each_strategy_databases(|databases| {
        set(databases.get(0).unwrap(), "k", "zero");
        set(databases.get(3).unwrap(), "k", "three");
        {
            let _exclusive = databases.exclusive();
            databases.swap(0, 3).unwrap();
        }
        assert_eq!(get(databases.get(0).unwrap(), "k").as_deref(), Some("three"));
        assert_eq!(get(databases.get(3).unwrap(), "k").as_deref(), Some("zero"));
        assert_eq!((databases.get(0).unwrap().number(), databases.get(3).unwrap().number()), (0, 3));
        // A database never used swaps too: it is created empty.
        {
            let _exclusive = databases.exclusive();
            databases.swap(3, 9).unwrap();
        }
        assert_eq!(databases.get(3).unwrap().len(), 0);
        assert_eq!(get(databases.get(9).unwrap(), "k").as_deref(), Some("zero"));
        let _exclusive = databases.exclusive();
        assert_eq!(databases.swap(0, 16), Err(ConfigError::InvalidDatabase(16)));
    });
}

#[test]
fn watch_names_a_key_in_its_database() {
    with_each_strategy_databases(|databases| {
        let (zero, one) = (databases.get(0).unwrap(), databases.get(1).unwrap());
        let mut watcher = Watcher::default();
        zero.watch(&mut watcher, b"k");
        set(one, "k", "the same name elsewhere");
        assert!(!databases.watched_changed(&watcher), "a write to another database's key is no change");
        set(zero, "k", "v");
        assert!(databases.watched_changed(&watcher));
        databases.unwatch(&mut watcher);

        // SWAPDB changes what a watched name holds: it counts when the key exists in either.
        zero.watch(&mut watcher, b"k");
        {
            let _exclusive = databases.exclusive();
            databases.swap(0, 1).unwrap();
        }
        assert!(databases.watched_changed(&watcher));
        databases.unwatch(&mut watcher);
        databases.get(0).unwrap().watch(&mut watcher, b"absent");
        {
            let _exclusive = databases.exclusive();
            databases.swap(0, 1).unwrap();
        }
        assert!(!databases.watched_changed(&watcher), "a key in neither database did not change");
        // The watch stays on database 0 whichever store that is now.
        set(databases.get(0).unwrap(), "absent", "now here");
        assert!(databases.watched_changed(&watcher));
    });
}

/// One writer sets key `i` in database 0, then in database 1, for growing `i`: any cut of
/// both at one instant that holds `i` in database 1 holds it in database 0, and database 0
/// is at most one key ahead.
#[test]
fn one_snapshot_cuts_every_database_at_one_instant() {
    with_each_strategy_databases(|databases| {
        let (zero, one) = (databases.get(0).unwrap(), databases.get(1).unwrap());
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..20_000u32 {
                    set(zero, &format!("k{i}"), "v");
                    set(one, &format!("k{i}"), "v");
                }
                done.store(true, Ordering::Relaxed);
            });
            let mut snapshots = 0;
            while !done.load(Ordering::Relaxed) || snapshots == 0 {
                let mut counts = [0u64; 2];
                for (number, cut) in databases.snapshot() {
                    cut.for_each::<()>(|_| {
                        counts[number] += 1;
                        Ok(())
                    })
                    .unwrap();
                }
                assert!(counts[0] == counts[1] || counts[0] == counts[1] + 1, "a torn cut: {counts:?}");
                snapshots += 1;
            }
        });
    });
}

#[test]
fn a_migration_moves_every_database() {
    let databases = Store::builder().strategy(Strategy::Mutex).shards(4).build_databases(16).unwrap();
    for number in [0, 2, 15] {
        let store = databases.get(number).unwrap();
        for i in 0..1_000 {
            set(store, &format!("{number}:{i}"), "v");
        }
    }
    let target = EngineConfig { strategy: Strategy::CopyOnWrite, shards: 64 };
    let report = databases.migrate(target).unwrap();
    assert_eq!(report.keys_moved, 3_000);
    assert!(databases.created().all(|store| store.engine_status().running == target));
    assert_eq!(databases.engine_status().running, target);
    assert_eq!(databases.engine_status().migrations_completed, 1);
    assert_eq!(databases.get(9).unwrap().engine_status().running, target, "a database created later runs it too");
    assert_eq!(get(databases.get(15).unwrap(), "15:999").as_deref(), Some("v"));
}

#[test]
fn eviction_draws_from_every_database() {
    with_each_strategy_databases(|databases| {
        for number in [0, 1] {
            let store = databases.get(number).unwrap();
            for i in 0..1_000 {
                store.set(format!("k{i}").as_bytes(), Value::from(&b"v"[..]), SetOptions::default()).unwrap();
            }
        }
        assert_eq!(databases.evict_random(1_000), 1_000);
        let (zero, one) = (databases.get(0).unwrap().len(), databases.get(1).unwrap().len());
        assert_eq!(zero + one, 1_000);
        assert!((200..800).contains(&zero), "evicted in proportion to the keys: {zero} left in database 0");
        assert_eq!(databases.stats().evicted_keys, 1_000);
    });
}
