//! The MCP `ServerHandler`, implemented by hand: the server's description, the protocol
//! revisions it speaks (those with `initialize` and sessions), `tools/list` and
//! `tools/call`. rmcp makes one per session.

use std::borrow::Cow;

use axum::http::request::Parts;
use connectrpc::ConnectRpcService;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use super::{McpCaller, tools};
use crate::transport::Peer;

const INSTRUCTIONS: &str = "bosun runs a fleet of GPU nodes. These tools read it: nodes (list_nodes, get_node, \
node_health_history), the change log (list_events), pools (list_pools, get_pool) and the operations ledger's runs \
(list_runs, get_run). Every call is made as your token, with its permissions.";

pub(crate) struct McpServer {
    connect: ConnectRpcService,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").finish_non_exhaustive()
    }
}

impl McpServer {
    pub(crate) fn new(connect: ConnectRpcService) -> Self {
        Self { connect }
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

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::listed()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (caller, peer) = caller(&context)?;
        tracing::debug!(actor = %caller.caller.actor(), tool = %request.name, "MCP tool call");
        tools::call(&self.connect, &caller, peer, &request.name, request.arguments).await.map(Into::into)
    }
}
