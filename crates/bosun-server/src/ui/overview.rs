//! The overview (`/ui/`): nodes by status and health, the pools and their last decisions,
//! the fleet's GPU utilization, the nodes that turned UNHEALTHY in the last hour, and the
//! latest changes.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_core::{ChangeRecord, Health, NodeStatus, Pool};
use bosun_store::{ChangeFilter, NodeFilter, NodeOrder, PageRequest};

use crate::app::App;
use crate::error::ApiResult;

/// How many of the latest changes the overview lists.
const RECENT_CHANGES: u32 = 20;
/// How far back the overview looks for nodes that turned UNHEALTHY.
const UNHEALTHY_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);
/// How many of them it lists (the nodes page lists them all).
const UNHEALTHY_SHOWN: u32 = 50;

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    banner: super::Banner,
    total_nodes: u64,
    healths: Vec<&'static str>,
    status_rows: Vec<StatusRow>,
    pools: Vec<PoolRow>,
    utilization: Vec<UtilizationRow>,
    /// The most nodes any utilization range has (the bars' scale).
    utilization_max: u64,
    without_metrics: u64,
    unhealthy: Vec<UnhealthyRow>,
    /// Whether more turned UNHEALTHY in the window than are listed.
    unhealthy_more: bool,
    changes: Vec<ChangeRow>,
}

struct UtilizationRow {
    range: String,
    count: u64,
}

struct UnhealthyRow {
    id: String,
    since: String,
    reason: String,
    pool: String,
}

struct StatusRow {
    status: &'static str,
    cells: Vec<Cell>,
    total: u64,
}

struct Cell {
    health: &'static str,
    count: u64,
}

pub(super) struct PoolRow {
    pub(super) name: String,
    pub(super) current: u32,
    pub(super) target: String,
    pub(super) min: u32,
    pub(super) max: u32,
    pub(super) unhealthy: u32,
    pub(super) decision: String,
}

struct ChangeRow {
    seq: u64,
    at: String,
    kind: &'static str,
    resource: String,
    op: &'static str,
    actor: String,
    reason: String,
}

pub(super) async fn page(State(app): State<Arc<App>>, viewer: super::session::Viewer) -> Response {
    match overview(&app).await {
        Ok(overview) => super::page(&Overview { banner: viewer.banner(), ..overview }, StatusCode::OK),
        Err(error) => super::unavailable(&error),
    }
}

async fn overview(app: &App) -> ApiResult<Overview> {
    let counts = app.fleet.counts();
    let status_rows: Vec<StatusRow> = NodeStatus::ALL
        .iter()
        .map(|&status| {
            let cells: Vec<Cell> = Health::ALL
                .iter()
                .map(|&health| Cell {
                    health: health.as_str(),
                    count: counts.get(&(status, health)).copied().unwrap_or(0),
                })
                .collect();
            StatusRow { status: status.as_str(), total: cells.iter().map(|c| c.count).sum(), cells }
        })
        .collect();
    let mut pools = Vec::new();
    for pool in app.store.list_pools().await? {
        pools.push(pool_row(app, &pool).await?);
    }
    let histogram = app.fleet.utilization_histogram();
    let utilization: Vec<UtilizationRow> = histogram
        .tenths
        .iter()
        .enumerate()
        .map(|(tenth, &count)| UtilizationRow { range: format!("{}–{} %", tenth * 10, tenth * 10 + 10), count })
        .collect();
    let (unhealthy, unhealthy_more) = turned_unhealthy(app).await?;
    let last = app.store.last_change_seq().await?;
    let filter = ChangeFilter { after_seq: last.saturating_sub(u64::from(RECENT_CHANGES)), ..ChangeFilter::default() };
    let changes = app.store.list_changes(&filter, RECENT_CHANGES).await?.iter().rev().map(change_row).collect();
    Ok(Overview {
        banner: super::Banner::default(),
        total_nodes: status_rows.iter().map(|row| row.total).sum(),
        healths: Health::ALL.iter().map(|h| h.as_str()).collect(),
        status_rows,
        pools,
        utilization_max: utilization.iter().map(|row| row.count).max().unwrap_or(0).max(1),
        utilization,
        without_metrics: histogram.without_metrics,
        unhealthy,
        unhealthy_more,
        changes,
    })
}

/// The nodes whose status turned UNHEALTHY within [`UNHEALTHY_WINDOW`] and still is,
/// newest first, and whether there are more than are shown.
async fn turned_unhealthy(app: &App) -> ApiResult<(Vec<UnhealthyRow>, bool)> {
    let since = app.clock.now() - UNHEALTHY_WINDOW;
    let filter = NodeFilter { status: Some(NodeStatus::Unhealthy), ..NodeFilter::default() };
    let page =
        app.store.list_nodes_in(NodeOrder::RecentlyChanged, &filter, &PageRequest::first(UNHEALTHY_SHOWN)).await?;
    let rows: Vec<UnhealthyRow> = page
        .items
        .iter()
        .take_while(|node| node.status_changed_at >= since)
        .map(|node| UnhealthyRow {
            id: node.id.to_string(),
            since: node.status_changed_at.to_string(),
            reason: node.status_reason.clone(),
            pool: node.pool.as_ref().map(ToString::to_string).unwrap_or_default(),
        })
        .collect();
    let more = rows.len() == UNHEALTHY_SHOWN as usize && page.next.is_some();
    Ok((rows, more))
}

pub(super) async fn pool_row(app: &App, pool: &Pool) -> ApiResult<PoolRow> {
    let usage = crate::pools::usage(app, pool).await?;
    let decision = pool.status.last_decision.as_ref();
    Ok(PoolRow {
        name: pool.name.to_string(),
        current: usage.usable,
        target: decision.map_or_else(|| "-".to_owned(), |d| d.target.to_string()),
        min: pool.spec.min_nodes,
        max: pool.spec.max_nodes,
        unhealthy: usage.unhealthy,
        decision: decision.map_or_else(|| "none yet".to_owned(), |d| format!("{} ({})", d.reason, d.at)),
    })
}

fn change_row(change: &ChangeRecord) -> ChangeRow {
    ChangeRow {
        seq: change.seq,
        at: change.at.to_string(),
        kind: change.kind.as_str(),
        resource: change.resource_id.clone(),
        op: change.op.as_str(),
        actor: change.actor.to_string(),
        reason: change.reason.clone(),
    }
}
