//! The operations ledger: what bosun did, who asked for it, who approved it and what came
//! out of it.
//!
//! - A [`Runbook`] is a named, versioned task definition (its steps are parsed by the
//!   server; the ledger keeps the text as applied).
//! - A [`TaskRun`] is one execution: of a runbook, or of one of bosun's own actions (a
//!   replacement, a scale decision, a drift repair). Its status follows the lifecycle in
//!   [`crate::lifecycle::RunStatus`].
//! - [`RunEvent`]s are its append-only history, numbered without gaps per run;
//!   [`Artifact`]s what it produced.
//! - [`ToolDefinition`]s are the operations an operator or an AI agent may call, with their
//!   risk; each call is a [`ToolCall`] record.
//! - [`ApprovalPolicy`] rules decide whether an operation may go ahead, needs an
//!   [`Approval`], or is refused.
//! - [`AuditEntry`]s record every API call that changed something or was refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validation::ValidationError;
use crate::{
    Actor, ApprovalId, ApprovalPolicyName, InstanceId, NodeId, PoolName, Revision, RunId, RunStatus, RunTrigger,
    RunbookName, Timestamp, ToolName, TransitionError,
};

named_enum!(
    /// What a token may do (SPEC 5).
    Role, field = "role" {
        Agent => "agent",
        Operator => "operator",
        Admin => "admin",
    }
);

/// A named task definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runbook {
    pub name: RunbookName,
    pub description: String,
    /// The runbook as applied (YAML), verbatim.
    pub spec: String,
    /// 1 when first applied; one more each time a different text is applied.
    pub version: u32,
    pub created_by: Actor,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revision: Revision,
}

named_enum!(
    /// What started a run (`ai_session`: an AI agent's MCP session, its tool calls recorded
    /// on it; `ai_action`: one gated action such an agent asked for).
    RunKind, field = "kind" {
        Runbook => "runbook",
        Replacement => "replacement",
        Scale => "scale",
        DriftRepair => "drift_repair",
        ProviderOperation => "provider_operation",
        External => "external",
        AiSession => "ai_session",
        AiAction => "ai_action",
    }
);

/// What a run acts on. Written `node:<id>`, `pool:<name>` or `instance:<id>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RunTarget {
    Node(NodeId),
    Pool(PoolName),
    Instance(InstanceId),
}

impl RunTarget {
    /// `node`, `pool` or `instance`.
    pub fn kind(&self) -> &'static str {
        match self {
            RunTarget::Node(_) => "node",
            RunTarget::Pool(_) => "pool",
            RunTarget::Instance(_) => "instance",
        }
    }

    /// The target's id or name, without its kind.
    pub fn id(&self) -> &str {
        match self {
            RunTarget::Node(id) => id.as_str(),
            RunTarget::Pool(name) => name.as_str(),
            RunTarget::Instance(id) => id.as_str(),
        }
    }

    /// The target of `kind` (as [`RunTarget::kind`] names it) and `id`.
    pub fn from_parts(kind: &str, id: &str) -> Result<Self, ValidationError> {
        match kind {
            "node" => Ok(RunTarget::Node(NodeId::new(id)?)),
            "pool" => Ok(RunTarget::Pool(PoolName::new(id)?)),
            "instance" => Ok(RunTarget::Instance(InstanceId::new(id)?)),
            other => Err(ValidationError::new(
                "target",
                format_args!("{other:?} is not a kind of target; use node, pool or instance"),
            )),
        }
    }
}

impl fmt::Display for RunTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

impl fmt::Debug for RunTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for RunTarget {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, id) = text.split_once(':').ok_or_else(|| {
            ValidationError::new(
                "target",
                format_args!("{text:?} is not of the form node:<id>, pool:<name> or instance:<id>"),
            )
        })?;
        Self::from_parts(kind, id)
    }
}

impl TryFrom<String> for RunTarget {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<RunTarget> for String {
    fn from(target: RunTarget) -> String {
        target.to_string()
    }
}

/// One execution recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    pub id: RunId,
    pub kind: RunKind,
    /// The runbook run, and its version at the start (runbook runs only).
    pub runbook: Option<RunbookName>,
    pub runbook_version: Option<u32>,
    pub status: RunStatus,
    pub targets: Vec<RunTarget>,
    pub requested_by: Actor,
    pub approved_by: Option<Actor>,
    /// What the run was asked to do (`null` when nothing beyond its targets).
    pub input: serde_json::Value,
    pub result: Option<serde_json::Value>,
    /// Why it failed, was cancelled or was rejected.
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub revision: Revision,
}

impl TaskRun {
    /// A new run, at revision 1, created at `at` in `status` (one a run may begin in).
    pub fn new(kind: RunKind, status: RunStatus, requested_by: Actor, targets: Vec<RunTarget>, at: Timestamp) -> Self {
        TaskRun {
            id: RunId::new_at(at),
            kind,
            runbook: None,
            runbook_version: None,
            status,
            targets,
            requested_by,
            approved_by: None,
            input: serde_json::Value::Null,
            result: None,
            error: None,
            created_at: at,
            started_at: (status == RunStatus::Running).then_some(at),
            finished_at: None,
            revision: Revision::FIRST,
        }
    }

    /// Moves the run on by `trigger` at `at`: its first start sets `started_at`, finishing
    /// sets `finished_at`.
    pub fn apply(&mut self, trigger: RunTrigger, at: Timestamp) -> Result<(), TransitionError> {
        let to = RunStatus::apply(Some(self.status), trigger)?;
        self.status = to;
        if to == RunStatus::Running && self.started_at.is_none() {
            self.started_at = Some(at);
        }
        if to.is_final() {
            self.finished_at = Some(at);
        }
        Ok(())
    }
}

