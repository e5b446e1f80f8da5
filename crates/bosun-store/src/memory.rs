//! The in-memory backend, for tests, demos and the simulator. Nothing survives the process.
//!
//! All state sits behind one mutex. A commit runs the shared rules (`crate::apply`) over
//! this module's `Transaction`: the rows change in place and each mutation records an undo
//! action; if any write fails, the undo log runs backwards and the state is exactly as
//! before, which gives the same all-or-nothing behaviour as a SQL transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bosun_core::inventory::{InventoryKind, InventoryRecord, SourceStatus, SyncRecord, SyncScope, Usage};
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, ApprovalPolicyName, AuditEntry, BootstrapLog, ChangeOp, ChangeRecord,
    Command, CommandEvent, CommandId, HealthReport, Heartbeat, Instance, InstanceId, InstanceState, Lease, LeaseName,
    LlmUsage, LlmUsageId, MetricSample, Node, NodeId, Pool, PoolName, Price, ResourceKind, Revision, RunEvent, RunId,
    Runbook, RunbookName, Setting, SourceName, StoredPolicy, TaskRun, Timestamp, ToolCall, ToolDefinition, ToolName,
    UsageFilter, UsageRow,
};

use crate::apply::{self, ChangeDraft, Insert, LeaseLock, Stamp, Transaction, run_ready};
use crate::error::{Result, StoreError};
use crate::integrity::{
    self, AuditNumbers, ChangeLogChecker, CommandFacts, InstanceFacts, IntegritySource, Inventory, Orphan, Reference,
};
use crate::inventory::{InventoryFilter, StoredRecordState};
use crate::ledger::{ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall};
use crate::query::{ChangeFilter, CommandFilter, InstanceFilter, NodeAfter, NodeFilter, NodeOrder, Page, PageRequest};
use crate::rules::{InstanceHeader, NodeHeader};
use crate::soft_state::{dedupe_heartbeats, dedupe_samples};
use crate::store::{
    ApprovalFilter, Backend, IntegrityFinding, RetentionPolicy, RetentionReport, Store, StoreCounts, StoreOptions,
};
use crate::transfer::{
    ArtifactRecord, Batcher, CommandRecord, DocumentText, DumpMessage, LoadMessage, NodeRecord, Record, RecordKind,
    RunRecord, Sequences, Snapshot, Target, load_abandoned, target_not_empty,
};
use crate::write::{Committed, StoredHealthReport, WriteBatch};

mod inventory;

#[derive(Debug, Default, Clone)]
struct State {
    nodes: BTreeMap<NodeId, Node>,
    gpus: HashMap<NodeId, Vec<Gpu>>,
    instances: BTreeMap<InstanceId, Instance>,
    commands: BTreeMap<CommandId, Command>,
    command_events: HashMap<CommandId, Vec<CommandEvent>>,
    pools: BTreeMap<PoolName, Pool>,
    policy: Option<StoredPolicy>,
    leases: BTreeMap<LeaseName, Lease>,
    replicas: BTreeMap<bosun_core::ReplicaId, bosun_core::ReplicaPresence>,
    health: HashMap<NodeId, VecDeque<StoredHealthReport>>,
    bootstrap: HashMap<NodeId, VecDeque<BootstrapLog>>,
    /// Per node: ring slot -> sample.
    samples: HashMap<NodeId, BTreeMap<u32, MetricSample>>,
    changes: BTreeMap<u64, ChangeRecord>,
    last_change_seq: u64,
    /// How far retention has compacted the change log (see `integrity`).
    changes_compacted_through: u64,
    last_health_id: u64,
    last_bootstrap_id: u64,
    ledger: Ledger,
    inventory: inventory::Inventory,
    usage: UsageState,
    closed: bool,
}

/// LLM usage, prices and settings.
#[derive(Debug, Default, Clone)]
struct UsageState {
    /// By provider, model and start.
    prices: BTreeMap<(String, String, Timestamp), Price>,
    requests: BTreeMap<LlmUsageId, LlmUsage>,
    /// (provider, request id) -> the request's id.
    request_ids: BTreeMap<(String, String), LlmUsageId>,
    settings: BTreeMap<String, Setting>,
}

impl UsageState {
    /// What a new store holds: the seeded prices.
    fn seeded() -> Self {
        let prices = crate::usage::seed_prices()
            .into_iter()
            .map(|p| ((p.provider.clone(), p.model.clone(), p.effective_from), p))
            .collect();
        UsageState { prices, ..UsageState::default() }
    }
}

impl Ledger {
    fn is_empty(&self) -> bool {
        self.runbooks.is_empty()
            && self.runs.is_empty()
            && self.tools.is_empty()
            && self.approval_policies.is_empty()
            && self.audit.is_empty()
    }
}

/// The operations ledger's records.
#[derive(Debug, Default, Clone)]
struct Ledger {
    runbooks: BTreeMap<RunbookName, Runbook>,
    runs: BTreeMap<RunId, TaskRun>,
    events: HashMap<RunId, Vec<StoredRunEvent>>,
    artifacts: BTreeMap<(RunId, String), (ArtifactInfo, Vec<u8>)>,
    tools: BTreeMap<ToolName, ToolDefinition>,
    tool_calls: BTreeMap<u64, StoredToolCall>,
    approval_policies: BTreeMap<ApprovalPolicyName, ApprovalPolicy>,
    approvals: BTreeMap<ApprovalId, Approval>,
    audit: BTreeMap<u64, StoredAuditEntry>,
    last_audit_seq: u64,
    last_tool_call_id: u64,
}

