//! The change log as a stream (WatchEvents).

use std::sync::Arc;

use bosun_api::{convert, v1};
use bosun_store::ChangeFilter;
use connectrpc::ConnectError;
use futures::{Stream, StreamExt as _};

use crate::app::App;

/// Every change matching `filter` after `filter.after_seq`, then each new one as it is
/// committed, until the client goes away or the server shuts down (`crate::watch::follow`).
pub(crate) fn watch(app: Arc<App>, filter: ChangeFilter) -> impl Stream<Item = Result<v1::ChangeEvent, ConnectError>> {
    crate::watch::follow(app, filter, "WatchEvents")
        .map(|change| change.map(|c| convert::change_event(&c)).map_err(ConnectError::from))
}
