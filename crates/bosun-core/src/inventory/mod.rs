//! The inventory: the machines bosun's nodes are or run in (hypervisor hosts, VMs,
//! containers, storage), what runs on their GPUs (workloads), the services that group
//! them by label, and the source each record comes from.
//!
//! Every record is known by its [`Origin`]: the source that reports it (a Proxmox cluster
//! configured as `pve1`, or the agents) and a key stable in that source (for Proxmox:
//! `pve2/104` for a guest, `pve2` for a host, `pve2/local-lvm` for a storage). A source
//! reports everything it sees at once, as a snapshot; [`plan_sync`] compares a snapshot
//! with what is stored and says what to create, change, mark gone or bring back, so an
//! unchanged resource is never written and a vanished one is kept for history with its
//! `gone_at`, never deleted.
//!
//! A record's *state* (what a change of is worth a new revision and a change record) is
//! separate from its *usage* (CPU, memory used, network counters, uptime), which moves on
//! every read: the digest a sync compares covers the state only.
//!
//! VMs and containers carry labels (a Proxmox guest's tags, each a label with an empty
//! value); a workload's labels are derived from what its agent reported
//! ([`Workload::labels`]). A [`Service`] is a named label selector over some of these
//! kinds: its members are resolved when it is read, never stored.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::labels::{LabelSelector, Labels};
use crate::validation::ValidationError;
use crate::{NodeId, ServiceName, SourceName, Timestamp};

pub mod drift;
mod link;
mod record;

pub use link::{NodeLinks, ProvisionedVm};
pub use record::{
    InventoryRecord, RecordState, SourceStatus, SourceSync, SourceType, SyncCounts, SyncRecord, SyncScope, record_id,
};

named_enum!(
    /// What kind of resource an inventory record describes.
    InventoryKind, field = "kind" {
        Host => "host",
        Vm => "vm",
        Container => "container",
        Storage => "storage",
        Workload => "workload",
        Service => "service",
    }
);

impl InventoryKind {
    /// The change log's name for records of this kind.
    pub fn resource_kind(self) -> crate::ResourceKind {
        match self {
            InventoryKind::Host => crate::ResourceKind::Host,
            InventoryKind::Vm => crate::ResourceKind::Vm,
            InventoryKind::Container => crate::ResourceKind::Container,
            InventoryKind::Storage => crate::ResourceKind::Storage,
            InventoryKind::Workload => crate::ResourceKind::Workload,
            InventoryKind::Service => crate::ResourceKind::Service,
        }
    }
}

/// Where a record comes from, and its key there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub source: SourceName,
    /// Stable within the source: it names the same resource across snapshots.
    pub key: String,
}

/// The longest key a source may give a resource.
pub const MAX_KEY_LEN: usize = 255;

impl Origin {
    pub fn new(source: SourceName, key: impl Into<String>) -> Result<Self, ValidationError> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "key",
                format_args!("{key:?} must be 1 to {MAX_KEY_LEN} printable characters"),
            ));
        }
        Ok(Self { source, key })
    }
}

/// What moves on every read and is not worth a revision of its own.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// CPU utilization, 0 to 1 of the allocation.
    pub cpu: f64,
    pub memory_used: u64,
    pub disk_used: u64,
    pub net_in: u64,
    pub net_out: u64,
    pub uptime_s: u64,
}

/// A physical machine bosun knows of, with or without an agent: a hypervisor, say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    pub cpus: u32,
    pub memory_total: u64,
    /// The bosun node this host is, when it runs an agent (see [`NodeLinks`]).
    pub node_id: Option<NodeId>,
}

