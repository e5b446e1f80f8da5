//! The operations ledger on SQLite: reads (on a reader, or the writer inside a commit) and
//! the row operations behind `Transaction`'s ledger methods.

use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, ApprovalPolicyName, AuditEntry, RunEvent, RunId, Runbook, RunbookName,
    TaskRun, Timestamp, ToolCall, ToolDefinition, ToolName,
};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};

use super::micros;
use super::read::{collect, json, one, opt_json, text};
use crate::error::{Result, StoreError};
use crate::ledger::{
    ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall, decision_role,
};
use crate::sql::ledger_rows::{
    ApprovalPolicyRow, ApprovalRow, ArtifactInfoRow, AuditRow, RunEventRow, RunRow, RunbookRow, TARGETS_SUBQUERY,
    ToolCallRow, ToolRow,
};
use crate::sql::to_json;
use crate::store::ApprovalFilter;

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) const RUNBOOK_COLUMNS: &str =
    "name, description, spec, version, created_by, created_at, updated_at, revision";

pub(super) fn runbook_row(row: &Row<'_>) -> Result<Runbook> {
    RunbookRow::<i64> {
        name: row.get(0)?,
        description: row.get(1)?,
        spec: row.get(2)?,
        version: row.get(3)?,
        created_by: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        revision: row.get(7)?,
    }
    .into_runbook()
}

pub(super) fn runbook(conn: &Connection, name: &str) -> Result<Option<Runbook>> {
    let sql = format!("SELECT {} FROM tasks WHERE name = ?1", RUNBOOK_COLUMNS);
    one(conn, &sql, &[text(name)], runbook_row)
}

pub(super) fn list_runbooks(conn: &Connection, after: Option<String>, limit: i64) -> Result<Vec<Runbook>> {
    let sql = format!("SELECT {} FROM tasks WHERE ?1 IS NULL OR name > ?1 ORDER BY name LIMIT ?2", RUNBOOK_COLUMNS);
    let after = after.map_or(Value::Null, text);
    collect(conn, &sql, &[after, Value::Integer(limit)], runbook_row)
}

pub(super) fn run_columns() -> String {
    format!(
        "r.run_id, r.kind, r.task, r.task_version, r.status, r.requested_by, r.approved_by, r.input, r.result, \
         r.error, r.created_at, r.started_at, r.finished_at, r.revision, {TARGETS_SUBQUERY}"
    )
}

pub(super) fn run_row(row: &Row<'_>) -> Result<TaskRun> {
    RunRow::<i64> {
        run_id: row.get(0)?,
        kind: row.get(1)?,
        task: row.get(2)?,
        task_version: row.get(3)?,
        status: row.get(4)?,
        requested_by: row.get(5)?,
        approved_by: row.get(6)?,
        input: json(row, 7, "task_runs.input")?,
        result: opt_json(row, 8, "task_runs.result")?,
        error: row.get(9)?,
        created_at: row.get(10)?,
        started_at: row.get(11)?,
        finished_at: row.get(12)?,
        revision: row.get(13)?,
        targets: row.get(14)?,
    }
    .into_run()
}

pub(super) fn run(conn: &Connection, id: &RunId) -> Result<Option<TaskRun>> {
    let sql = format!("SELECT {} FROM task_runs r WHERE r.run_id = ?1", run_columns());
    one(conn, &sql, &[text(id.to_string())], run_row)
}

pub(super) fn list_runs(
    conn: &Connection,
    filter: &RunFilter,
    before: Option<String>,
    limit: i64,
) -> Result<Vec<TaskRun>> {
    let mut sql = format!("SELECT {} FROM task_runs r WHERE 1 = 1", run_columns());
    let mut params = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: Value| {
        params.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    };
    if let Some(before) = before {
        bind(&mut sql, "r.run_id <", text(before));
    }
    if let Some(status) = filter.status {
        bind(&mut sql, "r.status =", text(status.as_str()));
    }
    if let Some(kind) = filter.kind {
        bind(&mut sql, "r.kind =", text(kind.as_str()));
    }
    if let Some(target) = &filter.target {
        bind(&mut sql, "r.run_id IN (SELECT run_id FROM task_run_targets WHERE target_id =", text(target.as_str()));
        sql.push(')');
    }
    params.push(Value::Integer(limit));
    sql.push_str(&format!(" ORDER BY r.run_id DESC LIMIT ?{}", params.len()));
    collect(conn, &sql, &params, run_row)
}

pub(super) const RUN_EVENT_COLUMNS: &str = "run_id, seq, at, type, step, target, message, data";

