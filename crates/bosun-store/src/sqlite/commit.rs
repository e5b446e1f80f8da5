//! Applying one write batch on the writer connection, inside the savepoint the group
//! committer (`writer.rs`) opened for it.

use bosun_core::node::Gpu;
use bosun_core::{
    BootstrapLog, ChangeOp, Command, HealthReport, Instance, InstanceId, Node, NodeId, Pool, ResourceKind, Revision,
    StoredPolicy,
};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{map_error, micros, read};
use crate::error::{Result, StoreError};
use crate::rules::{self, CommandHeader, InstanceHeader, NodeHeader};
use crate::sql::{parse, to_json, unsigned};
use crate::store::StoreOptions;
use crate::write::{Committed, Write, WriteBatch, WriteOutcome};

/// Everything one batch needs besides the connection.
struct Cx<'a> {
    batch: &'a WriteBatch,
    actor: String,
    now: i64,
    options: &'a StoreOptions,
}

/// Applies every write of `batch`. On error the caller rolls the savepoint back: no
/// partial rows, no change records.
pub(super) fn apply_batch(conn: &Connection, options: &StoreOptions, batch: &WriteBatch) -> Result<Committed> {
    let cx = Cx { batch, actor: batch.actor.to_string(), now: micros(options.clock.now()), options };
    let mut outcomes = Vec::with_capacity(batch.writes.len());
    for write in &batch.writes {
        outcomes.push(apply(conn, &cx, write)?);
    }
    Ok(Committed { outcomes })
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn revision(what: &str, value: i64) -> Result<Revision> {
    Revision::new(unsigned(what, value)?).ok_or_else(|| StoreError::corrupt(what, "revision 0"))
}

fn apply(conn: &Connection, cx: &Cx<'_>, write: &Write) -> Result<WriteOutcome> {
    match write {
        Write::CreateNode { node, gpus } => {
            rules::check_node_create(node, gpus)?;
            let id = node.id.as_str();
            write_node(conn, INSERT_NODE, node, Revision::FIRST)
                .map_err(|e| map_error(e, Some((ResourceKind::Node, id))))?;
            insert_gpus(conn, &node.id, gpus)?;
            let mut stored = (**node).clone();
            stored.revision = Revision::FIRST;
            stored.last_heartbeat = None;
            change(conn, cx, ResourceKind::Node, id, ChangeOp::Created, Revision::FIRST, &stored)
        }
        Write::UpdateNode { node, expected, gpus } => {
            let id = node.id.as_str();
            let header = node_header(conn, &node.id)?;
            rules::check_node_update(&header, node, *expected, gpus.as_deref())?;
            let revision = expected.next();
            write_node(conn, UPDATE_NODE, node, revision)?;
            if let Some(gpus) = gpus {
                conn.prepare_cached("DELETE FROM node_gpus WHERE node_id = ?1")?.execute([id])?;
                insert_gpus(conn, &node.id, gpus)?;
            }
            let mut stored = (**node).clone();
            stored.revision = revision;
            change(conn, cx, ResourceKind::Node, id, ChangeOp::Updated, revision, &stored)
        }
        Write::DeleteNode { id, expected } => delete_node(conn, cx, id, *expected),
        Write::CreateInstance(instance) => {
            rules::check_instance_create(instance)?;
            check_instance_refs(conn, instance)?;
            let id = instance.id.as_str();
            write_instance(conn, INSERT_INSTANCE, instance, Revision::FIRST)
                .map_err(|e| map_error(e, Some((ResourceKind::Instance, id))))?;
            let mut stored = (**instance).clone();
            stored.revision = Revision::FIRST;
            change(conn, cx, ResourceKind::Instance, id, ChangeOp::Created, Revision::FIRST, &stored)
        }
        Write::UpdateInstance { instance, expected } => {
            let id = instance.id.as_str();
            let header = instance_header(conn, &instance.id)?;
            rules::check_instance_update(&header, instance, *expected)?;
            check_instance_refs(conn, instance)?;
            let revision = expected.next();
            write_instance(conn, UPDATE_INSTANCE, instance, revision)?;
            let mut stored = (**instance).clone();
            stored.revision = revision;
            change(conn, cx, ResourceKind::Instance, id, ChangeOp::Updated, revision, &stored)
        }
        Write::DeleteInstance { id, expected } => {
            let stored =
                read::instance(conn, id.as_str())?.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?;
            if let Some(expected) = expected {
                rules::check_expected(ResourceKind::Instance, id.as_str(), stored.revision, *expected)?;
            }
            conn.prepare_cached("DELETE FROM instances WHERE instance_id = ?1")?.execute([id.as_str()])?;
            change(conn, cx, ResourceKind::Instance, id.as_str(), ChangeOp::Deleted, stored.revision, &stored)
        }
        Write::CreateCommand(command) => {
            rules::check_command_create(command)?;
            ensure_node(conn, &command.node_id)?;
            let id = command.id.to_string();
            write_command(conn, INSERT_COMMAND, command, Revision::FIRST)
                .map_err(|e| map_error(e, Some((ResourceKind::Command, &id))))?;
            let mut stored = (**command).clone();
            stored.revision = Revision::FIRST;
            command_event(conn, cx, &stored)?;
            change(conn, cx, ResourceKind::Command, &id, ChangeOp::Created, Revision::FIRST, &stored)
        }
        Write::UpdateCommand { command, expected } => {
            let id = command.id.to_string();
            let stored =
                read::command(conn, &command.id)?.ok_or_else(|| StoreError::not_found(ResourceKind::Command, &id))?;
            let adds_event = rules::check_command_update(&CommandHeader::from(&stored), command, *expected)?;
            let revision = expected.next();
            write_command(conn, UPDATE_COMMAND, command, revision)?;
            let mut stored = (**command).clone();
            stored.revision = revision;
            if adds_event {
                command_event(conn, cx, &stored)?;
            }
            change(conn, cx, ResourceKind::Command, &id, ChangeOp::Updated, revision, &stored)
        }
        Write::CreatePool(pool) => {
            rules::check_pool(pool)?;
            let name = pool.name.as_str();
            write_pool(conn, INSERT_POOL, pool, Revision::FIRST)
                .map_err(|e| map_error(e, Some((ResourceKind::Pool, name))))?;
            let mut stored = (**pool).clone();
            stored.revision = Revision::FIRST;
            change(conn, cx, ResourceKind::Pool, name, ChangeOp::Created, Revision::FIRST, &stored)
        }
        Write::UpdatePool { pool, expected } => {
            let name = pool.name.as_str();
            let stored: Option<i64> = conn
                .prepare_cached("SELECT revision FROM pools WHERE name = ?1")?
                .query_row([name], |row| row.get(0))
                .optional()?;
            let stored = stored.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?;
            rules::check_expected(ResourceKind::Pool, name, revision("pools.revision", stored)?, *expected)?;
            rules::check_pool(pool)?;
            let revision = expected.next();
            write_pool(conn, UPDATE_POOL, pool, revision)?;
            let mut stored = (**pool).clone();
            stored.revision = revision;
            change(conn, cx, ResourceKind::Pool, name, ChangeOp::Updated, revision, &stored)
        }
        Write::DeletePool { name, expected } => {
            let stored =
                read::pool(conn, name.as_str())?.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?;
            if let Some(expected) = expected {
                rules::check_expected(ResourceKind::Pool, name.as_str(), stored.revision, *expected)?;
            }
            conn.prepare_cached("DELETE FROM pools WHERE name = ?1")?.execute([name.as_str()])?;
            change(conn, cx, ResourceKind::Pool, name.as_str(), ChangeOp::Deleted, stored.revision, &stored)
        }
        Write::PutPolicy { policy, expected } => {
            rules::check_policy(policy)?;
            let id = StoredPolicy::RESOURCE_ID;
            let stored = read::policy(conn)?;
            let (op, revision) = match (&stored, expected) {
                (None, None) => (ChangeOp::Created, Revision::FIRST),
                (None, Some(_)) => return Err(StoreError::not_found(ResourceKind::Policy, id)),
                (Some(stored), expected) => {
                    if let Some(expected) = expected {
                        rules::check_expected(ResourceKind::Policy, id, stored.revision, *expected)?;
                    }
                    (ChangeOp::Updated, stored.revision.next())
                }
            };
            conn.prepare_cached(
                "INSERT INTO policies (id, name, document, updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5)                  ON CONFLICT (id) DO UPDATE SET name = excluded.name, document = excluded.document,                  updated_at = excluded.updated_at, revision = excluded.revision",
            )?
            .execute(params![id, policy.name, policy.document, micros(policy.updated_at), int(revision.get())])?;
            let mut stored = (**policy).clone();
            stored.revision = revision;
            change(conn, cx, ResourceKind::Policy, id, op, revision, &stored)
        }
        Write::DeletePolicy { expected } => {
            let id = StoredPolicy::RESOURCE_ID;
            let stored = read::policy(conn)?.ok_or_else(|| StoreError::not_found(ResourceKind::Policy, id))?;
            if let Some(expected) = expected {
                rules::check_expected(ResourceKind::Policy, id, stored.revision, *expected)?;
            }
            conn.prepare_cached("DELETE FROM policies WHERE id = ?1")?.execute([id])?;
            change(conn, cx, ResourceKind::Policy, id, ChangeOp::Deleted, stored.revision, &stored)
        }
        Write::AppendHealthReport(report) => append_health_report(conn, cx, report),
        Write::AppendBootstrapLog(log) => append_bootstrap_log(conn, cx, log),
    }
}

/// Appends the change record of a write; its sequence number is the write's outcome.
fn change<T: serde::Serialize>(
    conn: &Connection,
    cx: &Cx<'_>,
    kind: ResourceKind,
    id: &str,
    op: ChangeOp,
    revision: Revision,
    resource: &T,
) -> Result<WriteOutcome> {
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO changes (at, kind, resource_id, op, revision, actor, reason, resource) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING seq",
        )?
        .query_row(
            params![
                cx.now,
                kind.as_str(),
                id,
                op.as_str(),
                int(revision.get()),
                cx.actor,
                cx.batch.reason,
                to_json(resource)
            ],
            |row| row.get(0),
        )?;
    Ok(WriteOutcome::Resource { revision, change_seq: unsigned("changes.seq", seq)? })
}

