//! Hashes and sets in the engine, under every strategy and shard count: their semantics and
//! encodings, HSCAN and SSCAN while the collection changes underneath, the memory accounting,
//! and collections carried through a live migration and a point-in-time snapshot while they
//! are written to. (Each single-key command's linearizability is checked with the string
//! commands by `tests/linearizability.rs`; replies are compared with Redis's by
//! `tests/redis_oracle.rs`.)

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{b, with_each_configuration, with_each_strategy};
use cstore::engine::{CompactBytes, EngineConfig, SetOptions, Store, StoreError, Strategy, Ttl, Value, ValueType};

fn hash_pairs(store: &Store, key: &[u8]) -> Vec<(CompactBytes, CompactBytes)> {
    let mut pairs = store.hash(key).unwrap().map(|h| h.pairs()).unwrap_or_default();
    pairs.sort();
    pairs
}

fn members(store: &Store, key: &[u8]) -> Vec<CompactBytes> {
    let mut members = store.set_value(key).unwrap().map(|s| s.members()).unwrap_or_default();
    members.sort();
    members
}

#[test]
fn hashes_follow_redis() {
    with_each_strategy(|store, clock| {
        assert_eq!(store.hset(b"h", &[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]), Ok(2));
        assert_eq!(hash_pairs(&store, b"h"), [(b("a"), b("3")), (b("b"), b("2"))]);
        assert_eq!(store.hset(b"h", &[(b"b", b"20"), (b"c", b"30")]), Ok(1));
        assert_eq!(store.hsetnx(b"h", b"c", b"x"), Ok(false));
        assert_eq!(store.hincr_by(b"h", b"b", 5), Ok(25));
        assert_eq!(store.hincr_by(b"h", b"a", i64::MAX), Err(StoreError::Overflow));
        assert_eq!(store.hset(b"t", &[(b"f", b"text")]), Ok(1));
        assert_eq!(store.hincr_by(b"t", b"f", 1), Err(StoreError::HashNotAnInteger));
        assert_eq!(store.hincr_by_float(b"h", b"new", 1.5).as_deref(), Ok(&b"1.5"[..]));
        // A write keeps the key's deadline; the last field takes the key with it.
        assert!(store.expire_at(b"h", clock.now_ms() + 60_000, Default::default()));
        assert_eq!(store.hdel(b"h", &[b"a", b"nosuch"]), Ok(1));
        assert!(matches!(store.ttl(b"h"), Ttl::ExpiresIn(_)));
        assert_eq!(store.hdel(b"h", &[b"b", b"c", b"new"]), Ok(3));
        assert!(!store.exists(b"h"));
        assert_eq!(store.value_type(b"t"), Some(ValueType::Hash));
    });
}

#[test]
fn sets_follow_redis() {
    with_each_strategy(|store, _| {
        assert_eq!(store.sadd(b"s", &[b"3", b"1", b"2", b"1"]), Ok(3));
        assert_eq!(store.encoding(b"s"), Some("intset"));
        assert_eq!(store.sadd(b"s", &[b"x"]), Ok(1));
        assert_eq!(store.encoding(b"s"), Some("listpack"));
        assert_eq!(store.srem(b"s", &[b"1", b"nosuch"]), Ok(1));
        assert_eq!(members(&store, b"s"), [b("2"), b("3"), b("x")]);
        let popped = store.spop(b"s", 2).unwrap();
        assert_eq!(popped.len(), 2);
        assert_eq!(store.read_set(b"s", |s| s.map_or(0, |s| s.len())), Ok(1));
        assert_eq!(store.spop(b"s", 5).unwrap().len(), 1, "popping more than there is takes the rest");
        assert!(!store.exists(b"s"), "an empty set is no key");
        let big: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        let big: Vec<&[u8]> = big.iter().map(|m| m.as_bytes()).collect();
        assert_eq!(store.sadd(b"big", &big), Ok(1000));
        assert_eq!(store.encoding(b"big"), Some("hashtable"));
        assert_eq!(store.srem(b"big", &big[..999]), Ok(999));
        assert_eq!(store.encoding(b"big"), Some("hashtable"), "a set never converts back");
    });
}

