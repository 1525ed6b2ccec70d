//! WATCH: optimistic locking. A client watches keys, and its next transaction is refused if
//! any of them changed in the meantime.
//!
//! # Guarantee
//! As Redis's `touchWatchedKey`: a watched key counts as changed by every write that took
//! effect on it (a value stored, even the same one; a deadline set or removed; a deletion;
//! an eviction), by FLUSHALL when it existed, and by expiring when it was alive when
//! watched; a key that had already expired when it was watched may be reclaimed without
//! counting. A write that ran concurrently with WATCH itself may count as a change (never
//! the other way round): the registration comes before the look at the key.
//!
//! # How
//! The store keeps a registry of watched keys, each with the watchers that watch it. Every
//! write that took effect asks the registry (`Store::update_at`); with nothing watched
//! anywhere, which is the normal state, that costs one atomic load. A transaction checks
//! its watcher's flag while it holds the store exclusively (`transaction.rs`), so every
//! write that completed before it has had its say.
//!
//! # How it is tested
//! `tests/server_transactions.rs` drives WATCH against every kind of change from a second
//! client, under every strategy; the Redis oracle compares the single-client cases.

use std::collections::HashMap;

use super::compact::CompactBytes;
use super::shard::KeyHasher;
use super::store::Store;
use super::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};

/// One client's watched keys and whether any of them changed.
#[derive(Default)]
pub struct Watcher {
    changed: Arc<AtomicBool>,
    /// The keys, each once.
    keys: Vec<CompactBytes>,
}

/// A watcher of one key.
struct Registration {
    changed: Arc<AtomicBool>,
    /// Whether the key was alive when watched; `None` until the watcher has looked.
    alive: Option<bool>,
}

/// The store's registry of watched keys.
#[derive(Default)]
pub(crate) struct Watches {
    /// Registrations in `keys`: zero means no write needs to look.
    registered: AtomicUsize,
    keys: Mutex<HashMap<CompactBytes, Vec<Registration>, KeyHasher>>,
}

impl Watches {
    /// Tells the watchers of `key` that it changed. `expired`: the change was the removal of
    /// an expired entry, which only counts for watchers that saw the key alive.
    pub(crate) fn touch(&self, key: &[u8], expired: bool) {
        // Sequentially consistent with `Store::watch`'s increment: either the write sees the
        // registration, or the watcher's look at the key (after the increment) sees the write.
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(watchers) = self.keys.lock().get(key) {
            for watcher in watchers {
                if !(expired && watcher.alive == Some(false)) {
                    watcher.changed.store(true, Ordering::Release);
                }
            }
        }
    }

    /// The watched keys (FLUSHALL touches those that exist).
    pub(crate) fn watched_keys(&self) -> Vec<CompactBytes> {
        if self.registered.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        self.keys.lock().keys().cloned().collect()
    }
}

impl Store {
    /// WATCH: `key` counts for `watcher` from now on (watching it twice changes nothing).
    pub fn watch(&self, watcher: &mut Watcher, key: &[u8]) {
        if watcher.keys.iter().any(|watched| **watched == *key) {
            return;
        }
        let key = CompactBytes::from(key);
        self.watches.registered.fetch_add(1, Ordering::SeqCst);
        self.watches
            .keys
            .lock()
            .entry(key.clone())
            .or_default()
            .push(Registration { changed: Arc::clone(&watcher.changed), alive: None });
        // Registered first: a change from here on counts, whatever this look finds.
        let alive = self.is_live(&key);
        if let Some(registration) = self.watches.keys.lock().get_mut(&key).and_then(|watchers| {
            watchers.iter_mut().find(|registration| Arc::ptr_eq(&registration.changed, &watcher.changed))
        }) {
            registration.alive = Some(alive);
        }
        watcher.keys.push(key);
    }

    /// UNWATCH (also after EXEC and DISCARD, and when the client goes): forgets every key.
    pub fn unwatch(&self, watcher: &mut Watcher) {
        if watcher.keys.is_empty() {
            watcher.changed.store(false, Ordering::Relaxed);
            return;
        }
        let mut keys = self.watches.keys.lock();
        for key in watcher.keys.drain(..) {
            if let Some(watchers) = keys.get_mut(&*key) {
                watchers.retain(|registration| !Arc::ptr_eq(&registration.changed, &watcher.changed));
                self.watches.registered.fetch_sub(1, Ordering::SeqCst);
                if watchers.is_empty() {
                    keys.remove(&*key);
                }
            }
        }
        drop(keys);
        // A fresh flag: a late touch of the old registrations cannot reach the next watch.
        watcher.changed = Arc::new(AtomicBool::new(false));
    }

    /// Whether any key `watcher` watches changed since it was watched: its transaction must
    /// not run. Call it with the store held exclusively, so that no write is in flight.
    pub fn watched_changed(&self, watcher: &Watcher) -> bool {
        // A key alive when watched that has expired since changed, even if nobody has reclaimed
        // it yet: reclaiming it (as `exists` does) touches it.
        for key in &watcher.keys {
            self.exists(key);
        }
        watcher.changed.load(Ordering::Acquire)
    }
}
