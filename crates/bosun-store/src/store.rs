//! The [`Store`] contract every backend implements (SPEC 4.2).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bosun_core::SourceName;
use bosun_core::inventory::{InventoryKind, InventoryRecord, SourceStatus, SyncRecord};
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, BootstrapLog, ChangeRecord, Clock, Command, CommandEvent, CommandId,
    Heartbeat, Instance, InstanceId, LlmUsage, LlmUsageId, MetricSample, Node, NodeId, Pool, PoolName, Price, RunId,
    Runbook, RunbookName, Setting, StoredPolicy, TaskRun, Timestamp, ToolDefinition, UsageFilter, UsageRow,
};

use crate::error::Result;
use crate::inventory::InventoryFilter;
use crate::ledger::{ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall};
use crate::query::{ChangeFilter, CommandFilter, InstanceFilter, NodeFilter, NodeOrder, Page, PageRequest};
use crate::signals::ChangeSignals;
use crate::transfer::{DumpMessage, LoadMessage, Target};
use crate::write::{Committed, StoredHealthReport, WriteBatch};

/// Which engine is behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tuning shared by every backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The time source for change records and retention.
    pub clock: Arc<dyn Clock>,
    /// Health reports kept per node (oldest dropped first).
    pub health_history_per_node: u32,
    /// Bootstrap logs kept per node.
    pub bootstrap_logs_per_node: u32,
    pub samples: SampleRetention,
    /// The largest artifact a run may store, in bytes (larger ones are refused with
    /// `TooLarge`).
    pub artifact_max_bytes: u64,
    /// Statements slower than this are logged at WARN with their name (never their
    /// parameters).
    pub slow_statement: Duration,
}

impl StoreOptions {
    /// 1 MiB.
    pub const DEFAULT_ARTIFACT_MAX_BYTES: u64 = 1024 * 1024;

    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            health_history_per_node: 100,
            bootstrap_logs_per_node: 50,
            samples: SampleRetention::default(),
            artifact_max_bytes: Self::DEFAULT_ARTIFACT_MAX_BYTES,
            slow_statement: Duration::from_millis(500),
        }
    }
}

/// Bounds on the metric samples kept per node: at most `max_per_node` samples spanning at
/// most `window`.
///
/// Samples live in a per-node ring of `max_per_node` slots, each covering
/// `window / max_per_node` of time (slot = time bucket modulo ring size). A new sample
/// overwrites its slot, so the count bound holds by construction, needs no per-node
/// bookkeeping, and survives restarts; several samples within one bucket keep only the
/// latest. Samples older than `window` are ignored by reads and deleted by retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRetention {
    pub window: Duration,
    pub max_per_node: u32,
}

impl Default for SampleRetention {
    /// 60 samples over 10 minutes: one per 10 s bucket.
    fn default() -> Self {
        Self { window: Duration::from_secs(600), max_per_node: 60 }
    }
}

impl SampleRetention {
    /// The ring slot a sample taken at `at` occupies.
    pub fn slot(&self, at: Timestamp) -> u32 {
        let bucket_micros = (self.window.as_micros() / u128::from(self.max_per_node.max(1))).max(1);
        let bucket = (at.unix_micros().max(0) as u128) / bucket_micros;
        (bucket % u128::from(self.max_per_node.max(1))) as u32
    }
}

/// What retention may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Change records older than this are compacted away, except the latest record of each
    /// live resource, which is always kept.
    pub changes_older_than: Duration,
    /// The events and artifacts of runs that finished longer ago than this are deleted
    /// (the runs themselves stay).
    pub runs_older_than: Duration,
    /// Audit entries older than this are deleted.
    pub audit_older_than: Duration,
    /// Records of inventory syncs that finished longer ago than this are deleted (the
    /// inventory's records and their change history are not).
    pub inventory_syncs_older_than: Duration,
}

