//! Graceful shutdown, the broadcast-plus-drop way: the server broadcasts once; every
//! connection task holds a `Shutdown` to hear it and a clone of a completion sender whose
//! drop tells the server that task has finished.

use tokio::sync::broadcast;

pub(crate) struct Shutdown {
    triggered: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    pub(crate) fn new(notify: broadcast::Receiver<()>) -> Self {
        Shutdown { triggered: false, notify }
    }

    /// Waits for the shutdown broadcast (returns at once if already heard).
    pub(crate) async fn recv(&mut self) {
        if self.triggered {
            return;
        }
        // A lagged or closed channel means shutdown too: the sender only ever sends that.
        let _ = self.notify.recv().await;
        self.triggered = true;
    }
}