#[test]
fn every_type_refuses_the_others_commands_and_shares_the_generic_ones() {
    with_each_strategy(|store, clock| {
        store.set(b"str", "v", SetOptions::default()).unwrap();
        store.hset(b"hash", &[(b"f", b"v")]).unwrap();
        store.sadd(b"set", &[b"m"]).unwrap();
        for key in [&b"hash"[..], b"set"] {
            assert_eq!(store.get(key), Err(StoreError::WrongType));
            assert_eq!(store.incr_by(key, 1), Err(StoreError::WrongType));
            assert_eq!(store.append(key, b"x"), Err(StoreError::WrongType));
        }
        assert_eq!(store.hset(b"str", &[(b"f", b"v")]), Err(StoreError::WrongType));
        assert_eq!(store.sadd(b"hash", &[b"m"]), Err(StoreError::WrongType));
        assert_eq!(store.hdel(b"set", &[b"m"]), Err(StoreError::WrongType));
        // EXPIRE, PERSIST, RENAME, COPY and DEL take any type.
        assert!(store.expire_at(b"set", clock.now_ms() + 1_000, Default::default()));
        assert!(store.persist(b"set"));
        assert_eq!(store.rename(b"hash", b"hash2", false), Ok(true));
        assert!(store.copy(b"set", b"set2", false));
        assert_eq!(hash_pairs(&store, b"hash2"), [(b("f"), b("v"))]);
        assert_eq!(members(&store, b"set2"), [b("m")]);
        // SET replaces a value of any type.
        store.set(b"set2", "now a string", SetOptions::default()).unwrap();
        assert_eq!(store.get(b"set2").unwrap().as_deref(), Some(&b"now a string"[..]));
        assert!(store.delete(b"hash2") && store.delete(b"set"));
    });
}

#[test]
fn memory_accounting_counts_collections_and_returns_to_zero() {
    with_each_strategy(|store, _| {
        let empty = store.memory_bytes();
        let fields: Vec<(String, String)> = (0..2000).map(|i| (format!("field:{i}"), format!("value:{i}"))).collect();
        let pairs: Vec<(&[u8], &[u8])> = fields.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())).collect();
        store.hset(b"h", &pairs[..10]).unwrap();
        let small = store.memory_bytes();
        store.hset(b"h", &pairs).unwrap();
        let large = store.memory_bytes();
        assert!(large - empty > 2000 * 20, "2,000 fields are counted: {} bytes", large - empty);
        assert!(large > small);
        store.sadd(b"s", &pairs.iter().map(|(f, _)| *f).collect::<Vec<_>>()).unwrap();
        let names: Vec<&[u8]> = pairs.iter().map(|(f, _)| *f).collect();
        assert_eq!(store.hdel(b"h", &names), Ok(2000));
        assert_eq!(store.srem(b"s", &names), Ok(2000));
        assert_eq!(store.memory_bytes(), empty, "every byte charged is given back");
    });
}

/// Fields `stay:0..STAYING` are in the collection for the whole walk while writers add and
/// remove others and rewrite the staying ones; every walk must return each staying element.
const STAYING: usize = 2_000;