impl Default for RetentionPolicy {
    /// Changes 7 days, run history 30 days, audit 365 days, inventory syncs 30 days.
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            changes_older_than: Duration::from_secs(7 * DAY),
            runs_older_than: Duration::from_secs(30 * DAY),
            audit_older_than: Duration::from_secs(365 * DAY),
            inventory_syncs_older_than: Duration::from_secs(30 * DAY),
        }
    }
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub changes_deleted: u64,
    pub samples_deleted: u64,
    pub run_events_deleted: u64,
    pub artifacts_deleted: u64,
    pub audit_deleted: u64,
    pub inventory_syncs_deleted: u64,
}

/// One problem `check_integrity` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityFinding {
    /// Which check: `foreign_keys`, `orphans`, `revisions`, `states`.
    pub check: &'static str,
    /// The record concerned, e.g. `command 0193...` or `node n1`.
    pub subject: String,
    pub problem: String,
}

impl fmt::Display for IntegrityFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.check, self.subject, self.problem)
    }
}

/// Connection-pool figures, for backends that pool connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max_size: u32,
}

/// Counts of live records, for gauges and quick sanity checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub nodes: u64,
    pub instances: u64,
    pub commands: u64,
    pub pools: u64,
    pub changes: u64,
}

/// bosun's durable state.
///
/// **Contract** (proven for every backend by the conformance suite):
/// - Hard state changes only through [`Store::commit`], atomically, with one change record
///   per created, updated or deleted resource in the same transaction.
/// - Updates carry the revision they were computed from; a mismatch is `Conflict`, so
///   concurrent writers never lose an update. Status changes that the lifecycles in
///   `bosun_core` do not allow are `InvalidTransition`.
/// - Lists are in stable key order with keyset cursors.
/// - Soft state (heartbeats, metric samples) is written in batches, one transaction per
///   call, and never takes part in compare-and-set.
/// - Time comes from the injected clock.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    fn backend(&self) -> Backend;

    /// Applies every write of `batch` or none of them.
    async fn commit(&self, batch: WriteBatch) -> Result<Committed>;

    async fn node(&self, id: &NodeId) -> Result<Node>;
    /// A node's GPU inventory, by GPU index.
    async fn node_gpus(&self, id: &NodeId) -> Result<Vec<Gpu>>;
    async fn list_nodes(&self, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>> {
        self.list_nodes_in(NodeOrder::Id, filter, page).await
    }
    /// Nodes in `order`; a page's cursor continues only a list in the same order.
    async fn list_nodes_in(&self, order: NodeOrder, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>>;

    async fn instance(&self, id: &InstanceId) -> Result<Instance>;
    async fn list_instances(&self, filter: &InstanceFilter, page: &PageRequest) -> Result<Page<Instance>>;
    /// The instance a registering node belongs to: the one linked to it, else the one
    /// whose id or provider instance id equals the node id. Prefers instances that are not
    /// TERMINATED or FAILED.
    async fn instance_for_node(&self, node: &NodeId) -> Result<Option<Instance>>;

    async fn command(&self, id: &CommandId) -> Result<Command>;
    async fn list_commands(&self, filter: &CommandFilter, page: &PageRequest) -> Result<Page<Command>>;
    /// The command's history, oldest first.
    async fn command_events(&self, id: &CommandId) -> Result<Vec<CommandEvent>>;

    async fn pool(&self, name: &PoolName) -> Result<Pool>;
    async fn list_pools(&self) -> Result<Vec<Pool>>;

    /// The health policy document stored through the API, if any.
    async fn policy(&self) -> Result<Option<StoredPolicy>>;

    /// A lease as stored (taken, renewed and released through [`Store::commit`]).
    async fn lease(&self, name: &bosun_core::LeaseName) -> Result<Option<bosun_core::Lease>>;

    /// Records that a replica is alive (soft state, no change record) and forgets replicas
    /// not seen since `forget_before`.
    async fn record_replica(&self, replica: &bosun_core::ReplicaPresence, forget_before: Timestamp) -> Result<()>;

    /// The replicas that announced themselves, by id.
    async fn list_replicas(&self) -> Result<Vec<bosun_core::ReplicaPresence>>;

    /// A node's most recent health reports, newest first.
    async fn health_history(&self, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>>;
    /// A node's bootstrap logs, newest first.
    async fn bootstrap_logs(&self, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>>;

    /// Change records matching `filter`, in sequence order, at most `limit`.
    async fn list_changes(&self, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>>;
    /// The highest change sequence number handed out so far (0 for an empty log), even if
    /// retention has since removed that record: a watcher starting here misses nothing
    /// and never sees a number twice.
    async fn last_change_seq(&self) -> Result<u64>;
    /// Signals that the change log grew, whichever process committed, for a follower that
    /// reads the log from where it stopped; `None` when only this process writes to the
    /// store, so nothing is committed that it does not know of (memory, and SQLite, whose
    /// file one server at a time serves), and after `close`. PostgreSQL listens on a
    /// connection of its own, started by the first call, that reconnects when lost and
    /// then signals [`crate::ChangeSignal::connections`] (what was committed meanwhile was
    /// not heard).
    async fn change_signals(&self) -> Option<ChangeSignals>;

    // The operations ledger (see `crate::ledger`).
    async fn runbook(&self, name: &RunbookName) -> Result<Runbook>;
    /// Every runbook, by name.
    /// Runbooks by name, a page at a time.
    async fn list_runbooks(&self, page: &PageRequest) -> Result<Page<Runbook>>;
    async fn run(&self, id: &RunId) -> Result<TaskRun>;
    /// Runs matching `filter`, newest first (the cursor: the last run id returned).
    async fn list_runs(&self, filter: &RunFilter, page: &PageRequest) -> Result<Page<TaskRun>>;
    /// A run's events numbered after `after`, oldest first, at most `limit`. NotFound if
    /// the run does not exist.
    async fn run_events(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredRunEvent>>;
    /// A run's artifacts (without content), by name.
    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactInfo>>;
    /// One artifact with its content.
    async fn artifact(&self, run: &RunId, name: &str) -> Result<(ArtifactInfo, Vec<u8>)>;
    /// Every tool definition, by name.
    async fn tools(&self) -> Result<Vec<ToolDefinition>>;
    /// A run's tool calls numbered after `after` (0: from the first), in the order they were
    /// recorded, at most `limit` of them.
    async fn tool_calls(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredToolCall>>;
    /// The approval policy's rules in the order they are tried: by position, then name.
    async fn approval_policies(&self) -> Result<Vec<ApprovalPolicy>>;
    async fn approval(&self, id: &ApprovalId) -> Result<Approval>;
    /// Approvals matching `filter`, oldest first, at most `limit`.
    async fn list_approvals(&self, filter: &ApprovalFilter, limit: u32) -> Result<Vec<Approval>>;
    /// Audit entries matching `filter` numbered after `after`, oldest first, at most
    /// `limit`.
    async fn list_audit(&self, filter: &AuditFilter, after: u64, limit: u32) -> Result<Vec<StoredAuditEntry>>;

    /// Model prices by provider, model and start: every one stored (`current_at: None`), or
    /// those not ended by `current_at` (in effect then or starting later).
    async fn pricing(&self, current_at: Option<Timestamp>) -> Result<Vec<Price>>;
    /// One recorded LLM request with its response, tokens and cost.
    async fn llm_usage(&self, id: &LlmUsageId) -> Result<LlmUsage>;
    /// Usage at or after `filter.since`, summed per group, in key order.
    async fn usage_summary(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>>;
    /// A control setting, if one is stored under `name`.
    async fn setting(&self, name: &str) -> Result<Option<Setting>>;

    /// Inventory records of one kind matching `filter`, by source and key.
    async fn list_inventory(&self, filter: &InventoryFilter, page: &PageRequest) -> Result<Page<InventoryRecord>>;
    /// How many inventory records match `filter` (a service's members, say).
    async fn count_inventory(&self, filter: &InventoryFilter) -> Result<u64>;
    async fn inventory_record(&self, kind: InventoryKind, source: &SourceName, key: &str) -> Result<InventoryRecord>;
    /// How every inventory source stands, per scope, by source and scope.
    async fn inventory_sources(&self) -> Result<Vec<SourceStatus>>;
    /// The latest recorded syncs, newest first, of one source or of all.
    async fn inventory_syncs(&self, source: Option<&SourceName>, limit: u32) -> Result<Vec<SyncRecord>>;

    /// Records heartbeats in one transaction. Heartbeats of unknown nodes are skipped, a
    /// node's last heartbeat never moves backwards, and the number of nodes updated is
    /// returned.
    async fn record_heartbeats(&self, batch: &[Heartbeat]) -> Result<u64>;
    /// The newest recorded heartbeat of every node that has one, in node id order, a page
    /// at a time (cursor: the node id). What a replica reads to learn the signs of life
    /// that other replicas heard, without reading whole nodes.
    async fn list_heartbeats(&self, page: &PageRequest) -> Result<Page<Heartbeat>>;
    /// Records metric samples in one transaction, bounded per node by
    /// [`SampleRetention`]. Samples of unknown nodes are skipped; the number stored is
    /// returned.
    async fn record_metric_samples(&self, batch: &[MetricSample]) -> Result<u64>;
    /// A node's samples taken at or after `since` (and within the retention window), oldest
    /// first.
    async fn metric_samples(&self, node: &NodeId, since: Timestamp) -> Result<Vec<MetricSample>>;

    /// Compacts the change log and deletes expired metric samples, in bounded batches.
    async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport>;
    /// Looks for broken references, revision anomalies and impossible states.
    async fn check_integrity(&self) -> Result<Vec<IntegrityFinding>>;
    async fn counts(&self) -> Result<StoreCounts>;

    /// Flushes the write-ahead log into the main database files (SQLite: a truncating WAL
    /// checkpoint; PostgreSQL: `CHECKPOINT`, which needs a superuser or the
    /// `pg_checkpoint` role). Useful before copying a database file, and between benchmark
    /// phases so one phase's writes do not slow the next.
    async fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    /// Streams every record the store holds, read from one consistent snapshot, into
    /// `sink`: one [`DumpMessage::Start`] with the snapshot's counts and sequences, then
    /// the records in [`crate::transfer::RecordKind`] order, keys ascending within a kind,
    /// in batches. Stops (with an error) if the receiver goes away.
    async fn dump(&self, sink: tokio::sync::mpsc::Sender<DumpMessage>) -> Result<()>;

    /// Writes the records received from `source` verbatim (revisions, change sequence
    /// numbers and history ids as they are; no rules re-applied) in one transaction that
    /// commits on [`LoadMessage::Commit`], which also raises the store's sequences to at
    /// least the ones given. If `source` closes before `Commit`, or any record is refused,
    /// nothing is written. [`Target::MustBeEmpty`] fails if the store holds anything;
    /// [`Target::Replace`] deletes everything first, in the same transaction.
    /// [`LoadMessage::ReadBack`] streams what the transaction holds so far, uncommitted.
    async fn load(&self, source: tokio::sync::mpsc::Receiver<LoadMessage>, target: Target) -> Result<()>;

    /// Cheap reachability check (`SELECT 1` on SQL backends).
    async fn ping(&self) -> Result<()>;
    /// Whether a write would be accepted and kept: SQLite writes its header in a
    /// transaction after checking its file is still the one at its path; PostgreSQL checks
    /// the server is neither a standby in recovery nor read-only.
    async fn check_writable(&self) -> Result<()> {
        Ok(())
    }
    /// The newest schema migration applied to the database (`None` for the memory store,
    /// which has no schema). Compare with [`crate::embedded_schema_version`] to tell
    /// whether another bosun migrated the database since this one started.
    async fn schema_version(&self) -> Result<Option<i64>>;
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
    /// Closes connections; further calls fail with `Unavailable`.
    async fn close(&self);
}

/// Which approvals a list returns (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    pub run: Option<RunId>,
    /// Only approvals not decided yet.
    pub undecided: bool,
}

impl ApprovalFilter {
    pub fn matches(&self, approval: &Approval) -> bool {
        self.run.is_none_or(|r| r == approval.run_id) && (!self.undecided || approval.decision.is_none())
    }
}

/// The store as shared by the rest of bosun.
pub type SharedStore = Arc<dyn Store>;
