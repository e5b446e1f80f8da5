//! What moves between stores: every stored resource as a backend-neutral record, in the
//! order a loader can write them (referenced before referencing), and the messages that
//! carry them between a backend's dump, the file format and another backend's load.

use std::collections::BTreeMap;

use bosun_core::inventory::{InventoryRecord, SourceStatus, SyncRecord};
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalPolicy, BootstrapLog, ChangeRecord, Command, CommandEvent, Instance, Lease, LlmUsage, Node, Pool,
    Price, Runbook, Setting, StoredPolicy, TaskRun, Timestamp, ToolDefinition,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ledger::{ArtifactInfo, StoredAuditEntry, StoredRunEvent, StoredToolCall};
use crate::write::StoredHealthReport;

/// Records a dump sends, or a load receives, per message.
pub const BATCH: usize = 1_000;

/// The kinds of record, in load order: a kind only refers to kinds before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Policy,
    Lease,
    Pool,
    Node,
    Instance,
    Command,
    HealthReport,
    BootstrapLog,
    Runbook,
    Tool,
    ApprovalPolicy,
    Run,
    Approval,
    Artifact,
    ToolCall,
    Audit,
    /// A model's price over its window (closed ones too).
    Price,
    /// One LLM request with its response and token usage, its cost as stored (never
    /// recomputed on load); may name a run.
    LlmUsage,
    /// A control setting (the MCP kill switch), with its revision.
    Setting,
    /// An inventory record of any kind (host, VM, ...), with a storage's hosts.
    InventoryRecord,
    /// How an inventory source (one scope of it) stands.
    InventorySource,
    /// One recorded sync of an inventory source.
    InventorySync,
    Change,
}

impl RecordKind {
    pub const ALL: [RecordKind; 23] = [
        RecordKind::Policy,
        RecordKind::Lease,
        RecordKind::Pool,
        RecordKind::Node,
        RecordKind::Instance,
        RecordKind::Command,
        RecordKind::HealthReport,
        RecordKind::BootstrapLog,
        RecordKind::Runbook,
        RecordKind::Tool,
        RecordKind::ApprovalPolicy,
        RecordKind::Run,
        RecordKind::Approval,
        RecordKind::Artifact,
        RecordKind::ToolCall,
        RecordKind::Audit,
        RecordKind::Price,
        RecordKind::LlmUsage,
        RecordKind::Setting,
        RecordKind::InventoryRecord,
        RecordKind::InventorySource,
        RecordKind::InventorySync,
        RecordKind::Change,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Policy => "policy",
            RecordKind::Lease => "lease",
            RecordKind::Pool => "pool",
            RecordKind::Node => "node",
            RecordKind::Instance => "instance",
            RecordKind::Command => "command",
            RecordKind::HealthReport => "health_report",
            RecordKind::BootstrapLog => "bootstrap_log",
            RecordKind::Runbook => "runbook",
            RecordKind::Tool => "tool",
            RecordKind::ApprovalPolicy => "approval_policy",
            RecordKind::Run => "run",
            RecordKind::Approval => "approval",
            RecordKind::Artifact => "artifact",
            RecordKind::ToolCall => "tool_call",
            RecordKind::Audit => "audit",
            RecordKind::Price => "price",
            RecordKind::LlmUsage => "llm_usage",
            RecordKind::Setting => "setting",
            RecordKind::InventoryRecord => "inventory_record",
            RecordKind::InventorySource => "inventory_source",
            RecordKind::InventorySync => "inventory_sync",
            RecordKind::Change => "change",
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node with what a store keeps beside it: its GPU inventory (by index) and its last
/// heartbeat, the one piece of soft state that moves (metric samples do not: they expire
/// within minutes and the next heartbeats refill them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: Node,
    pub gpus: Vec<Gpu>,
    pub last_heartbeat: Option<Timestamp>,
}

/// A command with its full history, oldest event first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub command: Command,
    pub events: Vec<CommandEvent>,
}

/// A task run with its history, oldest event first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: TaskRun,
    pub events: Vec<StoredRunEvent>,
}

/// An artifact with its content (base64 in an export line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub info: ArtifactInfo,
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// A change-log entry as it moves between stores: its document stays the JSON text its store
/// keeps. The SQL stores keep documents as text and nothing between two stores looks
/// inside one, so a dump hands the text on without building a value, a load writes it as it
/// came, and an export line embeds it: the change log is most of a store, and its documents
/// were most of a transfer's work. A copy's checksum reads each document in canonical form
/// (`canonical.rs`), so stores that spell the same document differently (key order,
/// spacing) agree.
pub type ChangeEntry = ChangeRecord<DocumentText>;

/// One JSON document, as text on one line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocumentText(Box<RawValue>);

