//! The nodes (`/ui/nodes`): filtered, ordered and paged by the store (by id, as ListNodes
//! pages them, or newest status change first); and one node (`/ui/nodes/{id}`): its
//! facts, GPUs, health reports with the rule that judged each event, commands, GPU
//! workloads, runs and change history.

use std::collections::VecDeque;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_core::inventory::{InventoryKind, RecordState};
use bosun_core::{Health, LabelSelector, Labels, Node, NodeId, NodeStatus, PoolName, ResourceKind, Timestamp};
use bosun_store::inventory::InventoryFilter;
use bosun_store::{
    ChangeFilter, CommandFilter, Cursor, NodeFilter, NodeOrder, PageRequest, RunFilter, StoreError, each_page,
};

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
    statuses: Vec<Choice>,
    healths: Vec<Choice>,
    sorts: Vec<Choice>,
    /// What the table is ordered by, in words.
    order: &'static str,
    search: String,
    pool: String,
    label: String,
    rows: Vec<NodeRow>,
    first_page: bool,
    first_href: String,
    next_href: Option<String>,
}

/// One option of a `<select>`.
struct Choice {
    value: &'static str,
    title: &'static str,
    selected: bool,
}

impl Choice {
    /// The options `values`, with the one written in the query string selected.
    fn all(values: impl IntoIterator<Item = (&'static str, &'static str)>, written: &str) -> Vec<Choice> {
        values.into_iter().map(|(value, title)| Choice { value, title, selected: value == written }).collect()
    }
}

/// The orders of `/ui/nodes`: the query string's value, the option's title, the order.
const SORTS: [(&str, &str, NodeOrder); 2] =
    [("id", "id", NodeOrder::Id), ("changed", "newest status change", NodeOrder::RecentlyChanged)];

struct NodeRow {
    id: String,
    status: &'static str,
    health: &'static str,
    pool: String,
    gpus: String,
    labels: String,
    status_changed_at: String,
    last_heartbeat: String,
}

/// The filters of `/ui/nodes`, as written in its query string.
#[derive(Default)]
struct NodesQuery {
    /// Text the node ids contain.
    q: String,
    status: String,
    health: String,
    pool: String,
    label: String,
    sort: String,
    after: String,
}