fn ensure_node(conn: &Connection, id: &NodeId) -> Result<()> {
    if read::node_exists(conn, id)? { Ok(()) } else { Err(StoreError::not_found(ResourceKind::Node, id)) }
}

fn node_header(conn: &Connection, id: &NodeId) -> Result<NodeHeader> {
    let row = conn
        .prepare_cached("SELECT revision, status, registered_at, gpu_count, gpu_model FROM nodes WHERE node_id = ?1")?
        .query_row([id.as_str()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get(4)?,
            ))
        })
        .optional()?;
    let (rev, status, registered_at, gpu_count, gpu_model) =
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?;
    Ok(NodeHeader {
        revision: revision("nodes.revision", rev)?,
        status: parse("nodes.status", &status)?,
        registered_at: bosun_core::Timestamp::from_unix_micros(registered_at),
        gpu_count: unsigned("nodes.gpu_count", gpu_count)?,
        gpu_model,
    })
}

fn instance_header(conn: &Connection, id: &InstanceId) -> Result<InstanceHeader> {
    let row = conn
        .prepare_cached("SELECT revision, state, provider, created_at FROM instances WHERE instance_id = ?1")?
        .query_row([id.as_str()], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, i64>(3)?))
        })
        .optional()?;
    let (rev, state, provider, created_at) = row.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?;
    Ok(InstanceHeader {
        revision: revision("instances.revision", rev)?,
        state: parse("instances.state", &state)?,
        provider,
        created_at: bosun_core::Timestamp::from_unix_micros(created_at),
    })
}

