//! Behaviour of every engine operation, under every strategy and shard count.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CLOCK_START_MS, b, manual_store, with_each_configuration, with_each_strategy};
use cstore::engine::{
    ExpireCondition, SetCondition, SetExpiry, SetOptions, SetOutcome, Store, StoreError, Strategy, Sweeper, Ttl,
    TtlUpdate,
};

fn set_plain() -> SetOptions {
    SetOptions::default()
}

/// The server hands the engine slices of its read buffer; a stored key or value that kept
/// such a slice would pin the whole buffer. Everything stored must be the engine's own copy.
#[test]
fn stored_keys_and_values_never_alias_the_callers_buffer() {
    with_each_strategy(|store, _| {
        let request = vec![b'x'; 256];
        let inside = |bytes: &[u8]| request.as_ptr_range().contains(&bytes.as_ptr());
        let (key, value) = (&request[..40], &request[40..104]);
        store.set(key, value, set_plain()).unwrap();
        assert_eq!(store.append(&request[..40], &request[..8]), Ok(72));
        let stored = store.get(key).unwrap().expect("the key was stored");
        assert!(!inside(&stored), "the value is a copy");
        let (_, keys) = store.scan(0, None, 10);
        assert_eq!(keys.len(), 1, "one walk step over a one-key store finds it");
        assert!(!inside(&keys[0]), "the key is a copy");
    });
}

#[test]
fn get_with_sees_only_live_values() {
    with_each_strategy(|store, clock| {
        let key = b("k");
        assert_eq!(store.get_with(&key, |value| value.cloned()).unwrap(), None);
        store.set(&key, b("v"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + 10), ..set_plain() }).unwrap();
        assert_eq!(store.get_with(&key, |value| value.map(|v| v.to_vec())).unwrap(), Some(b"v".to_vec()));
        clock.advance(11);
        assert_eq!(store.get_with(&key, |value| value.cloned()).unwrap(), None, "an expired value reads as absent");
    });
}

#[test]
fn set_get_delete() {
    with_each_strategy(|store, _| {
        let key = b("k");
        assert_eq!(store.get(&key).unwrap(), None);
        assert_eq!(store.set(&key, b("v1"), set_plain()).unwrap(), SetOutcome { written: true, previous: None });
        assert_eq!(store.get(&key).unwrap(), Some(b("v1")));
        assert!(store.exists(&key));
        assert_eq!(store.len(), 1);
        assert!(store.delete(&key));
        assert!(!store.delete(&key));
        assert_eq!(store.get(&key).unwrap(), None);
        assert!(store.is_empty());
    });
}

#[test]
fn set_conditions_and_previous_value() {
    with_each_strategy(|store, _| {
        let key = b("k");
        let nx = SetOptions { condition: SetCondition::IfAbsent, ..set_plain() };
        let xx = SetOptions { condition: SetCondition::IfPresent, ..set_plain() };
        assert!(!store.set(&key, b("x"), xx).unwrap().written, "XX on a missing key writes nothing");
        assert!(store.set(&key, b("first"), nx).unwrap().written);
        assert!(!store.set(&key, b("second"), nx).unwrap().written, "NX on an existing key writes nothing");
        assert_eq!(store.get(&key).unwrap(), Some(b("first")));
        let xx_get = SetOptions { return_previous: true, ..xx };
        assert_eq!(
            store.set(&key, b("third"), xx_get).unwrap(),
            SetOutcome { written: true, previous: Some(b("first")) }
        );
        let nx_get = SetOptions { return_previous: true, ..nx };
        assert_eq!(
            store.set(&key, b("fourth"), nx_get).unwrap(),
            SetOutcome { written: false, previous: Some(b("third")) }
        );
    });
}

