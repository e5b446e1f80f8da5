//! The agent's [`ControlPlane`] over the network: AgentService through Connect.
//!
//! One client serves any number of agents (the simulator runs thousands on one), so node
//! tokens are kept per node. Registration authenticates with the configured (bootstrap)
//! token and returns a node token that every later call of that node uses. When the server
//! no longer accepts a node token (its keys changed), the token is dropped and the call
//! answers `not_found`, which makes the agent register again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bosun_agent::{AckOutcome, AgentConfig, CommandAck, ControlPlane, DeliveredCommand, RpcError};
use bosun_core::{CheckResult, HealthEvent, MetricSample, NodeId, NodeRegistration};
use connectrpc::client::{CallOptions, ClientConfig, HttpClient};
use connectrpc::{ConnectError, ErrorCode};

use crate::{convert, v1};

/// How long a unary call may take before the agent treats the server as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time a long poll may take beyond the wait it asked for.
const POLL_SLACK: Duration = Duration::from_secs(10);

/// AgentService over HTTP (Connect, binary protobuf).
pub struct AgentClient {
    client: v1::AgentServiceClient<HttpClient>,
    bootstrap_token: Option<String>,
    node_tokens: Mutex<HashMap<NodeId, String>>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient").field("server", &self.client.config().base_uri()).finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid server URL {url:?}: {problem} (expected e.g. http://localhost:50051)")]
pub struct BadServerUrl {
    pub url: String,
    pub problem: String,
}

/// Parses a server URL (`http://host:port`).
pub fn server_uri(url: &str) -> Result<http::Uri, BadServerUrl> {
    let bad = |problem: &str| BadServerUrl { url: url.to_owned(), problem: problem.to_owned() };
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https is not supported yet; put a TLS-terminating proxy in front")),
        _ => return Err(bad("it needs the http:// scheme")),
    }
    if uri.host().is_none() {
        return Err(bad("it has no host"));
    }
    Ok(uri)
}

impl AgentClient {
    /// A client for the server at `url`, authenticating registrations with `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, BadServerUrl> {
        let config = ClientConfig::new(server_uri(url)?);
        Ok(Self {
            client: v1::AgentServiceClient::new(HttpClient::plaintext(), config),
            bootstrap_token: token.filter(|t| !t.is_empty()),
            node_tokens: Mutex::new(HashMap::new()),
        })
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, String>> {
        self.node_tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn options(&self, token: Option<&str>, timeout: Duration) -> CallOptions {
        let options = CallOptions::default().with_timeout(timeout);
        match token {
            Some(token) => options.with_header("authorization", format!("Bearer {token}")),
            None => options,
        }
    }

    /// Call options for `node`: its node token if it has one, else the bootstrap token.
    /// Returns whether a node token is used.
    fn node_options(&self, node: &NodeId, timeout: Duration) -> (CallOptions, bool) {
        let node_token = self.tokens().get(node).cloned();
        match node_token {
            Some(token) => (self.options(Some(&token), timeout), true),
            None => (self.options(self.bootstrap_token.as_deref(), timeout), false),
        }
    }

    /// Maps a failed call. A refused node token is forgotten and reported as `not_found`,
    /// so the agent registers again and receives a fresh one.
    fn failed(&self, node: &NodeId, used_node_token: bool, error: ConnectError) -> RpcError {
        if used_node_token && error.code == ErrorCode::Unauthenticated {
            self.tokens().remove(node);
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
        // Registration always presents the bootstrap token: a stale node token must not
        // lock a node out.
        let options = self.options(self.bootstrap_token.as_deref(), CALL_TIMEOUT);
        let response = self.client.register_node_with_options(request, options).await.map_err(rpc_error)?.into_owned();
        if response.node_token.is_empty() {
            self.tokens().remove(node);
        } else {
            self.tokens().insert(node.clone(), response.node_token.clone());
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
        self.client
            .heartbeat_with_options(request, options)
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
        self.client
            .report_health_with_options(request, options)
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
            .client
            .poll_commands_with_options(request, options)
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
        self.client
            .ack_command_with_options(request, options)
            .await
            .map_err(|e| self.failed(node, with_node_token, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_need_http_and_a_host() {
        assert!(server_uri("http://localhost:50051").is_ok());
        assert!(server_uri("https://x").unwrap_err().to_string().contains("https is not supported"));
        assert!(server_uri("localhost:50051").unwrap_err().to_string().contains("http://"));
        assert!(server_uri("http://").is_err());
    }

    #[test]
    fn codes_map_to_what_the_agent_acts_on() {
        assert_eq!(rpc_error(ConnectError::not_found("gone")), RpcError::NotFound("gone".into()));
        assert_eq!(rpc_error(ConnectError::new(ErrorCode::Unavailable, "down")), RpcError::Unavailable("down".into()));
        assert!(rpc_error(ConnectError::deadline_exceeded("slow")).is_retryable());
        assert!(!rpc_error(ConnectError::invalid_argument("bad")).is_retryable());
    }
}
