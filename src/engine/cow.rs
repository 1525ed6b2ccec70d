//! The `CopyOnWrite` shard: readers load an immutable snapshot through an atomic pointer
//! and never wait; writers (serialized by a writer lock) publish a new snapshot with the
//! next version number.
//!
//! Snapshots are persistent maps (imbl), so a new version shares all but O(log n) nodes
//! with the previous one: a write costs a path copy, never a copy of the whole map. Like
//! the locked shards, a snapshot keeps its keys in a dense vector with swap-remove deletes,
//! which gives SCAN a stable position (see `locked.rs`), here without any lock.
//!
//! Every snapshot map of the process hashes with one hasher ([`trie_order`]), so that a key
//! sits at the same place in the trie of every copy-on-write shard. A migration moves keys in
//! that order: a chunk of neighbouring keys then copies a few shared paths in the source and
//! the target tries, not one path per key (docs/BENCHMARKS.md, "Live migration").

use super::compact::CompactBytes;
use super::entry::{Entry, Footprint, Write};
use super::scan::reverse_window;
use super::shard::{KeyHasher, Router, Shard, acquire};
use super::sync::{Arc, ArcSwap, AtomicU64, Mutex, MutexGuard, Ordering};
use rand::RngExt;
use std::hash::BuildHasher;
use std::sync::LazyLock;

/// The hasher of every snapshot map: seeded at random once per process, so that it is as
/// unpredictable to clients as a per-map seed, and shared so that [`trie_order`] holds for
/// every map.
static TRIE_HASHER: LazyLock<KeyHasher> = LazyLock::new(KeyHasher::default);

/// Where `key` sits in every copy-on-write shard's trie, as a number: imbl's trie indexes a
/// key by the low 32 bits of its hash, five bits per level from the lowest, so keys that are
/// close in this order (those bits reversed) share their path from the root down.
pub(crate) fn trie_order(key: &[u8]) -> u32 {
    (TRIE_HASHER.hash_one(key) as u32).reverse_bits()
}

#[derive(Clone, Debug)]
struct Slot {
    entry: Entry,
    /// Position of the key in [`Snapshot::order`].
    position: usize,
}

#[derive(Clone)]
struct Snapshot {
    version: u64,
    entries: imbl::GenericHashMap<CompactBytes, Slot, KeyHasher, imbl::shared_ptr::DefaultSharedPtr>,
    order: imbl::Vector<CompactBytes>,
}

impl Snapshot {
    fn empty(version: u64) -> Self {
        Snapshot {
            version,
            entries: imbl::GenericHashMap::with_hasher(TRIE_HASHER.clone()),
            order: imbl::Vector::new(),
        }
    }

    fn put(&mut self, key: &[u8], entry: Entry) {
        if let Some(slot) = self.entries.get_mut(key) {
            slot.entry = entry;
            return;
        }
        let key = CompactBytes::from(key);
        self.order.push_back(key.clone());
        self.entries.insert(key, Slot { entry, position: self.order.len() - 1 });
    }

    /// Removes a key that a migration moved out, leaving its place in `order` empty: walks
    /// skip keys without an entry, and the key's neighbours keep their positions, so the
    /// removal copies one path of the trie and none of `order`. Only a migration's source,
    /// which takes no new key and is dropped when the migration ends, is emptied this way.
    fn forget(&mut self, key: &[u8]) {
        self.entries.remove(key);
    }

    fn remove(&mut self, key: &[u8]) {
        let Some(removed) = self.entries.remove(key) else { return };
        let Some(last) = self.order.pop_back() else { return };
        if removed.position < self.order.len() {
            // Move the last key into the hole, as `swap_remove` does.
            if let Some(slot) = self.entries.get_mut(&*last) {
                slot.position = removed.position;
            }
            self.order.set(removed.position, last);
        }
    }
}

pub(crate) struct CowShard {
    current: ArcSwap<Snapshot>,
    writer: Mutex<()>,
    waited_ns: AtomicU64,
}

