//! Point-in-time snapshots of a store that keeps serving: the engine side of BGSAVE.
//!
//! # Guarantee
//! [`Store::snapshot`] takes a cut: one instant of the whole store. [`PointInTime::for_each`]
//! then hands over every key that was live at that instant, exactly once, with the value and
//! deadline it had then, under every strategy, while reads and writes go on. No writer waits
//! for more than one chunk of [`SNAPSHOT_CHUNK`] keys, and nothing is copied but the versions
//! that writes replace before the walk reached them (values are reference-counted, so keeping
//! a replaced version costs its bytes, never a copy).
//!
//! # How
//! The scheme is Dragonfly's forkless save (its docs/rdbsave.md), per key instead of per
//! bucket. The cut publishes a [`Layout::Saving`] behind closed gates (`gates.rs`), so from
//! the cut on every write passes through its shard's gate. Until the walk has finished a
//! shard, each write to it first settles its key: if the key is not settled yet, the version
//! it is about to replace (stored or absent) is the version at the cut, and is kept. The walk
//! visits the shard in SCAN chunks and takes each key it meets that is not settled yet: no
//! write has touched it since the cut, so its current version is the one at the cut. A key
//! present at the cut and still present is visited (SCAN's guarantee); one deleted since was
//! settled, with its version kept, by the write that deleted it. Once a shard is walked, its
//! gate is held for a moment to mark it done and hand over the last kept versions; its
//! writers stop settling keys. The set of settled keys costs one key handle per key of the
//! shards not yet done, and goes away shard by shard.
//!
//! A FLUSHALL during the walk would remove keys without settling them, so it aborts the
//! snapshot ([`SnapshotError::Flushed`]). Migrations and snapshots run one at a time.
//!
//! # How it is tested
//! `tests/snapshot.rs` runs writers (overwrites, deletes, creations, expiries) against a
//! snapshot under every strategy and compares what the walk handed over with the store's
//! state at the cut, reconstructed from a log of acknowledged writes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::clock::Now;
use super::compact::CompactBytes;
use super::entry::{Decide, Entry};
use super::gates::{Gates, install_all_behind_gates};
use super::kinds::{Engine, Updated};
use super::shard::KeyHasher;
use super::store::{Layout, Store};
use super::sync::{Arc, AtomicBool, Mutex, MutexGuard, Ordering};
use super::transaction::Pass;
use super::value::Value;

/// Keys the walk takes from a shard per step: the most a writer of that shard waits for it.
pub const SNAPSHOT_CHUNK: usize = 128;

/// A snapshot in progress: the engine, its gates, and what each shard's writers settled.
pub(crate) struct Cut {
    engine: Arc<Engine>,
    gates: Gates,
    shards: Box<[CachePadded<ShardCut>]>,
    flushed: AtomicBool,
}

#[derive(Default)]
struct ShardCut {
    /// The walk is done with this shard: its writers no longer settle keys.
    walked: AtomicBool,
    progress: Mutex<Settled>,
}

#[derive(Default)]
struct Settled {
    /// Keys whose version at the cut is known: taken by the walk or kept by a write.
    keys: HashSet<CompactBytes, KeyHasher>,
    /// Versions at the cut that writes replaced, not handed over yet.
    kept: Vec<(CompactBytes, Entry)>,
}

impl Cut {
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A write during the snapshot: it keeps the version at the cut of a key that the walk
    /// has not taken yet.
    pub(crate) fn update<R>(&self, key: &[u8], now: &Now, f: impl Decide<R>) -> Updated<R> {
        let index = self.engine.shard_of(key);
        let _gate = self.gates.pass(index);
        let shard = &self.shards[index];
        if shard.walked.load(Ordering::Acquire) {
            return self.engine.update(key, now, f);
        }
        // Inside the shard's atomic step, so that no other write to the key comes between
        // the version seen here and the one this write replaces. A lock-free retry sees the
        // key settled already, by this write or by the one that beat it.
        self.engine.update_observed(key, now, |stored| shard.settle_by_write(key, stored), f)
    }

