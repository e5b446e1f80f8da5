//! Which bosun node a hypervisor host or a VM of a source is: the link from the inventory
//! to the fleet (`Host::node_id`, `Vm::node_id`).
//!
//! - A VM bosun provisioned itself (a pool's machine) is the node its instance's agent
//!   registered as: the instance names the VM exactly (its vmid and name), so this holds
//!   whatever host name the agent registered under.
//! - Any other VM is the node whose host name is the VM's name, and a host the node whose
//!   host name is the host's name: an agent registers under its host name by default, and
//!   Proxmox's cloud-init makes a VM's name its host name. Names compare without regard to
//!   case (DNS names do not carry it); a name two nodes share links neither, since a
//!   guess would make the inventory say something false.

use std::collections::HashMap;

use crate::NodeId;

/// What a sync of one source needs to know about the fleet to link its records, read
/// once per sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLinks {
    /// Nodes by lower-cased host name; `None` when several nodes have it.
    by_hostname: HashMap<String, Option<NodeId>>,
    /// The registered nodes of the VMs bosun provisioned, by vmid and VM name.
    provisioned: HashMap<(u32, String), NodeId>,
}

/// A VM bosun provisioned through a pool, and the node its agent registered as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedVm {
    pub vmid: u32,
    pub name: String,
    pub node: NodeId,
}

impl NodeLinks {
    /// From every node (its id and the host name it reported; empty when it reported
    /// none) and the VMs pools provisioned. A provisioned VM whose node is not among
    /// `nodes` (deleted since) links nothing.
    pub fn new<'a>(
        nodes: impl IntoIterator<Item = (&'a NodeId, &'a str)>,
        provisioned: impl IntoIterator<Item = ProvisionedVm>,
    ) -> Self {
        let mut by_hostname: HashMap<String, Option<NodeId>> = HashMap::new();
        let mut known = std::collections::HashSet::new();
        for (node, hostname) in nodes {
            known.insert(node.clone());
            if hostname.is_empty() {
                continue;
            }
            by_hostname
                .entry(hostname.to_lowercase())
                .and_modify(|found| {
                    if found.as_ref() != Some(node) {
                        *found = None;
                    }
                })
                .or_insert_with(|| Some(node.clone()));
        }
        let provisioned = provisioned
            .into_iter()
            .filter(|vm| known.contains(&vm.node))
            .map(|vm| ((vm.vmid, vm.name), vm.node))
            .collect();
        Self { by_hostname, provisioned }
    }

    /// The node a VM is: its instance's, else the one node with its name as host name. A
    /// template runs nothing and is no node.
    pub fn vm(&self, vmid: u32, name: &str, template: bool) -> Option<NodeId> {
        if template {
            return None;
        }
        self.provisioned.get(&(vmid, name.to_owned())).cloned().or_else(|| self.by_hostname(name))
    }

    /// The node a hypervisor host is: the one node with its name as host name.
    pub fn host(&self, name: &str) -> Option<NodeId> {
        self.by_hostname(name)
    }

    fn by_hostname(&self, name: &str) -> Option<NodeId> {
        if name.is_empty() {
            return None;
        }
        self.by_hostname.get(&name.to_lowercase()).cloned().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> NodeId {
        text.parse().expect("node id")
    }

    fn links(nodes: &[(&str, &str)], provisioned: &[(u32, &str, &str)]) -> NodeLinks {
        let ids: Vec<(NodeId, &str)> = nodes.iter().map(|(node, host)| (id(node), *host)).collect();
        let provisioned = provisioned.iter().map(|(vmid, name, node)| ProvisionedVm {
            vmid: *vmid,
            name: (*name).to_owned(),
            node: id(node),
        });
        NodeLinks::new(ids.iter().map(|(node, host)| (node, *host)), provisioned)
    }

    #[test]
    fn names_link_without_regard_to_case_and_only_when_one_node_has_them() {
        let links =
            links(&[("n1", "GPU-VM-0"), ("n2", "gpu-vm-1"), ("n3", "gpu-vm-1"), ("n4", ""), ("n5", "pve1")], &[]);
        let cases = [
            ("gpu-vm-0", Some("n1"), "case differs"),
            ("GPU-VM-0", Some("n1"), "same case"),
            ("gpu-vm-1", None, "two nodes have this host name"),
            ("gpu-vm-2", None, "no node has it"),
            ("", None, "an empty name matches the node that reported no host name"),
            ("n4", None, "a node's id is not its host name"),
        ];
        for (name, expected, why) in cases {
            assert_eq!(links.vm(104, name, false), expected.map(id), "VM {name:?}: {why}");
            assert_eq!(links.host(name), expected.map(id), "host {name:?}: {why}");
        }
        assert_eq!(links.host("PVE1"), Some(id("n5")));
        assert_eq!(links.vm(9000, "gpu-vm-0", true), None, "a template is no node");
    }

    #[test]
    fn a_provisioned_vm_is_its_instances_node_whatever_the_host_names_say() {
        let links = links(
            &[("i-0abc", "localhost"), ("other", "i-0abc"), ("twin-a", "dup"), ("twin-b", "dup")],
            &[(104, "i-0abc", "i-0abc"), (105, "dup", "twin-b"), (106, "i-gone", "deleted-node")],
        );
        assert_eq!(links.vm(104, "i-0abc", false), Some(id("i-0abc")), "the instance wins over the host name");
        assert_eq!(links.vm(107, "i-0abc", false), Some(id("other")), "another vmid is another VM: by name");
        assert_eq!(links.vm(105, "dup", false), Some(id("twin-b")), "the instance settles an ambiguous name");
        assert_eq!(links.vm(106, "i-gone", false), None, "the instance's node was deleted");
        // A node listed twice (its id repeated) is still one node.
        let once = NodeLinks::new([(&id("n1"), "a"), (&id("n1"), "a")], []);
        assert_eq!(once.host("a"), Some(id("n1")));
    }
}