impl State {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.instances.is_empty()
            && self.commands.is_empty()
            && self.pools.is_empty()
            && self.policy.is_none()
            && self.leases.is_empty()
            && self.changes.is_empty()
            && self.bootstrap.is_empty()
            && self.ledger.is_empty()
            && self.inventory.is_empty()
    }

    /// Adds one loaded record as it is, refusing what a SQL schema would refuse
    /// (duplicate keys, references to missing nodes).
    fn load(&mut self, record: Record) -> Result<()> {
        let missing_node = |id: &NodeId| StoreError::invalid("reference", format_args!("refers to missing node {id}"));
        let missing_run = |id: &RunId| StoreError::invalid("reference", format_args!("refers to missing run {id}"));
        match record {
            Record::Policy(policy) => {
                if self.policy.replace(policy).is_some() {
                    return Err(StoreError::already_exists(ResourceKind::Policy, StoredPolicy::RESOURCE_ID));
                }
            }
            Record::Lease(lease) => {
                if self.leases.contains_key(&lease.name) {
                    return Err(StoreError::already_exists(ResourceKind::Lease, &lease.name));
                }
                self.leases.insert(lease.name.clone(), *lease);
            }
            Record::Pool(pool) => {
                if self.pools.contains_key(&pool.name) {
                    return Err(StoreError::already_exists(ResourceKind::Pool, &pool.name));
                }
                self.pools.insert(pool.name.clone(), *pool);
            }
            Record::Node(record) => {
                let NodeRecord { mut node, mut gpus, last_heartbeat } = *record;
                if self.nodes.contains_key(&node.id) {
                    return Err(StoreError::already_exists(ResourceKind::Node, &node.id));
                }
                gpus.sort_by_key(|g| g.index);
                node.last_heartbeat = last_heartbeat;
                self.gpus.insert(node.id.clone(), gpus);
                self.nodes.insert(node.id.clone(), node);
            }
            Record::Instance(instance) => {
                if self.instances.contains_key(&instance.id) {
                    return Err(StoreError::already_exists(ResourceKind::Instance, &instance.id));
                }
                if let Some(node) = &instance.node_id
                    && !self.nodes.contains_key(node)
                {
                    return Err(missing_node(node));
                }
                self.instances.insert(instance.id.clone(), *instance);
            }
            Record::Command(record) => {
                let CommandRecord { command, events } = *record;
                if self.commands.contains_key(&command.id) {
                    return Err(StoreError::already_exists(ResourceKind::Command, command.id));
                }
                if !self.nodes.contains_key(&command.node_id) {
                    return Err(missing_node(&command.node_id));
                }
                if !events.is_empty() {
                    self.command_events.insert(command.id, events);
                }
                self.commands.insert(command.id, command);
            }
            Record::HealthReport(report) => {
                if !self.nodes.contains_key(&report.report.node_id) {
                    return Err(missing_node(&report.report.node_id));
                }
                self.last_health_id = self.last_health_id.max(report.id);
                self.health.entry(report.report.node_id.clone()).or_default().push_back(*report);
            }
            Record::BootstrapLog(log) => {
                self.last_bootstrap_id = self.last_bootstrap_id.max(log.id);
                self.bootstrap.entry(log.node_id.clone()).or_default().push_back(*log);
            }
            Record::Runbook(runbook) => {
                if self.ledger.runbooks.insert(runbook.name.clone(), (*runbook).clone()).is_some() {
                    return Err(StoreError::already_exists(ResourceKind::Runbook, &runbook.name));
                }
            }
            Record::Tool(tool) => {
                if self.ledger.tools.insert(tool.name.clone(), (*tool).clone()).is_some() {
                    return Err(StoreError::already_exists(ResourceKind::Tool, &tool.name));
                }
            }
            Record::ApprovalPolicy(policy) => {
                if self.ledger.approval_policies.insert(policy.name.clone(), (*policy).clone()).is_some() {
                    return Err(StoreError::already_exists(ResourceKind::ApprovalPolicy, &policy.name));
                }
            }
            Record::Run(record) => {
                let RunRecord { run, events } = *record;
                if self.ledger.runs.contains_key(&run.id) {
                    return Err(StoreError::already_exists(ResourceKind::Run, run.id));
                }
                if !events.is_empty() {
                    self.ledger.events.insert(run.id, events);
                }
                self.ledger.runs.insert(run.id, run);
            }
            Record::Approval(approval) => {
                if !self.ledger.runs.contains_key(&approval.run_id) {
                    return Err(missing_run(&approval.run_id));
                }
                if self.ledger.approvals.insert(approval.id, (*approval).clone()).is_some() {
                    return Err(StoreError::already_exists(ResourceKind::Approval, approval.id));
                }
            }
            Record::Artifact(artifact) => {
                let ArtifactRecord { info, content } = *artifact;
                if !self.ledger.runs.contains_key(&info.run_id) {
                    return Err(missing_run(&info.run_id));
                }
                self.ledger.artifacts.insert((info.run_id, info.name.clone()), (info, content));
            }
            Record::ToolCall(call) => {
                if !self.ledger.runs.contains_key(&call.call.run_id) {
                    return Err(missing_run(&call.call.run_id));
                }
                self.ledger.tool_calls.insert(call.id, *call);
            }
            Record::Audit(entry) => {
                self.ledger.last_audit_seq = self.ledger.last_audit_seq.max(entry.seq);
                self.ledger.audit.insert(entry.seq, *entry);
            }
            Record::Price(price) => {
                let key = (price.provider.clone(), price.model.clone(), price.effective_from);
                if self.usage.prices.contains_key(&key) {
                    return Err(StoreError::invalid(
                        "provider_pricing",
                        format_args!("{}/{} from {} appears twice", key.0, key.1, key.2),
                    ));
                }
                self.usage.prices.insert(key, *price);
            }
            Record::LlmUsage(usage) => {
                if let Some(run) = &usage.run_id
                    && !self.ledger.runs.contains_key(run)
                {
                    return Err(missing_run(run));
                }
                let request_key = usage.request_id.as_ref().map(|r| (usage.provider.clone(), r.clone()));
                if self.usage.requests.contains_key(&usage.id)
                    || request_key.as_ref().is_some_and(|k| self.usage.request_ids.contains_key(k))
                {
                    return Err(StoreError::already_exists(ResourceKind::LlmUsage, usage.id));
                }
                if let Some(key) = request_key {
                    self.usage.request_ids.insert(key, usage.id);
                }
                self.usage.requests.insert(usage.id, *usage);
            }
            Record::Setting(setting) => {
                if self.usage.settings.contains_key(&setting.name) {
                    return Err(StoreError::already_exists(ResourceKind::Setting, &setting.name));
                }
                self.usage.settings.insert(setting.name.clone(), *setting);
            }
            Record::InventoryRecord(record) => {
                let kind = record.kind();
                let key = (record.source.clone(), record.key.clone());
                let records = self.inventory.records.entry(kind).or_default();
                if records.contains_key(&key) {
                    return Err(StoreError::already_exists(kind.resource_kind(), record.id()));
                }
                records.insert(key, *record);
            }
            Record::InventorySource(status) => {
                let key = (status.source.clone(), status.scope.as_stored().to_owned());
                if self.inventory.sources.contains_key(&key) {
                    return Err(StoreError::invalid(
                        "inventory_sources",
                        format_args!("{} ({:?}) appears twice", status.source, status.scope.as_stored()),
                    ));
                }
                self.inventory.sources.insert(key, *status);
            }
            Record::InventorySync(sync) => {
                if self.inventory.syncs.contains_key(&sync.id) {
                    return Err(StoreError::invalid("inventory_syncs.id", format_args!("{} appears twice", sync.id)));
                }
                self.inventory.last_sync_id = self.inventory.last_sync_id.max(sync.id);
                self.inventory.syncs.insert(sync.id, *sync);
            }
            Record::Change(change) => {
                if self.changes.contains_key(&change.seq) {
                    return Err(StoreError::invalid("changes.seq", format_args!("{} appears twice", change.seq)));
                }
                let change = change
                    .try_map_resource(|document| document.to_value())
                    .map_err(|e| StoreError::invalid("changes.resource", e))?;
                self.last_change_seq = self.last_change_seq.max(change.seq);
                self.changes.insert(change.seq, change);
            }
        }
        Ok(())
    }
}

/// Sends a copy of `state` to a dump, as the [`Store::dump`] contract orders it.
async fn dump_state(mut state: State, sink: &tokio::sync::mpsc::Sender<DumpMessage>) -> Result<()> {
    let mut health: Vec<StoredHealthReport> = state.health.into_values().flatten().collect();
    health.sort_by_key(|r| r.id);
    let mut bootstrap: Vec<BootstrapLog> = state.bootstrap.into_values().flatten().collect();
    bootstrap.sort_by_key(|l| l.id);
    let counts = [
        (RecordKind::Policy, u64::from(state.policy.is_some())),
        (RecordKind::Lease, state.leases.len() as u64),
        (RecordKind::Pool, state.pools.len() as u64),
        (RecordKind::Node, state.nodes.len() as u64),
        (RecordKind::Instance, state.instances.len() as u64),
        (RecordKind::Command, state.commands.len() as u64),
        (RecordKind::HealthReport, health.len() as u64),
        (RecordKind::BootstrapLog, bootstrap.len() as u64),
        (RecordKind::Runbook, state.ledger.runbooks.len() as u64),
        (RecordKind::Tool, state.ledger.tools.len() as u64),
        (RecordKind::ApprovalPolicy, state.ledger.approval_policies.len() as u64),
        (RecordKind::Run, state.ledger.runs.len() as u64),
        (RecordKind::Approval, state.ledger.approvals.len() as u64),
        (RecordKind::Artifact, state.ledger.artifacts.len() as u64),
        (RecordKind::ToolCall, state.ledger.tool_calls.len() as u64),
        (RecordKind::Audit, state.ledger.audit.len() as u64),
        (RecordKind::Price, state.usage.prices.len() as u64),
        (RecordKind::LlmUsage, state.usage.requests.len() as u64),
        (RecordKind::Setting, state.usage.settings.len() as u64),
        (RecordKind::InventoryRecord, state.inventory.records.values().map(|r| r.len() as u64).sum()),
        (RecordKind::InventorySource, state.inventory.sources.len() as u64),
        (RecordKind::InventorySync, state.inventory.syncs.len() as u64),
        (RecordKind::Change, state.changes.len() as u64),
    ]
    .into_iter()
    .collect();
    let sequences = Sequences {
        change_seq: state.last_change_seq,
        health_report_id: state.last_health_id,
        bootstrap_log_id: state.last_bootstrap_id,
        changes_compacted_through: state.changes_compacted_through,
        audit_seq: state.ledger.last_audit_seq,
        tool_call_id: state.ledger.last_tool_call_id,
        inventory_sync_id: state.inventory.last_sync_id,
    };
    let mut out = Batcher::new(sink);
    out.start(Snapshot { counts, sequences }).await?;
    if let Some(policy) = state.policy {
        out.push(Record::Policy(policy)).await?;
    }
    for lease in std::mem::take(&mut state.leases).into_values() {
        out.push(Record::Lease(Box::new(lease))).await?;
    }
    for pool in state.pools.into_values() {
        out.push(Record::Pool(Box::new(pool))).await?;
    }
    for mut node in state.nodes.into_values() {
        let mut gpus = state.gpus.remove(&node.id).unwrap_or_default();
        gpus.sort_by_key(|g| g.index);
        let last_heartbeat = node.last_heartbeat.take();
        out.push(Record::Node(Box::new(NodeRecord { node, gpus, last_heartbeat }))).await?;
    }
    for instance in state.instances.into_values() {
        out.push(Record::Instance(Box::new(instance))).await?;
    }
    for command in state.commands.into_values() {
        let events = state.command_events.remove(&command.id).unwrap_or_default();
        out.push(Record::Command(Box::new(CommandRecord { command, events }))).await?;
    }
    for report in health {
        out.push(Record::HealthReport(Box::new(report))).await?;
    }
    for log in bootstrap {
        out.push(Record::BootstrapLog(Box::new(log))).await?;
    }
    let mut ledger = state.ledger;
    for runbook in std::mem::take(&mut ledger.runbooks).into_values() {
        out.push(Record::Runbook(Box::new(runbook))).await?;
    }
    for tool in std::mem::take(&mut ledger.tools).into_values() {
        out.push(Record::Tool(Box::new(tool))).await?;
    }
    for policy in std::mem::take(&mut ledger.approval_policies).into_values() {
        out.push(Record::ApprovalPolicy(Box::new(policy))).await?;
    }
    for run in std::mem::take(&mut ledger.runs).into_values() {
        let events = ledger.events.remove(&run.id).unwrap_or_default();
        out.push(Record::Run(Box::new(RunRecord { run, events }))).await?;
    }
    for approval in std::mem::take(&mut ledger.approvals).into_values() {
        out.push(Record::Approval(Box::new(approval))).await?;
    }
    for (info, content) in std::mem::take(&mut ledger.artifacts).into_values() {
        out.push(Record::Artifact(Box::new(ArtifactRecord { info, content }))).await?;
    }
    for call in std::mem::take(&mut ledger.tool_calls).into_values() {
        out.push(Record::ToolCall(Box::new(call))).await?;
    }
    for entry in std::mem::take(&mut ledger.audit).into_values() {
        out.push(Record::Audit(Box::new(entry))).await?;
    }
    let usage = state.usage;
    for price in usage.prices.into_values() {
        out.push(Record::Price(Box::new(price))).await?;
    }
    for request in usage.requests.into_values() {
        out.push(Record::LlmUsage(Box::new(request))).await?;
    }
    for setting in usage.settings.into_values() {
        out.push(Record::Setting(Box::new(setting))).await?;
    }
    let mut inventory = state.inventory;
    for kind in InventoryKind::ALL {
        for record in inventory.records.remove(kind).unwrap_or_default().into_values() {
            out.push(Record::InventoryRecord(Box::new(record))).await?;
        }
    }
    for status in std::mem::take(&mut inventory.sources).into_values() {
        out.push(Record::InventorySource(Box::new(status))).await?;
    }
    for sync in std::mem::take(&mut inventory.syncs).into_values() {
        out.push(Record::InventorySync(Box::new(sync))).await?;
    }
    for change in state.changes.into_values() {
        let entry = change
            .try_map_resource(|document| DocumentText::of(&document))
            .map_err(|e| StoreError::invalid("changes.resource", e))?;
        out.push(Record::Change(Box::new(entry))).await?;
    }
    out.flush().await
}

