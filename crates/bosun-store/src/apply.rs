//! The store's rules for a write batch, written once.
//!
//! For every [`Write`] this module decides what is read, what is checked (revisions,
//! lifecycle transitions, fields that never change, references, uniqueness), which rows
//! change, which change records and command events are written, and which typed error a
//! caller gets. A backend implements [`Transaction`]: the reads and row operations of one
//! open transaction in its own dialect, with no decisions of its own. Adding a resource kind
//! therefore costs a migration per SQL dialect, row codecs behind new `Transaction` methods
//! and conformance cases; its rules are written here, once.
//!
//! The trait's methods are `async` because PostgreSQL's driver is; SQLite (on its writer
//! thread) and memory implement them synchronously and drive [`apply_batch`] with
//! [`run_ready`].

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bosun_core::node::Gpu;
use bosun_core::{
    Actor, Approval, ApprovalId, ApprovalPolicy, ApprovalPolicyName, AuditEntry, BootstrapLog, ChangeOp, Command,
    CommandId, Fence, HealthReport, Instance, InstanceId, Lease, LeaseName, LeaseObservation, LlmUsage, Node, NodeId,
    Pool, PoolName, Price, ReplicaId, ResourceKind, Revision, RunEvent, RunId, Runbook, RunbookName, Setting,
    StoredPolicy, TaskRun, Timestamp, ToolCall, ToolDefinition, ToolName,
};

use bosun_core::SourceName;
use bosun_core::inventory::{InventoryKind, InventoryRecord, SourceStatus, SyncCounts, SyncRecord, SyncScope, Usage};

use crate::error::{Result, StoreError};
use crate::inventory::StoredRecordState;
use crate::ledger::{self, ArtifactInfo};
use crate::rules::{self, CommandHeader, InstanceHeader, NodeHeader};
use crate::sql::to_json;
use crate::store::StoreOptions;
use crate::write::{Committed, Write, WriteBatch, WriteOutcome};

/// What an insert found: a free key (the row is written) or a taken one (nothing written;
/// the rules turn it into `AlreadyExists`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Insert {
    Done,
    KeyTaken,
}

/// How a lease read locks its row until the transaction ends (PostgreSQL; one writer
/// elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseLock {
    /// A fence check: many fenced writers at once, but no take-over in between.
    Share,
    /// A take-over, renewal or release.
    Update,
}

/// Who wrote a batch, when and why: stamped on its change records and command events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp<'a> {
    pub at: Timestamp,
    pub actor: &'a Actor,
    pub reason: &'a str,
}

/// A change record as the rules build it; the backend assigns its sequence number.
#[derive(Debug, Clone)]
pub(crate) struct ChangeDraft {
    pub kind: ResourceKind,
    pub resource_id: String,
    pub op: ChangeOp,
    pub revision: Revision,
    /// The resource's JSON snapshot.
    pub resource: String,
}

/// One open transaction of a backend: reads of stored hard state and row operations, in the
/// backend's dialect. Reads lock what they return against concurrent writers until the
/// transaction ends (PostgreSQL: `FOR UPDATE`; SQLite and memory have one writer).
/// Implementations decide nothing: every check and every choice of error is made by
/// [`apply_batch`].
#[allow(async_fn_in_trait)] // crate-private; each caller uses one concrete backend
pub(crate) trait Transaction {
    async fn node_header(&mut self, id: &NodeId) -> Result<Option<NodeHeader>>;
    /// A node's hard state (its last heartbeat may be included; the rules drop it).
    async fn node(&mut self, id: &NodeId) -> Result<Option<Node>>;
    async fn node_exists(&mut self, id: &NodeId) -> Result<bool>;
    async fn instance_header(&mut self, id: &InstanceId) -> Result<Option<InstanceHeader>>;
    async fn instance(&mut self, id: &InstanceId) -> Result<Option<Instance>>;
    /// An instance linked to `node`, if any (the lowest id, so errors are stable).
    async fn instance_of_node(&mut self, node: &NodeId) -> Result<Option<InstanceId>>;
    /// Another instance than `except` with this provider and provider instance id.
    async fn instance_with_provider_id(
        &mut self,
        provider: &str,
        provider_instance_id: &str,
        except: &InstanceId,
    ) -> Result<Option<InstanceId>>;
    async fn command(&mut self, id: &CommandId) -> Result<Option<Command>>;
    /// Every command of `node`, in id order.
    async fn commands_of_node(&mut self, node: &NodeId) -> Result<Vec<Command>>;
    async fn pool_revision(&mut self, name: &PoolName) -> Result<Option<Revision>>;
    async fn pool(&mut self, name: &PoolName) -> Result<Option<Pool>>;
    async fn policy(&mut self) -> Result<Option<StoredPolicy>>;
    async fn lease(&mut self, name: &LeaseName, lock: LeaseLock) -> Result<Option<Lease>>;

