//! Point-in-time snapshots (`engine/snapshot.rs`): under every strategy, the walk hands over
//! exactly the keys, values and deadlines of the instant of the cut, once each, while writes
//! (overwrites, deletes, creations) go on.
//!
//! The oracle: each writer owns its keys and logs every write it made, so the store's state
//! at any instant is, for each writer, the result of some prefix of its log. A point-in-time
//! snapshot must match one prefix per writer, and one no shorter than what was acknowledged
//! before the cut and no longer than what had started by the time the cut was taken.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::{CLOCK_START_MS, with_each_strategy};
use cstore::engine::{EngineConfig, ManualClock, SetExpiry, SetOptions, SnapshotEntry, SnapshotError, Store, Strategy};
use rand::{Rng, RngExt, SeedableRng};

const HOUR_MS: u64 = 60 * 60 * 1000;

/// A key's state: its value and deadline, or absent.
type State = Option<(Vec<u8>, Option<u64>)>;

/// What the walk handed over, key by key; a key handed over twice fails the test.
fn collect(store: &Store, mut between: impl FnMut(usize)) -> HashMap<Vec<u8>, (Vec<u8>, Option<u64>)> {
    let mut taken = HashMap::new();
    let report = store
        .snapshot()
        .for_each(|entry: SnapshotEntry<'_>| {
            let previous =
                taken.insert(entry.key.to_vec(), (entry.value.as_string().unwrap().to_vec(), entry.expires_at_ms));
            assert!(previous.is_none(), "{:?} handed over twice", String::from_utf8_lossy(entry.key));
            between(taken.len());
            Ok::<_, std::convert::Infallible>(())
        })
        .expect("the snapshot completes");
    assert_eq!(report.keys, taken.len() as u64);
    taken
}

fn write(store: &Store, key: &[u8], state: &State) {
    match state {
        None => {
            store.delete(key);
        }
        Some((value, deadline)) => {
            let expiry = deadline.map_or(SetExpiry::Clear, SetExpiry::At);
            store.set(key, value.clone(), SetOptions { expiry, ..SetOptions::default() }).unwrap();
        }
    }
}

/// Keys `w{writer}:{i}`: a quarter with a deadline an hour ahead, a tenth expired before the
/// cut (never handed over), the rest plain. Returns each writer's initial states.
fn fill(store: &Store, clock: &ManualClock, writers: usize, keys: usize) -> Vec<Vec<State>> {
    let mut initial = vec![vec![None; keys]; writers];
    for (w, states) in initial.iter_mut().enumerate() {
        for (i, state) in states.iter_mut().enumerate() {
            let key = format!("w{w}:{i}");
            let value = format!("initial-{w}-{i}").into_bytes();
            if i % 10 == 0 {
                write(store, key.as_bytes(), &Some((value, Some(CLOCK_START_MS + 1))));
                continue; // expired once the clock moves, below
            }
            let deadline = (i % 4 == 0).then_some(CLOCK_START_MS + HOUR_MS);
            *state = Some((value, deadline));
            write(store, key.as_bytes(), state);
        }
    }
    clock.advance(10);
    initial
}

/// One writer's log: (key index, state written).
type Log = Vec<(usize, State)>;

/// The prefix lengths in `range` of `log`, applied to `initial`, whose result is `taken`.
fn matching_prefixes(
    initial: &[State],
    log: &Log,
    taken: &HashMap<usize, (Vec<u8>, Option<u64>)>,
    range: std::ops::RangeInclusive<usize>,
) -> Vec<usize> {
    let mut state = initial.to_vec();
    let differs = |i: usize, state: &[State]| state[i].as_ref() != taken.get(&i);
    let mut mismatches = (0..state.len()).filter(|&i| differs(i, &state)).count();
    let mut found = Vec::new();
    for length in 0..=log.len() {
        if mismatches == 0 && range.contains(&length) {
            found.push(length);
        }
        let Some((i, next)) = log.get(length) else { break };
        let before = differs(*i, &state);
        state[*i] = next.clone();
        let after = differs(*i, &state);
        mismatches = mismatches + usize::from(after) - usize::from(before);
    }
    found
}

/// The keys of writer `w` in `taken`, by index.
fn of_writer(taken: &HashMap<Vec<u8>, (Vec<u8>, Option<u64>)>, w: usize) -> HashMap<usize, (Vec<u8>, Option<u64>)> {
    let prefix = format!("w{w}:");
    taken
        .iter()
        .filter_map(|(key, entry)| {
            let index = std::str::from_utf8(key).ok()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((index, entry.clone()))
        })
        .collect()
}

