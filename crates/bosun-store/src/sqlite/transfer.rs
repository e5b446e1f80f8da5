//! Dump and bulk load for SQLite (see `crate::transfer`).
//!
//! A dump runs on one reader connection inside one read transaction (a WAL snapshot), each
//! table read by one statement stepped row by row, so memory holds a batch, not a table.
//! A load runs as one job on the writer thread: one IMMEDIATE transaction, prepared
//! inserts, committed when the `Commit` message arrives; other writers wait meanwhile.

use bosun_core::inventory::{InventoryKind, RecordState};
use bosun_core::node::Gpu;
use bosun_core::{CommandEvent, ResourceKind};
use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::commit::{
    INSERT_COMMAND, INSERT_INSTANCE, INSERT_LEASE, INSERT_NODE, INSERT_POOL, insert_gpus, write_command,
    write_instance, write_lease, write_node, write_pool,
};
use super::read::{self, COMMAND_COLUMNS, INSTANCE_COLUMNS, NODE_COLUMNS, POOL_COLUMNS};
use super::{inventory, ledger, map_error, micros, usage};
use crate::error::Result;
use crate::inventory::row::table;
use crate::ledger::StoredRunEvent;
use crate::sql::ledger_rows::{ApprovalPolicyRow, AuditRow, ToolRow};
use crate::sql::rows::LeaseRow;
use crate::sql::{to_json, unsigned};
use crate::transfer::{
    ArtifactRecord, Batcher, CommandRecord, DumpMessage, LoadMessage, NodeRecord, Record, RecordKind, RunRecord,
    Sequences, Snapshot, Target, filled_tables, load_abandoned, target_not_empty,
};
use crate::usage::PriceRow;

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn count(conn: &Connection, table: &str) -> Result<u64> {
    let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))?;
    unsigned("count", n)
}

fn sequence(conn: &Connection, table: &str) -> Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = ?1")?
        .query_row([table], |row| row.get(0))
        .optional()?;
    Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// Steps `sql` and hands every decoded row to `each`.
fn each_row<T>(
    conn: &Connection,
    sql: &str,
    decode: impl Fn(&Row<'_>) -> Result<T>,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        each(decode(row)?)?;
    }
    Ok(())
}

/// Rows of a child table ordered by parent key, consumed alongside the parent's rows.
struct Children<'s, T> {
    rows: rusqlite::Rows<'s>,
    decode: fn(&Row<'_>) -> Result<(String, T)>,
    pending: Option<(String, T)>,
}

impl<T> Children<'_, T> {
    /// The children of `parent`, which must be asked for in ascending order.
    fn of(&mut self, parent: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        loop {
            if self.pending.is_none() {
                match self.rows.next()? {
                    Some(row) => self.pending = Some((self.decode)(row)?),
                    None => return Ok(out),
                }
            }
            match &self.pending {
                Some((key, _)) if key.as_str() < parent => self.pending = None,
                Some((key, _)) if key == parent => {
                    if let Some((_, child)) = self.pending.take() {
                        out.push(child);
                    }
                }
                _ => return Ok(out),
            }
        }
    }
}

/// A GPU and its node's id (selected after the GPU's columns).
fn gpu_row(row: &Row<'_>) -> Result<(String, Gpu)> {
    let gpu = read::gpu_row(row)?;
    Ok((row.get(7)?, gpu))
}

fn event_row(row: &Row<'_>) -> Result<(String, CommandEvent)> {
    let event = read::command_event_row(row)?;
    Ok((row.get(0)?, event))
}

/// Streams the whole database into `sink` from one read transaction.
pub(super) fn dump(conn: &Connection, sink: &mpsc::Sender<DumpMessage>) -> Result<()> {
    let tx = conn.unchecked_transaction()?;
    dump_in(&tx, sink)?;
    tx.commit()?;
    Ok(())
}