    /// FLUSHALL during a snapshot: removes everything and aborts the snapshot.
    pub(crate) fn clear(&self) -> u64 {
        let _gates = self.gates.hold_all();
        self.flushed.store(true, Ordering::Release);
        self.engine.clear()
    }
}

impl ShardCut {
    fn settled(&self) -> MutexGuard<'_, Settled> {
        self.progress.lock()
    }

    fn settle_by_write(&self, key: &[u8], stored: Option<&Entry>) {
        let mut settled = self.settled();
        if settled.keys.contains(key) {
            return;
        }
        let key = CompactBytes::from(key);
        if let Some(entry) = stored {
            settled.kept.push((key.clone(), entry.clone()));
        }
        settled.keys.insert(key);
    }

    /// The walk met `key`: whether it is the first to settle it.
    fn settle_by_walk(&self, key: &CompactBytes) -> bool {
        self.settled().keys.insert(key.clone())
    }

    fn take_kept(&self) -> Vec<(CompactBytes, Entry)> {
        std::mem::take(&mut self.settled().kept)
    }

    fn finish(&self) -> Vec<(CompactBytes, Entry)> {
        self.walked.store(true, Ordering::Release);
        std::mem::take(&mut *self.settled()).kept
    }
}

/// One key as it was at the cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEntry<'a> {
    pub key: &'a [u8],
    pub value: &'a Value,
    /// Deadline in milliseconds since the Unix epoch, if the key had one.
    pub expires_at_ms: Option<u64>,
}

/// What a completed snapshot handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotReport {
    pub keys: u64,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError<E> {
    #[error("the store was flushed during the snapshot")]
    Flushed,
    #[error(transparent)]
    Emit(E),
}

/// A cut taken by [`Store::snapshot`], to be walked with [`PointInTime::for_each`]. Until it
/// is dropped, writes keep the versions it needs, and no migration or other snapshot starts.
pub struct PointInTime<'a> {
    store: &'a Store,
    cut: Arc<Cut>,
    cut_ms: u64,
    keys: u64,
    volatile_keys: u64,
    _one_walk_at_a_time: MutexGuard<'a, ()>,
}

impl Store {
    /// Takes a point-in-time cut of the store now. Waits while a migration or another
    /// snapshot runs. The writes in flight at that moment finish first (microseconds).
    /// The caller must hold no [`Pass`]: the cut takes one, so that it never splits a
    /// transaction (`transaction.rs`).
    pub fn snapshot(&self) -> PointInTime<'_> {
        let walk = self.walking.lock();
        self.snapshot_after(walk, &self.pass())
    }

    /// [`Store::snapshot`], or `None` at once when a migration, another snapshot or a
    /// transaction runs: for a caller that holds writers back around the cut and must not
    /// hold them for long (nor wait for a transaction that waits for them).
    pub fn try_snapshot(&self) -> Option<PointInTime<'_>> {
        let walk = self.walking.try_lock()?;
        let pass = self.try_pass()?;
        Some(self.snapshot_after(walk, &pass))
    }

    fn snapshot_after<'a>(&'a self, walk: MutexGuard<'a, ()>, _cut_within: &Pass<'_>) -> PointInTime<'a> {
        let mut cut = Store::cut_together(vec![(self, walk)]);
        cut.pop().expect("one cut per store")
    }

    /// Takes one cut of several stores (the databases of a server) at one instant, each
    /// store's walk lock held by the caller, who also holds a pass or exclusivity (as
    /// [`Store::snapshot`] does), so that the cut splits no transaction.
    pub(crate) fn cut_together<'a>(stores: Vec<(&'a Store, MutexGuard<'a, ()>)>) -> Vec<PointInTime<'a>> {
        let cuts: Vec<Arc<Cut>> = stores.iter().map(|(store, _)| store.new_cut()).collect();
        let installs =
            stores.iter().zip(&cuts).map(|((store, _), cut)| (*store, &cut.gates, Layout::Saving(Arc::clone(cut))));
        let (cut_ms, totals) = install_all_behind_gates(installs, || {
            let cut_ms = stores.first().map_or(0, |(store, _)| store.now_ms());
            (cut_ms, cuts.iter().map(|cut| cut.engine.totals()).collect::<Vec<_>>())
        });
        stores
            .into_iter()
            .zip(cuts)
            .zip(totals)
            .map(|(((store, walk), cut), totals)| PointInTime {
                store,
                cut,
                cut_ms,
                keys: u64::try_from(totals.keys).unwrap_or(0),
                volatile_keys: u64::try_from(totals.volatile).unwrap_or(0),
                _one_walk_at_a_time: walk,
            })
            .collect()
    }

    /// A cut of the running engine, not installed yet; the caller holds the walk lock.
    fn new_cut(&self) -> Arc<Cut> {
        // In a `match`, so that the layout is let go before the cut waits for its users.
        let engine = match &**self.layout.load() {
            Layout::Stable(engine) => Arc::clone(engine),
            Layout::Migrating(_) | Layout::Saving(_) => {
                unreachable!("a migration or snapshot reinstalls a stable layout before it lets the next walk start")
            }
        };
        let shards = engine.shard_count();
        Arc::new(Cut {
            engine,
            gates: Gates::new(shards),
            shards: (0..shards).map(|_| CachePadded::new(ShardCut::default())).collect(),
            flushed: AtomicBool::new(false),
        })
    }
}