type Undo = Box<dyn FnOnce(&mut State) + Send>;

/// The in-memory store.
#[derive(Debug)]
pub struct MemoryStore {
    options: StoreOptions,
    // std Mutex: every critical section is synchronous and short; nothing awaits under it.
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new(options: StoreOptions) -> Self {
        let state = State { usage: UsageState::seeded(), ..State::default() };
        Self { options, state: Mutex::new(state) }
    }

    pub fn shared(options: StoreOptions) -> Arc<Self> {
        Arc::new(Self::new(options))
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            return Err(StoreError::unavailable("the memory store is closed"));
        }
        Ok(state)
    }
}

/// Applies one batch against `state`, pushing an undo action per mutation.
struct Tx<'a> {
    state: &'a mut State,
    undo: Vec<Undo>,
}

impl Tx<'_> {
    fn rollback(mut self) {
        while let Some(undo) = self.undo.pop() {
            undo(self.state);
        }
    }

    fn record_change(&mut self, stamp: Stamp<'_>, change: &ChangeDraft) -> Result<u64> {
        let resource = serde_json::from_str(&change.resource)
            .map_err(|e| StoreError::corrupt("changes.resource", format_args!("not JSON: {e}")))?;
        let previous = self.state.last_change_seq;
        let seq = previous + 1;
        self.state.last_change_seq = seq;
        self.state.changes.insert(
            seq,
            ChangeRecord {
                seq,
                at: stamp.at,
                kind: change.kind,
                resource_id: change.resource_id.clone(),
                op: change.op,
                revision: change.revision,
                actor: stamp.actor.clone(),
                reason: stamp.reason.to_owned(),
                resource,
            },
        );
        self.undo.push(Box::new(move |s| {
            s.changes.remove(&seq);
            s.last_change_seq = previous;
        }));
        Ok(seq)
    }

    fn put_node(&mut self, id: NodeId, node: Option<Node>) {
        let old = match node {
            Some(node) => self.state.nodes.insert(id.clone(), node),
            None => self.state.nodes.remove(&id),
        };
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => s.nodes.insert(id, old),
                None => s.nodes.remove(&id),
            };
        }));
    }

    fn put_instance(&mut self, id: InstanceId, instance: Option<Instance>) {
        let old = match instance {
            Some(i) => self.state.instances.insert(id.clone(), i),
            None => self.state.instances.remove(&id),
        };
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => s.instances.insert(id, old),
                None => s.instances.remove(&id),
            };
        }));
    }

    fn put_command(&mut self, id: CommandId, command: Option<Command>) {
        let old = match command {
            Some(c) => self.state.commands.insert(id, c),
            None => self.state.commands.remove(&id),
        };
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => s.commands.insert(id, old),
                None => s.commands.remove(&id),
            };
        }));
    }

    fn put_pool(&mut self, name: PoolName, pool: Option<Pool>) {
        let old = match pool {
            Some(p) => self.state.pools.insert(name.clone(), p),
            None => self.state.pools.remove(&name),
        };
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => s.pools.insert(name, old),
                None => s.pools.remove(&name),
            };
        }));
    }

    fn put_lease(&mut self, lease: Lease) {
        let name = lease.name.clone();
        let old = self.state.leases.insert(name.clone(), lease);
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => s.leases.insert(name, old),
                None => s.leases.remove(&name),
            };
        }));
    }

    fn put_policy(&mut self, policy: Option<StoredPolicy>) {
        let old = std::mem::replace(&mut self.state.policy, policy);
        self.undo.push(Box::new(move |s| s.policy = old));
    }

    fn put_gpus(&mut self, id: NodeId, gpus: Option<Vec<Gpu>>) {
        let old = match gpus {
            Some(g) => self.state.gpus.insert(id.clone(), g),
            None => self.state.gpus.remove(&id),
        };
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => s.gpus.insert(id, old),
                None => s.gpus.remove(&id),
            };
        }));
    }

    /// Sets or removes `key` in the map `map` picks out of the state, with its undo.
    fn put_keyed<K, V>(&mut self, map: fn(&mut State) -> &mut BTreeMap<K, V>, key: K, value: Option<V>)
    where
        K: Ord + Clone + Send + 'static,
        V: Send + 'static,
    {
        let old = match value {
            Some(value) => map(self.state).insert(key.clone(), value),
            None => map(self.state).remove(&key),
        };
        self.undo.push(Box::new(move |s| {
            match old {
                Some(old) => map(s).insert(key, old),
                None => map(s).remove(&key),
            };
        }));
    }

    /// Drops a node's GPU inventory, health history and metric samples (bootstrap logs
    /// are kept: they explain failed boots of machines that never became nodes).
    fn take_side_tables(&mut self, id: &NodeId) {
        self.put_gpus(id.clone(), None);
        let health = self.state.health.remove(id);
        let samples = self.state.samples.remove(id);
        let id = id.clone();
        self.undo.push(Box::new(move |s| {
            if let Some(h) = health {
                s.health.insert(id.clone(), h);
            }
            if let Some(m) = samples {
                s.samples.insert(id, m);
            }
        }));
    }
}

/// A model's prices, by start (every stored start is an accepted time).
fn model_prices<'a>(usage: &'a UsageState, provider: &str, model: &str) -> impl DoubleEndedIterator<Item = &'a Price> {
    let earliest = Timestamp::from_unix_micros(*Timestamp::ACCEPTED_MICROS.start());
    let latest = Timestamp::from_unix_micros(*Timestamp::ACCEPTED_MICROS.end());
    let (provider, model) = (provider.to_owned(), model.to_owned());
    usage.prices.range((provider.clone(), model.clone(), earliest)..=(provider, model, latest)).map(|(_, p)| p)
}

