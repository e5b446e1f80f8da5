//! The pools (`/ui/pools`) and one pool (`/ui/pools/{name}`): its bounds and providers, its
//! size and last decision with the inputs and conditions behind it, the decisions it went
//! through (each change record of the pool holds the decision of that moment), and its
//! instances; scaling it by hand (`/ui/pools/{name}/scale`), confirmed, through the API's
//! ScalePool.

use std::collections::VecDeque;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bosun_core::{Pool, PoolName, ResourceKind};
use bosun_store::{ChangeFilter, InstanceFilter, PageRequest, StoreError};
use connectrpc::ConnectRpcService;

use super::Banner;
use super::dispatch::{self, Refused};
use super::overview::{PoolRow, pool_row};
use super::session;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::transport::Peer;

/// How many decisions and instances a pool's page shows (the newest decisions).
const HISTORY: usize = 50;
const INSTANCES: u32 = 500;

#[derive(Template)]
#[template(path = "pools.html")]
struct PoolsPage {
    banner: Banner,
    pools: Vec<PoolRow>,
}

pub(super) async fn list(State(app): State<Arc<App>>, viewer: session::Viewer) -> Response {
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

pub(super) async fn get(State(app): State<Arc<App>>, viewer: session::Viewer, Path(name): Path<String>) -> Response {
    let name: PoolName = match name.parse() {
        Ok(name) => name,
        Err(error) => return super::bad_request(&format!("pool name: {}", error.problem)),
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

#[derive(Template)]
#[template(path = "scale.html")]
struct ScalePage<'a> {
    banner: Banner,
    pool: &'a str,
    min: u32,
    max: u32,
    target: String,
    error: Option<&'a str>,
}

/// The target a form or URL asks for, as typed (checked by the API).
fn target_of(text: &str) -> String {
    url::form_urlencoded::parse(text.as_bytes())
        .find(|(key, _)| key == "target")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default()
}

async fn scale_page(
    app: &App,
    viewer: &session::Viewer,
    name: &PoolName,
    target: &str,
    error: Option<&Refused>,
) -> Response {
    let pool = match app.store.pool(name).await {
        Ok(pool) => pool,
        Err(StoreError::NotFound { .. }) => return super::not_found(&format!("there is no pool {name}")),
        Err(error) => return super::unavailable(&error.into()),
    };
    let page = ScalePage {
        banner: viewer.banner(),
        pool: name.as_str(),
        min: pool.spec.min_nodes,
        max: pool.spec.max_nodes,
        target: target.to_owned(),
        error: error.map(|e| e.message.as_str()),
    };
    super::page(&page, error.map_or(StatusCode::OK, |e| e.status))
}

/// `GET /ui/pools/{name}/scale?target=N`: asks for confirmation.
pub(super) async fn confirm_scale(
    State(app): State<Arc<App>>,
    viewer: session::Viewer,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let name: PoolName = match name.parse() {
        Ok(name) => name,
        Err(error) => return super::bad_request(&format!("pool name: {}", error.problem)),
    };
    scale_page(&app, &viewer, &name, &target_of(query.as_deref().unwrap_or_default()), None).await
}

/// `POST /ui/pools/{name}/scale`: the confirmed form becomes the API's ScalePool.
pub(super) async fn scale(
    State(app): State<Arc<App>>,
    Extension(connect): Extension<ConnectRpcService>,
    extensions: Extensions,
    headers: HeaderMap,
    viewer: session::Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if !session::same_origin(&headers) {
        return super::forbidden("cross-site request refused: scale from this server's own pages");
    }
    let name: PoolName = match name.parse() {
        Ok(name) => name,
        Err(error) => return super::bad_request(&format!("pool name: {}", error.problem)),
    };
    let target = target_of(std::str::from_utf8(&body).unwrap_or_default());
    let Ok(number) = target.parse::<u32>() else {
        let refused = Refused {
            status: StatusCode::BAD_REQUEST,
            message: format!("target: {target:?} is not a number of nodes"),
        };
        return scale_page(&app, &viewer, &name, &target, Some(&refused)).await;
    };
    let request = serde_json::json!({ "name": name.as_str(), "target": number });
    let peer = extensions.get::<Peer>().copied();
    match dispatch::call(&app, &connect, &viewer, peer, "/bosun.v1.AdminService/ScalePool", &request).await {
        Ok(_) => Redirect::to(&format!("/ui/pools/{name}")).into_response(),
        Err(refused) => scale_page(&app, &viewer, &name, &target, Some(&refused)).await,
    }
}
