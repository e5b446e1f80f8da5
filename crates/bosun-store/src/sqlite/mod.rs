//! The SQLite backend: the embedded default.
//!
//! One writer thread owns the only write connection and group-commits hard-state batches
//! (`writer.rs`); reads run on a small pool of reader connections, which WAL mode lets run
//! beside the writer (`conn.rs`). Both use rusqlite directly: a statement costs a function
//! call rather than a round trip to a driver thread. Foreign keys are on; commits are
//! durable against process crashes and, with `synchronous=FULL` (the default), power loss.
//! Times are integer microseconds. Schema migrations run through sqlx's migrator
//! (`schema.rs`), before the store opens.

mod backup;
mod commit;
mod conn;
pub(crate) mod file;
mod inventory;
mod ledger;
mod maintenance;
mod read;
mod schema;
mod transfer;
mod usage;
mod writer;

use async_trait::async_trait;
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, BootstrapLog, ChangeRecord, Command, CommandEvent, CommandId, Heartbeat,
    Instance, InstanceId, LlmUsage, LlmUsageId, MetricSample, Node, NodeId, Pool, PoolName, Price, ResourceKind, RunId,
    Runbook, RunbookName, Setting, StoredPolicy, TaskRun, Timestamp, ToolDefinition, UsageFilter, UsageRow,
};
use rusqlite::{TransactionBehavior, params};

pub(crate) use self::backup::online_backup;
use self::conn::{Opener, ReaderPool};
pub(crate) use self::schema::{
    SqlitePools, applied_migrations, connect, holds_tables, schema_fingerprint, vacuum_into,
};
use self::writer::Writer;
use crate::error::{Result, StoreError};
use crate::ledger::{ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall};
use crate::query::{
    ChangeFilter, CommandFilter, InstanceFilter, NodeFilter, NodeOrder, Page, PageRequest, command_key,
};
use crate::soft_state::{dedupe_heartbeats, dedupe_samples};
use crate::sql::{SlowLog, to_json};
use crate::store::{
    ApprovalFilter, Backend, IntegrityFinding, PoolStats, RetentionPolicy, RetentionReport, Store, StoreCounts,
    StoreOptions,
};
use crate::write::{Committed, StoredHealthReport, WriteBatch};

/// How durable each commit is. FULL fsyncs the WAL on every commit (no acknowledged write
/// lost even on power loss); NORMAL only at checkpoints (safe against process crashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteDurability {
    #[default]
    Full,
    Normal,
}

/// Reader connections per store.
const READERS: u32 = 4;

/// Maps a SQLite error to the store's typed errors. `context` names the resource a
/// uniqueness violation is about, when the caller knows it.
pub(crate) fn map_error(error: rusqlite::Error, context: Option<(ResourceKind, &str)>) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            match (failure.code, failure.extended_code) {
                // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
                (ErrorCode::ConstraintViolation, 2067 | 1555) => match context {
                    Some((kind, id)) => StoreError::already_exists(kind, id),
                    None => StoreError::invalid("record", format_args!("duplicate key: {message}")),
                },
                // SQLITE_CONSTRAINT_FOREIGNKEY.
                (ErrorCode::ConstraintViolation, 787) => {
                    StoreError::invalid("reference", format_args!("refers to a missing record: {message}"))
                }
                (ErrorCode::ConstraintViolation, _) => {
                    StoreError::invalid("record", format_args!("violates a schema constraint: {message}"))
                }
                (ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _) => {
                    StoreError::unavailable(format!("database busy: {message}"))
                }
                // A value larger than SQLite stores, or of a type a STRICT column refuses:
                // caused by the request, never an outage.
                (ErrorCode::TooBig | ErrorCode::TypeMismatch, _) => {
                    StoreError::invalid("record", format_args!("holds a value the database cannot store: {message}"))
                }
                _ => StoreError::unavailable(format!("database error: {message}")),
            }
        }
        rusqlite::Error::QueryReturnedNoRows => match context {
            Some((kind, id)) => StoreError::not_found(kind, id),
            None => StoreError::corrupt("row", "expected row is missing"),
        },
        error @ rusqlite::Error::ToSqlConversionFailure(_) => {
            StoreError::invalid("record", format_args!("holds a value the database cannot store: {error}"))
        }
        error @ (rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnType(..)) => StoreError::corrupt("row", error),
        other => StoreError::unavailable(other.to_string()),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        map_error(error, None)
    }
}

