//! The pools (`/ui/pools`) and one pool (`/ui/pools/{name}`): its bounds and providers, its
//! size and last decision with the inputs and conditions behind it, the decisions it went
//! through (each change record of the pool holds the decision of that moment), and its
//! instances.

use std::collections::VecDeque;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_core::{Pool, PoolName, ResourceKind};
use bosun_store::{ChangeFilter, InstanceFilter, PageRequest, StoreError};

use super::Banner;
use super::overview::{PoolRow, pool_row};
use super::session;
use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// How many decisions and instances a pool's page shows (the newest decisions).
const HISTORY: usize = 50;
const INSTANCES: u32 = 500;

#[derive(Template)]
#[template(path = "pools.html")]
struct PoolsPage {
    banner: Banner,
    pools: Vec<PoolRow>,
}

pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let viewer = match session::viewer(&app, &headers, "/ui/pools") {
        Ok(viewer) => viewer,
        Err(sign_in) => return sign_in.into_response(),
    };
    let mut pools = Vec::new();
    let listed = match app.store.list_pools().await {
        Ok(listed) => listed,
        Err(error) => return super::unavailable(&error.into()),
    };
    for pool in &listed {
        match pool_row(&app, pool).await {
            Ok(row) => pools.push(row),
            Err(error) => return super::unavailable(&error),
        }
    }
    super::page(&PoolsPage { banner: viewer.banner(), pools }, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "pool.html")]
struct PoolPage {
    banner: Banner,
    row: PoolRow,
    instance_type: String,
    providers: String,
    inputs: Vec<(String, String)>,
    conditions: Vec<String>,
    decisions: Vec<DecisionRow>,
    instances: Vec<InstanceRow>,
}

struct DecisionRow {
    at: String,
    current: u32,
    target: u32,
    reason: String,
}

struct InstanceRow {
    id: String,
    state: &'static str,
    node: String,
    provider: String,
    created_at: String,
    message: String,
}

pub(super) async fn get(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let name: PoolName = match name.parse() {
        Ok(name) => name,
        Err(error) => return super::bad_request(&format!("pool name: {}", error.problem)),
    };
    let viewer = match session::viewer(&app, &headers, &format!("/ui/pools/{name}")) {
        Ok(viewer) => viewer,
        Err(sign_in) => return sign_in.into_response(),
    };
    match pool_page(&app, &name).await {
        Ok(page) => super::page(&PoolPage { banner: viewer.banner(), ..page }, StatusCode::OK),
        Err(ApiError::Store(StoreError::NotFound { .. })) => super::not_found(&format!("there is no pool {name}")),
        Err(error) => super::unavailable(&error),
    }
}

async fn pool_page(app: &App, name: &PoolName) -> ApiResult<PoolPage> {
    let pool = app.store.pool(name).await?;
    let decision = pool.status.last_decision.as_ref();
    let filter = InstanceFilter { pool: Some(name.clone()), ..InstanceFilter::default() };
    let instances = app.store.list_instances(&filter, &PageRequest::first(INSTANCES)).await?;
    Ok(PoolPage {
        banner: Banner::default(),
        row: pool_row(app, &pool).await?,
        instance_type: pool.spec.instance_type.clone(),
        providers: pool
            .spec
            .providers
            .iter()
            .map(|p| format!("{} (priority {}, weight {})", p.name, p.priority, p.weight))
            .collect::<Vec<_>>()
            .join(", "),
        inputs: decision.map(|d| d.inputs.clone().into_iter().collect()).unwrap_or_default(),
        conditions: decision
            .map(|d| {
                d.conditions.iter().map(|c| format!("{}: {} (since {})", c.kind.as_str(), c.message, c.since)).collect()
            })
            .unwrap_or_default(),
        decisions: decisions(app, name).await?,
        instances: instances
            .items
            .into_iter()
            .map(|i| InstanceRow {
                id: i.id.to_string(),
                state: i.state.as_str(),
                node: i.node_id.map(|n| n.to_string()).unwrap_or_default(),
                provider: i.provider,
                created_at: i.created_at.to_string(),
                message: i.status_message,
            })
            .collect(),
    })
}

/// The pool's decisions, newest first: each change record of the pool holds the pool as
/// it was, its last decision included; a record whose decision is the one before is left
/// out (the pool changed for another reason).
async fn decisions(app: &App, name: &PoolName) -> ApiResult<Vec<DecisionRow>> {
    const BATCH: u32 = 1000;
    let mut filter = ChangeFilter::resource(ResourceKind::Pool, name);
    let mut newest: VecDeque<DecisionRow> = VecDeque::with_capacity(HISTORY + 1);
    let mut last_at = None;
    loop {
        let batch = app.store.list_changes(&filter, BATCH).await?;
        let full = batch.len() == BATCH as usize;
        for change in batch {
            filter.after_seq = change.seq;
            let Ok(pool) = serde_json::from_value::<Pool>(change.resource) else { continue };
            let Some(decision) = pool.status.last_decision else { continue };
            if last_at == Some(decision.at) {
                continue;
            }
            last_at = Some(decision.at);
            newest.push_front(DecisionRow {
                at: decision.at.to_string(),
                current: decision.current,
                target: decision.target,
                reason: decision.reason,
            });
            newest.truncate(HISTORY);
        }
        if !full {
            return Ok(newest.into());
        }
    }
}