    /// Inserts a node (at `node.revision`, without soft state) and its GPU inventory.
    async fn insert_node(&mut self, node: &Node, gpus: &[Gpu]) -> Result<Insert>;
    /// Replaces a node's hard state; its soft state (last heartbeat) stays as stored.
    async fn update_node(&mut self, node: &Node) -> Result<()>;
    async fn replace_gpus(&mut self, node: &NodeId, gpus: &[Gpu]) -> Result<()>;
    /// Removes a node and what hangs off it: GPU inventory, commands with their events,
    /// health history, metric samples, liveness. Bootstrap logs stay: they explain failed
    /// boots of machines that never became nodes.
    async fn delete_node(&mut self, id: &NodeId) -> Result<()>;
    async fn insert_instance(&mut self, instance: &Instance) -> Result<Insert>;
    async fn update_instance(&mut self, instance: &Instance) -> Result<()>;
    async fn delete_instance(&mut self, id: &InstanceId) -> Result<()>;
    async fn insert_command(&mut self, command: &Command) -> Result<Insert>;
    async fn update_command(&mut self, command: &Command) -> Result<()>;
    /// Appends an event in `command`'s current state to its history, numbered after the
    /// last one.
    async fn append_command_event(&mut self, stamp: Stamp<'_>, command: &Command) -> Result<()>;
    async fn insert_pool(&mut self, pool: &Pool) -> Result<Insert>;
    async fn update_pool(&mut self, pool: &Pool) -> Result<()>;
    async fn delete_pool(&mut self, name: &PoolName) -> Result<()>;
    /// Inserts the policy document; a taken key is reported, never an error, so a
    /// concurrent first put can be retried as an update.
    async fn insert_policy(&mut self, policy: &StoredPolicy) -> Result<Insert>;
    async fn update_policy(&mut self, policy: &StoredPolicy) -> Result<()>;
    async fn delete_policy(&mut self) -> Result<()>;
    async fn insert_lease(&mut self, lease: &Lease) -> Result<Insert>;
    async fn update_lease(&mut self, lease: &Lease) -> Result<()>;
    /// Appends a health report and drops the node's oldest beyond `keep`; returns its id.
    async fn append_health_report(&mut self, report: &HealthReport, keep: u32) -> Result<u64>;
    /// Appends a bootstrap log and drops the node's oldest beyond `keep`; returns its id.
    async fn append_bootstrap_log(&mut self, log: &BootstrapLog, keep: u32) -> Result<u64>;

    // The operations ledger (rules in `crate::ledger`). Reads of a run or an approval lock
    // the row, like every read here.
    async fn runbook(&mut self, name: &RunbookName) -> Result<Option<Runbook>>;
    async fn insert_runbook(&mut self, runbook: &Runbook) -> Result<Insert>;
    async fn update_runbook(&mut self, runbook: &Runbook) -> Result<()>;
    async fn delete_runbook(&mut self, name: &RunbookName) -> Result<()>;
    async fn run(&mut self, id: &RunId) -> Result<Option<TaskRun>>;
    /// Inserts a run and its targets.
    async fn insert_run(&mut self, run: &TaskRun) -> Result<Insert>;
    /// Replaces a run's row; its targets stay as stored (they never change).
    async fn update_run(&mut self, run: &TaskRun) -> Result<()>;
    /// Appends an event numbered one after the run's last; returns the number.
    async fn append_run_event(&mut self, at: Timestamp, event: &RunEvent) -> Result<u64>;
    async fn insert_artifact(&mut self, info: &ArtifactInfo, content: &[u8]) -> Result<Insert>;
    async fn tool(&mut self, name: &ToolName) -> Result<Option<ToolDefinition>>;
    async fn insert_tool(&mut self, tool: &ToolDefinition) -> Result<Insert>;
    async fn update_tool(&mut self, tool: &ToolDefinition) -> Result<()>;
    async fn delete_tool(&mut self, name: &ToolName) -> Result<()>;
    /// Appends a tool call record; returns its id.
    async fn append_tool_call(&mut self, at: Timestamp, call: &ToolCall) -> Result<u64>;
    async fn approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<Option<ApprovalPolicy>>;
    async fn insert_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<Insert>;
    async fn update_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<()>;
    async fn delete_approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<()>;
    async fn approval(&mut self, id: &ApprovalId) -> Result<Option<Approval>>;
    async fn insert_approval(&mut self, approval: &Approval) -> Result<Insert>;
    async fn update_approval(&mut self, approval: &Approval) -> Result<()>;
    /// Appends an audit entry numbered one after the last ever handed out (a gap-free
    /// counter, so retention deleting the oldest never reuses a number); returns it.
    async fn append_audit(&mut self, at: Timestamp, entry: &AuditEntry) -> Result<u64>;

    /// How a source's scope stands, if it was ever synced.
    async fn inventory_source(&mut self, source: &SourceName, scope: &SyncScope) -> Result<Option<SourceStatus>>;
    /// Creates or replaces a source scope's status.
    async fn put_inventory_source(&mut self, status: &SourceStatus) -> Result<()>;
    /// Records a sync (its `id` is ignored); returns the id assigned.
    async fn insert_inventory_sync(&mut self, sync: &SyncRecord) -> Result<u64>;
    /// The stored records of one kind in a source's scope, as a sync plans with them.
    async fn inventory_states(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        scope: &SyncScope,
    ) -> Result<Vec<StoredRecordState>>;
    async fn inventory_record(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        key: &str,
    ) -> Result<Option<InventoryRecord>>;
    /// Inserts new records of `kind` (storage with the hosts that see it).
    async fn insert_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()>;
    /// Replaces stored records of `kind`, all but their `first_seen`.
    async fn update_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()>;
    /// Rewrites the usage of stored records (no revision: usage is not state).
    async fn refresh_inventory_usage(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        usage: &[(String, Usage)],
        at: Timestamp,
    ) -> Result<()>;

    // LLM usage, prices and settings (rules in `crate::usage`).
    /// The model's open-ended price with the latest start, if any.
    async fn open_price(&mut self, provider: &str, model: &str) -> Result<Option<Price>>;
    /// The price in effect at `at` (the latest start among those covering it).
    async fn price_at(&mut self, provider: &str, model: &str, at: Timestamp) -> Result<Option<Price>>;
    /// Inserts a price, or replaces the one with its provider, model and start.
    async fn put_price(&mut self, price: &Price) -> Result<()>;
    /// Ends `price` at `to`.
    async fn close_price(&mut self, price: &Price, to: Timestamp) -> Result<()>;
    /// Inserts a request, its response and its token usage; a taken id or provider request
    /// id is reported.
    async fn insert_llm_usage(&mut self, usage: &LlmUsage) -> Result<Insert>;
    async fn setting(&mut self, name: &str) -> Result<Option<Setting>>;
    async fn insert_setting(&mut self, setting: &Setting) -> Result<Insert>;
    async fn update_setting(&mut self, setting: &Setting) -> Result<()>;

    /// The revision of the latest change record of `kind` under `id`, if there is one.
    async fn last_change_revision(&mut self, kind: ResourceKind, id: &str) -> Result<Option<Revision>>;
    /// Appends change records in order; returns their sequence numbers, in the same order.
    async fn append_changes(&mut self, stamp: Stamp<'_>, changes: &[ChangeDraft]) -> Result<Vec<u64>>;
}

/// Applies every write of `batch` through `tx`. On error the caller rolls the transaction
/// back: the rules leave nothing half-done they would have to undo themselves.
pub(crate) async fn apply_batch<T: Transaction>(
    tx: &mut T,
    options: &StoreOptions,
    now: Timestamp,
    batch: &WriteBatch,
) -> Result<Committed> {
    let stamp = Stamp { at: now, actor: &batch.actor, reason: &batch.reason };
    if let Some(fence) = &batch.fence {
        check_fence(tx, fence, LeaseLock::Share).await?;
    }
    let mut outcomes = Vec::with_capacity(batch.writes.len());
    let mut changes = Vec::new();
    // For each change record, the outcome whose `change_seq` it provides.
    let mut provides = Vec::new();
    for write in &batch.writes {
        let applied = apply(tx, options, stamp, write).await?;
        let last = applied.changes.len().checked_sub(1);
        for (i, change) in applied.changes.into_iter().enumerate() {
            provides.push((Some(i) == last).then_some(outcomes.len()));
            changes.push(change);
        }
        outcomes.push(applied.outcome);
    }
    if !changes.is_empty() {
        let seqs = tx.append_changes(stamp, &changes).await?;
        if seqs.len() != changes.len() {
            return Err(StoreError::corrupt("changes.seq", "the backend assigned fewer numbers than records"));
        }
        for (outcome, seq) in provides.into_iter().zip(seqs) {
            if let Some(index) = outcome
                && let WriteOutcome::Resource { change_seq, .. } | WriteOutcome::Synced { change_seq, .. } =
                    &mut outcomes[index]
            {
                *change_seq = seq;
            }
        }
    }
    Ok(Committed { outcomes })
}

/// Polls a future that never waits: [`apply_batch`] over a synchronous [`Transaction`].
pub(crate) fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        // Only synchronous transactions are driven this way; their methods never await
        // anything that can be pending.
        Poll::Pending => unreachable!("a synchronous store transaction waited"),
    }
}