fn micros(t: Timestamp) -> i64 {
    t.unix_micros()
}

fn limit_param(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// The SQLite store.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    writer: Writer,
    readers: ReaderPool,
    options: StoreOptions,
    slow: SlowLog,
}

impl SqliteStore {
    /// Opens the writer and reader connections. Must be called within a Tokio runtime.
    pub(crate) fn open(path: &std::path::Path, durability: SqliteDurability, options: StoreOptions) -> Result<Self> {
        let opener = Opener { path: path.to_owned(), durability };
        file::create_private(path)
            .map_err(|e| StoreError::unavailable(format!("cannot create {}: {e}", path.display())))?;
        let conn = opener.open(conn::WRITER_CACHE_KIB)?;
        let identity = file::FileIdentity::of(path)
            .map_err(|e| StoreError::unavailable(format!("cannot examine {}: {e}", path.display())))?;
        let writer = Writer::start(conn, identity, options.clone())
            .map_err(|e| StoreError::unavailable(format!("cannot start the SQLite writer: {e}")))?;
        let readers = ReaderPool::open(&opener, READERS)?;
        let slow = SlowLog { threshold: options.slow_statement };
        Ok(Self { writer, readers, options, slow })
    }

    /// Runs `read` on a reader connection, warning if it is slow.
    async fn read<T: Send + 'static>(
        &self,
        statement: &'static str,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.slow.run(statement, self.readers.run(read)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn commit(&self, batch: WriteBatch) -> Result<Committed> {
        self.writer.commit(batch).await
    }

    async fn node(&self, id: &NodeId) -> Result<Node> {
        let id = id.clone();
        self.read("nodes.get", move |conn| read::node(conn, &id)).await
    }

    async fn node_gpus(&self, id: &NodeId) -> Result<Vec<Gpu>> {
        let id = id.clone();
        self.read("node_gpus.list", move |conn| read::node_gpus(conn, &id)).await
    }

    async fn list_nodes_in(&self, order: NodeOrder, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>> {
        let limit = page.checked_limit()?;
        let after = page.start_after_node(order)?;
        let filter = filter.clone();
        let rows = self
            .read("nodes.list", move |conn| read::list_nodes(conn, order, &filter, after, limit_param(limit)))
            .await?;
        Ok(order.page(rows, limit))
    }

    async fn instance(&self, id: &InstanceId) -> Result<Instance> {
        let key = id.to_string();
        self.read("instances.get", move |conn| read::instance(conn, &key))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))
    }

    async fn list_instances(&self, filter: &InstanceFilter, page: &PageRequest) -> Result<Page<Instance>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Instance)?;
        let filter = filter.clone();
        let rows = self
            .read("instances.list", move |conn| read::list_instances(conn, &filter, after, limit_param(limit)))
            .await?;
        Ok(Page::from_rows(rows, limit, ResourceKind::Instance, |i| i.id.to_string()))
    }

    async fn instance_for_node(&self, node: &NodeId) -> Result<Option<Instance>> {
        let node = node.clone();
        self.read("instances.for_node", move |conn| read::instance_for_node(conn, &node)).await
    }

    async fn command(&self, id: &CommandId) -> Result<Command> {
        let key = *id;
        self.read("commands.get", move |conn| read::command(conn, &key))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Command, id))
    }

    async fn list_commands(&self, filter: &CommandFilter, page: &PageRequest) -> Result<Page<Command>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Command)?;
        let filter = filter.clone();
        let rows = self
            .read("commands.list", move |conn| read::list_commands(conn, &filter, after, limit_param(limit)))
            .await?;
        Ok(Page::from_rows(rows, limit, ResourceKind::Command, |c| command_key(&c.id)))
    }

    async fn command_events(&self, id: &CommandId) -> Result<Vec<CommandEvent>> {
        let id = *id;
        self.read("command_events.list", move |conn| read::command_events(conn, &id)).await
    }

    async fn pool(&self, name: &PoolName) -> Result<Pool> {
        let key = name.to_string();
        self.read("pools.get", move |conn| read::pool(conn, &key))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))
    }

    async fn list_pools(&self) -> Result<Vec<Pool>> {
        self.read("pools.list", read::list_pools).await
    }

    async fn policy(&self) -> Result<Option<StoredPolicy>> {
        self.read("policies.get", read::policy).await
    }

    async fn lease(&self, name: &bosun_core::LeaseName) -> Result<Option<bosun_core::Lease>> {
        let name = name.clone();
        self.read("leases.get", move |conn| read::lease(conn, &name)).await
    }

    async fn health_history(&self, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>> {
        let node = node.clone();
        self.read("health_reports.list", move |conn| read::health_history(conn, &node, limit)).await
    }

    async fn bootstrap_logs(&self, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>> {
        let node = node.clone();
        self.read("bootstrap_logs.list", move |conn| read::bootstrap_logs(conn, &node, limit)).await
    }

    async fn list_changes(&self, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>> {
        let filter = filter.clone();
        self.read("changes.list", move |conn| read::list_changes(conn, &filter, limit)).await
    }

    async fn last_change_seq(&self) -> Result<u64> {
        self.read("changes.last_seq", read::last_change_seq).await
    }

    async fn record_replica(&self, replica: &bosun_core::ReplicaPresence, forget_before: Timestamp) -> Result<()> {
        crate::rules::check_replica(replica)?;
        let replica = replica.clone();
        self.writer
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO replicas (replica_id, address, started_at, last_seen) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (replica_id) DO UPDATE SET address = excluded.address, \
                     started_at = excluded.started_at, last_seen = MAX(last_seen, excluded.last_seen)",
                    params![
                        replica.replica_id.as_str(),
                        replica.address,
                        micros(replica.started_at),
                        micros(replica.last_seen)
                    ],
                )?;
                tx.execute("DELETE FROM replicas WHERE last_seen < ?1", [micros(forget_before)])?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn list_replicas(&self) -> Result<Vec<bosun_core::ReplicaPresence>> {
        self.read("replicas.list", read::replicas).await
    }

    async fn change_signals(&self) -> Option<crate::ChangeSignals> {
        // One server at a time serves a SQLite file (`server_lock`): it makes every commit.
        None
    }

    async fn runbook(&self, name: &RunbookName) -> Result<Runbook> {
        let key = name.to_string();
        self.read("tasks.get", move |conn| ledger::runbook(conn, &key))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Runbook, name))
    }

    async fn list_runbooks(&self, page: &PageRequest) -> Result<Page<Runbook>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Runbook)?;
        let rows = self.read("tasks.list", move |conn| ledger::list_runbooks(conn, after, limit_param(limit))).await?;
        Ok(Page::from_rows(rows, limit, ResourceKind::Runbook, |r| r.name.to_string()))
    }

    async fn run(&self, id: &RunId) -> Result<TaskRun> {
        let key = *id;
        self.read("task_runs.get", move |conn| ledger::run(conn, &key))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Run, id))
    }

    async fn list_runs(&self, filter: &RunFilter, page: &PageRequest) -> Result<Page<TaskRun>> {
        let limit = page.checked_limit()?;
        let before = page.start_after(ResourceKind::Run)?;
        let filter = filter.clone();
        let rows = self
            .read("task_runs.list", move |conn| ledger::list_runs(conn, &filter, before, limit_param(limit)))
            .await?;
        Ok(Page::from_rows(rows, limit, ResourceKind::Run, |run| run.id.to_string()))
    }

    async fn run_events(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredRunEvent>> {
        let run = *run;
        self.read("task_events.list", move |conn| ledger::run_events(conn, &run, after, limit)).await
    }

    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactInfo>> {
        let run = *run;
        self.read("artifacts.list", move |conn| ledger::artifacts(conn, &run)).await
    }

    async fn artifact(&self, run: &RunId, name: &str) -> Result<(ArtifactInfo, Vec<u8>)> {
        let (key, artifact) = (*run, name.to_owned());
        self.read("artifacts.get", move |conn| ledger::artifact(conn, &key, &artifact))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Run, format_args!("{run}/artifact {name:?}")))
    }

    async fn pricing(&self, current_at: Option<Timestamp>) -> Result<Vec<Price>> {
        self.read("provider_pricing.list", move |conn| usage::pricing(conn, current_at)).await
    }

    async fn llm_usage(&self, id: &LlmUsageId) -> Result<LlmUsage> {
        let id = *id;
        self.read("llm_requests.get", move |conn| usage::llm_usage(conn, &id))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::LlmUsage, id))
    }

    async fn usage_summary(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>> {
        let filter = *filter;
        self.read("token_usage.summary", move |conn| usage::usage_summary(conn, &filter)).await
    }

    async fn setting(&self, name: &str) -> Result<Option<Setting>> {
        let name = name.to_owned();
        self.read("control_settings.get", move |conn| usage::setting(conn, &name)).await
    }

    async fn tools(&self) -> Result<Vec<ToolDefinition>> {
        self.read("tool_definitions.list", ledger::tools).await
    }

    async fn tool_calls(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredToolCall>> {
        let run = *run;
        self.read("tool_call_records.list", move |conn| ledger::tool_calls(conn, &run, after, limit)).await
    }

    async fn approval_policies(&self) -> Result<Vec<ApprovalPolicy>> {
        self.read("approval_policies.list", ledger::approval_policies).await
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Approval> {
        let key = *id;
        self.read("approvals.get", move |conn| ledger::approval(conn, &key))
            .await?
            .ok_or_else(|| StoreError::not_found(ResourceKind::Approval, id))
    }

    async fn list_approvals(&self, filter: &ApprovalFilter, limit: u32) -> Result<Vec<Approval>> {
        let filter = filter.clone();
        self.read("approvals.list", move |conn| ledger::list_approvals(conn, &filter, limit)).await
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
        let filter = filter.clone();
        let (mut rows, sources) = self
            .read("inventory.list", move |conn| {
                let rows = inventory::list(conn, &filter, after, limit_param(limit))?;
                let sources = inventory::sources_of(conn, &rows)?;
                Ok((rows, sources))
            })
            .await?;
        crate::inventory::overlay_last_seen(&mut rows, &sources);
        Ok(Page::from_rows(rows, limit, kind, bosun_core::inventory::InventoryRecord::id))
    }

    async fn count_inventory(&self, filter: &crate::inventory::InventoryFilter) -> Result<u64> {
        filter.check()?;
        let filter = filter.clone();
        self.read("inventory.count", move |conn| inventory::count(conn, &filter)).await
    }

    async fn inventory_record(
        &self,
        kind: bosun_core::inventory::InventoryKind,
        source: &bosun_core::SourceName,
        key: &str,
    ) -> Result<bosun_core::inventory::InventoryRecord> {
        let (s, k) = (source.clone(), key.to_owned());
        let (record, sources) = self
            .read("inventory.get", move |conn| {
                let record = inventory::record(conn, kind, &s, &k)?;
                let sources = inventory::sources_of(conn, record.as_slice())?;
                Ok((record, sources))
            })
            .await?;
        let mut record = record.ok_or_else(|| {
            StoreError::not_found(kind.resource_kind(), bosun_core::inventory::record_id(source, key))
        })?;
        crate::inventory::overlay_last_seen(std::slice::from_mut(&mut record), &sources);
        Ok(record)
    }

    async fn inventory_sources(&self) -> Result<Vec<bosun_core::inventory::SourceStatus>> {
        self.read("inventory_sources.list", inventory::sources).await
    }

    async fn inventory_syncs(
        &self,
        source: Option<&bosun_core::SourceName>,
        limit: u32,
    ) -> Result<Vec<bosun_core::inventory::SyncRecord>> {
        let source = source.cloned();
        self.read("inventory_syncs.list", move |conn| inventory::syncs(conn, source.as_ref(), i64::from(limit))).await
    }

    async fn list_audit(&self, filter: &AuditFilter, after: u64, limit: u32) -> Result<Vec<StoredAuditEntry>> {
        let filter = filter.clone();
        self.read("audit_entries.list", move |conn| ledger::list_audit(conn, &filter, after, limit)).await
    }

    async fn record_heartbeats(&self, batch: &[Heartbeat]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let rows: Vec<(String, i64)> =
            dedupe_heartbeats(batch).into_iter().map(|hb| (String::from(hb.node_id), micros(hb.at))).collect();
        let payload = to_json(&rows);
        let slow = self.slow;
        self.writer
            .run(move |conn| {
                let started = std::time::Instant::now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let applied = tx.execute(
                    "INSERT INTO node_liveness (node_id, last_heartbeat) \
                     SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?1) AS j \
                     JOIN nodes n ON n.node_id = (j.value ->> 0) WHERE true \
                     ON CONFLICT (node_id) DO UPDATE SET last_heartbeat = MAX(last_heartbeat, excluded.last_heartbeat)",
                    params![payload],
                )?;
                tx.commit()?;
                slow.observe("node_liveness.upsert_batch", started.elapsed());
                Ok(applied as u64)
            })
            .await
    }

    async fn record_metric_samples(&self, batch: &[MetricSample]) -> Result<u64> {
        crate::rules::check_samples(batch)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let rows: Vec<_> = dedupe_samples(batch, &self.options.samples)
            .into_iter()
            .map(|(slot, s)| (s.node_id.as_str(), slot, micros(s.at), s.cpu_percent, s.memory_percent, &s.gpus))
            .collect();
        let payload = to_json(&rows);
        let slow = self.slow;
        self.writer
            .run(move |conn| {
                let started = std::time::Instant::now();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let stored = tx.execute(
                    "INSERT INTO metric_samples (node_id, slot, at, cpu_percent, memory_percent, gpus) \
                     SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value -> 5 \
                     FROM json_each(?1) AS j JOIN nodes n ON n.node_id = (j.value ->> 0) WHERE true \
                     ON CONFLICT (node_id, slot) DO UPDATE SET at = excluded.at, cpu_percent = excluded.cpu_percent, \
                     memory_percent = excluded.memory_percent, gpus = excluded.gpus \
                     WHERE excluded.at >= metric_samples.at",
                    params![payload],
                )?;
                tx.commit()?;
                slow.observe("metric_samples.upsert_batch", started.elapsed());
                Ok(stored as u64)
            })
            .await
    }

    async fn list_heartbeats(&self, page: &PageRequest) -> Result<Page<Heartbeat>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Node)?;
        let rows =
            self.read("node_liveness.list", move |conn| read::heartbeats(conn, after, limit_param(limit))).await?;
        Ok(Page::from_rows(rows, limit, ResourceKind::Node, |hb| hb.node_id.to_string()))
    }

    async fn metric_samples(&self, node: &NodeId, since: Timestamp) -> Result<Vec<MetricSample>> {
        let cutoff = micros(since.max(self.options.clock.now() - self.options.samples.window));
        let node = node.clone();
        self.read("metric_samples.list", move |conn| read::metric_samples(conn, &node, cutoff)).await
    }

    async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        let now = self.options.clock.now();
        let change_cutoff = micros(now - policy.changes_older_than);
        let sample_cutoff = micros(now - self.options.samples.window);
        let mut report = RetentionReport::default();
        // One bounded transaction per batch, each its own writer job, so commits interleave.
        loop {
            let deleted = self.writer.run(move |conn| maintenance::compact_changes(conn, change_cutoff)).await?;
            report.changes_deleted += deleted;
            if deleted < maintenance::RETENTION_BATCH as u64 {
                break;
            }
        }
        loop {
            let deleted = self.writer.run(move |conn| maintenance::expire_samples(conn, sample_cutoff)).await?;
            report.samples_deleted += deleted;
            if deleted < maintenance::RETENTION_BATCH as u64 {
                break;
            }
        }
        let runs_cutoff = micros(now - policy.runs_older_than);
        loop {
            let deleted = self.writer.run(move |conn| maintenance::expire_run_events(conn, runs_cutoff)).await?;
            report.run_events_deleted += deleted;
            if deleted == 0 {
                break;
            }
        }
        loop {
            let deleted = self.writer.run(move |conn| maintenance::expire_artifacts(conn, runs_cutoff)).await?;
            report.artifacts_deleted += deleted;
            if deleted < maintenance::RUNS_PER_BATCH as u64 {
                break;
            }
        }
        let audit_cutoff = micros(now - policy.audit_older_than);
        loop {
            let deleted = self.writer.run(move |conn| maintenance::expire_audit(conn, audit_cutoff)).await?;
            report.audit_deleted += deleted;
            if deleted < maintenance::RETENTION_BATCH as u64 {
                break;
            }
        }
        let syncs_cutoff = micros(now - policy.inventory_syncs_older_than);
        loop {
            let deleted = self.writer.run(move |conn| maintenance::expire_inventory_syncs(conn, syncs_cutoff)).await?;
            report.inventory_syncs_deleted += deleted;
            if deleted < maintenance::RETENTION_BATCH as u64 {
                break;
            }
        }
        Ok(report)
    }

    async fn check_integrity(&self) -> Result<Vec<IntegrityFinding>> {
        self.read("integrity", maintenance::check_integrity).await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.read("counts", maintenance::counts).await
    }

    async fn checkpoint(&self) -> Result<()> {
        self.writer.run(|conn| Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)).await
    }

    async fn check_writable(&self) -> Result<()> {
        // A real write, with no effect: the header's user_version (unused by bosun) is
        // written back unchanged in a committed transaction, through the writer, which
        // first checks that the file is still the one at its path.
        self.writer
            .run(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
                tx.pragma_update(None, "user_version", version)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn dump(&self, sink: tokio::sync::mpsc::Sender<crate::transfer::DumpMessage>) -> Result<()> {
        // Not through `read`: a dump is long by nature, not a slow statement.
        self.readers.run(move |conn| transfer::dump(conn, &sink)).await
    }

    async fn load(
        &self,
        source: tokio::sync::mpsc::Receiver<crate::transfer::LoadMessage>,
        target: crate::transfer::Target,
    ) -> Result<()> {
        self.writer.run(move |conn| transfer::load(conn, source, target)).await
    }

    async fn ping(&self) -> Result<()> {
        self.read("ping", |conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        self.read("schema.version", |conn| {
            Ok(conn.query_row("SELECT MAX(version) FROM schema_migrations WHERE success", [], |row| row.get(0))?)
        })
        .await
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats { size: self.readers.size() + 1, idle: self.readers.idle(), max_size: READERS + 1 })
    }

    async fn close(&self) {
        self.writer.close().await;
        self.readers.close();
    }
}
