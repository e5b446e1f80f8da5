//! Row shapes of the operations ledger shared by the SQL backends (see `rows.rs`), and
//! their conversion into domain types. Ids are read as text (PostgreSQL casts its UUIDs).

use bosun_core::{
    Approval, ApprovalDecision, ApprovalPolicy, AuditEntry, RunEvent, RunTarget, Runbook, TaskRun, ToolCall,
    ToolDefinition,
};
use sqlx::types::Json;

use super::rows::SqlTime;
use super::{parse, parse_opt, unsigned};
use crate::error::{Result, StoreError};
use crate::ledger::{ArtifactInfo, StoredAuditEntry, StoredRunEvent, StoredToolCall, decision_from_columns};

fn revision(what: &str, value: i64) -> Result<bosun_core::Revision> {
    bosun_core::Revision::new(unsigned(what, value)?).ok_or_else(|| StoreError::corrupt(what, "revision 0"))
}

/// A run's targets as the SQL backends select them: `kind:id` joined by commas, in
/// position order (ids never contain a comma), or NULL for none.
pub(crate) fn parse_targets(joined: Option<&str>) -> Result<Vec<RunTarget>> {
    joined
        .filter(|text| !text.is_empty())
        .map_or(Ok(Vec::new()), |text| text.split(',').map(|t| parse("task_run_targets", t)).collect())
}

/// Selects a run's targets as [`parse_targets`] reads them, for the run aliased `r`.
pub(crate) const TARGETS_SUBQUERY: &str = "(SELECT string_agg(t.target_kind || ':' || t.target_id, ',' ORDER BY t.position) \
     FROM task_run_targets t WHERE t.run_id = r.run_id)";

#[derive(sqlx::FromRow)]
pub(crate) struct RunbookRow<T> {
    pub name: String,
    pub description: String,
    pub spec: String,
    pub version: i64,
    pub created_by: String,
    pub created_at: T,
    pub updated_at: T,
    pub revision: i64,
}