/// What one write produced: its outcome and its change records (the last one provides the
/// outcome's sequence number).
pub(crate) struct Applied {
    outcome: WriteOutcome,
    changes: Vec<ChangeDraft>,
}

impl Applied {
    pub(crate) fn appended(id: u64) -> Self {
        Applied { outcome: WriteOutcome::Appended { id }, changes: Vec::new() }
    }

    pub(crate) fn stored(revision: Revision) -> Self {
        Applied { outcome: WriteOutcome::Stored { revision }, changes: Vec::new() }
    }

    pub(crate) fn priced(cost_micro_usd: Option<u64>) -> Self {
        Applied { outcome: WriteOutcome::Priced { cost_micro_usd }, changes: Vec::new() }
    }

    pub(crate) fn synced(sync_id: u64, counts: SyncCounts, changes: Vec<ChangeDraft>) -> Self {
        Applied { outcome: WriteOutcome::Synced { sync_id, counts, change_seq: 0 }, changes }
    }

    pub(crate) fn resource<T: serde::Serialize>(
        kind: ResourceKind,
        id: &str,
        op: ChangeOp,
        revision: Revision,
        value: &T,
    ) -> Self {
        Applied {
            outcome: WriteOutcome::Resource { revision, change_seq: 0 },
            changes: vec![draft(kind, id, op, revision, value)],
        }
    }
}