impl Transaction for Tx<'_> {
    async fn node_header(&mut self, id: &NodeId) -> Result<Option<NodeHeader>> {
        Ok(self.state.nodes.get(id).map(NodeHeader::from))
    }

    async fn node(&mut self, id: &NodeId) -> Result<Option<Node>> {
        Ok(self.state.nodes.get(id).cloned())
    }

    async fn node_exists(&mut self, id: &NodeId) -> Result<bool> {
        Ok(self.state.nodes.contains_key(id))
    }

    async fn instance_header(&mut self, id: &InstanceId) -> Result<Option<InstanceHeader>> {
        Ok(self.state.instances.get(id).map(InstanceHeader::from))
    }

    async fn instance(&mut self, id: &InstanceId) -> Result<Option<Instance>> {
        Ok(self.state.instances.get(id).cloned())
    }

    async fn instance_of_node(&mut self, node: &NodeId) -> Result<Option<InstanceId>> {
        // In id order, as the map is.
        Ok(self.state.instances.values().find(|i| i.node_id.as_ref() == Some(node)).map(|i| i.id.clone()))
    }

    async fn instance_with_provider_id(
        &mut self,
        provider: &str,
        provider_instance_id: &str,
        except: &InstanceId,
    ) -> Result<Option<InstanceId>> {
        Ok(self
            .state
            .instances
            .values()
            .find(|i| {
                &i.id != except
                    && i.provider == provider
                    && i.provider_instance_id.as_deref() == Some(provider_instance_id)
            })
            .map(|i| i.id.clone()))
    }

    async fn command(&mut self, id: &CommandId) -> Result<Option<Command>> {
        Ok(self.state.commands.get(id).cloned())
    }

    async fn commands_of_node(&mut self, node: &NodeId) -> Result<Vec<Command>> {
        Ok(self.state.commands.values().filter(|c| &c.node_id == node).cloned().collect())
    }

    async fn pool_revision(&mut self, name: &PoolName) -> Result<Option<Revision>> {
        Ok(self.state.pools.get(name).map(|p| p.revision))
    }

    async fn pool(&mut self, name: &PoolName) -> Result<Option<Pool>> {
        Ok(self.state.pools.get(name).cloned())
    }

    async fn policy(&mut self) -> Result<Option<StoredPolicy>> {
        Ok(self.state.policy.clone())
    }

    async fn lease(&mut self, name: &LeaseName, _lock: LeaseLock) -> Result<Option<Lease>> {
        Ok(self.state.leases.get(name).cloned())
    }

    async fn insert_lease(&mut self, lease: &Lease) -> Result<Insert> {
        if self.state.leases.contains_key(&lease.name) {
            return Ok(Insert::KeyTaken);
        }
        self.put_lease(lease.clone());
        Ok(Insert::Done)
    }

    async fn update_lease(&mut self, lease: &Lease) -> Result<()> {
        self.put_lease(lease.clone());
        Ok(())
    }

    async fn insert_node(&mut self, node: &Node, gpus: &[Gpu]) -> Result<Insert> {
        if self.state.nodes.contains_key(&node.id) {
            return Ok(Insert::KeyTaken);
        }
        self.put_gpus(node.id.clone(), Some(gpus.to_vec()));
        self.put_node(node.id.clone(), Some(node.clone()));
        Ok(Insert::Done)
    }

    async fn update_node(&mut self, node: &Node) -> Result<()> {
        let mut node = node.clone();
        // Soft state lives beside hard state in this backend; an update never writes it.
        node.last_heartbeat = self.state.nodes.get(&node.id).and_then(|n| n.last_heartbeat);
        self.put_node(node.id.clone(), Some(node));
        Ok(())
    }

    async fn replace_gpus(&mut self, node: &NodeId, gpus: &[Gpu]) -> Result<()> {
        self.put_gpus(node.clone(), Some(gpus.to_vec()));
        Ok(())
    }

    async fn delete_node(&mut self, id: &NodeId) -> Result<()> {
        let commands: Vec<CommandId> =
            self.state.commands.values().filter(|c| &c.node_id == id).map(|c| c.id).collect();
        for command in commands {
            self.put_command(command, None);
            if let Some(events) = self.state.command_events.remove(&command) {
                self.undo.push(Box::new(move |s| {
                    s.command_events.insert(command, events);
                }));
            }
        }
        self.take_side_tables(id);
        self.put_node(id.clone(), None);
        Ok(())
    }

    async fn insert_instance(&mut self, instance: &Instance) -> Result<Insert> {
        if self.state.instances.contains_key(&instance.id) {
            return Ok(Insert::KeyTaken);
        }
        self.put_instance(instance.id.clone(), Some(instance.clone()));
        Ok(Insert::Done)
    }

    async fn update_instance(&mut self, instance: &Instance) -> Result<()> {
        self.put_instance(instance.id.clone(), Some(instance.clone()));
        Ok(())
    }

    async fn delete_instance(&mut self, id: &InstanceId) -> Result<()> {
        self.put_instance(id.clone(), None);
        Ok(())
    }

    async fn insert_command(&mut self, command: &Command) -> Result<Insert> {
        if self.state.commands.contains_key(&command.id) {
            return Ok(Insert::KeyTaken);
        }
        self.put_command(command.id, Some(command.clone()));
        Ok(Insert::Done)
    }

    async fn update_command(&mut self, command: &Command) -> Result<()> {
        self.put_command(command.id, Some(command.clone()));
        Ok(())
    }

    async fn append_command_event(&mut self, stamp: Stamp<'_>, command: &Command) -> Result<()> {
        let events = self.state.command_events.entry(command.id).or_default();
        let seq = u32::try_from(events.len()).unwrap_or(u32::MAX).saturating_add(1);
        events.push(CommandEvent {
            command_id: command.id,
            seq,
            at: stamp.at,
            state: command.state,
            actor: stamp.actor.clone(),
            message: stamp.reason.to_owned(),
        });
        let id = command.id;
        self.undo.push(Box::new(move |s| {
            if let Some(events) = s.command_events.get_mut(&id) {
                events.pop();
                if events.is_empty() {
                    s.command_events.remove(&id);
                }
            }
        }));
        Ok(())
    }

    async fn insert_pool(&mut self, pool: &Pool) -> Result<Insert> {
        if self.state.pools.contains_key(&pool.name) {
            return Ok(Insert::KeyTaken);
        }
        self.put_pool(pool.name.clone(), Some(pool.clone()));
        Ok(Insert::Done)
    }

    async fn update_pool(&mut self, pool: &Pool) -> Result<()> {
        self.put_pool(pool.name.clone(), Some(pool.clone()));
        Ok(())
    }

    async fn delete_pool(&mut self, name: &PoolName) -> Result<()> {
        self.put_pool(name.clone(), None);
        Ok(())
    }

    async fn insert_policy(&mut self, policy: &StoredPolicy) -> Result<Insert> {
        if self.state.policy.is_some() {
            return Ok(Insert::KeyTaken);
        }
        self.put_policy(Some(policy.clone()));
        Ok(Insert::Done)
    }

    async fn update_policy(&mut self, policy: &StoredPolicy) -> Result<()> {
        self.put_policy(Some(policy.clone()));
        Ok(())
    }

    async fn delete_policy(&mut self) -> Result<()> {
        self.put_policy(None);
        Ok(())
    }

    async fn append_health_report(&mut self, report: &HealthReport, keep: u32) -> Result<u64> {
        let previous_id = self.state.last_health_id;
        let id = previous_id + 1;
        self.state.last_health_id = id;
        let node = report.node_id.clone();
        let history = self.state.health.entry(node.clone()).or_default();
        let before = history.clone();
        history.push_back(StoredHealthReport { id, report: report.clone() });
        while history.len() > keep as usize {
            history.pop_front();
        }
        self.undo.push(Box::new(move |s| {
            s.last_health_id = previous_id;
            if before.is_empty() {
                s.health.remove(&node);
            } else {
                s.health.insert(node, before);
            }
        }));
        Ok(id)
    }

    async fn append_bootstrap_log(&mut self, log: &BootstrapLog, keep: u32) -> Result<u64> {
        let previous_id = self.state.last_bootstrap_id;
        let id = previous_id + 1;
        self.state.last_bootstrap_id = id;
        let node = log.node_id.clone();
        let logs = self.state.bootstrap.entry(node.clone()).or_default();
        let before = logs.clone();
        let mut log = log.clone();
        log.id = id;
        logs.push_back(log);
        while logs.len() > keep as usize {
            logs.pop_front();
        }
        self.undo.push(Box::new(move |s| {
            s.last_bootstrap_id = previous_id;
            if before.is_empty() {
                s.bootstrap.remove(&node);
            } else {
                s.bootstrap.insert(node, before);
            }
        }));
        Ok(id)
    }

    async fn runbook(&mut self, name: &RunbookName) -> Result<Option<Runbook>> {
        Ok(self.state.ledger.runbooks.get(name).cloned())
    }

    async fn insert_runbook(&mut self, runbook: &Runbook) -> Result<Insert> {
        if self.state.ledger.runbooks.contains_key(&runbook.name) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.ledger.runbooks, runbook.name.clone(), Some(runbook.clone()));
        Ok(Insert::Done)
    }

    async fn update_runbook(&mut self, runbook: &Runbook) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.runbooks, runbook.name.clone(), Some(runbook.clone()));
        Ok(())
    }

    async fn delete_runbook(&mut self, name: &RunbookName) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.runbooks, name.clone(), None);
        Ok(())
    }

    async fn run(&mut self, id: &RunId) -> Result<Option<TaskRun>> {
        Ok(self.state.ledger.runs.get(id).cloned())
    }

    async fn insert_run(&mut self, run: &TaskRun) -> Result<Insert> {
        if self.state.ledger.runs.contains_key(&run.id) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.ledger.runs, run.id, Some(run.clone()));
        Ok(Insert::Done)
    }

    async fn update_run(&mut self, run: &TaskRun) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.runs, run.id, Some(run.clone()));
        Ok(())
    }

    async fn append_run_event(&mut self, at: Timestamp, event: &RunEvent) -> Result<u64> {
        let run = event.run_id;
        let events = self.state.ledger.events.entry(run).or_default();
        let seq = events.last().map_or(1, |last| last.seq + 1);
        events.push(StoredRunEvent { seq, at, event: event.clone() });
        self.undo.push(Box::new(move |s| {
            if let Some(events) = s.ledger.events.get_mut(&run) {
                events.pop();
                if events.is_empty() {
                    s.ledger.events.remove(&run);
                }
            }
        }));
        Ok(seq)
    }

    async fn insert_artifact(&mut self, info: &ArtifactInfo, content: &[u8]) -> Result<Insert> {
        let key = (info.run_id, info.name.clone());
        if self.state.ledger.artifacts.contains_key(&key) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.ledger.artifacts, key, Some((info.clone(), content.to_vec())));
        Ok(Insert::Done)
    }

    async fn tool(&mut self, name: &ToolName) -> Result<Option<ToolDefinition>> {
        Ok(self.state.ledger.tools.get(name).cloned())
    }

    async fn insert_tool(&mut self, tool: &ToolDefinition) -> Result<Insert> {
        if self.state.ledger.tools.contains_key(&tool.name) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.ledger.tools, tool.name.clone(), Some(tool.clone()));
        Ok(Insert::Done)
    }

    async fn update_tool(&mut self, tool: &ToolDefinition) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.tools, tool.name.clone(), Some(tool.clone()));
        Ok(())
    }

    async fn delete_tool(&mut self, name: &ToolName) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.tools, name.clone(), None);
        Ok(())
    }

    async fn append_tool_call(&mut self, at: Timestamp, call: &ToolCall) -> Result<u64> {
        let previous = self.state.ledger.last_tool_call_id;
        let id = previous + 1;
        self.state.ledger.last_tool_call_id = id;
        self.state.ledger.tool_calls.insert(id, StoredToolCall { id, at, call: call.clone() });
        self.undo.push(Box::new(move |s| {
            s.ledger.tool_calls.remove(&id);
            s.ledger.last_tool_call_id = previous;
        }));
        Ok(id)
    }

    async fn approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<Option<ApprovalPolicy>> {
        Ok(self.state.ledger.approval_policies.get(name).cloned())
    }

    async fn insert_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<Insert> {
        if self.state.ledger.approval_policies.contains_key(&policy.name) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.ledger.approval_policies, policy.name.clone(), Some(policy.clone()));
        Ok(Insert::Done)
    }

    async fn update_approval_policy(&mut self, policy: &ApprovalPolicy) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.approval_policies, policy.name.clone(), Some(policy.clone()));
        Ok(())
    }

    async fn delete_approval_policy(&mut self, name: &ApprovalPolicyName) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.approval_policies, name.clone(), None);
        Ok(())
    }

    async fn approval(&mut self, id: &ApprovalId) -> Result<Option<Approval>> {
        Ok(self.state.ledger.approvals.get(id).cloned())
    }

    async fn insert_approval(&mut self, approval: &Approval) -> Result<Insert> {
        if self.state.ledger.approvals.contains_key(&approval.id) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.ledger.approvals, approval.id, Some(approval.clone()));
        Ok(Insert::Done)
    }

    async fn update_approval(&mut self, approval: &Approval) -> Result<()> {
        self.put_keyed(|s| &mut s.ledger.approvals, approval.id, Some(approval.clone()));
        Ok(())
    }

    async fn append_audit(&mut self, at: Timestamp, entry: &AuditEntry) -> Result<u64> {
        let previous = self.state.ledger.last_audit_seq;
        let seq = previous + 1;
        self.state.ledger.last_audit_seq = seq;
        self.state.ledger.audit.insert(seq, StoredAuditEntry { seq, at, entry: entry.clone() });
        self.undo.push(Box::new(move |s| {
            s.ledger.audit.remove(&seq);
            s.ledger.last_audit_seq = previous;
        }));
        Ok(seq)
    }

    async fn inventory_source(&mut self, source: &SourceName, scope: &SyncScope) -> Result<Option<SourceStatus>> {
        Ok(self.inventory_source_of(source, scope))
    }

    async fn put_inventory_source(&mut self, status: &SourceStatus) -> Result<()> {
        self.put_source_status(status);
        Ok(())
    }

    async fn insert_inventory_sync(&mut self, sync: &SyncRecord) -> Result<u64> {
        Ok(self.record_sync(sync))
    }

    async fn inventory_states(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        scope: &SyncScope,
    ) -> Result<Vec<StoredRecordState>> {
        Ok(self.record_states(kind, source, scope))
    }

    async fn inventory_record(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        key: &str,
    ) -> Result<Option<InventoryRecord>> {
        Ok(self.record(kind, source, key))
    }

    async fn insert_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
        self.put_records(kind, records, false);
        Ok(())
    }

    async fn update_inventory(&mut self, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
        self.put_records(kind, records, true);
        Ok(())
    }

    async fn refresh_inventory_usage(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        usage: &[(String, Usage)],
        at: Timestamp,
    ) -> Result<()> {
        self.refresh_usage(kind, source, usage, at);
        Ok(())
    }

    async fn open_price(&mut self, provider: &str, model: &str) -> Result<Option<Price>> {
        Ok(model_prices(&self.state.usage, provider, model).rev().find(|p| p.effective_to.is_none()).cloned())
    }

    async fn price_at(&mut self, provider: &str, model: &str, at: Timestamp) -> Result<Option<Price>> {
        Ok(model_prices(&self.state.usage, provider, model).rev().find(|p| p.covers(at)).cloned())
    }

    async fn put_price(&mut self, price: &Price) -> Result<()> {
        let key = (price.provider.clone(), price.model.clone(), price.effective_from);
        self.put_keyed(|s| &mut s.usage.prices, key, Some(price.clone()));
        Ok(())
    }

    async fn close_price(&mut self, price: &Price, to: Timestamp) -> Result<()> {
        let key = (price.provider.clone(), price.model.clone(), price.effective_from);
        self.put_keyed(|s| &mut s.usage.prices, key, Some(Price { effective_to: Some(to), ..price.clone() }));
        Ok(())
    }

    async fn insert_llm_usage(&mut self, usage: &LlmUsage) -> Result<Insert> {
        let request_key = usage.request_id.as_ref().map(|r| (usage.provider.clone(), r.clone()));
        if self.state.usage.requests.contains_key(&usage.id)
            || request_key.as_ref().is_some_and(|k| self.state.usage.request_ids.contains_key(k))
        {
            return Ok(Insert::KeyTaken);
        }
        if let Some(key) = request_key {
            self.put_keyed(|s| &mut s.usage.request_ids, key, Some(usage.id));
        }
        self.put_keyed(|s| &mut s.usage.requests, usage.id, Some(usage.clone()));
        Ok(Insert::Done)
    }

    async fn setting(&mut self, name: &str) -> Result<Option<Setting>> {
        Ok(self.state.usage.settings.get(name).cloned())
    }

    async fn insert_setting(&mut self, setting: &Setting) -> Result<Insert> {
        if self.state.usage.settings.contains_key(&setting.name) {
            return Ok(Insert::KeyTaken);
        }
        self.put_keyed(|s| &mut s.usage.settings, setting.name.clone(), Some(setting.clone()));
        Ok(Insert::Done)
    }

    async fn update_setting(&mut self, setting: &Setting) -> Result<()> {
        self.put_keyed(|s| &mut s.usage.settings, setting.name.clone(), Some(setting.clone()));
        Ok(())
    }

    async fn last_change_revision(&mut self, kind: ResourceKind, id: &str) -> Result<Option<Revision>> {
        // A scan from the newest record: memory keeps no index by resource, and only drift
        // reports (one write per change of drift) ask.
        Ok(self.state.changes.values().rev().find(|c| c.kind == kind && c.resource_id == id).map(|c| c.revision))
    }

    async fn append_changes(&mut self, stamp: Stamp<'_>, changes: &[ChangeDraft]) -> Result<Vec<u64>> {
        changes.iter().map(|change| self.record_change(stamp, change)).collect()
    }
}