pub(super) fn run_event_row(row: &Row<'_>) -> Result<StoredRunEvent> {
    RunEventRow::<i64> {
        run_id: row.get(0)?,
        seq: row.get(1)?,
        at: row.get(2)?,
        event_type: row.get(3)?,
        step: row.get(4)?,
        target: row.get(5)?,
        message: row.get(6)?,
        data: opt_json(row, 7, "task_events.data")?,
    }
    .into_event()
}

fn require_run(conn: &Connection, id: &RunId) -> Result<()> {
    let exists = one(conn, "SELECT 1 FROM task_runs WHERE run_id = ?1", &[text(id.to_string())], |_| Ok(()))?;
    exists.ok_or_else(|| StoreError::not_found(bosun_core::ResourceKind::Run, id))
}

pub(super) fn run_events(conn: &Connection, id: &RunId, after: u64, limit: u32) -> Result<Vec<StoredRunEvent>> {
    require_run(conn, id)?;
    let sql =
        format!("SELECT {RUN_EVENT_COLUMNS} FROM task_events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
    collect(
        conn,
        &sql,
        &[text(id.to_string()), Value::Integer(int(after)), Value::Integer(i64::from(limit))],
        run_event_row,
    )
}

pub(super) const ARTIFACT_COLUMNS: &str = "run_id, name, media_type, size, sha256, created_at";

pub(super) fn artifact_row(row: &Row<'_>) -> Result<ArtifactInfo> {
    ArtifactInfoRow::<i64> {
        run_id: row.get(0)?,
        name: row.get(1)?,
        media_type: row.get(2)?,
        size: row.get(3)?,
        sha256: row.get(4)?,
        created_at: row.get(5)?,
    }
    .into_info()
}

pub(super) fn artifacts(conn: &Connection, id: &RunId) -> Result<Vec<ArtifactInfo>> {
    require_run(conn, id)?;
    let sql = format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ?1 ORDER BY name");
    collect(conn, &sql, &[text(id.to_string())], artifact_row)
}

pub(super) fn artifact(conn: &Connection, id: &RunId, name: &str) -> Result<Option<(ArtifactInfo, Vec<u8>)>> {
    let sql = format!("SELECT {ARTIFACT_COLUMNS}, content FROM artifacts WHERE run_id = ?1 AND name = ?2");
    one(conn, &sql, &[text(id.to_string()), text(name)], |row| Ok((artifact_row(row)?, row.get(6)?)))
}

pub(super) fn tool_row(row: &Row<'_>) -> Result<ToolDefinition> {
    ToolRow::<i64> {
        name: row.get(0)?,
        description: row.get(1)?,
        input_schema: json(row, 2, "tool_definitions.input_schema")?,
        risk: row.get(3)?,
        enabled: row.get(4)?,
        updated_at: row.get(5)?,
        revision: row.get(6)?,
    }
    .into_tool()
}

pub(super) fn tool(conn: &Connection, name: &str) -> Result<Option<ToolDefinition>> {
    let sql = format!("SELECT {} FROM tool_definitions WHERE name = ?1", ToolRow::<i64>::COLUMNS);
    one(conn, &sql, &[text(name)], tool_row)
}

pub(super) fn tools(conn: &Connection) -> Result<Vec<ToolDefinition>> {
    let sql = format!("SELECT {} FROM tool_definitions ORDER BY name", ToolRow::<i64>::COLUMNS);
    collect(conn, &sql, &[], tool_row)
}

pub(super) const TOOL_CALL_COLUMNS: &str =
    "id, run_id, tool, at, input, output, status, error, duration_ms, approval_id";

pub(super) fn tool_call_row(row: &Row<'_>) -> Result<StoredToolCall> {
    ToolCallRow::<i64> {
        id: row.get(0)?,
        run_id: row.get(1)?,
        tool: row.get(2)?,
        at: row.get(3)?,
        input: json(row, 4, "tool_call_records.input")?,
        output: opt_json(row, 5, "tool_call_records.output")?,
        status: row.get(6)?,
        error: row.get(7)?,
        duration_ms: row.get(8)?,
        approval_id: row.get(9)?,
    }
    .into_call()
}

pub(super) fn tool_calls(conn: &Connection, id: &RunId, after: u64, limit: u32) -> Result<Vec<StoredToolCall>> {
    let sql =
        format!("SELECT {TOOL_CALL_COLUMNS} FROM tool_call_records WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    collect(conn, &sql, &[text(id.to_string()), Value::Integer(after), Value::Integer(i64::from(limit))], tool_call_row)
}

pub(super) fn approval_policy_row(row: &Row<'_>) -> Result<ApprovalPolicy> {
    ApprovalPolicyRow::<i64> {
        name: row.get(0)?,
        position: row.get(1)?,
        description: row.get(2)?,
        condition: row.get(3)?,
        decision: row.get(4)?,
        required_role: row.get(5)?,
        updated_at: row.get(6)?,
        revision: row.get(7)?,
    }
    .into_policy()
}

pub(super) fn approval_policy(conn: &Connection, name: &str) -> Result<Option<ApprovalPolicy>> {
    let sql = format!("SELECT {} FROM approval_policies WHERE name = ?1", ApprovalPolicyRow::<i64>::COLUMNS);
    one(conn, &sql, &[text(name)], approval_policy_row)
}

pub(super) fn approval_policies(conn: &Connection) -> Result<Vec<ApprovalPolicy>> {
    let sql = format!("SELECT {} FROM approval_policies ORDER BY position, name", ApprovalPolicyRow::<i64>::COLUMNS);
    collect(conn, &sql, &[], approval_policy_row)
}

pub(super) const APPROVAL_COLUMNS: &str = "approval_id, run_id, step, what, policy, required_role, requested_by, requested_at, \
    expires_at, decision, decided_by, reason, decided_at, revision";

pub(super) fn approval_row(row: &Row<'_>) -> Result<Approval> {
    ApprovalRow::<i64> {
        approval_id: row.get(0)?,
        run_id: row.get(1)?,
        step: row.get(2)?,
        what: row.get(3)?,
        policy: row.get(4)?,
        required_role: row.get(5)?,
        requested_by: row.get(6)?,
        requested_at: row.get(7)?,
        expires_at: row.get(8)?,
        decision: row.get(9)?,
        decided_by: row.get(10)?,
        reason: row.get(11)?,
        decided_at: row.get(12)?,
        revision: row.get(13)?,
    }
    .into_approval()
}

pub(super) fn approval(conn: &Connection, id: &ApprovalId) -> Result<Option<Approval>> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE approval_id = ?1");
    one(conn, &sql, &[text(id.to_string())], approval_row)
}

pub(super) fn list_approvals(conn: &Connection, filter: &ApprovalFilter, limit: u32) -> Result<Vec<Approval>> {
    let mut sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE 1 = 1");
    let mut params = Vec::new();
    if let Some(run) = filter.run {
        params.push(text(run.to_string()));
        sql.push_str(&format!(" AND run_id = ?{}", params.len()));
    }
    if filter.undecided {
        sql.push_str(" AND decision IS NULL");
    }
    params.push(Value::Integer(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY approval_id LIMIT ?{}", params.len()));
    collect(conn, &sql, &params, approval_row)
}

pub(super) fn audit_row(row: &Row<'_>) -> Result<StoredAuditEntry> {
    AuditRow::<i64> {
        seq: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        role: row.get(3)?,
        method: row.get(4)?,
        resource: row.get(5)?,
        outcome: row.get(6)?,
        code: row.get(7)?,
        message: row.get(8)?,
        request_id: row.get(9)?,
        peer: row.get(10)?,
    }
    .into_entry()
}

pub(super) fn list_audit(
    conn: &Connection,
    filter: &AuditFilter,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredAuditEntry>> {
    let mut sql = format!("SELECT {} FROM audit_entries WHERE seq > ?1", AuditRow::<i64>::COLUMNS);
    let mut params = vec![Value::Integer(int(after))];
    let mut bind = |sql: &mut String, clause: &str, value: Value| {
        params.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    };
    if let Some(actor) = &filter.actor {
        bind(&mut sql, "actor =", text(actor.as_str()));
    }
    if let Some(method) = &filter.method {
        bind(&mut sql, "method =", text(method.as_str()));
    }
    if let Some(outcome) = filter.outcome {
        bind(&mut sql, "outcome =", text(outcome.as_str()));
    }
    if let Some(since) = filter.since {
        bind(&mut sql, "at >=", Value::Integer(micros(since)));
    }
    params.push(Value::Integer(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", params.len()));
    collect(conn, &sql, &params, audit_row)
}

// Row operations for the shared rules. Parameters are numbered so each table's INSERT and
// UPDATE share one binding order.

pub(super) const INSERT_RUNBOOK: &str = "INSERT INTO tasks (name, description, spec, version, created_by, created_at, \
    updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
pub(super) const UPDATE_RUNBOOK: &str = "UPDATE tasks SET description = ?2, spec = ?3, version = ?4, created_by = ?5, \
    created_at = ?6, updated_at = ?7, revision = ?8 WHERE name = ?1";

pub(super) fn write_runbook(conn: &Connection, sql: &str, r: &Runbook) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        r.name.as_str(),
        r.description,
        r.spec,
        i64::from(r.version),
        r.created_by.to_string(),
        micros(r.created_at),
        micros(r.updated_at),
        int(r.revision.get())
    ])
}

pub(super) fn delete_runbook(conn: &Connection, name: &RunbookName) -> Result<()> {
    conn.prepare_cached("DELETE FROM tasks WHERE name = ?1")?.execute([name.as_str()])?;
    Ok(())
}

pub(super) const INSERT_RUN: &str = "INSERT INTO task_runs (run_id, kind, task, task_version, status, requested_by, \
    approved_by, input, result, error, created_at, started_at, finished_at, revision) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
pub(super) const UPDATE_RUN: &str = "UPDATE task_runs SET kind = ?2, task = ?3, task_version = ?4, status = ?5, \
    requested_by = ?6, approved_by = ?7, input = ?8, result = ?9, error = ?10, created_at = ?11, started_at = ?12, \
    finished_at = ?13, revision = ?14 WHERE run_id = ?1";

pub(super) fn write_run(conn: &Connection, sql: &str, r: &TaskRun) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        r.id.to_string(),
        r.kind.as_str(),
        r.runbook.as_ref().map(|n| n.as_str()),
        r.runbook_version.map(i64::from),
        r.status.as_str(),
        r.requested_by.to_string(),
        r.approved_by.as_ref().map(ToString::to_string),
        to_json(&r.input),
        r.result.as_ref().map(to_json),
        r.error,
        micros(r.created_at),
        r.started_at.map(micros),
        r.finished_at.map(micros),
        int(r.revision.get())
    ])
}

