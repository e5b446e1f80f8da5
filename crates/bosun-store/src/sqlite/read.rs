//! Reads: queries and row decoding. Every function runs on a reader (or, inside a commit,
//! the writer) connection and is synchronous.

use bosun_core::node::Gpu;
use bosun_core::{
    BootstrapLog, ChangeRecord, Command, CommandEvent, CommandId, Heartbeat, Instance, MetricSample, Node, NodeId,
    Pool, ResourceKind, Revision, StoredPolicy, Timestamp,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, params_from_iter};
use serde::de::DeserializeOwned;
use sqlx::types::Json;

use crate::error::{Result, StoreError};
use crate::query::{ChangeFilter, CommandFilter, InstanceFilter, NodeAfter, NodeFilter, NodeOrder};
use crate::sql::rows::{
    BootstrapLogRow, ChangeRow, CommandEventRow, CommandRow, GpuRow, HealthReportRow, InstanceRow, LeaseRow, PolicyRow,
    PoolRow, SampleRow,
};
use crate::sql::{label_path, parse, parse_opt, unsigned};
use crate::transfer::ChangeEntry;
use crate::write::StoredHealthReport;

/// A JSON column decoded in place, naming the column if it is not what bosun wrote.
pub(super) fn json<T: DeserializeOwned>(row: &Row<'_>, index: usize, what: &str) -> Result<Json<T>> {
    let text = row.get_ref(index)?.as_str().map_err(|e| StoreError::corrupt(what, e))?;
    serde_json::from_str(text).map(Json).map_err(|e| StoreError::corrupt(what, e))
}

pub(super) fn opt_json<T: DeserializeOwned>(row: &Row<'_>, index: usize, what: &str) -> Result<Option<Json<T>>> {
    match row.get_ref(index)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => json(row, index, what).map(Some),
    }
}

pub(super) const NODE_COLUMNS: &str = "n.node_id, n.provider, n.region, n.zone, n.instance_type, n.pool, n.status, \
    n.status_reason, n.status_changed_at, n.health, n.unhealthy_streak, n.labels, n.gpu_count, n.gpu_model, \
    n.metadata, n.registered_at, n.last_health_report, n.revision, l.last_heartbeat, n.remediation \
    FROM nodes n LEFT JOIN node_liveness l ON l.node_id = n.node_id";

/// Decodes a node row. Enum columns are parsed from borrowed text rather than through an
/// owned `String`: lists decode a hundred thousand of these.
pub(super) fn node_row(row: &Row<'_>) -> Result<Node> {
    let borrowed = |index: usize, what: &str| -> Result<&str> {
        row.get_ref(index)?.as_str().map_err(|e| StoreError::corrupt(what, e))
    };
    Ok(Node {
        id: parse("nodes.node_id", borrowed(0, "nodes.node_id")?)?,
        provider: row.get(1)?,
        region: row.get(2)?,
        zone: row.get(3)?,
        instance_type: row.get(4)?,
        pool: parse_opt(
            "nodes.pool",
            row.get_ref(5)?.as_str_or_null().map_err(|e| StoreError::corrupt("nodes.pool", e))?,
        )?,
        status: parse("nodes.status", borrowed(6, "nodes.status")?)?,
        status_reason: row.get(7)?,
        status_changed_at: Timestamp::from_unix_micros(row.get(8)?),
        health: parse("nodes.health", borrowed(9, "nodes.health")?)?,
        unhealthy_streak: unsigned("nodes.unhealthy_streak", row.get(10)?)?,
        remediation: opt_json(row, 19, "nodes.remediation")?.map(|json| json.0),
        labels: json(row, 11, "nodes.labels")?.0,
        gpu_count: unsigned("nodes.gpu_count", row.get(12)?)?,
        gpu_model: row.get(13)?,
        metadata: json(row, 14, "nodes.metadata")?.0,
        registered_at: Timestamp::from_unix_micros(row.get(15)?),
        last_health_report: row.get::<_, Option<i64>>(16)?.map(Timestamp::from_unix_micros),
        revision: Revision::new(unsigned("nodes.revision", row.get(17)?)?)
            .ok_or_else(|| StoreError::corrupt("nodes.revision", "revision 0"))?,
        last_heartbeat: row.get::<_, Option<i64>>(18)?.map(Timestamp::from_unix_micros),
    })
}

