//! The agent's [`ControlPlane`] over the network: AgentService through Connect.
//!
//! One client serves any number of agents (the simulator runs thousands on one), so node
//! tokens are kept per node. Registration authenticates with the configured (bootstrap)
//! token and returns a node token that every later call of that node uses. When the server
//! no longer accepts a node token (its keys changed), the token is dropped and the call
//! answers `not_found`, which makes the agent register again.
//!
//! Given several servers (replicas on one PostgreSQL), the client stays on the one that
//! last answered and moves to the next when a call fails for the server's sake
//! ([`Failover::Repeatable`]: every agent call may be repeated). Node tokens are valid on
//! every replica (they are minted from the configuration the replicas share), so the move
//! needs no new registration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bosun_agent::{AckOutcome, AgentConfig, CommandAck, ControlPlane, DeliveredCommand, RpcError};
use bosun_core::inventory::Workload;
use bosun_core::{CheckResult, HealthEvent, MetricSample, NodeId, NodeRegistration};
use connectrpc::client::{CallOptions, ClientConfig};
use connectrpc::{ConnectError, ErrorCode};

use crate::servers::{Failover, Servers, server_uris};
use crate::transport::{ClientTls, Transport};
use crate::{convert, v1};

/// How long a unary call may take before the agent treats the server as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time a long poll may take beyond the wait it asked for.
const POLL_SLACK: Duration = Duration::from_secs(10);

/// AgentService over HTTP (Connect, binary protobuf).
pub struct AgentClient {
    servers: Servers<v1::AgentServiceClient<Transport>>,
    bootstrap_token: Option<String>,
    node_tokens: Mutex<HashMap<NodeId, String>>,
    /// Where node tokens are kept across restarts (`<dir>/<node>.token`), if anywhere.
    state_dir: Option<PathBuf>,
    /// Whether calls carry client-side deadlines.
    deadlines: bool,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient").field("servers", &self.servers.describe()).finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid server URL {url:?}: {problem} (expected e.g. http://localhost:50051 or https://bosun.example:50051)")]
pub struct BadServerUrl {
    pub url: String,
    pub problem: String,
}

/// Why an agent client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error(transparent)]
    Url(#[from] BadServerUrl),
    #[error(transparent)]
    Tls(#[from] crate::transport::TlsSetupError),
}

/// Parses a server URL (`http://host:port` or `https://host:port`).
pub fn server_uri(url: &str) -> Result<http::Uri, BadServerUrl> {
    let bad = |problem: &str| BadServerUrl { url: url.to_owned(), problem: problem.to_owned() };
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("it needs the http:// or https:// scheme")),
    }
    if uri.host().is_none() {
        return Err(bad("it has no host"));
    }
    Ok(uri)
}

