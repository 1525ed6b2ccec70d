//! Active expiry: a background thread that reclaims expired keys nobody reads, so that
//! memory held by them is returned even without traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::store::Store;

/// What one sweep pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Keys looked at.
    pub examined: u64,
    /// Expired keys removed.
    pub expired: u64,
}

/// Keys of a shard's expires index examined per step, as Redis samples 20 keys of a
/// database's expires per iteration: the most any shard's index is held by the sweeper at once.
pub const SWEEP_CHUNK: usize = 20;
/// The most one pass runs: Redis's active expiry takes at most 25% of each 100 ms cycle
/// (`ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC` at the default `hz` 10), and the server runs a pass
/// every 100 ms by default (`active_expire_interval_ms`).
pub const SWEEP_BUDGET: Duration = Duration::from_millis(25);

impl Store {
    /// Runs one active-expiry pass now (the sweeper thread calls this periodically): at most
    /// one round of every shard, and at most [`SWEEP_BUDGET`].
    pub fn sweep_expired(&self) -> SweepReport {
        self.sweep_with_budget(SWEEP_BUDGET)
    }

    /// [`Store::sweep_expired`] for at most `budget`: one database's share of a pass.
    pub(crate) fn sweep_with_budget(&self, budget: Duration) -> SweepReport {
        let (examined, expired) = self.sweep_pass(SWEEP_CHUNK, budget);
        SweepReport { examined, expired }
    }
}

/// A running sweeper thread. Stops when [`Sweeper::stop`] is called or it is dropped.
pub struct Sweeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    expired: Arc<AtomicU64>,
}

impl Sweeper {
    /// Starts a thread that runs `pass` every `interval`: normally [`Store::sweep_expired`]
    /// or [`Databases::sweep_expired`](super::Databases::sweep_expired), wrapped in whatever
    /// tracing or logging the caller wants around each pass.
    pub fn start<T: Send + Sync + 'static>(
        store: Arc<T>,
        interval: Duration,
        pass: impl Fn(&T) -> SweepReport + Send + 'static,
    ) -> std::io::Result<Sweeper> {
        let (stop, stopped) = mpsc::channel::<()>();
        let expired = Arc::new(AtomicU64::new(0));
        let total = Arc::clone(&expired);
        let thread = std::thread::Builder::new().name("cstore-sweeper".into()).spawn(move || {
            // Wakes every interval; a message or a dropped sender ends the loop.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let report = pass(&store);
                total.fetch_add(report.expired, Ordering::Relaxed);
            }
        })?;
        Ok(Sweeper { stop: Some(stop), thread: Some(thread), expired })
    }

    /// Keys this sweeper has expired so far.
    pub fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for its current pass to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A sweeper that panicked has nothing left to clean up; stopping must not fail.
            let _ = thread.join();
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.shutdown();
    }
}
