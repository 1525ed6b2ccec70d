//! Per-shard gates, and the barrier that installs a new [`Layout`] behind them.
//!
//! A store-wide walk (a migration, a point-in-time snapshot) must know that every write to a
//! shard either happened before it took over that shard or is seen by it. Writers take their
//! shard's gate shared (one uncontended atomic); the walker takes it exclusively for one
//! bounded chunk at a time. To start a walk, the new layout is published with every gate
//! closed, and the gates open only once no operation still holds the previous layout, so
//! that from then on every write goes through a gate.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::store::{Layout, Store};
use super::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, sleep, unlock_fair};

pub(crate) struct Gates(Box<[CachePadded<RwLock<()>>]>);

impl Gates {
    pub(crate) fn new(shards: usize) -> Self {
        Gates((0..shards).map(|_| CachePadded::new(RwLock::new(()))).collect())
    }

    /// A writer's pass through shard `index`: the walker cannot work on it meanwhile.
    pub(crate) fn pass(&self, index: usize) -> RwLockReadGuard<'_, ()> {
        self.0[index].read()
    }

    /// The walker's hold on shard `index`: no writer is inside it meanwhile.
    pub(crate) fn hold(&self, index: usize) -> RwLockWriteGuard<'_, ()> {
        self.0[index].write()
    }

    /// Every gate held at once: nothing is written while the guards live.
    pub(crate) fn hold_all(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.0.iter().map(|gate| gate.write()).collect()
    }
}

/// Releases a walker's hold fairly, so that writers waiting for the shard go before the
/// walker's next chunk.
pub(crate) fn release_fairly(hold: RwLockWriteGuard<'_, ()>) {
    unlock_fair(hold);
}

impl Store {
    /// Publishes `layout`, whose writers pass through `gates`, and returns once no operation
    /// holds the previous layout. The gates stay closed until then: a writer still on the
    /// previous layout writes without a gate, and no writer of the new one may run beside it
    /// (shuttle found the lost write this prevents, `tests/shuttle.rs`). So no operation may
    /// load the layout while it holds it (`store.rs` never nests them). `at_cut` runs at the
    /// instant between: no write is in flight, and every later one passes through the gates.
    pub(crate) fn install_behind_gates<T>(&self, gates: &Gates, layout: Layout, at_cut: impl FnOnce() -> T) -> T {
        install_all_behind_gates([(self, gates, layout)], at_cut)
    }

    /// Publishes `layout` (one without gates) and returns once no operation holds the
    /// previous one, so that the next walk can rely on every write going through its gates.
    pub(crate) fn install(&self, layout: Layout) {
        wait_until_unused(self.layout.swap(Arc::new(layout)));
    }
}

/// [`Store::install_behind_gates`] for several stores (databases) at one instant: every
/// layout is published before the first wait, and every gate opens after the last, so
/// `at_cut` sees no write in flight in any of them. A write that completed before another
/// began is on the same side of the cut or before it.
pub(crate) fn install_all_behind_gates<'a, T>(
    installs: impl IntoIterator<Item = (&'a Store, &'a Gates, Layout)>,
    at_cut: impl FnOnce() -> T,
) -> T {
    let installs: Vec<_> = installs.into_iter().collect();
    let closed: Vec<_> = installs.iter().map(|(_, gates, _)| gates.hold_all()).collect();
    let previous: Vec<_> = installs.into_iter().map(|(store, _, layout)| store.layout.swap(Arc::new(layout))).collect();
    previous.into_iter().for_each(wait_until_unused);
    let cut = at_cut();
    drop(closed);
    cut
}

/// Waits until no operation holds `layout` any more (each holds it for one operation, so this
/// is short), then drops it. After a swap `Arc::strong_count` counts every holder, since
/// arc-swap pays its readers' debts on a swap.
fn wait_until_unused(layout: Arc<Layout>) {
    let mut pause = Duration::from_micros(10);
    while Arc::strong_count(&layout) > 1 {
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}
