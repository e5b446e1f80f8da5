//! Whether a connection is doing anything: requests in flight, and when the last one
//! started or finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Request accounting for one connection. hyper does not tell how many streams an HTTP/2
/// connection has open, so the service counts requests as they pass.
#[derive(Debug, Default)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// Bumped when a request starts and when it ends: a request that began and finished
    /// within one idle period still counts as activity.
    epoch: AtomicU64,
}

/// A request in flight; dropping it (also when the request is cancelled) ends it.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

impl Activity {
    pub(super) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in flight and none started or
    /// finished for a whole `period` (so between one and two periods after it went quiet).
    pub(super) async fn idle_for(self: Arc<Self>, period: Duration) {
        let mut seen = self.epoch.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(period).await;
            let now = self.epoch.load(Ordering::SeqCst);
            if now == seen && self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            seen = now;
        }
    }
}