pub(super) fn insert_run_targets(conn: &Connection, run: &TaskRun) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO task_run_targets (run_id, position, target_kind, target_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let id = run.id.to_string();
    for (position, target) in run.targets.iter().enumerate() {
        statement.execute(params![id, position as i64, target.kind(), target.id()])?;
    }
    Ok(())
}

pub(super) fn append_run_event(conn: &Connection, at: Timestamp, e: &RunEvent) -> Result<u64> {
    let id = e.run_id.to_string();
    let seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM task_events WHERE run_id = ?1")?
        .query_row([&id], |row| row.get(0))?;
    conn.prepare_cached(
        "INSERT INTO task_events (run_id, seq, at, type, step, target, message, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        seq,
        micros(at),
        e.event_type.as_str(),
        e.step.map(i64::from),
        e.target.as_ref().map(ToString::to_string),
        e.message,
        e.data.as_ref().map(to_json)
    ])?;
    crate::sql::unsigned("task_events.seq", seq)
}

pub(super) fn insert_artifact(conn: &Connection, info: &ArtifactInfo, content: &[u8]) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO artifacts (run_id, name, media_type, size, sha256, content, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        info.run_id.to_string(),
        info.name,
        info.media_type,
        int(info.size),
        info.sha256,
        content,
        micros(info.created_at)
    ])
}