impl PointInTime<'_> {
    /// The store's clock at the cut, in milliseconds since the Unix epoch.
    pub fn cut_ms(&self) -> u64 {
        self.cut_ms
    }

    /// Keys at the cut, counting expired ones not reclaimed yet (a size hint).
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// Keys with a deadline at the cut (a size hint).
    pub fn volatile_keys(&self) -> u64 {
        self.volatile_keys
    }

    /// Calls `emit` once for every key live at the cut (entries already expired then are
    /// left out), chunk by chunk while writers go on. Stops at the first error of `emit`.
    pub fn for_each<E>(
        self,
        mut emit: impl FnMut(SnapshotEntry<'_>) -> Result<(), E>,
    ) -> Result<SnapshotReport, SnapshotError<E>> {
        let started = Instant::now();
        let mut keys = 0u64;
        let mut hand_over = |batch: Vec<(CompactBytes, Entry)>| -> Result<(), SnapshotError<E>> {
            for (key, entry) in batch.iter().filter(|(_, entry)| !entry.is_expired(self.cut_ms)) {
                let expires_at_ms = entry.is_volatile().then_some(entry.expires_at);
                emit(SnapshotEntry { key, value: &entry.value, expires_at_ms }).map_err(SnapshotError::Emit)?;
                keys += 1;
            }
            Ok(())
        };
        let cut = &self.cut;
        for (index, shard) in cut.shards.iter().enumerate() {
            let mut position = 0;
            loop {
                if cut.flushed.load(Ordering::Acquire) {
                    return Err(SnapshotError::Flushed);
                }
                let mut batch = Vec::new();
                position = cut.engine.scan_shard(index, position, SNAPSHOT_CHUNK, |key, entry| {
                    if shard.settle_by_walk(key) {
                        batch.push((key.clone(), entry.clone()));
                    }
                });
                batch.append(&mut shard.take_kept());
                hand_over(batch)?;
                if position == 0 {
                    break;
                }
            }
            let rest = {
                let _hold = cut.gates.hold(index);
                shard.finish()
            };
            hand_over(rest)?;
        }
        if cut.flushed.load(Ordering::Acquire) {
            return Err(SnapshotError::Flushed);
        }
        Ok(SnapshotReport { keys, duration: started.elapsed() })
    }
}

impl Drop for PointInTime<'_> {
    /// Back to the plain engine; the next walk starts once no write still passes the gates.
    fn drop(&mut self) {
        self.store.install(Layout::Stable(Arc::clone(&self.cut.engine)));
    }
}