#[test]
fn hscan_and_sscan_return_every_element_present_for_the_whole_walk() {
    with_each_strategy(|store, _| {
        let staying: Vec<String> = (0..STAYING).map(|i| format!("stay:{i}")).collect();
        for name in &staying {
            store.hset(b"h", &[(name.as_bytes(), b"0")]).unwrap();
            store.sadd(b"s", &[name.as_bytes()]).unwrap();
        }
        let done = AtomicBool::new(false);
        thread::scope(|scope| {
            scope.spawn(|| {
                let mut round = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let churn = format!("churn:{}", round % 5_000);
                    store.hset(b"h", &[(churn.as_bytes(), b"x")]).unwrap();
                    store.sadd(b"s", &[churn.as_bytes()]).unwrap();
                    let gone = format!("churn:{}", round.wrapping_sub(50) % 5_000);
                    store.hdel(b"h", &[gone.as_bytes()]).unwrap();
                    store.srem(b"s", &[gone.as_bytes()]).unwrap();
                    let rewritten = &staying[(round as usize * 7) % STAYING];
                    store.hset(b"h", &[(rewritten.as_bytes(), round.to_string().as_bytes())]).unwrap();
                    round += 1;
                }
            });
            for _ in 0..3 {
                let (mut in_hash, mut in_set) = (HashSet::new(), HashSet::new());
                let mut cursor = 0;
                loop {
                    let hash = store.hash(b"h").unwrap().expect("the staying fields keep the hash");
                    cursor = hash.scan(cursor, 25, |field, _| {
                        in_hash.insert(field.clone());
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                loop {
                    let set = store.set_value(b"s").unwrap().expect("the staying members keep the set");
                    cursor = set.scan(cursor, 25, |member| {
                        in_set.insert(CompactBytes::from(member));
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                for name in &staying {
                    assert!(in_hash.contains(name.as_bytes()), "HSCAN skipped {name}");
                    assert!(in_set.contains(name.as_bytes()), "SSCAN skipped {name}");
                }
            }
            done.store(true, Ordering::Relaxed);
        });
    });
}

/// Counters in fields of a few hashes, and members added to sets, while the store migrates
/// between every pair of strategies: afterwards every increment and every member is there.
#[test]
fn collections_move_whole_through_live_migrations_while_written() {
    const HASHES: usize = 20;
    const ROUNDS: i64 = 300;
    with_each_configuration(&[4], |from, shards| {
        for to in Strategy::ALL {
            let store = Store::builder().strategy(from).shards(shards).build().unwrap();
            thread::scope(|scope| {
                scope.spawn(|| {
                    for round in 0..ROUNDS {
                        for i in 0..HASHES {
                            let key = format!("h{i}");
                            store.hincr_by(key.as_bytes(), b"count", 1).unwrap();
                            store.sadd(format!("s{i}").as_bytes(), &[round.to_string().as_bytes()]).unwrap();
                        }
                    }
                });
                store.migrate(EngineConfig { strategy: to, shards: 64 }).unwrap();
                store.migrate(EngineConfig { strategy: from, shards: 2 }).unwrap();
            });
            for i in 0..HASHES {
                let count = store.read_hash(format!("h{i}").as_bytes(), |h| h.and_then(|h| h.get(b"count")).cloned());
                assert_eq!(count.unwrap().as_deref(), Some(ROUNDS.to_string().as_bytes()), "{from} -> {to}");
                let len = store.read_set(format!("s{i}").as_bytes(), |s| s.map_or(0, |s| s.len())).unwrap();
                assert_eq!(len, ROUNDS as usize, "{from} -> {to}");
            }
        }
    });
}

/// A snapshot holds each collection as it was at the cut, whatever is written after it.
#[test]
fn a_snapshot_keeps_the_version_of_a_collection_at_its_cut() {
    with_each_strategy(|store, _| {
        let fields: Vec<String> = (0..1000).map(|i| format!("f{i}")).collect();
        let pairs: Vec<(&[u8], &[u8])> = fields.iter().map(|f| (f.as_bytes(), &b"before"[..])).collect();
        store.hset(b"h", &pairs).unwrap();
        store.sadd(b"s", &[b"kept"]).unwrap();
        let cut = store.snapshot();
        store.hset(b"h", &[(b"f1", b"after"), (b"new", b"after")]).unwrap();
        store.srem(b"s", &[b"kept"]).unwrap();
        let mut seen = Vec::new();
        cut.for_each(|entry| {
            seen.push((entry.key.to_vec(), entry.value.clone()));
            Ok::<(), ()>(())
        })
        .unwrap();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let [(hash_key, Value::Hash(hash)), (set_key, Value::Set(set))] = &seen[..] else {
            panic!("a hash and a set at the cut, found {seen:?}")
        };
        assert_eq!((&hash_key[..], &set_key[..]), (&b"h"[..], &b"s"[..]));
        assert_eq!(hash.len(), 1000);
        assert!(hash.pairs().iter().all(|(_, value)| &value[..] == b"before"));
        assert!(set.contains(b"kept"));
        assert_eq!(hash_pairs(&store, b"h").len(), 1001, "the store itself moved on");
    });
}