#[test]
fn expiry_is_lazy_exact_and_cleared_by_plain_set() {
    with_each_strategy(|store, clock| {
        let key = b("session");
        let deadline = CLOCK_START_MS + 1_000;
        store.set(&key, b("v"), SetOptions { expiry: SetExpiry::At(deadline), ..set_plain() }).unwrap();
        assert_eq!(store.ttl(&key), Ttl::ExpiresIn(1_000));
        clock.advance(1_000);
        assert_eq!(store.get(&key).unwrap(), Some(b("v")), "alive through its deadline millisecond, as in Redis");
        assert_eq!(store.ttl(&key), Ttl::ExpiresIn(0));
        clock.advance(1);
        assert_eq!(store.get(&key).unwrap(), None, "expired one millisecond after the deadline");
        assert_eq!(store.ttl(&key), Ttl::Missing);
        assert_eq!(store.len(), 0, "reading an expired key reclaims it");
        assert_eq!(store.stats().expired_keys, 1);

        store.set(&key, b("v"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + 50), ..set_plain() }).unwrap();
        store.set(&key, b("w"), set_plain()).unwrap();
        assert_eq!(store.ttl(&key), Ttl::Persistent, "plain SET clears the TTL");
        store.set(&key, b("x"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + 50), ..set_plain() }).unwrap();
        store.set(&key, b("y"), SetOptions { expiry: SetExpiry::Keep, ..set_plain() }).unwrap();
        assert_eq!(store.ttl(&key), Ttl::ExpiresIn(50), "KEEPTTL keeps it");
    });
}

#[test]
fn set_with_a_past_deadline_leaves_the_key_absent() {
    with_each_strategy(|store, clock| {
        let key = b("k");
        let outcome =
            store.set(&key, b("v"), SetOptions { expiry: SetExpiry::At(clock.now_ms() - 1), ..set_plain() }).unwrap();
        assert!(outcome.written);
        assert!(!store.exists(&key));
        assert_eq!(store.memory_bytes(), 0);
    });
}

#[test]
fn expire_flags_persist_and_past_deadlines() {
    with_each_strategy(|store, clock| {
        let key = b("k");
        let now = clock.now_ms();
        let always = ExpireCondition::default();
        assert!(!store.expire_at(&key, now + 10, always), "missing key");
        store.set(&key, b("v"), set_plain()).unwrap();
        let nx = ExpireCondition { nx: true, ..always };
        let xx = ExpireCondition { xx: true, ..always };
        let gt = ExpireCondition { gt: true, ..always };
        let lt = ExpireCondition { lt: true, ..always };
        assert!(!store.expire_at(&key, now + 100, xx));
        assert!(!store.expire_at(&key, now + 100, gt), "no TTL counts as infinite for GT");
        assert!(store.expire_at(&key, now + 100, nx));
        assert!(!store.expire_at(&key, now + 200, nx));
        assert!(store.expire_at(&key, now + 200, gt));
        assert!(!store.expire_at(&key, now + 300, lt));
        assert!(store.expire_at(&key, now + 50, lt));
        assert_eq!(store.ttl(&key), Ttl::ExpiresIn(50));
        assert!(store.persist(&key));
        assert!(!store.persist(&key));
        assert_eq!(store.ttl(&key), Ttl::Persistent);
        assert!(store.expire_at(&key, now - 1, always), "a past deadline deletes the key");
        assert!(!store.exists(&key));
    });
}

#[test]
fn getdel_and_getex() {
    with_each_strategy(|store, clock| {
        let key = b("k");
        store.set(&key, b("v"), set_plain()).unwrap();
        assert_eq!(store.getex(&key, TtlUpdate::At(clock.now_ms() + 500)).unwrap(), Some(b("v")));
        assert_eq!(store.ttl(&key), Ttl::ExpiresIn(500));
        assert_eq!(store.getex(&key, TtlUpdate::Persist).unwrap(), Some(b("v")));
        assert_eq!(store.ttl(&key), Ttl::Persistent);
        assert_eq!(store.getex(&key, TtlUpdate::At(clock.now_ms())).unwrap(), Some(b("v")));
        assert!(!store.exists(&key), "GETEX with a past time deletes the key");
        store.set(&key, b("v"), set_plain()).unwrap();
        assert_eq!(store.getdel(&key).unwrap(), Some(b("v")));
        assert_eq!(store.getdel(&key).unwrap(), None);
        assert_eq!(store.getex(&key, TtlUpdate::Keep).unwrap(), None);
    });
}