fn draft<T: serde::Serialize>(
    kind: ResourceKind,
    id: &str,
    op: ChangeOp,
    revision: Revision,
    value: &T,
) -> ChangeDraft {
    ChangeDraft { kind, resource_id: id.to_owned(), op, revision, resource: to_json(value) }
}

pub(crate) fn created(insert: Insert, kind: ResourceKind, id: &str) -> Result<()> {
    match insert {
        Insert::Done => Ok(()),
        Insert::KeyTaken => Err(StoreError::already_exists(kind, id)),
    }
}

/// Compare-and-set against an optional expected revision.
pub(crate) fn check_expected(kind: ResourceKind, id: &str, stored: Revision, expected: Option<Revision>) -> Result<()> {
    expected.map_or(Ok(()), |expected| rules::check_expected(kind, id, stored, expected))
}

async fn apply<T: Transaction>(tx: &mut T, options: &StoreOptions, stamp: Stamp<'_>, write: &Write) -> Result<Applied> {
    match write {
        Write::CreateNode { node, gpus } => {
            rules::check_node_create(node, gpus)?;
            let mut stored = (**node).clone();
            stored.revision = Revision::FIRST;
            stored.last_heartbeat = None;
            created(tx.insert_node(&stored, gpus).await?, ResourceKind::Node, node.id.as_str())?;
            Ok(Applied::resource(ResourceKind::Node, node.id.as_str(), ChangeOp::Created, stored.revision, &stored))
        }
        Write::UpdateNode { node, expected, gpus } => {
            let id = node.id.as_str();
            let header =
                tx.node_header(&node.id).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?;
            rules::check_node_update(&header, node, *expected, gpus.as_deref())?;
            let mut stored = (**node).clone();
            stored.revision = expected.next();
            tx.update_node(&stored).await?;
            if let Some(gpus) = gpus {
                tx.replace_gpus(&node.id, gpus).await?;
            }
            Ok(Applied::resource(ResourceKind::Node, id, ChangeOp::Updated, stored.revision, &stored))
        }
        Write::DeleteNode { id, expected } => delete_node(tx, id, *expected).await,
        Write::CreateInstance(instance) => {
            rules::check_instance_create(instance)?;
            check_instance_refs(tx, instance).await?;
            let mut stored = (**instance).clone();
            stored.revision = Revision::FIRST;
            let id = instance.id.as_str();
            created(tx.insert_instance(&stored).await?, ResourceKind::Instance, id)?;
            Ok(Applied::resource(ResourceKind::Instance, id, ChangeOp::Created, stored.revision, &stored))
        }
        Write::UpdateInstance { instance, expected } => {
            let id = instance.id.as_str();
            let header = tx
                .instance_header(&instance.id)
                .await?
                .ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?;
            rules::check_instance_update(&header, instance, *expected)?;
            check_instance_refs(tx, instance).await?;
            let mut stored = (**instance).clone();
            stored.revision = expected.next();
            tx.update_instance(&stored).await?;
            Ok(Applied::resource(ResourceKind::Instance, id, ChangeOp::Updated, stored.revision, &stored))
        }
        Write::DeleteInstance { id, expected } => {
            let stored = tx.instance(id).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))?;
            check_expected(ResourceKind::Instance, id.as_str(), stored.revision, *expected)?;
            tx.delete_instance(id).await?;
            Ok(Applied::resource(ResourceKind::Instance, id.as_str(), ChangeOp::Deleted, stored.revision, &stored))
        }
        Write::CreateCommand(command) => {
            rules::check_command_create(command)?;
            if !tx.node_exists(&command.node_id).await? {
                return Err(StoreError::not_found(ResourceKind::Node, &command.node_id));
            }
            let mut stored = (**command).clone();
            stored.revision = Revision::FIRST;
            let id = rules::command_id_text(&command.id);
            created(tx.insert_command(&stored).await?, ResourceKind::Command, &id)?;
            tx.append_command_event(stamp, &stored).await?;
            Ok(Applied::resource(ResourceKind::Command, &id, ChangeOp::Created, stored.revision, &stored))
        }
        Write::UpdateCommand { command, expected } => {
            let id = rules::command_id_text(&command.id);
            let current =
                tx.command(&command.id).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Command, &id))?;
            let adds_event = rules::check_command_update(&CommandHeader::from(&current), command, *expected)?;
            let mut stored = (**command).clone();
            stored.revision = expected.next();
            tx.update_command(&stored).await?;
            if adds_event {
                tx.append_command_event(stamp, &stored).await?;
            }
            Ok(Applied::resource(ResourceKind::Command, &id, ChangeOp::Updated, stored.revision, &stored))
        }
        Write::CreatePool(pool) => {
            rules::check_pool(pool)?;
            let mut stored = (**pool).clone();
            stored.revision = Revision::FIRST;
            let name = pool.name.as_str();
            created(tx.insert_pool(&stored).await?, ResourceKind::Pool, name)?;
            Ok(Applied::resource(ResourceKind::Pool, name, ChangeOp::Created, stored.revision, &stored))
        }
        Write::UpdatePool { pool, expected } => {
            let name = pool.name.as_str();
            let current =
                tx.pool_revision(&pool.name).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?;
            rules::check_expected(ResourceKind::Pool, name, current, *expected)?;
            rules::check_pool(pool)?;
            let mut stored = (**pool).clone();
            stored.revision = expected.next();
            tx.update_pool(&stored).await?;
            Ok(Applied::resource(ResourceKind::Pool, name, ChangeOp::Updated, stored.revision, &stored))
        }
        Write::DeletePool { name, expected } => {
            let stored = tx.pool(name).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))?;
            check_expected(ResourceKind::Pool, name.as_str(), stored.revision, *expected)?;
            tx.delete_pool(name).await?;
            Ok(Applied::resource(ResourceKind::Pool, name.as_str(), ChangeOp::Deleted, stored.revision, &stored))
        }
        Write::PutPolicy { policy, expected } => put_policy(tx, policy, *expected).await,
        Write::DeletePolicy { expected } => {
            let id = StoredPolicy::RESOURCE_ID;
            let stored = tx.policy().await?.ok_or_else(|| StoreError::not_found(ResourceKind::Policy, id))?;
            check_expected(ResourceKind::Policy, id, stored.revision, *expected)?;
            tx.delete_policy().await?;
            Ok(Applied::resource(ResourceKind::Policy, id, ChangeOp::Deleted, stored.revision, &stored))
        }
        Write::AppendHealthReport(report) => {
            rules::check_health_report(report)?;
            if !tx.node_exists(&report.node_id).await? {
                return Err(StoreError::not_found(ResourceKind::Node, &report.node_id));
            }
            Ok(Applied::appended(tx.append_health_report(report, options.health_history_per_node).await?))
        }
        Write::AppendBootstrapLog(log) => {
            Ok(Applied::appended(tx.append_bootstrap_log(log, options.bootstrap_logs_per_node).await?))
        }
        Write::AcquireLease { lease, holder, observed } => {
            acquire_lease(tx, stamp, lease, holder, observed.as_ref()).await
        }
        Write::RenewLease(fence) => {
            let mut lease = check_fence(tx, fence, LeaseLock::Update).await?;
            lease.renewals += 1;
            lease.renewed_at = stamp.at;
            tx.update_lease(&lease).await?;
            Ok(Applied {
                outcome: WriteOutcome::Renewed { revision: lease.revision, renewals: lease.renewals },
                changes: Vec::new(),
            })
        }
        Write::ReleaseLease(fence) => {
            let mut lease = check_fence(tx, fence, LeaseLock::Update).await?;
            lease.holder = None;
            lease.revision = lease.revision.next();
            lease.renewed_at = stamp.at;
            tx.update_lease(&lease).await?;
            Ok(Applied::resource(ResourceKind::Lease, lease.name.as_str(), ChangeOp::Updated, lease.revision, &lease))
        }
        Write::PutRunbook { runbook, expected } => ledger::put_named(tx, &**runbook, *expected).await,
        Write::DeleteRunbook { name, expected } => ledger::delete_named::<_, Runbook>(tx, name, *expected).await,
        Write::CreateRun(run) => ledger::create_run(tx, run).await,
        Write::UpdateRun { run, expected } => ledger::update_run(tx, run, *expected).await,
        Write::AppendRunEvent(event) => ledger::append_run_event(tx, stamp, event).await,
        Write::PutArtifact(artifact) => ledger::put_artifact(tx, options, stamp, artifact).await,
        Write::PutTool { tool, expected } => ledger::put_named(tx, &**tool, *expected).await,
        Write::DeleteTool { name, expected } => ledger::delete_named::<_, ToolDefinition>(tx, name, *expected).await,
        Write::RecordToolCall(call) => ledger::record_tool_call(tx, stamp, call).await,
        Write::PutApprovalPolicy { policy, expected } => ledger::put_named(tx, &**policy, *expected).await,
        Write::DeleteApprovalPolicy { name, expected } => {
            ledger::delete_named::<_, ApprovalPolicy>(tx, name, *expected).await
        }
        Write::CreateApproval(approval) => ledger::create_approval(tx, approval).await,
        Write::UpdateApproval { approval, expected } => ledger::update_approval(tx, approval, *expected).await,
        Write::AppendAudit(entry) => ledger::append_audit(tx, stamp, entry).await,
        Write::SyncInventory(sync) => crate::inventory::sync(tx, stamp, sync).await,
        Write::PutPrice(price) => crate::usage::put_price(tx, stamp, price).await,
        Write::RecordLlmUsage(usage) => crate::usage::record_llm_usage(tx, usage).await,
        Write::PutSetting { setting, expected } => crate::usage::put_setting(tx, stamp, setting, *expected).await,
        Write::RecordDrift { id, report } => {
            rules::check_drift_id(id)?;
            // Retention keeps the latest record of every resource, so the count goes on.
            let (op, revision) = match tx.last_change_revision(ResourceKind::Drift, id).await? {
                None => (ChangeOp::Created, Revision::FIRST),
                Some(last) => (ChangeOp::Updated, last.next()),
            };
            Ok(Applied::resource(ResourceKind::Drift, id, op, revision, report))
        }
    }
}