/// Streams what `tx` sees into `sink`: a dump's snapshot, or a load's own writes.
fn dump_in(tx: &Connection, sink: &mpsc::Sender<DumpMessage>) -> Result<()> {
    let counts = [
        (RecordKind::Policy, count(tx, "policies")?),
        (RecordKind::Lease, count(tx, "leases")?),
        (RecordKind::Pool, count(tx, "pools")?),
        (RecordKind::Node, count(tx, "nodes")?),
        (RecordKind::Instance, count(tx, "instances")?),
        (RecordKind::Command, count(tx, "commands")?),
        (RecordKind::HealthReport, count(tx, "health_reports")?),
        (RecordKind::BootstrapLog, count(tx, "bootstrap_logs")?),
        (RecordKind::Runbook, count(tx, "tasks")?),
        (RecordKind::Tool, count(tx, "tool_definitions")?),
        (RecordKind::ApprovalPolicy, count(tx, "approval_policies")?),
        (RecordKind::Run, count(tx, "task_runs")?),
        (RecordKind::Approval, count(tx, "approvals")?),
        (RecordKind::Artifact, count(tx, "artifacts")?),
        (RecordKind::ToolCall, count(tx, "tool_call_records")?),
        (RecordKind::Audit, count(tx, "audit_entries")?),
        (RecordKind::Price, count(tx, "provider_pricing")?),
        (RecordKind::LlmUsage, count(tx, "llm_requests")?),
        (RecordKind::Setting, count(tx, "control_settings")?),
        (RecordKind::InventoryRecord, inventory_count(tx)?),
        (RecordKind::InventorySource, count(tx, "inventory_sources")?),
        (RecordKind::InventorySync, count(tx, "inventory_syncs")?),
        (RecordKind::Change, count(tx, "changes")?),
    ]
    .into_iter()
    .collect();
    let sequences = Sequences {
        change_seq: sequence(tx, "changes")?,
        health_report_id: sequence(tx, "health_reports")?,
        bootstrap_log_id: sequence(tx, "bootstrap_logs")?,
        changes_compacted_through: super::maintenance::compacted_through(tx)?,
        audit_seq: unsigned(
            "ledger_sequences.last",
            tx.query_row("SELECT last FROM ledger_sequences WHERE name = 'audit'", [], |row| row.get(0))?,
        )?,
        tool_call_id: sequence(tx, "tool_call_records")?,
        inventory_sync_id: sequence(tx, "inventory_syncs")?,
    };
    let mut out = Batcher::new(sink);
    out.blocking_start(Snapshot { counts, sequences })?;

    if let Some(policy) = read::policy(tx)? {
        out.blocking_push(Record::Policy(policy))?;
    }
    each_row(
        tx,
        &format!("SELECT {} FROM leases ORDER BY name", LeaseRow::<i64>::COLUMNS),
        read::lease_row,
        |lease| out.blocking_push(Record::Lease(Box::new(lease))),
    )?;
    each_row(tx, &format!("SELECT {POOL_COLUMNS} ORDER BY name"), read::pool_row, |pool| {
        out.blocking_push(Record::Pool(Box::new(pool)))
    })?;
    {
        let mut gpu_statement =
            tx.prepare(&format!("SELECT {}, node_id FROM node_gpus ORDER BY node_id, gpu_index", read::GPU_COLUMNS))?;
        let mut gpus = Children { rows: gpu_statement.query([])?, decode: gpu_row, pending: None };
        each_row(tx, &format!("SELECT {NODE_COLUMNS} ORDER BY n.node_id"), read::node_row, |mut node| {
            let gpus = gpus.of(node.id.as_str())?;
            let last_heartbeat = node.last_heartbeat.take();
            out.blocking_push(Record::Node(Box::new(NodeRecord { node, gpus, last_heartbeat })))
        })?;
    }
    each_row(tx, &format!("SELECT {INSTANCE_COLUMNS} ORDER BY instance_id"), read::instance_row, |instance| {
        out.blocking_push(Record::Instance(Box::new(instance)))
    })?;
    {
        let mut event_statement = tx
            .prepare(&format!("SELECT {} FROM command_events ORDER BY command_id, seq", read::COMMAND_EVENT_COLUMNS))?;
        let mut events = Children { rows: event_statement.query([])?, decode: event_row, pending: None };
        each_row(tx, &format!("SELECT {COMMAND_COLUMNS} ORDER BY command_id"), read::command_row, |command| {
            let events = events.of(&command.id.to_string())?;
            out.blocking_push(Record::Command(Box::new(CommandRecord { command, events })))
        })?;
    }
    each_row(
        tx,
        &format!("SELECT {} FROM health_reports ORDER BY id", read::HEALTH_REPORT_COLUMNS),
        read::health_report_row,
        |report| out.blocking_push(Record::HealthReport(Box::new(report))),
    )?;
    each_row(
        tx,
        &format!("SELECT {} FROM bootstrap_logs ORDER BY id", read::BOOTSTRAP_LOG_COLUMNS),
        read::bootstrap_log_row,
        |log| out.blocking_push(Record::BootstrapLog(Box::new(log))),
    )?;
    dump_ledger(tx, &mut out)?;
    dump_usage(tx, &mut out)?;
    dump_inventory(tx, &mut out)?;
    each_row(
        tx,
        "SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes ORDER BY seq",
        read::change_entry_row,
        |change| out.blocking_push(Record::Change(Box::new(change))),
    )?;
    out.blocking_flush()
}

