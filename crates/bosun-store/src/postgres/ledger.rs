//! The operations ledger on PostgreSQL: queries shared by the store's reads (on the pool)
//! and the row operations behind `Transaction`'s ledger methods (in a transaction, where
//! reads lock their row with `FOR UPDATE`).

use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, ApprovalPolicyName, AuditEntry, RunEvent, RunId, Runbook, RunbookName,
    TaskRun, Timestamp, ToolCall, ToolDefinition, ToolName,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::{Executor, Postgres, QueryBuilder};

use super::time;
use crate::error::Result;
use crate::ledger::{
    ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall, decision_role,
};
use crate::sql::ledger_rows::{
    ApprovalPolicyRow, ApprovalRow, ArtifactInfoRow, AuditRow, RunEventRow, RunRow, RunbookRow, TARGETS_SUBQUERY,
    ToolCallRow, ToolRow,
};
use crate::sql::{SlowLog, map_err, unsigned};
use crate::store::ApprovalFilter;

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
type Time = DateTime<Utc>;

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `FOR UPDATE` inside a transaction, nothing on the pool.
fn lock_clause(lock: bool) -> &'static str {
    if lock { " FOR UPDATE" } else { "" }
}

const RUNBOOK_COLUMNS: &str =
    "name, description, spec, version::int8 AS version, created_by, created_at, updated_at, revision";

pub(super) async fn runbook<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    name: &str,
    lock: bool,
) -> Result<Option<Runbook>> {
    let sql = format!("SELECT {RUNBOOK_COLUMNS} FROM tasks WHERE name = $1{}", lock_clause(lock));
    let row: Option<RunbookRow<Time>> = slow
        .run("tasks.get", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(RunbookRow::into_runbook).transpose()
}

pub(super) async fn list_runbooks<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<Runbook>> {
    let sql = format!("SELECT {RUNBOOK_COLUMNS} FROM tasks WHERE $1::text IS NULL OR name > $1 ORDER BY name LIMIT $2");
    let rows: Vec<RunbookRow<Time>> = slow
        .run("tasks.list", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(RunbookRow::into_runbook).collect()
}

fn run_columns() -> String {
    format!(
        "r.run_id::text AS run_id, r.kind, r.task, r.task_version::int8 AS task_version, r.status, r.requested_by, \
         r.approved_by, r.input, r.result, r.error, r.created_at, r.started_at, r.finished_at, r.revision, \
         {TARGETS_SUBQUERY} AS targets"
    )
}

pub(super) async fn run<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &RunId,
    lock: bool,
) -> Result<Option<TaskRun>> {
    let sql = format!(
        "SELECT {} FROM task_runs r WHERE r.run_id = $1{}",
        run_columns(),
        if lock { " FOR UPDATE OF r" } else { "" }
    );
    let row: Option<RunRow<Time>> = slow
        .run("task_runs.get", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).fetch_optional(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(RunRow::into_run).transpose()
}

pub(super) async fn list_runs<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    filter: &RunFilter,
    before: Option<RunId>,
    limit: i64,
) -> Result<Vec<TaskRun>> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {} FROM task_runs r WHERE TRUE", run_columns()));
    if let Some(before) = before {
        q.push(" AND r.run_id < ").push_bind(before.as_uuid());
    }
    if let Some(status) = filter.status {
        q.push(" AND r.status = ").push_bind(status.as_str());
    }
    if let Some(kind) = filter.kind {
        q.push(" AND r.kind = ").push_bind(kind.as_str());
    }
    if let Some(target) = &filter.target {
        q.push(" AND r.run_id IN (SELECT run_id FROM task_run_targets WHERE target_id = ")
            .push_bind(target.clone())
            .push(")");
    }
    q.push(" ORDER BY r.run_id DESC LIMIT ").push_bind(limit);
    let rows: Vec<RunRow<Time>> =
        slow.run("task_runs.list", q.build_query_as().fetch_all(executor)).await.map_err(|e| map_err(e, None))?;
    rows.into_iter().map(RunRow::into_run).collect()
}

