//! The MCP `ServerHandler`, implemented by hand: the server's description, the protocol
//! revisions it speaks (those with `initialize` and sessions), `initialize` (which opens
//! the session's run), `tools/list` and `tools/call`. rmcp makes one per session, and
//! drops it when the session ends, which closes the run.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use axum::http::request::Parts;
use connectrpc::ConnectRpcService;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use super::session::{self, Session};
use super::{McpCaller, tools};
use crate::app::App;
use crate::transport::Peer;

const INSTRUCTIONS: &str = "bosun runs a fleet of GPU nodes. Read it with list_nodes, get_node, \
node_health_history, list_events, list_pools, get_pool, list_runs and get_run. Change it with cordon_node, \
uncordon_node, drain_node, diagnose_node, terminate_node, scale_pool and start_runbook: each goes through bosun's \
approval policy, which may let it through, deny it, or hold it for a person's approval (the answer then says \
\"awaiting approval\" with a run id; get_run shows the outcome later). Report the LLM usage of your own requests \
with report_llm_usage. Every call is made as your token, with its permissions, and recorded in this session's run.";

pub(crate) struct McpServer {
    app: Arc<App>,
    connect: ConnectRpcService,
    /// Set by `initialize`.
    session: OnceLock<Session>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").field("session", &self.session.get().map(|s| s.run)).finish_non_exhaustive()
    }
}

impl McpServer {
    pub(crate) fn new(app: Arc<App>, connect: ConnectRpcService) -> Self {
        Self { app, connect, session: OnceLock::new() }
    }

    fn session(&self) -> Result<&Session, McpError> {
        self.session.get().ok_or_else(|| {
            McpError::invalid_request(
                "initialize first: bosun speaks MCP with sessions (revisions up to 2025-11-25)",
                None,
            )
        })
    }
}

impl Drop for McpServer {
    /// The session ended (DELETE, idle timeout, shutdown): its run ends too.
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        let app = Arc::clone(&self.app);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = session::close(&app, session.run, "the session ended").await {
                    tracing::warn!(run = %session.run, %error, "MCP session run not closed; the janitor will");
                }
            });
        }
    }
}

/// The guard's caller and the peer, from the HTTP request rmcp hands over.
fn caller(context: &RequestContext<RoleServer>) -> Result<(McpCaller, Option<Peer>), McpError> {
    let parts = context
        .extensions
        .get::<Parts>()
        .ok_or_else(|| McpError::internal_error("the request reached the handler without its HTTP request", None))?;
    let caller = parts
        .extensions
        .get::<McpCaller>()
        .cloned()
        .ok_or_else(|| McpError::internal_error("the request reached the handler without authentication", None))?;
    Ok((caller, parts.extensions.get::<Peer>().copied()))
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bosun", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// Up to 2025-11-25: the newest revisions have no `initialize` and no sessions.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::LATEST_WITH_INITIALIZE))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        if self.session.get().is_some() {
            return Err(McpError::invalid_request("this session is initialized already", None));
        }
        let answer = self.negotiate_initialize(&request)?;
        let (caller, peer) = caller(&context)?;
        let opened = session::open(&self.app, caller, peer, &request)
            .await
            .map_err(|e| McpError::internal_error(format!("the session could not be recorded: {e}"), None))?;
        if let Err(opened) = self.session.set(opened) {
            // Two initializes raced: the second's run is closed at once.
            let app = Arc::clone(&self.app);
            tokio::spawn(async move { session::close(&app, opened.run, "initialized twice").await });
            return Err(McpError::invalid_request("this session is initialized already", None));
        }
        context.peer.set_peer_info(request);
        Ok(answer)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.session()?;
        let rows = self
            .app
            .store
            .tools()
            .await
            .map_err(|e| McpError::internal_error(format!("the tools cannot be read: {e}"), None))?;
        Ok(ListToolsResult::with_all_items(tools::listed(&rows)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let session = self.session()?;
        tracing::debug!(actor = %session.actor(), tool = %request.name, run = %session.run, "MCP tool call");
        tools::call(&self.app, &self.connect, session, &request.name, request.arguments).await.map(Into::into)
    }
}