/// Streams the operations ledger, in `RecordKind` order.
fn dump_ledger(tx: &Connection, out: &mut Batcher<'_>) -> Result<()> {
    each_row(tx, &format!("SELECT {} FROM tasks ORDER BY name", ledger::RUNBOOK_COLUMNS), ledger::runbook_row, |r| {
        out.blocking_push(Record::Runbook(Box::new(r)))
    })?;
    each_row(
        tx,
        &format!("SELECT {} FROM tool_definitions ORDER BY name", ToolRow::<i64>::COLUMNS),
        ledger::tool_row,
        |t| out.blocking_push(Record::Tool(Box::new(t))),
    )?;
    each_row(
        tx,
        &format!("SELECT {} FROM approval_policies ORDER BY name", ApprovalPolicyRow::<i64>::COLUMNS),
        ledger::approval_policy_row,
        |p| out.blocking_push(Record::ApprovalPolicy(Box::new(p))),
    )?;
    {
        let mut event_statement =
            tx.prepare(&format!("SELECT {} FROM task_events ORDER BY run_id, seq", ledger::RUN_EVENT_COLUMNS))?;
        let mut events = Children { rows: event_statement.query([])?, decode: run_event_row, pending: None };
        each_row(
            tx,
            &format!("SELECT {} FROM task_runs r ORDER BY r.run_id", ledger::run_columns()),
            ledger::run_row,
            |run| {
                let events = events.of(&run.id.to_string())?;
                out.blocking_push(Record::Run(Box::new(RunRecord { run, events })))
            },
        )?;
    }
    each_row(
        tx,
        &format!("SELECT {} FROM approvals ORDER BY approval_id", ledger::APPROVAL_COLUMNS),
        ledger::approval_row,
        |a| out.blocking_push(Record::Approval(Box::new(a))),
    )?;
    each_row(
        tx,
        &format!("SELECT {}, content FROM artifacts ORDER BY run_id, name", ledger::ARTIFACT_COLUMNS),
        |row| Ok(ArtifactRecord { info: ledger::artifact_row(row)?, content: row.get(6)? }),
        |a| out.blocking_push(Record::Artifact(Box::new(a))),
    )?;
    each_row(
        tx,
        &format!("SELECT {} FROM tool_call_records ORDER BY id", ledger::TOOL_CALL_COLUMNS),
        ledger::tool_call_row,
        |c| out.blocking_push(Record::ToolCall(Box::new(c))),
    )?;
    each_row(
        tx,
        &format!("SELECT {} FROM audit_entries ORDER BY seq", AuditRow::<i64>::COLUMNS),
        ledger::audit_row,
        |e| out.blocking_push(Record::Audit(Box::new(e))),
    )
}

/// Streams prices, LLM usage and settings, in `RecordKind` order.
fn dump_usage(tx: &Connection, out: &mut Batcher<'_>) -> Result<()> {
    each_row(
        tx,
        &format!("SELECT {} FROM provider_pricing ORDER BY provider, model, effective_from", PriceRow::COLUMNS),
        usage::price_row,
        |p| out.blocking_push(Record::Price(Box::new(p))),
    )?;
    each_row(tx, &format!("{} ORDER BY q.id", usage::USAGE_SELECT), usage::usage_row, |u| {
        out.blocking_push(Record::LlmUsage(Box::new(u)))
    })?;
    each_row(
        tx,
        "SELECT name, value, updated_by, updated_at, revision FROM control_settings ORDER BY name",
        usage::setting_row,
        |s| out.blocking_push(Record::Setting(Box::new(s))),
    )
}