pub(super) async fn run_events<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &RunId,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredRunEvent>> {
    let rows: Vec<RunEventRow<Time>> = slow
        .run(
            "task_events.list",
            sqlx::query_as(
                "SELECT run_id::text AS run_id, seq, at, type, step::int8 AS step, target, message, data \
                 FROM task_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(id.as_uuid())
            .bind(int(after))
            .bind(i64::from(limit))
            .fetch_all(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(RunEventRow::into_event).collect()
}

const ARTIFACT_COLUMNS: &str = "run_id::text AS run_id, name, media_type, size, sha256, created_at";

pub(super) async fn artifacts<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &RunId,
) -> Result<Vec<ArtifactInfo>> {
    let sql = format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1 ORDER BY name");
    let rows: Vec<ArtifactInfoRow<Time>> = slow
        .run("artifacts.list", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).fetch_all(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(ArtifactInfoRow::into_info).collect()
}

#[derive(sqlx::FromRow)]
struct ArtifactWithContent {
    #[sqlx(flatten)]
    info: ArtifactInfoRow<Time>,
    content: Vec<u8>,
}

pub(super) async fn artifact<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &RunId,
    name: &str,
) -> Result<Option<(ArtifactInfo, Vec<u8>)>> {
    let sql = format!("SELECT {ARTIFACT_COLUMNS}, content FROM artifacts WHERE run_id = $1 AND name = $2");
    let row: Option<ArtifactWithContent> = slow
        .run(
            "artifacts.get",
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).bind(name).fetch_optional(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(|row| Ok((row.info.into_info()?, row.content))).transpose()
}

pub(super) async fn tool<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    name: &str,
    lock: bool,
) -> Result<Option<ToolDefinition>> {
    let sql = format!("SELECT {} FROM tool_definitions WHERE name = $1{}", ToolRow::<Time>::COLUMNS, lock_clause(lock));
    let row: Option<ToolRow<Time>> = slow
        .run("tool_definitions.get", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(ToolRow::into_tool).transpose()
}

pub(super) async fn tools<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
) -> Result<Vec<ToolDefinition>> {
    let sql = format!("SELECT {} FROM tool_definitions ORDER BY name", ToolRow::<Time>::COLUMNS);
    let rows: Vec<ToolRow<Time>> = slow
        .run("tool_definitions.list", sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(ToolRow::into_tool).collect()
}

pub(super) async fn tool_calls<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &RunId,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredToolCall>> {
    let rows: Vec<ToolCallRow<Time>> = slow
        .run(
            "tool_call_records.list",
            sqlx::query_as(
                "SELECT id, run_id::text AS run_id, tool, at, input, output, status, error, duration_ms, \
                 approval_id::text AS approval_id FROM tool_call_records WHERE run_id = $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
            )
            .bind(id.as_uuid())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(executor),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(ToolCallRow::into_call).collect()
}

const APPROVAL_POLICY_COLUMNS: &str =
    "name, position::int8 AS position, description, condition, decision, required_role, updated_at, revision";

pub(super) async fn approval_policy<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    name: &str,
    lock: bool,
) -> Result<Option<ApprovalPolicy>> {
    let sql = format!("SELECT {APPROVAL_POLICY_COLUMNS} FROM approval_policies WHERE name = $1{}", lock_clause(lock));
    let row: Option<ApprovalPolicyRow<Time>> = slow
        .run("approval_policies.get", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(ApprovalPolicyRow::into_policy).transpose()
}

pub(super) async fn approval_policies<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
) -> Result<Vec<ApprovalPolicy>> {
    let sql = format!("SELECT {APPROVAL_POLICY_COLUMNS} FROM approval_policies ORDER BY position, name");
    let rows: Vec<ApprovalPolicyRow<Time>> = slow
        .run("approval_policies.list", sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(ApprovalPolicyRow::into_policy).collect()
}

const APPROVAL_COLUMNS: &str = "approval_id::text AS approval_id, run_id::text AS run_id, step::int8 AS step, what, \
    policy, required_role, requested_by, requested_at, expires_at, decision, decided_by, reason, decided_at, revision";

pub(super) async fn approval<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    id: &ApprovalId,
    lock: bool,
) -> Result<Option<Approval>> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE approval_id = $1{}", lock_clause(lock));
    let row: Option<ApprovalRow<Time>> = slow
        .run("approvals.get", sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).fetch_optional(executor))
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(ApprovalRow::into_approval).transpose()
}

pub(super) async fn list_approvals<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    filter: &ApprovalFilter,
    limit: u32,
) -> Result<Vec<Approval>> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE TRUE"));
    if let Some(run) = filter.run {
        q.push(" AND run_id = ").push_bind(run.as_uuid());
    }
    if filter.undecided {
        q.push(" AND decision IS NULL");
    }
    q.push(" ORDER BY approval_id LIMIT ").push_bind(i64::from(limit));
    let rows: Vec<ApprovalRow<Time>> =
        slow.run("approvals.list", q.build_query_as().fetch_all(executor)).await.map_err(|e| map_err(e, None))?;
    rows.into_iter().map(ApprovalRow::into_approval).collect()
}

