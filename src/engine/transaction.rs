//! Transactions: a group of operations that every other client sees take effect at once
//! (MULTI/EXEC, and the multi-key commands that promise atomicity).
//!
//! # Guarantee
//! Under every strategy and shard count, during migrations and snapshots too: the operations
//! run while an [`Exclusive`] is held appear, to every operation run under a [`Pass`], to take
//! effect at one instant; and nothing run under a pass overlaps them. A point-in-time
//! snapshot's cut (`snapshot.rs`) is taken under a pass, so a snapshot holds a whole
//! transaction or none of it. Operations run under neither (a caller of the engine's own
//! methods without a pass, the expiry sweeper, a migration's mover) may overlap a transaction:
//! the sweeper only removes keys that are already logically gone and the mover changes no
//! value, so neither changes what any client reads.
//!
//! # How
//! One reader-writer lock, split into [`STRIPES`] cache-padded stripes. A pass read-locks
//! the stripe of its thread (threads are given stripes in turn), so passes on different
//! threads touch different cache lines and never contend: one uncontended atomic each way.
//! An exclusive holder write-locks every stripe, in order, so it waits for the passes in
//! progress and holds back new ones until it is done: a transaction stops the world for
//! its own duration, as Redis's single thread runs an EXEC, and the strategies' single-key
//! operations run side by side again as soon as it ends. The price is that a reader under
//! `LockFree` or `CopyOnWrite`, which takes no lock of its own, waits while a transaction
//! runs (the README's table states this per strategy).
//!
//! The store's time stands still while exclusivity is held, as Redis freezes its clock for
//! a transaction (and for each command): the holder reads "now" once, when it gets
//! exclusivity, so no key expires between a transaction's commands and every deadline they
//! compute starts from the same instant. The expiry sweeper reclaims under a pass, so it
//! cannot remove a key that the transaction still sees alive.
//!
//! A thread must not ask for a pass or for exclusivity while it holds either: the stripes are
//! not re-entrant (a nested pass could wait behind an exclusive holder that waits for the
//! outer one). The server takes one per command (`server/command/mod.rs`).
//!
//! # How it is tested
//! `tests/transactions.rs` runs transfers between keys as transactions against readers
//! that check an invariant over several keys under a pass, for every strategy, and across a
//! migration; `tests/shuttle.rs` runs the same on shuttle's scheduler through `sync.rs`, and
//! shows that the check catches transfers made without exclusivity.
//! `tests/multikey_linearizability.rs` checks, over the network, that histories mixing
//! EXECs, MSET, MSETNX and RENAME with single-key commands are linearizable as a whole (each
//! transaction at one instant), under every strategy and across migrations, and that the
//! checker rejects the same histories when their EXECs and MSETs are sent unwrapped.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use super::databases::Databases;
use super::store::{Shared, Store};
use super::sync::{AtomicU64, AtomicUsize, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard, unlock_fair};

/// Stripes of the transaction lock: enough that the worker threads of a large machine rarely
/// share one, few enough that an exclusive acquisition (one lock per stripe) stays short.
const STRIPES: usize = 16;

/// The store's transaction lock.
pub(crate) struct TransactionGate {
    stripes: Box<[CachePadded<RwLock<()>>]>,
    /// The stripe the next thread to ask for one gets.
    next_stripe: AtomicUsize,
    /// The store's "now" while exclusivity is held, in milliseconds; [`NOT_FROZEN`] otherwise.
    frozen_ms: CachePadded<AtomicU64>,
}

const NOT_FROZEN: u64 = u64::MAX;

impl Default for TransactionGate {
    fn default() -> Self {
        TransactionGate {
            stripes: (0..STRIPES).map(|_| CachePadded::new(RwLock::new(()))).collect(),
            next_stripe: AtomicUsize::new(0),
            frozen_ms: CachePadded::new(AtomicU64::new(NOT_FROZEN)),
        }
    }
}

thread_local! {
    /// This thread's stripe, chosen on its first pass. Only spreads the load: any stripe
    /// would be correct, since an exclusive holder takes them all.
    static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
}

