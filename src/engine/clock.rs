//! Time source for expiry. Production uses the system clock; tests inject a manual clock so
//! that expiry is deterministic. An enum rather than a trait object keeps the hot path free
//! of dynamic dispatch.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the engine reads "now" (milliseconds since the Unix epoch).
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The operating system's wall clock.
    #[default]
    System,
    /// A clock that only moves when told to; see [`ManualClock`].
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Clock::Manual(manual) => manual.now_ms(),
        }
    }
}

/// A shared, manually advanced clock for tests and simulations.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start_ms)))
    }

    /// The current reading.
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

/// "Now" for one operation, read from the clock at most once and only when needed.
///
/// Most keys have no expiry, and a clock read is an ordered instruction: doing one per
/// operation makes the processor finish each lookup's cache misses before starting the next
/// lookup's, which measured 4-5x slower on a 100,000-key map (docs/BENCHMARKS.md). Reading
/// lazily keeps keys without a TTL free of that cost.
pub(crate) struct LazyNow<'a> {
    clock: Option<&'a Clock>,
    now: Cell<Option<u64>>,
}

impl<'a> LazyNow<'a> {
    pub(crate) fn new(clock: &'a Clock) -> Self {
        LazyNow { clock: Some(clock), now: Cell::new(None) }
    }

    /// A "now" already known.
    pub(crate) fn fixed(now_ms: u64) -> Self {
        LazyNow { clock: None, now: Cell::new(Some(now_ms)) }
    }

    /// The time, read on first use and the same for the rest of the operation.
    pub(crate) fn get(&self) -> u64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.clock.map_or(0, Clock::now_ms);
        self.now.set(Some(now));
        now
    }
}
