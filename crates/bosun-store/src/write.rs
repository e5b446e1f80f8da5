//! Atomic write batches.
//!
//! Every hard-state mutation reaches the store as a [`WriteBatch`]: an ordered list of
//! creates, compare-and-set updates and deletes that commits entirely or not at all,
//! together with one change record per created, updated or deleted resource, written in
//! the same transaction. Callers compute new states with `bosun_core`'s lifecycles; the
//! store re-checks every status change and every expected revision before committing.

use bosun_core::inventory::drift::DriftReport;
use bosun_core::inventory::{SourceSync, SyncCounts};
use bosun_core::node::Gpu;
use bosun_core::{
    Actor, Approval, ApprovalPolicy, ApprovalPolicyName, Artifact, AuditEntry, BootstrapLog, Command, Fence,
    HealthReport, Instance, InstanceId, LeaseName, LeaseObservation, LlmUsage, Node, NodeId, Pool, PoolName, Price,
    ReplicaId, ResourceKind, Revision, RunEvent, Runbook, RunbookName, Setting, StoredPolicy, TaskRun, ToolCall,
    ToolDefinition, ToolName,
};

/// One write inside a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Inserts a node at revision 1 with its GPU inventory; fails with AlreadyExists if
    /// the id is taken.
    CreateNode {
        node: Box<Node>,
        gpus: Vec<Gpu>,
    },
    /// Replaces a node's hard state if its stored revision is `expected`, and its GPU
    /// inventory when `gpus` is given (a re-registration). Soft state (the last heartbeat)
    /// is never written by an update.
    UpdateNode {
        node: Box<Node>,
        expected: Revision,
        gpus: Option<Vec<Gpu>>,
    },
    /// Deletes a node and everything that hangs off it (GPU inventory, commands, health
    /// history, metric samples). Refused while an instance still links to the node: unlink
    /// it in the same batch first.
    DeleteNode {
        id: NodeId,
        expected: Option<Revision>,
    },
    CreateInstance(Box<Instance>),
    UpdateInstance {
        instance: Box<Instance>,
        expected: Revision,
    },
    DeleteInstance {
        id: InstanceId,
        expected: Option<Revision>,
    },
    /// Inserts a command for an existing node; its history starts with one event.
    CreateCommand(Box<Command>),
    /// Replaces a command's state and bookkeeping; a state change or a redelivery adds an
    /// event to its history.
    UpdateCommand {
        command: Box<Command>,
        expected: Revision,
    },
    CreatePool(Box<Pool>),
    UpdatePool {
        pool: Box<Pool>,
        expected: Revision,
    },
    DeletePool {
        name: PoolName,
        expected: Option<Revision>,
    },
    /// Stores the health policy document: creates it (revision 1) when none is stored,
    /// replaces it otherwise. With `expected`, only if the stored one is at that revision.
    PutPolicy {
        policy: Box<StoredPolicy>,
        expected: Option<Revision>,
    },
    /// Removes the stored policy document, so the built-in policy applies again.
    DeletePolicy {
        expected: Option<Revision>,
    },
    /// Appends to the node's bounded health history (no change record: history is the
    /// record).
    AppendHealthReport(Box<HealthReport>),
    /// Appends to the node's bounded bootstrap log history.
    AppendBootstrapLog(Box<BootstrapLog>),
    /// Takes `lease` for `holder`: creates it at epoch 1 when none is stored; takes it at
    /// the next epoch when it is released, held by `holder` itself (a restart), or still
    /// exactly as `observed` (its holder stopped renewing); otherwise `LeaseHeld`.
    AcquireLease {
        lease: LeaseName,
        holder: ReplicaId,
        observed: Option<LeaseObservation>,
    },
    /// The holder renews its lease (no change record: renewals are not changes of
    /// leadership). `Fenced` unless the fence is current.
    RenewLease(Fence),
    /// The holder gives its lease up, so a follower can take over at once. `Fenced` unless
    /// the fence is current.
    ReleaseLease(Fence),
    /// Stores a runbook: created at version 1 when none has its name, replaced otherwise
    /// (its version the stored one or the next). With `expected`, only at that revision.
    PutRunbook {
        runbook: Box<Runbook>,
        expected: Option<Revision>,
    },
    DeleteRunbook {
        name: RunbookName,
        expected: Option<Revision>,
    },
    /// Records a run (in a status a run may begin in) with its targets.
    CreateRun(Box<TaskRun>),
    /// Replaces a run's status and outcome; its kind, runbook, targets, requester, input and
    /// creation time never change, and its status follows the run lifecycle.
    UpdateRun {
        run: Box<TaskRun>,
        expected: Revision,
    },
    /// Appends to a run's history, numbered after its last event (no change record).
    AppendRunEvent(Box<RunEvent>),
    /// Stores an artifact of a run, once per name, up to the store's size limit
    /// (`TooLarge` beyond).
    PutArtifact(Box<Artifact>),
    /// Stores a tool definition: created when none has its name, replaced otherwise.
    PutTool {
        tool: Box<ToolDefinition>,
        expected: Option<Revision>,
    },
    DeleteTool {
        name: ToolName,
        expected: Option<Revision>,
    },
    /// Records one call of a tool within a run (no change record).
    RecordToolCall(Box<ToolCall>),
    /// Stores an approval policy rule: created when none has its name, replaced otherwise.
    PutApprovalPolicy {
        policy: Box<ApprovalPolicy>,
        expected: Option<Revision>,
    },
    DeleteApprovalPolicy {
        name: ApprovalPolicyName,
        expected: Option<Revision>,
    },
    /// Requests an approval (undecided) for a step of a run.
    CreateApproval(Box<Approval>),
    /// Applies one read of an inventory source in one go: creates, changes, marks gone and
    /// brings back its records, writes nothing for unchanged ones, and records the sync. A
    /// failed read (`outcome` is the reason) changes nothing but the source's status.
    SyncInventory(Box<SourceSync>),
    /// Records how the inventory now differs from its declaration: a change record of kind
    /// `drift` under `id` whose resource is the report, at the revision after the last one
    /// recorded under `id` (created at 1 when none was). The change log is the only place a
    /// report is kept.
    RecordDrift {
        id: String,
        report: Box<DriftReport>,
    },
    /// Records the decision on an approval; `FailedPrecondition` if it was decided before.
    UpdateApproval {
        approval: Box<Approval>,
        expected: Revision,
    },
    /// Appends to the audit log, numbered after its last entry (no change record).
    AppendAudit(Box<AuditEntry>),
    /// Stores a model's price (no change record): the same provider, model and start again
    /// replaces it; otherwise the model's open price closes where this one starts.
    PutPrice(Box<Price>),
    /// Records one LLM request (no change record), priced from the price of its model in
    /// effect at its time; kept with its cost unknown when none is. `AlreadyExists` for a
    /// provider request id recorded before.
    RecordLlmUsage(Box<LlmUsage>),
    /// Stores a setting (no change record): created when none has its name, replaced
    /// otherwise; with `expected`, only at that revision.
    PutSetting {
        setting: Box<Setting>,
        expected: Option<Revision>,
    },
}