impl DocumentText {
    /// The document `text`, as a store read it; fails if it is not JSON. Text with a line
    /// break in it (legal JSON whitespace) is written compactly, so that an export line
    /// stays one line.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        if text.contains(['\n', '\r']) {
            return Self::of(&serde_json::from_str(&text)?);
        }
        RawValue::from_string(text).map(Self)
    }

    /// The text of `value`.
    pub fn of(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The document read into a value.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

/// Equal when they hold the same value, however spelled (text that is not JSON equals only
/// the same text).
impl PartialEq for DocumentText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || matches!((self.to_value(), other.to_value()), (Ok(a), Ok(b)) if a == b)
    }
}

/// One stored resource, exactly as stored: revisions, change sequence numbers and the ids
/// of history entries are kept, so a load writes it verbatim and applies no rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Policy(StoredPolicy),
    Lease(Box<Lease>),
    Pool(Box<Pool>),
    Node(Box<NodeRecord>),
    Instance(Box<Instance>),
    Command(Box<CommandRecord>),
    HealthReport(Box<StoredHealthReport>),
    BootstrapLog(Box<BootstrapLog>),
    Runbook(Box<Runbook>),
    Tool(Box<ToolDefinition>),
    ApprovalPolicy(Box<ApprovalPolicy>),
    Run(Box<RunRecord>),
    Approval(Box<Approval>),
    Artifact(Box<ArtifactRecord>),
    ToolCall(Box<StoredToolCall>),
    Audit(Box<StoredAuditEntry>),
    Price(Box<Price>),
    LlmUsage(Box<LlmUsage>),
    Setting(Box<Setting>),
    InventoryRecord(Box<InventoryRecord>),
    InventorySource(Box<SourceStatus>),
    InventorySync(Box<SyncRecord>),
    Change(Box<ChangeEntry>),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Policy(_) => RecordKind::Policy,
            Record::Lease(_) => RecordKind::Lease,
            Record::Pool(_) => RecordKind::Pool,
            Record::Node(_) => RecordKind::Node,
            Record::Instance(_) => RecordKind::Instance,
            Record::Command(_) => RecordKind::Command,
            Record::HealthReport(_) => RecordKind::HealthReport,
            Record::BootstrapLog(_) => RecordKind::BootstrapLog,
            Record::Runbook(_) => RecordKind::Runbook,
            Record::Tool(_) => RecordKind::Tool,
            Record::ApprovalPolicy(_) => RecordKind::ApprovalPolicy,
            Record::Run(_) => RecordKind::Run,
            Record::Approval(_) => RecordKind::Approval,
            Record::Artifact(_) => RecordKind::Artifact,
            Record::ToolCall(_) => RecordKind::ToolCall,
            Record::Audit(_) => RecordKind::Audit,
            Record::Price(_) => RecordKind::Price,
            Record::LlmUsage(_) => RecordKind::LlmUsage,
            Record::Setting(_) => RecordKind::Setting,
            Record::InventoryRecord(_) => RecordKind::InventoryRecord,
            Record::InventorySource(_) => RecordKind::InventorySource,
            Record::InventorySync(_) => RecordKind::InventorySync,
            Record::Change(_) => RecordKind::Change,
        }
    }
}

/// The highest numbers a store has handed out, kept even when retention removed the
/// records that carried them: a loaded store continues after them and never hands out a
/// number twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequences {
    pub change_seq: u64,
    pub health_report_id: u64,
    pub bootstrap_log_id: u64,
    /// How far retention had compacted the change log: the gap check of `db check` starts
    /// above it. (0 when reading an export written before this field existed.)
    #[serde(default)]
    pub changes_compacted_through: u64,
    /// The last audit entry's number (0 in exports written before the ledger existed).
    #[serde(default)]
    pub audit_seq: u64,
    /// The last tool call record's id.
    #[serde(default)]
    pub tool_call_id: u64,
    /// The last inventory sync's id (0 in exports written before the inventory moved).
    #[serde(default)]
    pub inventory_sync_id: u64,
}

impl Sequences {
    /// The larger of each number.
    pub fn max(self, other: Sequences) -> Sequences {
        Sequences {
            change_seq: self.change_seq.max(other.change_seq),
            health_report_id: self.health_report_id.max(other.health_report_id),
            bootstrap_log_id: self.bootstrap_log_id.max(other.bootstrap_log_id),
            changes_compacted_through: self.changes_compacted_through.max(other.changes_compacted_through),
            audit_seq: self.audit_seq.max(other.audit_seq),
            tool_call_id: self.tool_call_id.max(other.tool_call_id),
            inventory_sync_id: self.inventory_sync_id.max(other.inventory_sync_id),
        }
    }