/// Records of every inventory kind.
fn inventory_count(tx: &Connection) -> Result<u64> {
    InventoryKind::ALL.iter().try_fold(0, |n, kind| Ok(n + count(tx, table(*kind).name)?))
}

/// Streams the inventory, in `RecordKind` order: every kind's records (a storage's with the
/// hosts that see it), the sources' status, the sync history.
fn dump_inventory(tx: &Connection, out: &mut Batcher<'_>) -> Result<()> {
    for &kind in InventoryKind::ALL {
        let table = table(kind);
        let sql = format!("SELECT {} FROM {} ORDER BY source, key", inventory::column_list(table), table.name);
        each_row(
            tx,
            &sql,
            |row| inventory::decode(kind, row),
            |mut record| {
                // Storage records are few: one indexed lookup each for the hosts that see them.
                if let RecordState::Storage(storage) = &mut record.state {
                    storage.hosts = inventory::storage_hosts(tx, &record.source, &record.key)?;
                }
                out.blocking_push(Record::InventoryRecord(Box::new(record)))
            },
        )?;
    }
    each_row(
        tx,
        &format!("SELECT {} FROM inventory_sources ORDER BY source, scope", inventory::SOURCE_COLUMNS),
        inventory::source_row,
        |status| out.blocking_push(Record::InventorySource(Box::new(status))),
    )?;
    each_row(
        tx,
        &format!("SELECT {} FROM inventory_syncs ORDER BY id", inventory::SYNC_COLUMNS),
        inventory::sync_row,
        |sync| out.blocking_push(Record::InventorySync(Box::new(sync))),
    )
}

fn run_event_row(row: &Row<'_>) -> Result<(String, StoredRunEvent)> {
    let event = ledger::run_event_row(row)?;
    Ok((row.get(0)?, event))
}

/// Tables emptied by a replacing load, children before parents. The append-only ledger
/// tables let a load empty them while `ledger_expiry` says `everything`. Prices are not
/// among them: the first price a load writes replaces the target's (see `crate::transfer`).
const REPLACED_TABLES: [&str; 26] = [
    "instances",
    "metric_samples",
    "health_reports",
    "nodes",
    "bootstrap_logs",
    "pools",
    "policies",
    "leases",
    "changes",
    "task_events",
    "task_run_targets",
    "artifacts",
    "tool_call_records",
    "token_usage",
    "llm_responses",
    "llm_requests",
    "approvals",
    "task_runs",
    "tasks",
    "tool_definitions",
    "approval_policies",
    "audit_entries",
    "control_settings",
    "host_storage",
    "inventory_sources",
    "inventory_syncs",
];

/// Every table a load writes or empties: [`REPLACED_TABLES`], then each inventory kind's
/// (after `host_storage`, which refers to `storage`).
fn replaced_tables() -> impl Iterator<Item = &'static str> {
    REPLACED_TABLES.into_iter().chain(InventoryKind::ALL.iter().map(|kind| table(*kind).name))
}

fn holds_anything(conn: &Connection) -> Result<bool> {
    let exists: Vec<String> = filled_tables().map(|t| format!("EXISTS (SELECT 1 FROM {t})")).collect();
    Ok(conn.query_row(&format!("SELECT {}", exists.join(" OR ")), [], |row| row.get(0))?)
}

