//! Time source for expiry. Production uses the system clock; tests inject a manual clock so
//! that expiry is deterministic. An enum rather than a trait object keeps the hot path free
//! of dynamic dispatch.

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
    /// Milliseconds since the Unix epoch (for the system clock, at most about a millisecond
    /// behind: it is cached, see `clock.rs`).
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => cached::now_ms(),
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

/// "Now" for one operation: read once, before the operation looks at any entry, and the same
/// for the rest of it, every retry of a lock-free read-modify-write included (Redis caches its
/// time per command the same way). Reading it first matters: a read that loaded an entry and
/// only then read the clock could find the entry expired while a write that replaced it had
/// already landed, and answer "absent" for a key that never was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now(pub(crate) u64);

/// The system clock, cached: a ticker thread stores the wall clock in milliseconds every
/// [`TICK`], and an operation reads the cached value with one plain load.
///
/// Reading the wall clock itself is an *ordered* time-stamp read: the processor finishes
/// earlier loads, cache misses included, before it goes on, and doing one per operation made
/// lookups in a 100,000-key map 4-5x slower (docs/BENCHMARKS.md). The cache trades that for at
/// most a tick (plus scheduling delay) of staleness, as Redis's per-command cached time does;
/// it never goes backwards, even if the wall clock does.
mod cached {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    pub(super) const TICK: Duration = Duration::from_millis(1);

    static NOW_MS: AtomicU64 = AtomicU64::new(0);
    static TICKER: OnceLock<()> = OnceLock::new();

    pub(super) fn now_ms() -> u64 {
        TICKER.get_or_init(|| {
            NOW_MS.fetch_max(super::wall_clock_ms(), Ordering::Relaxed);
            // A process that cannot start a thread keeps reading the wall clock directly.
            let started = std::thread::Builder::new().name("cstore-clock".into()).spawn(|| {
                loop {
                    std::thread::sleep(TICK);
                    NOW_MS.fetch_max(super::wall_clock_ms(), Ordering::Relaxed);
                }
            });
            if started.is_err() {
                NOW_MS.store(u64::MAX, Ordering::Relaxed);
            }
        });
        match NOW_MS.load(Ordering::Relaxed) {
            u64::MAX => super::wall_clock_ms(),
            now => now,
        }
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
