//! The one HTTP port: `GET /healthz`, `/readyz` and `/metrics` beside the services
//! (bosun.v1's AgentService, AdminService and OpsService, Navarch's ControlPlaneService), which
//! answer Connect (JSON and binary protobuf), gRPC and gRPC-Web over HTTP/1.1 and h2c.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use connectrpc::{ConnectRpcService, Limits};

use crate::app::App;
use crate::exposition;
use crate::metrics::RpcMetrics;
use crate::rpc::Authenticate;
use crate::rpc::admin::AdminApi;
use crate::rpc::agent::AgentApi;
use crate::rpc::audit::Audit;
use crate::rpc::body::{BodyLimits, bounded_body};
use crate::rpc::navarch::NavarchApi;
use crate::rpc::ops::OpsApi;
use crate::rpc::shape::{JsonObjectsOnly, streaming_content_type};

pub(crate) fn router(app: Arc<App>) -> Router {
    let services = connectrpc::Router::new()
        .add_service(Arc::new(AgentApi::new(Arc::clone(&app))))
        .add_service(Arc::new(AdminApi::new(Arc::clone(&app))))
        .add_service(Arc::new(OpsApi::new(Arc::clone(&app))))
        .add_service(Arc::new(NavarchApi::new(Arc::clone(&app))));
    let limit = app.settings.max_request_bytes;
    // Interceptors run in the order added: every call is counted, refused ones included.
    let connect = ConnectRpcService::new(services)
        .with_limits(Limits::default().with_max_request_body_size(limit).with_max_message_size(limit))
        .with_interceptor(RpcMetrics(Arc::clone(&app.metrics)))
        // Outside authentication, so refused calls are audited too.
        .with_interceptor(Audit(Arc::clone(&app)))
        .with_interceptor(Authenticate(Arc::clone(&app)))
        .with_interceptor(JsonObjectsOnly);
    let body_limits = BodyLimits { max_bytes: limit, timeout: app.settings.request_body_timeout };
    // Layers run outside in: the content type is checked before the body is read.
    let ui = crate::ui::router(Arc::clone(&app), connect.clone());
    let mcp = crate::mcp::router(Arc::clone(&app), connect.clone());
    let rpc = Router::new()
        .fallback_service(connect)
        .layer(axum::middleware::from_fn_with_state(body_limits, bounded_body))
        .layer(axum::middleware::from_fn(streaming_content_type));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
        // Before the services' fallback, so `/ui/...` and `/mcp` never reach them.
        .merge(ui)
        .merge(mcp)
        .merge(rpc)
}

/// The process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// What a ready replica says: a sole server just "ready"; an elected one whether it leads.
fn readiness(app: &App) -> String {
    match &app.leadership {
        crate::app::Leadership::Sole => "ready\n".to_owned(),
        crate::app::Leadership::Elected(_) if app.is_leader() => "ready: leader\n".to_owned(),
        crate::app::Leadership::Elected(_) => "ready: follower\n".to_owned(),
    }
}

/// The server can do its work: the store answers, its schema is the one this binary was
/// built for (another bosun may have migrated it since this one started), and it takes
/// writes (see `Store::check_writable`).
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    if let Err(error) = app.store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("store unreachable: {error}\n"));
    }
    let expected = bosun_store::embedded_schema_version(app.store.backend());
    match app.store.schema_version().await {
        Ok(applied) if applied == expected => match app.store.check_writable().await {
            Ok(()) => (StatusCode::OK, readiness(&app)),
            Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("the store cannot take writes: {error}\n")),
        },
        Ok(applied) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "store schema is at version {} but this bosun needs {}; run `bosun db migrate status`\n",
                version(applied),
                version(expected)
            ),
        ),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the store's schema version: {error}\n")),
    }
}

fn version(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text
/// format (curl, promtool); see `exposition`.
async fn metrics(State(app): State<Arc<App>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let text = exposition::sorted(&app.metrics.render(&app.fleet, app.now()));
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if exposition::wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, exposition::OPENMETRICS)], text)
    } else {
        ([(header::CONTENT_TYPE, exposition::PROMETHEUS_TEXT)], exposition::to_prometheus_text(&text))
    }
}
