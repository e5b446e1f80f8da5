//! Applying a write batch in one PostgreSQL transaction.
//!
//! Writes run first, each compare-and-set read locking its row. Their change records are
//! collected and appended last, in one statement, under a transaction-level advisory
//! lock: only one transaction at a time can hold unassigned-but-uncommitted sequence
//! numbers, so readers only ever see a gap-free prefix of the log in commit order, and the
//! lock is held only for the append and the commit.

use bosun_core::node::Gpu;
use bosun_core::{
    BootstrapLog, ChangeOp, Command, HealthReport, Instance, Node, NodeId, Pool, ResourceKind, Revision, StoredPolicy,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres};

use super::time;
use crate::error::{Result, StoreError};
use crate::rules::{self, CommandHeader, InstanceHeader, NodeHeader};
use crate::sql::rows::{CommandRow, InstanceRow, NodeRow, PolicyRow, PoolRow};
use crate::sql::{SlowLog, map_err, parse, to_json, unsigned};
use crate::store::StoreOptions;
use crate::write::{Committed, Write, WriteBatch, WriteOutcome};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// Key of the advisory lock that orders change-log appends ("bosun-ch" in ASCII).
pub(super) const CHANGE_LOG_LOCK: i64 = 0x626f_7375_6e2d_6368;

/// A change record waiting for the end of the transaction.
struct PendingChange {
    kind: ResourceKind,
    id: String,
    op: ChangeOp,
    revision: Revision,
    resource: String,
    /// The batch outcome whose `change_seq` this record provides.
    outcome: Option<usize>,
}

struct Cx<'a> {
    batch: &'a WriteBatch,
    actor: String,
    now: DateTime<Utc>,
    options: &'a StoreOptions,
    slow: SlowLog,
}

/// What one write produced: its outcome and its change records.
struct Applied {
    outcome: WriteOutcome,
    changes: Vec<PendingChange>,
}

impl Applied {
    fn resource<T: serde::Serialize>(
        kind: ResourceKind,
        id: &str,
        op: ChangeOp,
        revision: Revision,
        value: &T,
    ) -> Self {
        Applied {
            outcome: WriteOutcome::Resource { revision, change_seq: 0 },
            changes: vec![PendingChange {
                kind,
                id: id.to_owned(),
                op,
                revision,
                resource: to_json(value),
                outcome: None,
            }],
        }
    }
}

pub(super) async fn commit(
    pool: &PgPool,
    options: &StoreOptions,
    slow: SlowLog,
    batch: WriteBatch,
) -> Result<Committed> {
    if batch.is_empty() {
        return Ok(Committed { outcomes: Vec::new() });
    }
    let cx = Cx { batch: &batch, actor: batch.actor.to_string(), now: time(options.clock.now()), options, slow };
    let mut tx = slow.run("begin", pool.begin()).await.map_err(|e| map_err(e, None))?;
    let mut outcomes = Vec::with_capacity(batch.writes.len());
    let mut changes = Vec::new();
    for write in &batch.writes {
        // An error drops `tx`, which rolls everything back.
        let applied = apply(&mut tx, &cx, write).await?;
        let index = outcomes.len();
        let last = applied.changes.len().checked_sub(1);
        for (i, mut change) in applied.changes.into_iter().enumerate() {
            if Some(i) == last {
                change.outcome = Some(index);
            }
            changes.push(change);
        }
        outcomes.push(applied.outcome);
    }
    if !changes.is_empty() {
        append_changes(&mut tx, &cx, &changes, &mut outcomes).await?;
    }
    slow.run("commit", tx.commit()).await.map_err(|e| map_err(e, None))?;
    Ok(Committed { outcomes })
}

