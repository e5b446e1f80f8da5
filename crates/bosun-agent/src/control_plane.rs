//! The agent's view of bosun's AgentService, independent of the transport.
//!
//! The generated RPC client implements [`ControlPlane`] in the crate that owns wire types;
//! this crate never sees protobuf. Tests and the simulator implement it in-process.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bosun_core::inventory::Workload;
use bosun_core::{CheckResult, CommandId, CommandKind, HealthEvent, MetricSample, NodeId, NodeRegistration, Timestamp};

/// The calls an agent makes to the control plane.
///
/// One implementation may serve many agents (the simulator shares one client across a
/// hundred thousand of them), so every call names its node.
#[async_trait]
pub trait ControlPlane: Send + Sync {
    /// Registers (or re-registers) this node; `instance_id` is bosun's instance id when the
    /// provider passed one.
    async fn register(
        &self,
        registration: &NodeRegistration,
        instance_id: Option<&str>,
    ) -> Result<AgentConfig, RpcError>;

    async fn heartbeat(&self, sample: &MetricSample) -> Result<(), RpcError>;

    async fn report_health(
        &self,
        node: &NodeId,
        results: &[CheckResult],
        events: &[HealthEvent],
    ) -> Result<(), RpcError>;

    /// Long poll: returns when commands are due or `wait` elapsed.
    async fn poll_commands(&self, node: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError>;

    async fn ack_command(&self, node: &NodeId, ack: &CommandAck) -> Result<(), RpcError>;

    /// Reports every GPU workload of `node`: the complete list, which replaces the last.
    /// An older server answers `unimplemented`.
    async fn report_workloads(&self, node: &NodeId, workloads: &[Workload]) -> Result<(), RpcError>;
}

/// How the control plane wants this agent to behave, returned by registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub heartbeat_interval: Duration,
    pub health_check_interval: Duration,
    /// How long one PollCommands call may wait for a command.
    pub command_poll_wait: Duration,
    /// Names of the checks to run (`boot`, `nvml`, `gpu`); empty means all of them.
    pub enabled_checks: Vec<String>,
    /// How often, at least, the GPU workloads are reported (they are also reported when
    /// they change, which the agent looks for every heartbeat interval).
    pub inventory_interval: Duration,
}

impl AgentConfig {
    /// The shortest heartbeat, health or inventory interval the agent honours. A misconfigured server
    /// answering zero must not turn a hundred thousand agents into busy loops.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

    /// This configuration with intervals raised to [`AgentConfig::MIN_INTERVAL`].
    pub(crate) fn with_floors(mut self) -> Self {
        self.heartbeat_interval = self.heartbeat_interval.max(Self::MIN_INTERVAL);
        self.health_check_interval = self.health_check_interval.max(Self::MIN_INTERVAL);
        self.inventory_interval = self.inventory_interval.max(Self::MIN_INTERVAL);
        self
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            health_check_interval: Duration::from_secs(30),
            command_poll_wait: Duration::from_secs(30),
            enabled_checks: Vec::new(),
            inventory_interval: Duration::from_secs(60),
        }
    }
}

/// A command handed to the agent by PollCommands. Delivery is at least once: the same
/// command may arrive again until its acknowledgement reaches the server.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredCommand {
    pub id: CommandId,
    pub kind: CommandKind,
    pub parameters: BTreeMap<String, String>,
    /// The command expires on the server after this; the agent does not start it later.
    pub deadline: Option<Timestamp>,
}

/// What an acknowledgement says about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckOutcome {
    /// The agent started working on it.
    Accepted,
    Succeeded,
    Failed,
}

impl AckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AckOutcome::Accepted => "ACCEPTED",
            AckOutcome::Succeeded => "SUCCEEDED",
            AckOutcome::Failed => "FAILED",
        }
    }
}

impl fmt::Display for AckOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An acknowledgement of a command, idempotent on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAck {
    pub command_id: CommandId,
    pub outcome: AckOutcome,
    pub message: String,
    /// Result details (hook output, diagnostic findings), bounded to what the server accepts.
    pub details: BTreeMap<String, String>,
}

/// Why a control-plane call failed, in the API's error vocabulary (SPEC 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The server does not know this node (it lost or deleted it): the agent re-registers.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The server or the network is down for now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Any other status, by its canonical code name (`deadline_exceeded`, `internal`...).
    #[error("{code}: {message}")]
    Other { code: String, message: String },
}

impl RpcError {
    /// Codes that describe a passing condition rather than a mistake in the request.
    const RETRYABLE_CODES: [&'static str; 6] =
        ["unavailable", "deadline_exceeded", "resource_exhausted", "aborted", "internal", "unknown"];

    /// Whether the server does not know the method: an older server.
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, RpcError::Other { code, .. } if code.eq_ignore_ascii_case("unimplemented"))
    }

    /// Whether the same call may succeed if simply tried again later.
    ///
    /// `internal` and `unknown` count as transient: transports report dropped connections
    /// with them, and the server never answers `internal` for bad input.
    pub fn is_retryable(&self) -> bool {
        match self {
            RpcError::Unavailable(_) => true,
            RpcError::Other { code, .. } => Self::RETRYABLE_CODES.iter().any(|c| c.eq_ignore_ascii_case(code)),
            RpcError::NotFound(_)
            | RpcError::Unauthenticated(_)
            | RpcError::PermissionDenied(_)
            | RpcError::InvalidArgument(_)
            | RpcError::FailedPrecondition(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_conditions_are_retryable() {
        let cases = [
            (RpcError::Unavailable("x".into()), true),
            (RpcError::Other { code: "DEADLINE_EXCEEDED".into(), message: "x".into() }, true),
            (RpcError::Other { code: "internal".into(), message: "x".into() }, true),
            (RpcError::Other { code: "already_exists".into(), message: "x".into() }, false),
            (RpcError::NotFound("x".into()), false),
            (RpcError::Unauthenticated("x".into()), false),
            (RpcError::PermissionDenied("x".into()), false),
            (RpcError::InvalidArgument("x".into()), false),
            (RpcError::FailedPrecondition("x".into()), false),
        ];
        for (error, retryable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
        assert!(RpcError::Other { code: "UNIMPLEMENTED".into(), message: "x".into() }.is_unimplemented());
        assert!(!RpcError::Other { code: "unimplemented".into(), message: "x".into() }.is_retryable());
        assert!(!RpcError::NotFound("x".into()).is_unimplemented());
    }

    #[test]
    fn zero_intervals_are_raised_to_the_floor() {
        let config = AgentConfig {
            heartbeat_interval: Duration::ZERO,
            health_check_interval: Duration::from_millis(10),
            inventory_interval: Duration::ZERO,
            ..AgentConfig::default()
        }
        .with_floors();
        assert_eq!(config.heartbeat_interval, AgentConfig::MIN_INTERVAL);
        assert_eq!(config.health_check_interval, AgentConfig::MIN_INTERVAL);
        assert_eq!(config.inventory_interval, AgentConfig::MIN_INTERVAL);
    }
}
