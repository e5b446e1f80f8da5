//! Applying a write batch in one `BEGIN IMMEDIATE` transaction on the writer connection.

use bosun_core::{BootstrapLog, ChangeOp, Command, HealthReport, Instance, Node, NodeId, Pool, ResourceKind, Revision};
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::types::Json;
use sqlx::{Sqlite, SqlitePool};

use super::micros;
use crate::error::{Result, StoreError};
use crate::rules::{self, CommandHeader, InstanceHeader, NodeHeader};
use crate::sql::rows::{CommandRow, NodeRow};
use crate::sql::{SlowLog, map_err, parse, unsigned};
use crate::store::StoreOptions;
use crate::write::{Committed, Write, WriteBatch, WriteOutcome};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Everything one commit needs besides the connection.
struct Cx<'a> {
    batch: &'a WriteBatch,
    actor: String,
    now: i64,
    options: &'a StoreOptions,
    slow: SlowLog,
}

pub(super) async fn commit(
    writer: &SqlitePool,
    options: &StoreOptions,
    slow: SlowLog,
    batch: WriteBatch,
) -> Result<Committed> {
    if batch.is_empty() {
        return Ok(Committed { outcomes: Vec::new() });
    }
    let cx = Cx { batch: &batch, actor: batch.actor.to_string(), now: micros(options.clock.now()), options, slow };
    let mut tx = slow.run("begin", writer.begin_with("BEGIN IMMEDIATE")).await.map_err(|e| map_err(e, None))?;
    let mut outcomes = Vec::with_capacity(batch.writes.len());
    for write in &batch.writes {
        // An error drops `tx`, which rolls everything back: no partial rows, no change
        // records.
        outcomes.push(apply(&mut tx, &cx, write).await?);
    }
    slow.run("commit", tx.commit()).await.map_err(|e| map_err(e, None))?;
    Ok(Committed { outcomes })
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn apply(tx: &mut SqliteConnection, cx: &Cx<'_>, write: &Write) -> Result<WriteOutcome> {
    match write {
        Write::CreateNode(node) => {
            rules::check_node_create(node)?;
            let id = node.id.as_str();
            cx.slow
                .run("nodes.insert", bind_node(sqlx::query(INSERT_NODE), node, Revision::FIRST).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, Some((ResourceKind::Node, id))))?;
            let mut stored = (**node).clone();
            stored.revision = Revision::FIRST;
            stored.last_heartbeat = None;
            change(tx, cx, ResourceKind::Node, id, ChangeOp::Created, Revision::FIRST, &stored).await
        }
        Write::UpdateNode { node, expected } => {
            let id = node.id.as_str();
            let header = node_header(tx, cx, &node.id).await?;
            rules::check_node_update(&header, node, *expected)?;
            let revision = expected.next();
            cx.slow
                .run("nodes.update", bind_node(sqlx::query(UPDATE_NODE), node, revision).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, None))?;
            let mut stored = (**node).clone();
            stored.revision = revision;
            change(tx, cx, ResourceKind::Node, id, ChangeOp::Updated, revision, &stored).await
        }
        Write::DeleteNode { id, expected } => delete_node(tx, cx, id, *expected).await,
        Write::CreateInstance(instance) => {
            rules::check_instance_create(instance)?;
            check_instance_refs(tx, cx, instance).await?;
            let id = instance.id.as_str();
            cx.slow
                .run(
                    "instances.insert",
                    bind_instance(sqlx::query(INSERT_INSTANCE), instance, Revision::FIRST).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, Some((ResourceKind::Instance, id))))?;
            let mut stored = (**instance).clone();
            stored.revision = Revision::FIRST;
            change(tx, cx, ResourceKind::Instance, id, ChangeOp::Created, Revision::FIRST, &stored).await
        }
        Write::UpdateInstance { instance, expected } => {
            let id = instance.id.as_str();
            let header = instance_header(tx, cx, id).await?;
            rules::check_instance_update(&header, instance, *expected)?;
            check_instance_refs(tx, cx, instance).await?;
            let revision = expected.next();
            cx.slow
                .run(
                    "instances.update",
                    bind_instance(sqlx::query(UPDATE_INSTANCE), instance, revision).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            let mut stored = (**instance).clone();
            stored.revision = revision;
            change(tx, cx, ResourceKind::Instance, id, ChangeOp::Updated, revision, &stored).await
        }
        Write::DeleteInstance { id, expected } => {
            let row: Option<crate::sql::rows::InstanceRow<i64>> = cx
                .slow
                .run(
                    "instances.get_for_delete",
                    sqlx::query_as(concat!(super::select_instance!(), "WHERE instance_id = ?"))
                        .bind(id.as_str())
                        .fetch_optional(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            let stored = row.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?.into_instance()?;
            if let Some(expected) = expected {
                rules::check_expected(ResourceKind::Instance, id.as_str(), stored.revision, *expected)?;
            }
            cx.slow
                .run(
                    "instances.delete",
                    sqlx::query("DELETE FROM instances WHERE instance_id = ?").bind(id.as_str()).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            change(tx, cx, ResourceKind::Instance, id.as_str(), ChangeOp::Deleted, stored.revision, &stored).await
        }
        Write::CreateCommand(command) => {
            rules::check_command_create(command)?;
            ensure_node(tx, cx, &command.node_id).await?;
            let id = command.id.to_string();
            cx.slow
                .run(
                    "commands.insert",
                    bind_command(sqlx::query(INSERT_COMMAND), command, Revision::FIRST).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, Some((ResourceKind::Command, &id))))?;
            let mut stored = (**command).clone();
            stored.revision = Revision::FIRST;
            command_event(tx, cx, &stored).await?;
            change(tx, cx, ResourceKind::Command, &id, ChangeOp::Created, Revision::FIRST, &stored).await
        }
        Write::UpdateCommand { command, expected } => {
            let id = command.id.to_string();
            let header = command_header(tx, cx, &id).await?;
            let adds_event = rules::check_command_update(&header, command, *expected)?;
            let revision = expected.next();
            cx.slow
                .run("commands.update", bind_command(sqlx::query(UPDATE_COMMAND), command, revision).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, None))?;
            let mut stored = (**command).clone();
            stored.revision = revision;
            if adds_event {
                command_event(tx, cx, &stored).await?;
            }
            change(tx, cx, ResourceKind::Command, &id, ChangeOp::Updated, revision, &stored).await
        }
        Write::CreatePool(pool) => {
            rules::check_pool(pool)?;
            let name = pool.name.as_str();
            cx.slow
                .run("pools.insert", bind_pool(sqlx::query(INSERT_POOL), pool, Revision::FIRST).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, Some((ResourceKind::Pool, name))))?;
            let mut stored = (**pool).clone();
            stored.revision = Revision::FIRST;
            change(tx, cx, ResourceKind::Pool, name, ChangeOp::Created, Revision::FIRST, &stored).await
        }
        Write::UpdatePool { pool, expected } => {
            let name = pool.name.as_str();
            let stored_revision = pool_revision(tx, cx, name).await?;
            rules::check_expected(ResourceKind::Pool, name, stored_revision, *expected)?;
            rules::check_pool(pool)?;
            let revision = expected.next();
            cx.slow
                .run("pools.update", bind_pool(sqlx::query(UPDATE_POOL), pool, revision).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, None))?;
            let mut stored = (**pool).clone();
            stored.revision = revision;
            change(tx, cx, ResourceKind::Pool, name, ChangeOp::Updated, revision, &stored).await
        }
        Write::DeletePool { name, expected } => {
            let row: Option<crate::sql::rows::PoolRow<i64>> = cx
                .slow
                .run(
                    "pools.get_for_delete",
                    sqlx::query_as(
                        "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools WHERE name = ?",
                    )
                    .bind(name.as_str())
                    .fetch_optional(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            let stored = row.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?.into_pool()?;
            if let Some(expected) = expected {
                rules::check_expected(ResourceKind::Pool, name.as_str(), stored.revision, *expected)?;
            }
            cx.slow
                .run(
                    "pools.delete",
                    sqlx::query("DELETE FROM pools WHERE name = ?").bind(name.as_str()).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            change(tx, cx, ResourceKind::Pool, name.as_str(), ChangeOp::Deleted, stored.revision, &stored).await
        }
        Write::AppendHealthReport(report) => append_health_report(tx, cx, report).await,
        Write::AppendBootstrapLog(log) => append_bootstrap_log(tx, cx, log).await,
    }
}

/// Appends the change record of a write; its sequence number is the write's outcome.
async fn change<T: serde::Serialize>(
    tx: &mut SqliteConnection,
    cx: &Cx<'_>,
    kind: ResourceKind,
    id: &str,
    op: ChangeOp,
    revision: Revision,
    resource: &T,
) -> Result<WriteOutcome> {
    let seq: i64 = cx
        .slow
        .run(
            "changes.insert",
            sqlx::query_scalar(
                "INSERT INTO changes (at, kind, resource_id, op, revision, actor, reason, resource) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(cx.now)
            .bind(kind.as_str())
            .bind(id)
            .bind(op.as_str())
            .bind(int(revision.get()))
            .bind(cx.actor.as_str())
            .bind(cx.batch.reason.as_str())
            .bind(Json(resource))
            .fetch_one(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(WriteOutcome::Resource { revision, change_seq: unsigned("changes.seq", seq)? })
}

async fn ensure_node(tx: &mut SqliteConnection, cx: &Cx<'_>, id: &NodeId) -> Result<()> {
    let found: Option<i64> = cx
        .slow
        .run(
            "nodes.exists",
            sqlx::query_scalar("SELECT 1 FROM nodes WHERE node_id = ?").bind(id.as_str()).fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    found.map(|_| ()).ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))
}

async fn node_header(tx: &mut SqliteConnection, cx: &Cx<'_>, id: &NodeId) -> Result<NodeHeader> {
    let row: Option<(i64, String, i64)> = cx
        .slow
        .run(
            "nodes.header",
            sqlx::query_as("SELECT revision, status, registered_at FROM nodes WHERE node_id = ?")
                .bind(id.as_str())
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let (revision, status, registered_at) = row.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?;
    Ok(NodeHeader {
        revision: Revision::new(unsigned("nodes.revision", revision)?)
            .ok_or_else(|| StoreError::corrupt("nodes.revision", "0"))?,
        status: parse("nodes.status", &status)?,
        registered_at: bosun_core::Timestamp::from_unix_micros(registered_at),
    })
}

async fn instance_header(tx: &mut SqliteConnection, cx: &Cx<'_>, id: &str) -> Result<InstanceHeader> {
    let row: Option<(i64, String, String, i64)> = cx
        .slow
        .run(
            "instances.header",
            sqlx::query_as("SELECT revision, state, provider, created_at FROM instances WHERE instance_id = ?")
                .bind(id)
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let (revision, state, provider, created_at) =
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?;
    Ok(InstanceHeader {
        revision: Revision::new(unsigned("instances.revision", revision)?)
            .ok_or_else(|| StoreError::corrupt("instances.revision", "0"))?,
        state: parse("instances.state", &state)?,
        provider,
        created_at: bosun_core::Timestamp::from_unix_micros(created_at),
    })
}

async fn command_header(tx: &mut SqliteConnection, cx: &Cx<'_>, id: &str) -> Result<CommandHeader> {
    let row: Option<CommandRow<i64>> = cx
        .slow
        .run(
            "commands.header",
            sqlx::query_as(concat!(super::select_command!(), "WHERE command_id = ?")).bind(id).fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let command = row.ok_or_else(|| StoreError::not_found(ResourceKind::Command, id))?.into_command()?;
    Ok(CommandHeader::from(&command))
}

async fn pool_revision(tx: &mut SqliteConnection, cx: &Cx<'_>, name: &str) -> Result<Revision> {
    let row: Option<i64> = cx
        .slow
        .run(
            "pools.revision",
            sqlx::query_scalar("SELECT revision FROM pools WHERE name = ?").bind(name).fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let revision = row.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?;
    Revision::new(unsigned("pools.revision", revision)?).ok_or_else(|| StoreError::corrupt("pools.revision", "0"))
}

/// An instance's node must exist and its provider id must be unique per provider.
async fn check_instance_refs(tx: &mut SqliteConnection, cx: &Cx<'_>, instance: &Instance) -> Result<()> {
    if let Some(node) = &instance.node_id {
        ensure_node(tx, cx, node).await?;
    }
    if let Some(pid) = &instance.provider_instance_id {
        let clash: Option<String> = cx
            .slow
            .run(
                "instances.provider_id_clash",
                sqlx::query_scalar(
                    "SELECT instance_id FROM instances WHERE provider = ? AND provider_instance_id = ? \
                     AND instance_id <> ? LIMIT 1",
                )
                .bind(&instance.provider)
                .bind(pid)
                .bind(instance.id.as_str())
                .fetch_optional(&mut *tx),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        if clash.is_some() {
            return Err(StoreError::already_exists(ResourceKind::Instance, format!("{}/{pid}", instance.provider)));
        }
    }
    Ok(())
}

async fn delete_node(
    tx: &mut SqliteConnection,
    cx: &Cx<'_>,
    id: &NodeId,
    expected: Option<Revision>,
) -> Result<WriteOutcome> {
    let row: Option<NodeRow<i64>> = cx
        .slow
        .run(
            "nodes.get_for_delete",
            sqlx::query_as(concat!(super::select_node!(), "WHERE n.node_id = ?"))
                .bind(id.as_str())
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let mut stored: Node = row.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?.into_node()?;
    if let Some(expected) = expected {
        rules::check_expected(ResourceKind::Node, id.as_str(), stored.revision, expected)?;
    }
    let linked: Option<String> = cx
        .slow
        .run(
            "instances.linked_to_node",
            sqlx::query_scalar("SELECT instance_id FROM instances WHERE node_id = ? ORDER BY instance_id LIMIT 1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    if let Some(instance) = linked {
        return Err(crate::memory::linked_instance_error(id, &parse("instances.instance_id", &instance)?));
    }
    // The node's commands go with it (ON DELETE CASCADE); record their deletion so the
    // change log stays a complete account of what exists.
    let commands: Vec<CommandRow<i64>> = cx
        .slow
        .run(
            "commands.of_node",
            sqlx::query_as(concat!(super::select_command!(), "WHERE node_id = ? ORDER BY command_id"))
                .bind(id.as_str())
                .fetch_all(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    for row in commands {
        let command: Command = row.into_command()?;
        change(tx, cx, ResourceKind::Command, &command.id.to_string(), ChangeOp::Deleted, command.revision, &command)
            .await?;
    }
    cx.slow
        .run("nodes.delete", sqlx::query("DELETE FROM nodes WHERE node_id = ?").bind(id.as_str()).execute(&mut *tx))
        .await
        .map_err(|e| map_err(e, None))?;
    stored.last_heartbeat = None;
    change(tx, cx, ResourceKind::Node, id.as_str(), ChangeOp::Deleted, stored.revision, &stored).await
}

async fn command_event(tx: &mut SqliteConnection, cx: &Cx<'_>, command: &Command) -> Result<()> {
    cx.slow
        .run(
            "command_events.insert",
            sqlx::query(
                "INSERT INTO command_events (command_id, seq, at, state, actor, message) \
                 SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM command_events WHERE command_id = ?1",
            )
            .bind(command.id.to_string())
            .bind(cx.now)
            .bind(command.state.as_str())
            .bind(cx.actor.as_str())
            .bind(cx.batch.reason.as_str())
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(())
}

async fn append_health_report(tx: &mut SqliteConnection, cx: &Cx<'_>, report: &HealthReport) -> Result<WriteOutcome> {
    ensure_node(tx, cx, &report.node_id).await?;
    let id: i64 = cx
        .slow
        .run(
            "health_reports.insert",
            sqlx::query_scalar(
                "INSERT INTO health_reports (node_id, received_at, health, results, events) \
                 VALUES (?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(report.node_id.as_str())
            .bind(micros(report.received_at))
            .bind(report.health.as_str())
            .bind(Json(&report.results))
            .bind(Json(&report.events))
            .fetch_one(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    cx.slow
        .run(
            "health_reports.trim",
            sqlx::query(
                "DELETE FROM health_reports WHERE node_id = ?1 AND id <= \
                 (SELECT id FROM health_reports WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )
            .bind(report.node_id.as_str())
            .bind(i64::from(cx.options.health_history_per_node))
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(WriteOutcome::Appended { id: unsigned("health_reports.id", id)? })
}

async fn append_bootstrap_log(tx: &mut SqliteConnection, cx: &Cx<'_>, log: &BootstrapLog) -> Result<WriteOutcome> {
    let id: i64 = cx
        .slow
        .run(
            "bootstrap_logs.insert",
            sqlx::query_scalar(
                "INSERT INTO bootstrap_logs (node_id, instance_id, pool, started_at, duration_ms, success, error, commands) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(log.node_id.as_str())
            .bind(log.instance_id.as_ref().map(|i| i.to_string()))
            .bind(log.pool.as_ref().map(|p| p.to_string()))
            .bind(micros(log.started_at))
            .bind(int(log.duration_ms))
            .bind(log.success)
            .bind(log.error.as_str())
            .bind(Json(&log.commands))
            .fetch_one(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    cx.slow
        .run(
            "bootstrap_logs.trim",
            sqlx::query(
                "DELETE FROM bootstrap_logs WHERE node_id = ?1 AND id <= \
                 (SELECT id FROM bootstrap_logs WHERE node_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )
            .bind(log.node_id.as_str())
            .bind(i64::from(cx.options.bootstrap_logs_per_node))
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(WriteOutcome::Appended { id: unsigned("bootstrap_logs.id", id)? })
}

// Parameters are numbered so the INSERT and the UPDATE of each table share one binding
// order (the `bind_*` functions below).

const INSERT_NODE: &str = "INSERT INTO nodes (node_id, provider, region, zone, instance_type, pool, status, \
    status_reason, status_changed_at, health, unhealthy_streak, labels, gpus, metadata, registered_at, \
    last_health_report, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
const UPDATE_NODE: &str = "UPDATE nodes SET provider = ?2, region = ?3, zone = ?4, instance_type = ?5, pool = ?6, \
    status = ?7, status_reason = ?8, status_changed_at = ?9, health = ?10, unhealthy_streak = ?11, labels = ?12, \
    gpus = ?13, metadata = ?14, registered_at = ?15, last_health_report = ?16, revision = ?17 WHERE node_id = ?1";

fn bind_node<'q>(q: Query<'q>, n: &'q Node, revision: Revision) -> Query<'q> {
    q.bind(n.id.as_str())
        .bind(n.provider.as_str())
        .bind(n.region.as_str())
        .bind(n.zone.as_str())
        .bind(n.instance_type.as_str())
        .bind(n.pool.as_ref().map(|p| p.as_str()))
        .bind(n.status.as_str())
        .bind(n.status_reason.as_str())
        .bind(micros(n.status_changed_at))
        .bind(n.health.as_str())
        .bind(i64::from(n.unhealthy_streak))
        .bind(Json(&n.labels))
        .bind(Json(&n.gpus))
        .bind(Json(&n.metadata))
        .bind(micros(n.registered_at))
        .bind(n.last_health_report.map(micros))
        .bind(int(revision.get()))
}

const INSERT_INSTANCE: &str = "INSERT INTO instances (instance_id, provider, provider_instance_id, region, zone, \
    instance_type, pool, state, status_message, node_id, labels, created_at, state_changed_at, ready_at, \
    terminated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";
const UPDATE_INSTANCE: &str = "UPDATE instances SET provider = ?2, provider_instance_id = ?3, region = ?4, \
    zone = ?5, instance_type = ?6, pool = ?7, state = ?8, status_message = ?9, node_id = ?10, labels = ?11, \
    created_at = ?12, state_changed_at = ?13, ready_at = ?14, terminated_at = ?15, revision = ?16 \
    WHERE instance_id = ?1";

fn bind_instance<'q>(q: Query<'q>, i: &'q Instance, revision: Revision) -> Query<'q> {
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
        .bind(micros(i.created_at))
        .bind(micros(i.state_changed_at))
        .bind(i.ready_at.map(micros))
        .bind(i.terminated_at.map(micros))
        .bind(int(revision.get()))
}

const INSERT_COMMAND: &str = "INSERT INTO commands (command_id, node_id, kind, custom_name, parameters, state, \
    issued_by, reason, issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, \
    result, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
const UPDATE_COMMAND: &str = "UPDATE commands SET node_id = ?2, kind = ?3, custom_name = ?4, parameters = ?5, \
    state = ?6, issued_by = ?7, reason = ?8, issued_at = ?9, deadline = ?10, delivered_at = ?11, \
    delivery_count = ?12, acked_at = ?13, finished_at = ?14, outcome_message = ?15, result = ?16, revision = ?17 \
    WHERE command_id = ?1";

fn bind_command<'q>(q: Query<'q>, c: &'q Command, revision: Revision) -> Query<'q> {
    q.bind(c.id.to_string())
        .bind(c.node_id.as_str())
        .bind(c.kind.kind_name())
        .bind(c.kind.custom_name())
        .bind(Json(&c.parameters))
        .bind(c.state.as_str())
        .bind(c.issued_by.to_string())
        .bind(c.reason.as_str())
        .bind(micros(c.issued_at))
        .bind(micros(c.deadline))
        .bind(c.delivered_at.map(micros))
        .bind(i64::from(c.delivery_count))
        .bind(c.acked_at.map(micros))
        .bind(c.finished_at.map(micros))
        .bind(c.outcome_message.as_str())
        .bind(Json(&c.result))
        .bind(int(revision.get()))
}

const INSERT_POOL: &str = "INSERT INTO pools (name, spec, last_scale_at, provider_backoff, last_decision, revision) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const UPDATE_POOL: &str = "UPDATE pools SET spec = ?2, last_scale_at = ?3, provider_backoff = ?4, \
    last_decision = ?5, revision = ?6 WHERE name = ?1";

fn bind_pool<'q>(q: Query<'q>, p: &'q Pool, revision: Revision) -> Query<'q> {
    q.bind(p.name.as_str())
        .bind(Json(&p.spec))
        .bind(p.status.last_scale_at.map(micros))
        .bind(Json(&p.status.provider_backoff))
        .bind(p.status.last_decision.as_ref().map(Json))
        .bind(int(revision.get()))
}
