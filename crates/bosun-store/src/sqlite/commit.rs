//! SQLite's [`Transaction`]: the reads and row operations the shared rules (`crate::apply`)
//! run on the writer connection, inside the savepoint the group committer (`writer.rs`)
//! opened for a batch.

use bosun_core::SourceName;
use bosun_core::inventory::{InventoryKind, InventoryRecord, SourceStatus, SyncRecord, SyncScope, Usage};
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, ApprovalPolicyName, AuditEntry, BootstrapLog, Command, CommandId,
    HealthReport, Instance, InstanceId, Lease, LeaseName, LlmUsage, Node, NodeId, Pool, PoolName, Price, ResourceKind,
    Revision, RunEvent, RunId, Runbook, RunbookName, Setting, StoredPolicy, TaskRun, Timestamp, ToolCall,
    ToolDefinition, ToolName,
};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{inventory, ledger, map_error, micros, read, usage};
use crate::apply::{self, ChangeDraft, Insert, LeaseLock, Stamp, Transaction, run_ready};
use crate::error::{Result, StoreError};
use crate::inventory::StoredRecordState;
use crate::ledger::ArtifactInfo;
use crate::rules::{InstanceHeader, NodeHeader};
use crate::sql::rows::{InstanceHeaderRow, NodeHeaderRow};
use crate::sql::{parse, to_json, unsigned};
use crate::store::StoreOptions;
use crate::write::{Committed, WriteBatch};