impl Write {
    /// The resource this write creates, updates or deletes, if it is one with revisions.
    pub fn target(&self) -> Option<(ResourceKind, String)> {
        match self {
            Write::CreateNode { node: n, .. } | Write::UpdateNode { node: n, .. } => {
                Some((ResourceKind::Node, n.id.to_string()))
            }
            Write::DeleteNode { id, .. } => Some((ResourceKind::Node, id.to_string())),
            Write::CreateInstance(i) | Write::UpdateInstance { instance: i, .. } => {
                Some((ResourceKind::Instance, i.id.to_string()))
            }
            Write::DeleteInstance { id, .. } => Some((ResourceKind::Instance, id.to_string())),
            Write::CreateCommand(c) | Write::UpdateCommand { command: c, .. } => {
                Some((ResourceKind::Command, c.id.to_string()))
            }
            Write::CreatePool(p) | Write::UpdatePool { pool: p, .. } => Some((ResourceKind::Pool, p.name.to_string())),
            Write::DeletePool { name, .. } => Some((ResourceKind::Pool, name.to_string())),
            Write::PutPolicy { .. } | Write::DeletePolicy { .. } => {
                Some((ResourceKind::Policy, StoredPolicy::RESOURCE_ID.to_owned()))
            }
            Write::AcquireLease { lease, .. } => Some((ResourceKind::Lease, lease.to_string())),
            Write::RenewLease(fence) | Write::ReleaseLease(fence) => {
                Some((ResourceKind::Lease, fence.lease.to_string()))
            }
            Write::PutRunbook { runbook, .. } => Some((ResourceKind::Runbook, runbook.name.to_string())),
            Write::DeleteRunbook { name, .. } => Some((ResourceKind::Runbook, name.to_string())),
            Write::CreateRun(run) | Write::UpdateRun { run, .. } => Some((ResourceKind::Run, run.id.to_string())),
            Write::PutTool { tool, .. } => Some((ResourceKind::Tool, tool.name.to_string())),
            Write::DeleteTool { name, .. } => Some((ResourceKind::Tool, name.to_string())),
            Write::PutApprovalPolicy { policy, .. } => Some((ResourceKind::ApprovalPolicy, policy.name.to_string())),
            Write::DeleteApprovalPolicy { name, .. } => Some((ResourceKind::ApprovalPolicy, name.to_string())),
            Write::CreateApproval(approval) | Write::UpdateApproval { approval, .. } => {
                Some((ResourceKind::Approval, approval.id.to_string()))
            }
            Write::RecordDrift { id, .. } => Some((ResourceKind::Drift, id.clone())),
            Write::AppendHealthReport(_)
            | Write::AppendBootstrapLog(_)
            | Write::AppendRunEvent(_)
            | Write::PutArtifact(_)
            | Write::RecordToolCall(_)
            | Write::AppendAudit(_)
            | Write::SyncInventory(_)
            | Write::PutPrice(_)
            | Write::RecordLlmUsage(_)
            | Write::PutSetting { .. } => None,
        }
    }
}