fn is_gone(state: InstanceState) -> bool {
    matches!(state, InstanceState::Terminated | InstanceState::Failed)
}

/// Memory's answers to the integrity checks. It keeps no foreign keys of its own, so the
/// reference checks are real checks here.
struct Check<'s> {
    state: &'s State,
}

impl Check<'_> {
    fn missing_node(&self, node: &NodeId) -> bool {
        !self.state.nodes.contains_key(node)
    }
}

impl IntegritySource for Check<'_> {
    async fn orphans(&mut self, reference: Reference, limit: usize) -> Result<Vec<Orphan>> {
        let state = self.state;
        let orphan = |child: String, parent: &dyn std::fmt::Display| Orphan { child, parent: parent.to_string() };
        let orphans: Vec<Orphan> = match reference {
            Reference::CommandToNode => state
                .commands
                .values()
                .filter(|c| self.missing_node(&c.node_id))
                .map(|c| orphan(c.id.to_string(), &c.node_id))
                .take(limit)
                .collect(),
            Reference::CommandEventToCommand => state
                .command_events
                .iter()
                .filter(|(id, _)| !state.commands.contains_key(id))
                .flat_map(|(id, events)| events.iter().map(move |e| (id, e.seq)))
                .map(|(id, seq)| orphan(format!("{id}#{seq}"), id))
                .take(limit)
                .collect(),
            Reference::InstanceToNode => state
                .instances
                .values()
                .filter_map(|i| {
                    i.node_id.as_ref().filter(|n| self.missing_node(n)).map(|n| orphan(i.id.to_string(), n))
                })
                .take(limit)
                .collect(),
            Reference::HealthReportToNode => state
                .health
                .iter()
                .filter(|(node, _)| self.missing_node(node))
                .flat_map(|(node, reports)| reports.iter().map(move |r| orphan(r.id.to_string(), node)))
                .take(limit)
                .collect(),
            Reference::MetricSampleToNode => state
                .samples
                .iter()
                .filter(|(node, _)| self.missing_node(node))
                .flat_map(|(node, ring)| ring.keys().map(move |slot| orphan(format!("{node}#{slot}"), node)))
                .take(limit)
                .collect(),
            Reference::GpuToNode => state
                .gpus
                .iter()
                .filter(|(node, _)| self.missing_node(node))
                .flat_map(|(node, gpus)| gpus.iter().map(move |g| orphan(format!("{node}#{}", g.index), node)))
                .take(limit)
                .collect(),
            // A node's last heartbeat lives in the node itself: it cannot outlive it.
            Reference::LivenessToNode => Vec::new(),
            // Targets live in their run, a host's storage links in the host, and a request's
            // response and token usage in its one usage record.
            Reference::RunTargetToRun
            | Reference::HostOfStorage
            | Reference::LlmResponseToRequest
            | Reference::TokenUsageToRequest => Vec::new(),
            Reference::LlmRequestToRun | Reference::TokenUsageToRun => state
                .usage
                .requests
                .values()
                .filter_map(|u| {
                    u.run_id.filter(|r| !state.ledger.runs.contains_key(r)).map(|r| orphan(u.id.to_string(), &r))
                })
                .take(limit)
                .collect(),
            Reference::RunEventToRun => state
                .ledger
                .events
                .iter()
                .filter(|(run, _)| !state.ledger.runs.contains_key(run))
                .flat_map(|(run, events)| events.iter().map(move |e| orphan(format!("{run}#{}", e.seq), run)))
                .take(limit)
                .collect(),
            Reference::ArtifactToRun => state
                .ledger
                .artifacts
                .keys()
                .filter(|(run, _)| !state.ledger.runs.contains_key(run))
                .map(|(run, name)| orphan(format!("{run}#{name}"), run))
                .take(limit)
                .collect(),
            Reference::ApprovalToRun => state
                .ledger
                .approvals
                .values()
                .filter(|a| !state.ledger.runs.contains_key(&a.run_id))
                .map(|a| orphan(a.id.to_string(), &a.run_id))
                .take(limit)
                .collect(),
            Reference::ToolCallToRun => state
                .ledger
                .tool_calls
                .values()
                .filter(|c| !state.ledger.runs.contains_key(&c.call.run_id))
                .map(|c| orphan(c.id.to_string(), &c.call.run_id))
                .take(limit)
                .collect(),
            Reference::ToolCallToApproval => state
                .ledger
                .tool_calls
                .values()
                .filter_map(|c| {
                    c.call
                        .approval_id
                        .filter(|a| !state.ledger.approvals.contains_key(a))
                        .map(|a| orphan(c.id.to_string(), &a))
                })
                .take(limit)
                .collect(),
        };
        Ok(orphans)
    }

    async fn compacted_through(&mut self) -> Result<u64> {
        Ok(self.state.changes_compacted_through)
    }

    async fn feed_changes(&mut self, checker: &mut ChangeLogChecker) -> Result<()> {
        for c in self.state.changes.values() {
            checker.observe(c.kind, &c.resource_id, c.seq, c.revision.get(), c.op);
        }
        Ok(())
    }

    async fn live_revisions(&mut self) -> Result<Vec<(ResourceKind, String, u64)>> {
        let state = self.state;
        Ok(state
            .nodes
            .values()
            .map(|n| (ResourceKind::Node, n.id.to_string(), n.revision.get()))
            .chain(state.instances.values().map(|i| (ResourceKind::Instance, i.id.to_string(), i.revision.get())))
            .chain(state.commands.values().map(|c| (ResourceKind::Command, c.id.to_string(), c.revision.get())))
            .chain(state.pools.values().map(|p| (ResourceKind::Pool, p.name.to_string(), p.revision.get())))
            .chain(
                state
                    .policy
                    .iter()
                    .map(|p| (ResourceKind::Policy, StoredPolicy::RESOURCE_ID.to_owned(), p.revision.get())),
            )
            .chain(state.leases.values().map(|l| (ResourceKind::Lease, l.name.to_string(), l.revision.get())))
            .chain(
                state.ledger.runbooks.values().map(|r| (ResourceKind::Runbook, r.name.to_string(), r.revision.get())),
            )
            .chain(state.ledger.runs.values().map(|r| (ResourceKind::Run, r.id.to_string(), r.revision.get())))
            .chain(state.ledger.tools.values().map(|t| (ResourceKind::Tool, t.name.to_string(), t.revision.get())))
            .chain(
                state
                    .ledger
                    .approval_policies
                    .values()
                    .map(|p| (ResourceKind::ApprovalPolicy, p.name.to_string(), p.revision.get())),
            )
            .chain(
                state.ledger.approvals.values().map(|a| (ResourceKind::Approval, a.id.to_string(), a.revision.get())),
            )
            .chain(
                state
                    .inventory
                    .records
                    .values()
                    .flat_map(BTreeMap::values)
                    .map(|r| (r.kind().resource_kind(), r.id(), r.revision.get())),
            )
            .collect())
    }

    async fn inventories(&mut self) -> Result<Vec<Inventory>> {
        Ok(self
            .state
            .nodes
            .values()
            .map(|n| Inventory {
                node: n.id.to_string(),
                gpu_count: n.gpu_count,
                listed: self.state.gpus.get(&n.id).map_or(0, |g| g.len() as u64),
            })
            .collect())
    }

    async fn instance_facts(&mut self) -> Result<Vec<InstanceFacts>> {
        Ok(self
            .state
            .instances
            .values()
            .map(|i| InstanceFacts {
                id: i.id.to_string(),
                state: i.state,
                has_node: i.node_id.is_some(),
                has_terminated_at: i.terminated_at.is_some(),
            })
            .collect())
    }

    async fn command_facts(&mut self) -> Result<Vec<CommandFacts>> {
        Ok(self
            .state
            .commands
            .values()
            .map(|c| CommandFacts {
                id: c.id.to_string(),
                state: c.state,
                has_delivered_at: c.delivered_at.is_some(),
                has_finished_at: c.finished_at.is_some(),
            })
            .collect())
    }

    async fn audit_numbers(&mut self) -> Result<AuditNumbers> {
        let audit = &self.state.ledger.audit;
        Ok(AuditNumbers {
            count: audit.len() as u64,
            lowest: audit.first_key_value().map_or(0, |(seq, _)| *seq),
            highest: audit.last_key_value().map_or(0, |(seq, _)| *seq),
            handed_out: self.state.ledger.last_audit_seq,
        })
    }

    async fn run_event_numbers(&mut self) -> Result<Vec<(String, u64, u64, u64)>> {
        Ok(self
            .state
            .ledger
            .events
            .iter()
            .filter_map(|(run, events)| {
                let (first, last) = (events.first()?.seq, events.last()?.seq);
                Some((run.to_string(), events.len() as u64, first, last))
            })
            .collect())
    }
}