async fn append_changes(
    tx: &mut PgConnection,
    cx: &Cx<'_>,
    changes: &[PendingChange],
    outcomes: &mut [WriteOutcome],
) -> Result<()> {
    cx.slow
        .run("changes.lock", sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOG_LOCK).execute(&mut *tx))
        .await
        .map_err(|e| map_err(e, None))?;
    let kinds: Vec<&str> = changes.iter().map(|c| c.kind.as_str()).collect();
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    let ops: Vec<&str> = changes.iter().map(|c| c.op.as_str()).collect();
    let revisions: Vec<i64> = changes.iter().map(|c| int(c.revision.get())).collect();
    let resources: Vec<&str> = changes.iter().map(|c| c.resource.as_str()).collect();
    let mut seqs: Vec<i64> = cx
        .slow
        .run(
            "changes.insert",
            sqlx::query_scalar(
                "INSERT INTO changes (at, kind, resource_id, op, revision, actor, reason, resource) \
                 SELECT $1, u.kind, u.resource_id, u.op, u.revision, $2, $3, u.resource::jsonb \
                 FROM UNNEST($4::text[], $5::text[], $6::text[], $7::int8[], $8::text[]) \
                 WITH ORDINALITY AS u (kind, resource_id, op, revision, resource, ord) \
                 ORDER BY u.ord RETURNING seq",
            )
            .bind(cx.now)
            .bind(cx.actor.as_str())
            .bind(cx.batch.reason.as_str())
            .bind(kinds)
            .bind(ids)
            .bind(ops)
            .bind(revisions)
            .bind(resources)
            .fetch_all(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    // Identity values are drawn in row order, and nobody else draws while we hold the
    // lock: sorted, they line up with `changes`.
    seqs.sort_unstable();
    for (change, seq) in changes.iter().zip(seqs) {
        if let Some(index) = change.outcome
            && let WriteOutcome::Resource { change_seq, .. } = &mut outcomes[index]
        {
            *change_seq = unsigned("changes.seq", seq)?;
        }
    }
    Ok(())
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn apply(tx: &mut PgConnection, cx: &Cx<'_>, write: &Write) -> Result<Applied> {
    match write {
        Write::CreateNode { node, gpus } => {
            rules::check_node_create(node, gpus)?;
            let id = node.id.as_str();
            cx.slow
                .run("nodes.insert", bind_node(sqlx::query(INSERT_NODE), node, Revision::FIRST).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, Some((ResourceKind::Node, id))))?;
            insert_gpus(tx, cx, &node.id, gpus).await?;
            let mut stored = (**node).clone();
            stored.revision = Revision::FIRST;
            stored.last_heartbeat = None;
            Ok(Applied::resource(ResourceKind::Node, id, ChangeOp::Created, Revision::FIRST, &stored))
        }
        Write::UpdateNode { node, expected, gpus } => {
            let id = node.id.as_str();
            let header = node_header(tx, cx, &node.id).await?;
            rules::check_node_update(&header, node, *expected, gpus.as_deref())?;
            let revision = expected.next();
            cx.slow
                .run("nodes.update", bind_node(sqlx::query(UPDATE_NODE), node, revision).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, None))?;
            if let Some(gpus) = gpus {
                cx.slow
                    .run(
                        "node_gpus.delete",
                        sqlx::query("DELETE FROM node_gpus WHERE node_id = $1").bind(id).execute(&mut *tx),
                    )
                    .await
                    .map_err(|e| map_err(e, None))?;
                insert_gpus(tx, cx, &node.id, gpus).await?;
            }
            let mut stored = (**node).clone();
            stored.revision = revision;
            Ok(Applied::resource(ResourceKind::Node, id, ChangeOp::Updated, revision, &stored))
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
            Ok(Applied::resource(ResourceKind::Instance, id, ChangeOp::Created, Revision::FIRST, &stored))
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
            Ok(Applied::resource(ResourceKind::Instance, id, ChangeOp::Updated, revision, &stored))
        }
        Write::DeleteInstance { id, expected } => {
            let row: Option<InstanceRow<DateTime<Utc>>> = cx
                .slow
                .run(
                    "instances.get_for_delete",
                    sqlx::query_as(concat!(super::select_instance!(), "WHERE instance_id = $1 FOR UPDATE"))
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
                    sqlx::query("DELETE FROM instances WHERE instance_id = $1").bind(id.as_str()).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            Ok(Applied::resource(ResourceKind::Instance, id.as_str(), ChangeOp::Deleted, stored.revision, &stored))
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
            Ok(Applied::resource(ResourceKind::Command, &id, ChangeOp::Created, Revision::FIRST, &stored))
        }
        Write::UpdateCommand { command, expected } => {
            let id = command.id.to_string();
            let header = command_header(tx, cx, command).await?;
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
            Ok(Applied::resource(ResourceKind::Command, &id, ChangeOp::Updated, revision, &stored))
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
            Ok(Applied::resource(ResourceKind::Pool, name, ChangeOp::Created, Revision::FIRST, &stored))
        }
        Write::UpdatePool { pool, expected } => {
            let name = pool.name.as_str();
            let stored_revision: Option<i64> = cx
                .slow
                .run(
                    "pools.revision",
                    sqlx::query_scalar("SELECT revision FROM pools WHERE name = $1 FOR UPDATE")
                        .bind(name)
                        .fetch_optional(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            let stored_revision = stored_revision.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?;
            let stored_revision = Revision::new(unsigned("pools.revision", stored_revision)?)
                .ok_or_else(|| StoreError::corrupt("pools.revision", "0"))?;
            rules::check_expected(ResourceKind::Pool, name, stored_revision, *expected)?;
            rules::check_pool(pool)?;
            let revision = expected.next();
            cx.slow
                .run("pools.update", bind_pool(sqlx::query(UPDATE_POOL), pool, revision).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, None))?;
            let mut stored = (**pool).clone();
            stored.revision = revision;
            Ok(Applied::resource(ResourceKind::Pool, name, ChangeOp::Updated, revision, &stored))
        }
        Write::DeletePool { name, expected } => {
            let row: Option<PoolRow<DateTime<Utc>>> = cx
                .slow
                .run(
                    "pools.get_for_delete",
                    sqlx::query_as(
                        "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools \
                         WHERE name = $1 FOR UPDATE",
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
                    sqlx::query("DELETE FROM pools WHERE name = $1").bind(name.as_str()).execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?;
            Ok(Applied::resource(ResourceKind::Pool, name.as_str(), ChangeOp::Deleted, stored.revision, &stored))
        }
        Write::PutPolicy { policy, expected } => put_policy(tx, cx, policy, *expected).await,
        Write::DeletePolicy { expected } => {
            let id = StoredPolicy::RESOURCE_ID;
            let stored = stored_policy(tx, cx).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Policy, id))?;
            if let Some(expected) = expected {
                rules::check_expected(ResourceKind::Policy, id, stored.revision, *expected)?;
            }
            cx.slow
                .run("policies.delete", sqlx::query("DELETE FROM policies WHERE id = $1").bind(id).execute(&mut *tx))
                .await
                .map_err(|e| map_err(e, None))?;
            Ok(Applied::resource(ResourceKind::Policy, id, ChangeOp::Deleted, stored.revision, &stored))
        }
        Write::AppendHealthReport(report) => append_health_report(tx, cx, report).await,
        Write::AppendBootstrapLog(log) => append_bootstrap_log(tx, cx, log).await,
    }
}

/// The stored policy, locked for the rest of the transaction.
async fn stored_policy(tx: &mut PgConnection, cx: &Cx<'_>) -> Result<Option<StoredPolicy>> {
    let row: Option<PolicyRow<DateTime<Utc>>> = cx
        .slow
        .run(
            "policies.get_for_update",
            sqlx::query_as("SELECT name, document, updated_at, revision FROM policies WHERE id = $1 FOR UPDATE")
                .bind(StoredPolicy::RESOURCE_ID)
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(PolicyRow::into_policy).transpose()
}

async fn put_policy(
    tx: &mut PgConnection,
    cx: &Cx<'_>,
    policy: &StoredPolicy,
    expected: Option<Revision>,
) -> Result<Applied> {
    rules::check_policy(policy)?;
    let id = StoredPolicy::RESOURCE_ID;
    let write = |sql: &'static str, revision: Revision| {
        sqlx::query(sql)
            .bind(id)
            .bind(&policy.name)
            .bind(&policy.document)
            .bind(time(policy.updated_at))
            .bind(int(revision.get()))
    };
    let stored = match stored_policy(tx, cx).await? {
        Some(stored) => stored,
        None if expected.is_some() => return Err(StoreError::not_found(ResourceKind::Policy, id)),
        None => {
            // A concurrent first put may win the insert; then this one replaces its policy.
            let inserted = cx
                .slow
                .run(
                    "policies.insert",
                    write(
                        "INSERT INTO policies (id, name, document, updated_at, revision)                          VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                        Revision::FIRST,
                    )
                    .execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?
                .rows_affected();
            if inserted == 1 {
                let mut stored = policy.clone();
                stored.revision = Revision::FIRST;
                return Ok(Applied::resource(ResourceKind::Policy, id, ChangeOp::Created, Revision::FIRST, &stored));
            }
            stored_policy(tx, cx).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Policy, id))?
        }
    };
    if let Some(expected) = expected {
        rules::check_expected(ResourceKind::Policy, id, stored.revision, expected)?;
    }
    let revision = stored.revision.next();
    cx.slow
        .run(
            "policies.update",
            write(
                "UPDATE policies SET name = $2, document = $3, updated_at = $4, revision = $5 WHERE id = $1",
                revision,
            )
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let mut stored = policy.clone();
    stored.revision = revision;
    Ok(Applied::resource(ResourceKind::Policy, id, ChangeOp::Updated, revision, &stored))
}

async fn ensure_node(tx: &mut PgConnection, cx: &Cx<'_>, id: &NodeId) -> Result<()> {
    let found: Option<i32> = cx
        .slow
        .run(
            "nodes.exists",
            sqlx::query_scalar("SELECT 1 FROM nodes WHERE node_id = $1").bind(id.as_str()).fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    found.map(|_| ()).ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))
}

async fn node_header(tx: &mut PgConnection, cx: &Cx<'_>, id: &NodeId) -> Result<NodeHeader> {
    let row: Option<(i64, String, DateTime<Utc>, i64, String)> = cx
        .slow
        .run(
            "nodes.header",
            sqlx::query_as(
                "SELECT revision, status, registered_at, gpu_count, gpu_model FROM nodes WHERE node_id = $1 FOR UPDATE",
            )
            .bind(id.as_str())
            .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let (revision, status, registered_at, gpu_count, gpu_model) =
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?;
    Ok(NodeHeader {
        revision: Revision::new(unsigned("nodes.revision", revision)?)
            .ok_or_else(|| StoreError::corrupt("nodes.revision", "0"))?,
        status: parse("nodes.status", &status)?,
        registered_at: bosun_core::Timestamp::from_datetime(registered_at),
        gpu_count: unsigned("nodes.gpu_count", gpu_count)?,
        gpu_model,
    })
}

/// Writes a node's GPU inventory in one statement.
async fn insert_gpus(tx: &mut PgConnection, cx: &Cx<'_>, node: &NodeId, gpus: &[Gpu]) -> Result<()> {
    if gpus.is_empty() {
        return Ok(());
    }
    cx.slow
        .run(
            "node_gpus.insert",
            sqlx::query(
                "INSERT INTO node_gpus (node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, \
                 cuda_version) SELECT $1, g.\"index\", g.uuid, g.name, g.pci_bus_id, g.memory_bytes, \
                 g.driver_version, g.cuda_version FROM jsonb_to_recordset($2::jsonb) AS g (\"index\" bigint, \
                 uuid text, name text, pci_bus_id text, memory_bytes bigint, driver_version text, cuda_version text)",
            )
            .bind(node.as_str())
            .bind(Json(gpus))
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(())
}

async fn instance_header(tx: &mut PgConnection, cx: &Cx<'_>, id: &str) -> Result<InstanceHeader> {
    let row: Option<(i64, String, String, DateTime<Utc>)> = cx
        .slow
        .run(
            "instances.header",
            sqlx::query_as(
                "SELECT revision, state, provider, created_at FROM instances WHERE instance_id = $1 FOR UPDATE",
            )
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
        created_at: bosun_core::Timestamp::from_datetime(created_at),
    })
}

async fn command_header(tx: &mut PgConnection, cx: &Cx<'_>, command: &Command) -> Result<CommandHeader> {
    let row: Option<CommandRow<DateTime<Utc>>> = cx
        .slow
        .run(
            "commands.header",
            sqlx::query_as(concat!(super::select_command!(), "WHERE command_id = $1 FOR UPDATE"))
                .bind(command.id.as_uuid())
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let stored = row.ok_or_else(|| StoreError::not_found(ResourceKind::Command, command.id))?.into_command()?;
    Ok(CommandHeader::from(&stored))
}

async fn check_instance_refs(tx: &mut PgConnection, cx: &Cx<'_>, instance: &Instance) -> Result<()> {
    if let Some(node) = &instance.node_id {
        ensure_node(tx, cx, node).await?;
    }
    if let Some(pid) = &instance.provider_instance_id {
        let clash: Option<String> = cx
            .slow
            .run(
                "instances.provider_id_clash",
                sqlx::query_scalar(
                    "SELECT instance_id FROM instances WHERE provider = $1 AND provider_instance_id = $2 \
                     AND instance_id <> $3 LIMIT 1",
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

async fn delete_node(tx: &mut PgConnection, cx: &Cx<'_>, id: &NodeId, expected: Option<Revision>) -> Result<Applied> {
    let row: Option<NodeRow<DateTime<Utc>>> = cx
        .slow
        .run(
            "nodes.get_for_delete",
            sqlx::query_as(concat!(super::select_node!(), "WHERE n.node_id = $1 FOR UPDATE OF n"))
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
            sqlx::query_scalar("SELECT instance_id FROM instances WHERE node_id = $1 ORDER BY instance_id LIMIT 1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    if let Some(instance) = linked {
        return Err(crate::rules::linked_instance_error(id, &parse("instances.instance_id", &instance)?));
    }
    // The node's commands go with it (ON DELETE CASCADE); record their deletion so the
    // change log stays a complete account of what exists.
    let commands: Vec<CommandRow<DateTime<Utc>>> = cx
        .slow
        .run(
            "commands.of_node",
            sqlx::query_as(concat!(super::select_command!(), "WHERE node_id = $1 ORDER BY command_id"))
                .bind(id.as_str())
                .fetch_all(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let mut changes = Vec::with_capacity(commands.len() + 1);
    for row in commands {
        let command: Command = row.into_command()?;
        changes.push(PendingChange {
            kind: ResourceKind::Command,
            id: command.id.to_string(),
            op: ChangeOp::Deleted,
            revision: command.revision,
            resource: to_json(&command),
            outcome: None,
        });
    }
    cx.slow
        .run("nodes.delete", sqlx::query("DELETE FROM nodes WHERE node_id = $1").bind(id.as_str()).execute(&mut *tx))
        .await
        .map_err(|e| map_err(e, None))?;
    stored.last_heartbeat = None;
    changes.push(PendingChange {
        kind: ResourceKind::Node,
        id: id.to_string(),
        op: ChangeOp::Deleted,
        revision: stored.revision,
        resource: to_json(&stored),
        outcome: None,
    });
    Ok(Applied { outcome: WriteOutcome::Resource { revision: stored.revision, change_seq: 0 }, changes })
}

async fn command_event(tx: &mut PgConnection, cx: &Cx<'_>, command: &Command) -> Result<()> {
    cx.slow
        .run(
            "command_events.insert",
            sqlx::query(
                "INSERT INTO command_events (command_id, seq, at, state, actor, message) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM command_events WHERE command_id = $1",
            )
            .bind(command.id.as_uuid())
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

async fn append_health_report(tx: &mut PgConnection, cx: &Cx<'_>, report: &HealthReport) -> Result<Applied> {
    rules::check_health_report(report)?;
    ensure_node(tx, cx, &report.node_id).await?;
    let id: i64 = cx
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
            .fetch_one(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    cx.slow
        .run(
            "health_reports.trim",
            sqlx::query(
                "DELETE FROM health_reports WHERE node_id = $1 AND id <= \
                 (SELECT id FROM health_reports WHERE node_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            )
            .bind(report.node_id.as_str())
            .bind(i64::from(cx.options.health_history_per_node))
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(Applied { outcome: WriteOutcome::Appended { id: unsigned("health_reports.id", id)? }, changes: Vec::new() })
}

async fn append_bootstrap_log(tx: &mut PgConnection, cx: &Cx<'_>, log: &BootstrapLog) -> Result<Applied> {
    let id: i64 = cx
        .slow
        .run(
            "bootstrap_logs.insert",
            sqlx::query_scalar(
                "INSERT INTO bootstrap_logs (node_id, instance_id, pool, started_at, duration_ms, success, error, commands) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(log.node_id.as_str())
            .bind(log.instance_id.as_ref().map(|i| i.to_string()))
            .bind(log.pool.as_ref().map(|p| p.to_string()))
            .bind(time(log.started_at))
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
                "DELETE FROM bootstrap_logs WHERE node_id = $1 AND id <= \
                 (SELECT id FROM bootstrap_logs WHERE node_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            )
            .bind(log.node_id.as_str())
            .bind(i64::from(cx.options.bootstrap_logs_per_node))
            .execute(&mut *tx),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    Ok(Applied { outcome: WriteOutcome::Appended { id: unsigned("bootstrap_logs.id", id)? }, changes: Vec::new() })
}

const INSERT_NODE: &str = "INSERT INTO nodes (node_id, provider, region, zone, instance_type, pool, status, \
    status_reason, status_changed_at, health, unhealthy_streak, labels, gpu_count, gpu_model, metadata, \
    registered_at, last_health_report, revision, remediation) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";
const UPDATE_NODE: &str = "UPDATE nodes SET provider = $2, region = $3, zone = $4, instance_type = $5, pool = $6, \
    status = $7, status_reason = $8, status_changed_at = $9, health = $10, unhealthy_streak = $11, labels = $12, \
    gpu_count = $13, gpu_model = $14, metadata = $15, registered_at = $16, last_health_report = $17, revision = $18, \
    remediation = $19 WHERE node_id = $1";

fn bind_node<'q>(q: Query<'q>, n: &'q Node, revision: Revision) -> Query<'q> {
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
        .bind(int(revision.get()))
        .bind(n.remediation.as_ref().map(Json))
}

const INSERT_INSTANCE: &str = "INSERT INTO instances (instance_id, provider, provider_instance_id, region, zone, \
    instance_type, pool, state, status_message, node_id, labels, created_at, state_changed_at, ready_at, \
    terminated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
const UPDATE_INSTANCE: &str = "UPDATE instances SET provider = $2, provider_instance_id = $3, region = $4, \
    zone = $5, instance_type = $6, pool = $7, state = $8, status_message = $9, node_id = $10, labels = $11, \
    created_at = $12, state_changed_at = $13, ready_at = $14, terminated_at = $15, revision = $16 \
    WHERE instance_id = $1";

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
        .bind(time(i.created_at))
        .bind(time(i.state_changed_at))
        .bind(i.ready_at.map(time))
        .bind(i.terminated_at.map(time))
        .bind(int(revision.get()))
}

const INSERT_COMMAND: &str = "INSERT INTO commands (command_id, node_id, kind, custom_name, parameters, state, \
    issued_by, reason, issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, \
    result, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
const UPDATE_COMMAND: &str = "UPDATE commands SET node_id = $2, kind = $3, custom_name = $4, parameters = $5, \
    state = $6, issued_by = $7, reason = $8, issued_at = $9, deadline = $10, delivered_at = $11, \
    delivery_count = $12, acked_at = $13, finished_at = $14, outcome_message = $15, result = $16, revision = $17 \
    WHERE command_id = $1";

fn bind_command<'q>(q: Query<'q>, c: &'q Command, revision: Revision) -> Query<'q> {
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
        .bind(int(revision.get()))
}

const INSERT_POOL: &str = "INSERT INTO pools (name, spec, last_scale_at, provider_backoff, last_decision, revision) \
    VALUES ($1, $2, $3, $4, $5, $6)";
const UPDATE_POOL: &str = "UPDATE pools SET spec = $2, last_scale_at = $3, provider_backoff = $4, \
    last_decision = $5, revision = $6 WHERE name = $1";

fn bind_pool<'q>(q: Query<'q>, p: &'q Pool, revision: Revision) -> Query<'q> {
    q.bind(p.name.as_str())
        .bind(Json(&p.spec))
        .bind(p.status.last_scale_at.map(time))
        .bind(Json(&p.status.provider_backoff))
        .bind(p.status.last_decision.as_ref().map(Json))
        .bind(int(revision.get()))
}
