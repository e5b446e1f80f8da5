//! The operations ledger as the CLI prints it: runs with their events, runbooks, artifacts,
//! approval rules and audit entries. Status, kind and event types print in lower case, as
//! the ledger names them.

use bosun_api::v1;
use serde::Serialize;

use super::{dash, non_empty, time};
use crate::output::Table;

#[derive(Debug, Serialize)]
pub struct RunEventRow {
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: Option<String>,
    pub step: Option<u32>,
    pub target: Option<String>,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

impl RunEventRow {
    pub fn from_wire(e: &v1::RunEvent) -> Self {
        RunEventRow {
            seq: e.seq,
            event_type: e.r#type.clone(),
            at: time(&e.at),
            step: e.step,
            target: non_empty(&e.target),
            message: e.message.clone(),
            data: json(&e.data_json),
        }
    }
}

fn json(text: &str) -> Option<serde_json::Value> {
    (!text.is_empty()).then(|| serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.into())))
}

#[derive(Debug, Serialize)]
pub struct RunRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub runbook: Option<String>,
    pub runbook_version: Option<u32>,
    pub targets: Vec<String>,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub input: Option<serde_json::Value>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub revision: u64,
    /// `runs get` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<RunEventRow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<ApprovalRow>,
}

impl RunRow {
    pub fn from_wire(r: &v1::Run, with_events: bool) -> Self {
        RunRow {
            id: r.id.clone(),
            kind: r.kind.clone(),
            status: r.status.clone(),
            runbook: non_empty(&r.runbook),
            runbook_version: r.runbook_version,
            targets: r.targets.clone(),
            requested_by: r.requested_by.clone(),
            approved_by: non_empty(&r.approved_by),
            input: json(&r.input_json),
            result: json(&r.result_json),
            error: non_empty(&r.error),
            created_at: time(&r.created_at),
            started_at: time(&r.started_at),
            finished_at: time(&r.finished_at),
            revision: r.revision,
            events: with_events.then(|| r.events.iter().map(RunEventRow::from_wire).collect()),
            pending_approval: r.pending_approval.as_option().map(ApprovalRow::from_wire),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ApprovalRow {
    pub id: String,
    pub what: String,
    pub required_role: String,
    pub requested_by: String,
    pub expires_at: Option<String>,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
}

impl ApprovalRow {
    pub fn from_wire(a: &v1::Approval) -> Self {
        ApprovalRow {
            id: a.id.clone(),
            what: a.what.clone(),
            required_role: a.required_role.clone(),
            requested_by: a.requested_by.clone(),
            expires_at: time(&a.expires_at),
            decision: non_empty(&a.decision),
            decided_by: non_empty(&a.decided_by),
            reason: non_empty(&a.reason),
        }
    }
}

pub fn run_table(runs: &[RunRow]) -> Table {
    let mut table = Table::new(["ID", "KIND", "STATUS", "TARGETS", "REQUESTED BY", "CREATED"]);
    for r in runs {
        let targets = match r.targets.as_slice() {
            [] => "-".to_owned(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} +{}", rest.len()),
        };
        // A runbook run says which runbook.
        let kind = r.runbook.as_ref().map_or_else(|| r.kind.clone(), |runbook| format!("{} {runbook}", r.kind));
        table.row([
            r.id.clone(),
            kind,
            r.status.clone(),
            targets,
            r.requested_by.clone(),
            dash(r.created_at.as_deref()),
        ]);
    }
    table
}

/// A run's summary, then its events.
pub fn run_detail(r: &RunRow) -> String {
    let mut text = format!(
        "run {}\n  kind:         {}\n  status:       {}\n  targets:      {}\n  requested by: {}\n",
        r.id,
        r.kind,
        r.status,
        if r.targets.is_empty() { "-".to_owned() } else { r.targets.join(", ") },
        r.requested_by
    );
    if let Some(runbook) = &r.runbook {
        text.push_str(&format!("  runbook:      {runbook} (version {})\n", r.runbook_version.unwrap_or_default()));
    }
    if let Some(by) = &r.approved_by {
        text.push_str(&format!("  approved by:  {by}\n"));
    }
    if let Some(error) = &r.error {
        text.push_str(&format!("  error:        {error}\n"));
    }
    if let Some(approval) = &r.pending_approval {
        text.push_str(&format!(
            "  waiting for:  {} approval of {:?} (approval {}, expires {})\n",
            approval.required_role,
            approval.what,
            approval.id,
            dash(approval.expires_at.as_deref())
        ));
        text.push_str(&format!(
            "                `bosun runs approve {id}` or `bosun runs reject {id} --reason TEXT`\n",
            id = r.id
        ));
    }
    if let Some(events) = &r.events {
        text.push('\n');
        text.push_str(&event_table(events).render());
    }
    text
}

pub fn event_table(events: &[RunEventRow]) -> Table {
    let mut table = Table::new(["SEQ", "AT", "TYPE", "STEP", "TARGET", "MESSAGE"]);
    for e in events {
        table.row([
            e.seq.to_string(),
            dash(e.at.as_deref()),
            e.event_type.clone(),
            e.step.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            dash(e.target.as_deref()),
            e.message.clone(),
        ]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct RunbookRow {
    pub name: String,
    pub description: String,
    pub version: u32,
    pub created_by: String,
    pub updated_at: Option<String>,
    pub spec: String,
}

impl RunbookRow {
    pub fn from_wire(r: &v1::Runbook) -> Self {
        RunbookRow {
            name: r.name.clone(),
            description: r.description.clone(),
            version: r.version,
            created_by: r.created_by.clone(),
            updated_at: time(&r.updated_at),
            spec: r.spec.clone(),
        }
    }
}

pub fn runbook_table(runbooks: &[RunbookRow]) -> Table {
    let mut table = Table::new(["NAME", "VERSION", "UPDATED", "DESCRIPTION"]);
    for r in runbooks {
        table.row([r.name.clone(), r.version.to_string(), dash(r.updated_at.as_deref()), dash(Some(&r.description))]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct ArtifactRow {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub created_at: Option<String>,
}

impl ArtifactRow {
    pub fn from_wire(a: &v1::Artifact) -> Self {
        ArtifactRow {
            name: a.name.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            created_at: time(&a.created_at),
        }
    }
}

pub fn artifact_table(artifacts: &[ArtifactRow]) -> Table {
    let mut table = Table::new(["NAME", "TYPE", "SIZE", "SHA256"]);
    for a in artifacts {
        table.row([a.name.clone(), a.media_type.clone(), a.size.to_string(), a.sha256.clone()]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct ApprovalRuleRow {
    pub name: String,
    pub position: i32,
    pub condition: String,
    pub decision: String,
    pub role: Option<String>,
    pub description: String,
}

impl ApprovalRuleRow {
    pub fn from_wire(r: &v1::ApprovalRule) -> Self {
        ApprovalRuleRow {
            name: r.name.clone(),
            position: r.position,
            condition: r.condition.clone(),
            decision: r.decision.clone(),
            role: non_empty(&r.role),
            description: r.description.clone(),
        }
    }
}

pub fn approval_rule_table(rules: &[ApprovalRuleRow]) -> Table {
    let mut table = Table::new(["#", "NAME", "DECISION", "CONDITION"]);
    for r in rules {
        let decision = match &r.role {
            Some(role) => format!("{} ({role})", r.decision),
            None => r.decision.clone(),
        };
        table.row([r.position.to_string(), r.name.clone(), decision, r.condition.clone()]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub seq: u64,
    pub at: Option<String>,
    pub actor: String,
    pub role: Option<String>,
    pub method: String,
    pub resource: Option<String>,
    pub outcome: String,
    pub code: String,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub peer: Option<String>,
}

impl AuditRow {
    pub fn from_wire(e: &v1::AuditEntry) -> Self {
        AuditRow {
            seq: e.seq,
            at: time(&e.at),
            actor: e.actor.clone(),
            role: non_empty(&e.role),
            method: e.method.clone(),
            resource: non_empty(&e.resource),
            outcome: e.outcome.clone(),
            code: e.code.clone(),
            message: non_empty(&e.message),
            request_id: non_empty(&e.request_id),
            peer: non_empty(&e.peer),
        }
    }
}

pub fn audit_table(entries: &[AuditRow]) -> Table {
    let mut table = Table::new(["SEQ", "AT", "ACTOR", "METHOD", "RESOURCE", "OUTCOME"]);
    for e in entries {
        let method = e.method.rsplit('/').next().unwrap_or(&e.method).to_owned();
        let outcome = if e.outcome == "ok" { e.outcome.clone() } else { format!("{} ({})", e.outcome, e.code) };
        table.row([
            e.seq.to_string(),
            dash(e.at.as_deref()),
            e.actor.clone(),
            method,
            dash(e.resource.as_deref()),
            outcome,
        ]);
    }
    table
}