pub(super) const INSTANCE_COLUMNS: &str = "instance_id, provider, provider_instance_id, region, zone, instance_type, \
    pool, state, status_message, node_id, labels, created_at, state_changed_at, ready_at, terminated_at, revision \
    FROM instances";

pub(super) fn instance_row(row: &Row<'_>) -> Result<Instance> {
    InstanceRow::<i64> {
        instance_id: row.get(0)?,
        provider: row.get(1)?,
        provider_instance_id: row.get(2)?,
        region: row.get(3)?,
        zone: row.get(4)?,
        instance_type: row.get(5)?,
        pool: row.get(6)?,
        state: row.get(7)?,
        status_message: row.get(8)?,
        node_id: row.get(9)?,
        labels: json(row, 10, "instances.labels")?,
        created_at: row.get(11)?,
        state_changed_at: row.get(12)?,
        ready_at: row.get(13)?,
        terminated_at: row.get(14)?,
        revision: row.get(15)?,
    }
    .into_instance()
}

pub(super) const COMMAND_COLUMNS: &str = "command_id, node_id, kind, custom_name, parameters, state, issued_by, \
    reason, issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, result, revision \
    FROM commands";

pub(super) fn command_row(row: &Row<'_>) -> Result<Command> {
    CommandRow::<i64> {
        command_id: row.get(0)?,
        node_id: row.get(1)?,
        kind: row.get(2)?,
        custom_name: row.get(3)?,
        parameters: json(row, 4, "commands.parameters")?,
        state: row.get(5)?,
        issued_by: row.get(6)?,
        reason: row.get(7)?,
        issued_at: row.get(8)?,
        deadline: row.get(9)?,
        delivered_at: row.get(10)?,
        delivery_count: row.get(11)?,
        acked_at: row.get(12)?,
        finished_at: row.get(13)?,
        outcome_message: row.get(14)?,
        result: json(row, 15, "commands.result")?,
        revision: row.get(16)?,
    }
    .into_command()
}

pub(super) const POOL_COLUMNS: &str = "name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools";

pub(super) fn pool_row(row: &Row<'_>) -> Result<Pool> {
    PoolRow::<i64> {
        name: row.get(0)?,
        spec: json(row, 1, "pools.spec")?,
        last_scale_at: row.get(2)?,
        provider_backoff: json(row, 3, "pools.provider_backoff")?,
        last_decision: opt_json(row, 4, "pools.last_decision")?,
        revision: row.get(5)?,
    }
    .into_pool()
}

pub(super) fn change_row(row: &Row<'_>) -> Result<ChangeRecord> {
    change_columns(row, json(row, 8, "changes.resource")?)?.into_change()
}

/// A change with its document as the text the file holds, for a transfer to hand on unread.
pub(super) fn change_entry_row(row: &Row<'_>) -> Result<ChangeEntry> {
    change_columns(row, row.get::<_, String>(8)?)?.into_entry()
}

/// The columns of a `changes` row but its document, which the caller read as it needs.
fn change_columns<D>(row: &Row<'_>, resource: D) -> Result<ChangeRow<i64, D>> {
    Ok(ChangeRow {
        seq: row.get(0)?,
        at: row.get(1)?,
        kind: row.get(2)?,
        resource_id: row.get(3)?,
        op: row.get(4)?,
        revision: row.get(5)?,
        actor: row.get(6)?,
        reason: row.get(7)?,
        resource,
    })
}

/// Runs `sql` with `params` and decodes every row with `decode`.
pub(super) fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params_from_iter(params))?;
    rows.next()?.map(decode).transpose()
}

pub(super) fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

pub(super) fn node_exists(conn: &Connection, id: &NodeId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM nodes WHERE node_id = ?1")?
        .query_row([id.as_str()], |_| Ok(()))
        .optional()?
        .is_some())
}

