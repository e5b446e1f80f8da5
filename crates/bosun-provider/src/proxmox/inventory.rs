//! A Proxmox snapshot as inventory records.
//!
//! Keys are stable across what Proxmox changes under them:
//! - a host is its node name;
//! - a guest is its vmid, unique in the cluster, so a migrated VM is the same record with
//!   another host (an update), not a departure and an arrival;
//! - a shared storage is its name; a local one (each node has its own `local-lvm`) is
//!   `node/name`.
//!
//! A record's digest is the SHA-256 of its state as JSON: Proxmox's own config digest is
//! part of the state, usage counters are not. So is the bosun node a host or VM is linked
//! to ([`NodeLinks`]): a node registering later makes the VM an update with history, an
//! unchanged link writes nothing.
//!
//! A guest's tags are its labels, each with an empty value (a selector's bare `gpu` is a
//! presence test). A tag that cannot be a label key (Proxmox allows `+`, for one) is left
//! out, never failing the read.

use std::collections::BTreeMap;

use bosun_core::Labels;
use bosun_core::inventory::{
    Container, ContainerRuntime, Host, InventorySnapshot, NodeLinks, Reported, Storage, Usage, Vm,
};
use serde::Serialize;
use sha2::Digest as _;

use super::{PveGuest, Snapshot};

fn digest(state: &impl Serialize) -> String {
    // Serializing plain records of strings and numbers cannot fail.
    let json = serde_json::to_vec(state).unwrap_or_default();
    crate::http::hex(&sha2::Sha256::digest(&json))
}

fn reported<T: Serialize>(key: String, state: T, usage: Usage) -> Reported<T> {
    Reported { key, digest: digest(&state), state, usage }
}

fn usage(guest: &PveGuest) -> Usage {
    Usage {
        cpu: guest.cpu,
        memory_used: guest.memory_used,
        disk_used: guest.disk_used,
        net_in: guest.net_in,
        net_out: guest.net_out,
        uptime_s: guest.uptime_s,
    }
}

/// A guest's tags as labels: those of its configuration once read (what its config digest
/// covers), else those `/cluster/resources` lists.
fn labels(guest: &PveGuest) -> Labels {
    let tags = guest.config.as_ref().map_or(&guest.tags, |config| &config.tags);
    let mut labels = Labels::new();
    for tag in tags {
        if let Err(error) = labels.insert(tag.as_str(), "") {
            tracing::debug!(vmid = guest.vmid, tag = tag.as_str(), "Proxmox tag left out of the labels: {error}");
        }
    }
    labels
}

