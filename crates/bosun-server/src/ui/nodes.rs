//! The nodes (`/ui/nodes`): filtered and paged by the store, in id order, as ListNodes
//! pages them; and one node (`/ui/nodes/{id}`): its facts, GPUs, health reports with the
//! rule that judged each event, commands and change history.

use std::collections::VecDeque;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_core::{LabelSelector, Labels, Node, NodeId, NodeStatus, PoolName, ResourceKind, Timestamp};
use bosun_store::{ChangeFilter, CommandFilter, Cursor, NodeFilter, PageRequest, StoreError, each_page};

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// Nodes per page.
const PAGE_SIZE: u32 = 100;
/// How many health reports, commands and changes a node's page shows (the newest).
const HISTORY: usize = 50;

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    banner: super::Banner,
    statuses: Vec<StatusOption>,
    pool: String,
    label: String,
    rows: Vec<NodeRow>,
    first_page: bool,
    first_href: String,
    next_href: Option<String>,
}

struct StatusOption {
    value: &'static str,
    selected: bool,
}

struct NodeRow {
    id: String,
    status: &'static str,
    health: &'static str,
    pool: String,
    gpus: String,
    labels: String,
    last_heartbeat: String,
}

/// The filters of `/ui/nodes`, as written in its query string.
#[derive(Default)]
struct NodesQuery {
    status: String,
    pool: String,
    label: String,
    after: String,
}

impl NodesQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        super::query_fields(
            query,
            [
                ("status", &mut parsed.status),
                ("pool", &mut parsed.pool),
                ("label", &mut parsed.label),
                ("after", &mut parsed.after),
            ],
        );
        parsed
    }

    /// The store's filter, or the field that is wrong and why.
    fn filter(&self) -> Result<NodeFilter, bosun_core::ValidationError> {
        let status = (!self.status.is_empty()).then(|| self.status.parse::<NodeStatus>()).transpose()?;
        let pool = (!self.pool.is_empty()).then(|| self.pool.parse::<PoolName>()).transpose()?;
        let labels = self.label.parse::<LabelSelector>()?;
        Ok(NodeFilter { status, pool, labels, ..NodeFilter::default() })
    }

    /// This view's URL with `after` set (or left out).
    fn href(&self, after: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("status", &self.status), ("pool", &self.pool), ("label", &self.label)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(after) = after {
            query.append_pair("after", after);
        }
        let query = query.finish();
        if query.is_empty() { "/ui/nodes".to_owned() } else { format!("/ui/nodes?{query}") }
    }
}

pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = NodesQuery::parse(query.as_deref());
    let viewer = match super::session::viewer(&app, &headers, &query.href(None)) {
        Ok(viewer) => viewer,
        Err(sign_in) => return sign_in.into_response(),
    };
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(error) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
    };
    let page = PageRequest {
        limit: PAGE_SIZE,
        after: (!query.after.is_empty()).then(|| Cursor::from_token(query.after.clone())),
    };
    let listed = match app.store.list_nodes(&filter, &page).await {
        Ok(listed) => listed,
        // A cursor that is not one of ours is the caller's mistake, not the store's.
        Err(StoreError::Invalid(error)) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
        Err(error) => return super::unavailable(&ApiError::from(error)),
    };
    let rows = listed.items.iter().map(|node| node_row(&app, node)).collect();
    let selected = filter.status.map(NodeStatus::as_str);
    let page = NodesPage {
        banner: viewer.banner(),
        statuses: NodeStatus::ALL
            .iter()
            .map(|s| StatusOption { value: s.as_str(), selected: Some(s.as_str()) == selected })
            .collect(),
        rows,
        first_page: query.after.is_empty(),
        first_href: query.href(None),
        next_href: listed.next.as_ref().map(|cursor| query.href(Some(cursor.as_token()))),
        pool: query.pool,
        label: query.label,
    };
    super::page(&page, StatusCode::OK)
}

fn node_row(app: &App, node: &Node) -> NodeRow {
    NodeRow {
        id: node.id.to_string(),
        status: node.status.as_str(),
        health: node.health.as_str(),
        pool: node.pool.as_ref().map(ToString::to_string).unwrap_or_default(),
        gpus: if node.gpu_count == 0 { String::new() } else { format!("{} × {}", node.gpu_count, node.gpu_model) },
        labels: labels_text(&node.labels),
        last_heartbeat: time_text(live_heartbeat(app, node)),
    }
}

/// The newest heartbeat: the fleet view's, which the store receives a flush later.
fn live_heartbeat(app: &App, node: &Node) -> Option<Timestamp> {
    let buffered = app.fleet.get(&node.id).and_then(|view| view.last_heartbeat);
    node.last_heartbeat.max(buffered)
}

fn labels_text(labels: &Labels) -> String {
    let terms: Vec<String> =
        labels.iter().map(|(k, v)| if v.is_empty() { k.to_owned() } else { format!("{k}={v}") }).collect();
    terms.join(", ")
}

fn time_text(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "never".to_owned(), |at| at.to_string())
}

#[derive(Template)]
#[template(path = "node.html")]
struct NodePage {
    banner: super::Banner,
    /// The command an action just issued, to say so.
    done: Option<String>,
    actions: Vec<(&'static str, &'static str)>,
    id: String,
    status: &'static str,
    status_reason: String,
    status_changed_at: String,
    health: &'static str,
    pool: String,
    machine: String,
    labels: String,
    registered_at: String,
    last_heartbeat: String,
    instance: String,
    gpus: Vec<GpuRow>,
    health_reports: Vec<HealthRow>,
    commands: Vec<CommandRow>,
    changes: Vec<ChangeRow>,
}

