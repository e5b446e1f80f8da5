//! The PostgreSQL backend: for production and for several control-plane replicas.
//!
//! Pooled connections; compare-and-set reads lock their row (`FOR UPDATE`); change records
//! are appended at the end of each transaction under a transaction-level advisory lock, so
//! the change log's sequence order is commit order and readers never see a later record
//! before an earlier one. Soft-state batches commit with `synchronous_commit = off`: a
//! crash may lose the last flush of heartbeats, never hard state. Commits that append change
//! records notify the other processes on the database (`listener.rs`).

mod commit;
mod copy_rows;
mod inventory;
mod ledger;
mod listener;
mod maintenance;
mod transfer;
mod usage;

#[cfg(any(test, feature = "testing"))]
pub(crate) use listener::APPLICATION_NAME as LISTENER_APPLICATION_NAME;

use std::time::Duration;

use async_trait::async_trait;
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, BootstrapLog, ChangeRecord, Command, CommandEvent, CommandId, Heartbeat,
    Instance, InstanceId, Labels, LlmUsage, LlmUsageId, MetricSample, Node, NodeId, NodeMetadata, Pool, PoolName,
    Price, Remediation, ResourceKind, Revision, RunId, Runbook, RunbookName, Setting, StoredPolicy, TaskRun, Timestamp,
    ToolDefinition, UsageFilter, UsageRow,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{ConnectOptions, Connection as _, Postgres, QueryBuilder};

use crate::error::{Result, StoreError};
use crate::ledger::{ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall};
use crate::open::ConnectSettings;
use crate::query::{
    ChangeFilter, CommandFilter, InstanceFilter, NodeAfter, NodeFilter, NodeOrder, Page, PageRequest, command_key,
};
use crate::signals::ChangeSignals;
use crate::soft_state::{dedupe_heartbeats, dedupe_samples};
use crate::sql::rows::{
    BootstrapLogRow, ChangeRow, CommandEventRow, CommandRow, GpuRow, HealthReportRow, InstanceRow, NodeRow, PolicyRow,
    PoolRow, SampleRow,
};
use crate::sql::{SlowLog, map_err, parse, parse_opt, unsigned};
use crate::store::{
    ApprovalFilter, Backend, IntegrityFinding, PoolStats, RetentionPolicy, RetentionReport, Store, StoreCounts,
    StoreOptions,
};
use crate::write::{Committed, StoredHealthReport, WriteBatch};

/// The columns of a node row (`nodes n` and `node_liveness l`), in `node_from_row`'s order.
macro_rules! node_columns {
    () => {
        "SELECT n.node_id, n.provider, n.region, n.zone, n.instance_type, n.pool, n.status, n.status_reason, \
         n.status_changed_at, n.health, n.unhealthy_streak, n.labels, n.gpu_count, n.gpu_model, n.metadata, \
         n.registered_at, \
         n.last_health_report, n.revision, l.last_heartbeat, n.remediation "
    };
}
macro_rules! select_node {
    () => {
        concat!($crate::postgres::node_columns!(), "FROM nodes n LEFT JOIN node_liveness l ON l.node_id = n.node_id ")
    };
}
macro_rules! select_instance {
    () => {
        "SELECT instance_id, provider, provider_instance_id, region, zone, instance_type, pool, state, \
         status_message, node_id, labels, created_at, state_changed_at, ready_at, terminated_at, revision \
         FROM instances "
    };
}
macro_rules! select_command {
    () => {
        "SELECT command_id::text AS command_id, node_id, kind, custom_name, parameters, state, issued_by, reason, \
         issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, result, revision \
         FROM commands "
    };
}
macro_rules! select_change {
    () => {
        "SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes "
    };
}
pub(crate) use {node_columns, select_command, select_instance, select_node};

pub(crate) async fn connect(url: &url::Url, settings: &ConnectSettings) -> std::result::Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_url(url)?
        .application_name("bosun")
        // Statement text is logged by our own slow-statement log, by name only.
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
    // One direct connection first: a pool retries failed connects until its acquire
    // timeout and then reports only "timed out", hiding "connection refused" or
    // "authentication failed", which the operator needs to see.
    options.connect().await?.close().await?;
    PgPoolOptions::new()
        .max_connections(settings.postgres_max_connections)
        .acquire_timeout(settings.postgres_acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_with(options)
        .await
}

/// The PostgreSQL store.
#[derive(Debug)]
pub(crate) struct PostgresStore {
    pool: PgPool,
    options: StoreOptions,
    slow: SlowLog,
    /// Started by the first `change_signals`; stopped by `close` or when the store drops.
    listener: std::sync::Mutex<Option<listener::Listener>>,
}