/// The lease as stored, if `fence` is its current holder and epoch; `Fenced` otherwise.
async fn check_fence<T: Transaction>(tx: &mut T, fence: &Fence, lock: LeaseLock) -> Result<Lease> {
    let lease = tx.lease(&fence.lease, lock).await?;
    match lease {
        Some(lease) if lease.holder.as_ref() == Some(&fence.holder) && lease.epoch == fence.epoch => Ok(lease),
        other => {
            let current = match other {
                None => "the lease does not exist".to_owned(),
                Some(Lease { holder: None, epoch, .. }) => format!("released in epoch {epoch}"),
                Some(Lease { holder: Some(holder), epoch, .. }) => format!("epoch {epoch} is held by {holder}"),
            };
            Err(StoreError::Fenced { fence: fence.clone(), current })
        }
    }
}

/// Takes a lease: new, released, held by the taker itself (it restarted), or unchanged
/// since `observed` (its holder stopped renewing, as the taker judged on its own clock).
async fn acquire_lease<T: Transaction>(
    tx: &mut T,
    stamp: Stamp<'_>,
    name: &LeaseName,
    holder: &ReplicaId,
    observed: Option<&LeaseObservation>,
) -> Result<Applied> {
    let taken = |epoch: u64, revision: Revision| Lease {
        name: name.clone(),
        holder: Some(holder.clone()),
        epoch,
        revision,
        renewals: 0,
        acquired_at: stamp.at,
        renewed_at: stamp.at,
    };
    let Some(current) = tx.lease(name, LeaseLock::Update).await? else {
        let lease = taken(1, Revision::FIRST);
        return match tx.insert_lease(&lease).await? {
            Insert::Done => {
                Ok(Applied::resource(ResourceKind::Lease, name.as_str(), ChangeOp::Created, lease.revision, &lease))
            }
            // Another replica created it first (PostgreSQL): it holds it now.
            Insert::KeyTaken => {
                Err(StoreError::LeaseHeld { lease: name.clone(), holder: "another replica".into(), epoch: 1 })
            }
        };
    };
    let free = match &current.holder {
        None => true,
        Some(h) if h == holder => true,
        Some(_) => observed == Some(&current.observation()),
    };
    if !free {
        return Err(StoreError::LeaseHeld {
            lease: name.clone(),
            holder: current.holder.as_ref().map_or_else(String::new, ToString::to_string),
            epoch: current.epoch,
        });
    }
    let lease = taken(current.epoch + 1, current.revision.next());
    tx.update_lease(&lease).await?;
    Ok(Applied::resource(ResourceKind::Lease, name.as_str(), ChangeOp::Updated, lease.revision, &lease))
}