/// A virtual machine (QEMU on Proxmox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// The host it runs on (the host's key in the same source).
    pub host: String,
    pub vmid: u32,
    pub name: String,
    /// `running`, `stopped`, `paused`...
    pub status: String,
    pub template: bool,
    pub cpus: u32,
    pub memory_total: u64,
    pub disk_total: u64,
    pub ha_managed: bool,
    /// A lock held on it (`backup`, `migrate`...).
    pub lock: Option<String>,
    /// The source's digest of its configuration.
    pub config_digest: Option<String>,
    /// PCI devices passed through (GPUs), as the source writes them.
    pub gpu_devices: Vec<String>,
    /// The bosun node the VM is, when its agent registered (see [`NodeLinks`]).
    pub node_id: Option<NodeId>,
    /// Its labels (a Proxmox guest's tags, each with an empty value). Left out of the
    /// JSON when empty, so a guest without any digests as it did before labels existed
    /// and an upgrade does not make a revision of every record.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

named_enum!(
    /// A container's runtime.
    ContainerRuntime, field = "runtime" {
        Lxc => "lxc",
        Oci => "oci",
    }
);

/// A container: an LXC guest of a hypervisor, or an OCI container on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub runtime: ContainerRuntime,
    pub host: String,
    /// Proxmox's vmid for an LXC guest.
    pub vmid: Option<u32>,
    pub name: String,
    pub hostname: Option<String>,
    /// The OS (template) it was made from.
    pub os_template: Option<String>,
    pub status: String,
    pub template: bool,
    pub cpus: u32,
    pub memory_total: u64,
    pub disk_total: u64,
    pub ha_managed: bool,
    pub lock: Option<String>,
    pub config_digest: Option<String>,
    /// Its labels, as a VM's.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// A storage, and the hosts that see it (many to many).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    pub name: String,
    /// `dir`, `lvmthin`, `zfspool`, `nfs`, `rbd`...
    pub storage_type: String,
    /// What it holds (`images`, `rootdir`, `backup`...).
    pub content: Vec<String>,
    pub shared: bool,
    pub status: String,
    pub total: u64,
    /// The hosts (keys in the same source) that see it, sorted.
    pub hosts: Vec<String>,
}

/// A Kubernetes pod, as read from a process's cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: String,
}

/// A process using GPUs on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub node_id: NodeId,
    /// The GPUs it uses, by index, sorted.
    pub gpu_indexes: Vec<u32>,
    pub pid: u32,
    pub process_name: String,
    pub container_id: Option<String>,
    pub pod: Option<PodRef>,
    pub gpu_memory_bytes: u64,
    pub started_at: Option<Timestamp>,
}

impl Workload {
    /// The labels a selector matches it by, derived from what its agent reported:
    /// `process` (its name, when it has one), `namespace` and `pod` (its Kubernetes pod's,
    /// when the cgroup path names them) and `container` (its container's id). Derived, not
    /// stored beside the fields, so the two can never disagree and the agents' reports
    /// carry nothing new.
    pub fn labels(&self) -> Labels {
        let pod = self.pod.as_ref();
        let derived = [
            ("process", Some(self.process_name.as_str()).filter(|name| !name.is_empty())),
            ("namespace", pod.and_then(|p| p.namespace.as_deref())),
            ("pod", pod.and_then(|p| p.name.as_deref())),
            ("container", self.container_id.as_deref()),
        ];
        let mut labels = Labels::new();
        for (key, value) in derived {
            if let Some(value) = value {
                // A value no label can hold is left out, the record staying usable (the
                // fields of a report are checked to fit, so only a record built elsewhere
                // could have one).
                let _ = labels.insert(key, value);
            }
        }
        labels
    }
}

named_enum!(
    /// The kinds of record a service's members may be.
    MemberKind, field = "kinds" {
        Vm => "vm",
        Container => "container",
        Workload => "workload",
    }
);

impl MemberKind {
    pub fn inventory_kind(self) -> InventoryKind {
        match self {
            MemberKind::Vm => InventoryKind::Vm,
            MemberKind::Container => InventoryKind::Container,
            MemberKind::Workload => InventoryKind::Workload,
        }
    }
}

/// The longest service description, in bytes.
pub const MAX_SERVICE_DESCRIPTION_LEN: usize = 1024;
/// The longest selector a service may have, written out, in bytes.
pub const MAX_SERVICE_SELECTOR_LEN: usize = 1024;