impl PostgresStore {
    pub(crate) fn new(pool: PgPool, options: StoreOptions) -> Self {
        let slow = SlowLog { threshold: options.slow_statement };
        Self { pool, options, slow, listener: std::sync::Mutex::new(None) }
    }

    async fn node_exists(&self, id: &NodeId) -> Result<bool> {
        let row: Option<i32> = self
            .slow
            .run(
                "nodes.exists",
                sqlx::query_scalar("SELECT 1 FROM nodes WHERE node_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        Ok(row.is_some())
    }
}

/// Decodes a row of `select_node!` by position, without the driver's per-row type checks
/// (the query is ours and its column types are fixed): lists decode a hundred thousand of
/// these, and by-name, checked decoding costs several times more.
pub(super) fn node_from_row(row: &sqlx::postgres::PgRow) -> Result<Node> {
    use sqlx::Row as _;
    fn get<'r, T: sqlx::Decode<'r, Postgres>>(row: &'r sqlx::postgres::PgRow, index: usize) -> Result<T> {
        row.try_get_unchecked(index).map_err(|e| map_err(e, None))
    }
    Ok(Node {
        id: parse("nodes.node_id", get::<&str>(row, 0)?)?,
        provider: get(row, 1)?,
        region: get(row, 2)?,
        zone: get(row, 3)?,
        instance_type: get(row, 4)?,
        pool: parse_opt("nodes.pool", get::<Option<&str>>(row, 5)?)?,
        status: parse("nodes.status", get::<&str>(row, 6)?)?,
        status_reason: get(row, 7)?,
        status_changed_at: Timestamp::from_datetime(get(row, 8)?),
        health: parse("nodes.health", get::<&str>(row, 9)?)?,
        unhealthy_streak: unsigned("nodes.unhealthy_streak", get(row, 10)?)?,
        remediation: get::<Option<Json<Remediation>>>(row, 19)?.map(|json| json.0),
        labels: get::<Json<Labels>>(row, 11)?.0,
        gpu_count: unsigned("nodes.gpu_count", get(row, 12)?)?,
        gpu_model: get(row, 13)?,
        metadata: get::<Json<NodeMetadata>>(row, 14)?.0,
        registered_at: Timestamp::from_datetime(get(row, 15)?),
        last_health_report: get::<Option<DateTime<Utc>>>(row, 16)?.map(Timestamp::from_datetime),
        revision: Revision::new(unsigned("nodes.revision", get(row, 17)?)?)
            .ok_or_else(|| StoreError::corrupt("nodes.revision", "revision 0"))?,
        last_heartbeat: get::<Option<DateTime<Utc>>>(row, 18)?.map(Timestamp::from_datetime),
    })
}

pub(crate) fn time(t: Timestamp) -> DateTime<Utc> {
    t.as_datetime()
}

fn limit_param(limit: u32) -> i64 {
    i64::from(limit) + 1
}

fn labels_containing(terms: &bosun_core::LabelSelector) -> Json<&bosun_core::Labels> {
    Json(terms.as_labels())
}

/// Sets up a transaction that writes a batch of soft state (heartbeats, metric samples),
/// keyed by node: it need not wait for its WAL flush (a lost batch is refilled by the next
/// heartbeats), and it joins each of its few thousand rows to its table by index. The
/// planner would rather hash the whole table (`node_liveness`, 100,000 rows) for a batch of
/// 3,300: 56 ms against 30 ms, every flush of every replica.
async fn soft_state_transaction(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<()> {
    sqlx::raw_sql(
        "SET LOCAL synchronous_commit = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
    )
    .execute(&mut **tx)
    .await
    .map_err(|e| map_err(e, None))?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn commit(&self, batch: WriteBatch) -> Result<Committed> {
        commit::commit(&self.pool, &self.options, self.slow, batch).await
    }

    async fn node(&self, id: &NodeId) -> Result<Node> {
        let row: Option<NodeRow<DateTime<Utc>>> = self
            .slow
            .run(
                "nodes.get",
                sqlx::query_as(concat!(select_node!(), "WHERE n.node_id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?.into_node()
    }

    async fn node_gpus(&self, id: &NodeId) -> Result<Vec<Gpu>> {
        if !self.node_exists(id).await? {
            return Err(StoreError::not_found(ResourceKind::Node, id));
        }
        let rows: Vec<GpuRow> = self
            .slow
            .run(
                "node_gpus.list",
                sqlx::query_as(
                    "SELECT gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, cuda_version \
                     FROM node_gpus WHERE node_id = $1 ORDER BY gpu_index",
                )
                .bind(id.as_str())
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(GpuRow::into_gpu).collect()
    }

    async fn list_nodes_in(&self, order: NodeOrder, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>> {
        let limit = page.checked_limit()?;
        let after = page.start_after_node(order)?;
        let mut q = QueryBuilder::<Postgres>::new(concat!(select_node!(), "WHERE TRUE"));
        match after {
            Some(NodeAfter::Id(after)) => {
                q.push(" AND n.node_id > ").push_bind(after);
            }
            Some(NodeAfter::Changed(at, id)) => {
                q.push(" AND (n.status_changed_at, n.node_id) < (").push_bind(at.as_datetime());
                q.push(", ").push_bind(id).push(")");
            }
            None => {}
        }
        if let Some(status) = filter.status {
            q.push(" AND n.status = ").push_bind(status.as_str());
        }
        if let Some(health) = filter.health {
            q.push(" AND n.health = ").push_bind(health.as_str());
        }
        if !filter.id_contains.is_empty() {
            q.push(" AND strpos(n.node_id, ").push_bind(filter.id_contains.clone()).push(") > 0");
        }
        if let Some(pool) = &filter.pool {
            q.push(" AND n.pool = ").push_bind(pool.to_string());
        }
        if let Some(provider) = &filter.provider {
            q.push(" AND n.provider = ").push_bind(provider.clone());
        }
        if let Some(region) = &filter.region {
            q.push(" AND n.region = ").push_bind(region.clone());
        }
        if filter.labels.terms().next().is_some() {
            q.push(" AND n.labels @> ").push_bind(labels_containing(&filter.labels));
        }
        for key in filter.labels.required_keys() {
            q.push(" AND jsonb_exists(n.labels, ").push_bind(key.to_owned()).push(")");
        }
        q.push(match order {
            NodeOrder::Id => " ORDER BY n.node_id LIMIT ",
            NodeOrder::RecentlyChanged => " ORDER BY n.status_changed_at DESC, n.node_id DESC LIMIT ",
        });
        q.push_bind(limit_param(limit));
        let rows = self.slow.run("nodes.list", q.build().fetch_all(&self.pool)).await.map_err(|e| map_err(e, None))?;
        let nodes = rows.iter().map(node_from_row).collect::<Result<Vec<_>>>()?;
        Ok(order.page(nodes, limit))
    }

    async fn instance(&self, id: &InstanceId) -> Result<Instance> {
        let row: Option<InstanceRow<DateTime<Utc>>> = self
            .slow
            .run(
                "instances.get",
                sqlx::query_as(concat!(select_instance!(), "WHERE instance_id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?.into_instance()
    }

    async fn list_instances(&self, filter: &InstanceFilter, page: &PageRequest) -> Result<Page<Instance>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Instance)?;
        let mut q = QueryBuilder::<Postgres>::new(concat!(select_instance!(), "WHERE TRUE"));
        if let Some(after) = after {
            q.push(" AND instance_id > ").push_bind(after);
        }
        if !filter.states.is_empty() {
            let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
            q.push(" AND state = ANY(").push_bind(states).push(")");
        }
        if let Some(pool) = &filter.pool {
            q.push(" AND pool = ").push_bind(pool.to_string());
        }
        if let Some(provider) = &filter.provider {
            q.push(" AND provider = ").push_bind(provider.clone());
        }
        if let Some(region) = &filter.region {
            q.push(" AND region = ").push_bind(region.clone());
        }
        if let Some(node) = &filter.node_id {
            q.push(" AND node_id = ").push_bind(node.to_string());
        }
        if filter.labels.terms().next().is_some() {
            q.push(" AND labels @> ").push_bind(labels_containing(&filter.labels));
        }
        for key in filter.labels.required_keys() {
            q.push(" AND jsonb_exists(labels, ").push_bind(key.to_owned()).push(")");
        }
        q.push(" ORDER BY instance_id LIMIT ").push_bind(limit_param(limit));
        let rows: Vec<InstanceRow<DateTime<Utc>>> = self
            .slow
            .run("instances.list", q.build_query_as().fetch_all(&self.pool))
            .await
            .map_err(|e| map_err(e, None))?;
        let instances = rows.into_iter().map(InstanceRow::into_instance).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(instances, limit, ResourceKind::Instance, |i| i.id.to_string()))
    }

    async fn instance_for_node(&self, node: &NodeId) -> Result<Option<Instance>> {
        let row: Option<InstanceRow<DateTime<Utc>>> = self
            .slow
            .run(
                "instances.for_node",
                sqlx::query_as(concat!(
                    select_instance!(),
                    "WHERE node_id = $1 OR instance_id = $1 OR provider_instance_id = $1 \
                     ORDER BY state IN ('TERMINATED', 'FAILED'), created_at DESC, instance_id LIMIT 1"
                ))
                .bind(node.as_str())
                .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(InstanceRow::into_instance).transpose()
    }

    async fn command(&self, id: &CommandId) -> Result<Command> {
        let row: Option<CommandRow<DateTime<Utc>>> = self
            .slow
            .run(
                "commands.get",
                sqlx::query_as(concat!(select_command!(), "WHERE command_id = $1"))
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Command, id))?.into_command()
    }

    async fn list_commands(&self, filter: &CommandFilter, page: &PageRequest) -> Result<Page<Command>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Command)?;
        let mut q = QueryBuilder::<Postgres>::new(concat!(select_command!(), "WHERE TRUE"));
        if let Some(after) = after {
            let after: CommandId = after.parse()?;
            q.push(" AND command_id > ").push_bind(after.as_uuid());
        }
        if let Some(node) = &filter.node_id {
            q.push(" AND node_id = ").push_bind(node.to_string());
        }
        if !filter.states.is_empty() {
            let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
            q.push(" AND state = ANY(").push_bind(states).push(")");
        }
        if let Some(kind) = &filter.kind {
            q.push(" AND kind = ").push_bind(kind.kind_name());
            if let Some(name) = kind.custom_name() {
                q.push(" AND custom_name = ").push_bind(name.to_owned());
            }
        }
        q.push(" ORDER BY command_id LIMIT ").push_bind(limit_param(limit));
        let rows: Vec<CommandRow<DateTime<Utc>>> = self
            .slow
            .run("commands.list", q.build_query_as().fetch_all(&self.pool))
            .await
            .map_err(|e| map_err(e, None))?;
        let commands = rows.into_iter().map(CommandRow::into_command).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(commands, limit, ResourceKind::Command, |c| command_key(&c.id)))
    }

    async fn command_events(&self, id: &CommandId) -> Result<Vec<CommandEvent>> {
        self.command(id).await?;
        let rows: Vec<CommandEventRow<DateTime<Utc>>> = self
            .slow
            .run(
                "command_events.list",
                sqlx::query_as(
                    "SELECT command_id::text AS command_id, seq, at, state, actor, message FROM command_events \
                     WHERE command_id = $1 ORDER BY seq",
                )
                .bind(id.as_uuid())
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(CommandEventRow::into_event).collect()
    }

    async fn pool(&self, name: &PoolName) -> Result<Pool> {
        let row: Option<PoolRow<DateTime<Utc>>> = self
            .slow
            .run(
                "pools.get",
                sqlx::query_as(
                    "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools WHERE name = $1",
                )
                .bind(name.as_str())
                .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?.into_pool()
    }

    async fn list_pools(&self) -> Result<Vec<Pool>> {
        let rows: Vec<PoolRow<DateTime<Utc>>> = self
            .slow
            .run(
                "pools.list",
                sqlx::query_as(
                    "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools ORDER BY name",
                )
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(PoolRow::into_pool).collect()
    }

    async fn record_replica(&self, replica: &bosun_core::ReplicaPresence, forget_before: Timestamp) -> Result<()> {
        crate::rules::check_replica(replica)?;
        self.slow
            .run(
                "replicas.upsert",
                sqlx::query(
                    "WITH upsert AS (INSERT INTO replicas (replica_id, address, started_at, last_seen) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (replica_id) DO UPDATE SET address = excluded.address, \
                     started_at = excluded.started_at, last_seen = GREATEST(replicas.last_seen, excluded.last_seen)) \
                     DELETE FROM replicas WHERE last_seen < $5 AND replica_id <> $1",
                )
                .bind(replica.replica_id.as_str())
                .bind(&replica.address)
                .bind(time(replica.started_at))
                .bind(time(replica.last_seen))
                .bind(time(forget_before))
                .execute(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        Ok(())
    }

    async fn list_replicas(&self) -> Result<Vec<bosun_core::ReplicaPresence>> {
        let rows: Vec<(String, String, DateTime<Utc>, DateTime<Utc>)> = self
            .slow
            .run(
                "replicas.list",
                sqlx::query_as("SELECT replica_id, address, started_at, last_seen FROM replicas ORDER BY replica_id")
                    .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter()
            .map(|(id, address, started_at, last_seen)| {
                Ok(bosun_core::ReplicaPresence {
                    replica_id: parse("replicas.replica_id", &id)?,
                    address,
                    started_at: Timestamp::from_datetime(started_at),
                    last_seen: Timestamp::from_datetime(last_seen),
                })
            })
            .collect()
    }

    async fn lease(&self, name: &bosun_core::LeaseName) -> Result<Option<bosun_core::Lease>> {
        let row: Option<crate::sql::rows::LeaseRow<DateTime<Utc>>> = self
            .slow
            .run(
                "leases.get",
                sqlx::query_as(
                    "SELECT name, holder, epoch, revision, renewals, acquired_at, renewed_at FROM leases WHERE name = $1",
                )
                .bind(name.as_str())
                .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(crate::sql::rows::LeaseRow::into_lease).transpose()
    }

    async fn policy(&self) -> Result<Option<StoredPolicy>> {
        let row: Option<PolicyRow<DateTime<Utc>>> = self
            .slow
            .run(
                "policies.get",
                sqlx::query_as("SELECT name, document, updated_at, revision FROM policies WHERE id = $1")
                    .bind(StoredPolicy::RESOURCE_ID)
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(PolicyRow::into_policy).transpose()
    }

    async fn health_history(&self, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>> {
        if !self.node_exists(node).await? {
            return Err(StoreError::not_found(ResourceKind::Node, node));
        }
        let rows: Vec<HealthReportRow<DateTime<Utc>>> = self
            .slow
            .run(
                "health_reports.list",
                sqlx::query_as(
                    "SELECT id, node_id, received_at, health, results, events FROM health_reports \
                     WHERE node_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(node.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(HealthReportRow::into_report).collect()
    }

    async fn bootstrap_logs(&self, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>> {
        let rows: Vec<BootstrapLogRow<DateTime<Utc>>> = self
            .slow
            .run(
                "bootstrap_logs.list",
                sqlx::query_as(
                    "SELECT id, node_id, instance_id, pool, started_at, duration_ms, success, error, commands \
                     FROM bootstrap_logs WHERE node_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(node.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(BootstrapLogRow::into_log).collect()
    }

    async fn list_changes(&self, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>> {
        let mut q = QueryBuilder::<Postgres>::new(concat!(select_change!(), "WHERE seq > "));
        q.push_bind(i64::try_from(filter.after_seq).unwrap_or(i64::MAX));
        if let Some(up_to) = filter.up_to_seq {
            q.push(" AND seq <= ").push_bind(i64::try_from(up_to).unwrap_or(i64::MAX));
        }
        if let Some(kind) = filter.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(id) = &filter.resource_id {
            q.push(" AND resource_id = ").push_bind(id.clone());
        }
        if let Some(actor) = &filter.actor {
            q.push(" AND actor = ").push_bind(actor.to_string());
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let rows: Vec<ChangeRow<DateTime<Utc>>> = self
            .slow
            .run("changes.list", q.build_query_as().fetch_all(&self.pool))
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(ChangeRow::into_change).collect()
    }

    async fn last_change_seq(&self) -> Result<u64> {
        // Writers draw numbers from this row and hold its lock until they commit, so the
        // committed value is never below a number that can still appear. The counter, not
        // MAX(seq), because retention may have removed the newest records.
        let seq: i64 = self
            .slow
            .run(
                "changes.last_seq",
                sqlx::query_scalar("SELECT last_seq FROM change_log WHERE id = 1").fetch_one(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        unsigned("change_log.last_seq", seq)
    }

    async fn change_signals(&self) -> Option<ChangeSignals> {
        if self.pool.is_closed() {
            return None;
        }
        let mut listener = self.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let listener =
            listener.get_or_insert_with(|| listener::Listener::start((*self.pool.connect_options()).clone()));
        Some(listener.subscribe())
    }

    async fn list_heartbeats(&self, page: &PageRequest) -> Result<Page<Heartbeat>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Node)?.unwrap_or_default();
        let rows: Vec<(String, DateTime<Utc>)> = self
            .slow
            .run(
                "node_liveness.list",
                sqlx::query_as(
                    "SELECT node_id, last_heartbeat FROM node_liveness WHERE node_id > $1 ORDER BY node_id LIMIT $2",
                )
                .bind(after)
                .bind(limit_param(limit))
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        let heartbeats = rows
            .into_iter()
            .map(|(id, at)| {
                Ok(Heartbeat { node_id: parse("node_liveness.node_id", &id)?, at: Timestamp::from_datetime(at) })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(heartbeats, limit, ResourceKind::Node, |hb| hb.node_id.to_string()))
    }

    async fn runbook(&self, name: &RunbookName) -> Result<Runbook> {
        ledger::runbook(&self.pool, self.slow, name.as_str(), false)
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Runbook, name))
    }

    async fn list_runbooks(&self, page: &PageRequest) -> Result<Page<Runbook>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Runbook)?;
        let rows = ledger::list_runbooks(&self.pool, self.slow, after, limit_param(limit)).await?;
        Ok(Page::from_rows(rows, limit, ResourceKind::Runbook, |r| r.name.to_string()))
    }

    async fn run(&self, id: &RunId) -> Result<TaskRun> {
        ledger::run(&self.pool, self.slow, id, false).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Run, id))
    }

    async fn list_runs(&self, filter: &RunFilter, page: &PageRequest) -> Result<Page<TaskRun>> {
        let limit = page.checked_limit()?;
        let before = page.start_after(ResourceKind::Run)?.map(|key| key.parse::<RunId>()).transpose()?;
        let runs = ledger::list_runs(&self.pool, self.slow, filter, before, limit_param(limit)).await?;
        Ok(Page::from_rows(runs, limit, ResourceKind::Run, |run| run.id.to_string()))
    }

    async fn run_events(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredRunEvent>> {
        self.run(run).await?;
        ledger::run_events(&self.pool, self.slow, run, after, limit).await
    }

    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactInfo>> {
        self.run(run).await?;
        ledger::artifacts(&self.pool, self.slow, run).await
    }

    async fn artifact(&self, run: &RunId, name: &str) -> Result<(ArtifactInfo, Vec<u8>)> {
        ledger::artifact(&self.pool, self.slow, run, name)
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Run, format_args!("{run}/artifact {name:?}")))
    }

    async fn pricing(&self, current_at: Option<Timestamp>) -> Result<Vec<Price>> {
        usage::pricing(&self.pool, self.slow, current_at).await
    }

    async fn llm_usage(&self, id: &LlmUsageId) -> Result<LlmUsage> {
        usage::llm_usage(&self.pool, self.slow, id)
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::LlmUsage, id))
    }

    async fn usage_summary(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>> {
        usage::usage_summary(&self.pool, self.slow, filter).await
    }

    async fn setting(&self, name: &str) -> Result<Option<Setting>> {
        usage::setting(&self.pool, self.slow, name, false).await
    }

    async fn tools(&self) -> Result<Vec<ToolDefinition>> {
        ledger::tools(&self.pool, self.slow).await
    }

    async fn tool_calls(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredToolCall>> {
        ledger::tool_calls(&self.pool, self.slow, run, after, limit).await
    }

    async fn approval_policies(&self) -> Result<Vec<ApprovalPolicy>> {
        ledger::approval_policies(&self.pool, self.slow).await
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Approval> {
        ledger::approval(&self.pool, self.slow, id, false)
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Approval, id))
    }

    async fn list_approvals(&self, filter: &ApprovalFilter, limit: u32) -> Result<Vec<Approval>> {
        ledger::list_approvals(&self.pool, self.slow, filter, limit).await
    }

    async fn list_inventory(
        &self,
        filter: &crate::inventory::InventoryFilter,
        page: &PageRequest,
    ) -> Result<Page<bosun_core::inventory::InventoryRecord>> {
        filter.check()?;
        let limit = page.checked_limit()?;
        let kind = filter.kind.resource_kind();
        let after = page.start_after(kind)?.map(|id| crate::inventory::split_id(&id)).transpose()?;
        let mut conn = self.pool.acquire().await.map_err(|e| map_err(e, None))?;
        let mut rows = inventory::list(&mut conn, self.slow, filter, after, limit_param(limit)).await?;
        let sources = inventory::sources_of(&mut conn, self.slow, &rows).await?;
        crate::inventory::overlay_last_seen(&mut rows, &sources);
        Ok(Page::from_rows(rows, limit, kind, bosun_core::inventory::InventoryRecord::id))
    }

    async fn count_inventory(&self, filter: &crate::inventory::InventoryFilter) -> Result<u64> {
        filter.check()?;
        let mut conn = self.pool.acquire().await.map_err(|e| map_err(e, None))?;
        inventory::count(&mut conn, self.slow, filter).await
    }

    async fn inventory_record(
        &self,
        kind: bosun_core::inventory::InventoryKind,
        source: &bosun_core::SourceName,
        key: &str,
    ) -> Result<bosun_core::inventory::InventoryRecord> {
        let mut conn = self.pool.acquire().await.map_err(|e| map_err(e, None))?;
        let mut record = inventory::record(&mut conn, self.slow, kind, source, key).await?.ok_or_else(|| {
            StoreError::not_found(kind.resource_kind(), bosun_core::inventory::record_id(source, key))
        })?;
        let sources = inventory::sources_of(&mut conn, self.slow, std::slice::from_ref(&record)).await?;
        crate::inventory::overlay_last_seen(std::slice::from_mut(&mut record), &sources);
        Ok(record)
    }

    async fn inventory_sources(&self) -> Result<Vec<bosun_core::inventory::SourceStatus>> {
        let mut conn = self.pool.acquire().await.map_err(|e| map_err(e, None))?;
        inventory::sources(&mut conn, self.slow).await
    }

    async fn inventory_syncs(
        &self,
        source: Option<&bosun_core::SourceName>,
        limit: u32,
    ) -> Result<Vec<bosun_core::inventory::SyncRecord>> {
        let mut conn = self.pool.acquire().await.map_err(|e| map_err(e, None))?;
        inventory::syncs(&mut conn, self.slow, source, i64::from(limit)).await
    }

    async fn list_audit(&self, filter: &AuditFilter, after: u64, limit: u32) -> Result<Vec<StoredAuditEntry>> {
        ledger::list_audit(&self.pool, self.slow, filter, after, limit).await
    }

    async fn record_heartbeats(&self, batch: &[Heartbeat]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let latest = dedupe_heartbeats(batch);
        let ids: Vec<&str> = latest.iter().map(|hb| hb.node_id.as_str()).collect();
        let times: Vec<DateTime<Utc>> = latest.iter().map(|hb| time(hb.at)).collect();
        let mut tx = self.pool.begin().await.map_err(|e| map_err(e, None))?;
        soft_state_transaction(&mut tx).await?;
        // Nearly every heartbeat is for a node heard from before: a plain join-update is
        // several times cheaper than an upsert (no speculative insert per row). Nodes seen
        // for the first time get their row from the insert that follows.
        let updated = self
            .slow
            .run(
                "node_liveness.update_batch",
                sqlx::query(
                    "UPDATE node_liveness AS l SET last_heartbeat = GREATEST(l.last_heartbeat, u.at) \
                     FROM UNNEST($1::text[], $2::timestamptz[]) AS u (node_id, at) WHERE l.node_id = u.node_id",
                )
                .bind(&ids)
                .bind(&times)
                .execute(&mut *tx),
            )
            .await
            .map_err(|e| map_err(e, None))?
            .rows_affected();
        let inserted = if updated as usize == ids.len() {
            0
        } else {
            self.slow
                .run(
                    "node_liveness.insert_batch",
                    sqlx::query(
                        "INSERT INTO node_liveness (node_id, last_heartbeat) \
                         SELECT u.node_id, u.at FROM UNNEST($1::text[], $2::timestamptz[]) AS u (node_id, at) \
                         JOIN nodes n ON n.node_id = u.node_id \
                         WHERE NOT EXISTS (SELECT 1 FROM node_liveness l WHERE l.node_id = u.node_id) \
                         ON CONFLICT (node_id) DO UPDATE \
                         SET last_heartbeat = GREATEST(node_liveness.last_heartbeat, EXCLUDED.last_heartbeat)",
                    )
                    .bind(&ids)
                    .bind(&times)
                    .execute(&mut *tx),
                )
                .await
                .map_err(|e| map_err(e, None))?
                .rows_affected()
        };
        tx.commit().await.map_err(|e| map_err(e, None))?;
        Ok(updated + inserted)
    }

    async fn record_metric_samples(&self, batch: &[MetricSample]) -> Result<u64> {
        crate::rules::check_samples(batch)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let rows = dedupe_samples(batch, &self.options.samples);
        let ids: Vec<&str> = rows.iter().map(|(_, s)| s.node_id.as_str()).collect();
        let slots: Vec<i32> = rows.iter().map(|(slot, _)| i32::try_from(*slot).unwrap_or(i32::MAX)).collect();
        let times: Vec<DateTime<Utc>> = rows.iter().map(|(_, s)| time(s.at)).collect();
        let cpu: Vec<f64> = rows.iter().map(|(_, s)| s.cpu_percent).collect();
        let memory: Vec<f64> = rows.iter().map(|(_, s)| s.memory_percent).collect();
        // Sent as text and cast in the statement: a `Json` parameter goes out as `jsonb`,
        // which the server would parse into `jsonb` only to print it again for the column.
        let gpus: Vec<String> = rows
            .iter()
            .map(|(_, s)| serde_json::to_string(&s.gpus))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::invalid("gpus", e))?;
        let mut tx = self.pool.begin().await.map_err(|e| map_err(e, None))?;
        soft_state_transaction(&mut tx).await?;
        let result = self
            .slow
            .run(
                "metric_samples.upsert_batch",
                sqlx::query(
                    "INSERT INTO metric_samples (node_id, slot, at, cpu_percent, memory_percent, gpus) \
                     SELECT u.node_id, u.slot, u.at, u.cpu, u.memory, u.gpus::json \
                     FROM UNNEST($1::text[], $2::int4[], $3::timestamptz[], $4::float8[], $5::float8[], $6::text[]) \
                     AS u (node_id, slot, at, cpu, memory, gpus) \
                     JOIN nodes n ON n.node_id = u.node_id \
                     ON CONFLICT (node_id, slot) DO UPDATE SET at = EXCLUDED.at, cpu_percent = EXCLUDED.cpu_percent, \
                     memory_percent = EXCLUDED.memory_percent, gpus = EXCLUDED.gpus \
                     WHERE EXCLUDED.at >= metric_samples.at",
                )
                .bind(ids)
                .bind(slots)
                .bind(times)
                .bind(cpu)
                .bind(memory)
                .bind(gpus)
                .execute(&mut *tx),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        tx.commit().await.map_err(|e| map_err(e, None))?;
        Ok(result.rows_affected())
    }

    async fn metric_samples(&self, node: &NodeId, since: Timestamp) -> Result<Vec<MetricSample>> {
        if !self.node_exists(node).await? {
            return Err(StoreError::not_found(ResourceKind::Node, node));
        }
        let cutoff = since.max(self.options.clock.now() - self.options.samples.window);
        let rows: Vec<SampleRow<DateTime<Utc>>> = self
            .slow
            .run(
                "metric_samples.list",
                sqlx::query_as(
                    "SELECT node_id, at, cpu_percent, memory_percent, gpus FROM metric_samples \
                     WHERE node_id = $1 AND at >= $2 ORDER BY at",
                )
                .bind(node.as_str())
                .bind(time(cutoff))
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(SampleRow::into_sample).collect()
    }

    async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        maintenance::apply_retention(&self.pool, &self.options, self.slow, policy).await
    }

    async fn check_integrity(&self) -> Result<Vec<IntegrityFinding>> {
        maintenance::check_integrity(&self.pool).await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        maintenance::counts(&self.pool).await
    }

    async fn checkpoint(&self) -> Result<()> {
        sqlx::query("CHECKPOINT").execute(&self.pool).await.map_err(|e| map_err(e, None))?;
        Ok(())
    }

    async fn dump(&self, sink: tokio::sync::mpsc::Sender<crate::transfer::DumpMessage>) -> Result<()> {
        transfer::dump(&self.pool, &sink).await
    }

    async fn load(
        &self,
        source: tokio::sync::mpsc::Receiver<crate::transfer::LoadMessage>,
        target: crate::transfer::Target,
    ) -> Result<()> {
        transfer::load(&self.pool, source, target).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool).await.map_err(|e| map_err(e, None))?;
        Ok(())
    }

    async fn check_writable(&self) -> Result<()> {
        let (recovering, read_only): (bool, bool) =
            sqlx::query_as("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| map_err(e, None))?;
        if recovering {
            return Err(StoreError::unavailable(
                "the PostgreSQL server is a standby in recovery and takes no writes; point store.url at the primary",
            ));
        }
        if read_only {
            return Err(StoreError::unavailable(
                "the PostgreSQL session is read-only (default_transaction_read_only); the store takes no writes",
            ));
        }
        Ok(())
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        self.slow
            .run(
                "schema.version",
                sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations WHERE success").fetch_one(&self.pool),
            )
            .await
            .map_err(|e| map_err(e, None))
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max_size: self.pool.options().get_max_connections(),
        })
    }

    async fn close(&self) {
        drop(self.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        self.pool.close().await;
    }
}

// Schema management helpers used by `open`.

/// Applied migrations as `(version, applied at, checksum)`; empty before the first one.
pub(crate) async fn applied_migrations(pool: &PgPool) -> std::result::Result<Vec<(i64, String, Vec<u8>)>, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL").fetch_one(pool).await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, installed_on::text, checksum FROM schema_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// Every column, constraint and index of the public schema except the migrations
/// bookkeeping, as sorted lines.
pub(crate) async fn schema_fingerprint(pool: &PgPool) -> std::result::Result<Vec<String>, sqlx::Error> {
    let mut lines: Vec<String> = sqlx::query_scalar(
        "SELECT format('column %s.%s %s %s null=%s default=%s', table_name, column_name, data_type, \
                COALESCE(collation_name, ''), is_nullable, COALESCE(column_default, '')) \
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations' \
         UNION ALL \
         SELECT format('constraint %s %s: %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
           AND conrelid::regclass::text <> 'schema_migrations' \
         UNION ALL \
         SELECT format('index %s', indexdef) FROM pg_indexes \
         WHERE schemaname = 'public' AND tablename <> 'schema_migrations' \
         UNION ALL \
         SELECT format('table %s options=%s', c.relname, COALESCE(array_to_string(c.reloptions, ','), '')) \
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' \
           AND c.relname <> 'schema_migrations'",
    )
    .fetch_all(pool)
    .await?;
    lines.sort();
    Ok(lines)
}