/// Applies every write of `batch` through the shared rules. On error the caller rolls the
/// savepoint back: no partial rows, no change records.
pub(super) fn apply_batch(conn: &Connection, options: &StoreOptions, batch: &WriteBatch) -> Result<Committed> {
    run_ready(apply::apply_batch(&mut SqliteTx { conn }, options, options.clock.now(), batch))
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn revision(what: &str, value: i64) -> Result<Revision> {
    Revision::new(unsigned(what, value)?).ok_or_else(|| StoreError::corrupt(what, "revision 0"))
}

/// A unique-key violation is a taken key; the rules name the resource.
pub(super) fn insert(result: rusqlite::Result<usize>) -> Result<Insert> {
    use rusqlite::ffi::ErrorCode;
    match result {
        Ok(_) => Ok(Insert::Done),
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == ErrorCode::ConstraintViolation && matches!(failure.extended_code, 2067 | 1555) =>
        {
            Ok(Insert::KeyTaken)
        }
        Err(error) => Err(map_error(error, None)),
    }
}

/// The writer connection inside a batch's savepoint. Synchronous: every method's future is
/// ready at once.
struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl Transaction for SqliteTx<'_> {
    async fn node_header(&mut self, id: &NodeId) -> Result<Option<NodeHeader>> {
        let row = self
            .conn
            .prepare_cached(&format!("SELECT {} FROM nodes WHERE node_id = ?1", NodeHeaderRow::<i64>::COLUMNS))?
            .query_row([id.as_str()], |row| {
                Ok(NodeHeaderRow::<i64> {
                    revision: row.get(0)?,
                    status: row.get(1)?,
                    registered_at: row.get(2)?,
                    gpu_count: row.get(3)?,
                    gpu_model: row.get(4)?,
                })
            })
            .optional()?;
        row.map(NodeHeaderRow::into_header).transpose()
    }

    async fn node(&mut self, id: &NodeId) -> Result<Option<Node>> {
        match read::node(self.conn, id) {
            Ok(node) => Ok(Some(node)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn node_exists(&mut self, id: &NodeId) -> Result<bool> {
        read::node_exists(self.conn, id)
    }

    async fn instance_header(&mut self, id: &InstanceId) -> Result<Option<InstanceHeader>> {
        let row = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM instances WHERE instance_id = ?1",
                InstanceHeaderRow::<i64>::COLUMNS
            ))?
            .query_row([id.as_str()], |row| {
                Ok(InstanceHeaderRow::<i64> {
                    revision: row.get(0)?,
                    state: row.get(1)?,
                    provider: row.get(2)?,
                    created_at: row.get(3)?,
                })
            })
            .optional()?;
        row.map(InstanceHeaderRow::into_header).transpose()
    }

    async fn instance(&mut self, id: &InstanceId) -> Result<Option<Instance>> {
        read::instance(self.conn, id.as_str())
    }

    async fn instance_of_node(&mut self, node: &NodeId) -> Result<Option<InstanceId>> {
        let linked: Option<String> = self
            .conn
            .prepare_cached("SELECT instance_id FROM instances WHERE node_id = ?1 ORDER BY instance_id LIMIT 1")?
            .query_row([node.as_str()], |row| row.get(0))
            .optional()?;
        linked.map(|id| parse("instances.instance_id", &id)).transpose()
    }

    async fn instance_with_provider_id(
        &mut self,
        provider: &str,
        provider_instance_id: &str,
        except: &InstanceId,
    ) -> Result<Option<InstanceId>> {
        let clash: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT instance_id FROM instances WHERE provider = ?1 AND provider_instance_id = ?2 \
                 AND instance_id <> ?3 LIMIT 1",
            )?
            .query_row(params![provider, provider_instance_id, except.as_str()], |row| row.get(0))
            .optional()?;
        clash.map(|id| parse("instances.instance_id", &id)).transpose()
    }

    async fn command(&mut self, id: &CommandId) -> Result<Option<Command>> {
        read::command(self.conn, id)
    }

    async fn commands_of_node(&mut self, node: &NodeId) -> Result<Vec<Command>> {
        let mut statement = self
            .conn
            .prepare_cached(&format!("SELECT {} WHERE node_id = ?1 ORDER BY command_id", read::COMMAND_COLUMNS))?;
        let mut rows = statement.query([node.as_str()])?;
        let mut commands = Vec::new();
        while let Some(row) = rows.next()? {
            commands.push(read::command_row(row)?);
        }
        Ok(commands)
    }

    async fn pool_revision(&mut self, name: &PoolName) -> Result<Option<Revision>> {
        let stored: Option<i64> = self
            .conn
            .prepare_cached("SELECT revision FROM pools WHERE name = ?1")?
            .query_row([name.as_str()], |row| row.get(0))
            .optional()?;
        stored.map(|r| revision("pools.revision", r)).transpose()
    }

    async fn pool(&mut self, name: &PoolName) -> Result<Option<Pool>> {
        read::pool(self.conn, name.as_str())
    }

    async fn policy(&mut self) -> Result<Option<StoredPolicy>> {
        read::policy(self.conn)
    }

    async fn lease(&mut self, name: &LeaseName, _lock: LeaseLock) -> Result<Option<Lease>> {
        read::lease(self.conn, name)
    }

    async fn insert_lease(&mut self, lease: &Lease) -> Result<Insert> {
        insert(write_lease(self.conn, INSERT_LEASE, lease))
    }

    async fn update_lease(&mut self, lease: &Lease) -> Result<()> {
        write_lease(
            self.conn,
            "UPDATE leases SET holder = ?2, epoch = ?3, revision = ?4, renewals = ?5, acquired_at = ?6, \
             renewed_at = ?7 WHERE name = ?1",
            lease,
        )?;
        Ok(())
    }

    async fn insert_node(&mut self, node: &Node, gpus: &[Gpu]) -> Result<Insert> {
        let inserted = insert(write_node(self.conn, INSERT_NODE, node, node.revision))?;
        if inserted == Insert::Done {
            insert_gpus(self.conn, &node.id, gpus)?;
        }
        Ok(inserted)
    }

    async fn update_node(&mut self, node: &Node) -> Result<()> {
        write_node(self.conn, UPDATE_NODE, node, node.revision)?;
        Ok(())
    }

    async fn replace_gpus(&mut self, node: &NodeId, gpus: &[Gpu]) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM node_gpus WHERE node_id = ?1")?.execute([node.as_str()])?;
        insert_gpus(self.conn, node, gpus)
    }

    async fn delete_node(&mut self, id: &NodeId) -> Result<()> {
        // Everything hanging off the node goes with it: ON DELETE CASCADE.
        self.conn.prepare_cached("DELETE FROM nodes WHERE node_id = ?1")?.execute([id.as_str()])?;
        Ok(())
    }

    async fn insert_instance(&mut self, instance: &Instance) -> Result<Insert> {
        insert(write_instance(self.conn, INSERT_INSTANCE, instance, instance.revision))
    }

    async fn update_instance(&mut self, instance: &Instance) -> Result<()> {
        write_instance(self.conn, UPDATE_INSTANCE, instance, instance.revision)?;
        Ok(())
    }

    async fn delete_instance(&mut self, id: &InstanceId) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM instances WHERE instance_id = ?1")?.execute([id.as_str()])?;
        Ok(())
    }

    async fn insert_command(&mut self, command: &Command) -> Result<Insert> {
        insert(write_command(self.conn, INSERT_COMMAND, command, command.revision))
    }

    async fn update_command(&mut self, command: &Command) -> Result<()> {
        write_command(self.conn, UPDATE_COMMAND, command, command.revision)?;
        Ok(())
    }

    async fn append_command_event(&mut self, stamp: Stamp<'_>, command: &Command) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO command_events (command_id, seq, at, state, actor, message) \
                 SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM command_events WHERE command_id = ?1",
            )?
            .execute(params![
                command.id.to_string(),
                micros(stamp.at),
                command.state.as_str(),
                stamp.actor.to_string(),
                stamp.reason
            ])?;
        Ok(())
    }

    async fn insert_pool(&mut self, pool: &Pool) -> Result<Insert> {
        insert(write_pool(self.conn, INSERT_POOL, pool, pool.revision))
    }

    async fn update_pool(&mut self, pool: &Pool) -> Result<()> {
        write_pool(self.conn, UPDATE_POOL, pool, pool.revision)?;
        Ok(())
    }

    async fn delete_pool(&mut self, name: &PoolName) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM pools WHERE name = ?1")?.execute([name.as_str()])?;
        Ok(())
    }

    async fn insert_policy(&mut self, policy: &StoredPolicy) -> Result<Insert> {
        insert(write_policy(
            self.conn,
            "INSERT INTO policies (id, name, document, updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5)",
            policy,
        ))
    }

    async fn update_policy(&mut self, policy: &StoredPolicy) -> Result<()> {
        write_policy(
            self.conn,
            "UPDATE policies SET name = ?2, document = ?3, updated_at = ?4, revision = ?5 WHERE id = ?1",
            policy,
        )?;
        Ok(())
    }

    async fn delete_policy(&mut self) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM policies WHERE id = ?1")?.execute([StoredPolicy::RESOURCE_ID])?;
        Ok(())
    }

    async fn append_health_report(&mut self, report: &HealthReport, keep: u32) -> Result<u64> {
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO health_reports (node_id, received_at, health, results, events) \
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(
                params![
                    report.node_id.as_str(),
                    micros(report.received_at),
                    report.health.as_str(),
                    to_json(&report.results),
                    to_json(&report.events)
                ],
                |row| row.get(0),
            )?;
        self.conn
            .prepare_cached(
                "DELETE FROM health_reports WHERE node_id = ?1 AND id <= \
                 (SELECT id FROM health_reports WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![report.node_id.as_str(), i64::from(keep)])?;
        unsigned("health_reports.id", id)
    }

    async fn append_bootstrap_log(&mut self, log: &BootstrapLog, keep: u32) -> Result<u64> {
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO bootstrap_logs (node_id, instance_id, pool, started_at, duration_ms, success, error, \
                 commands) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            )?
            .query_row(
                params![
                    log.node_id.as_str(),
                    log.instance_id.as_ref().map(|i| i.as_str()),
                    log.pool.as_ref().map(|p| p.as_str()),
                    micros(log.started_at),
                    int(log.duration_ms),
                    log.success,
                    log.error,
                    to_json(&log.commands)
                ],
                |row| row.get(0),
            )?;
        self.conn
            .prepare_cached(
                "DELETE FROM bootstrap_logs WHERE node_id = ?1 AND id <= \
                 (SELECT id FROM bootstrap_logs WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![log.node_id.as_str(), i64::from(keep)])?;
        unsigned("bootstrap_logs.id", id)
    }

    async fn runbook(&mut self, name: &RunbookName) -> Result<Option<Runbook>> {
        ledger::runbook(self.conn, name.as_str())
    }

    async fn insert_runbook(&mut self, runbook: &Runbook) -> Result<Insert> {
        insert(ledger::write_runbook(self.conn, ledger::INSERT_RUNBOOK, runbook))
    }

    async fn update_runbook(&mut self, runbook: &Runbook) -> Result<()> {
        ledger::write_runbook(self.conn, ledger::UPDATE_RUNBOOK, runbook)?;
        Ok(())
    }

    async fn delete_runbook(&mut self, name: &RunbookName) -> Result<()> {
        ledger::delete_runbook(self.conn, name)
    }

    async fn run(&mut self, id: &RunId) -> Result<Option<TaskRun>> {
        ledger::run(self.conn, id)
    }

    async fn insert_run(&mut self, run: &TaskRun) -> Result<Insert> {
        let inserted = insert(ledger::write_run(self.conn, ledger::INSERT_RUN, run))?;
        if inserted == Insert::Done {
            ledger::insert_run_targets(self.conn, run)?;
        }
        Ok(inserted)
    }

    async fn update_run(&mut self, run: &TaskRun) -> Result<()> {
        ledger::write_run(self.conn, ledger::UPDATE_RUN, run)?;
        Ok(())
    }

    async fn append_run_event(&mut self, at: Timestamp, event: &RunEvent) -> Result<u64> {
        ledger::append_run_event(self.conn, at, event)
    }

    async fn insert_artifact(&mut self, info: &ArtifactInfo, content: &[u8]) -> Result<Insert> {
        insert(ledger::insert_artifact(self.conn, info, content))
    }

    async fn tool(&mut self, name: &ToolName) -> Result<Option<ToolDefinition>> {
        ledger::tool(self.conn, name.as_str())
    }

    async fn insert_tool(&mut self, tool: &ToolDefinition) -> Result<Insert> {
        insert(ledger::write_tool(self.conn, ledger::INSERT_TOOL, tool))
    }

    async fn update_tool(&mut self, tool: &ToolDefinition) -> Result<()> {
        ledger::write_tool(self.conn, ledger::UPDATE_TOOL, tool)?;
        Ok(())
    }

    async fn delete_tool(&mut self, name: &ToolName) -> Result<()> {
        ledger::delete_tool(self.conn, name)
    }

    async fn append_tool_call(&mut self, at: Timestamp, call: &ToolCall) -> Result<u64> {
        ledger::append_tool_call(self.conn, at, call)
    }

    async fn approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<Option<ApprovalPolicy>> {
        ledger::approval_policy(self.conn, name.as_str())
    }

    async fn insert_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<Insert> {
        insert(ledger::write_approval_policy(self.conn, ledger::INSERT_APPROVAL_POLICY, policy))
    }

    async fn update_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<()> {
        ledger::write_approval_policy(self.conn, ledger::UPDATE_APPROVAL_POLICY, policy)?;
        Ok(())
    }

    async fn delete_approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<()> {
        ledger::delete_approval_policy(self.conn, name)
    }

    async fn approval(&mut self, id: &ApprovalId) -> Result<Option<Approval>> {
        ledger::approval(self.conn, id)
    }

    async fn insert_approval(&mut self, approval: &Approval) -> Result<Insert> {
        insert(ledger::write_approval(self.conn, ledger::INSERT_APPROVAL, approval))
    }

    async fn update_approval(&mut self, approval: &Approval) -> Result<()> {
        ledger::write_approval(self.conn, ledger::UPDATE_APPROVAL, approval)?;
        Ok(())
    }

    async fn append_audit(&mut self, at: Timestamp, entry: &AuditEntry) -> Result<u64> {
        ledger::append_audit(self.conn, at, entry)
    }

    async fn inventory_source(&mut self, source: &SourceName, scope: &SyncScope) -> Result<Option<SourceStatus>> {
        inventory::source(self.conn, source, scope)
    }

    async fn put_inventory_source(&mut self, status: &SourceStatus) -> Result<()> {
        inventory::put_source(self.conn, status)
    }

    async fn insert_inventory_sync(&mut self, sync: &SyncRecord) -> Result<u64> {
        inventory::insert_sync(self.conn, sync)
    }

    async fn inventory_states(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        scope: &SyncScope,
    ) -> Result<Vec<StoredRecordState>> {
        inventory::states(self.conn, kind, source, scope)
    }

    async fn inventory_record(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        key: &str,
    ) -> Result<Option<InventoryRecord>> {
        inventory::record(self.conn, kind, source, key)
    }

    async fn insert_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
        inventory::insert(self.conn, kind, records)
    }

    async fn update_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
        inventory::update(self.conn, kind, records)
    }

    async fn refresh_inventory_usage(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        usage: &[(String, Usage)],
        at: Timestamp,
    ) -> Result<()> {
        inventory::refresh_usage(self.conn, kind, source, usage, at)
    }

    async fn open_price(&mut self, provider: &str, model: &str) -> Result<Option<Price>> {
        usage::open_price(self.conn, provider, model)
    }

    async fn price_at(&mut self, provider: &str, model: &str, at: Timestamp) -> Result<Option<Price>> {
        usage::price_at(self.conn, provider, model, at)
    }

    async fn put_price(&mut self, price: &Price) -> Result<()> {
        usage::put_price(self.conn, price)
    }

    async fn close_price(&mut self, price: &Price, to: Timestamp) -> Result<()> {
        usage::close_price(self.conn, price, to)
    }

    async fn insert_llm_usage(&mut self, llm_usage: &LlmUsage) -> Result<Insert> {
        usage::insert_llm_usage(self.conn, llm_usage)
    }

    async fn setting(&mut self, name: &str) -> Result<Option<Setting>> {
        usage::setting(self.conn, name)
    }

    async fn insert_setting(&mut self, setting: &Setting) -> Result<Insert> {
        insert(usage::write_setting(self.conn, usage::INSERT_SETTING, setting))
    }

    async fn update_setting(&mut self, setting: &Setting) -> Result<()> {
        usage::write_setting(self.conn, usage::UPDATE_SETTING, setting)?;
        Ok(())
    }

    async fn last_change_revision(&mut self, kind: ResourceKind, id: &str) -> Result<Option<Revision>> {
        let stored: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT revision FROM changes WHERE kind = ?1 AND resource_id = ?2 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row([kind.as_str(), id], |row| row.get(0))
            .optional()?;
        stored.map(|r| revision("changes.revision", r)).transpose()
    }

    async fn append_changes(&mut self, stamp: Stamp<'_>, changes: &[ChangeDraft]) -> Result<Vec<u64>> {
        // The numbers are handed out here rather than read back with `RETURNING`, which
        // builds a temporary table per row: a sync of a large inventory appends tens of
        // thousands of records in one batch. The last number ever handed out is
        // `sqlite_sequence`'s (AUTOINCREMENT keeps it, and raises it for an explicit
        // number); the table's own highest is taken too, in case a restore set one alone.
        let last: i64 = self
            .conn
            .prepare_cached(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0), \
                 COALESCE((SELECT MAX(seq) FROM changes), 0))",
            )?
            .query_row([], |row| row.get(0))?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO changes (seq, at, kind, resource_id, op, revision, actor, reason, resource) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let at = micros(stamp.at);
        let actor = stamp.actor.to_string();
        let mut seqs = Vec::with_capacity(changes.len());
        for (seq, change) in (last + 1..).zip(changes) {
            insert.execute(params![
                seq,
                at,
                change.kind.as_str(),
                change.resource_id,
                change.op.as_str(),
                int(change.revision.get()),
                actor,
                stamp.reason,
                change.resource
            ])?;
            seqs.push(unsigned("changes.seq", seq)?);
        }
        Ok(seqs)
    }
}

