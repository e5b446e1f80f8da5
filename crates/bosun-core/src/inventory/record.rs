//! Inventory records as stored, and what one sync of a source is and did.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Container, Host, InventoryKind, InventorySnapshot, Service, Storage, Usage, Vm, Workload};
use crate::labels::Labels;
use crate::{NodeId, Revision, SourceName, Timestamp};

/// A resource's state, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordState {
    Host(Host),
    Vm(Vm),
    Container(Container),
    Storage(Storage),
    Workload(Workload),
    Service(Service),
}

impl RecordState {
    pub fn kind(&self) -> InventoryKind {
        match self {
            RecordState::Host(_) => InventoryKind::Host,
            RecordState::Vm(_) => InventoryKind::Vm,
            RecordState::Container(_) => InventoryKind::Container,
            RecordState::Storage(_) => InventoryKind::Storage,
            RecordState::Workload(_) => InventoryKind::Workload,
            RecordState::Service(_) => InventoryKind::Service,
        }
    }

    /// The name an operator knows it by.
    pub fn name(&self) -> &str {
        match self {
            RecordState::Host(h) => &h.name,
            RecordState::Vm(v) => &v.name,
            RecordState::Container(c) => &c.name,
            RecordState::Storage(s) => &s.name,
            RecordState::Workload(w) => &w.process_name,
            RecordState::Service(s) => s.name.as_str(),
        }
    }

    /// `running`, `stopped`, `online`...; a workload is `running` while reported, a
    /// service `configured` while the configuration declares it.
    pub fn status(&self) -> &str {
        match self {
            RecordState::Host(h) => &h.status,
            RecordState::Vm(v) => &v.status,
            RecordState::Container(c) => &c.status,
            RecordState::Storage(s) => &s.status,
            RecordState::Workload(_) => "running",
            RecordState::Service(_) => "configured",
        }
    }

    /// The host (its key in the same source) the resource runs on.
    pub fn host(&self) -> Option<&str> {
        match self {
            RecordState::Vm(v) => Some(&v.host),
            RecordState::Container(c) => Some(&c.host),
            RecordState::Host(_) | RecordState::Storage(_) | RecordState::Workload(_) | RecordState::Service(_) => None,
        }
    }

    /// The bosun node the resource is, or runs on.
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            RecordState::Host(h) => h.node_id.as_ref(),
            RecordState::Vm(v) => v.node_id.as_ref(),
            RecordState::Workload(w) => Some(&w.node_id),
            RecordState::Container(_) | RecordState::Storage(_) | RecordState::Service(_) => None,
        }
    }

    /// The labels a selector matches it by: a VM's or container's own, a workload's
    /// derived ones ([`Workload::labels`]). Hosts, storage and services have none.
    pub fn labels(&self) -> Option<Cow<'_, Labels>> {
        match self {
            RecordState::Vm(v) => Some(Cow::Borrowed(&v.labels)),
            RecordState::Container(c) => Some(Cow::Borrowed(&c.labels)),
            RecordState::Workload(w) => Some(Cow::Owned(w.labels())),
            RecordState::Host(_) | RecordState::Storage(_) | RecordState::Service(_) => None,
        }
    }
}

/// An inventory record as stored: its origin, its state and usage, and its life in the
/// inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryRecord {
    pub source: SourceName,
    /// Stable within the source (see [`super::Origin`]).
    pub key: String,
    /// Its fields sit beside the others in JSON (`"kind": "vm", "vmid": 104, ...`).
    #[serde(flatten)]
    pub state: RecordState,
    /// The digest of `state`, as the source reported it.
    pub digest: String,
    pub usage: Usage,
    /// When `usage` was read.
    pub usage_at: Timestamp,
    pub first_seen: Timestamp,
    /// The last sync that saw it.
    pub last_seen: Timestamp,
    /// When its source stopped reporting it; cleared when it comes back.
    pub gone_at: Option<Timestamp>,
    pub revision: Revision,
}

impl InventoryRecord {
    pub fn kind(&self) -> InventoryKind {
        self.state.kind()
    }