pub(super) const INSERT_TOOL: &str = "INSERT INTO tool_definitions (name, description, input_schema, risk, enabled, \
    updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(super) const UPDATE_TOOL: &str = "UPDATE tool_definitions SET description = ?2, input_schema = ?3, risk = ?4, \
    enabled = ?5, updated_at = ?6, revision = ?7 WHERE name = ?1";

pub(super) fn write_tool(conn: &Connection, sql: &str, t: &ToolDefinition) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        t.name.as_str(),
        t.description,
        to_json(&t.input_schema),
        t.risk.as_str(),
        t.enabled,
        micros(t.updated_at),
        int(t.revision.get())
    ])
}

pub(super) fn delete_tool(conn: &Connection, name: &ToolName) -> Result<()> {
    conn.prepare_cached("DELETE FROM tool_definitions WHERE name = ?1")?.execute([name.as_str()])?;
    Ok(())
}

/// Writes a tool call record as stored elsewhere (a load): its id kept.
pub(super) fn insert_tool_call(conn: &Connection, c: &StoredToolCall) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tool_call_records (id, run_id, tool, at, input, output, status, error, duration_ms, approval_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        int(c.id),
        c.call.run_id.to_string(),
        c.call.tool.as_str(),
        micros(c.at),
        to_json(&c.call.input),
        c.call.output.as_ref().map(to_json),
        c.call.status.as_str(),
        c.call.error,
        int(c.call.duration_ms),
        c.call.approval_id.map(|a| a.to_string())
    ])?;
    Ok(())
}