/// Writes a node's GPU inventory, one prepared insert per GPU (cheaper than unpacking a
/// JSON array inside SQLite).
pub(super) fn insert_gpus(conn: &Connection, node: &NodeId, gpus: &[Gpu]) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO node_gpus (node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, cuda_version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for gpu in gpus {
        insert.execute(params![
            node.as_str(),
            gpu.index,
            gpu.uuid,
            gpu.name,
            gpu.pci_bus_id,
            int(gpu.memory_bytes),
            gpu.driver_version,
            gpu.cuda_version
        ])?;
    }
    Ok(())
}

pub(super) const INSERT_LEASE: &str = "INSERT INTO leases (name, holder, epoch, revision, renewals, acquired_at, \
    renewed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

pub(super) fn write_lease(conn: &Connection, sql: &str, l: &Lease) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        l.name.as_str(),
        l.holder.as_ref().map(|h| h.as_str()),
        int(l.epoch),
        int(l.revision.get()),
        int(l.renewals),
        micros(l.acquired_at),
        micros(l.renewed_at)
    ])
}

fn write_policy(conn: &Connection, sql: &str, p: &StoredPolicy) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        StoredPolicy::RESOURCE_ID,
        p.name,
        p.document,
        micros(p.updated_at),
        int(p.revision.get())
    ])
}