    /// Its id across sources, as the change log and the CLI name it: `SOURCE/KEY`.
    pub fn id(&self) -> String {
        record_id(&self.source, &self.key)
    }

    /// The sync scope it belongs to.
    pub fn scope(&self) -> SyncScope {
        match &self.state {
            RecordState::Workload(w) => SyncScope::Node(w.node_id.clone()),
            _ => SyncScope::Source,
        }
    }
}

/// The id of the record with `key` in `source`: `SOURCE/KEY`.
pub fn record_id(source: &SourceName, key: &str) -> String {
    format!("{source}/{key}")
}

named_enum!(
    /// What kind of system a source is: a Proxmox VE cluster, the agents, or bosun's own
    /// configuration (the services it declares).
    SourceType, field = "type" {
        Proxmox => "proxmox",
        Agent => "agent",
        Config => "config",
    }
);

/// What part of a source one snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncScope {
    /// Everything the source reports (a Proxmox cluster).
    Source,
    /// The workloads of one node (an agent's report).
    Node(NodeId),
}

impl SyncScope {
    /// How the store keeps it: empty for the whole source, else the node's id.
    pub fn as_stored(&self) -> &str {
        match self {
            SyncScope::Source => "",
            SyncScope::Node(node) => node.as_str(),
        }
    }

    pub fn from_stored(text: &str) -> Result<Self, crate::ValidationError> {
        if text.is_empty() { Ok(SyncScope::Source) } else { Ok(SyncScope::Node(text.parse()?)) }
    }
}

/// One read of a source, as handed to the store: a complete snapshot, or the reason the
/// source could not be read (then nothing of it changes but its status).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSync {
    pub source: SourceName,
    pub source_type: SourceType,
    pub scope: SyncScope,
    /// When the read began (the sync's duration runs from here to the commit).
    pub started_at: Timestamp,
    pub outcome: Result<InventorySnapshot, String>,
}

/// What a sync did, by record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncCounts {
    pub created: u64,
    pub updated: u64,
    /// Records that had gone and came back.
    pub back: u64,
    pub gone: u64,
    pub unchanged: u64,
}

impl SyncCounts {
    /// Whether the sync wrote any record's state.
    pub fn changed_anything(&self) -> bool {
        self.created + self.updated + self.back + self.gone > 0
    }
}

/// One recorded sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub id: u64,
    pub source: SourceName,
    pub scope: SyncScope,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub counts: SyncCounts,
    /// Why the source could not be read.
    pub error: Option<String>,
}

/// How a source (one scope of it) stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub source: SourceName,
    pub source_type: SourceType,
    pub scope: SyncScope,
    pub last_sync_at: Timestamp,
    /// The last sync that read the source completely.
    pub last_success_at: Option<Timestamp>,
    /// Set while the last sync failed: the data is as of `last_success_at`.
    pub error: Option<String>,
    /// What the last sync did.
    pub counts: SyncCounts,
    pub syncs: u64,
}

impl SourceStatus {
    /// Its data is not current: the last read failed.
    pub fn is_stale(&self) -> bool {
        self.error.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Host;

    #[test]
    fn a_record_is_one_flat_json_object_and_reads_back() {
        let record = InventoryRecord {
            source: "pve1".parse().expect("valid"),
            key: "pve-a".to_owned(),
            state: RecordState::Host(Host {
                name: "pve-a".to_owned(),
                status: "online".to_owned(),
                cpus: 64,
                memory_total: u64::MAX,
                node_id: None,
            }),
            digest: "d".to_owned(),
            usage: Usage::default(),
            usage_at: Timestamp::from_unix_micros(1),
            first_seen: Timestamp::from_unix_micros(1),
            last_seen: Timestamp::from_unix_micros(2),
            gone_at: None,
            revision: Revision::FIRST,
        };
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(
            (json["kind"].as_str(), json["source"].as_str(), json["cpus"].as_u64()),
            (Some("host"), Some("pve1"), Some(64))
        );
        let back: InventoryRecord = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, record);
    }
}