/// An instance's node must exist and its provider id must be unique per provider.
fn check_instance_refs(conn: &Connection, instance: &Instance) -> Result<()> {
    if let Some(node) = &instance.node_id {
        ensure_node(conn, node)?;
    }
    if let Some(pid) = &instance.provider_instance_id {
        let clash: Option<String> = conn
            .prepare_cached(
                "SELECT instance_id FROM instances WHERE provider = ?1 AND provider_instance_id = ?2 \
                 AND instance_id <> ?3 LIMIT 1",
            )?
            .query_row(params![instance.provider, pid, instance.id.as_str()], |row| row.get(0))
            .optional()?;
        if clash.is_some() {
            return Err(StoreError::already_exists(ResourceKind::Instance, format!("{}/{pid}", instance.provider)));
        }
    }
    Ok(())
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

fn delete_node(conn: &Connection, cx: &Cx<'_>, id: &NodeId, expected: Option<Revision>) -> Result<WriteOutcome> {
    let mut stored = read::node(conn, id)?;
    if let Some(expected) = expected {
        rules::check_expected(ResourceKind::Node, id.as_str(), stored.revision, expected)?;
    }
    let linked: Option<String> = conn
        .prepare_cached("SELECT instance_id FROM instances WHERE node_id = ?1 ORDER BY instance_id LIMIT 1")?
        .query_row([id.as_str()], |row| row.get(0))
        .optional()?;
    if let Some(instance) = linked {
        return Err(crate::rules::linked_instance_error(id, &parse("instances.instance_id", &instance)?));
    }
    // The node's commands go with it (ON DELETE CASCADE); record their deletion so the
    // change log stays a complete account of what exists.
    let commands = {
        let mut statement =
            conn.prepare_cached(&format!("SELECT {} WHERE node_id = ?1 ORDER BY command_id", read::COMMAND_COLUMNS))?;
        let mut rows = statement.query([id.as_str()])?;
        let mut commands = Vec::new();
        while let Some(row) = rows.next()? {
            commands.push(read::command_row(row)?);
        }
        commands
    };
    for command in commands {
        change(
            conn,
            cx,
            ResourceKind::Command,
            &command.id.to_string(),
            ChangeOp::Deleted,
            command.revision,
            &command,
        )?;
    }
    conn.prepare_cached("DELETE FROM nodes WHERE node_id = ?1")?.execute([id.as_str()])?;
    stored.last_heartbeat = None;
    change(conn, cx, ResourceKind::Node, id.as_str(), ChangeOp::Deleted, stored.revision, &stored)
}

fn command_event(conn: &Connection, cx: &Cx<'_>, command: &Command) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO command_events (command_id, seq, at, state, actor, message) \
         SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM command_events WHERE command_id = ?1",
    )?
    .execute(params![command.id.to_string(), cx.now, command.state.as_str(), cx.actor, cx.batch.reason])?;
    Ok(())
}

fn append_health_report(conn: &Connection, cx: &Cx<'_>, report: &HealthReport) -> Result<WriteOutcome> {
    rules::check_health_report(report)?;
    ensure_node(conn, &report.node_id)?;
    let id: i64 = conn
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
    conn.prepare_cached(
        "DELETE FROM health_reports WHERE node_id = ?1 AND id <= \
         (SELECT id FROM health_reports WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![report.node_id.as_str(), i64::from(cx.options.health_history_per_node)])?;
    Ok(WriteOutcome::Appended { id: unsigned("health_reports.id", id)? })
}

fn append_bootstrap_log(conn: &Connection, cx: &Cx<'_>, log: &BootstrapLog) -> Result<WriteOutcome> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO bootstrap_logs (node_id, instance_id, pool, started_at, duration_ms, success, error, commands) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
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
    conn.prepare_cached(
        "DELETE FROM bootstrap_logs WHERE node_id = ?1 AND id <= \
         (SELECT id FROM bootstrap_logs WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![log.node_id.as_str(), i64::from(cx.options.bootstrap_logs_per_node)])?;
    Ok(WriteOutcome::Appended { id: unsigned("bootstrap_logs.id", id)? })
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
