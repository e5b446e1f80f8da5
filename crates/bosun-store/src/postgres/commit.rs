//! PostgreSQL's [`Transaction`]: the reads and row operations the shared rules
//! (`crate::apply`) run for a write batch, in one PostgreSQL transaction.
//!
//! Reads lock their rows (`FOR UPDATE`). The change records of a batch are appended last,
//! in one statement that draws their sequence numbers from the `change_log` row: its row
//! lock, held from the append to the commit, lets only one transaction at a time hold
//! uncommitted numbers, so readers only ever see a gap-free prefix of the log in commit
//! order, and a transaction that rolls back gives its numbers back. The same statement
//! notifies listeners (`listener.rs`) of the last number, which PostgreSQL delivers only
//! if the transaction commits.

use bosun_core::SourceName;
use bosun_core::inventory::{InventoryKind, InventoryRecord, SourceStatus, SyncRecord, SyncScope, Usage};
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, ApprovalPolicyName, AuditEntry, BootstrapLog, Command, CommandId,
    HealthReport, Instance, InstanceId, Lease, LeaseName, LlmUsage, Node, NodeId, Pool, PoolName, Price, ResourceKind,
    Revision, RunEvent, RunId, Runbook, RunbookName, Setting, StoredPolicy, TaskRun, Timestamp, ToolCall,
    ToolDefinition, ToolName,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres};

use super::{inventory, ledger, time, usage};
use crate::apply::{self, ChangeDraft, Insert, LeaseLock, Stamp, Transaction};
use crate::error::{Result, StoreError};
use crate::inventory::StoredRecordState;
use crate::ledger::ArtifactInfo;
use crate::rules::{InstanceHeader, NodeHeader};
use crate::sql::rows::{
    CommandRow, InstanceHeaderRow, InstanceRow, LeaseRow, NodeHeaderRow, NodeRow, PolicyRow, PoolRow,
};
use crate::sql::{SlowLog, map_err, parse, unsigned};
use crate::store::StoreOptions;
use crate::write::{Committed, WriteBatch};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

pub(super) async fn commit(
    pool: &PgPool,
    options: &StoreOptions,
    slow: SlowLog,
    batch: WriteBatch,
) -> Result<Committed> {
    if batch.is_empty() {
        return Ok(Committed { outcomes: Vec::new() });
    }
    let mut tx = slow.run("begin", pool.begin()).await.map_err(|e| map_err(e, None))?;
    // An error drops `tx`, which rolls everything back.
    let committed = apply::apply_batch(&mut PgTx { conn: &mut tx, slow }, options, options.clock.now(), &batch).await?;
    slow.run("commit", tx.commit()).await.map_err(|e| map_err(e, None))?;
    Ok(committed)
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn revision(what: &str, value: i64) -> Result<Revision> {
    Revision::new(unsigned(what, value)?).ok_or_else(|| StoreError::corrupt(what, "revision 0"))
}

/// A unique-key violation is a taken key; the rules name the resource. (It aborts the
/// PostgreSQL transaction, which the rules then roll back with their error.)
fn insert(result: std::result::Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> Result<Insert> {
    match result {
        Ok(_) => Ok(Insert::Done),
        Err(sqlx::Error::Database(db)) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => Ok(Insert::KeyTaken),
        Err(error) => Err(map_err(error, None)),
    }
}

/// One open PostgreSQL transaction.
struct PgTx<'c> {
    conn: &'c mut PgConnection,
    slow: SlowLog,
}

impl PgTx<'_> {
    async fn execute(&mut self, statement: &'static str, query: Query<'_>) -> Result<()> {
        self.slow.run(statement, query.execute(&mut *self.conn)).await.map_err(|e| map_err(e, None))?;
        Ok(())
    }

    async fn insert(&mut self, statement: &'static str, query: Query<'_>) -> Result<Insert> {
        insert(self.slow.run(statement, query.execute(&mut *self.conn)).await)
    }
}

