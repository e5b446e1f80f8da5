//! The operations ledger on the wire (OpsService): domain records to messages. Enum-like
//! fields travel as their lower-case names, as `bosun runs get -o json` prints them.

use bosun_core::ledger::{ArtifactInfo, StoredAuditEntry, StoredRunEvent};
use bosun_core::{Approval, ApprovalPolicy, PolicyDecision, Runbook, TaskRun};

use crate::convert::{opt_stamp, stamp};
use crate::v1;

pub fn runbook(r: &Runbook) -> v1::Runbook {
    v1::Runbook {
        name: r.name.to_string(),
        description: r.description.clone(),
        spec: r.spec.clone(),
        version: r.version,
        created_by: r.created_by.to_string(),
        created_at: stamp(r.created_at),
        updated_at: stamp(r.updated_at),
        revision: r.revision.get(),
        ..Default::default()
    }
}

fn json_text(value: &serde_json::Value) -> String {
    if value.is_null() { String::new() } else { value.to_string() }
}

pub fn run_event(e: &StoredRunEvent) -> v1::RunEvent {
    v1::RunEvent {
        seq: e.seq,
        at: stamp(e.at),
        r#type: e.event.event_type.to_string(),
        step: e.event.step,
        target: e.event.target.as_ref().map(ToString::to_string).unwrap_or_default(),
        message: e.event.message.clone(),
        data_json: e.event.data.as_ref().map(json_text).unwrap_or_default(),
        ..Default::default()
    }
}

pub fn run(r: &TaskRun, events: &[StoredRunEvent], pending: Option<&Approval>) -> v1::Run {
    v1::Run {
        id: r.id.to_string(),
        kind: r.kind.to_string(),
        runbook: r.runbook.as_ref().map(ToString::to_string).unwrap_or_default(),
        runbook_version: r.runbook_version,
        status: r.status.to_string(),
        targets: r.targets.iter().map(ToString::to_string).collect(),
        requested_by: r.requested_by.to_string(),
        approved_by: r.approved_by.as_ref().map(ToString::to_string).unwrap_or_default(),
        input_json: json_text(&r.input),
        result_json: r.result.as_ref().map(json_text).unwrap_or_default(),
        error: r.error.clone().unwrap_or_default(),
        created_at: stamp(r.created_at),
        started_at: opt_stamp(r.started_at),
        finished_at: opt_stamp(r.finished_at),
        revision: r.revision.get(),
        events: events.iter().map(run_event).collect(),
        pending_approval: pending.map_or_else(buffa::MessageField::none, |a| buffa::MessageField::some(approval(a))),
        ..Default::default()
    }
}

pub fn approval(a: &Approval) -> v1::Approval {
    let decision = a.decision.as_ref();
    v1::Approval {
        id: a.id.to_string(),
        run_id: a.run_id.to_string(),
        step: a.step,
        what: a.what.clone(),
        policy: a.policy.as_ref().map(ToString::to_string).unwrap_or_default(),
        required_role: a.required_role.to_string(),
        requested_by: a.requested_by.to_string(),
        requested_at: stamp(a.requested_at),
        expires_at: stamp(a.expires_at),
        decision: decision.map(|d| d.outcome.to_string()).unwrap_or_default(),
        decided_by: decision.map(|d| d.by.to_string()).unwrap_or_default(),
        reason: decision.map(|d| d.reason.clone()).unwrap_or_default(),
        decided_at: opt_stamp(decision.map(|d| d.at)),
        ..Default::default()
    }
}

pub fn artifact(a: &ArtifactInfo) -> v1::Artifact {
    v1::Artifact {
        run_id: a.run_id.to_string(),
        name: a.name.clone(),
        media_type: a.media_type.clone(),
        size: a.size,
        sha256: a.sha256.clone(),
        created_at: stamp(a.created_at),
        ..Default::default()
    }
}

pub fn approval_rule(p: &ApprovalPolicy) -> v1::ApprovalRule {
    let role = match p.decision {
        PolicyDecision::RequireApproval { role } => role.to_string(),
        PolicyDecision::Allow | PolicyDecision::Deny => String::new(),
    };
    v1::ApprovalRule {
        name: p.name.to_string(),
        position: p.position,
        description: p.description.clone(),
        condition: p.condition.clone(),
        decision: p.decision.as_str().to_owned(),
        role,
        ..Default::default()
    }
}

pub fn audit_entry(e: &StoredAuditEntry) -> v1::AuditEntry {
    v1::AuditEntry {
        seq: e.seq,
        at: stamp(e.at),
        actor: e.entry.actor.clone(),
        role: e.entry.role.map(|r| r.to_string()).unwrap_or_default(),
        method: e.entry.method.clone(),
        resource: e.entry.resource.clone(),
        outcome: e.entry.outcome.to_string(),
        code: e.entry.code.clone(),
        message: e.entry.message.clone(),
        request_id: e.entry.request_id.clone(),
        peer: e.entry.peer.clone().unwrap_or_default(),
        ..Default::default()
    }
}

pub fn tool_definition(t: &bosun_core::ToolDefinition) -> v1::ToolDefinition {
    v1::ToolDefinition {
        name: t.name.to_string(),
        description: t.description.clone(),
        risk: t.risk.to_string(),
        enabled: t.enabled,
        input_schema_json: t.input_schema.to_string(),
        updated_at: stamp(t.updated_at),
        revision: t.revision.get(),
        ..Default::default()
    }
}

pub fn tool_call(c: &bosun_core::ledger::StoredToolCall) -> v1::ToolCall {
    v1::ToolCall {
        id: c.id,
        at: stamp(c.at),
        tool: c.call.tool.to_string(),
        input_json: c.call.input.to_string(),
        output_json: c.call.output.as_ref().map(ToString::to_string).unwrap_or_default(),
        status: c.call.status.to_string(),
        error: c.call.error.clone().unwrap_or_default(),
        duration_ms: c.call.duration_ms,
        approval_id: c.call.approval_id.map(|a| a.to_string()).unwrap_or_default(),
        ..Default::default()
    }
}