    /// Raises each number to cover `record`'s.
    pub fn cover(&mut self, record: &Record) {
        match record {
            Record::HealthReport(r) => self.health_report_id = self.health_report_id.max(r.id),
            Record::BootstrapLog(l) => self.bootstrap_log_id = self.bootstrap_log_id.max(l.id),
            Record::Change(c) => self.change_seq = self.change_seq.max(c.seq),
            Record::Audit(a) => self.audit_seq = self.audit_seq.max(a.seq),
            Record::ToolCall(c) => self.tool_call_id = self.tool_call_id.max(c.id),
            Record::InventorySync(s) => self.inventory_sync_id = self.inventory_sync_id.max(s.id),
            _ => {}
        }
    }
}

/// Records per kind.
pub type KindCounts = BTreeMap<RecordKind, u64>;

/// What a dump announces before its records, read in the same snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub counts: KindCounts,
    pub sequences: Sequences,
}

/// What [`crate::Store::dump`] sends: one `Start`, then records in [`RecordKind`] order and
/// key order within a kind.
#[derive(Debug)]
pub enum DumpMessage {
    Start(Snapshot),
    Records(Vec<Record>),
}

/// What [`crate::Store::load`] receives: records in [`RecordKind`] order, then `Commit`.
/// A load that sees its channel close before `Commit` rolls back.
#[derive(Debug)]
pub enum LoadMessage {
    Records(Vec<Record>),
    /// Every record is sent: read back what the load's transaction now holds and stream it
    /// into the sender as a dump would (`Start`, then the records), still uncommitted. A
    /// copy compares it with what it sent, then sends `Commit` or closes the channel,
    /// which rolls the load back.
    ReadBack(tokio::sync::mpsc::Sender<DumpMessage>),
    Commit(Sequences),
}

/// The error a dump returns when whoever reads it has gone away.
pub(crate) fn reader_gone() -> crate::StoreError {
    crate::StoreError::unavailable("the export was cancelled by its reader")
}

/// The error a load returns when its sender went away without `Commit`.
pub(crate) fn load_abandoned() -> crate::StoreError {
    crate::StoreError::unavailable("the load was abandoned before it was complete; nothing was written")
}

/// Collects records into batches for a dump.
pub(crate) struct Batcher<'a> {
    sink: &'a tokio::sync::mpsc::Sender<DumpMessage>,
    batch: Vec<Record>,
}

impl<'a> Batcher<'a> {
    pub fn new(sink: &'a tokio::sync::mpsc::Sender<DumpMessage>) -> Self {
        Self { sink, batch: Vec::with_capacity(BATCH) }
    }

    pub async fn start(&self, snapshot: Snapshot) -> crate::Result<()> {
        self.sink.send(DumpMessage::Start(snapshot)).await.map_err(|_| reader_gone())
    }

    pub async fn push(&mut self, record: Record) -> crate::Result<()> {
        self.batch.push(record);
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> crate::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.sink.send(DumpMessage::Records(batch)).await.map_err(|_| reader_gone())
    }

    /// The same, from a thread outside the runtime (SQLite's readers).
    pub fn blocking_start(&self, snapshot: Snapshot) -> crate::Result<()> {
        self.sink.blocking_send(DumpMessage::Start(snapshot)).map_err(|_| reader_gone())
    }

    pub fn blocking_push(&mut self, record: Record) -> crate::Result<()> {
        self.batch.push(record);
        if self.batch.len() >= BATCH {
            self.blocking_flush()?;
        }
        Ok(())
    }

    pub fn blocking_flush(&mut self) -> crate::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.sink.blocking_send(DumpMessage::Records(batch)).map_err(|_| reader_gone())
    }
}

/// The tables a load's check that its target is empty reads: rows that hang off one of
/// them (a node's GPUs, a run's events, a storage's hosts, a request's response and token
/// usage) come with their parent's. LLM usage and settings count (a stored MCP kill switch
/// is not replaced unasked); prices do not: every store starts with the seeded ones, and a
/// load whose dump carries prices replaces the target's with them.
pub(crate) fn filled_tables() -> impl Iterator<Item = &'static str> {
    ["nodes", "instances", "pools", "policies", "changes", "bootstrap_logs", "tasks", "task_runs"]
        .into_iter()
        .chain(["tool_definitions", "approval_policies", "audit_entries", "inventory_sources", "inventory_syncs"])
        .chain(["llm_requests", "control_settings"])
        .chain(bosun_core::inventory::InventoryKind::ALL.iter().map(|kind| crate::inventory::row::table(*kind).name))
}

/// What a load's own check found when its target turned out not to be empty.
pub(crate) const UNLISTED_CONTENTS: &str = "it holds records the first look does not list, such as settings or \
     audit entries, or something wrote to it since the transfer began";

/// The error a load returns when its target turned out not to be empty.
pub(crate) fn target_not_empty() -> crate::StoreError {
    crate::StoreError::invalid(
        "target",
        format_args!("the store is not empty ({UNLISTED_CONTENTS}); nothing was written"),
    )
}