/// An ordered, atomic set of writes made by one actor for one reason.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    pub actor: Actor,
    /// Why: recorded in each change record and command event.
    pub reason: String,
    pub writes: Vec<Write>,
    /// Set on writes of leader-only work: the batch commits only while this fence is the
    /// lease's current holder and epoch, checked in the same transaction (`Fenced`
    /// otherwise, with nothing written).
    pub fence: Option<Fence>,
}

impl WriteBatch {
    pub fn new(actor: Actor, reason: impl Into<String>) -> Self {
        Self { actor, reason: reason.into(), writes: Vec::new(), fence: None }
    }

    /// Commits only while `fence` is current (see [`WriteBatch::fence`]).
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    pub fn push(&mut self, write: Write) -> &mut Self {
        self.writes.push(write);
        self
    }

    /// Adds `write` (builder form of [`WriteBatch::push`]).
    pub fn with(mut self, write: Write) -> Self {
        self.writes.push(write);
        self
    }

    pub fn create_node(mut self, node: Node, gpus: Vec<Gpu>) -> Self {
        self.writes.push(Write::CreateNode { node: Box::new(node), gpus });
        self
    }

    /// Updates a node's hard state, leaving its GPU inventory as it is.
    pub fn update_node(mut self, node: Node) -> Self {
        let expected = node.revision;
        self.writes.push(Write::UpdateNode { node: Box::new(node), expected, gpus: None });
        self
    }

    /// Updates a node and replaces its GPU inventory (a re-registration).
    pub fn refresh_node(mut self, node: Node, gpus: Vec<Gpu>) -> Self {
        let expected = node.revision;
        self.writes.push(Write::UpdateNode { node: Box::new(node), expected, gpus: Some(gpus) });
        self
    }

    pub fn delete_node(mut self, id: NodeId, expected: Option<Revision>) -> Self {
        self.writes.push(Write::DeleteNode { id, expected });
        self
    }

    pub fn create_instance(mut self, instance: Instance) -> Self {
        self.writes.push(Write::CreateInstance(Box::new(instance)));
        self
    }

    pub fn update_instance(mut self, instance: Instance) -> Self {
        let expected = instance.revision;
        self.writes.push(Write::UpdateInstance { instance: Box::new(instance), expected });
        self
    }

    pub fn delete_instance(mut self, id: InstanceId, expected: Option<Revision>) -> Self {
        self.writes.push(Write::DeleteInstance { id, expected });
        self
    }

    pub fn create_command(mut self, command: Command) -> Self {
        self.writes.push(Write::CreateCommand(Box::new(command)));
        self
    }

    pub fn update_command(mut self, command: Command) -> Self {
        let expected = command.revision;
        self.writes.push(Write::UpdateCommand { command: Box::new(command), expected });
        self
    }

    pub fn create_pool(mut self, pool: Pool) -> Self {
        self.writes.push(Write::CreatePool(Box::new(pool)));
        self
    }

    pub fn update_pool(mut self, pool: Pool) -> Self {
        let expected = pool.revision;
        self.writes.push(Write::UpdatePool { pool: Box::new(pool), expected });
        self
    }

    pub fn delete_pool(mut self, name: PoolName, expected: Option<Revision>) -> Self {
        self.writes.push(Write::DeletePool { name, expected });
        self
    }

    /// Stores `policy`, replacing what is stored whatever its revision.
    pub fn put_policy(mut self, policy: StoredPolicy) -> Self {
        self.writes.push(Write::PutPolicy { policy: Box::new(policy), expected: None });
        self
    }

    pub fn delete_policy(mut self, expected: Option<Revision>) -> Self {
        self.writes.push(Write::DeletePolicy { expected });
        self
    }

    pub fn append_health_report(mut self, report: HealthReport) -> Self {
        self.writes.push(Write::AppendHealthReport(Box::new(report)));
        self
    }