pub(super) async fn list_audit<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    slow: SlowLog,
    filter: &AuditFilter,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredAuditEntry>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {} FROM audit_entries WHERE seq > ", AuditRow::<Time>::COLUMNS));
    q.push_bind(int(after));
    if let Some(actor) = &filter.actor {
        q.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(method) = &filter.method {
        q.push(" AND method = ").push_bind(method.clone());
    }
    if let Some(outcome) = filter.outcome {
        q.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(since) = filter.since {
        q.push(" AND at >= ").push_bind(time(since));
    }
    q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
    let rows: Vec<AuditRow<Time>> =
        slow.run("audit_entries.list", q.build_query_as().fetch_all(executor)).await.map_err(|e| map_err(e, None))?;
    rows.into_iter().map(AuditRow::into_entry).collect()
}

// Row operations for the shared rules. Parameters are numbered so each table's INSERT and
// UPDATE share one binding order.

pub(super) const INSERT_RUNBOOK: &str = "INSERT INTO tasks (name, description, spec, version, created_by, created_at, \
    updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const UPDATE_RUNBOOK: &str = "UPDATE tasks SET description = $2, spec = $3, version = $4, created_by = $5, \
    created_at = $6, updated_at = $7, revision = $8 WHERE name = $1";

pub(super) fn bind_runbook(sql: &'static str, r: &Runbook) -> Query<'static> {
    sqlx::query(sql)
        .bind(r.name.to_string())
        .bind(r.description.clone())
        .bind(r.spec.clone())
        .bind(i32::try_from(r.version).unwrap_or(i32::MAX))
        .bind(r.created_by.to_string())
        .bind(time(r.created_at))
        .bind(time(r.updated_at))
        .bind(int(r.revision.get()))
}

pub(super) fn delete_runbook(name: &RunbookName) -> Query<'static> {
    sqlx::query("DELETE FROM tasks WHERE name = $1").bind(name.to_string())
}

pub(super) const INSERT_RUN: &str = "INSERT INTO task_runs (run_id, kind, task, task_version, status, requested_by, \
    approved_by, input, result, error, created_at, started_at, finished_at, revision) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9::json, $10, $11, $12, $13, $14)";
pub(super) const UPDATE_RUN: &str = "UPDATE task_runs SET kind = $2, task = $3, task_version = $4, status = $5, \
    requested_by = $6, approved_by = $7, input = $8::json, result = $9::json, error = $10, created_at = $11, \
    started_at = $12, finished_at = $13, revision = $14 WHERE run_id = $1";

pub(super) fn bind_run(sql: &'static str, r: &TaskRun) -> Query<'static> {
    sqlx::query(sql)
        .bind(r.id.as_uuid())
        .bind(r.kind.as_str())
        .bind(r.runbook.as_ref().map(ToString::to_string))
        .bind(r.runbook_version.map(|v| i32::try_from(v).unwrap_or(i32::MAX)))
        .bind(r.status.as_str())
        .bind(r.requested_by.to_string())
        .bind(r.approved_by.as_ref().map(ToString::to_string))
        .bind(crate::sql::to_json(&r.input))
        .bind(r.result.as_ref().map(crate::sql::to_json))
        .bind(r.error.clone())
        .bind(time(r.created_at))
        .bind(r.started_at.map(time))
        .bind(r.finished_at.map(time))
        .bind(int(r.revision.get()))
}

pub(super) fn insert_run_targets(run: &TaskRun) -> Query<'static> {
    let kinds: Vec<&'static str> = run.targets.iter().map(|t| t.kind()).collect();
    let ids: Vec<String> = run.targets.iter().map(|t| t.id().to_owned()).collect();
    sqlx::query(
        "INSERT INTO task_run_targets (run_id, position, target_kind, target_id) \
         SELECT $1, t.ord::int4 - 1, t.kind, t.id FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS t (kind, id, ord)",
    )
    .bind(run.id.as_uuid())
    .bind(kinds)
    .bind(ids)
}

/// Numbers the event after the run's last one; the caller holds the run's row lock.
pub(super) fn append_run_event(
    at: Timestamp,
    e: &RunEvent,
) -> sqlx::query::QueryScalar<'static, Postgres, i64, PgArguments> {
    sqlx::query_scalar(
        "INSERT INTO task_events (run_id, seq, at, type, step, target, message, data) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7::json FROM task_events WHERE run_id = $1 \
         RETURNING seq",
    )
    .bind(e.run_id.as_uuid())
    .bind(time(at))
    .bind(e.event_type.as_str())
    .bind(e.step.map(|s| i32::try_from(s).unwrap_or(i32::MAX)))
    .bind(e.target.as_ref().map(ToString::to_string))
    .bind(e.message.clone())
    .bind(e.data.as_ref().map(crate::sql::to_json))
}