impl Transaction for PgTx<'_> {
    async fn node_header(&mut self, id: &NodeId) -> Result<Option<NodeHeader>> {
        let row: Option<NodeHeaderRow<DateTime<Utc>>> = self
            .slow
            .run(
                "nodes.header",
                sqlx::query_as(
                    "SELECT revision, status, registered_at, gpu_count, gpu_model FROM nodes \
                     WHERE node_id = $1 FOR UPDATE",
                )
                .bind(id.as_str())
                .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(NodeHeaderRow::into_header).transpose()
    }

    async fn node(&mut self, id: &NodeId) -> Result<Option<Node>> {
        let row: Option<NodeRow<DateTime<Utc>>> = self
            .slow
            .run(
                "nodes.get_for_update",
                sqlx::query_as(concat!(super::select_node!(), "WHERE n.node_id = $1 FOR UPDATE OF n"))
                    .bind(id.as_str())
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(NodeRow::into_node).transpose()
    }

    async fn node_exists(&mut self, id: &NodeId) -> Result<bool> {
        let found: Option<i32> = self
            .slow
            .run(
                "nodes.exists",
                sqlx::query_scalar("SELECT 1 FROM nodes WHERE node_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        Ok(found.is_some())
    }

    async fn instance_header(&mut self, id: &InstanceId) -> Result<Option<InstanceHeader>> {
        let row: Option<InstanceHeaderRow<DateTime<Utc>>> = self
            .slow
            .run(
                "instances.header",
                sqlx::query_as(
                    "SELECT revision, state, provider, created_at FROM instances WHERE instance_id = $1 FOR UPDATE",
                )
                .bind(id.as_str())
                .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(InstanceHeaderRow::into_header).transpose()
    }

    async fn instance(&mut self, id: &InstanceId) -> Result<Option<Instance>> {
        let row: Option<InstanceRow<DateTime<Utc>>> = self
            .slow
            .run(
                "instances.get_for_update",
                sqlx::query_as(concat!(super::select_instance!(), "WHERE instance_id = $1 FOR UPDATE"))
                    .bind(id.as_str())
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(InstanceRow::into_instance).transpose()
    }

    async fn instance_of_node(&mut self, node: &NodeId) -> Result<Option<InstanceId>> {
        let linked: Option<String> = self
            .slow
            .run(
                "instances.linked_to_node",
                sqlx::query_scalar("SELECT instance_id FROM instances WHERE node_id = $1 ORDER BY instance_id LIMIT 1")
                    .bind(node.as_str())
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        linked.map(|id| parse("instances.instance_id", &id)).transpose()
    }

    async fn instance_with_provider_id(
        &mut self,
        provider: &str,
        provider_instance_id: &str,
        except: &InstanceId,
    ) -> Result<Option<InstanceId>> {
        let clash: Option<String> = self
            .slow
            .run(
                "instances.provider_id_clash",
                sqlx::query_scalar(
                    "SELECT instance_id FROM instances WHERE provider = $1 AND provider_instance_id = $2 \
                     AND instance_id <> $3 LIMIT 1",
                )
                .bind(provider)
                .bind(provider_instance_id)
                .bind(except.as_str())
                .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        clash.map(|id| parse("instances.instance_id", &id)).transpose()
    }

    async fn command(&mut self, id: &CommandId) -> Result<Option<Command>> {
        let row: Option<CommandRow<DateTime<Utc>>> = self
            .slow
            .run(
                "commands.get_for_update",
                sqlx::query_as(concat!(super::select_command!(), "WHERE command_id = $1 FOR UPDATE"))
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(CommandRow::into_command).transpose()
    }

    async fn commands_of_node(&mut self, node: &NodeId) -> Result<Vec<Command>> {
        let rows: Vec<CommandRow<DateTime<Utc>>> = self
            .slow
            .run(
                "commands.of_node",
                sqlx::query_as(concat!(super::select_command!(), "WHERE node_id = $1 ORDER BY command_id"))
                    .bind(node.as_str())
                    .fetch_all(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(CommandRow::into_command).collect()
    }

    async fn pool_revision(&mut self, name: &PoolName) -> Result<Option<Revision>> {
        let stored: Option<i64> = self
            .slow
            .run(
                "pools.revision",
                sqlx::query_scalar("SELECT revision FROM pools WHERE name = $1 FOR UPDATE")
                    .bind(name.as_str())
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        stored.map(|r| revision("pools.revision", r)).transpose()
    }

    async fn pool(&mut self, name: &PoolName) -> Result<Option<Pool>> {
        let row: Option<PoolRow<DateTime<Utc>>> = self
            .slow
            .run(
                "pools.get_for_update",
                sqlx::query_as(
                    "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools \
                     WHERE name = $1 FOR UPDATE",
                )
                .bind(name.as_str())
                .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(PoolRow::into_pool).transpose()
    }

    async fn policy(&mut self) -> Result<Option<StoredPolicy>> {
        let row: Option<PolicyRow<DateTime<Utc>>> = self
            .slow
            .run(
                "policies.get_for_update",
                sqlx::query_as("SELECT name, document, updated_at, revision FROM policies WHERE id = $1 FOR UPDATE")
                    .bind(StoredPolicy::RESOURCE_ID)
                    .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(PolicyRow::into_policy).transpose()
    }

    async fn lease(&mut self, name: &LeaseName, lock: LeaseLock) -> Result<Option<Lease>> {
        let (statement, sql) = match lock {
            LeaseLock::Share => (
                "leases.get_for_share",
                "SELECT name, holder, epoch, revision, renewals, acquired_at, \
                 renewed_at FROM leases WHERE name = $1 FOR SHARE",
            ),
            LeaseLock::Update => (
                "leases.get_for_update",
                "SELECT name, holder, epoch, revision, renewals, acquired_at, \
                 renewed_at FROM leases WHERE name = $1 FOR UPDATE",
            ),
        };
        let row: Option<LeaseRow<DateTime<Utc>>> = self
            .slow
            .run(statement, sqlx::query_as(sql).bind(name.as_str()).fetch_optional(&mut *self.conn))
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(LeaseRow::into_lease).transpose()
    }

    async fn insert_lease(&mut self, lease: &Lease) -> Result<Insert> {
        // DO NOTHING instead of an error: a concurrent first acquire must not abort this
        // transaction's other writes before the rules answer.
        let inserted = self
            .slow
            .run(
                "leases.insert",
                bind_lease(
                    sqlx::query(
                        "INSERT INTO leases (name, holder, epoch, revision, renewals, acquired_at, renewed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
                    ),
                    lease,
                )
                .execute(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?
            .rows_affected();
        Ok(if inserted == 1 { Insert::Done } else { Insert::KeyTaken })
    }

    async fn update_lease(&mut self, lease: &Lease) -> Result<()> {
        self.execute(
            "leases.update",
            bind_lease(
                sqlx::query(
                    "UPDATE leases SET holder = $2, epoch = $3, revision = $4, renewals = $5, acquired_at = $6, \
                     renewed_at = $7 WHERE name = $1",
                ),
                lease,
            ),
        )
        .await
    }

    async fn insert_node(&mut self, node: &Node, gpus: &[Gpu]) -> Result<Insert> {
        let inserted = self.insert("nodes.insert", bind_node(sqlx::query(INSERT_NODE), node)).await?;
        if inserted == Insert::Done {
            self.insert_gpus(&node.id, gpus).await?;
        }
        Ok(inserted)
    }

    async fn update_node(&mut self, node: &Node) -> Result<()> {
        self.execute("nodes.update", bind_node(sqlx::query(UPDATE_NODE), node)).await
    }

    async fn replace_gpus(&mut self, node: &NodeId, gpus: &[Gpu]) -> Result<()> {
        self.execute("node_gpus.delete", sqlx::query("DELETE FROM node_gpus WHERE node_id = $1").bind(node.as_str()))
            .await?;
        self.insert_gpus(node, gpus).await
    }

    async fn delete_node(&mut self, id: &NodeId) -> Result<()> {
        // Everything hanging off the node goes with it: ON DELETE CASCADE.
        self.execute("nodes.delete", sqlx::query("DELETE FROM nodes WHERE node_id = $1").bind(id.as_str())).await
    }

    async fn insert_instance(&mut self, instance: &Instance) -> Result<Insert> {
        self.insert("instances.insert", bind_instance(sqlx::query(INSERT_INSTANCE), instance)).await
    }

    async fn update_instance(&mut self, instance: &Instance) -> Result<()> {
        self.execute("instances.update", bind_instance(sqlx::query(UPDATE_INSTANCE), instance)).await
    }

    async fn delete_instance(&mut self, id: &InstanceId) -> Result<()> {
        self.execute("instances.delete", sqlx::query("DELETE FROM instances WHERE instance_id = $1").bind(id.as_str()))
            .await
    }

    async fn insert_command(&mut self, command: &Command) -> Result<Insert> {
        self.insert("commands.insert", bind_command(sqlx::query(INSERT_COMMAND), command)).await
    }

    async fn update_command(&mut self, command: &Command) -> Result<()> {
        self.execute("commands.update", bind_command(sqlx::query(UPDATE_COMMAND), command)).await
    }

    async fn append_command_event(&mut self, stamp: Stamp<'_>, command: &Command) -> Result<()> {
        self.execute(
            "command_events.insert",
            sqlx::query(
                "INSERT INTO command_events (command_id, seq, at, state, actor, message) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM command_events WHERE command_id = $1",
            )
            .bind(command.id.as_uuid())
            .bind(time(stamp.at))
            .bind(command.state.as_str())
            .bind(stamp.actor.to_string())
            .bind(stamp.reason),
        )
        .await
    }

    async fn insert_pool(&mut self, pool: &Pool) -> Result<Insert> {
        self.insert("pools.insert", bind_pool(sqlx::query(INSERT_POOL), pool)).await
    }

    async fn update_pool(&mut self, pool: &Pool) -> Result<()> {
        self.execute("pools.update", bind_pool(sqlx::query(UPDATE_POOL), pool)).await
    }

    async fn delete_pool(&mut self, name: &PoolName) -> Result<()> {
        self.execute("pools.delete", sqlx::query("DELETE FROM pools WHERE name = $1").bind(name.as_str())).await
    }

    async fn insert_policy(&mut self, policy: &StoredPolicy) -> Result<Insert> {
        // DO NOTHING instead of an error: a concurrent first put must not abort this
        // transaction, so the rules can turn it into an update.
        let inserted = self
            .slow
            .run(
                "policies.insert",
                bind_policy(
                    sqlx::query(
                        "INSERT INTO policies (id, name, document, updated_at, revision) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    ),
                    policy,
                )
                .execute(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?
            .rows_affected();
        Ok(if inserted == 1 { Insert::Done } else { Insert::KeyTaken })
    }

    async fn update_policy(&mut self, policy: &StoredPolicy) -> Result<()> {
        self.execute(
            "policies.update",
            bind_policy(
                sqlx::query(
                    "UPDATE policies SET name = $2, document = $3, updated_at = $4, revision = $5 WHERE id = $1",
                ),
                policy,
            ),
        )
        .await
    }

    async fn delete_policy(&mut self) -> Result<()> {
        self.execute(
            "policies.delete",
            sqlx::query("DELETE FROM policies WHERE id = $1").bind(StoredPolicy::RESOURCE_ID),
        )
        .await
    }

    async fn append_health_report(&mut self, report: &HealthReport, keep: u32) -> Result<u64> {
        let id: i64 = self
            .slow
            .run(
                "health_reports.insert",
                sqlx::query_scalar(
                    "INSERT INTO health_reports (node_id, received_at, health, results, events) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(report.node_id.as_str())
                .bind(time(report.received_at))
                .bind(report.health.as_str())
                .bind(Json(&report.results))
                .bind(Json(&report.events))
                .fetch_one(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        self.execute(
            "health_reports.trim",
            sqlx::query(
                "DELETE FROM health_reports WHERE node_id = $1 AND id <= \
                 (SELECT id FROM health_reports WHERE node_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            )
            .bind(report.node_id.as_str())
            .bind(i64::from(keep)),
        )
        .await?;
        unsigned("health_reports.id", id)
    }

    async fn append_bootstrap_log(&mut self, log: &BootstrapLog, keep: u32) -> Result<u64> {
        let id: i64 = self
            .slow
            .run(
                "bootstrap_logs.insert",
                sqlx::query_scalar(
                    "INSERT INTO bootstrap_logs (node_id, instance_id, pool, started_at, duration_ms, success, \
                     error, commands) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(log.node_id.as_str())
                .bind(log.instance_id.as_ref().map(|i| i.to_string()))
                .bind(log.pool.as_ref().map(|p| p.to_string()))
                .bind(time(log.started_at))
                .bind(int(log.duration_ms))
                .bind(log.success)
                .bind(log.error.as_str())
                .bind(Json(&log.commands))
                .fetch_one(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        self.execute(
            "bootstrap_logs.trim",
            sqlx::query(
                "DELETE FROM bootstrap_logs WHERE node_id = $1 AND id <= \
                 (SELECT id FROM bootstrap_logs WHERE node_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            )
            .bind(log.node_id.as_str())
            .bind(i64::from(keep)),
        )
        .await?;
        unsigned("bootstrap_logs.id", id)
    }

    async fn runbook(&mut self, name: &RunbookName) -> Result<Option<Runbook>> {
        ledger::runbook(&mut *self.conn, self.slow, name.as_str(), true).await
    }

    async fn insert_runbook(&mut self, runbook: &Runbook) -> Result<Insert> {
        self.insert("tasks.insert", ledger::bind_runbook(ledger::INSERT_RUNBOOK, runbook)).await
    }

    async fn update_runbook(&mut self, runbook: &Runbook) -> Result<()> {
        self.execute("tasks.update", ledger::bind_runbook(ledger::UPDATE_RUNBOOK, runbook)).await
    }

    async fn delete_runbook(&mut self, name: &RunbookName) -> Result<()> {
        self.execute("tasks.delete", ledger::delete_runbook(name)).await
    }

    async fn run(&mut self, id: &RunId) -> Result<Option<TaskRun>> {
        ledger::run(&mut *self.conn, self.slow, id, true).await
    }

    async fn insert_run(&mut self, run: &TaskRun) -> Result<Insert> {
        let inserted = self.insert("task_runs.insert", ledger::bind_run(ledger::INSERT_RUN, run)).await?;
        if inserted == Insert::Done && !run.targets.is_empty() {
            self.execute("task_run_targets.insert", ledger::insert_run_targets(run)).await?;
        }
        Ok(inserted)
    }

    async fn update_run(&mut self, run: &TaskRun) -> Result<()> {
        self.execute("task_runs.update", ledger::bind_run(ledger::UPDATE_RUN, run)).await
    }

    async fn append_run_event(&mut self, at: Timestamp, event: &RunEvent) -> Result<u64> {
        let seq = self
            .slow
            .run("task_events.append", ledger::append_run_event(at, event).fetch_one(&mut *self.conn))
            .await
            .map_err(|e| map_err(e, None))?;
        ledger::seq("task_events.seq", seq)
    }

    async fn insert_artifact(&mut self, info: &ArtifactInfo, content: &[u8]) -> Result<Insert> {
        self.insert("artifacts.insert", ledger::insert_artifact(info, content)).await
    }

    async fn tool(&mut self, name: &ToolName) -> Result<Option<ToolDefinition>> {
        ledger::tool(&mut *self.conn, self.slow, name.as_str(), true).await
    }

    async fn insert_tool(&mut self, tool: &ToolDefinition) -> Result<Insert> {
        self.insert("tool_definitions.insert", ledger::bind_tool(ledger::INSERT_TOOL, tool)).await
    }

    async fn update_tool(&mut self, tool: &ToolDefinition) -> Result<()> {
        self.execute("tool_definitions.update", ledger::bind_tool(ledger::UPDATE_TOOL, tool)).await
    }

    async fn delete_tool(&mut self, name: &ToolName) -> Result<()> {
        self.execute("tool_definitions.delete", ledger::delete_tool(name)).await
    }

    async fn append_tool_call(&mut self, at: Timestamp, call: &ToolCall) -> Result<u64> {
        let id = self
            .slow
            .run("tool_call_records.append", ledger::append_tool_call(at, call).fetch_one(&mut *self.conn))
            .await
            .map_err(|e| map_err(e, None))?;
        ledger::seq("tool_call_records.id", id)
    }

    async fn approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<Option<ApprovalPolicy>> {
        ledger::approval_policy(&mut *self.conn, self.slow, name.as_str(), true).await
    }

    async fn insert_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<Insert> {
        self.insert("approval_policies.insert", ledger::bind_approval_policy(ledger::INSERT_APPROVAL_POLICY, policy))
            .await
    }

    async fn update_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<()> {
        self.execute("approval_policies.update", ledger::bind_approval_policy(ledger::UPDATE_APPROVAL_POLICY, policy))
            .await
    }

    async fn delete_approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<()> {
        self.execute("approval_policies.delete", ledger::delete_approval_policy(name)).await
    }

    async fn approval(&mut self, id: &ApprovalId) -> Result<Option<Approval>> {
        ledger::approval(&mut *self.conn, self.slow, id, true).await
    }

    async fn insert_approval(&mut self, approval: &Approval) -> Result<Insert> {
        self.insert("approvals.insert", ledger::bind_approval(ledger::INSERT_APPROVAL, approval)).await
    }

    async fn update_approval(&mut self, approval: &Approval) -> Result<()> {
        self.execute("approvals.update", ledger::bind_approval(ledger::UPDATE_APPROVAL, approval)).await
    }

    async fn append_audit(&mut self, at: Timestamp, entry: &AuditEntry) -> Result<u64> {
        let seq = self
            .slow
            .run("audit_entries.append", ledger::append_audit(at, entry).fetch_one(&mut *self.conn))
            .await
            .map_err(|e| map_err(e, None))?;
        ledger::seq("audit_entries.seq", seq)
    }

    async fn inventory_source(&mut self, source: &SourceName, scope: &SyncScope) -> Result<Option<SourceStatus>> {
        inventory::source(self.conn, self.slow, source, scope).await
    }

    async fn put_inventory_source(&mut self, status: &SourceStatus) -> Result<()> {
        inventory::put_source(self.conn, self.slow, status).await
    }

    async fn insert_inventory_sync(&mut self, sync: &SyncRecord) -> Result<u64> {
        inventory::insert_sync(self.conn, self.slow, sync).await
    }

    async fn inventory_states(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        scope: &SyncScope,
    ) -> Result<Vec<StoredRecordState>> {
        inventory::states(self.conn, self.slow, kind, source, scope).await
    }

    async fn inventory_record(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        key: &str,
    ) -> Result<Option<InventoryRecord>> {
        inventory::record(self.conn, self.slow, kind, source, key).await
    }

    async fn insert_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
        inventory::insert(self.conn, self.slow, kind, records).await
    }

    async fn update_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
        inventory::update(self.conn, self.slow, kind, records).await
    }

    async fn refresh_inventory_usage(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        usage: &[(String, Usage)],
        at: Timestamp,
    ) -> Result<()> {
        inventory::refresh_usage(self.conn, self.slow, kind, source, usage, at).await
    }

    async fn open_price(&mut self, provider: &str, model: &str) -> Result<Option<Price>> {
        // Two open-ended prices of one model stored at once would each close the open
        // price and both stay open: they take turns, per model, until commit.
        usage::lock_model(&mut *self.conn, self.slow, provider, model).await?;
        usage::model_price(&mut *self.conn, self.slow, usage::OPEN, provider, model, None).await
    }

    async fn price_at(&mut self, provider: &str, model: &str, at: Timestamp) -> Result<Option<Price>> {
        usage::model_price(&mut *self.conn, self.slow, usage::IN_EFFECT, provider, model, Some(at)).await
    }

    async fn put_price(&mut self, price: &Price) -> Result<()> {
        self.execute("provider_pricing.put", usage::put_price(price)).await
    }

    async fn close_price(&mut self, price: &Price, to: Timestamp) -> Result<()> {
        self.execute("provider_pricing.close", usage::close_price(price, to)).await
    }

    async fn insert_llm_usage(&mut self, llm_usage: &LlmUsage) -> Result<Insert> {
        let inserted = self.insert("llm_requests.insert", usage::insert_request(llm_usage)).await?;
        if inserted == Insert::Done {
            self.execute("llm_responses.insert", usage::insert_response(llm_usage)).await?;
            self.execute("token_usage.insert", usage::insert_token_usage(llm_usage)).await?;
        }
        Ok(inserted)
    }

    async fn setting(&mut self, name: &str) -> Result<Option<Setting>> {
        usage::setting(&mut *self.conn, self.slow, name, true).await
    }

    async fn insert_setting(&mut self, setting: &Setting) -> Result<Insert> {
        self.insert("control_settings.insert", usage::bind_setting(usage::INSERT_SETTING, setting)).await
    }

    async fn update_setting(&mut self, setting: &Setting) -> Result<()> {
        self.execute("control_settings.update", usage::bind_setting(usage::UPDATE_SETTING, setting)).await
    }

    async fn last_change_revision(&mut self, kind: ResourceKind, id: &str) -> Result<Option<Revision>> {
        let stored: Option<i64> = self
            .slow
            .run(
                "changes.last_revision",
                sqlx::query_scalar(
                    "SELECT revision FROM changes WHERE kind = $1 AND resource_id = $2 ORDER BY seq DESC LIMIT 1",
                )
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        stored.map(|r| revision("changes.revision", r)).transpose()
    }

    async fn append_changes(&mut self, stamp: Stamp<'_>, changes: &[ChangeDraft]) -> Result<Vec<u64>> {
        let kinds: Vec<&str> = changes.iter().map(|c| c.kind.as_str()).collect();
        let ids: Vec<&str> = changes.iter().map(|c| c.resource_id.as_str()).collect();
        let ops: Vec<&str> = changes.iter().map(|c| c.op.as_str()).collect();
        let revisions: Vec<i64> = changes.iter().map(|c| int(c.revision.get())).collect();
        let resources: Vec<&str> = changes.iter().map(|c| c.resource.as_str()).collect();
        let count = i64::try_from(changes.len()).unwrap_or(i64::MAX);
        let mut seqs: Vec<i64> = self
            .slow
            .run(
                "changes.insert",
                sqlx::query_scalar(
                    "WITH drawn AS (UPDATE change_log SET last_seq = last_seq + $9 WHERE id = 1 \
                     RETURNING last_seq - $9 AS base, last_seq), \
                     notified AS (SELECT pg_notify($10, last_seq::text) FROM drawn) \
                     INSERT INTO changes (seq, at, kind, resource_id, op, revision, actor, reason, resource) \
                     SELECT drawn.base + u.ord, $1, u.kind, u.resource_id, u.op, u.revision, $2, $3, u.resource::json \
                     FROM drawn, notified, UNNEST($4::text[], $5::text[], $6::text[], $7::int8[], $8::text[]) \
                     WITH ORDINALITY AS u (kind, resource_id, op, revision, resource, ord) RETURNING seq",
                )
                .bind(time(stamp.at))
                .bind(stamp.actor.to_string())
                .bind(stamp.reason)
                .bind(kinds)
                .bind(ids)
                .bind(ops)
                .bind(revisions)
                .bind(resources)
                .bind(count)
                .bind(super::listener::CHANNEL)
                .fetch_all(&mut *self.conn),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        // Numbered by ordinality: sorted, they line up with `changes`.
        seqs.sort_unstable();
        seqs.into_iter().map(|seq| unsigned("changes.seq", seq)).collect()
    }
}

impl PgTx<'_> {
    /// Writes a node's GPU inventory in one statement.
    async fn insert_gpus(&mut self, node: &NodeId, gpus: &[Gpu]) -> Result<()> {
        if gpus.is_empty() {
            return Ok(());
        }
        self.execute(
            "node_gpus.insert",
            sqlx::query(
                "INSERT INTO node_gpus (node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, \
                 cuda_version) SELECT $1, g.\"index\", g.uuid, g.name, g.pci_bus_id, g.memory_bytes, \
                 g.driver_version, g.cuda_version FROM jsonb_to_recordset($2::jsonb) AS g (\"index\" bigint, \
                 uuid text, name text, pci_bus_id text, memory_bytes bigint, driver_version text, cuda_version text)",
            )
            .bind(node.as_str())
            .bind(Json(gpus)),
        )
        .await
    }
}

fn bind_lease<'q>(q: Query<'q>, l: &'q Lease) -> Query<'q> {
    q.bind(l.name.as_str())
        .bind(l.holder.as_ref().map(|h| h.as_str()))
        .bind(int(l.epoch))
        .bind(int(l.revision.get()))
        .bind(int(l.renewals))
        .bind(time(l.acquired_at))
        .bind(time(l.renewed_at))
}

fn bind_policy<'q>(q: Query<'q>, p: &'q StoredPolicy) -> Query<'q> {
    q.bind(StoredPolicy::RESOURCE_ID)
        .bind(p.name.as_str())
        .bind(p.document.as_str())
        .bind(time(p.updated_at))
        .bind(int(p.revision.get()))
}

const INSERT_NODE: &str = "INSERT INTO nodes (node_id, provider, region, zone, instance_type, pool, status, \
    status_reason, status_changed_at, health, unhealthy_streak, labels, gpu_count, gpu_model, metadata, \
    registered_at, last_health_report, revision, remediation) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";
const UPDATE_NODE: &str = "UPDATE nodes SET provider = $2, region = $3, zone = $4, instance_type = $5, pool = $6, \
    status = $7, status_reason = $8, status_changed_at = $9, health = $10, unhealthy_streak = $11, labels = $12, \
    gpu_count = $13, gpu_model = $14, metadata = $15, registered_at = $16, last_health_report = $17, revision = $18, \
    remediation = $19 WHERE node_id = $1";

fn bind_node<'q>(q: Query<'q>, n: &'q Node) -> Query<'q> {
    q.bind(n.id.as_str())
        .bind(n.provider.as_str())
        .bind(n.region.as_str())
        .bind(n.zone.as_str())
        .bind(n.instance_type.as_str())
        .bind(n.pool.as_ref().map(|p| p.as_str()))
        .bind(n.status.as_str())
        .bind(n.status_reason.as_str())
        .bind(time(n.status_changed_at))
        .bind(n.health.as_str())
        .bind(i64::from(n.unhealthy_streak))
        .bind(Json(&n.labels))
        .bind(i64::from(n.gpu_count))
        .bind(n.gpu_model.as_str())
        .bind(Json(&n.metadata))
        .bind(time(n.registered_at))
        .bind(n.last_health_report.map(time))
        .bind(int(n.revision.get()))
        .bind(n.remediation.as_ref().map(Json))
}

const INSERT_INSTANCE: &str = "INSERT INTO instances (instance_id, provider, provider_instance_id, region, zone, \
    instance_type, pool, state, status_message, node_id, labels, created_at, state_changed_at, ready_at, \
    terminated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
const UPDATE_INSTANCE: &str = "UPDATE instances SET provider = $2, provider_instance_id = $3, region = $4, \
    zone = $5, instance_type = $6, pool = $7, state = $8, status_message = $9, node_id = $10, labels = $11, \
    created_at = $12, state_changed_at = $13, ready_at = $14, terminated_at = $15, revision = $16 \
    WHERE instance_id = $1";

fn bind_instance<'q>(q: Query<'q>, i: &'q Instance) -> Query<'q> {
    q.bind(i.id.as_str())
        .bind(i.provider.as_str())
        .bind(i.provider_instance_id.as_deref())
        .bind(i.region.as_str())
        .bind(i.zone.as_str())
        .bind(i.instance_type.as_str())
        .bind(i.pool.as_ref().map(|p| p.as_str()))
        .bind(i.state.as_str())
        .bind(i.status_message.as_str())
        .bind(i.node_id.as_ref().map(|n| n.as_str()))
        .bind(Json(&i.labels))
        .bind(time(i.created_at))
        .bind(time(i.state_changed_at))
        .bind(i.ready_at.map(time))
        .bind(i.terminated_at.map(time))
        .bind(int(i.revision.get()))
}

const INSERT_COMMAND: &str = "INSERT INTO commands (command_id, node_id, kind, custom_name, parameters, state, \
    issued_by, reason, issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, \
    result, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
const UPDATE_COMMAND: &str = "UPDATE commands SET node_id = $2, kind = $3, custom_name = $4, parameters = $5, \
    state = $6, issued_by = $7, reason = $8, issued_at = $9, deadline = $10, delivered_at = $11, \
    delivery_count = $12, acked_at = $13, finished_at = $14, outcome_message = $15, result = $16, revision = $17 \
    WHERE command_id = $1";

fn bind_command<'q>(q: Query<'q>, c: &'q Command) -> Query<'q> {
    q.bind(c.id.as_uuid())
        .bind(c.node_id.as_str())
        .bind(c.kind.kind_name())
        .bind(c.kind.custom_name())
        .bind(Json(&c.parameters))
        .bind(c.state.as_str())
        .bind(c.issued_by.to_string())
        .bind(c.reason.as_str())
        .bind(time(c.issued_at))
        .bind(time(c.deadline))
        .bind(c.delivered_at.map(time))
        .bind(i64::from(c.delivery_count))
        .bind(c.acked_at.map(time))
        .bind(c.finished_at.map(time))
        .bind(c.outcome_message.as_str())
        .bind(Json(&c.result))
        .bind(int(c.revision.get()))
}

const INSERT_POOL: &str = "INSERT INTO pools (name, spec, last_scale_at, provider_backoff, last_decision, revision) \
    VALUES ($1, $2, $3, $4, $5, $6)";
const UPDATE_POOL: &str = "UPDATE pools SET spec = $2, last_scale_at = $3, provider_backoff = $4, \
    last_decision = $5, revision = $6 WHERE name = $1";

fn bind_pool<'q>(q: Query<'q>, p: &'q Pool) -> Query<'q> {
    q.bind(p.name.as_str())
        .bind(Json(&p.spec))
        .bind(p.status.last_scale_at.map(time))
        .bind(Json(&p.status.provider_backoff))
        .bind(p.status.last_decision.as_ref().map(Json))
        .bind(int(p.revision.get()))
}