// Parameters are numbered so the INSERT and the UPDATE of each table share one binding
// order (the `write_*` functions below).

pub(super) const INSERT_NODE: &str = "INSERT INTO nodes (node_id, provider, region, zone, instance_type, pool, status, \
    status_reason, status_changed_at, health, unhealthy_streak, labels, gpu_count, gpu_model, metadata, \
    registered_at, last_health_report, revision, remediation) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";
const UPDATE_NODE: &str = "UPDATE nodes SET provider = ?2, region = ?3, zone = ?4, instance_type = ?5, pool = ?6, \
    status = ?7, status_reason = ?8, status_changed_at = ?9, health = ?10, unhealthy_streak = ?11, labels = ?12, \
    gpu_count = ?13, gpu_model = ?14, metadata = ?15, registered_at = ?16, last_health_report = ?17, revision = ?18, \
    remediation = ?19 WHERE node_id = ?1";

pub(super) fn write_node(conn: &Connection, sql: &str, n: &Node, revision: Revision) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        n.id.as_str(),
        n.provider,
        n.region,
        n.zone,
        n.instance_type,
        n.pool.as_ref().map(|p| p.as_str()),
        n.status.as_str(),
        n.status_reason,
        micros(n.status_changed_at),
        n.health.as_str(),
        i64::from(n.unhealthy_streak),
        to_json(&n.labels),
        i64::from(n.gpu_count),
        n.gpu_model,
        to_json(&n.metadata),
        micros(n.registered_at),
        n.last_health_report.map(micros),
        int(revision.get()),
        n.remediation.as_ref().map(to_json),
    ])
}

