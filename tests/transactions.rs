//! Transactions in the engine (`Store::exclusive`, `Store::pass`) under every strategy, with
//! real threads: transfers between accounts made as transactions keep the total that readers
//! under a pass, snapshots, and a migration's readers see; and WATCH notices every kind of
//! change. tests/shuttle.rs explores the same scenario's interleavings on shuttle's scheduler
//! (all strategies but `LockFree`) and shows that transfers without exclusivity are caught.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{with_each_configuration, with_each_strategy};
use cstore::engine::{EngineConfig, SetOptions, Store, Strategy, Ttl, Value, Watcher, parse_integer};

const ACCOUNTS: usize = 16;
const BALANCE: i64 = 1_000;

fn balance(store: &Store, account: usize) -> i64 {
    let value = store.get(format!("account:{account}").as_bytes()).unwrap().expect("every account exists");
    parse_integer(&value).expect("balances are integers")
}

fn open_accounts(store: &Store) {
    for account in 0..ACCOUNTS {
        store.set(format!("account:{account}").as_bytes(), BALANCE.to_string(), SetOptions::default()).unwrap();
    }
}

/// Moves `amount` from one account to another as one transaction.
fn transfer(store: &Store, from: usize, to: usize, amount: i64) {
    let _transaction = store.exclusive();
    store.incr_by(format!("account:{from}").as_bytes(), -amount).expect("balances are integers");
    store.incr_by(format!("account:{to}").as_bytes(), amount).expect("balances are integers");
}