named_enum!(
    /// What a run event records.
    RunEventType, field = "type" {
        StepStarted => "step_started",
        StepFinished => "step_finished",
        StepFailed => "step_failed",
        Log => "log",
        ApprovalRequested => "approval_requested",
        ApprovalDecided => "approval_decided",
        ToolCall => "tool_call",
        StatusChanged => "status_changed",
        Error => "error",
    }
);

/// One entry of a run's history, as appended; the store numbers it and stamps its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub run_id: RunId,
    #[serde(rename = "type")]
    pub event_type: RunEventType,
    /// The runbook step (0-based) it belongs to, if any.
    pub step: Option<u32>,
    pub target: Option<RunTarget>,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

impl RunEvent {
    pub fn new(run_id: RunId, event_type: RunEventType, message: impl Into<String>) -> Self {
        RunEvent { run_id, event_type, step: None, target: None, message: message.into(), data: None }
    }

    pub fn at_step(mut self, step: u32) -> Self {
        self.step = Some(step);
        self
    }

    pub fn on(mut self, target: RunTarget) -> Self {
        self.target = Some(target);
        self
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// Something a run produced, such as a diagnostic's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub run_id: RunId,
    /// Unique within its run.
    pub name: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

named_enum!(
    /// How much harm a tool can do.
    ToolRisk, field = "risk" {
        Read => "read",
        Write => "write",
        Destructive => "destructive",
    }
);

/// An operation an operator or an AI agent may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: ToolName,
    pub description: String,
    /// JSON Schema of the tool's input.
    pub input_schema: serde_json::Value,
    pub risk: ToolRisk,
    /// Disabled tools are not offered and every call to them is refused.
    pub enabled: bool,
    pub updated_at: Timestamp,
    pub revision: Revision,
}

named_enum!(
    /// How a tool call ended.
    ToolCallStatus, field = "status" {
        Succeeded => "succeeded",
        Failed => "failed",
        Refused => "refused",
        AwaitingApproval => "awaiting_approval",
    }
);

/// One call of a tool, as recorded; the store numbers it and stamps its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub run_id: RunId,
    pub tool: ToolName,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub status: ToolCallStatus,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub approval_id: Option<ApprovalId>,
}

/// What an approval policy rule decides for an operation it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum PolicyDecision {
    Allow,
    /// A person holding `role` must approve first.
    RequireApproval {
        role: Role,
    },
    Deny,
}

impl PolicyDecision {
    /// `allow`, `require_approval` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyDecision::Allow => "allow",
            PolicyDecision::RequireApproval { .. } => "require_approval",
            PolicyDecision::Deny => "deny",
        }
    }
}

/// One rule of the approval policy: the first rule (by position, then name) whose CEL
/// condition holds for an operation decides it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    pub name: ApprovalPolicyName,
    pub position: i32,
    pub description: String,
    /// A CEL expression over the operation (tool, risk, actor, role, targets, pool...).
    pub condition: String,
    #[serde(flatten)]
    pub decision: PolicyDecision,
    pub updated_at: Timestamp,
    pub revision: Revision,
}

named_enum!(
    /// How an approval was decided.
    ApprovalOutcome, field = "decision" {
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
    }
);

/// The decision on an approval, made once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub outcome: ApprovalOutcome,
    pub by: Actor,
    pub reason: String,
    pub at: Timestamp,
}

/// A request for a person's approval before an operation goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: ApprovalId,
    pub run_id: RunId,
    pub step: Option<u32>,
    /// The operation awaiting approval, in words.
    pub what: String,
    /// The policy rule that asked for it.
    pub policy: Option<ApprovalPolicyName>,
    pub required_role: Role,
    pub requested_by: Actor,
    pub requested_at: Timestamp,
    /// Undecided at this time, it expires and its run is rejected.
    pub expires_at: Timestamp,
    pub decision: Option<ApprovalDecision>,
    pub revision: Revision,
}

named_enum!(
    /// How an audited API call ended.
    AuditOutcome, field = "outcome" {
        Ok => "ok",
        Refused => "refused",
        Failed => "failed",
    }
);

/// One audited API call, as appended; the store numbers it and stamps its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The caller's token name, or `anonymous`.
    pub actor: String,
    pub role: Option<Role>,
    /// The RPC, e.g. `bosun.v1.AdminService/CordonNode`.
    pub method: String,
    /// What it acted on, e.g. `node:gpu-1` (empty when nothing in particular).
    pub resource: String,
    pub outcome: AuditOutcome,
    /// The RPC code (`ok`, `permission_denied`...).
    pub code: String,
    pub message: String,
    pub request_id: String,
    pub peer: Option<String>,
}

/// A run event as stored: numbered within its run (1, 2, 3...) and stamped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRunEvent {
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: RunEvent,
}

/// An artifact's description, without its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    pub run_id: RunId,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub created_at: Timestamp,
}

/// A tool call as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredToolCall {
    pub id: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub call: ToolCall,
}

/// An audit entry as stored: numbered without gaps across the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAuditEntry {
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_text() {
        for text in ["node:gpu-1", "pool:train", "instance:i-0abc"] {
            let target: RunTarget = text.parse().expect("valid target");
            assert_eq!(target.to_string(), text);
            assert_eq!(serde_json::to_string(&target).expect("json"), format!("\"{text}\""));
        }
        for bad in ["gpu-1", "vm:x", "node:", "pool:has space"] {
            assert!(bad.parse::<RunTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_decisions_are_flat_in_json() {
        let decision = PolicyDecision::RequireApproval { role: Role::Admin };
        let json = serde_json::to_value(decision).expect("json");
        assert_eq!(json, serde_json::json!({"decision": "require_approval", "role": "admin"}));
        assert_eq!(serde_json::from_value::<PolicyDecision>(json).expect("parses"), decision);
    }
}