impl AgentClient {
    /// A client for the server at `url` (plain HTTP; several servers separated by commas),
    /// authenticating registrations with `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientSetupError> {
        Self::with_tls(url, token, &ClientTls::default())
    }

    /// A client for the server at `url`, over TLS when it is `https://`.
    pub fn with_tls(url: &str, token: Option<String>, tls: &ClientTls) -> Result<Self, ClientSetupError> {
        Self::build(url, token, tls, false)
    }

    fn build(url: &str, token: Option<String>, tls: &ClientTls, http2_only: bool) -> Result<Self, ClientSetupError> {
        let mut servers = Vec::new();
        for uri in server_uris(url)? {
            let transport = Transport::new(&uri, tls, http2_only)?;
            let name = uri.to_string().trim_end_matches('/').to_owned();
            servers.push((name, v1::AgentServiceClient::new(transport, ClientConfig::new(uri))));
        }
        Ok(Self {
            servers: Servers::new(servers, Failover::Repeatable),
            bootstrap_token: token.filter(|t| !t.is_empty()),
            node_tokens: Mutex::new(HashMap::new()),
            state_dir: None,
            deadlines: true,
        })
    }

    /// Like [`AgentClient::new`], multiplexing every call over one HTTP/2 (h2c) connection
    /// instead of a pool of HTTP/1.1 connections: the simulator runs thousands of agents,
    /// each holding a long poll open, and one connection per poll would exhaust file
    /// descriptors. One connection carries at most the server's stream limit (200 in
    /// hyper) at once, so give each client a few dozen agents.
    pub fn new_http2_only(url: &str, token: Option<String>, tls: &ClientTls) -> Result<Self, ClientSetupError> {
        Self::build(url, token, tls, true)
    }

    /// Calls without client-side deadlines, for a caller whose tokio clock is not the wall
    /// clock: connectrpc measures deadlines against `std::time::Instant` but waits for them
    /// on tokio's clock, so under the simulator's paused clock (which runs ahead of real
    /// time) every call would soon time out at once. The simulator bounds calls itself.
    pub fn without_deadlines(mut self) -> Self {
        self.deadlines = false;
        self
    }

    /// Keeps node tokens in `dir`, so an agent that restarts can register its node again
    /// (a server with `auth.node_token_key` refuses the shared token for that).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    fn token_file(&self, node: &NodeId) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|dir| dir.join(format!("{node}.token")))
    }

    /// The node token for `node`: in memory, else from the state directory.
    fn node_token(&self, node: &NodeId) -> Option<String> {
        if let Some(token) = self.tokens().get(node) {
            return Some(token.clone());
        }
        let stored = std::fs::read_to_string(self.token_file(node)?).ok()?.trim().to_owned();
        if stored.is_empty() {
            return None;
        }
        self.tokens().insert(node.clone(), stored.clone());
        Some(stored)
    }

    fn remember(&self, node: &NodeId, token: &str) {
        self.tokens().insert(node.clone(), token.to_owned());
        if let Some(path) = self.token_file(node)
            && let Err(error) = write_private(&path, token)
        {
            tracing::warn!(%error, path = %path.display(), "cannot keep the node token; a restarted agent may need the node deleted to register again");
        }
    }

    fn forget(&self, node: &NodeId) {
        self.tokens().remove(node);
        if let Some(path) = self.token_file(node) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, String>> {
        self.node_tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn options(&self, token: Option<&str>, timeout: Duration) -> CallOptions {
        let options =
            if self.deadlines { CallOptions::default().with_timeout(timeout) } else { CallOptions::default() };
        match token {
            Some(token) => options.with_header("authorization", format!("Bearer {token}")),
            None => options,
        }
    }

    /// Call options for `node`: its node token if it has one, else the bootstrap token.
    /// Returns whether a node token is used.
    fn node_options(&self, node: &NodeId, timeout: Duration) -> (CallOptions, bool) {
        match self.node_token(node) {
            Some(token) => (self.options(Some(&token), timeout), true),
            None => (self.options(self.bootstrap_token.as_deref(), timeout), false),
        }
    }

    /// Maps a failed call. A refused node token is forgotten and reported as `not_found`,
    /// so the agent registers again and receives a fresh one.
    fn failed(&self, node: &NodeId, used_node_token: bool, error: ConnectError) -> RpcError {
        if used_node_token && error.code == ErrorCode::Unauthenticated {
            self.forget(node);
            return RpcError::NotFound(format!("the server refused node {node}'s token; registering again"));
        }
        rpc_error(error)
    }
}

/// A Connect error in the agent's vocabulary.
pub fn rpc_error(error: ConnectError) -> RpcError {
    let message = error.message.clone().unwrap_or_default();
    match error.code {
        ErrorCode::NotFound => RpcError::NotFound(message),
        ErrorCode::Unauthenticated => RpcError::Unauthenticated(message),
        ErrorCode::PermissionDenied => RpcError::PermissionDenied(message),
        ErrorCode::InvalidArgument => RpcError::InvalidArgument(message),
        ErrorCode::FailedPrecondition => RpcError::FailedPrecondition(message),
        ErrorCode::Unavailable => RpcError::Unavailable(message),
        code => RpcError::Other { code: code.as_str().to_owned(), message },
    }
}

fn invalid_answer(what: &str, problem: impl std::fmt::Display) -> RpcError {
    RpcError::Other { code: "internal".to_owned(), message: format!("the server sent an unreadable {what}: {problem}") }
}

#[async_trait]
impl ControlPlane for AgentClient {
    async fn register(
        &self,
        registration: &NodeRegistration,
        instance_id: Option<&str>,
    ) -> Result<AgentConfig, RpcError> {
        let node = &registration.node_id;
        let request = convert::register_request(registration, instance_id);
        // A node that has a token registers with it: a server with a node token key lets
        // only the node itself register it again. A refused token (the key changed) is
        // dropped and the shared token tried.
        let (options, with_node_token) = self.node_options(node, CALL_TIMEOUT);
        let register = |options: CallOptions| {
            let request = &request;
            self.servers.call(move |client| client.register_node_with_options(request.clone(), options.clone()))
        };
        let response = match register(options).await {
            Err(error) if with_node_token && error.code == ErrorCode::Unauthenticated => {
                self.forget(node);
                register(self.options(self.bootstrap_token.as_deref(), CALL_TIMEOUT)).await
            }
            other => other,
        }
        .map_err(rpc_error)?
        .into_owned();
        if !response.node_token.is_empty() {
            self.remember(node, &response.node_token);
        } else if !with_node_token {
            // Pinned tokens and open servers hand out none.
            self.forget(node);
        }
        let config = response.config.as_option().cloned().unwrap_or_default();
        let seconds = |s: u32| Duration::from_secs(u64::from(s));
        let defaults = AgentConfig::default();
        Ok(AgentConfig {
            heartbeat_interval: match config.heartbeat_interval_seconds {
                0 => defaults.heartbeat_interval,
                s => seconds(s),
            },
            health_check_interval: match config.health_check_interval_seconds {
                0 => defaults.health_check_interval,
                s => seconds(s),
            },
            command_poll_wait: match config.command_poll_wait_seconds {
                0 => defaults.command_poll_wait,
                s => seconds(s),
            },
            enabled_checks: config.enabled_health_checks.clone(),
            inventory_interval: match config.inventory_interval_seconds {
                0 => defaults.inventory_interval,
                s => seconds(s),
            },
        })
    }

    async fn heartbeat(&self, sample: &MetricSample) -> Result<(), RpcError> {
        let node = &sample.node_id;
        let (options, with_node_token) = self.node_options(node, CALL_TIMEOUT);
        let request = v1::HeartbeatRequest {
            node_id: node.to_string(),
            metrics: buffa::MessageField::some(convert::node_metrics(sample)),
            ..Default::default()
        };
        self.servers
            .call(|client| client.heartbeat_with_options(request.clone(), options.clone()))
            .await
            .map_err(|e| self.failed(node, with_node_token, e))?;
        Ok(())
    }

    async fn report_health(
        &self,
        node: &NodeId,
        results: &[CheckResult],
        events: &[HealthEvent],
    ) -> Result<(), RpcError> {
        let (options, with_node_token) = self.node_options(node, CALL_TIMEOUT);
        let request = v1::ReportHealthRequest {
            node_id: node.to_string(),
            results: results.iter().map(convert::check_result).collect(),
            events: events.iter().map(convert::health_event).collect(),
            ..Default::default()
        };
        self.servers
            .call(|client| client.report_health_with_options(request.clone(), options.clone()))
            .await
            .map_err(|e| self.failed(node, with_node_token, e))?;
        Ok(())
    }

    async fn poll_commands(&self, node: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError> {
        let (options, with_node_token) = self.node_options(node, wait + POLL_SLACK);
        let request = v1::PollCommandsRequest {
            node_id: node.to_string(),
            wait_seconds: u32::try_from(wait.as_secs()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        let response = self
            .servers
            .call(|client| client.poll_commands_with_options(request.clone(), options.clone()))
            .await
            .map_err(|e| self.failed(node, with_node_token, e))?
            .into_owned();
        response
            .commands
            .iter()
            .map(|c| {
                let c = convert::node_command_from(c).map_err(|e| invalid_answer("command", e))?;
                Ok(DeliveredCommand { id: c.id, kind: c.kind, parameters: c.parameters, deadline: c.deadline })
            })
            .collect()
    }

    async fn ack_command(&self, node: &NodeId, ack: &CommandAck) -> Result<(), RpcError> {
        let (options, with_node_token) = self.node_options(node, CALL_TIMEOUT);
        let outcome = match ack.outcome {
            AckOutcome::Accepted => v1::AckOutcome::ACK_OUTCOME_ACCEPTED,
            AckOutcome::Succeeded => v1::AckOutcome::ACK_OUTCOME_SUCCEEDED,
            AckOutcome::Failed => v1::AckOutcome::ACK_OUTCOME_FAILED,
        };
        let request = v1::AckCommandRequest {
            node_id: node.to_string(),
            command_id: ack.command_id.to_string(),
            outcome: outcome.into(),
            message: ack.message.clone(),
            details: ack.details.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..Default::default()
        };
        self.servers
            .call(|client| client.ack_command_with_options(request.clone(), options.clone()))
            .await
            .map_err(|e| self.failed(node, with_node_token, e))?;
        Ok(())
    }

    async fn report_workloads(&self, node: &NodeId, workloads: &[Workload]) -> Result<(), RpcError> {
        let (options, with_node_token) = self.node_options(node, CALL_TIMEOUT);
        let request = convert::report_workloads_request(node, workloads);
        self.servers
            .call(|client| client.report_workloads_with_options(request.clone(), options.clone()))
            .await
            .map_err(|e| self.failed(node, with_node_token, e))?;
        Ok(())
    }
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("token.new");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        std::io::Write::write_all(&mut file, contents.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_need_http_and_a_host() {
        assert!(server_uri("http://localhost:50051").is_ok());
        assert!(server_uri("https://bosun.example:50051").is_ok());
        assert!(server_uri("ftp://x").unwrap_err().to_string().contains("http://"));
        assert!(server_uri("localhost:50051").unwrap_err().to_string().contains("http://"));
        assert!(server_uri("http://").is_err());
    }

    #[test]
    fn tls_options_need_an_https_url() {
        let tls = ClientTls { insecure_skip_verify: true, ..ClientTls::default() };
        let error = AgentClient::with_tls("http://localhost:50051", None, &tls).unwrap_err();
        assert!(error.to_string().contains("need an https:// server URL"), "{error}");
        let half = ClientTls { client_cert: Some("c.pem".into()), ..ClientTls::default() };
        let error = AgentClient::with_tls("https://localhost:50051", None, &half).unwrap_err();
        assert!(error.to_string().contains("--client-cert and --client-key go together"), "{error}");
    }

    #[test]
    fn codes_map_to_what_the_agent_acts_on() {
        assert_eq!(rpc_error(ConnectError::not_found("gone")), RpcError::NotFound("gone".into()));
        assert_eq!(rpc_error(ConnectError::new(ErrorCode::Unavailable, "down")), RpcError::Unavailable("down".into()));
        assert!(rpc_error(ConnectError::deadline_exceeded("slow")).is_retryable());
        assert!(!rpc_error(ConnectError::invalid_argument("bad")).is_retryable());
    }
}