/// A named group of VMs, containers or workloads, declared in the configuration: the
/// records of its kinds, still reported by their sources, whose labels match its
/// selector. Members are resolved when the service is read, so membership follows the
/// labels without a sync of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: ServiceName,
    /// Written as its text (`team=ml,gpu`) in documents.
    #[serde(with = "crate::labels::selector_text")]
    pub selector: LabelSelector,
    /// The kinds its members are of: at least one.
    pub kinds: BTreeSet<MemberKind>,
    pub description: Option<String>,
}

impl Service {
    /// A service, refusing an empty selector (it would select everything, which is
    /// rarely what a name promises), no kinds, and a selector or description too long to
    /// store, naming the field.
    pub fn new(
        name: ServiceName,
        selector: LabelSelector,
        kinds: BTreeSet<MemberKind>,
        description: Option<String>,
    ) -> Result<Self, ValidationError> {
        if selector.is_empty() {
            return Err(ValidationError::new("selector", "is empty; a service selects by at least one label"));
        }
        let written = selector.to_string();
        if written.len() > MAX_SERVICE_SELECTOR_LEN {
            return Err(ValidationError::new(
                "selector",
                format_args!("is {} bytes long; the limit is {MAX_SERVICE_SELECTOR_LEN}", written.len()),
            ));
        }
        if kinds.is_empty() {
            return Err(ValidationError::new("kinds", "is empty; name at least one of vm, container, workload"));
        }
        if let Some(text) = &description {
            if text.len() > MAX_SERVICE_DESCRIPTION_LEN {
                return Err(ValidationError::new(
                    "description",
                    format_args!("is {} bytes long; the limit is {MAX_SERVICE_DESCRIPTION_LEN}", text.len()),
                ));
            }
            crate::validation::check_text("description", text)?;
        }
        Ok(Self { name, selector, kinds, description })
    }
}

/// One resource as a source reports it: its key, its state and that state's digest, and
/// its usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported<T> {
    pub key: String,
    pub state: T,
    /// Changes exactly when `state` does (the source's config digest is part of it).
    pub digest: String,
    pub usage: Usage,
}

/// Everything one source reported at once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InventorySnapshot {
    pub hosts: Vec<Reported<Host>>,
    pub vms: Vec<Reported<Vm>>,
    pub containers: Vec<Reported<Container>>,
    pub storage: Vec<Reported<Storage>>,
    pub workloads: Vec<Reported<Workload>>,
    /// Only a configuration source (the configured services) reports these.
    pub services: Vec<Reported<Service>>,
}

impl InventorySnapshot {
    /// How many records it reports, of every kind.
    pub fn len(&self) -> usize {
        self.hosts.len()
            + self.vms.len()
            + self.containers.len()
            + self.storage.len()
            + self.workloads.len()
            + self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a stored record stands before a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// The digest of its state as last written.
    pub digest: String,
    /// Whether its source no longer reported it.
    pub gone: bool,
}

/// What a sync does with one source's records of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    /// Indexes into the reported records: new keys.
    pub create: Vec<usize>,
    /// Reported records whose state changed.
    pub update: Vec<usize>,
    /// Reported records that were gone and are back (their state may have changed too).
    pub back: Vec<usize>,
    /// Reported records whose state did not change: nothing is written for them but
    /// their `last_seen` and usage.
    pub unchanged: Vec<usize>,
    /// Stored keys the source no longer reports, sorted: they get `gone_at`.
    pub gone: Vec<String>,
}

/// A snapshot that names one key twice: the source's answer is not trustworthy, and a
/// sync built on it would write one of the two at random.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the snapshot reports key {key:?} twice")]
pub struct DuplicateKey {
    pub key: String,
}