/// Loads records from `source` in one transaction on the writer connection.
pub(super) fn load(conn: &mut Connection, mut source: mpsc::Receiver<LoadMessage>, target: Target) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match target {
        Target::MustBeEmpty if holds_anything(&tx)? => return Err(target_not_empty()),
        Target::MustBeEmpty => {}
        Target::Replace => {
            tx.execute("INSERT INTO ledger_expiry (what, before) VALUES ('everything', 0)", [])?;
            for table in replaced_tables() {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
            tx.execute("DELETE FROM ledger_expiry WHERE what = 'everything'", [])?;
        }
    }
    // Whether the target's prices have made room for the records' (with their first).
    let mut prices_replaced = false;
    loop {
        match source.blocking_recv() {
            None => return Err(load_abandoned()),
            Some(LoadMessage::Records(records)) => {
                for record in &records {
                    if matches!(record, Record::Price(_)) && !prices_replaced {
                        tx.execute("DELETE FROM provider_pricing", [])?;
                        prices_replaced = true;
                    }
                    insert(&tx, record)?;
                }
            }
            Some(LoadMessage::ReadBack(readback)) => dump_in(&tx, &readback)?,
            Some(LoadMessage::Commit(sequences)) => {
                for (table, value) in [
                    ("changes", sequences.change_seq),
                    ("health_reports", sequences.health_report_id),
                    ("bootstrap_logs", sequences.bootstrap_log_id),
                    ("tool_call_records", sequences.tool_call_id),
                    ("inventory_syncs", sequences.inventory_sync_id),
                ] {
                    tx.execute(
                        "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 \
                         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
                        params![table, int(value)],
                    )?;
                    tx.execute(
                        "UPDATE sqlite_sequence SET seq = MAX(seq, ?2) WHERE name = ?1",
                        params![table, int(value)],
                    )?;
                }
                tx.execute(
                    "UPDATE change_log SET compacted_through = MAX(compacted_through, ?1) WHERE id = 1",
                    [int(sequences.changes_compacted_through)],
                )?;
                tx.execute(
                    "UPDATE ledger_sequences SET last = MAX(last, ?1, (SELECT COALESCE(MAX(seq), 0) FROM audit_entries)) \
                     WHERE name = 'audit'",
                    [int(sequences.audit_seq)],
                )?;
                tx.commit()?;
                return Ok(());
            }
        }
    }
}