#[test]
fn counters_keep_ttl_and_refuse_bad_values() {
    with_each_strategy(|store, clock| {
        let key = b("n");
        assert_eq!(store.incr_by(&key, 1), Ok(1));
        assert_eq!(store.incr_by(&key, -5), Ok(-4));
        store.expire_at(&key, clock.now_ms() + 100, ExpireCondition::default());
        assert_eq!(store.incr_by(&key, 4), Ok(0));
        assert_eq!(store.ttl(&key), Ttl::ExpiresIn(100), "INCR keeps the TTL");
        store.set(&key, b(i64::MAX.to_string()), set_plain()).unwrap();
        assert_eq!(store.incr_by(&key, 1), Err(StoreError::Overflow));
        assert_eq!(store.get(&key).unwrap(), Some(b(i64::MAX.to_string())), "a failed INCR changes nothing");
        store.set(&key, b("abc"), set_plain()).unwrap();
        assert_eq!(store.incr_by(&key, 1), Err(StoreError::NotAnInteger));
        assert_eq!(store.incr_by_float(&key, 1.0), Err(StoreError::NotAFloat));
        store.set(&key, b("10.5"), set_plain()).unwrap();
        assert_eq!(store.incr_by_float(&key, 0.1), Ok(b("10.6")));
        assert_eq!(store.incr_by_float(&key, f64::INFINITY), Err(StoreError::NotFinite));
        assert_eq!(store.incr_by(&b("f"), 0).and_then(|_| store.incr_by_float(&b("f"), 2.5)), Ok(b("2.5")));
    });
}

#[test]
fn append_setrange_getrange_strlen() {
    with_each_strategy(|store, _| {
        let key = b("s");
        assert_eq!(store.append(&key, b"Hello"), Ok(5));
        assert_eq!(store.append(&key, b" World"), Ok(11));
        assert_eq!(store.strlen(&key).unwrap(), 11);
        assert_eq!(store.getrange(&key, 0, 4).unwrap(), b("Hello"));
        assert_eq!(store.getrange(&key, -5, -1).unwrap(), b("World"));
        assert_eq!(store.getrange(&key, 0, -1).unwrap(), b("Hello World"));
        assert_eq!(store.getrange(&key, 5, 3).unwrap(), b(""));
        assert_eq!(store.getrange(&key, -1, -5).unwrap(), b(""));
        assert_eq!(store.getrange(&key, 0, 1_000).unwrap(), b("Hello World"));
        assert_eq!(store.getrange(&b("missing"), 0, -1).unwrap(), b(""));
        assert_eq!(store.setrange(&key, 6, b"Redis"), Ok(11));
        assert_eq!(store.get(&key).unwrap(), Some(b("Hello Redis")));
        let pad = b("pad");
        assert_eq!(store.setrange(&pad, 3, b"x"), Ok(4));
        assert_eq!(store.get(&pad).unwrap(), Some(b("\0\0\0x")));
        assert_eq!(store.setrange(&b("empty"), 10, b""), Ok(0));
        assert!(!store.exists(&b("empty")), "an empty patch creates nothing");
    });
}

#[test]
fn value_limits_are_enforced_without_change() {
    let store = cstore::engine::Store::builder().max_value_len(8).build().unwrap();
    let key = b("k");
    assert_eq!(store.append(&key, b"12345678"), Ok(8));
    assert_eq!(store.append(&key, b"9"), Err(StoreError::TooLarge));
    assert_eq!(store.setrange(&key, 8, b"x"), Err(StoreError::TooLarge));
    assert_eq!(store.setrange(&key, usize::MAX, b"x"), Err(StoreError::TooLarge));
    assert_eq!(store.get(&key).unwrap(), Some(b("12345678")));
}

/// The byte count is per entry, so the same writes give the same count whatever the shard
/// count, including shard counts above the byte counter's stripes (shared by several shards).
#[test]
fn memory_bytes_do_not_depend_on_the_shard_count() {
    for strategy in Strategy::ALL {
        let counts: Vec<(u64, u64)> = [1, 16, 64, 4096]
            .into_iter()
            .map(|shards| {
                let (store, _clock) = manual_store(Store::builder().strategy(strategy).shards(shards));
                for i in 0..2_000 {
                    store.set(&b(format!("key:{i}")), b(vec![b'x'; i % 100]), set_plain()).unwrap();
                }
                for i in (0..2_000).step_by(3) {
                    store.delete(&b(format!("key:{i}")));
                }
                assert_eq!(store.memory_bytes(), store.stats().memory_bytes, "{strategy}:{shards}");
                (shards, store.memory_bytes())
            })
            .collect();
        assert!(counts[0].1 > 1_333 * 50, "{strategy}: {counts:?}");
        assert!(counts.iter().all(|&(_, bytes)| bytes == counts[0].1), "{strategy}: {counts:?}");
    }
}

