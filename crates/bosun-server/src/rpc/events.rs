//! The change log as a stream (WatchEvents).

use std::collections::VecDeque;
use std::sync::Arc;

use bosun_api::{convert, v1};
use bosun_core::ChangeRecord;
use bosun_store::ChangeFilter;
use connectrpc::ConnectError;
use futures::Stream;

use crate::app::App;
use crate::error::ApiError;

/// Records read per store query while catching up.
const BATCH: u32 = 500;

struct Watch {
    app: Arc<App>,
    filter: ChangeFilter,
    ready: VecDeque<ChangeRecord>,
    failed: bool,
}

/// Every change matching `filter` after `filter.after_seq`, then each new one as it is
/// committed, until the client goes away or the server shuts down. A watch looks again
/// whenever `app.committed` wakes it: after this server's own commits, and when the change
/// follower read other servers' (`change_follower`).
pub(crate) fn watch(app: Arc<App>, filter: ChangeFilter) -> impl Stream<Item = Result<v1::ChangeEvent, ConnectError>> {
    let watch = Watch { app, filter, ready: VecDeque::new(), failed: false };
    futures::stream::unfold(watch, |mut watch| async move {
        if watch.failed {
            return None;
        }
        loop {
            if let Some(change) = watch.ready.pop_front() {
                return Some((Ok(convert::change_event(&change)), watch));
            }
            let committed = Arc::clone(&watch.app.committed);
            let notified = committed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match watch.app.store.list_changes(&watch.filter, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    watch.filter.after_seq = batch.last().map_or(watch.filter.after_seq, |c| c.seq);
                    watch.ready.extend(batch);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    watch.failed = true;
                    return Some((Err(ConnectError::from(ApiError::from(error))), watch));
                }
            }
            let _waiting = watch.app.metrics.waiting("WatchEvents");
            tokio::select! {
                () = &mut notified => {}
                () = watch.app.shutdown.cancelled() => return None,
            }
        }
    })
}