/// Two transferring threads, two reading threads (all accounts under one pass), and
/// `background` (a migration, or nothing) running beside them.
fn transfers_keep_the_total(store: &Store, background: impl FnOnce(&Store) + Send) {
    open_accounts(store);
    let transferring = AtomicBool::new(true);
    thread::scope(|scope| {
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                scope.spawn(move || {
                    for round in 0..2_000 {
                        transfer(store, (round + writer) % ACCOUNTS, (round * 7 + 3 + writer) % ACCOUNTS, 3);
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            scope.spawn(|| {
                while transferring.load(Ordering::Relaxed) {
                    let pass = store.pass();
                    let balances: Vec<i64> = (0..ACCOUNTS).map(|account| balance(store, account)).collect();
                    drop(pass);
                    let total: i64 = balances.iter().sum();
                    assert_eq!(total, BALANCE * ACCOUNTS as i64, "a reader saw part of a transaction: {balances:?}");
                }
            });
        }
        scope.spawn(|| background(store));
        for writer in writers {
            writer.join().unwrap();
        }
        transferring.store(false, Ordering::Relaxed);
    });
    let total: i64 = (0..ACCOUNTS).map(|account| balance(store, account)).sum();
    assert_eq!(total, BALANCE * ACCOUNTS as i64);
}

#[test]
fn readers_see_every_transaction_whole() {
    with_each_strategy(|store, _clock| transfers_keep_the_total(&store, |_| ()));
}

#[test]
fn snapshots_never_split_a_transaction() {
    with_each_strategy(|store, _clock| {
        transfers_keep_the_total(&store, |store| {
            for _ in 0..20 {
                let mut total = 0;
                store
                    .snapshot()
                    .for_each(|entry| {
                        total += parse_integer(entry.value.as_string().unwrap()).expect("balances are integers");
                        Ok::<(), ()>(())
                    })
                    .expect("no flush");
                assert_eq!(total, BALANCE * ACCOUNTS as i64, "a snapshot's cut split a transaction");
            }
        });
    });
}

#[test]
fn transactions_stay_whole_across_a_migration() {
    let strategies = [Strategy::Mutex, Strategy::RwLock, Strategy::LockFree, Strategy::CopyOnWrite];
    with_each_configuration(&[1, 16], |strategy, shards| {
        let store = Store::builder().strategy(strategy).shards(shards).build().unwrap();
        let next = strategies[(strategies.iter().position(|s| *s == strategy).unwrap() + 1) % strategies.len()];
        let to = EngineConfig { strategy: next, shards: if shards == 1 { 64 } else { 1 } };
        transfers_keep_the_total(&store, |store| {
            store.migrate(to).expect("a valid target");
        });
        assert_eq!(store.engine_status().running, to);
    });
}

#[test]
fn watch_notices_writes_deletions_expiry_and_flushes_but_not_reads() {
    with_each_strategy(|store, clock| {
        let watched = |change: &dyn Fn(&Store)| {
            store.clear();
            store.set(b"k", "v", SetOptions::default()).unwrap();
            store
                .set(
                    b"dying",
                    "v",
                    SetOptions { expiry: cstore::engine::SetExpiry::At(clock.now_ms() + 10), ..SetOptions::default() },
                )
                .unwrap();
            let mut watcher = Watcher::default();
            store.watch(&mut watcher, b"k");
            store.watch(&mut watcher, b"dying");
            change(&store);
            let changed = {
                let _transaction = store.exclusive();
                store.watched_changed(&watcher)
            };
            store.unwatch(&mut watcher);
            changed
        };
        assert!(!watched(&|_| ()));
        assert!(!watched(&|store| drop(store.get(b"k").unwrap())));
        assert!(!watched(&|store| {
            store.set(b"other", "x", SetOptions::default()).unwrap();
        }));
        assert!(watched(&|store| {
            store.set(b"k", "v", SetOptions::default()).unwrap();
        }));
        assert!(watched(&|store| {
            store.delete(b"k");
        }));
        assert!(watched(&|store| {
            store.clear();
        }));
        // `dying` was alive when watched and has expired since, reclaimed or not.
        assert!(watched(&|_| clock.advance(11)));
        assert!(watched(&|store| {
            clock.advance(11);
            store.get(b"dying").unwrap();
        }));
        // A key already expired when watched changes nothing by being reclaimed.
        store.clear();
        store
            .set(
                b"gone",
                "v",
                SetOptions { expiry: cstore::engine::SetExpiry::At(clock.now_ms() + 1), ..SetOptions::default() },
            )
            .unwrap();
        clock.advance(2);
        let mut watcher = Watcher::default();
        store.watch(&mut watcher, b"gone");
        assert!(store.get(b"gone").unwrap().is_none());
        let _transaction = store.exclusive();
        assert!(!store.watched_changed(&watcher));
    });
}

/// RENAME moves a key back and forth while readers look for both names under a pass: exactly
/// one exists at every instant. MSETNX creates pairs that readers see both or neither of.
#[test]
fn rename_and_msetnx_are_seen_whole() {
    with_each_strategy(|store, _clock| {
        store.set(b"left", "v", SetOptions::default()).unwrap();
        let renaming = AtomicBool::new(true);
        thread::scope(|scope| {
            let mover = scope.spawn(|| {
                for round in 0..2_000 {
                    let (from, to): (&[u8], &[u8]) =
                        if round % 2 == 0 { (b"left", b"right") } else { (b"right", b"left") };
                    let _transaction = store.exclusive();
                    assert_eq!(store.rename(from, to, false), Ok(true));
                    let pair = format!("pair:{round}");
                    let (first, second) = (format!("{pair}:a"), format!("{pair}:b"));
                    assert!(store.set_all_if_none_exist(&[(first.as_bytes(), b"1"), (second.as_bytes(), b"2")]));
                }
            });
            scope.spawn(|| {
                while renaming.load(Ordering::Relaxed) {
                    let _pass = store.pass();
                    let found = [&b"left"[..], b"right"].iter().filter(|key| store.exists(key)).count();
                    assert_eq!(found, 1, "a reader saw a rename half done");
                    for round in (0..2_000).step_by(97) {
                        let a = store.exists(format!("pair:{round}:a").as_bytes());
                        let b = store.exists(format!("pair:{round}:b").as_bytes());
                        assert_eq!(a, b, "a reader saw half of an MSETNX");
                    }
                }
            });
            mover.join().unwrap();
            renaming.store(false, Ordering::Relaxed);
        });
    });
}

fn set_expiring(store: &Store, key: &[u8], value: &str, deadline: u64) {
    let with_ttl = SetOptions { expiry: cstore::engine::SetExpiry::At(deadline), ..SetOptions::default() };
    store.set(key, value, with_ttl).unwrap();
}

#[test]
fn rename_copy_and_msetnx_follow_redis() {
    with_each_strategy(|store, clock| {
        let deadline = clock.now_ms() + 5_000;
        set_expiring(&store, b"a", "1", deadline);
        assert_eq!(store.rename(b"missing", b"x", false), Err(cstore::engine::StoreError::NoSuchKey));
        assert_eq!(store.rename(b"a", b"a", false), Ok(true));
        assert_eq!(store.rename(b"a", b"a", true), Ok(false));
        assert_eq!(store.rename(b"a", b"b", false), Ok(true));
        assert!(!store.exists(b"a"));
        assert_eq!(
            store.get_with_deadline(b"b"),
            Some((Value::from(common::b("1")), Some(deadline))),
            "the deadline moves along"
        );
        store.set(b"c", "3", SetOptions::default()).unwrap();
        assert_eq!(store.rename(b"b", b"c", true), Ok(false));
        assert!(store.copy(b"c", b"d", false));
        assert!(!store.copy(b"b", b"d", false), "COPY does not overwrite without REPLACE");
        assert!(store.copy(b"b", b"d", true));
        assert_eq!(store.get_with_deadline(b"d"), Some((Value::from(common::b("1")), Some(deadline))));
        assert!(!store.copy(b"missing", b"e", true));
        assert!(!store.set_all_if_none_exist(&[(b"new", b"1"), (b"c", b"2")]));
        assert!(!store.exists(b"new"), "MSETNX sets nothing when one key exists");
        assert!(store.set_all_if_none_exist(&[(b"new", b"1"), (b"newer", b"2")]));
        assert_eq!(store.get(b"newer").unwrap(), Some(common::b("2")));
    });
}

#[test]
fn time_stands_still_while_a_transaction_runs() {
    with_each_strategy(|store, clock| {
        set_expiring(&store, b"short", "lived", clock.now_ms() + 5);
        let transaction = store.exclusive();
        let started = store.now_ms();
        clock.advance(10);
        assert_eq!(store.now_ms(), started, "the store's time is the transaction's start");
        assert_eq!(store.get(b"short").unwrap(), Some(common::b("lived")), "nothing expires inside a transaction");
        assert_eq!(store.ttl(b"short"), Ttl::ExpiresIn(5));
        // The sweeper reclaims under a pass: it waits for the transaction to end.
        let swept = thread::scope(|scope| {
            let sweeper = scope.spawn(|| store.sweep_expired().expired);
            thread::sleep(std::time::Duration::from_millis(20));
            assert!(store.exists(b"short"), "the sweeper removed a key the transaction still sees");
            drop(transaction);
            sweeper.join().unwrap()
        });
        assert_eq!(store.now_ms(), started + 10, "the clock moves again once the transaction ends");
        assert!(swept <= 1);
        assert!(!store.exists(b"short"));
    });
}

#[test]
fn a_fair_release_ends_exclusivity_and_leaves_a_later_transaction_frozen() {
    with_each_strategy(|store, clock| {
        let first = store.exclusive();
        let frozen = store.now_ms();
        clock.advance(5);
        first.release_fairly();
        assert_eq!(store.now_ms(), frozen + 5, "the clock moves once the transaction is released");
        drop(store.pass());
        let second = store.exclusive();
        clock.advance(5);
        assert_eq!(store.now_ms(), frozen + 5, "a new transaction freezes at its own start");
        drop(second);
        assert_eq!(store.now_ms(), frozen + 10);
    });
}