#[test]
fn memory_and_key_counters_return_to_zero() {
    with_each_strategy(|store, clock| {
        assert_eq!(store.memory_bytes(), 0);
        for i in 0..500 {
            let expiry = if i % 3 == 0 { SetExpiry::At(clock.now_ms() + 10) } else { SetExpiry::Clear };
            store.set(&b(format!("key:{i}")), b(vec![b'x'; i % 50]), SetOptions { expiry, ..set_plain() }).unwrap();
        }
        let stats = store.stats();
        assert_eq!(stats.keys, 500);
        assert_eq!(stats.volatile_keys, 167);
        assert!(stats.memory_bytes > 500 * 50, "counts keys, values and overhead");
        for i in (0..500).step_by(2) {
            store.delete(&b(format!("key:{i}")));
        }
        clock.advance(11);
        assert_eq!(store.keys(b"*").len(), 250 - 83, "expired keys are not listed");
        let remaining = store.stats().keys as usize;
        assert_eq!(store.clear(), remaining, "expired but unreclaimed keys are cleared too");
        let stats = store.stats();
        assert_eq!((stats.keys, stats.volatile_keys, stats.memory_bytes), (0, 0, 0));
    });
}

#[test]
fn a_reader_keeps_its_value_after_delete() {
    with_each_strategy(|store, _| {
        let key = b("k");
        store.set(&key, b("payload"), set_plain()).unwrap();
        let held = store.get(&key).unwrap().unwrap();
        store.delete(&key);
        store.set(&key, b("other"), set_plain()).unwrap();
        assert_eq!(held, b("payload"));
    });
}

#[test]
fn random_key_and_eviction() {
    with_each_strategy(|store, clock| {
        assert_eq!(store.random_key(), None);
        store.set(&b("only"), b("v"), set_plain()).unwrap();
        assert_eq!(store.random_key(), Some(b("only")));
        store.set(&b("gone"), b("v"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + 1), ..set_plain() }).unwrap();
        clock.advance(2);
        for _ in 0..20 {
            assert_eq!(store.random_key(), Some(b("only")), "expired keys are never chosen");
        }
        for i in 0..100 {
            store.set(&b(format!("k{i}")), b("v"), set_plain()).unwrap();
        }
        assert_eq!(store.evict_random(30), 30);
        assert_eq!(store.len(), 71);
        assert_eq!(store.stats().evicted_keys, 30);
        assert_eq!(store.evict_random(1_000), 71);
        assert!(store.is_empty());
    });
}

#[test]
fn sweeper_reclaims_expired_keys_nobody_reads() {
    with_each_strategy(|store, clock| {
        for i in 0..1_000 {
            let expiry = if i % 2 == 0 { SetExpiry::At(clock.now_ms() + 5) } else { SetExpiry::Clear };
            store.set(&b(format!("k{i}")), b("v"), SetOptions { expiry, ..set_plain() }).unwrap();
        }
        assert_eq!(store.sweep_expired().expired, 0, "nothing is due yet");
        clock.advance(6);
        let mut expired = 0;
        while store.stats().volatile_keys > 0 {
            let report = store.sweep_expired();
            assert!(report.examined > 0);
            expired += report.expired;
        }
        assert_eq!(expired, 500);
        assert_eq!(store.len(), 500);
        assert_eq!(store.stats().expired_keys, 500);
    });
}

/// INFO keyspace's `avg_ttl` is Redis's running estimate from active expiry's samples: the
/// first sampled mean as is, then moving 2% towards each new pass's mean; 0 once no key
/// expires. Every key has the same lifetime, so any sample's mean is exact whichever keys a
/// pass (bounded in time) gets to.
#[test]
fn active_expiry_estimates_the_average_ttl() {
    /// Runs passes until the estimate changes (a pass whose budget runs out before it
    /// reaches a key samples nothing); returns the new estimate.
    fn sweep_until_changed(store: &Store, before: u64) -> u64 {
        for _ in 0..1_000 {
            store.sweep_expired();
            if store.avg_ttl_ms() != before {
                return store.avg_ttl_ms();
            }
        }
        panic!("avg_ttl stayed at {before} ms for 1,000 passes");
    }
    with_each_strategy(|store, clock| {
        assert_eq!(store.avg_ttl_ms(), 0, "nothing sampled yet");
        for i in 0..200 {
            let expiry = SetExpiry::At(clock.now_ms() + 200_000);
            store.set(&b(format!("k{i}")), b("v"), SetOptions { expiry, ..set_plain() }).unwrap();
        }
        assert_eq!(sweep_until_changed(&store, 0), 200_000, "the first mean is taken as is");
        clock.advance(100_000);
        // 98% of the estimate plus 2% of the new mean, 100 s.
        assert_eq!(sweep_until_changed(&store, 200_000), 200_000 / 50 * 49 + 100_000 / 50);
        for i in 0..200 {
            store.delete(&b(format!("k{i}")));
        }
        store.sweep_expired();
        assert_eq!(store.avg_ttl_ms(), 0, "no key expires any more");
    });
}