fn require_node(conn: &Connection, id: &NodeId) -> Result<()> {
    if node_exists(conn, id)? { Ok(()) } else { Err(StoreError::not_found(ResourceKind::Node, id)) }
}

pub(super) fn node(conn: &Connection, id: &NodeId) -> Result<Node> {
    one(conn, &format!("SELECT {NODE_COLUMNS} WHERE n.node_id = ?1"), &[text(id.as_str())], node_row)?
        .ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))
}

pub(super) fn node_gpus(conn: &Connection, id: &NodeId) -> Result<Vec<Gpu>> {
    require_node(conn, id)?;
    collect(
        conn,
        &format!("SELECT {GPU_COLUMNS} FROM node_gpus WHERE node_id = ?1 ORDER BY gpu_index"),
        &[text(id.as_str())],
        gpu_row,
    )
}

/// The columns [`gpu_row`] reads, first in a SELECT.
pub(super) const GPU_COLUMNS: &str = "gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, cuda_version";

pub(super) fn gpu_row(row: &Row<'_>) -> Result<Gpu> {
    GpuRow {
        gpu_index: row.get(0)?,
        uuid: row.get(1)?,
        name: row.get(2)?,
        pci_bus_id: row.get(3)?,
        memory_bytes: row.get(4)?,
        driver_version: row.get(5)?,
        cuda_version: row.get(6)?,
    }
    .into_gpu()
}

/// Up to `limit` nodes after `after` in `order`, matching `filter`.
pub(super) fn list_nodes(
    conn: &Connection,
    order: NodeOrder,
    filter: &NodeFilter,
    after: Option<NodeAfter>,
    limit: i64,
) -> Result<Vec<Node>> {
    let mut sql = format!("SELECT {NODE_COLUMNS} WHERE 1 = 1");
    let mut params = Vec::new();
    // Binds `value` and answers its placeholder.
    let mut param = |value: Value| {
        params.push(value);
        format!("?{}", params.len())
    };
    match after {
        Some(NodeAfter::Id(after)) => sql.push_str(&format!(" AND n.node_id > {}", param(text(after)))),
        Some(NodeAfter::Changed(at, id)) => {
            let (at, id) = (param(Value::Integer(at.unix_micros())), param(text(id)));
            sql.push_str(&format!(" AND (n.status_changed_at, n.node_id) < ({at}, {id})"));
        }
        None => {}
    }
    if let Some(status) = filter.status {
        sql.push_str(&format!(" AND n.status = {}", param(text(status.as_str()))));
    }
    if let Some(health) = filter.health {
        sql.push_str(&format!(" AND n.health = {}", param(text(health.as_str()))));
    }
    if !filter.id_contains.is_empty() {
        sql.push_str(&format!(" AND instr(n.node_id, {}) > 0", param(text(filter.id_contains.clone()))));
    }
    if let Some(pool) = &filter.pool {
        sql.push_str(&format!(" AND n.pool = {}", param(text(pool.as_str()))));
    }
    if let Some(provider) = &filter.provider {
        sql.push_str(&format!(" AND n.provider = {}", param(text(provider.as_str()))));
    }
    if let Some(region) = &filter.region {
        sql.push_str(&format!(" AND n.region = {}", param(text(region.as_str()))));
    }
    for (key, value) in filter.labels.terms() {
        let (path, value) = (param(text(label_path(key))), param(text(value)));
        sql.push_str(&format!(" AND json_extract(n.labels, {path}) = {value}"));
    }
    for key in filter.labels.required_keys() {
        sql.push_str(&format!(" AND json_type(n.labels, {}) IS NOT NULL", param(text(label_path(key)))));
    }
    let order = match order {
        NodeOrder::Id => "n.node_id",
        NodeOrder::RecentlyChanged => "n.status_changed_at DESC, n.node_id DESC",
    };
    sql.push_str(&format!(" ORDER BY {order} LIMIT {}", param(Value::Integer(limit))));
    collect(conn, &sql, &params, node_row)
}