/// A random write by writer `w` (`seq` makes every value unique).
fn random_write(rng: &mut impl Rng, w: usize, keys: usize, seq: usize) -> (usize, State) {
    let i = rng.random_range(0..keys);
    let state = match rng.random_range(0..10) {
        0..=2 => None,
        3..=5 => Some((format!("w{w}-{seq}").into_bytes(), Some(CLOCK_START_MS + HOUR_MS + seq as u64))),
        _ => Some((format!("w{w}-{seq}").into_bytes(), None)),
    };
    (i, state)
}

#[test]
fn the_walk_hands_over_the_cut_while_writers_go_on() {
    const WRITERS: usize = 3;
    const KEYS: usize = 400;
    with_each_strategy(|store, clock| {
        let store = Arc::new(store);
        let initial = fill(&store, &clock, WRITERS, KEYS);
        let stop = Arc::new(AtomicBool::new(false));
        let done: Arc<Vec<AtomicUsize>> = Arc::new((0..WRITERS).map(|_| AtomicUsize::new(0)).collect());
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, stop, done) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&done));
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                    let mut log = Log::new();
                    while !stop.load(Ordering::Relaxed) {
                        let (i, state) = random_write(&mut rng, w, KEYS, log.len());
                        write(&store, format!("w{w}:{i}").as_bytes(), &state);
                        log.push((i, state));
                        done[w].store(log.len(), Ordering::Release);
                    }
                    log
                })
            })
            .collect();
        // Let the writers get going, then cut while they write.
        while done.iter().any(|d| d.load(Ordering::Acquire) < 200) {
            thread::yield_now();
        }
        let acknowledged: Vec<usize> = done.iter().map(|d| d.load(Ordering::Acquire)).collect();
        let point = store.snapshot();
        let started: Vec<usize> = done.iter().map(|d| d.load(Ordering::Acquire) + 1).collect();
        let mut taken = HashMap::new();
        point
            .for_each(|entry| {
                assert!(
                    taken
                        .insert(entry.key.to_vec(), (entry.value.as_string().unwrap().to_vec(), entry.expires_at_ms))
                        .is_none()
                );
                // Every 64 keys, the walk waits for each writer to write a few times more,
                // so that writes overlap the whole walk however the threads are scheduled.
                if taken.len() % 64 == 0 {
                    let goal: Vec<usize> = done.iter().map(|d| d.load(Ordering::Acquire) + 3).collect();
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    while done.iter().zip(&goal).any(|(d, &g)| d.load(Ordering::Acquire) < g) {
                        assert!(std::time::Instant::now() < deadline, "the writers are stuck");
                        thread::yield_now();
                    }
                }
                Ok::<_, std::convert::Infallible>(())
            })
            .expect("the snapshot completes");
        let during: Vec<usize> = done.iter().map(|d| d.load(Ordering::Acquire)).collect();
        stop.store(true, Ordering::Relaxed);
        let logs: Vec<Log> = writers.into_iter().map(|w| w.join().expect("writer")).collect();
        for w in 0..WRITERS {
            assert!(during[w] >= started[w] + 40, "writer {w} barely wrote during the walk: the test proves nothing");
            let found = matching_prefixes(&initial[w], &logs[w], &of_writer(&taken, w), acknowledged[w]..=started[w]);
            assert!(
                !found.is_empty(),
                "writer {w}: the snapshot matches no state of the store between its writes {}..={}",
                acknowledged[w],
                started[w]
            );
        }
        assert_eq!(taken.len(), (0..WRITERS).map(|w| of_writer(&taken, w).len()).sum::<usize>());
    });
}

/// Writes from inside the walk, to keys the walk has and has not reached yet: the snapshot
/// is exactly the state before them.
#[test]
fn writes_during_the_walk_never_reach_the_snapshot() {
    with_each_strategy(|store, clock| {
        let initial = fill(&store, &clock, 1, 600);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut log = Log::new();
        let taken = collect(&store, |_| {
            for _ in 0..3 {
                let (i, state) = random_write(&mut rng, 0, 600, log.len());
                write(&store, format!("w0:{i}").as_bytes(), &state);
                log.push((i, state));
            }
        });
        assert!(log.len() > 1000);
        assert_eq!(matching_prefixes(&initial[0], &log, &of_writer(&taken, 0), 0..=0), vec![0]);
        // And the writes all took effect in the store itself.
        let mut now = initial[0].clone();
        for (i, state) in &log {
            now[*i] = state.clone();
        }
        for (i, state) in now.iter().enumerate() {
            assert_eq!(
                store.get(format!("w0:{i}").as_bytes()).unwrap().map(|v| v.to_vec()),
                state.as_ref().map(|s| s.0.clone())
            );
        }
    });
}