impl CowShard {
    /// Runs `change` on a copy of the current snapshot and publishes it as the next version,
    /// holding the writer lock so that no concurrent write is lost.
    fn publish(&self, current: &Snapshot, change: impl FnOnce(&mut Snapshot)) {
        let mut next = current.clone();
        change(&mut next);
        next.version = current.version + 1;
        self.current.store(Arc::new(next));
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        acquire(|| self.writer.try_lock(), || self.writer.lock(), &self.waited_ns)
    }
}

impl Shard for CowShard {
    fn with_capacity(_capacity: usize, _slots: usize) -> Self {
        CowShard {
            current: ArcSwap::from_pointee(Snapshot::empty(0)),
            writer: Mutex::new(()),
            waited_ns: AtomicU64::new(0),
        }
    }

    fn read<R>(&self, key: &[u8], _route: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        let snapshot = self.current.load();
        f(snapshot.entries.get(key).map(|slot| &slot.entry))
    }

    fn update<R>(&self, key: &[u8], _route: u64, mut f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        let _writer = self.lock_writer();
        let current = self.current.load_full();
        let existing = current.entries.get(key).map(|slot| &slot.entry);
        let (write, reply) = f(existing);
        match write {
            Write::Keep => {}
            Write::Put(entry) => self.publish(&current, |next| next.put(key, entry)),
            Write::Remove if existing.is_some() => self.publish(&current, |next| next.remove(key)),
            Write::Remove => {}
        }
        reply
    }

    fn scan(&self, position: u64, count: usize, _order: &Router, mut visit: impl FnMut(&CompactBytes, &Entry)) -> u64 {
        let snapshot = self.current.load();
        let (window, next) = reverse_window(position, snapshot.order.len(), count);
        for index in window.rev() {
            if let Some(key) = snapshot.order.get(index)
                && let Some(slot) = snapshot.entries.get(&**key)
            {
                visit(key, &slot.entry);
            }
        }
        next
    }

    /// Lists the keys of one snapshot, taken when the drain starts, in batches of `size` from
    /// the end. That snapshot holds every key the drain must move, since a drained shard takes
    /// no new key, and listing it costs no lock. Keys moved out are forgotten, not removed
    /// from `order` (see [`Snapshot::forget`]), so `order` never empties: the drain passes
    /// over it once.
    fn drain_keys(&self, size: usize, mut each: impl FnMut(&[CompactBytes])) {
        let order = self.current.load().order.clone();
        let mut end = order.len();
        while end > 0 {
            let start = end.saturating_sub(size.max(1));
            let batch: Vec<CompactBytes> = (start..end).filter_map(|i| order.get(i).cloned()).collect();
            each(&batch);
            end = start;
        }
    }

    /// One new version for the whole chunk: after the first change copies a path, the
    /// others change the new version's own nodes in place.
    fn insert_moved(&self, entries: &[(CompactBytes, Entry)], _router: &Router) {
        let _writer = self.lock_writer();
        self.publish(&self.current.load_full(), |next| {
            for (key, entry) in entries {
                next.put(key, entry.clone());
            }
        });
    }

    fn remove_moved(&self, keys: &[CompactBytes], _router: &Router) {
        let _writer = self.lock_writer();
        self.publish(&self.current.load_full(), |next| {
            for key in keys {
                next.forget(key);
            }
        });
    }

    fn random_key(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        let snapshot = self.current.load();
        if snapshot.order.is_empty() {
            return None;
        }
        snapshot.order.get(rng.random_range(0..snapshot.order.len())).cloned()
    }

    fn clear(&self) -> Footprint {
        let _writer = self.lock_writer();
        let old = self.current.load_full();
        self.current.store(Arc::new(Snapshot::empty(old.version + 1)));
        let mut removed = Footprint::default();
        for (key, slot) in &old.entries {
            removed += Footprint::of(key, &slot.entry);
        }
        removed
    }

    fn lock_wait_ns(&self) -> u64 {
        self.waited_ns.load(Ordering::Relaxed)
    }

    fn published_version(&self) -> Option<u64> {
        Some(self.current.load().version)
    }
}
