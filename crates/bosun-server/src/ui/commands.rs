//! The commands (`/ui/commands?state=&node=`): by default those still under way (PENDING,
//! DELIVERED, ACKED), filtered by state and node in the URL, paged by the store's cursor in
//! issue order, as ListCommands pages them.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_core::{CommandState, NodeId};
use bosun_store::{CommandFilter, Cursor, PageRequest, StoreError};

use super::Banner;
use super::session;
use crate::app::App;
use crate::error::ApiError;

/// Commands per page.
const PAGE_SIZE: u32 = 100;
/// What "under way" means when no state is asked for.
const UNDER_WAY: [CommandState; 3] = [CommandState::Pending, CommandState::Delivered, CommandState::Acked];

#[derive(Default)]
struct CommandsQuery {
    state: String,
    node: String,
    after: String,
}

impl CommandsQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        super::query_fields(
            query,
            [("state", &mut parsed.state), ("node", &mut parsed.node), ("after", &mut parsed.after)],
        );
        parsed
    }

    fn filter(&self) -> Result<CommandFilter, bosun_core::ValidationError> {
        let states = match self.state.as_str() {
            "" => UNDER_WAY.to_vec(),
            "all" => Vec::new(),
            state => vec![state.parse::<CommandState>()?],
        };
        let node_id = (!self.node.is_empty()).then(|| self.node.parse::<NodeId>()).transpose()?;
        Ok(CommandFilter { node_id, states, kind: None })
    }

    fn href(&self, after: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("state", &self.state), ("node", &self.node)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(after) = after {
            query.append_pair("after", after);
        }
        let query = query.finish();
        if query.is_empty() { "/ui/commands".to_owned() } else { format!("/ui/commands?{query}") }
    }
}

#[derive(Template)]
#[template(path = "commands.html")]
struct CommandsPage {
    banner: Banner,
    states: Vec<(&'static str, bool)>,
    all: bool,
    node: String,
    rows: Vec<CommandRow>,
    next_href: Option<String>,
}

struct CommandRow {
    id: String,
    node: String,
    kind: String,
    state: &'static str,
    issued_at: String,
    issued_by: String,
    reason: String,
}

pub(super) async fn page(State(app): State<Arc<App>>, viewer: session::Viewer, RawQuery(query): RawQuery) -> Response {
    let query = CommandsQuery::parse(query.as_deref());
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(error) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
    };
    let page = PageRequest {
        limit: PAGE_SIZE,
        after: (!query.after.is_empty()).then(|| Cursor::from_token(query.after.clone())),
    };
    let listed = match app.store.list_commands(&filter, &page).await {
        Ok(listed) => listed,
        Err(StoreError::Invalid(error)) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
        Err(error) => return super::unavailable(&ApiError::from(error)),
    };
    let page = CommandsPage {
        banner: viewer.banner(),
        states: CommandState::ALL.iter().map(|s| (s.as_str(), query.state == s.as_str())).collect(),
        all: query.state == "all",
        rows: listed
            .items
            .into_iter()
            .map(|c| CommandRow {
                id: c.id.to_string(),
                node: c.node_id.to_string(),
                kind: c.kind.to_string(),
                state: c.state.as_str(),
                issued_at: c.issued_at.to_string(),
                issued_by: c.issued_by.to_string(),
                reason: c.reason,
            })
            .collect(),
        next_href: listed.next.as_ref().map(|cursor| query.href(Some(cursor.as_token()))),
        node: query.node,
    };
    super::page(&page, StatusCode::OK)
}
