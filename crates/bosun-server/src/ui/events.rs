//! The change log (`/ui/events?kind=&resource=&actor=`): the newest changes matching the
//! filters, newest first, kept live (`/ui/events/live` with the same filters streams each
//! new one; the page's script redraws the list). The filters are the API's (ListEvents).

use std::collections::VecDeque;
use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_core::ChangeRecord;
use bosun_store::ChangeFilter;

use super::Banner;
use super::session;
use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// How many changes the page shows.
const SHOWN: usize = 100;
/// How far back a filtered view looks: the log is read forward, so a filter that matches
/// rarely is looked for among the latest changes only (a resource's own history is read
/// whole, through its index).
const WINDOW: u64 = 10_000;

#[derive(Default)]
struct EventsQuery {
    kind: String,
    resource: String,
    actor: String,
}

impl EventsQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        super::query_fields(
            query,
            [("kind", &mut parsed.kind), ("resource", &mut parsed.resource), ("actor", &mut parsed.actor)],
        );
        parsed
    }

    fn filter(&self, after_seq: u64) -> ApiResult<ChangeFilter> {
        crate::rpc::admin::change_filter(after_seq, &self.kind, &self.resource, &self.actor)
    }

    fn query_string(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("kind", &self.kind), ("resource", &self.resource), ("actor", &self.actor)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        query.finish()
    }
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    banner: Banner,
    kind: String,
    resource: String,
    actor: String,
    live: String,
    scope: String,
    changes: Vec<ChangeRow>,
}

struct ChangeRow {
    seq: u64,
    at: String,
    kind: &'static str,
    resource: String,
    link: Option<String>,
    op: &'static str,
    actor: String,
    reason: String,
}

fn change_row(change: ChangeRecord) -> ChangeRow {
    let link = match change.kind {
        bosun_core::ResourceKind::Node => Some(format!("/ui/nodes/{}", change.resource_id)),
        bosun_core::ResourceKind::Pool => Some(format!("/ui/pools/{}", change.resource_id)),
        _ => None,
    };
    ChangeRow {
        seq: change.seq,
        at: change.at.to_string(),
        kind: change.kind.as_str(),
        resource: change.resource_id,
        link,
        op: change.op.as_str(),
        actor: change.actor.to_string(),
        reason: change.reason,
    }
}

pub(super) async fn page(State(app): State<Arc<App>>, viewer: session::Viewer, RawQuery(query): RawQuery) -> Response {
    let query = EventsQuery::parse(query.as_deref());
    let query_string = query.query_string();
    let whole_resource = !query.resource.is_empty();
    let (changes, scope) = match newest(&app, &query, whole_resource).await {
        Ok(found) => found,
        Err(ApiError::Invalid(error)) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
        Err(error) => return super::unavailable(&error),
    };
    let page = EventsPage {
        banner: viewer.banner(),
        live: if query_string.is_empty() {
            "/ui/events/live".to_owned()
        } else {
            format!("/ui/events/live?{query_string}")
        },
        scope,
        changes,
        kind: query.kind,
        resource: query.resource,
        actor: query.actor,
    };
    super::page(&page, StatusCode::OK)
}

/// The newest matching changes, newest first, and what was looked through.
async fn newest(app: &App, query: &EventsQuery, whole_resource: bool) -> ApiResult<(Vec<ChangeRow>, String)> {
    const BATCH: u32 = 1000;
    let last = app.store.last_change_seq().await?;
    let unfiltered = query.kind.is_empty() && query.actor.is_empty();
    let (start, scope) = if whole_resource {
        (0, "its whole history".to_owned())
    } else if unfiltered {
        (last.saturating_sub(SHOWN as u64), "the whole log".to_owned())
    } else {
        (last.saturating_sub(WINDOW), format!("the latest {WINDOW} changes"))
    };
    let mut filter = query.filter(start)?;
    let mut kept: VecDeque<ChangeRow> = VecDeque::with_capacity(SHOWN + 1);
    loop {
        let batch = app.store.list_changes(&filter, BATCH).await?;
        let full = batch.len() == BATCH as usize;
        for change in batch {
            filter.after_seq = change.seq;
            kept.push_front(change_row(change));
            kept.truncate(SHOWN);
        }
        if !full {
            return Ok((kept.into(), scope));
        }
    }
}

pub(super) async fn live(State(app): State<Arc<App>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    if session::viewer(&app, &headers, "/ui/events").is_err() {
        return (StatusCode::UNAUTHORIZED, "sign in at /ui/login\n").into_response();
    }
    let query = EventsQuery::parse(query.as_deref());
    let after_seq = match super::live::resume_after(&app, &headers).await {
        Ok(seq) => seq,
        Err(error) => return super::unavailable(&error),
    };
    let filter = match query.filter(after_seq) {
        Ok(filter) => filter,
        Err(error) => return super::bad_request(&error.to_string()),
    };
    super::live::stream(app, filter, "ui/events", |change| change.kind.as_str())
}
