//! Shards guarded by a lock: `Mutex` (one lock for everything in the shard) and `RwLock`
//! (readers share). One implementation serves both through [`MapLock`], so the two
//! strategies differ only in the lock they take.
//!
//! The map is an `IndexMap` because its dense entry vector gives SCAN a stable, resumable
//! position: walking indices downwards while deletes use `swap_remove` never moves an
//! unvisited entry into the visited range (only the last entry moves, and it has already
//! been visited), which is exactly Redis's SCAN guarantee with one bounded chunk per lock.

use indexmap::IndexMap;
use std::ops::{Deref, DerefMut};

use super::compact::CompactBytes;
use super::entry::{Entry, Footprint, Write};
use super::scan::reverse_window;
use super::shard::{KeyHasher, Router, Shard, acquire};
use super::sync::{AtomicU64, Mutex, MutexGuard, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard};
use rand::RngExt;

pub(crate) type Map = IndexMap<CompactBytes, Entry, KeyHasher>;

/// A lock around a [`Map`]: exclusive access for writers, and whatever readers get.
pub(crate) trait MapLock: Send + Sync {
    type Read<'a>: Deref<Target = Map>
    where
        Self: 'a;
    type Write<'a>: DerefMut<Target = Map>
    where
        Self: 'a;
    fn wrap(map: Map) -> Self;
    fn try_read(&self) -> Option<Self::Read<'_>>;
    fn read(&self) -> Self::Read<'_>;
    fn try_write(&self) -> Option<Self::Write<'_>>;
    fn write(&self) -> Self::Write<'_>;
}

impl MapLock for Mutex<Map> {
    type Read<'a> = MutexGuard<'a, Map>;
    type Write<'a> = MutexGuard<'a, Map>;
    fn wrap(map: Map) -> Self {
        Mutex::new(map)
    }
    fn try_read(&self) -> Option<Self::Read<'_>> {
        self.try_lock()
    }
    fn read(&self) -> Self::Read<'_> {
        self.lock()
    }
    fn try_write(&self) -> Option<Self::Write<'_>> {
        self.try_lock()
    }
    fn write(&self) -> Self::Write<'_> {
        self.lock()
    }
}

impl MapLock for RwLock<Map> {
    type Read<'a> = RwLockReadGuard<'a, Map>;
    type Write<'a> = RwLockWriteGuard<'a, Map>;
    fn wrap(map: Map) -> Self {
        RwLock::new(map)
    }
    fn try_read(&self) -> Option<Self::Read<'_>> {
        RwLock::try_read(self)
    }
    fn read(&self) -> Self::Read<'_> {
        RwLock::read(self)
    }
    fn try_write(&self) -> Option<Self::Write<'_>> {
        RwLock::try_write(self)
    }
    fn write(&self) -> Self::Write<'_> {
        RwLock::write(self)
    }
}

/// A shard whose map is guarded by the lock `L`.
pub(crate) struct Locked<L> {
    lock: L,
    waited_ns: AtomicU64,
}

pub(crate) type MutexShard = Locked<Mutex<Map>>;
pub(crate) type RwLockShard = Locked<RwLock<Map>>;

fn empty_map() -> Map {
    IndexMap::with_hasher(KeyHasher::default())
}

impl<L: MapLock> Locked<L> {
    fn read_guard(&self) -> L::Read<'_> {
        acquire(|| self.lock.try_read(), || self.lock.read(), &self.waited_ns)
    }

    fn write_guard(&self) -> L::Write<'_> {
        acquire(|| self.lock.try_write(), || self.lock.write(), &self.waited_ns)
    }
}

impl<L: MapLock> Shard for Locked<L> {
    fn with_capacity(capacity: usize, _slots: usize) -> Self {
        let map = IndexMap::with_capacity_and_hasher(capacity, KeyHasher::default());
        Locked { lock: L::wrap(map), waited_ns: AtomicU64::new(0) }
    }

    fn read<R>(&self, key: &[u8], _route: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        f(self.read_guard().get(key))
    }

    fn update<R>(&self, key: &[u8], _route: u64, mut f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        let mut map = self.write_guard();
        // Whatever is replaced or removed is dropped after the lock is released, so freeing
        // a large value never lengthens the critical section.
        let replaced;
        let reply = match map.get_index_of(key) {
            Some(index) => {
                let (write, reply) = f(map.get_index(index).map(|(_, entry)| entry));
                replaced = match write {
                    Write::Keep => None,
                    Write::Put(entry) => map.get_index_mut(index).map(|(_, slot)| std::mem::replace(slot, entry)),
                    Write::Remove => map.swap_remove_index(index).map(|(_, entry)| entry),
                };
                reply
            }
            None => {
                let (write, reply) = f(None);
                if let Write::Put(entry) = write {
                    // The key is copied only when it is new: requests are never kept alive.
                    map.insert(CompactBytes::from(key), entry);
                }
                replaced = None;
                reply
            }
        };
        drop(map);
        drop(replaced);
        reply
    }

    fn scan(&self, position: u64, count: usize, _order: &Router, mut visit: impl FnMut(&CompactBytes, &Entry)) -> u64 {
        let map = self.read_guard();
        let (window, next) = reverse_window(position, map.len(), count);
        for index in window.rev() {
            if let Some((key, entry)) = map.get_index(index) {
                visit(key, entry);
            }
        }
        next
    }

    /// Takes the last `size` keys each time: removing them is a pop, and nothing moves.
    fn drain_keys(&self, size: usize, mut each: impl FnMut(&[CompactBytes])) {
        loop {
            let batch: Vec<CompactBytes> = {
                let map = self.read_guard();
                let len = map.len();
                (len.saturating_sub(size.max(1))..len)
                    .filter_map(|i| map.get_index(i).map(|(k, _)| k.clone()))
                    .collect()
            };
            if batch.is_empty() {
                return;
            }
            each(&batch);
        }
    }

    fn entries_of(&self, keys: &[&CompactBytes], _router: &Router) -> Vec<(CompactBytes, Entry)> {
        let map = self.read_guard();
        keys.iter().filter_map(|&key| Some((key.clone(), map.get(&**key)?.clone()))).collect()
    }

    fn insert_moved(&self, entries: &[(CompactBytes, Entry)], _router: &Router) {
        let mut map = self.write_guard();
        for (key, entry) in entries {
            map.insert(key.clone(), entry.clone());
        }
    }

    fn remove_moved(&self, keys: &[CompactBytes], _router: &Router) {
        let mut map = self.write_guard();
        // Dropped after the lock is released, as in `update`.
        let removed: Vec<Entry> = keys.iter().filter_map(|key| map.swap_remove(&**key)).collect();
        drop(map);
        drop(removed);
    }

    fn random_key(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        let map = self.read_guard();
        if map.is_empty() {
            return None;
        }
        map.get_index(rng.random_range(0..map.len())).map(|(key, _)| key.clone())
    }

    fn clear(&self) -> Footprint {
        let old = std::mem::replace(&mut *self.write_guard(), empty_map());
        let mut removed = Footprint::default();
        for (key, entry) in &old {
            removed += Footprint::of(key, entry);
        }
        removed
    }

    fn lock_wait_ns(&self) -> u64 {
        self.waited_ns.load(Ordering::Relaxed)
    }
}
