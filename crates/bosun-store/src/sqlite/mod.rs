//! The SQLite backend: the embedded default.
//!
//! One writer connection (every write transaction is `BEGIN IMMEDIATE` on it, so writers
//! queue in the pool instead of failing with `SQLITE_BUSY`) and a small pool of readers,
//! which WAL mode lets run beside the writer. Foreign keys are on; commits are durable
//! against process crashes and, with `synchronous=FULL` (the default), power loss.

mod commit;
mod maintenance;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bosun_core::{
    BootstrapLog, ChangeRecord, Command, CommandEvent, CommandId, Heartbeat, Instance, InstanceId, MetricSample, Node,
    NodeId, Pool, PoolName, ResourceKind, Timestamp,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, QueryBuilder, Sqlite};

use crate::error::{Result, StoreError};
use crate::memory::{dedupe_heartbeats, dedupe_samples};
use crate::query::{ChangeFilter, CommandFilter, InstanceFilter, NodeFilter, Page, PageRequest, command_key};
use crate::sql::rows::{
    BootstrapLogRow, ChangeRow, CommandEventRow, CommandRow, HealthReportRow, InstanceRow, NodeRow, PoolRow, SampleRow,
};
use crate::sql::{SlowLog, label_path, map_err, to_json};
use crate::store::{
    Backend, IntegrityFinding, PoolStats, RetentionPolicy, RetentionReport, Store, StoreCounts, StoreOptions,
};
use crate::write::{Committed, StoredHealthReport, WriteBatch};

/// `SELECT` of a full node row; the `WHERE` clause is appended.
macro_rules! select_node {
    () => {
        "SELECT n.node_id, n.provider, n.region, n.zone, n.instance_type, n.pool, n.status, n.status_reason, \
         n.status_changed_at, n.health, n.unhealthy_streak, n.labels, n.gpus, n.metadata, n.registered_at, \
         n.last_health_report, n.revision, l.last_heartbeat \
         FROM nodes n LEFT JOIN node_liveness l ON l.node_id = n.node_id "
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
        "SELECT command_id, node_id, kind, custom_name, parameters, state, issued_by, reason, issued_at, deadline, \
         delivered_at, delivery_count, acked_at, finished_at, outcome_message, result, revision FROM commands "
    };
}
macro_rules! select_change {
    () => {
        "SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes "
    };
}
pub(crate) use {select_command, select_instance, select_node};

/// How durable each commit is. FULL fsyncs the WAL on every commit (no acknowledged write
/// lost even on power loss); NORMAL only at checkpoints (safe against process crashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteDurability {
    #[default]
    Full,
    Normal,
}

/// The two pools of one SQLite database.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePools {
    /// Exactly one connection: SQLite allows one writer at a time.
    pub writer: SqlitePool,
    pub readers: SqlitePool,
}

const READERS: u32 = 4;

/// Opens (creating if needed) the database file at `path`.
pub(crate) async fn connect(
    path: &Path,
    durability: SqliteDurability,
) -> std::result::Result<SqlitePools, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            SqliteDurability::Full => SqliteSynchronous::Full,
            SqliteDurability::Normal => SqliteSynchronous::Normal,
        })
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .pragma("temp_store", "memory")
        // Statement text is logged by our own slow-statement log, by name only.
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .idle_timeout(None)
        .connect_with(options.clone())
        .await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(READERS)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?;
    Ok(SqlitePools { writer, readers })
}

/// The SQLite store.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    pools: SqlitePools,
    options: StoreOptions,
    slow: SlowLog,
}

impl SqliteStore {
    pub(crate) fn new(pools: SqlitePools, options: StoreOptions) -> Self {
        let slow = SlowLog { threshold: options.slow_statement };
        Self { pools, options, slow }
    }

