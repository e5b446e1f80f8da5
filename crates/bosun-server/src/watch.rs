//! Following the change log: every change matching a filter, then each new one as it is
//! committed. Shared by the API's WatchEvents and the dashboard's live pages.

use std::collections::VecDeque;
use std::sync::Arc;

use bosun_core::ChangeRecord;
use bosun_store::ChangeFilter;
use futures::Stream;

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// Records read per store query while catching up.
const BATCH: u32 = 500;

struct Follow {
    app: Arc<App>,
    filter: ChangeFilter,
    ready: VecDeque<ChangeRecord>,
    failed: bool,
    /// The name the wait is counted under (`bosun_waiting_requests`).
    waiting_as: &'static str,
}

/// Every change matching `filter` after `filter.after_seq`, then each new one as it is
/// committed, until the reader goes away or the server shuts down; a store error ends it
/// after one `Err`. It looks again whenever `app.committed` wakes it: after this server's
/// own commits, and when the change follower read other servers' (`change_follower`).
pub(crate) fn follow(
    app: Arc<App>,
    filter: ChangeFilter,
    waiting_as: &'static str,
) -> impl Stream<Item = ApiResult<ChangeRecord>> {
    let follow = Follow { app, filter, ready: VecDeque::new(), failed: false, waiting_as };
    futures::stream::unfold(follow, |mut follow| async move {
        if follow.failed {
            return None;
        }
        loop {
            if let Some(change) = follow.ready.pop_front() {
                return Some((Ok(change), follow));
            }
            let committed = Arc::clone(&follow.app.committed);
            let notified = committed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match follow.app.store.list_changes(&follow.filter, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    follow.filter.after_seq = batch.last().map_or(follow.filter.after_seq, |c| c.seq);
                    follow.ready.extend(batch);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    follow.failed = true;
                    return Some((Err(ApiError::from(error)), follow));
                }
            }
            let _waiting = follow.app.metrics.waiting(follow.waiting_as);
            tokio::select! {
                () = &mut notified => {}
                () = follow.app.shutdown.cancelled() => return None,
            }
        }
    })
}
