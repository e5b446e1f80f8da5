//! Live pages: `GET /ui/nodes/{id}/live` is a stream of server-sent events, one per change
//! of the node (its status, health, remediation), from `crate::watch::follow`; the page's
//! script (`static/bosun.js`) fetches the page again on each one and swaps in its live part,
//! so the state is always rendered by the server. A reconnecting browser resumes after the
//! `Last-Event-ID` it saw.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bosun_core::{ChangeRecord, NodeId, ResourceKind};
use bosun_store::ChangeFilter;
use futures::StreamExt as _;

use super::session;
use crate::app::App;
use crate::error::ApiResult;

pub(super) async fn node(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    // An event stream cannot follow a redirect to the sign-in form: it is refused, and the
    // page itself sends the browser there on its next load.
    if session::viewer(&app, &headers, "/ui/").is_err() {
        return (StatusCode::UNAUTHORIZED, "sign in at /ui/login\n").into_response();
    }
    let id: NodeId = match id.parse() {
        Ok(id) => id,
        Err(error) => return super::bad_request(&format!("node id: {}", error.problem)),
    };
    let after_seq = match resume_after(&app, &headers).await {
        Ok(seq) => seq,
        Err(error) => return super::unavailable(&error),
    };
    let filter = ChangeFilter { after_seq, ..ChangeFilter::resource(ResourceKind::Node, &id) };
    stream(app, filter, "ui/live", |change| change.op.as_str())
}

/// Where a stream starts: after the `Last-Event-ID` a reconnecting browser saw, else after
/// the newest change now.
pub(super) async fn resume_after(app: &App, headers: &HeaderMap) -> ApiResult<u64> {
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match resumed {
        Some(seq) => Ok(seq),
        None => Ok(app.store.last_change_seq().await?),
    }
}

/// The changes `filter` matches as server-sent events (`change`, id = the change's
/// sequence number, data from `data`), counted as waiting under `waiting_as`.
pub(super) fn stream(
    app: Arc<App>,
    filter: ChangeFilter,
    waiting_as: &'static str,
    data: fn(&ChangeRecord) -> &'static str,
) -> Response {
    let events = crate::watch::follow(app, filter, waiting_as).map(move |change| {
        Ok::<_, Infallible>(match change {
            Ok(change) => Event::default().id(change.seq.to_string()).event("change").data(data(&change)),
            Err(error) => Event::default().event("failed").data(error.to_string()),
        })
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