    async fn node_exists(&self, id: &NodeId) -> Result<bool> {
        let row: Option<i64> = self
            .slow
            .run(
                "nodes.exists",
                sqlx::query_scalar("SELECT 1 FROM nodes WHERE node_id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        Ok(row.is_some())
    }
}

fn micros(t: Timestamp) -> i64 {
    t.unix_micros()
}

fn limit_param(limit: u32) -> i64 {
    i64::from(limit) + 1
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn commit(&self, batch: WriteBatch) -> Result<Committed> {
        commit::commit(&self.pools.writer, &self.options, self.slow, batch).await
    }

    async fn node(&self, id: &NodeId) -> Result<Node> {
        let row: Option<NodeRow<i64>> = self
            .slow
            .run(
                "nodes.get",
                sqlx::query_as(concat!(select_node!(), "WHERE n.node_id = ?"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?.into_node()
    }

    async fn list_nodes(&self, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Node)?;
        let mut q = QueryBuilder::<Sqlite>::new(concat!(select_node!(), "WHERE 1 = 1"));
        if let Some(after) = after {
            q.push(" AND n.node_id > ").push_bind(after);
        }
        if let Some(status) = filter.status {
            q.push(" AND n.status = ").push_bind(status.as_str());
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
        for (key, value) in filter.labels.terms() {
            q.push(" AND json_extract(n.labels, ").push_bind(label_path(key)).push(") = ").push_bind(value.to_owned());
        }
        q.push(" ORDER BY n.node_id LIMIT ").push_bind(limit_param(limit));
        let rows: Vec<NodeRow<i64>> = self
            .slow
            .run("nodes.list", q.build_query_as().fetch_all(&self.pools.readers))
            .await
            .map_err(|e| map_err(e, None))?;
        let nodes = rows.into_iter().map(NodeRow::into_node).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(nodes, limit, ResourceKind::Node, |n| n.id.to_string()))
    }

    async fn instance(&self, id: &InstanceId) -> Result<Instance> {
        let row: Option<InstanceRow<i64>> = self
            .slow
            .run(
                "instances.get",
                sqlx::query_as(concat!(select_instance!(), "WHERE instance_id = ?"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?.into_instance()
    }

    async fn list_instances(&self, filter: &InstanceFilter, page: &PageRequest) -> Result<Page<Instance>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Instance)?;
        let mut q = QueryBuilder::<Sqlite>::new(concat!(select_instance!(), "WHERE 1 = 1"));
        if let Some(after) = after {
            q.push(" AND instance_id > ").push_bind(after);
        }
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut states = q.separated(", ");
            for state in &filter.states {
                states.push_bind(state.as_str());
            }
            q.push(")");
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
        for (key, value) in filter.labels.terms() {
            q.push(" AND json_extract(labels, ").push_bind(label_path(key)).push(") = ").push_bind(value.to_owned());
        }
        q.push(" ORDER BY instance_id LIMIT ").push_bind(limit_param(limit));
        let rows: Vec<InstanceRow<i64>> = self
            .slow
            .run("instances.list", q.build_query_as().fetch_all(&self.pools.readers))
            .await
            .map_err(|e| map_err(e, None))?;
        let instances = rows.into_iter().map(InstanceRow::into_instance).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(instances, limit, ResourceKind::Instance, |i| i.id.to_string()))
    }

    async fn instance_for_node(&self, node: &NodeId) -> Result<Option<Instance>> {
        let row: Option<InstanceRow<i64>> = self
            .slow
            .run(
                "instances.for_node",
                sqlx::query_as(concat!(
                    select_instance!(),
                    "WHERE node_id = ?1 OR instance_id = ?1 OR provider_instance_id = ?1 \
                     ORDER BY state IN ('TERMINATED', 'FAILED'), created_at DESC, instance_id LIMIT 1"
                ))
                .bind(node.as_str())
                .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.map(InstanceRow::into_instance).transpose()
    }

    async fn command(&self, id: &CommandId) -> Result<Command> {
        let row: Option<CommandRow<i64>> = self
            .slow
            .run(
                "commands.get",
                sqlx::query_as(concat!(select_command!(), "WHERE command_id = ?"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Command, id))?.into_command()
    }

    async fn list_commands(&self, filter: &CommandFilter, page: &PageRequest) -> Result<Page<Command>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Command)?;
        let mut q = QueryBuilder::<Sqlite>::new(concat!(select_command!(), "WHERE 1 = 1"));
        if let Some(after) = after {
            q.push(" AND command_id > ").push_bind(after);
        }
        if let Some(node) = &filter.node_id {
            q.push(" AND node_id = ").push_bind(node.to_string());
        }
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut states = q.separated(", ");
            for state in &filter.states {
                states.push_bind(state.as_str());
            }
            q.push(")");
        }
        if let Some(kind) = &filter.kind {
            q.push(" AND kind = ").push_bind(kind.kind_name());
            if let Some(name) = kind.custom_name() {
                q.push(" AND custom_name = ").push_bind(name.to_owned());
            }
        }
        q.push(" ORDER BY command_id LIMIT ").push_bind(limit_param(limit));
        let rows: Vec<CommandRow<i64>> = self
            .slow
            .run("commands.list", q.build_query_as().fetch_all(&self.pools.readers))
            .await
            .map_err(|e| map_err(e, None))?;
        let commands = rows.into_iter().map(CommandRow::into_command).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(commands, limit, ResourceKind::Command, |c| command_key(&c.id)))
    }

    async fn command_events(&self, id: &CommandId) -> Result<Vec<CommandEvent>> {
        self.command(id).await?;
        let rows: Vec<CommandEventRow<i64>> = self
            .slow
            .run(
                "command_events.list",
                sqlx::query_as(
                    "SELECT command_id, seq, at, state, actor, message FROM command_events \
                     WHERE command_id = ? ORDER BY seq",
                )
                .bind(id.to_string())
                .fetch_all(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(CommandEventRow::into_event).collect()
    }

    async fn pool(&self, name: &PoolName) -> Result<Pool> {
        let row: Option<PoolRow<i64>> = self
            .slow
            .run(
                "pools.get",
                sqlx::query_as(
                    "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools WHERE name = ?",
                )
                .bind(name.as_str())
                .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        row.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?.into_pool()
    }

    async fn list_pools(&self) -> Result<Vec<Pool>> {
        let rows: Vec<PoolRow<i64>> = self
            .slow
            .run(
                "pools.list",
                sqlx::query_as(
                    "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools ORDER BY name",
                )
                .fetch_all(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(PoolRow::into_pool).collect()
    }

    async fn health_history(&self, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>> {
        if !self.node_exists(node).await? {
            return Err(StoreError::not_found(ResourceKind::Node, node));
        }
        let rows: Vec<HealthReportRow<i64>> = self
            .slow
            .run(
                "health_reports.list",
                sqlx::query_as(
                    "SELECT id, node_id, received_at, health, results, events FROM health_reports \
                     WHERE node_id = ? ORDER BY id DESC LIMIT ?",
                )
                .bind(node.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(HealthReportRow::into_report).collect()
    }

    async fn bootstrap_logs(&self, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>> {
        let rows: Vec<BootstrapLogRow<i64>> = self
            .slow
            .run(
                "bootstrap_logs.list",
                sqlx::query_as(
                    "SELECT id, node_id, instance_id, pool, started_at, duration_ms, success, error, commands \
                     FROM bootstrap_logs WHERE node_id = ? ORDER BY id DESC LIMIT ?",
                )
                .bind(node.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(BootstrapLogRow::into_log).collect()
    }

    async fn list_changes(&self, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new(concat!(select_change!(), "WHERE seq > "));
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
        let rows: Vec<ChangeRow<i64>> = self
            .slow
            .run("changes.list", q.build_query_as().fetch_all(&self.pools.readers))
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(ChangeRow::into_change).collect()
    }

    async fn last_change_seq(&self) -> Result<u64> {
        // sqlite_sequence remembers the highest seq ever issued, even if compacted away.
        let seq: Option<i64> = self
            .slow
            .run(
                "changes.last_seq",
                sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
                    .fetch_optional(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
    }

    async fn record_heartbeats(&self, batch: &[Heartbeat]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let latest = dedupe_heartbeats(batch);
        let rows: Vec<(&str, i64)> = latest.iter().map(|hb| (hb.node_id.as_str(), micros(hb.at))).collect();
        let payload = to_json(&rows);
        let mut tx = self.pools.writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| map_err(e, None))?;
        let result = self
            .slow
            .run(
                "node_liveness.upsert_batch",
                sqlx::query(
                    "INSERT INTO node_liveness (node_id, last_heartbeat) \
                     SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?1) AS j \
                     JOIN nodes n ON n.node_id = (j.value ->> 0) WHERE true \
                     ON CONFLICT (node_id) DO UPDATE SET last_heartbeat = MAX(last_heartbeat, excluded.last_heartbeat)",
                )
                .bind(payload)
                .execute(&mut *tx),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        tx.commit().await.map_err(|e| map_err(e, None))?;
        Ok(result.rows_affected())
    }

    async fn record_metric_samples(&self, batch: &[MetricSample]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let rows: Vec<_> = dedupe_samples(batch, &self.options.samples)
            .into_iter()
            .map(|(slot, s)| (s.node_id.as_str(), slot, micros(s.at), s.cpu_percent, s.memory_percent, &s.gpus))
            .collect();
        let payload = to_json(&rows);
        let mut tx = self.pools.writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| map_err(e, None))?;
        let result = self
            .slow
            .run(
                "metric_samples.upsert_batch",
                sqlx::query(
                    "INSERT INTO metric_samples (node_id, slot, at, cpu_percent, memory_percent, gpus) \
                     SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value -> 5 \
                     FROM json_each(?1) AS j JOIN nodes n ON n.node_id = (j.value ->> 0) WHERE true \
                     ON CONFLICT (node_id, slot) DO UPDATE SET at = excluded.at, cpu_percent = excluded.cpu_percent, \
                     memory_percent = excluded.memory_percent, gpus = excluded.gpus \
                     WHERE excluded.at >= metric_samples.at",
                )
                .bind(payload)
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
        let rows: Vec<SampleRow<i64>> = self
            .slow
            .run(
                "metric_samples.list",
                sqlx::query_as(
                    "SELECT node_id, at, cpu_percent, memory_percent, gpus FROM metric_samples \
                     WHERE node_id = ? AND at >= ? ORDER BY at",
                )
                .bind(node.as_str())
                .bind(micros(cutoff))
                .fetch_all(&self.pools.readers),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(SampleRow::into_sample).collect()
    }

    async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        maintenance::apply_retention(&self.pools, &self.options, self.slow, policy).await
    }

    async fn check_integrity(&self) -> Result<Vec<IntegrityFinding>> {
        maintenance::check_integrity(&self.pools.readers).await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        maintenance::counts(&self.pools.readers).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.pools.readers).await.map_err(|e| map_err(e, None))?;
        Ok(())
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats {
            size: self.pools.readers.size() + self.pools.writer.size(),
            idle: (self.pools.readers.num_idle() + self.pools.writer.num_idle()) as u32,
            max_size: READERS + 1,
        })
    }

    async fn close(&self) {
        self.pools.writer.close().await;
        self.pools.readers.close().await;
    }
}

// Schema management helpers used by `open`.

/// Applied migrations as `(version, applied at, checksum)`; empty before the first one.
pub(crate) async fn applied_migrations(
    pool: &SqlitePool,
) -> std::result::Result<Vec<(i64, String, Vec<u8>)>, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
            .fetch_optional(pool)
            .await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT version, CAST(installed_on AS TEXT), checksum FROM schema_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
}

/// Whether the file already holds any table (so a migration would change existing data).
pub(crate) async fn holds_tables(pool: &SqlitePool) -> std::result::Result<bool, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetch_one(pool).await?;
    Ok(count > 0)
}

/// Writes a consistent copy of the database to `target` (safe while in WAL mode).
pub(crate) async fn vacuum_into(pool: &SqlitePool, target: &Path) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("VACUUM INTO ?").bind(target.to_string_lossy().into_owned()).execute(pool).await?;
    Ok(())
}

/// Every schema object except the migrations bookkeeping, as `type name: sql` lines.
pub(crate) async fn schema_fingerprint(pool: &SqlitePool) -> std::result::Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT IN ('schema_migrations', 'sqlite_sequence') \
         AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY type, name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(kind, name, sql)| format!("{kind} {name}: {}", sql.unwrap_or_default())).collect())
}