struct GpuRow {
    index: u32,
    model: String,
    uuid: String,
    pci_bus_id: String,
    memory: String,
}

struct HealthRow {
    received_at: String,
    health: &'static str,
    judged_by: String,
}

struct CommandRow {
    issued_at: String,
    kind: String,
    state: &'static str,
    issued_by: String,
    reason: String,
}

struct ChangeRow {
    seq: u64,
    at: String,
    op: &'static str,
    revision: u64,
    actor: String,
    reason: String,
}

pub(super) async fn get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let path = format!("/ui/nodes/{}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
    let viewer = match super::session::viewer(&app, &headers, &path) {
        Ok(viewer) => viewer,
        Err(sign_in) => return sign_in.into_response(),
    };
    let id: NodeId = match id.parse() {
        Ok(id) => id,
        Err(error) => return super::bad_request(&format!("node id: {}", error.problem)),
    };
    match node_page(&app, &id).await {
        Ok(page) => {
            let done = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(key, _)| key == "done")
                .map(|(_, value)| value.into_owned());
            super::page(&NodePage { banner: viewer.banner(), done, ..page }, StatusCode::OK)
        }
        Err(ApiError::Store(StoreError::NotFound { .. })) => super::not_found(&format!("there is no node {id}")),
        Err(error) => super::unavailable(&error),
    }
}

async fn node_page(app: &App, id: &NodeId) -> ApiResult<NodePage> {
    let store = &app.store;
    let node = store.node(id).await?;
    let gpus = store.node_gpus(id).await?;
    let reports = store.health_history(id, HISTORY as u32).await?;
    let instance = store.instance_for_node(id).await?;
    // Commands and changes are read oldest first: keep the newest.
    let mut commands = VecDeque::with_capacity(HISTORY + 1);
    let filter = &CommandFilter { node_id: Some(id.clone()), ..CommandFilter::default() };
    each_page(
        |page| async move { store.list_commands(filter, &page).await },
        |page| {
            for command in page {
                commands.push_front(command);
                commands.truncate(HISTORY);
            }
        },
    )
    .await?;
    let changes = newest_changes(app, id).await?;
    Ok(NodePage {
        banner: super::Banner::default(),
        done: None,
        actions: super::actions::NodeAction::ALL.iter().map(|a| (a.path(), a.title())).collect(),
        id: node.id.to_string(),
        status: node.status.as_str(),
        status_reason: node.status_reason.clone(),
        status_changed_at: node.status_changed_at.to_string(),
        health: node.health.as_str(),
        pool: node.pool.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string),
        machine: [&node.provider, &node.region, &node.zone, &node.instance_type, &node.metadata.hostname]
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| part.as_str())
            .collect::<Vec<_>>()
            .join(" / "),
        labels: labels_text(&node.labels),
        registered_at: node.registered_at.to_string(),
        last_heartbeat: time_text(live_heartbeat(app, &node)),
        instance: instance.map_or_else(|| "none".to_owned(), |i| format!("{} ({})", i.id, i.state.as_str())),
        gpus: gpus
            .into_iter()
            .map(|gpu| GpuRow {
                index: gpu.index,
                model: gpu.name,
                uuid: gpu.uuid,
                pci_bus_id: gpu.pci_bus_id,
                memory: format!("{} MiB", gpu.memory_bytes >> 20),
            })
            .collect(),
        health_reports: reports
            .into_iter()
            .map(|stored| {
                let rules: Vec<String> = stored
                    .report
                    .events
                    .iter()
                    .map(|e| match &e.verdict.rule {
                        Some(rule) => format!("{rule} ({})", e.verdict.health.as_str()),
                        None => format!("no rule ({})", e.verdict.health.as_str()),
                    })
                    .collect();
                HealthRow {
                    received_at: stored.report.received_at.to_string(),
                    health: stored.report.health.as_str(),
                    judged_by: if rules.is_empty() { "checks only".to_owned() } else { rules.join(", ") },
                }
            })
            .collect(),
        commands: commands
            .into_iter()
            .map(|c| CommandRow {
                issued_at: c.issued_at.to_string(),
                kind: c.kind.to_string(),
                state: c.state.as_str(),
                issued_by: c.issued_by.to_string(),
                reason: c.reason,
            })
            .collect(),
        changes,
    })
}

/// The node's newest changes, newest first; the log is read forward, page by page.
async fn newest_changes(app: &App, id: &NodeId) -> ApiResult<Vec<ChangeRow>> {
    const BATCH: u32 = 1000;
    let mut filter = ChangeFilter::resource(ResourceKind::Node, id);
    let mut newest = VecDeque::with_capacity(HISTORY + 1);
    loop {
        let batch = app.store.list_changes(&filter, BATCH).await?;
        let full = batch.len() == BATCH as usize;
        for change in batch {
            filter.after_seq = change.seq;
            newest.push_front(ChangeRow {
                seq: change.seq,
                at: change.at.to_string(),
                op: change.op.as_str(),
                revision: change.revision.get(),
                actor: change.actor.to_string(),
                reason: change.reason,
            });
            newest.truncate(HISTORY);
        }
        if !full {
            return Ok(newest.into());
        }
    }
}