/// Deletes a node. Refused while an instance links to it (deleting would silently rewrite
/// the instance); its commands go with it, each with a change record, so the change log
/// stays a complete account of what exists.
async fn delete_node<T: Transaction>(tx: &mut T, id: &NodeId, expected: Option<Revision>) -> Result<Applied> {
    let mut stored = tx.node(id).await?.ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))?;
    check_expected(ResourceKind::Node, id.as_str(), stored.revision, expected)?;
    if let Some(instance) = tx.instance_of_node(id).await? {
        return Err(rules::linked_instance_error(id, &instance));
    }
    let mut changes: Vec<ChangeDraft> = tx
        .commands_of_node(id)
        .await?
        .iter()
        .map(|c| draft(ResourceKind::Command, &rules::command_id_text(&c.id), ChangeOp::Deleted, c.revision, c))
        .collect();
    tx.delete_node(id).await?;
    // Change records hold hard state only.
    stored.last_heartbeat = None;
    changes.push(draft(ResourceKind::Node, id.as_str(), ChangeOp::Deleted, stored.revision, &stored));
    Ok(Applied { outcome: WriteOutcome::Resource { revision: stored.revision, change_seq: 0 }, changes })
}

/// An instance's node must exist and its provider instance id must be unique per provider.
async fn check_instance_refs<T: Transaction>(tx: &mut T, instance: &Instance) -> Result<()> {
    if let Some(node) = &instance.node_id
        && !tx.node_exists(node).await?
    {
        return Err(StoreError::not_found(ResourceKind::Node, node));
    }
    if let Some(pid) = &instance.provider_instance_id
        && tx.instance_with_provider_id(&instance.provider, pid, &instance.id).await?.is_some()
    {
        return Err(StoreError::already_exists(ResourceKind::Instance, format!("{}/{pid}", instance.provider)));
    }
    Ok(())
}

