//! The synchronization primitives of the engine, from one place: the locked shards' locks
//! (`locked.rs`), copy-on-write publication (`cow.rs`), the gates, layout swaps and walk lock
//! of migrations and snapshots (`gates.rs`, `migration.rs`, `snapshot.rs`, `store.rs`), and
//! the atomics beside them (`shard.rs`).
//!
//! In a normal build these are plain re-exports of parking_lot, arc-swap and std: nothing
//! changes and nothing costs more. Built with the test-only `shuttle`
//! feature (as `tests/shuttle.rs` is in CI), they are shuttle's scheduled twins behind the same API, so
//! that shuttle drives the real engine code through its interleavings, as tokio's `loom`
//! facade lets loom drive tokio. parking_lot's API (no poisoning, `Option` from `try_*`,
//! fair unlock) is kept by thin adapters over shuttle's std-like locks, and `ArcSwap`, which
//! has no shuttle twin, becomes a shuttle `RwLock<Arc<T>>` with the few methods the engine
//! uses.
//!
//! Not routed through here, so shuttle cannot schedule inside them: papaya's maps (the
//! `LockFree` shard keeps its own std atomics), the clock (`clock.rs`), and the sweeper's
//! thread and channel (`sweeper.rs`; shuttle's `recv_timeout` never times out), which
//! `tests/shuttle.rs` still models.

pub(crate) use std::sync::Arc;
pub(crate) use std::sync::atomic::Ordering;

#[cfg(not(feature = "shuttle"))]
pub(crate) use self::native::*;
#[cfg(feature = "shuttle")]
pub(crate) use self::scheduled::*;

#[cfg(not(feature = "shuttle"))]
mod native {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize};
    pub(crate) use std::thread::sleep;

    pub(crate) use arc_swap::ArcSwap;
    pub(crate) use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

    /// Releases `guard` so that the threads already waiting for the lock go first.
    pub(crate) fn unlock_fair<T>(guard: RwLockWriteGuard<'_, T>) {
        RwLockWriteGuard::unlock_fair(guard);
    }
}

#[cfg(feature = "shuttle")]
mod scheduled {
    use std::ops::Deref;
    use std::sync::{Arc, PoisonError, TryLockError};
    use std::time::Duration;

    pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize};
    pub(crate) use shuttle::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

    /// Shuttle has no time: a pause is a yield, which its schedulers also read as "let the
    /// others run first" (a waiting loop would otherwise be rescheduled forever under PCT).
    pub(crate) fn sleep(_pause: Duration) {
        shuttle::thread::yield_now();
    }

    /// Shuttle's locks have no fair unlock; every unlock is a scheduling point anyway.
    pub(crate) fn unlock_fair<T>(guard: RwLockWriteGuard<'_, T>) {
        drop(guard);
    }

    /// parking_lot never poisons; a panic under shuttle fails the test whatever the lock does.
    fn unpoisoned<G>(result: Result<G, TryLockError<G>>) -> Option<G> {
        match result {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// parking_lot's `Mutex` API over shuttle's.
    #[derive(Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            unpoisoned(self.0.try_lock())
        }
    }

    /// parking_lot's `RwLock` API over shuttle's.
    #[derive(Default)]
    pub(crate) struct RwLock<T>(shuttle::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(shuttle::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
            unpoisoned(self.0.try_read())
        }

        pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
            unpoisoned(self.0.try_write())
        }
    }

    /// The part of `arc_swap::ArcSwap` the engine uses. A load holds a clone of the `Arc`, so
    /// after a swap `Arc::strong_count` counts every holder, as arc-swap's does once it has
    /// paid its readers' debts (`wait_until_unused` in gates.rs relies on that).
    pub(crate) struct ArcSwap<T>(RwLock<Arc<T>>);

    /// What [`ArcSwap::load`] returns: like arc-swap's guard, it dereferences to the `Arc`.
    pub(crate) struct Guard<T>(Arc<T>);

    impl<T> Deref for Guard<T> {
        type Target = Arc<T>;

        fn deref(&self) -> &Arc<T> {
            &self.0
        }
    }

    impl<T> ArcSwap<T> {
        pub(crate) fn from_pointee(value: T) -> Self {
            ArcSwap(RwLock::new(Arc::new(value)))
        }

        pub(crate) fn load(&self) -> Guard<T> {
            Guard(self.load_full())
        }

        pub(crate) fn load_full(&self) -> Arc<T> {
            Arc::clone(&self.0.read())
        }

        pub(crate) fn store(&self, value: Arc<T>) {
            drop(self.swap(value));
        }

        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *self.0.write(), value)
        }
    }
}