impl NodesQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        super::query_fields(
            query,
            [
                ("q", &mut parsed.q),
                ("status", &mut parsed.status),
                ("health", &mut parsed.health),
                ("pool", &mut parsed.pool),
                ("label", &mut parsed.label),
                ("sort", &mut parsed.sort),
                ("after", &mut parsed.after),
            ],
        );
        parsed
    }

    /// The store's filter, or the field that is wrong and why.
    fn filter(&self) -> Result<NodeFilter, bosun_core::ValidationError> {
        let status = (!self.status.is_empty()).then(|| self.status.parse::<NodeStatus>()).transpose()?;
        let health = (!self.health.is_empty()).then(|| self.health.parse::<Health>()).transpose()?;
        let pool = (!self.pool.is_empty()).then(|| self.pool.parse::<PoolName>()).transpose()?;
        let labels = self.label.parse::<LabelSelector>()?;
        let id_contains = self.q.trim().to_owned();
        if id_contains.len() > NodeId::MAX_LEN {
            return Err(bosun_core::ValidationError::new(
                "q",
                format!("is longer than a node id ({} bytes)", NodeId::MAX_LEN),
            ));
        }
        Ok(NodeFilter { status, health, pool, labels, id_contains, ..NodeFilter::default() })
    }

    /// The order asked for, or what is wrong with it.
    fn order(&self) -> Result<NodeOrder, bosun_core::ValidationError> {
        if self.sort.is_empty() {
            return Ok(NodeOrder::Id);
        }
        SORTS.iter().find(|(value, ..)| *value == self.sort).map(|(.., order)| *order).ok_or_else(|| {
            let known: Vec<&str> = SORTS.iter().map(|(value, ..)| *value).collect();
            bosun_core::ValidationError::new("sort", format!("{:?} is not one of {}", self.sort, known.join(", ")))
        })
    }

    /// This view's URL with `after` set (or left out).
    fn href(&self, after: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("q", &self.q),
            ("status", &self.status),
            ("health", &self.health),
            ("pool", &self.pool),
            ("label", &self.label),
            ("sort", &self.sort),
        ] {
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

pub(super) async fn list(
    State(app): State<Arc<App>>,
    viewer: super::session::Viewer,
    RawQuery(query): RawQuery,
) -> Response {
    let query = NodesQuery::parse(query.as_deref());
    let (filter, order) = match query.filter().and_then(|filter| Ok((filter, query.order()?))) {
        Ok(asked) => asked,
        Err(error) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
    };
    let page = PageRequest {
        limit: PAGE_SIZE,
        after: (!query.after.is_empty()).then(|| Cursor::from_token(query.after.clone())),
    };
    let listed = match app.store.list_nodes_in(order, &filter, &page).await {
        Ok(listed) => listed,
        // A cursor that is not one of ours is the caller's mistake, not the store's.
        Err(StoreError::Invalid(error)) => return super::bad_request(&format!("{}: {}", error.field, error.problem)),
        Err(error) => return super::unavailable(&ApiError::from(error)),
    };
    let rows = listed.items.iter().map(|node| node_row(&app, node)).collect();
    let page = NodesPage {
        banner: viewer.banner(),
        statuses: Choice::all(
            NodeStatus::ALL.iter().map(|s| (s.as_str(), s.as_str())),
            filter.status.map_or("", NodeStatus::as_str),
        ),
        healths: Choice::all(
            Health::ALL.iter().map(|h| (h.as_str(), h.as_str())),
            filter.health.map_or("", Health::as_str),
        ),
        sorts: Choice::all(SORTS.iter().map(|(value, title, _)| (*value, *title)), &query.sort),
        order: SORTS.iter().find(|(.., o)| *o == order).map_or("id", |(_, title, _)| title),
        rows,
        first_page: query.after.is_empty(),
        first_href: query.href(None),
        next_href: listed.next.as_ref().map(|cursor| query.href(Some(cursor.as_token()))),
        search: query.q,
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
        status_changed_at: node.status_changed_at.to_string(),
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
    workloads: Vec<WorkloadRow>,
    runs: Vec<RunRow>,
    changes: Vec<ChangeRow>,
}

struct WorkloadRow {
    pid: u32,
    process: String,
    gpus: String,
    memory: String,
    container: String,
    pod: String,
}

struct RunRow {
    id: String,
    kind: &'static str,
    status: &'static str,
    requested_by: String,
    created_at: String,
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
    viewer: super::session::Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
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
    let workloads = workloads(app, id).await?;
    let runs = newest_runs(app, id).await?;
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
        workloads,
        runs,
        changes,
    })
}

/// The GPU workloads the node's agent reports (present ones; [`HISTORY`] at most).
async fn workloads(app: &App, id: &NodeId) -> ApiResult<Vec<WorkloadRow>> {
    let filter =
        InventoryFilter { node: Some(id.clone()), gone: Some(false), ..InventoryFilter::kind(InventoryKind::Workload) };
    let page = app.store.list_inventory(&filter, &PageRequest::first(HISTORY as u32)).await?;
    Ok(page
        .items
        .into_iter()
        .filter_map(|record| match record.state {
            RecordState::Workload(w) => Some(WorkloadRow {
                pid: w.pid,
                process: w.process_name,
                gpus: w.gpu_indexes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                memory: format!("{} MiB", w.gpu_memory_bytes >> 20),
                container: w.container_id.map(|c| c.chars().take(12).collect()).unwrap_or_default(),
                pod: w
                    .pod
                    .map(|pod| match (pod.namespace, pod.name) {
                        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
                        (_, Some(name)) => name,
                        _ => pod.uid,
                    })
                    .unwrap_or_default(),
            }),
            _ => None,
        })
        .collect())
}

/// The runs that target the node, newest first ([`HISTORY`] at most); runs are listed
/// oldest first, by their time-ordered ids.
async fn newest_runs(app: &App, id: &NodeId) -> ApiResult<Vec<RunRow>> {
    let store = &app.store;
    let filter = &RunFilter { target: Some(id.to_string()), ..RunFilter::default() };
    let mut runs = VecDeque::with_capacity(HISTORY + 1);
    each_page(
        |page| async move { store.list_runs(filter, &page).await },
        |page| {
            for run in page {
                runs.push_front(RunRow {
                    id: run.id.to_string(),
                    kind: run.kind.as_str(),
                    status: run.status.as_str(),
                    requested_by: run.requested_by.to_string(),
                    created_at: run.created_at.to_string(),
                });
                runs.truncate(HISTORY);
            }
        },
    )
    .await?;
    Ok(runs.into())
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