/// Stores the policy document: created when none is stored, replaced otherwise (with
/// `expected`, only at that revision).
async fn put_policy<T: Transaction>(tx: &mut T, policy: &StoredPolicy, expected: Option<Revision>) -> Result<Applied> {
    rules::check_policy(policy)?;
    let id = StoredPolicy::RESOURCE_ID;
    let current = match tx.policy().await? {
        Some(current) => current,
        None if expected.is_some() => return Err(StoreError::not_found(ResourceKind::Policy, id)),
        None => {
            let mut stored = policy.clone();
            stored.revision = Revision::FIRST;
            match tx.insert_policy(&stored).await? {
                Insert::Done => {
                    return Ok(Applied::resource(
                        ResourceKind::Policy,
                        id,
                        ChangeOp::Created,
                        stored.revision,
                        &stored,
                    ));
                }
                // A concurrent first put committed in between (PostgreSQL): replace its
                // document, as a put after it would.
                Insert::KeyTaken => tx
                    .policy()
                    .await?
                    .ok_or_else(|| StoreError::unavailable("the policy was created and deleted concurrently; retry"))?,
            }
        }
    };
    check_expected(ResourceKind::Policy, id, current.revision, expected)?;
    let mut stored = policy.clone();
    stored.revision = current.revision.next();
    tx.update_policy(&stored).await?;
    Ok(Applied::resource(ResourceKind::Policy, id, ChangeOp::Updated, stored.revision, &stored))
}