    pub fn append_bootstrap_log(mut self, log: BootstrapLog) -> Self {
        self.writes.push(Write::AppendBootstrapLog(Box::new(log)));
        self
    }

    pub fn acquire_lease(mut self, lease: LeaseName, holder: ReplicaId, observed: Option<LeaseObservation>) -> Self {
        self.writes.push(Write::AcquireLease { lease, holder, observed });
        self
    }

    pub fn renew_lease(mut self, fence: Fence) -> Self {
        self.writes.push(Write::RenewLease(fence));
        self
    }

    pub fn release_lease(mut self, fence: Fence) -> Self {
        self.writes.push(Write::ReleaseLease(fence));
        self
    }

    pub fn create_run(mut self, run: TaskRun) -> Self {
        self.writes.push(Write::CreateRun(Box::new(run)));
        self
    }

    pub fn update_run(mut self, run: TaskRun) -> Self {
        let expected = run.revision;
        self.writes.push(Write::UpdateRun { run: Box::new(run), expected });
        self
    }

    pub fn append_run_event(mut self, event: RunEvent) -> Self {
        self.writes.push(Write::AppendRunEvent(Box::new(event)));
        self
    }

    pub fn put_artifact(mut self, artifact: Artifact) -> Self {
        self.writes.push(Write::PutArtifact(Box::new(artifact)));
        self
    }

    pub fn append_audit(mut self, entry: AuditEntry) -> Self {
        self.writes.push(Write::AppendAudit(Box::new(entry)));
        self
    }

    pub fn sync_inventory(mut self, sync: SourceSync) -> Self {
        self.writes.push(Write::SyncInventory(Box::new(sync)));
        self
    }

    pub fn record_drift(mut self, id: impl Into<String>, report: DriftReport) -> Self {
        self.writes.push(Write::RecordDrift { id: id.into(), report: Box::new(report) });
        self
    }

    pub fn put_price(mut self, price: Price) -> Self {
        self.writes.push(Write::PutPrice(Box::new(price)));
        self
    }

    pub fn record_llm_usage(mut self, usage: LlmUsage) -> Self {
        self.writes.push(Write::RecordLlmUsage(Box::new(usage)));
        self
    }

    pub fn put_setting(mut self, setting: Setting, expected: Option<Revision>) -> Self {
        self.writes.push(Write::PutSetting { setting: Box::new(setting), expected });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// What a committed batch produced, one entry per write in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub outcomes: Vec<WriteOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The resource's revision after the write (its last revision for a delete), and the
    /// sequence number of the change record written for it.
    Resource { revision: Revision, change_seq: u64 },
    /// The id assigned to an appended history entry (a run event's sequence number, an
    /// audit entry's; an artifact's size).
    Appended { id: u64 },
    /// A lease renewed: its revision (unchanged) and how many renewals it now counts.
    Renewed { revision: Revision, renewals: u64 },
    /// A record kept without change records (a setting, a price): its revision.
    Stored { revision: Revision },
    /// An LLM request recorded: its cost in micro-USD, `None` when no price covered it.
    Priced { cost_micro_usd: Option<u64> },
    /// An inventory sync: its id in the sync history (0 when not recorded: an agent's
    /// report that changed nothing), what it did, and the sequence number of the last
    /// change record it wrote (0 when it wrote none).
    Synced { sync_id: u64, counts: SyncCounts, change_seq: u64 },
}

impl Committed {
    /// The new revision of the write at `index` (panics on a non-resource write: a caller
    /// bug, not a runtime condition).
    pub fn revision(&self, index: usize) -> Revision {
        match self.outcomes[index] {
            WriteOutcome::Resource { revision, .. }
            | WriteOutcome::Renewed { revision, .. }
            | WriteOutcome::Stored { revision } => revision,
            WriteOutcome::Appended { .. } | WriteOutcome::Synced { .. } | WriteOutcome::Priced { .. } => {
                panic!("write {index} is an append and has no revision")
            }
        }
    }

    /// The highest change sequence number this batch wrote, if it wrote any.
    pub fn last_change_seq(&self) -> Option<u64> {
        self.outcomes
            .iter()
            .filter_map(|o| match o {
                WriteOutcome::Resource { change_seq, .. } => Some(*change_seq),
                WriteOutcome::Synced { change_seq, .. } => (*change_seq > 0).then_some(*change_seq),
                WriteOutcome::Appended { .. }
                | WriteOutcome::Renewed { .. }
                | WriteOutcome::Stored { .. }
                | WriteOutcome::Priced { .. } => None,
            })
            .max()
    }
}

/// A stored health report with its position in the node's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredHealthReport {
    pub id: u64,
    pub report: HealthReport,
}