impl Snapshot {
    /// The snapshot as the inventory's records, hosts and VMs linked to bosun's nodes by
    /// `links`.
    pub fn to_inventory(&self, links: &NodeLinks) -> InventorySnapshot {
        let hosts = self
            .nodes
            .iter()
            .map(|node| {
                let state = Host {
                    name: node.name.clone(),
                    status: node.status.clone(),
                    cpus: node.max_cpu,
                    memory_total: node.memory_total,
                    node_id: links.host(&node.name),
                };
                let usage =
                    Usage { cpu: node.cpu, memory_used: node.memory_used, uptime_s: node.uptime_s, ..Usage::default() };
                reported(node.name.clone(), state, usage)
            })
            .collect();
        let vms = self
            .vms
            .iter()
            .map(|guest| {
                let config = guest.config.clone().unwrap_or_default();
                let state = Vm {
                    host: guest.node.clone(),
                    vmid: guest.vmid,
                    name: guest.name.clone(),
                    status: guest.status.clone(),
                    template: guest.template,
                    cpus: guest.cpus,
                    memory_total: guest.memory_total,
                    disk_total: guest.disk_total,
                    ha_managed: guest.ha_managed,
                    lock: guest.lock.clone(),
                    config_digest: guest.config.as_ref().map(|c| c.digest.clone()),
                    gpu_devices: config.passthrough,
                    node_id: links.vm(guest.vmid, &guest.name, guest.template),
                    labels: labels(guest),
                };
                reported(guest.vmid.to_string(), state, usage(guest))
            })
            .collect();
        let containers = self
            .containers
            .iter()
            .map(|guest| {
                let config = guest.config.clone().unwrap_or_default();
                let state = Container {
                    runtime: ContainerRuntime::Lxc,
                    host: guest.node.clone(),
                    vmid: Some(guest.vmid),
                    name: guest.name.clone(),
                    hostname: config.hostname,
                    os_template: config.os_type,
                    status: guest.status.clone(),
                    template: guest.template,
                    cpus: guest.cpus,
                    memory_total: guest.memory_total,
                    disk_total: guest.disk_total,
                    ha_managed: guest.ha_managed,
                    lock: guest.lock.clone(),
                    config_digest: guest.config.as_ref().map(|c| c.digest.clone()),
                    labels: labels(guest),
                };
                reported(guest.vmid.to_string(), state, usage(guest))
            })
            .collect();
        // One record per shared storage (every node that sees it listed), one per node
        // for a local one.
        let mut storage: BTreeMap<String, (Storage, u64)> = BTreeMap::new();
        for row in &self.storage {
            let key = if row.shared { row.storage.clone() } else { format!("{}/{}", row.node, row.storage) };
            let entry = storage.entry(key).or_insert_with(|| {
                let state = Storage {
                    name: row.storage.clone(),
                    storage_type: row.plugin_type.clone(),
                    content: row.content.clone(),
                    shared: row.shared,
                    status: row.status.clone(),
                    total: row.total,
                    hosts: Vec::new(),
                };
                (state, row.used)
            });
            entry.0.hosts.push(row.node.clone());
        }
        let storage = storage
            .into_iter()
            .map(|(key, (mut state, used))| {
                state.hosts.sort();
                state.hosts.dedup();
                reported(key, state, Usage { disk_used: used, ..Usage::default() })
            })
            .collect();
        InventorySnapshot { hosts, vms, containers, storage, workloads: Vec::new(), services: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mock::{MockCluster, MockSpec, TOKEN_ID, TOKEN_SECRET};
    use super::super::{GuestKind, ProxmoxClient};
    use bosun_core::inventory::{NodeLinks, ProvisionedVm};

    #[tokio::test]
    async fn a_cluster_becomes_records_with_stable_keys_and_state_digests() {
        let spec = MockSpec { nodes: 2, vms: 2, containers: 1, gpus_per_vm: 1, tasks_per_node: 0 };
        let mock = MockCluster::generate(&spec);
        let url = mock.spawn().await.expect("mock");
        let client = ProxmoxClient::new("pve1", &url, TOKEN_ID, TOKEN_SECRET).expect("client");
        let snapshot = client.snapshot().await.expect("snapshot");
        let inventory = snapshot.to_inventory(&NodeLinks::default());
        let keys = |keys: Vec<&str>| keys.into_iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(inventory.hosts.iter().map(|h| h.key.clone()).collect::<Vec<_>>(), keys(vec!["pve1", "pve2"]));
        assert_eq!(inventory.vms.iter().map(|v| v.key.clone()).collect::<Vec<_>>(), keys(vec!["100", "101"]));
        assert_eq!(inventory.vms[0].state.gpu_devices, ["0000:41:00,pcie=1"]);
        assert_eq!(inventory.containers[0].state.hostname.as_deref(), Some("svc-0"));
        let storage: Vec<(String, Vec<String>)> =
            inventory.storage.iter().map(|s| (s.key.clone(), s.state.hosts.clone())).collect();
        assert_eq!(
            storage,
            [
                ("ceph".to_owned(), keys(vec!["pve1", "pve2"])),
                ("pve1/local-lvm".to_owned(), keys(vec!["pve1"])),
                ("pve2/local-lvm".to_owned(), keys(vec!["pve2"])),
            ],
            "a shared storage once, a local one per node"
        );

        // Usage moves without changing the digest; a configuration change changes it.
        let mut busier = snapshot.clone();
        busier.vms[0].cpu = 0.99;
        busier.vms[0].uptime_s += 60;
        let busier = busier.to_inventory(&NodeLinks::default());
        assert_eq!(busier.vms[0].digest, inventory.vms[0].digest);
        assert_ne!(busier.vms[0].usage, inventory.vms[0].usage);
        assert!(mock.reconfigure(100));
        let changed = client.snapshot().await.expect("snapshot").to_inventory(&NodeLinks::default());
        assert_ne!(changed.vms[0].digest, inventory.vms[0].digest);
        assert_eq!(changed.vms[1].digest, inventory.vms[1].digest);
        // A migrated VM keeps its key; only its host changes.
        let mut migrated = snapshot.clone();
        migrated.vms[0].node = "pve2".into();
        let migrated = migrated.to_inventory(&NodeLinks::default());
        assert_eq!((migrated.vms[0].key.as_str(), migrated.vms[0].state.host.as_str()), ("100", "pve2"));
        assert_ne!(migrated.vms[0].digest, inventory.vms[0].digest);
        assert_eq!(snapshot.vms[0].kind, GuestKind::Qemu);

        // Tags are labels with empty values; one that cannot be a label key is left out.
        let tags = |labels: &bosun_core::Labels| labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        assert_eq!(tags(&inventory.vms[0].state.labels), ["gpu=", "training="]);
        assert_eq!(tags(&inventory.vms[1].state.labels), ["gpu=", "inference="]);
        assert_eq!(tags(&inventory.containers[0].state.labels), ["infra="]);
        assert!(mock.set_tags(101, "gpu;c++;training"));
        let retagged = client.snapshot().await.expect("snapshot").to_inventory(&NodeLinks::default());
        assert_eq!(tags(&retagged.vms[1].state.labels), ["gpu=", "training="]);
        assert_ne!(retagged.vms[1].digest, changed.vms[1].digest, "a re-tag is a change");
    }

    #[tokio::test]
    async fn linked_hosts_and_vms_carry_their_node_in_state_and_digest() {
        let mock =
            MockCluster::generate(&MockSpec { nodes: 2, vms: 2, containers: 0, gpus_per_vm: 1, tasks_per_node: 0 });
        let url = mock.spawn().await.expect("mock");
        let client = ProxmoxClient::new("pve1", &url, TOKEN_ID, TOKEN_SECRET).expect("client");
        let snapshot = client.snapshot().await.expect("snapshot");
        let unlinked = snapshot.to_inventory(&NodeLinks::default());
        let (n1, n2): (bosun_core::NodeId, bosun_core::NodeId) =
            ("hv-1".parse().expect("id"), "vm-b".parse().expect("id"));
        // pve1 is node hv-1 by host name; VM 101 (gpu-vm-1) was provisioned for node vm-b.
        let provisioned = [ProvisionedVm { vmid: 101, name: "gpu-vm-1".to_owned(), node: n2.clone() }];
        let links = NodeLinks::new([(&n1, "PVE1"), (&n2, "unrelated")], provisioned);
        let linked = snapshot.to_inventory(&links);
        assert_eq!((linked.hosts[0].state.node_id.as_ref(), linked.hosts[1].state.node_id.as_ref()), (Some(&n1), None));
        assert_eq!((linked.vms[0].state.node_id.as_ref(), linked.vms[1].state.node_id.as_ref()), (None, Some(&n2)));
        // A link is part of the state: its digest changes with it, and only then.
        assert_ne!(linked.hosts[0].digest, unlinked.hosts[0].digest);
        assert_ne!(linked.vms[1].digest, unlinked.vms[1].digest);
        assert_eq!(
            (&linked.hosts[1].digest, &linked.vms[0].digest),
            (&unlinked.hosts[1].digest, &unlinked.vms[0].digest)
        );
        assert_eq!(snapshot.to_inventory(&links).vms[1].digest, linked.vms[1].digest, "the same link, the same digest");
    }
}