pub(super) const INSERT_INSTANCE: &str = "INSERT INTO instances (instance_id, provider, provider_instance_id, region, zone, \
    instance_type, pool, state, status_message, node_id, labels, created_at, state_changed_at, ready_at, \
    terminated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";
const UPDATE_INSTANCE: &str = "UPDATE instances SET provider = ?2, provider_instance_id = ?3, region = ?4, \
    zone = ?5, instance_type = ?6, pool = ?7, state = ?8, status_message = ?9, node_id = ?10, labels = ?11, \
    created_at = ?12, state_changed_at = ?13, ready_at = ?14, terminated_at = ?15, revision = ?16 \
    WHERE instance_id = ?1";

pub(super) fn write_instance(
    conn: &Connection,
    sql: &str,
    i: &Instance,
    revision: Revision,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        i.id.as_str(),
        i.provider,
        i.provider_instance_id,
        i.region,
        i.zone,
        i.instance_type,
        i.pool.as_ref().map(|p| p.as_str()),
        i.state.as_str(),
        i.status_message,
        i.node_id.as_ref().map(|n| n.as_str()),
        to_json(&i.labels),
        micros(i.created_at),
        micros(i.state_changed_at),
        i.ready_at.map(micros),
        i.terminated_at.map(micros),
        int(revision.get()),
    ])
}

