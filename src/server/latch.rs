//! A one-way signal: set once, then seen by every check and every waiter, never missed.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct Latch {
    set: AtomicBool,
    notify: Notify,
}

impl Latch {
    /// Sets the latch and wakes every waiter; returns false if it was already set.
    pub(crate) fn set(&self) -> bool {
        let newly = !self.set.swap(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        newly
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Returns once the latch is set (at once if it already is).
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a `set` in between is not missed.
        notified.as_mut().enable();
        if !self.is_set() {
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_sees_a_set_made_before_or_while_it_waits() {
        let latch = std::sync::Arc::new(Latch::default());
        let waiter = tokio::spawn({
            let latch = std::sync::Arc::clone(&latch);
            async move { latch.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(latch.set());
        assert!(!latch.set(), "set once");
        waiter.await.unwrap();
        latch.wait().await;
        assert!(latch.is_set());
    }
}