/// Compares a complete snapshot, `(key, state digest)` per reported record, with the
/// stored records of the same source and kind. Records already gone and still missing
/// are left alone (their `gone_at` stays the first time they vanished).
///
/// A source that failed, or answered only in part, must not be planned at all: this plan
/// marks every stored key the snapshot lacks as gone.
pub fn plan_sync(stored: &HashMap<String, StoredState>, reported: &[(&str, &str)]) -> Result<SyncPlan, DuplicateKey> {
    let mut plan = SyncPlan::default();
    let mut seen = HashSet::with_capacity(reported.len());
    for (index, (key, digest)) in reported.iter().enumerate() {
        if !seen.insert(*key) {
            return Err(DuplicateKey { key: (*key).to_owned() });
        }
        match stored.get(*key) {
            None => plan.create.push(index),
            Some(state) if state.gone => plan.back.push(index),
            Some(state) if state.digest != *digest => plan.update.push(index),
            Some(_) => plan.unchanged.push(index),
        }
    }
    plan.gone = stored
        .iter()
        .filter(|(key, state)| !state.gone && !seen.contains(key.as_str()))
        .map(|(key, _)| key.clone())
        .collect();
    plan.gone.sort();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(entries: &[(&str, &str, bool)]) -> HashMap<String, StoredState> {
        entries
            .iter()
            .map(|(key, digest, gone)| ((*key).to_owned(), StoredState { digest: (*digest).to_owned(), gone: *gone }))
            .collect()
    }

    #[test]
    fn a_snapshot_is_planned_into_creates_changes_returns_and_departures() {
        let before = stored(&[
            ("pve1/100", "a", false),
            ("pve1/101", "b", false),
            ("pve1/102", "c", false),
            ("pve1/103", "d", true),
            ("pve1/104", "e", true),
        ]);
        let reported = [("pve1/100", "a"), ("pve1/101", "B"), ("pve1/103", "d"), ("pve2/200", "x")];
        let plan = plan_sync(&before, &reported).expect("plan");
        assert_eq!(
            plan,
            SyncPlan {
                create: vec![3],
                update: vec![1],
                back: vec![2],
                unchanged: vec![0],
                // 104 was gone already and stays as it was.
                gone: vec!["pve1/102".to_owned()],
            }
        );
        // The same snapshot again, once written, changes nothing.
        let after = stored(&[
            ("pve1/100", "a", false),
            ("pve1/101", "B", false),
            ("pve1/102", "c", true),
            ("pve1/103", "d", false),
            ("pve1/104", "e", true),
            ("pve2/200", "x", false),
        ]);
        let again = plan_sync(&after, &reported).expect("plan");
        assert_eq!((again.unchanged.len(), again.create.len() + again.update.len() + again.back.len()), (4, 0));
        assert!(again.gone.is_empty());
    }

    #[test]
    fn a_key_reported_twice_refuses_the_snapshot() {
        let error = plan_sync(&HashMap::new(), &[("a", "1"), ("b", "2"), ("a", "3")]).unwrap_err();
        assert_eq!(error.to_string(), "the snapshot reports key \"a\" twice");
    }

    fn workload() -> Workload {
        Workload {
            node_id: "n1".parse().expect("valid"),
            gpu_indexes: vec![0],
            pid: 42,
            process_name: "python3".to_owned(),
            container_id: Some("0123456789ab".to_owned()),
            pod: Some(PodRef {
                namespace: Some("ml".to_owned()),
                name: Some("train-0".to_owned()),
                uid: "u".to_owned(),
            }),
            gpu_memory_bytes: 0,
            started_at: None,
        }
    }

    #[test]
    fn a_workloads_labels_are_derived_from_what_its_agent_reported() {
        let labels = workload().labels();
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            pairs,
            [("container", "0123456789ab"), ("namespace", "ml"), ("pod", "train-0"), ("process", "python3")]
        );
        // Without a name, a pod or a container, only what is known; a name no label value
        // can hold is left out.
        let bare = Workload { process_name: String::new(), container_id: None, pod: None, ..workload() };
        assert!(bare.labels().is_empty());
        let odd = Workload { process_name: "x".repeat(300), ..workload() };
        assert_eq!(odd.labels().get("process"), None);
        assert_eq!(odd.labels().get("pod"), Some("train-0"));
    }

    fn service(selector: &str, kinds: &[MemberKind]) -> Result<Service, ValidationError> {
        Service::new(
            "training".parse().expect("valid"),
            selector.parse().expect("selector"),
            kinds.iter().copied().collect(),
            Some("the ML team's GPUs".to_owned()),
        )
    }

    #[test]
    fn a_service_is_written_with_its_selector_as_text() {
        let training = service("team=ml,gpu", &[MemberKind::Vm, MemberKind::Workload]).expect("valid");
        let json = serde_json::to_value(&training).expect("json");
        assert_eq!(json["selector"], "team=ml,gpu");
        assert_eq!(json["kinds"], serde_json::json!(["vm", "workload"]));
        assert_eq!(serde_json::from_value::<Service>(json).expect("reads back"), training);
    }

    #[test]
    fn guests_have_labels_workloads_derived_ones_and_other_kinds_none() {
        let json = serde_json::json!({
            "host": "pve1", "vmid": 100, "name": "a", "status": "running", "template": false, "cpus": 1,
            "memory_total": 1, "disk_total": 1, "ha_managed": false, "lock": null, "config_digest": null,
            "gpu_devices": [], "node_id": null,
        });
        let untagged: Vm = serde_json::from_value(json.clone()).expect("a VM written before labels reads");
        assert!(untagged.labels.is_empty());
        assert_eq!(serde_json::to_value(&untagged).expect("json"), json, "no labels, the same document (and digest)");
        let labels = Labels::try_from([("team", "ml"), ("gpu", "")]).expect("labels");
        let tagged = Vm { labels: labels.clone(), ..untagged };
        let selector: LabelSelector = "team=ml,gpu".parse().expect("selector");
        assert!(RecordState::Vm(tagged).labels().is_some_and(|l| l.matches(&selector)));
        let by_process: LabelSelector = "process=python3,namespace=ml".parse().expect("selector");
        assert!(RecordState::Workload(workload()).labels().is_some_and(|l| l.matches(&by_process)));
        let host = Host { name: "h".to_owned(), status: "online".to_owned(), cpus: 1, memory_total: 1, node_id: None };
        assert!(RecordState::Host(host).labels().is_none());
    }

    #[test]
    fn a_service_needs_a_selector_and_kinds_and_bounded_text() {
        let field = |result: Result<Service, ValidationError>| result.map(drop).map_err(|e| e.field);
        assert_eq!(field(service("", &[MemberKind::Vm])), Err("selector".to_owned()));
        assert_eq!(field(service("gpu", &[])), Err("kinds".to_owned()));
        let long = (0..60).map(|i| format!("key-{i}={}", "v".repeat(20))).collect::<Vec<_>>().join(",");
        assert_eq!(field(service(&long, &[MemberKind::Vm])), Err("selector".to_owned()));
        let described = |text: &str| {
            Service::new(
                "s".parse().expect("valid"),
                "gpu".parse().expect("selector"),
                MemberKind::ALL.iter().copied().collect(),
                Some(text.to_owned()),
            )
        };
        assert_eq!(field(described(&"d".repeat(MAX_SERVICE_DESCRIPTION_LEN + 1))), Err("description".to_owned()));
        assert_eq!(field(described("bell\u{7}")), Err("description".to_owned()));
        assert!(described("two\nlines").is_ok());
    }

    #[test]
    fn keys_are_bounded_printable_text() {
        let source: SourceName = "pve1".parse().expect("name");
        assert!(Origin::new(source.clone(), "pve2/104").is_ok());
        for bad in [String::new(), "a\nb".to_owned(), "k".repeat(MAX_KEY_LEN + 1)] {
            assert!(Origin::new(source.clone(), bad).is_err());
        }
        assert!("has space".parse::<SourceName>().is_err());
    }
}