impl TransactionGate {
    fn stripe(&self) -> &RwLock<()> {
        let index = STRIPE.with(|stripe| {
            *stripe.get().get_or_insert_with(|| self.next_stripe.fetch_add(1, Ordering::Relaxed) % STRIPES)
        });
        // A stripe index from another store's gate is still below STRIPES.
        &self.stripes[index % STRIPES]
    }

    /// The time a transaction froze, while one runs.
    pub(crate) fn frozen_ms(&self) -> Option<u64> {
        match self.frozen_ms.load(Ordering::Relaxed) {
            NOT_FROZEN => None,
            frozen => Some(frozen),
        }
    }
}

/// Permission to run operations that see every transaction whole: held, no transaction runs.
#[must_use = "a pass protects nothing once dropped"]
pub struct Pass<'a> {
    _stripe: RwLockReadGuard<'a, ()>,
}

/// Exclusivity over every pass: while it is held, what the holder does is one transaction.
#[must_use = "exclusivity ends when this is dropped"]
pub struct Exclusive<'a> {
    stripes: Vec<RwLockWriteGuard<'a, ()>>,
    frozen_ms: &'a AtomicU64,
}

impl Exclusive<'_> {
    /// Ends the exclusivity handing the store to the threads already waiting for it, passes
    /// and transactions alike, instead of letting this thread take it back at once.
    pub fn release_fairly(mut self) {
        self.frozen_ms.store(NOT_FROZEN, Ordering::Relaxed);
        std::mem::take(&mut self.stripes).into_iter().for_each(unlock_fair);
    }
}

impl Drop for Exclusive<'_> {
    /// The clock moves again before the stripes are released (fields drop after this), so
    /// no pass ever sees a transaction's frozen time. After [`Exclusive::release_fairly`]
    /// there is nothing left to do: another transaction may have frozen the clock since.
    fn drop(&mut self) {
        if !self.stripes.is_empty() {
            self.frozen_ms.store(NOT_FROZEN, Ordering::Relaxed);
        }
    }
}

impl Shared {
    pub(crate) fn pass(&self) -> Pass<'_> {
        Pass { _stripe: self.transactions.stripe().read() }
    }

    pub(crate) fn try_pass(&self) -> Option<Pass<'_>> {
        self.transactions.stripe().try_read().map(|stripe| Pass { _stripe: stripe })
    }

    fn exclusive(&self) -> Exclusive<'_> {
        let stripes = self.transactions.stripes.iter().map(|stripe| stripe.write()).collect();
        let frozen_ms = &*self.transactions.frozen_ms;
        frozen_ms.store(self.clock_ms(), Ordering::Relaxed);
        Exclusive { stripes, frozen_ms }
    }
}

/// The transaction lock is one for all the databases of a server, so a store's and its
/// [`Databases`]' are the same lock.
impl Store {
    /// A pass for one operation or command that must see transactions whole (a read of
    /// several keys, or a write that a snapshot's cut must not split). Cheap: one uncontended
    /// atomic on a stripe of the caller's thread; waits only while a transaction runs.
    pub fn pass(&self) -> Pass<'_> {
        self.shared.pass()
    }

    /// [`Store::pass`] that gives up at once when a transaction runs or waits to run.
    pub fn try_pass(&self) -> Option<Pass<'_>> {
        self.shared.try_pass()
    }

    /// Exclusivity for a transaction: waits for the passes in progress, then holds back new
    /// ones until the returned guard is dropped. The store's time stands still until then.
    pub fn exclusive(&self) -> Exclusive<'_> {
        self.shared.exclusive()
    }
}

impl Databases {
    /// [`Store::exclusive`]: every database is held.
    pub fn exclusive(&self) -> Exclusive<'_> {
        self.shared.exclusive()
    }

    /// [`Store::pass`]: a pass through the lock every database shares.
    pub fn pass(&self) -> Pass<'_> {
        self.shared.pass()
    }
}
