//! The MCP server: `/mcp` on the API port, MCP's Streamable HTTP transport (rmcp), with
//! sessions (`Mcp-Session-Id`, protocol revisions up to 2025-11-25, which have
//! `initialize`), authenticated by bosun's own tokens (operator or admin).
//!
//! - `guard.rs`: everything in front of rmcp (the kill switches, authentication, rate
//!   limit, session ownership, the body checked as one JSON-RPC message, rmcp's refusals rewritten
//!   as JSON-RPC errors); no input gets a 5xx.
//! - `limit.rs`: the per-token rate limit on the injected clock.
//! - `server.rs`: the `ServerHandler` (implemented by hand, no macros): `initialize`,
//!   `tools/list` and `tools/call`.
//! - `session.rs`: each session is an `ai_session` run; each call a tool call record on it.
//! - `tools.rs`: the tools, their schemas and what each does.
//! - `actions.rs`: the tools that change the fleet, behind the approval policy.
//! - `switch.rs`: the stored kill switch (`bosun mcp disable`), read on every request.
//!
//! Sessions live in this replica's memory: behind a load balancer, MCP clients need
//! sticky sessions.

mod actions;
mod guard;
mod limit;
mod server;
pub(crate) mod session;
pub(crate) mod switch;
pub(crate) mod tools;

use std::sync::Arc;

use axum::Router;
use connectrpc::ConnectRpcService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::app::App;
use crate::auth::Caller;

/// Who an MCP request comes from, as the guard authenticated it; rmcp hands it to the
/// handler inside the request's `http::request::Parts`.
#[derive(Debug, Clone)]
pub(crate) struct McpCaller {
    pub caller: Caller,
    /// The token itself, which tools call the API with; none for an open server's
    /// anonymous callers.
    pub bearer: Option<String>,
}

/// `/mcp`, guarded.
pub(crate) fn router(app: Arc<App>, connect: ConnectRpcService) -> Router {
    let mut sessions = LocalSessionManager::default();
    // No priming event before each answer: plainer event streams for curl.
    sessions.session_config.sse_retry = None;
    sessions.session_config.keep_alive = Some(session::IDLE_TIMEOUT);
    let sessions = Arc::new(sessions);
    let mut config = StreamableHttpServerConfig::default()
        .with_sse_retry(None)
        .with_max_request_body_bytes(app.settings.max_request_bytes)
        .with_cancellation_token(app.shutdown.child_token());
    if !app.auth.is_open() {
        // rmcp's DNS-rebinding check (loopback `Host`s only) guards servers anyone on the
        // machine may call; here every call needs a token, which a rebinding page lacks.
        config = config.disable_allowed_hosts();
    }
    let guard = Arc::new(guard::Guard::new(Arc::clone(&app), Arc::clone(&sessions)));
    // Called on every POST (rmcp reads the tool schemas from it), so only Arcs are cloned.
    let service = StreamableHttpService::new(
        move || Ok(server::McpServer::new(Arc::clone(&app), connect.clone())),
        sessions,
        config,
    );
    Router::new().route_service("/mcp", service).layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}