/// The case that left expired keys in memory forever: more shards than one pass had steps,
/// every shard holding long-lived keys with a TTL, and short-lived ones nobody reads (the
/// issue measured 46,878 of these 50,000 still resident 13 s later, 130 passes).
#[test]
fn active_expiry_reaches_every_shard_of_many() {
    const LONG: usize = 100_000;
    const SHORT: usize = 50_000;
    // Far more than needed: every pass goes round all 4096 shards unless its 25 ms budget
    // runs out first, and the next pass starts where it stopped.
    const MAX_PASSES: usize = 100;
    with_each_configuration(&[4096], |strategy, shards| {
        let (store, clock) = manual_store(Store::builder().strategy(strategy).shards(shards));
        let now = clock.now_ms();
        for i in 0..LONG {
            store
                .set(
                    &b(format!("long:{i}")),
                    b("v"),
                    SetOptions { expiry: SetExpiry::At(now + 3_600_000), ..set_plain() },
                )
                .unwrap();
        }
        for i in 0..SHORT {
            store
                .set(&b(format!("short:{i}")), b("v"), SetOptions { expiry: SetExpiry::At(now + 500), ..set_plain() })
                .unwrap();
        }
        clock.advance(501);
        let started = std::time::Instant::now();
        let mut passes = 0;
        while store.len() > LONG && passes < MAX_PASSES {
            store.sweep_expired();
            passes += 1;
        }
        let resident = store.len() - LONG;
        eprintln!(
            "{strategy} x {shards}: {resident} expired keys resident after {passes} passes, {:.0?} sweeping",
            started.elapsed()
        );
        assert_eq!(resident, 0, "{resident} of {SHORT} expired keys still resident after {passes} passes");
        assert_eq!(store.stats().expired_keys, SHORT as u64);
    });
}

/// Active expiry looks at the keys that carry a deadline (Redis's expires dictionary), not at
/// every key of a shard that holds one.
#[test]
fn active_expiry_examines_only_keys_with_a_ttl() {
    with_each_strategy(|store, clock| {
        for i in 0..20_000 {
            store.set(&b(format!("persistent:{i}")), b("v"), set_plain()).unwrap();
        }
        for i in 0..100 {
            let expiry = SetExpiry::At(clock.now_ms() + 5);
            store.set(&b(format!("volatile:{i}")), b("v"), SetOptions { expiry, ..set_plain() }).unwrap();
        }
        clock.advance(6);
        let report = store.sweep_expired();
        assert_eq!(report.expired, 100, "one pass over 100 keys with a TTL reclaims them all");
        assert!(report.examined <= 100, "examined {} keys for 100 with a TTL", report.examined);
        assert_eq!(store.sweep_expired(), cstore::engine::SweepReport::default(), "nothing left to look at");
        assert_eq!(store.len(), 20_000);
    });
}

/// The sweeper drops a key from its index once the key has no deadline; a later deadline
/// indexes it again, and so does a migration that moves it, or a FLUSHALL followed by a write.
#[test]
fn keys_whose_deadline_comes_back_are_swept_again() {
    with_each_strategy(|store, clock| {
        let expiring = |key: &str, ms: u64| {
            store
                .set(&b(key), b("v"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + ms), ..set_plain() })
                .unwrap();
        };
        expiring("again", 1_000);
        assert!(store.persist(b"again"));
        assert_eq!(store.sweep_expired().expired, 0);
        assert!(store.expire_at(b"again", clock.now_ms() + 5, ExpireCondition::default()));
        // A write that keeps the deadline (INCR keeps the TTL) needs no new index entry.
        store.set(b"counter", b("1"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + 5), ..set_plain() }).unwrap();
        assert_eq!(store.incr_by(b"counter", 1), Ok(2));
        clock.advance(6);
        assert_eq!(store.sweep_expired().expired, 2);

        expiring("moved", 5);
        let other = if store.strategy() == Strategy::LockFree { Strategy::Mutex } else { Strategy::LockFree };
        store.migrate(cstore::engine::EngineConfig { strategy: other, shards: 8 }).expect("valid engine");
        clock.advance(6);
        assert_eq!(store.sweep_expired().expired, 1, "the target engine indexed the moved key");

        expiring("flushed", 5);
        store.clear();
        expiring("after-flush", 5);
        clock.advance(6);
        assert_eq!(store.sweep_expired().expired, 1);
        assert!(store.is_empty());
    });
}