fn insert(conn: &Connection, record: &Record) -> Result<()> {
    fn duplicate(kind: ResourceKind, id: &str) -> impl FnOnce(rusqlite::Error) -> crate::StoreError + '_ {
        move |e| map_error(e, Some((kind, id)))
    }
    match record {
        Record::Policy(p) => {
            conn.prepare_cached(
                "INSERT INTO policies (id, name, document, updated_at, revision) VALUES ('active', ?1, ?2, ?3, ?4)",
            )?
            .execute(params![p.name, p.document, micros(p.updated_at), int(p.revision.get())])?;
        }
        Record::Lease(l) => {
            write_lease(conn, INSERT_LEASE, l).map_err(duplicate(ResourceKind::Lease, l.name.as_str()))?;
        }
        Record::Pool(p) => {
            write_pool(conn, INSERT_POOL, p, p.revision).map_err(duplicate(ResourceKind::Pool, p.name.as_str()))?;
        }
        Record::Node(r) => {
            let id = r.node.id.as_str();
            write_node(conn, INSERT_NODE, &r.node, r.node.revision).map_err(duplicate(ResourceKind::Node, id))?;
            insert_gpus(conn, &r.node.id, &r.gpus)?;
            if let Some(at) = r.last_heartbeat {
                conn.prepare_cached("INSERT INTO node_liveness (node_id, last_heartbeat) VALUES (?1, ?2)")?
                    .execute(params![id, micros(at)])?;
            }
        }
        Record::Instance(i) => {
            write_instance(conn, INSERT_INSTANCE, i, i.revision)
                .map_err(duplicate(ResourceKind::Instance, i.id.as_str()))?;
        }
        Record::Command(r) => {
            let id = r.command.id.to_string();
            write_command(conn, INSERT_COMMAND, &r.command, r.command.revision)
                .map_err(duplicate(ResourceKind::Command, &id))?;
            let mut statement = conn.prepare_cached(
                "INSERT INTO command_events (command_id, seq, at, state, actor, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in &r.events {
                statement.execute(params![
                    e.command_id.to_string(),
                    e.seq,
                    micros(e.at),
                    e.state.as_str(),
                    e.actor.to_string(),
                    e.message
                ])?;
            }
        }
        Record::HealthReport(r) => {
            conn.prepare_cached(
                "INSERT INTO health_reports (id, node_id, received_at, health, results, events) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                int(r.id),
                r.report.node_id.as_str(),
                micros(r.report.received_at),
                r.report.health.as_str(),
                to_json(&r.report.results),
                to_json(&r.report.events)
            ])?;
        }
        Record::BootstrapLog(l) => {
            conn.prepare_cached(
                "INSERT INTO bootstrap_logs (id, node_id, instance_id, pool, started_at, duration_ms, success, error, \
                 commands) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                int(l.id),
                l.node_id.as_str(),
                l.instance_id.as_ref().map(|i| i.as_str()),
                l.pool.as_ref().map(|p| p.as_str()),
                micros(l.started_at),
                int(l.duration_ms),
                l.success,
                l.error,
                to_json(&l.commands)
            ])?;
        }
        Record::Runbook(r) => {
            ledger::write_runbook(conn, ledger::INSERT_RUNBOOK, r)
                .map_err(duplicate(ResourceKind::Runbook, r.name.as_str()))?;
        }
        Record::Tool(t) => {
            ledger::write_tool(conn, ledger::INSERT_TOOL, t).map_err(duplicate(ResourceKind::Tool, t.name.as_str()))?;
        }
        Record::ApprovalPolicy(p) => {
            ledger::write_approval_policy(conn, ledger::INSERT_APPROVAL_POLICY, p)
                .map_err(duplicate(ResourceKind::ApprovalPolicy, p.name.as_str()))?;
        }
        Record::Run(r) => {
            let id = r.run.id.to_string();
            ledger::write_run(conn, ledger::INSERT_RUN, &r.run).map_err(duplicate(ResourceKind::Run, &id))?;
            ledger::insert_run_targets(conn, &r.run)?;
            let mut statement = conn.prepare_cached(
                "INSERT INTO task_events (run_id, seq, at, type, step, target, message, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for e in &r.events {
                statement.execute(params![
                    id,
                    int(e.seq),
                    micros(e.at),
                    e.event.event_type.as_str(),
                    e.event.step.map(i64::from),
                    e.event.target.as_ref().map(ToString::to_string),
                    e.event.message,
                    e.event.data.as_ref().map(to_json)
                ])?;
            }
        }
        Record::Approval(a) => {
            let id = a.id.to_string();
            ledger::write_approval(conn, ledger::INSERT_APPROVAL, a).map_err(duplicate(ResourceKind::Approval, &id))?;
        }
        Record::Artifact(a) => {
            ledger::insert_artifact(conn, &a.info, &a.content)?;
        }
        Record::ToolCall(c) => {
            ledger::insert_tool_call(conn, c)?;
        }
        Record::Audit(e) => {
            ledger::insert_audit(conn, e)?;
        }
        Record::Price(p) => {
            usage::insert_price(conn, p).map_err(|e| map_error(e, None))?;
        }
        Record::LlmUsage(u) => {
            if usage::insert_llm_usage(conn, u)? == crate::apply::Insert::KeyTaken {
                return Err(crate::StoreError::already_exists(ResourceKind::LlmUsage, u.id));
            }
        }
        Record::Setting(s) => {
            usage::write_setting(conn, usage::INSERT_SETTING, s)
                .map_err(duplicate(ResourceKind::Setting, s.name.as_str()))?;
        }
        Record::InventoryRecord(r) => {
            // A record twice is refused as a duplicate key naming the kind's table.
            inventory::insert(conn, r.kind(), std::slice::from_ref(r.as_ref()))?;
        }
        Record::InventorySource(s) => {
            inventory::write_source(conn, inventory::INSERT_SOURCE, s)?;
        }
        Record::InventorySync(s) => {
            inventory::load_sync(conn, s)?;
        }
        Record::Change(c) => {
            conn.prepare_cached(
                "INSERT INTO changes (seq, at, kind, resource_id, op, revision, actor, reason, resource) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                int(c.seq),
                micros(c.at),
                c.kind.as_str(),
                c.resource_id,
                c.op.as_str(),
                int(c.revision.get()),
                c.actor.to_string(),
                c.reason,
                c.resource.get()
            ])?;
        }
    }
    Ok(())
}
