//! One-way signals: set once, then seen by every check and every waiter, never missed.
//! [`Latch`] for any number of waiters; [`Flags`] for one task, cheap to poll again.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;
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

/// Bits that other tasks set and one task (a connection) waits for. Polling a wait again is
/// two uncontended atomic operations, where a shared [`Latch`] or channel takes a lock that
/// every connection's poll contends for: a connection polls its waits once per request.
#[derive(Default)]
pub(crate) struct Flags {
    set: AtomicU8,
    waker: AtomicWaker,
}

impl Flags {
    /// Sets `bits` and wakes the waiting task; returns false if they were all set already.
    pub(crate) fn set(&self, bits: u8) -> bool {
        let before = self.set.fetch_or(bits, Ordering::SeqCst);
        self.waker.wake();
        before & bits != bits
    }

    pub(crate) fn any(&self, bits: u8) -> bool {
        self.set.load(Ordering::SeqCst) & bits != 0
    }

    /// Returns once any of `bits` is set (at once if one is). One task at a time may wait.
    pub(crate) async fn wait(&self, bits: u8) {
        poll_fn(|cx| {
            // Registered before the flags are read, so a `set` in between is not missed.
            self.waker.register(cx.waker());
            if self.any(bits) { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flag_waiter_wakes_for_its_bits_only() {
        let flags = std::sync::Arc::new(Flags::default());
        let waiter = tokio::spawn({
            let flags = std::sync::Arc::clone(&flags);
            async move { flags.wait(0b10).await }
        });
        tokio::task::yield_now().await;
        assert!(flags.set(0b01));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "bit 0 is not what it waits for");
        assert!(flags.set(0b10));
        assert!(!flags.set(0b10), "set once");
        waiter.await.unwrap();
        assert!(flags.any(0b01) && flags.any(0b10));
        flags.wait(0b11).await;
    }

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