impl<T: SqlTime> RunbookRow<T> {
    pub fn into_runbook(self) -> Result<Runbook> {
        Ok(Runbook {
            name: parse("tasks.name", &self.name)?,
            description: self.description,
            spec: self.spec,
            version: unsigned("tasks.version", self.version)?,
            created_by: parse("tasks.created_by", &self.created_by)?,
            created_at: self.created_at.timestamp(),
            updated_at: self.updated_at.timestamp(),
            revision: revision("tasks.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow<T> {
    pub run_id: String,
    pub kind: String,
    pub task: Option<String>,
    pub task_version: Option<i64>,
    pub status: String,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub input: Json<serde_json::Value>,
    pub result: Option<Json<serde_json::Value>>,
    pub error: Option<String>,
    pub created_at: T,
    pub started_at: Option<T>,
    pub finished_at: Option<T>,
    pub revision: i64,
    pub targets: Option<String>,
}

impl<T: SqlTime> RunRow<T> {
    pub fn into_run(self) -> Result<TaskRun> {
        Ok(TaskRun {
            id: parse("task_runs.run_id", &self.run_id)?,
            kind: parse("task_runs.kind", &self.kind)?,
            runbook: parse_opt("task_runs.task", self.task.as_deref())?,
            runbook_version: self.task_version.map(|v| unsigned("task_runs.task_version", v)).transpose()?,
            status: parse("task_runs.status", &self.status)?,
            targets: parse_targets(self.targets.as_deref())?,
            requested_by: parse("task_runs.requested_by", &self.requested_by)?,
            approved_by: parse_opt("task_runs.approved_by", self.approved_by.as_deref())?,
            input: self.input.0,
            result: self.result.map(|r| r.0),
            error: self.error,
            created_at: self.created_at.timestamp(),
            started_at: self.started_at.map(SqlTime::timestamp),
            finished_at: self.finished_at.map(SqlTime::timestamp),
            revision: revision("task_runs.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunEventRow<T> {
    pub run_id: String,
    pub seq: i64,
    pub at: T,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub step: Option<i64>,
    pub target: Option<String>,
    pub message: String,
    pub data: Option<Json<serde_json::Value>>,
}

impl<T: SqlTime> RunEventRow<T> {
    pub fn into_event(self) -> Result<StoredRunEvent> {
        Ok(StoredRunEvent {
            seq: unsigned("task_events.seq", self.seq)?,
            at: self.at.timestamp(),
            event: RunEvent {
                run_id: parse("task_events.run_id", &self.run_id)?,
                event_type: parse("task_events.type", &self.event_type)?,
                step: self.step.map(|s| unsigned("task_events.step", s)).transpose()?,
                target: parse_opt("task_events.target", self.target.as_deref())?,
                message: self.message,
                data: self.data.map(|d| d.0),
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ArtifactInfoRow<T> {
    pub run_id: String,
    pub name: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: T,
}

impl<T: SqlTime> ArtifactInfoRow<T> {
    pub fn into_info(self) -> Result<ArtifactInfo> {
        Ok(ArtifactInfo {
            run_id: parse("artifacts.run_id", &self.run_id)?,
            name: self.name,
            media_type: self.media_type,
            size: unsigned("artifacts.size", self.size)?,
            sha256: self.sha256,
            created_at: self.created_at.timestamp(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ToolRow<T> {
    pub name: String,
    pub description: String,
    pub input_schema: Json<serde_json::Value>,
    pub risk: String,
    pub enabled: bool,
    pub updated_at: T,
    pub revision: i64,
}

impl<T: SqlTime> ToolRow<T> {
    pub const COLUMNS: &'static str = "name, description, input_schema, risk, enabled, updated_at, revision";

    pub fn into_tool(self) -> Result<ToolDefinition> {
        Ok(ToolDefinition {
            name: parse("tool_definitions.name", &self.name)?,
            description: self.description,
            input_schema: self.input_schema.0,
            risk: parse("tool_definitions.risk", &self.risk)?,
            enabled: self.enabled,
            updated_at: self.updated_at.timestamp(),
            revision: revision("tool_definitions.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ToolCallRow<T> {
    pub id: i64,
    pub run_id: String,
    pub tool: String,
    pub at: T,
    pub input: Json<serde_json::Value>,
    pub output: Option<Json<serde_json::Value>>,
    pub status: String,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub approval_id: Option<String>,
}

impl<T: SqlTime> ToolCallRow<T> {
    pub fn into_call(self) -> Result<StoredToolCall> {
        Ok(StoredToolCall {
            id: unsigned("tool_call_records.id", self.id)?,
            at: self.at.timestamp(),
            call: ToolCall {
                run_id: parse("tool_call_records.run_id", &self.run_id)?,
                tool: parse("tool_call_records.tool", &self.tool)?,
                input: self.input.0,
                output: self.output.map(|o| o.0),
                status: parse("tool_call_records.status", &self.status)?,
                error: self.error,
                duration_ms: unsigned("tool_call_records.duration_ms", self.duration_ms)?,
                approval_id: parse_opt("tool_call_records.approval_id", self.approval_id.as_deref())?,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApprovalPolicyRow<T> {
    pub name: String,
    pub position: i64,
    pub description: String,
    pub condition: String,
    pub decision: String,
    pub required_role: Option<String>,
    pub updated_at: T,
    pub revision: i64,
}

impl<T: SqlTime> ApprovalPolicyRow<T> {
    pub const COLUMNS: &'static str =
        "name, position, description, condition, decision, required_role, updated_at, revision";

    pub fn into_policy(self) -> Result<ApprovalPolicy> {
        Ok(ApprovalPolicy {
            name: parse("approval_policies.name", &self.name)?,
            position: i32::try_from(self.position).map_err(|e| StoreError::corrupt("approval_policies.position", e))?,
            description: self.description,
            condition: self.condition,
            decision: decision_from_columns(&self.decision, self.required_role.as_deref())?,
            updated_at: self.updated_at.timestamp(),
            revision: revision("approval_policies.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApprovalRow<T> {
    pub approval_id: String,
    pub run_id: String,
    pub step: Option<i64>,
    pub what: String,
    pub policy: Option<String>,
    pub required_role: String,
    pub requested_by: String,
    pub requested_at: T,
    pub expires_at: T,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub decided_at: Option<T>,
    pub revision: i64,
}

impl<T: SqlTime> ApprovalRow<T> {
    pub fn into_approval(self) -> Result<Approval> {
        let decision = match (self.decision, self.decided_by, self.reason, self.decided_at) {
            (None, None, None, None) => None,
            (Some(outcome), Some(by), Some(reason), Some(at)) => Some(ApprovalDecision {
                outcome: parse("approvals.decision", &outcome)?,
                by: parse("approvals.decided_by", &by)?,
                reason,
                at: at.timestamp(),
            }),
            _ => return Err(StoreError::corrupt("approvals.decision", "the decision columns are partly set")),
        };
        Ok(Approval {
            id: parse("approvals.approval_id", &self.approval_id)?,
            run_id: parse("approvals.run_id", &self.run_id)?,
            step: self.step.map(|s| unsigned("approvals.step", s)).transpose()?,
            what: self.what,
            policy: parse_opt("approvals.policy", self.policy.as_deref())?,
            required_role: parse("approvals.required_role", &self.required_role)?,
            requested_by: parse("approvals.requested_by", &self.requested_by)?,
            requested_at: self.requested_at.timestamp(),
            expires_at: self.expires_at.timestamp(),
            decision,
            revision: revision("approvals.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow<T> {
    pub seq: i64,
    pub at: T,
    pub actor: String,
    pub role: Option<String>,
    pub method: String,
    pub resource: String,
    pub outcome: String,
    pub code: String,
    pub message: String,
    pub request_id: String,
    pub peer: Option<String>,
}

impl<T: SqlTime> AuditRow<T> {
    pub const COLUMNS: &'static str =
        "seq, at, actor, role, method, resource, outcome, code, message, request_id, peer";

    pub fn into_entry(self) -> Result<StoredAuditEntry> {
        Ok(StoredAuditEntry {
            seq: unsigned("audit_entries.seq", self.seq)?,
            at: self.at.timestamp(),
            entry: AuditEntry {
                actor: self.actor,
                role: parse_opt("audit_entries.role", self.role.as_deref())?,
                method: self.method,
                resource: self.resource,
                outcome: parse("audit_entries.outcome", &self.outcome)?,
                code: self.code,
                message: self.message,
                request_id: self.request_id,
                peer: self.peer,
            },
        })
    }
}