pub(super) const INSERT_COMMAND: &str = "INSERT INTO commands (command_id, node_id, kind, custom_name, parameters, state, \
    issued_by, reason, issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, \
    result, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
const UPDATE_COMMAND: &str = "UPDATE commands SET node_id = ?2, kind = ?3, custom_name = ?4, parameters = ?5, \
    state = ?6, issued_by = ?7, reason = ?8, issued_at = ?9, deadline = ?10, delivered_at = ?11, \
    delivery_count = ?12, acked_at = ?13, finished_at = ?14, outcome_message = ?15, result = ?16, revision = ?17 \
    WHERE command_id = ?1";

pub(super) fn write_command(conn: &Connection, sql: &str, c: &Command, revision: Revision) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        c.id.to_string(),
        c.node_id.as_str(),
        c.kind.kind_name(),
        c.kind.custom_name(),
        to_json(&c.parameters),
        c.state.as_str(),
        c.issued_by.to_string(),
        c.reason,
        micros(c.issued_at),
        micros(c.deadline),
        c.delivered_at.map(micros),
        i64::from(c.delivery_count),
        c.acked_at.map(micros),
        c.finished_at.map(micros),
        c.outcome_message,
        to_json(&c.result),
        int(revision.get()),
    ])
}

pub(super) const INSERT_POOL: &str = "INSERT INTO pools (name, spec, last_scale_at, provider_backoff, last_decision, revision) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const UPDATE_POOL: &str = "UPDATE pools SET spec = ?2, last_scale_at = ?3, provider_backoff = ?4, \
    last_decision = ?5, revision = ?6 WHERE name = ?1";

pub(super) fn write_pool(conn: &Connection, sql: &str, p: &Pool, revision: Revision) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        p.name.as_str(),
        to_json(&p.spec),
        p.status.last_scale_at.map(micros),
        to_json(&p.status.provider_backoff),
        p.status.last_decision.as_ref().map(to_json),
        int(revision.get()),
    ])
}
