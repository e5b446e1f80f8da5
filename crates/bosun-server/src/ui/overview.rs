//! The overview (`/ui/`): nodes by status and health, the pools and their last decisions,
//! and the latest changes.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_core::{ChangeRecord, Health, NodeStatus, Pool};
use bosun_store::ChangeFilter;

use crate::app::App;
use crate::error::ApiResult;

/// How many of the latest changes the overview lists.
const RECENT_CHANGES: u32 = 20;

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    banner: super::Banner,
    total_nodes: u64,
    healths: Vec<&'static str>,
    status_rows: Vec<StatusRow>,
    pools: Vec<PoolRow>,
    changes: Vec<ChangeRow>,
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

pub(super) async fn page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let viewer = match super::session::viewer(&app, &headers, "/ui/") {
        Ok(viewer) => viewer,
        Err(sign_in) => return sign_in.into_response(),
    };
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
    let last = app.store.last_change_seq().await?;
    let filter = ChangeFilter { after_seq: last.saturating_sub(u64::from(RECENT_CHANGES)), ..ChangeFilter::default() };
    let changes = app.store.list_changes(&filter, RECENT_CHANGES).await?.iter().rev().map(change_row).collect();
    Ok(Overview {
        banner: super::Banner::default(),
        total_nodes: status_rows.iter().map(|row| row.total).sum(),
        healths: Health::ALL.iter().map(|h| h.as_str()).collect(),
        status_rows,
        pools,
        changes,
    })
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