#[cfg(test)]
impl MemoryStore {
    /// Breaks the store behind its rules, for the integrity conformance cases.
    pub(crate) fn plant(&self, corruption: &crate::conformance::Corruption) {
        use crate::conformance::Corruption;
        let mut state = self.lock().expect("open");
        let node: NodeId = "n1".parse().expect("valid");
        let instance: InstanceId = "i1".parse().expect("valid");
        match corruption {
            Corruption::OrphanInstance => {
                state.instances.get_mut(&instance).expect("i1").node_id = Some("ghost".parse().expect("valid"));
            }
            Corruption::RevisionWithoutChange => {
                state.nodes.get_mut(&node).expect("n1").revision = Revision::new(9).expect("positive");
            }
            Corruption::TerminatedWithoutTime => {
                let instance = state.instances.get_mut(&instance).expect("i1");
                instance.state = InstanceState::Terminated;
                instance.terminated_at = None;
            }
            Corruption::GpuMissing => {
                state.gpus.get_mut(&node).expect("n1's GPUs").pop();
            }
            Corruption::ChangeMissing(seq) => {
                state.changes.remove(seq);
            }
            Corruption::AuditEntryMissing(seq) => {
                state.ledger.audit.remove(seq);
            }
            Corruption::RunEventMissing { run, seq } => {
                state.ledger.events.get_mut(run).expect("the run's events").retain(|e| e.seq != *seq);
            }
            Corruption::LlmUsageOfMissingRun => {
                let ghost: RunId = crate::conformance::GHOST_RUN.parse().expect("a run id");
                for usage in state.usage.requests.values_mut().filter(|u| u.run_id.is_some()) {
                    usage.run_id = Some(ghost);
                }
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    async fn commit(&self, batch: WriteBatch) -> Result<Committed> {
        let now = self.options.clock.now();
        let mut state = self.lock()?;
        let mut tx = Tx { state: &mut state, undo: Vec::new() };
        let applied = run_ready(apply::apply_batch(&mut tx, &self.options, now, &batch));
        if applied.is_err() {
            tx.rollback();
        }
        applied
    }

    async fn node(&self, id: &NodeId) -> Result<Node> {
        self.lock()?.nodes.get(id).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::Node, id))
    }

    async fn node_gpus(&self, id: &NodeId) -> Result<Vec<Gpu>> {
        let state = self.lock()?;
        if !state.nodes.contains_key(id) {
            return Err(StoreError::not_found(ResourceKind::Node, id));
        }
        Ok(state.gpus.get(id).cloned().unwrap_or_default())
    }

    async fn list_nodes_in(&self, order: NodeOrder, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>> {
        let limit = page.checked_limit()?;
        let after = page.start_after_node(order)?;
        let state = self.lock()?;
        let rows: Vec<Node> = match order {
            // Keyed by id: read from the cursor on.
            NodeOrder::Id => {
                let start = match &after {
                    Some(NodeAfter::Id(key)) => Bound::Excluded(NodeId::new(key.as_str())?),
                    _ => Bound::Unbounded,
                };
                let nodes = state.nodes.range((start, Bound::Unbounded)).map(|(_, n)| n);
                nodes.filter(|n| filter.matches(n)).take(limit as usize + 1).cloned().collect()
            }
            NodeOrder::RecentlyChanged => {
                let mut matching: Vec<&Node> = state
                    .nodes
                    .values()
                    .filter(|n| filter.matches(n) && after.as_ref().is_none_or(|after| order.is_after(n, after)))
                    .collect();
                matching.sort_unstable_by(|a, b| order.compare(a, b));
                matching.into_iter().take(limit as usize + 1).cloned().collect()
            }
        };
        Ok(order.page(rows, limit))
    }

    async fn instance(&self, id: &InstanceId) -> Result<Instance> {
        self.lock()?.instances.get(id).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::Instance, id))
    }