pub(super) fn instance(conn: &Connection, id: &str) -> Result<Option<Instance>> {
    one(conn, &format!("SELECT {INSTANCE_COLUMNS} WHERE instance_id = ?1"), &[text(id)], instance_row)
}

pub(super) fn list_instances(
    conn: &Connection,
    filter: &InstanceFilter,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<Instance>> {
    let mut sql = format!("SELECT {INSTANCE_COLUMNS} WHERE 1 = 1");
    let mut params = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: Value| {
        params.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    };
    if let Some(after) = after {
        bind(&mut sql, "instance_id >", text(after));
    }
    if let Some(pool) = &filter.pool {
        bind(&mut sql, "pool =", text(pool.as_str()));
    }
    if let Some(provider) = &filter.provider {
        bind(&mut sql, "provider =", text(provider.as_str()));
    }
    if let Some(region) = &filter.region {
        bind(&mut sql, "region =", text(region.as_str()));
    }
    if let Some(node) = &filter.node_id {
        bind(&mut sql, "node_id =", text(node.as_str()));
    }
    if !filter.states.is_empty() {
        let placeholders: Vec<String> = filter
            .states
            .iter()
            .map(|state| {
                params.push(text(state.as_str()));
                format!("?{}", params.len())
            })
            .collect();
        sql.push_str(&format!(" AND state IN ({})", placeholders.join(", ")));
    }
    for (key, value) in filter.labels.terms() {
        params.push(text(label_path(key)));
        params.push(text(value));
        sql.push_str(&format!(" AND json_extract(labels, ?{}) = ?{}", params.len() - 1, params.len()));
    }
    for key in filter.labels.required_keys() {
        params.push(text(label_path(key)));
        sql.push_str(&format!(" AND json_type(labels, ?{}) IS NOT NULL", params.len()));
    }
    params.push(Value::Integer(limit));
    sql.push_str(&format!(" ORDER BY instance_id LIMIT ?{}", params.len()));
    collect(conn, &sql, &params, instance_row)
}

pub(super) fn instance_for_node(conn: &Connection, node: &NodeId) -> Result<Option<Instance>> {
    one(
        conn,
        &format!(
            "SELECT {INSTANCE_COLUMNS} WHERE node_id = ?1 OR instance_id = ?1 OR provider_instance_id = ?1 \
             ORDER BY state IN ('TERMINATED', 'FAILED'), created_at DESC, instance_id LIMIT 1"
        ),
        &[text(node.as_str())],
        instance_row,
    )
}

pub(super) fn command(conn: &Connection, id: &CommandId) -> Result<Option<Command>> {
    one(conn, &format!("SELECT {COMMAND_COLUMNS} WHERE command_id = ?1"), &[text(id.to_string())], command_row)
}

pub(super) fn list_commands(
    conn: &Connection,
    filter: &CommandFilter,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<Command>> {
    let mut sql = format!("SELECT {COMMAND_COLUMNS} WHERE 1 = 1");
    let mut params = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: Value| {
        params.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    };
    if let Some(after) = after {
        bind(&mut sql, "command_id >", text(after));
    }
    if let Some(node) = &filter.node_id {
        bind(&mut sql, "node_id =", text(node.as_str()));
    }
    if let Some(kind) = &filter.kind {
        bind(&mut sql, "kind =", text(kind.kind_name()));
        if let Some(name) = kind.custom_name() {
            bind(&mut sql, "custom_name =", text(name));
        }
    }
    if !filter.states.is_empty() {
        let placeholders: Vec<String> = filter
            .states
            .iter()
            .map(|state| {
                params.push(text(state.as_str()));
                format!("?{}", params.len())
            })
            .collect();
        sql.push_str(&format!(" AND state IN ({})", placeholders.join(", ")));
    }
    params.push(Value::Integer(limit));
    sql.push_str(&format!(" ORDER BY command_id LIMIT ?{}", params.len()));
    collect(conn, &sql, &params, command_row)
}

pub(super) fn command_events(conn: &Connection, id: &CommandId) -> Result<Vec<CommandEvent>> {
    if command(conn, id)?.is_none() {
        return Err(StoreError::not_found(ResourceKind::Command, id));
    }
    collect(
        conn,
        &format!("SELECT {COMMAND_EVENT_COLUMNS} FROM command_events WHERE command_id = ?1 ORDER BY seq"),
        &[text(id.to_string())],
        command_event_row,
    )
}

/// The columns [`command_event_row`] reads, first in a SELECT.
pub(super) const COMMAND_EVENT_COLUMNS: &str = "command_id, seq, at, state, actor, message";

pub(super) fn command_event_row(row: &Row<'_>) -> Result<CommandEvent> {
    CommandEventRow::<i64> {
        command_id: row.get(0)?,
        seq: row.get(1)?,
        at: row.get(2)?,
        state: row.get(3)?,
        actor: row.get(4)?,
        message: row.get(5)?,
    }
    .into_event()
}

pub(super) fn pool(conn: &Connection, name: &str) -> Result<Option<Pool>> {
    one(conn, &format!("SELECT {POOL_COLUMNS} WHERE name = ?1"), &[text(name)], pool_row)
}

pub(super) fn policy(conn: &Connection) -> Result<Option<StoredPolicy>> {
    one(conn, "SELECT name, document, updated_at, revision FROM policies WHERE id = 'active'", &[], |row| {
        PolicyRow::<i64> { name: row.get(0)?, document: row.get(1)?, updated_at: row.get(2)?, revision: row.get(3)? }
            .into_policy()
    })
}

pub(super) fn lease(conn: &Connection, name: &bosun_core::LeaseName) -> Result<Option<bosun_core::Lease>> {
    let sql = format!("SELECT {} FROM leases WHERE name = ?1", LeaseRow::<i64>::COLUMNS);
    one(conn, &sql, &[text(name.as_str())], lease_row)
}

/// A row of `LeaseRow::COLUMNS`.
pub(super) fn lease_row(row: &Row<'_>) -> Result<bosun_core::Lease> {
    LeaseRow::<i64> {
        name: row.get(0)?,
        holder: row.get(1)?,
        epoch: row.get(2)?,
        revision: row.get(3)?,
        renewals: row.get(4)?,
        acquired_at: row.get(5)?,
        renewed_at: row.get(6)?,
    }
    .into_lease()
}

pub(super) fn replicas(conn: &Connection) -> Result<Vec<bosun_core::ReplicaPresence>> {
    collect(conn, "SELECT replica_id, address, started_at, last_seen FROM replicas ORDER BY replica_id", &[], |row| {
        Ok(bosun_core::ReplicaPresence {
            replica_id: parse("replicas.replica_id", row.get_ref(0)?.as_str().unwrap_or_default())?,
            address: row.get(1)?,
            started_at: Timestamp::from_unix_micros(row.get(2)?),
            last_seen: Timestamp::from_unix_micros(row.get(3)?),
        })
    })
}

pub(super) fn list_pools(conn: &Connection) -> Result<Vec<Pool>> {
    collect(conn, &format!("SELECT {POOL_COLUMNS} ORDER BY name"), &[], pool_row)
}

pub(super) fn health_history(conn: &Connection, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>> {
    require_node(conn, node)?;
    collect(
        conn,
        &format!("SELECT {HEALTH_REPORT_COLUMNS} FROM health_reports WHERE node_id = ?1 ORDER BY id DESC LIMIT ?2"),
        &[text(node.as_str()), Value::Integer(i64::from(limit))],
        health_report_row,
    )
}

/// The columns [`health_report_row`] reads, first in a SELECT.
pub(super) const HEALTH_REPORT_COLUMNS: &str = "id, node_id, received_at, health, results, events";

pub(super) fn health_report_row(row: &Row<'_>) -> Result<StoredHealthReport> {
    HealthReportRow::<i64> {
        id: row.get(0)?,
        node_id: row.get(1)?,
        received_at: row.get(2)?,
        health: row.get(3)?,
        results: json(row, 4, "health_reports.results")?,
        events: json(row, 5, "health_reports.events")?,
    }
    .into_report()
}

pub(super) fn bootstrap_logs(conn: &Connection, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>> {
    collect(
        conn,
        &format!("SELECT {BOOTSTRAP_LOG_COLUMNS} FROM bootstrap_logs WHERE node_id = ?1 ORDER BY id DESC LIMIT ?2"),
        &[text(node.as_str()), Value::Integer(i64::from(limit))],
        bootstrap_log_row,
    )
}

/// The columns [`bootstrap_log_row`] reads, first in a SELECT.
pub(super) const BOOTSTRAP_LOG_COLUMNS: &str =
    "id, node_id, instance_id, pool, started_at, duration_ms, success, error, commands";

pub(super) fn bootstrap_log_row(row: &Row<'_>) -> Result<BootstrapLog> {
    BootstrapLogRow::<i64> {
        id: row.get(0)?,
        node_id: row.get(1)?,
        instance_id: row.get(2)?,
        pool: row.get(3)?,
        started_at: row.get(4)?,
        duration_ms: row.get(5)?,
        success: row.get(6)?,
        error: row.get(7)?,
        commands: json(row, 8, "bootstrap_logs.commands")?,
    }
    .into_log()
}

pub(super) fn list_changes(conn: &Connection, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>> {
    let mut sql = "SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes \
                   WHERE seq > ?1"
        .to_owned();
    let mut params = vec![Value::Integer(i64::try_from(filter.after_seq).unwrap_or(i64::MAX))];
    let mut bind = |sql: &mut String, clause: &str, value: Value| {
        params.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    };
    if let Some(up_to) = filter.up_to_seq {
        bind(&mut sql, "seq <=", Value::Integer(i64::try_from(up_to).unwrap_or(i64::MAX)));
    }
    if let Some(kind) = filter.kind {
        bind(&mut sql, "kind =", text(kind.as_str()));
    }
    if let Some(id) = &filter.resource_id {
        bind(&mut sql, "resource_id =", text(id.as_str()));
    }
    if let Some(actor) = &filter.actor {
        bind(&mut sql, "actor =", text(actor.to_string()));
    }
    params.push(Value::Integer(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", params.len()));
    collect(conn, &sql, &params, change_row)
}

/// The highest change sequence number ever issued (kept by AUTOINCREMENT even when the
/// newest records are compacted away).
pub(super) fn last_change_seq(conn: &Connection) -> Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// Up to `limit` heartbeats after node `after`, in node id order.
pub(super) fn heartbeats(conn: &Connection, after: Option<String>, limit: i64) -> Result<Vec<Heartbeat>> {
    collect(
        conn,
        "SELECT node_id, last_heartbeat FROM node_liveness WHERE node_id > ?1 ORDER BY node_id LIMIT ?2",
        &[text(after.unwrap_or_default()), Value::Integer(limit)],
        |row| {
            let id = row.get_ref(0)?.as_str().map_err(|e| StoreError::corrupt("node_liveness.node_id", e))?;
            Ok(Heartbeat { node_id: parse("node_liveness.node_id", id)?, at: Timestamp::from_unix_micros(row.get(1)?) })
        },
    )
}

pub(super) fn metric_samples(conn: &Connection, node: &NodeId, cutoff: i64) -> Result<Vec<MetricSample>> {
    require_node(conn, node)?;
    collect(
        conn,
        "SELECT node_id, at, cpu_percent, memory_percent, gpus FROM metric_samples \
         WHERE node_id = ?1 AND at >= ?2 ORDER BY at",
        &[text(node.as_str()), Value::Integer(cutoff)],
        |row| {
            SampleRow::<i64> {
                node_id: row.get(0)?,
                at: row.get(1)?,
                cpu_percent: row.get(2)?,
                memory_percent: row.get(3)?,
                gpus: json(row, 4, "metric_samples.gpus")?,
            }
            .into_sample()
        },
    )
}
