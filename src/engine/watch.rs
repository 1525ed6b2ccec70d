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
//! The databases of a server share one registry of watched keys, each named by its database
//! number and key, with the watchers that watch it (a client may watch keys of several
//! databases, and a SWAPDB leaves a watch on the database number, as Redis does). Every
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
    /// The keys with their database numbers, each once.
    keys: Vec<(usize, CompactBytes)>,
}

/// A watcher of one key.
struct Registration {
    changed: Arc<AtomicBool>,
    /// Whether the key was alive when watched; `None` until the watcher has looked.
    alive: Option<bool>,
}

/// The registry of watched keys, by database number and key.
#[derive(Default)]
pub(crate) struct Watches {
    /// Registrations in `keys`: zero means no write needs to look.
    registered: AtomicUsize,
    keys: Mutex<HashMap<(usize, CompactBytes), Vec<Registration>, KeyHasher>>,
}

impl Watches {
    /// Tells the watchers of `key` in database `number` that it changed. `expired`: the
    /// change was the removal of an expired entry, which only counts for watchers that saw
    /// the key alive.
    pub(crate) fn touch(&self, number: usize, key: &[u8], expired: bool) {
        // Sequentially consistent with `Store::watch`'s increment: either the write sees the
        // registration, or the watcher's look at the key (after the increment) sees the write.
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(watchers) = self.keys.lock().get(&(number, CompactBytes::from(key))) {
            for watcher in watchers {
                if !(expired && watcher.alive == Some(false)) {
                    watcher.changed.store(true, Ordering::Release);
                }
            }
        }
    }

    /// The watched keys of database `number` (FLUSHDB touches those that exist).
    pub(crate) fn watched_keys(&self, number: usize) -> Vec<CompactBytes> {
        if self.registered.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        self.keys.lock().keys().filter(|(db, _)| *db == number).map(|(_, key)| key.clone()).collect()
    }
}

impl Store {
    /// WATCH: `key` counts for `watcher` from now on (watching it twice changes nothing).
    pub fn watch(&self, watcher: &mut Watcher, key: &[u8]) {
        let number = self.number();
        if watcher.keys.iter().any(|(db, watched)| *db == number && **watched == *key) {
            return;
        }
        let named = (number, CompactBytes::from(key));
        let watches = &self.shared.watches;
        watches.registered.fetch_add(1, Ordering::SeqCst);
        watches
            .keys
            .lock()
            .entry(named.clone())
            .or_default()
            .push(Registration { changed: Arc::clone(&watcher.changed), alive: None });
        // Registered first: a change from here on counts, whatever this look finds.
        let alive = self.is_live(key);
        if let Some(registration) = watches.keys.lock().get_mut(&named).and_then(|watchers| {
            watchers.iter_mut().find(|registration| Arc::ptr_eq(&registration.changed, &watcher.changed))
        }) {
            registration.alive = Some(alive);
        }
        watcher.keys.push(named);
    }

    /// UNWATCH (also after EXEC and DISCARD, and when the client goes): forgets every key.
    pub fn unwatch(&self, watcher: &mut Watcher) {
        if watcher.keys.is_empty() {
            watcher.changed.store(false, Ordering::Relaxed);
            return;
        }
        let watches = &self.shared.watches;
        let mut keys = watches.keys.lock();
        for named in watcher.keys.drain(..) {
            if let Some(watchers) = keys.get_mut(&named) {
                watchers.retain(|registration| !Arc::ptr_eq(&registration.changed, &watcher.changed));
                watches.registered.fetch_sub(1, Ordering::SeqCst);
                if watchers.is_empty() {
                    keys.remove(&named);
                }
            }
        }
        drop(keys);
        // A fresh flag: a late touch of the old registrations cannot reach the next watch.
        watcher.changed = Arc::new(AtomicBool::new(false));
    }

    /// Whether any key `watcher` watches in this store's database changed since it was
    /// watched ([`Databases::watched_changed`](crate::engine::Databases::watched_changed) looks in every database): its transaction
    /// must not run. Call it with the store held exclusively, so that no write is in flight.
    pub fn watched_changed(&self, watcher: &Watcher) -> bool {
        watcher.changed(|number| (number == self.number()).then_some(self))
    }
}

impl Watcher {
    /// Whether a watched key changed; `store_of` gives the store of a database number.
    pub(crate) fn changed<'s>(&self, store_of: impl Fn(usize) -> Option<&'s Store>) -> bool {
        // A key alive when watched that has expired since changed, even if nobody has reclaimed
        // it yet: reclaiming it (as `exists` does) touches it.
        for (number, key) in &self.keys {
            if let Some(store) = store_of(*number) {
                store.exists(key);
            }
        }
        self.changed.load(Ordering::Acquire)
    }
}