/// The oracle rejects a walk that is not point-in-time: SCAN plus GET, with the same writes
/// made between its reads, matches no prefix.
#[test]
fn the_oracle_rejects_a_walk_that_is_not_point_in_time() {
    let (store, clock) = common::manual_store(Store::builder().strategy(Strategy::RwLock).shards(4));
    let initial = fill(&store, &clock, 1, 100);
    let keys: Vec<usize> = (0..100).filter(|i| i % 10 != 0).collect();
    let (first, last) = (keys[0], keys[keys.len() - 1]);
    let mut log = Log::new();
    let mut taken = HashMap::new();
    for (n, &i) in keys.iter().enumerate() {
        let key = format!("w0:{i}");
        if let Some(value) = store.get(key.as_bytes()).unwrap() {
            let deadline = initial[0][i].as_ref().and_then(|s| s.1);
            taken.insert(i, (value.to_vec(), deadline));
        }
        if n == 0 {
            // After the first key was read, it changes, and so does the last, not read yet.
            for (k, value) in [(first, "new-first"), (last, "new-last")] {
                let state = Some((value.as_bytes().to_vec(), None));
                write(&store, format!("w0:{k}").as_bytes(), &state);
                log.push((k, state));
            }
        }
    }
    assert!(matching_prefixes(&initial[0], &log, &taken, 0..=log.len()).is_empty());
}

#[test]
fn a_flush_during_the_walk_aborts_the_snapshot() {
    with_each_strategy(|store, clock| {
        fill(&store, &clock, 1, 500);
        let mut flushed = false;
        let outcome = store.snapshot().for_each(|_| {
            if !flushed {
                flushed = true;
                store.clear();
            }
            Ok::<_, std::convert::Infallible>(())
        });
        assert!(matches!(outcome, Err(SnapshotError::Flushed)), "{outcome:?}");
        assert_eq!(store.len(), 0);
        // The store is back to normal: a new snapshot works and sees new writes.
        write(&store, b"after", &Some((b"x".to_vec(), None)));
        assert_eq!(collect(&store, |_| ()).len(), 1);
    });
}

#[test]
fn an_error_of_the_consumer_stops_the_walk_and_leaves_the_store_serving() {
    with_each_strategy(|store, clock| {
        fill(&store, &clock, 1, 300);
        let outcome = store.snapshot().for_each(|_| Err("disk full"));
        assert!(matches!(outcome, Err(SnapshotError::Emit("disk full"))));
        write(&store, b"w0:1", &Some((b"changed".to_vec(), None)));
        assert_eq!(collect(&store, |_| ()).get(&b"w0:1"[..]).map(|e| e.0.clone()), Some(b"changed".to_vec()));
    });
}

#[test]
fn the_cut_reports_its_size_and_instant() {
    with_each_strategy(|store, clock| {
        fill(&store, &clock, 1, 100);
        let point = store.snapshot();
        assert_eq!(point.cut_ms(), clock.now_ms());
        // 100 keys, 10 of them expired but not reclaimed yet; those and 20 others have deadlines.
        assert_eq!((point.keys(), point.volatile_keys()), (100, 30));
        let report = point.for_each(|_| Ok::<_, std::convert::Infallible>(())).expect("snapshot");
        assert_eq!(report.keys, 90);
    });
}

/// A migration asked for during a snapshot waits for it, then runs; both see every key.
#[test]
fn migrations_wait_for_a_snapshot() {
    let store = Arc::new(Store::builder().strategy(Strategy::Mutex).shards(4).build().expect("store"));
    for i in 0..1000 {
        store.set(format!("k{i}").as_bytes(), "v", SetOptions::default()).unwrap();
    }
    let point = store.snapshot();
    let migrating = {
        let store = Arc::clone(&store);
        thread::spawn(move || store.migrate(EngineConfig { strategy: Strategy::LockFree, shards: 8 }))
    };
    thread::sleep(Duration::from_millis(50));
    assert!(!migrating.is_finished(), "the migration waits for the snapshot");
    let report = point.for_each(|_| Ok::<_, std::convert::Infallible>(())).expect("snapshot");
    assert_eq!(report.keys, 1000);
    assert_eq!(migrating.join().expect("thread").expect("migration").keys_moved, 1000);
    assert_eq!(collect(&store, |_| ()).len(), 1000);
}
