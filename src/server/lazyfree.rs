//! UNLINK's lazy free, as Redis's `lazyfree.c`: a collection with more than
//! [`LAZYFREE_THRESHOLD`] elements is freed on a background thread, so that the client that
//! unlinked it, and every client behind it on the same worker, does not wait for a million
//! deallocations. The key itself is gone from the store before UNLINK replies either way.

use std::sync::LazyLock;
use std::sync::mpsc::{Sender, channel};

use crate::engine::Value;

/// Elements above which a value is freed in the background (Redis's `LAZYFREE_THRESHOLD`).
pub(crate) const LAZYFREE_THRESHOLD: usize = 64;

/// The freeing thread's queue; `None` if the thread could not be started (values are then
/// freed in place, as DEL does).
static FREER: LazyLock<Option<Sender<Value>>> = LazyLock::new(|| {
    let (sender, receiver) = channel::<Value>();
    let thread = std::thread::Builder::new().name("lazyfree".into()).spawn(move || receiver.into_iter().for_each(drop));
    thread.ok().map(|_| sender)
});

/// Frees `value` here if it is small, else on the freeing thread.
pub(crate) fn free(value: Value) {
    if value.elements() <= LAZYFREE_THRESHOLD {
        return;
    }
    if let Some(freer) = FREER.as_ref() {
        // A send fails only if the thread is gone; the value then comes back and drops here.
        let _ = freer.send(value);
    }
}