pub(super) fn insert_artifact(info: &ArtifactInfo, content: &[u8]) -> Query<'static> {
    sqlx::query(
        "INSERT INTO artifacts (run_id, name, media_type, size, sha256, content, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(info.run_id.as_uuid())
    .bind(info.name.clone())
    .bind(info.media_type.clone())
    .bind(int(info.size))
    .bind(info.sha256.clone())
    .bind(content.to_vec())
    .bind(time(info.created_at))
}

pub(super) const INSERT_TOOL: &str = "INSERT INTO tool_definitions (name, description, input_schema, risk, enabled, \
    updated_at, revision) VALUES ($1, $2, $3::json, $4, $5, $6, $7)";
pub(super) const UPDATE_TOOL: &str = "UPDATE tool_definitions SET description = $2, input_schema = $3::json, \
    risk = $4, enabled = $5, updated_at = $6, revision = $7 WHERE name = $1";

pub(super) fn bind_tool(sql: &'static str, t: &ToolDefinition) -> Query<'static> {
    sqlx::query(sql)
        .bind(t.name.to_string())
        .bind(t.description.clone())
        .bind(crate::sql::to_json(&t.input_schema))
        .bind(t.risk.as_str())
        .bind(t.enabled)
        .bind(time(t.updated_at))
        .bind(int(t.revision.get()))
}

pub(super) fn delete_tool(name: &ToolName) -> Query<'static> {
    sqlx::query("DELETE FROM tool_definitions WHERE name = $1").bind(name.to_string())
}

pub(super) fn append_tool_call(
    at: Timestamp,
    c: &ToolCall,
) -> sqlx::query::QueryScalar<'static, Postgres, i64, PgArguments> {
    sqlx::query_scalar(
        "INSERT INTO tool_call_records (run_id, tool, at, input, output, status, error, duration_ms, approval_id) \
         VALUES ($1, $2, $3, $4::json, $5::json, $6, $7, $8, $9) RETURNING id",
    )
    .bind(c.run_id.as_uuid())
    .bind(c.tool.to_string())
    .bind(time(at))
    .bind(crate::sql::to_json(&c.input))
    .bind(c.output.as_ref().map(crate::sql::to_json))
    .bind(c.status.as_str())
    .bind(c.error.clone())
    .bind(int(c.duration_ms))
    .bind(c.approval_id.map(|a| a.as_uuid()))
}