/// DBSIZE's promise under concurrency (`Store::len`): it counts every write that completed
/// before the call and none that began after it. Writers create keys, then delete them,
/// announcing each write before it starts and after it completes; a reader checks every
/// answer against the two counts.
#[test]
fn dbsize_counts_every_completed_write_and_no_write_not_begun() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    const WRITERS: usize = 3;
    const KEYS_PER_WRITER: usize = 3_000;
    with_each_strategy(|store, _| {
        let (begun, completed) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let writing = std::sync::atomic::AtomicBool::new(true);
        let total = WRITERS * KEYS_PER_WRITER;
        for phase in ["insert", "delete"] {
            let (begun, completed, writing, store) = (&begun, &completed, &writing, &store);
            begun.store(0, SeqCst);
            completed.store(0, SeqCst);
            writing.store(true, SeqCst);
            let checks = std::thread::scope(|scope| {
                let writers: Vec<_> = (0..WRITERS)
                    .map(|writer| {
                        scope.spawn(move || {
                            for i in 0..KEYS_PER_WRITER {
                                let key = b(format!("{writer}:{i}"));
                                begun.fetch_add(1, SeqCst);
                                match phase {
                                    "insert" => assert!(store.set(&key, b("v"), set_plain()).unwrap().written),
                                    _ => assert!(store.delete(&key)),
                                }
                                completed.fetch_add(1, SeqCst);
                                // Lets the reader in on a machine with fewer cores than threads.
                                if i % 64 == 0 {
                                    std::thread::yield_now();
                                }
                            }
                        })
                    })
                    .collect();
                let reader = scope.spawn(move || {
                    let mut checks = 0;
                    while writing.load(SeqCst) {
                        let done_before = completed.load(SeqCst);
                        let len = store.len();
                        let begun_after = begun.load(SeqCst);
                        // Keys present: the writes of this phase move the count up or down.
                        let (low, high) = match phase {
                            "insert" => (done_before, begun_after),
                            _ => (total - begun_after, total - done_before),
                        };
                        assert!(low <= len && len <= high, "{phase}: DBSIZE {len} outside {low}..={high}");
                        checks += usize::from(begun_after < total);
                    }
                    checks
                });
                writers.into_iter().for_each(|writer| writer.join().expect("writers never panic"));
                writing.store(false, SeqCst);
                reader.join().expect("the bounds held")
            });
            assert!(checks > 0, "{phase}: no DBSIZE ran while writes were still to begin");
            let expected = if phase == "insert" { total } else { 0 };
            assert_eq!(store.len(), expected, "{phase}: exact once quiescent");
        }
    });
}

#[test]
fn sweeper_thread_runs_until_stopped() {
    with_each_strategy(|store, clock| {
        let store = Arc::new(store);
        store.set(&b("k"), b("v"), SetOptions { expiry: SetExpiry::At(clock.now_ms() + 1), ..set_plain() }).unwrap();
        clock.advance(2);
        let sweeper =
            Sweeper::start(Arc::clone(&store), Duration::from_millis(1), |store| store.sweep_expired()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sweeper.expired() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sweeper.expired(), 1);
        sweeper.stop();
        assert_eq!(store.len(), 0);
    });
}

#[test]
fn copy_on_write_publishes_numbered_versions() {
    with_each_strategy(|store, _| {
        let before = store.stats().published_versions;
        store.set(&b("a"), b("1"), set_plain()).unwrap();
        store.set(&b("a"), b("2"), set_plain()).unwrap();
        store.get(&b("a")).unwrap();
        store.delete(&b("missing"));
        let after = store.stats().published_versions;
        match store.strategy() {
            cstore::engine::Strategy::CopyOnWrite => {
                assert_eq!(after, before.map(|v| v + 2), "one version per write, none per read or no-op");
            }
            _ => assert_eq!((before, after), (None, None)),
        }
    });
}

#[test]
fn every_strategy_reports_its_identity() {
    with_each_strategy(|store, _| {
        assert!(cstore::engine::Strategy::ALL.contains(&store.strategy()));
        assert!(store.shard_count().is_power_of_two());
    });
}