    async fn list_instances(&self, filter: &InstanceFilter, page: &PageRequest) -> Result<Page<Instance>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Instance)?;
        let state = self.lock()?;
        let start = match &after {
            Some(key) => Bound::Excluded(InstanceId::new(key.as_str())?),
            None => Bound::Unbounded,
        };
        let rows: Vec<Instance> = state
            .instances
            .range((start, Bound::Unbounded))
            .map(|(_, i)| i)
            .filter(|i| filter.matches(i))
            .take(limit as usize + 1)
            .cloned()
            .collect();
        Ok(Page::from_rows(rows, limit, ResourceKind::Instance, |i| i.id.to_string()))
    }

    async fn instance_for_node(&self, node: &NodeId) -> Result<Option<Instance>> {
        let state = self.lock()?;
        let mut candidates: Vec<&Instance> = state
            .instances
            .values()
            .filter(|i| {
                i.node_id.as_ref() == Some(node)
                    || i.id.as_str() == node.as_str()
                    || i.provider_instance_id.as_deref() == Some(node.as_str())
            })
            .collect();
        candidates.sort_by(|a, b| {
            is_gone(a.state).cmp(&is_gone(b.state)).then(b.created_at.cmp(&a.created_at)).then(a.id.cmp(&b.id))
        });
        Ok(candidates.first().map(|i| (*i).clone()))
    }

    async fn command(&self, id: &CommandId) -> Result<Command> {
        self.lock()?.commands.get(id).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::Command, id))
    }

    async fn list_commands(&self, filter: &CommandFilter, page: &PageRequest) -> Result<Page<Command>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Command)?;
        let state = self.lock()?;
        let start = match &after {
            Some(key) => Bound::Excluded(key.parse::<CommandId>()?),
            None => Bound::Unbounded,
        };
        let rows: Vec<Command> = state
            .commands
            .range((start, Bound::Unbounded))
            .map(|(_, c)| c)
            .filter(|c| filter.matches(c))
            .take(limit as usize + 1)
            .cloned()
            .collect();
        Ok(Page::from_rows(rows, limit, ResourceKind::Command, |c| crate::query::command_key(&c.id)))
    }

    async fn command_events(&self, id: &CommandId) -> Result<Vec<CommandEvent>> {
        let state = self.lock()?;
        if !state.commands.contains_key(id) {
            return Err(StoreError::not_found(ResourceKind::Command, id));
        }
        Ok(state.command_events.get(id).cloned().unwrap_or_default())
    }

    async fn pool(&self, name: &PoolName) -> Result<Pool> {
        self.lock()?.pools.get(name).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::Pool, name))
    }

    async fn list_pools(&self) -> Result<Vec<Pool>> {
        Ok(self.lock()?.pools.values().cloned().collect())
    }

    async fn policy(&self) -> Result<Option<StoredPolicy>> {
        Ok(self.lock()?.policy.clone())
    }

    async fn lease(&self, name: &LeaseName) -> Result<Option<Lease>> {
        Ok(self.lock()?.leases.get(name).cloned())
    }

    async fn record_replica(&self, replica: &bosun_core::ReplicaPresence, forget_before: Timestamp) -> Result<()> {
        crate::rules::check_replica(replica)?;
        let mut state = self.lock()?;
        let entry = state.replicas.entry(replica.replica_id.clone()).or_insert_with(|| replica.clone());
        let last_seen = entry.last_seen.max(replica.last_seen);
        *entry = bosun_core::ReplicaPresence { last_seen, ..replica.clone() };
        state.replicas.retain(|_, r| r.last_seen >= forget_before);
        Ok(())
    }

    async fn list_replicas(&self) -> Result<Vec<bosun_core::ReplicaPresence>> {
        Ok(self.lock()?.replicas.values().cloned().collect())
    }

    async fn health_history(&self, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>> {
        let state = self.lock()?;
        if !state.nodes.contains_key(node) {
            return Err(StoreError::not_found(ResourceKind::Node, node));
        }
        Ok(state.health.get(node).map(|h| h.iter().rev().take(limit as usize).cloned().collect()).unwrap_or_default())
    }

    async fn bootstrap_logs(&self, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>> {
        let state = self.lock()?;
        Ok(state
            .bootstrap
            .get(node)
            .map(|logs| logs.iter().rev().take(limit as usize).cloned().collect())
            .unwrap_or_default())
    }

    async fn list_changes(&self, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>> {
        let state = self.lock()?;
        // An empty range (after the upper bound) selects nothing; BTreeMap::range would
        // panic on it.
        if filter.up_to_seq.is_some_and(|up_to| up_to <= filter.after_seq) {
            return Ok(Vec::new());
        }
        let upper = filter.up_to_seq.map_or(Bound::Unbounded, Bound::Included);
        Ok(state
            .changes
            .range((Bound::Excluded(filter.after_seq), upper))
            .map(|(_, c)| c)
            .filter(|c| filter.matches(c))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn last_change_seq(&self) -> Result<u64> {
        Ok(self.lock()?.last_change_seq)
    }

    async fn change_signals(&self) -> Option<crate::ChangeSignals> {
        // In-process: every commit is made by the process that holds the store.
        None
    }

    async fn runbook(&self, name: &RunbookName) -> Result<Runbook> {
        self.lock()?
            .ledger
            .runbooks
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::not_found(ResourceKind::Runbook, name))
    }

    async fn list_runbooks(&self, page: &PageRequest) -> Result<Page<Runbook>> {
        let limit = page.checked_limit()?;
        let after = page.start_after(ResourceKind::Runbook)?;
        let state = self.lock()?;
        let rows: Vec<Runbook> = state
            .ledger
            .runbooks
            .values()
            .filter(|r| after.as_deref().is_none_or(|after| r.name.as_str() > after))
            .take(limit as usize + 1)
            .cloned()
            .collect();
        Ok(Page::from_rows(rows, limit, ResourceKind::Runbook, |r| r.name.to_string()))
    }

    async fn run(&self, id: &RunId) -> Result<TaskRun> {
        self.lock()?.ledger.runs.get(id).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::Run, id))
    }

    async fn list_runs(&self, filter: &RunFilter, page: &PageRequest) -> Result<Page<TaskRun>> {
        let limit = page.checked_limit()?;
        let before = page.start_after(ResourceKind::Run)?.map(|key| key.parse::<RunId>()).transpose()?;
        let state = self.lock()?;
        let end = before.map_or(Bound::Unbounded, Bound::Excluded);
        let rows: Vec<TaskRun> = state
            .ledger
            .runs
            .range((Bound::Unbounded, end))
            .rev()
            .map(|(_, run)| run)
            .filter(|run| filter.matches(run))
            .take(limit as usize + 1)
            .cloned()
            .collect();
        Ok(Page::from_rows(rows, limit, ResourceKind::Run, |run| run.id.to_string()))
    }

    async fn run_events(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredRunEvent>> {
        let state = self.lock()?;
        if !state.ledger.runs.contains_key(run) {
            return Err(StoreError::not_found(ResourceKind::Run, run));
        }
        let events = state.ledger.events.get(run).map_or(&[][..], Vec::as_slice);
        Ok(events.iter().filter(|e| e.seq > after).take(limit as usize).cloned().collect())
    }

    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactInfo>> {
        let state = self.lock()?;
        if !state.ledger.runs.contains_key(run) {
            return Err(StoreError::not_found(ResourceKind::Run, run));
        }
        Ok(state
            .ledger
            .artifacts
            .range((*run, String::new())..)
            .take_while(|((r, _), _)| r == run)
            .map(|(_, (info, _))| info.clone())
            .collect())
    }

    async fn artifact(&self, run: &RunId, name: &str) -> Result<(ArtifactInfo, Vec<u8>)> {
        self.lock()?
            .ledger
            .artifacts
            .get(&(*run, name.to_owned()))
            .cloned()
            .ok_or_else(|| StoreError::not_found(ResourceKind::Run, format_args!("{run}/artifact {name:?}")))
    }

    async fn pricing(&self, current_at: Option<Timestamp>) -> Result<Vec<Price>> {
        let state = self.lock()?;
        let current = |p: &&Price| current_at.is_none_or(|at| p.effective_to.is_none_or(|to| to > at));
        Ok(state.usage.prices.values().filter(current).cloned().collect())
    }

    async fn llm_usage(&self, id: &LlmUsageId) -> Result<LlmUsage> {
        self.lock()?.usage.requests.get(id).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::LlmUsage, id))
    }

    async fn usage_summary(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>> {
        let state = self.lock()?;
        crate::usage::summarize(filter.by, state.usage.requests.values().filter(|u| u.at >= filter.since))
    }

    async fn setting(&self, name: &str) -> Result<Option<Setting>> {
        Ok(self.lock()?.usage.settings.get(name).cloned())
    }

    async fn tools(&self) -> Result<Vec<ToolDefinition>> {
        Ok(self.lock()?.ledger.tools.values().cloned().collect())
    }

    async fn tool_calls(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredToolCall>> {
        let state = self.lock()?;
        let calls = state.ledger.tool_calls.values().filter(|c| c.call.run_id == *run && c.id > after);
        Ok(calls.take(limit as usize).cloned().collect())
    }

    async fn approval_policies(&self) -> Result<Vec<ApprovalPolicy>> {
        let mut policies: Vec<ApprovalPolicy> = self.lock()?.ledger.approval_policies.values().cloned().collect();
        policies.sort_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)));
        Ok(policies)
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Approval> {
        self.lock()?.ledger.approvals.get(id).cloned().ok_or_else(|| StoreError::not_found(ResourceKind::Approval, id))
    }

    async fn list_approvals(&self, filter: &ApprovalFilter, limit: u32) -> Result<Vec<Approval>> {
        let state = self.lock()?;
        Ok(state.ledger.approvals.values().filter(|a| filter.matches(a)).take(limit as usize).cloned().collect())
    }

    async fn list_inventory(&self, filter: &InventoryFilter, page: &PageRequest) -> Result<Page<InventoryRecord>> {
        inventory::list(&*self.lock()?, filter, page)
    }

    async fn count_inventory(&self, filter: &InventoryFilter) -> Result<u64> {
        inventory::count(&*self.lock()?, filter)
    }

    async fn inventory_record(&self, kind: InventoryKind, source: &SourceName, key: &str) -> Result<InventoryRecord> {
        inventory::get(&*self.lock()?, kind, source, key)
    }

    async fn inventory_sources(&self) -> Result<Vec<SourceStatus>> {
        Ok(inventory::sources(&*self.lock()?))
    }

    async fn inventory_syncs(&self, source: Option<&SourceName>, limit: u32) -> Result<Vec<SyncRecord>> {
        Ok(inventory::syncs(&*self.lock()?, source, limit))
    }

    async fn list_audit(&self, filter: &AuditFilter, after: u64, limit: u32) -> Result<Vec<StoredAuditEntry>> {
        let state = self.lock()?;
        Ok(state
            .ledger
            .audit
            .range(after.saturating_add(1)..)
            .map(|(_, e)| e)
            .filter(|e| filter.matches(e))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn record_heartbeats(&self, batch: &[Heartbeat]) -> Result<u64> {
        let mut state = self.lock()?;
        let mut applied = 0;
        for hb in dedupe_heartbeats(batch) {
            if let Some(node) = state.nodes.get_mut(&hb.node_id) {
                node.last_heartbeat = Some(node.last_heartbeat.map_or(hb.at, |at| at.max(hb.at)));
                applied += 1;
            }
        }
        Ok(applied)
    }

    async fn list_heartbeats(&self, page: &PageRequest) -> Result<Page<Heartbeat>> {
        let limit = page.checked_limit()?;
        let start = match page.start_after(ResourceKind::Node)? {
            Some(key) => Bound::Excluded(NodeId::new(key.as_str())?),
            None => Bound::Unbounded,
        };
        let state = self.lock()?;
        let rows: Vec<Heartbeat> = state
            .nodes
            .range((start, Bound::Unbounded))
            .filter_map(|(id, node)| node.last_heartbeat.map(|at| Heartbeat { node_id: id.clone(), at }))
            .take(limit as usize + 1)
            .collect();
        Ok(Page::from_rows(rows, limit, ResourceKind::Node, |hb| hb.node_id.to_string()))
    }

    async fn record_metric_samples(&self, batch: &[MetricSample]) -> Result<u64> {
        crate::rules::check_samples(batch)?;
        let retention = self.options.samples;
        let mut state = self.lock()?;
        let mut stored = 0;
        for (slot, sample) in dedupe_samples(batch, &retention) {
            if !state.nodes.contains_key(&sample.node_id) {
                continue;
            }
            let ring = state.samples.entry(sample.node_id.clone()).or_default();
            let newer = ring.get(&slot).is_none_or(|kept| sample.at >= kept.at);
            if newer {
                ring.insert(slot, sample.clone());
                stored += 1;
            }
        }
        Ok(stored)
    }

    async fn metric_samples(&self, node: &NodeId, since: Timestamp) -> Result<Vec<MetricSample>> {
        let cutoff = since.max(self.options.clock.now() - self.options.samples.window);
        let state = self.lock()?;
        if !state.nodes.contains_key(node) {
            return Err(StoreError::not_found(ResourceKind::Node, node));
        }
        let mut samples: Vec<MetricSample> = state
            .samples
            .get(node)
            .map(|ring| ring.values().filter(|s| s.at >= cutoff).cloned().collect())
            .unwrap_or_default();
        samples.sort_by_key(|s| s.at);
        Ok(samples)
    }

    async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        let now = self.options.clock.now();
        let cutoff = now - policy.changes_older_than;
        let sample_cutoff = now - self.options.samples.window;
        let mut state = self.lock()?;
        let mut latest: HashMap<(ResourceKind, &str), u64> = HashMap::new();
        for change in state.changes.values() {
            latest.insert((change.kind, change.resource_id.as_str()), change.seq);
        }
        let doomed: Vec<u64> = state
            .changes
            .values()
            .filter(|c| c.at < cutoff)
            .filter(|c| c.op == ChangeOp::Deleted || latest.get(&(c.kind, c.resource_id.as_str())) != Some(&c.seq))
            .map(|c| c.seq)
            .collect();
        for seq in &doomed {
            state.changes.remove(seq);
        }
        if let Some(&highest) = doomed.iter().max() {
            state.changes_compacted_through = state.changes_compacted_through.max(highest);
        }
        let mut samples_deleted = 0;
        for ring in state.samples.values_mut() {
            let before = ring.len();
            ring.retain(|_, s| s.at >= sample_cutoff);
            samples_deleted += (before - ring.len()) as u64;
        }
        state.samples.retain(|_, ring| !ring.is_empty());
        let runs_cutoff = now - policy.runs_older_than;
        let finished: std::collections::HashSet<RunId> = state
            .ledger
            .runs
            .values()
            .filter(|r| r.finished_at.is_some_and(|at| at < runs_cutoff))
            .map(|r| r.id)
            .collect();
        let mut run_events_deleted = 0;
        for run in &finished {
            run_events_deleted += state.ledger.events.remove(run).map_or(0, |events| events.len() as u64);
        }
        let artifacts_before = state.ledger.artifacts.len();
        state.ledger.artifacts.retain(|(run, _), _| !finished.contains(run));
        let audit_cutoff = now - policy.audit_older_than;
        let audit_before = state.ledger.audit.len();
        state.ledger.audit.retain(|_, e| e.at >= audit_cutoff);
        let syncs_cutoff = now - policy.inventory_syncs_older_than;
        let syncs_before = state.inventory.syncs.len();
        state.inventory.syncs.retain(|_, s| s.finished_at >= syncs_cutoff);
        Ok(RetentionReport {
            changes_deleted: doomed.len() as u64,
            samples_deleted,
            run_events_deleted,
            artifacts_deleted: (artifacts_before - state.ledger.artifacts.len()) as u64,
            audit_deleted: (audit_before - state.ledger.audit.len()) as u64,
            inventory_syncs_deleted: (syncs_before - state.inventory.syncs.len()) as u64,
        })
    }

    async fn check_integrity(&self) -> Result<Vec<IntegrityFinding>> {
        let state = self.lock()?;
        run_ready(integrity::check(&mut Check { state: &state }))
    }

    async fn counts(&self) -> Result<StoreCounts> {
        let state = self.lock()?;
        Ok(StoreCounts {
            nodes: state.nodes.len() as u64,
            instances: state.instances.len() as u64,
            commands: state.commands.len() as u64,
            pools: state.pools.len() as u64,
            changes: state.changes.len() as u64,
        })
    }

    async fn dump(&self, sink: tokio::sync::mpsc::Sender<DumpMessage>) -> Result<()> {
        // A copy is the snapshot: the lock is held only while copying.
        let state = self.lock()?.clone();
        dump_state(state, &sink).await
    }

    async fn load(&self, mut source: tokio::sync::mpsc::Receiver<LoadMessage>, target: Target) -> Result<()> {
        // Staged apart and swapped in whole: nothing is visible until the commit.
        let mut staged = State::default();
        loop {
            match source.recv().await {
                None => return Err(load_abandoned()),
                Some(LoadMessage::Records(records)) => {
                    for record in records {
                        staged.load(record)?;
                    }
                }
                Some(LoadMessage::ReadBack(readback)) => dump_state(staged.clone(), &readback).await?,
                Some(LoadMessage::Commit(sequences)) => {
                    let mut state = self.lock()?;
                    if target == Target::MustBeEmpty
                        && (!state.is_empty() || !state.usage.requests.is_empty() || !state.usage.settings.is_empty())
                    {
                        return Err(target_not_empty());
                    }
                    // Prices the records brought replace the target's; without any (an
                    // export written before prices moved), the target keeps its own.
                    if staged.usage.prices.is_empty() {
                        staged.usage.prices = std::mem::take(&mut state.usage.prices);
                    }
                    staged.last_change_seq = staged.last_change_seq.max(sequences.change_seq);
                    staged.last_health_id = staged.last_health_id.max(sequences.health_report_id);
                    staged.last_bootstrap_id = staged.last_bootstrap_id.max(sequences.bootstrap_log_id);
                    staged.changes_compacted_through =
                        staged.changes_compacted_through.max(sequences.changes_compacted_through);
                    staged.ledger.last_audit_seq = staged.ledger.last_audit_seq.max(sequences.audit_seq);
                    staged.ledger.last_tool_call_id = staged.ledger.last_tool_call_id.max(sequences.tool_call_id);
                    staged.inventory.last_sync_id = staged.inventory.last_sync_id.max(sequences.inventory_sync_id);
                    *state = staged;
                    return Ok(());
                }
            }
        }
    }

    async fn ping(&self) -> Result<()> {
        self.lock().map(|_| ())
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        self.lock().map(|_| None)
    }

    async fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
    }
}