pub(super) fn append_tool_call(conn: &Connection, at: Timestamp, c: &ToolCall) -> Result<u64> {
    conn.prepare_cached(
        "INSERT INTO tool_call_records (run_id, tool, at, input, output, status, error, duration_ms, approval_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        c.run_id.to_string(),
        c.tool.as_str(),
        micros(at),
        to_json(&c.input),
        c.output.as_ref().map(to_json),
        c.status.as_str(),
        c.error,
        int(c.duration_ms),
        c.approval_id.map(|a| a.to_string())
    ])?;
    crate::sql::unsigned("tool_call_records.id", conn.last_insert_rowid())
}

pub(super) const INSERT_APPROVAL_POLICY: &str = "INSERT INTO approval_policies (name, position, description, \
    condition, decision, required_role, updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
pub(super) const UPDATE_APPROVAL_POLICY: &str = "UPDATE approval_policies SET position = ?2, description = ?3, \
    condition = ?4, decision = ?5, required_role = ?6, updated_at = ?7, revision = ?8 WHERE name = ?1";

pub(super) fn write_approval_policy(conn: &Connection, sql: &str, p: &ApprovalPolicy) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        p.name.as_str(),
        i64::from(p.position),
        p.description,
        p.condition,
        p.decision.as_str(),
        decision_role(p.decision).map(|r| r.as_str()),
        micros(p.updated_at),
        int(p.revision.get())
    ])
}

pub(super) fn delete_approval_policy(conn: &Connection, name: &ApprovalPolicyName) -> Result<()> {
    conn.prepare_cached("DELETE FROM approval_policies WHERE name = ?1")?.execute([name.as_str()])?;
    Ok(())
}

pub(super) const INSERT_APPROVAL: &str = "INSERT INTO approvals (approval_id, run_id, step, what, policy, \
    required_role, requested_by, requested_at, expires_at, decision, decided_by, reason, decided_at, revision) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
pub(super) const UPDATE_APPROVAL: &str = "UPDATE approvals SET run_id = ?2, step = ?3, what = ?4, policy = ?5, \
    required_role = ?6, requested_by = ?7, requested_at = ?8, expires_at = ?9, decision = ?10, decided_by = ?11, \
    reason = ?12, decided_at = ?13, revision = ?14 WHERE approval_id = ?1";

pub(super) fn write_approval(conn: &Connection, sql: &str, a: &Approval) -> rusqlite::Result<usize> {
    let decision = a.decision.as_ref();
    conn.prepare_cached(sql)?.execute(params![
        a.id.to_string(),
        a.run_id.to_string(),
        a.step.map(i64::from),
        a.what,
        a.policy.as_ref().map(|p| p.as_str()),
        a.required_role.as_str(),
        a.requested_by.to_string(),
        micros(a.requested_at),
        micros(a.expires_at),
        decision.map(|d| d.outcome.as_str()),
        decision.map(|d| d.by.to_string()),
        decision.map(|d| d.reason.as_str()),
        decision.map(|d| micros(d.at)),
        int(a.revision.get())
    ])
}

pub(super) fn append_audit(conn: &Connection, at: Timestamp, e: &AuditEntry) -> Result<u64> {
    let seq: i64 = conn
        .prepare_cached("UPDATE ledger_sequences SET last = last + 1 WHERE name = 'audit' RETURNING last")?
        .query_row([], |row| row.get(0))?;
    write_audit(conn, seq, at, e)?;
    crate::sql::unsigned("audit_entries.seq", seq)
}

/// Writes an audit entry as stored elsewhere (a load): its number kept.
pub(super) fn insert_audit(conn: &Connection, e: &StoredAuditEntry) -> Result<()> {
    write_audit(conn, int(e.seq), e.at, &e.entry)
}

fn write_audit(conn: &Connection, seq: i64, at: Timestamp, e: &AuditEntry) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_entries (seq, at, actor, role, method, resource, outcome, code, message, request_id, peer) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        seq,
        micros(at),
        e.actor,
        e.role.map(|r| r.as_str()),
        e.method,
        e.resource,
        e.outcome.as_str(),
        e.code,
        e.message,
        e.request_id,
        e.peer
    ])?;
    Ok(())
}