pub(super) const INSERT_APPROVAL_POLICY: &str = "INSERT INTO approval_policies (name, position, description, \
    condition, decision, required_role, updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const UPDATE_APPROVAL_POLICY: &str = "UPDATE approval_policies SET position = $2, description = $3, \
    condition = $4, decision = $5, required_role = $6, updated_at = $7, revision = $8 WHERE name = $1";

pub(super) fn bind_approval_policy(sql: &'static str, p: &ApprovalPolicy) -> Query<'static> {
    sqlx::query(sql)
        .bind(p.name.to_string())
        .bind(p.position)
        .bind(p.description.clone())
        .bind(p.condition.clone())
        .bind(p.decision.as_str())
        .bind(decision_role(p.decision).map(|r| r.as_str()))
        .bind(time(p.updated_at))
        .bind(int(p.revision.get()))
}

pub(super) fn delete_approval_policy(name: &ApprovalPolicyName) -> Query<'static> {
    sqlx::query("DELETE FROM approval_policies WHERE name = $1").bind(name.to_string())
}

pub(super) const INSERT_APPROVAL: &str = "INSERT INTO approvals (approval_id, run_id, step, what, policy, \
    required_role, requested_by, requested_at, expires_at, decision, decided_by, reason, decided_at, revision) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub(super) const UPDATE_APPROVAL: &str = "UPDATE approvals SET run_id = $2, step = $3, what = $4, policy = $5, \
    required_role = $6, requested_by = $7, requested_at = $8, expires_at = $9, decision = $10, decided_by = $11, \
    reason = $12, decided_at = $13, revision = $14 WHERE approval_id = $1";

pub(super) fn bind_approval(sql: &'static str, a: &Approval) -> Query<'static> {
    let decision = a.decision.as_ref();
    sqlx::query(sql)
        .bind(a.id.as_uuid())
        .bind(a.run_id.as_uuid())
        .bind(a.step.map(|s| i32::try_from(s).unwrap_or(i32::MAX)))
        .bind(a.what.clone())
        .bind(a.policy.as_ref().map(ToString::to_string))
        .bind(a.required_role.as_str())
        .bind(a.requested_by.to_string())
        .bind(time(a.requested_at))
        .bind(time(a.expires_at))
        .bind(decision.map(|d| d.outcome.as_str()))
        .bind(decision.map(|d| d.by.to_string()))
        .bind(decision.map(|d| d.reason.clone()))
        .bind(decision.map(|d| time(d.at)))
        .bind(int(a.revision.get()))
}

/// Numbers the entry from the gap-free counter, whose row lock orders appends from every
/// replica until the transaction ends.
pub(super) fn append_audit(
    at: Timestamp,
    e: &AuditEntry,
) -> sqlx::query::QueryScalar<'static, Postgres, i64, PgArguments> {
    sqlx::query_scalar(
        "WITH n AS (UPDATE ledger_sequences SET last = last + 1 WHERE name = 'audit' RETURNING last) \
         INSERT INTO audit_entries (seq, at, actor, role, method, resource, outcome, code, message, request_id, peer) \
         SELECT n.last, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM n RETURNING seq",
    )
    .bind(time(at))
    .bind(e.actor.clone())
    .bind(e.role.map(|r| r.as_str()))
    .bind(e.method.clone())
    .bind(e.resource.clone())
    .bind(e.outcome.as_str())
    .bind(e.code.clone())
    .bind(e.message.clone())
    .bind(e.request_id.clone())
    .bind(e.peer.clone())
}

/// A sequence number read back from the database.
pub(super) fn seq(what: &str, value: i64) -> Result<u64> {
    unsigned(what, value)
}
