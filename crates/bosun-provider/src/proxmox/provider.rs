//! The `proxmox` provider: machines are VMs cloned from a template VM on a Proxmox VE
//! cluster.
//!
//! - provision: `/cluster/resources` for the template and the hosts, a host with room for
//!   the template's memory and cores (below), `/cluster/nextid`, a clone of the template
//!   onto that host named after bosun's instance id, the tag `bosun` on it, then a start;
//!   each task followed to its end. The machine's hardware is the template's: its cores,
//!   memory, disks and GPUs (`hostpciN`, copied by the clone). A template whose GPU is a
//!   resource mapping (`hostpci0: mapping=NAME`) gets a device of that mapping on whichever
//!   host the clone lands; one naming a raw PCI address can run once per host, and a
//!   second start on that host fails (its task's exit status says why).
//! - The host: among the online nodes (only those in `hosts`, when set), those whose free
//!   memory (`maxmem - mem`) holds the template's memory and whose idle CPUs
//!   (`maxcpu * (1 - cpu)`) hold its cores; of those, the one with the most free memory.
//!   None is [`ProviderError::Capacity`] naming each host's shortfall. A clone onto
//!   another node than the template's needs the template's disks on shared storage
//!   (Proxmox's rule).
//! - terminate: the VM is looked up in `/cluster/resources` by vmid and name (it may have
//!   been migrated), stopped if it runs, and destroyed with its disks (`purge`), each task
//!   followed. A VM that is gone, or whose vmid now belongs to a VM of another name, is
//!   already terminated: success.
//! - list: the cluster's VMs tagged `bosun` whose name is an instance id (templates
//!   excepted). A running or paused VM is running, one being destroyed is terminating,
//!   any other (stopped, just cloned) pending.
//!
//! Why the name is the instance id itself: Proxmox's cloud-init gives a VM its name as
//! host name, and an agent registers under its host name by default, which bosun links to
//! the instance of that id. So a template whose image starts `bosun agent` (with the
//! server's address and token) joins its pool with no bootstrap. The tag, set right after
//! the clone (Proxmox takes none with it), tells bosun's VMs from others; when it cannot
//! be set, the clone is destroyed again rather than left unlisted.
//!
//! The provider instance id is `NODE/VMID/NAME` (`pve2/104/i-0190...`): its node (where
//! it was created; a listing gives where it is now), its vmid and its name. Proxmox hands
//! out the lowest free vmid again, so the name makes sure a terminate repeated after the
//! VM was destroyed cannot destroy another VM that got its vmid.
//!
//! Proxmox VMs have neither regions nor instance types: a machine's zone is its node,
//! its region and listed type are empty, and an abstract type (`h100-8x`) is not offered
//! (a pool names its own, which the provider ignores). The provider does not report a
//! machine's address (Proxmox knows it only through the QEMU guest agent), so its
//! machines are not bootstrapped over SSH.

use std::time::Duration;

use async_trait::async_trait;
use bosun_config::{ProviderType, ProxmoxConfig, SecretSource};
use bosun_core::InstanceId;

use super::{CloneVm, ProxmoxClient, PveGuest, Snapshot, TaskPolling};
use crate::http::{self, Failure};
use crate::provider::{
    Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest, Provisioned,
};

/// The tag on every VM bosun clones.
pub const TAG: &str = "bosun";
/// A VM's name is a DNS name; bosun keeps it to one label.
const MAX_NAME_LEN: usize = 63;
/// How often a task's status is read.
const TASK_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A Proxmox VE cluster that pools clone VMs on.
#[derive(Debug)]
pub struct ProxmoxProvider {
    name: String,
    /// `proxmox NAME`, as the client names itself in errors.
    label: String,
    client: ProxmoxClient,
    token_id: String,
    token_secret: SecretSource,
    template_vmid: u32,
    storage: Option<String>,
    hosts: Vec<String>,
    full_clone: Option<bool>,
    polling: TaskPolling,
}

impl ProxmoxProvider {
    /// The provider for a `type: proxmox` entry of the configuration, reading the token
    /// secret through `env` (or from its file). See [`ProxmoxClient::from_endpoint`] for
    /// the errors.
    pub fn from_config(
        name: &str,
        config: &ProxmoxConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let client = ProxmoxClient::from_endpoint_with_env(name, &config.endpoint, env)?;
        let interval = TASK_POLL_INTERVAL;
        let max_polls = config.task_timeout.as_millis().div_ceil(interval.as_millis()).max(1);
        Ok(Self {
            name: name.to_owned(),
            label: format!("proxmox {name}"),
            client,
            token_id: config.endpoint.token_id.clone(),
            token_secret: config.endpoint.token_secret.clone(),
            template_vmid: config.template_vmid,
            storage: config.storage.clone(),
            hosts: config.hosts.clone(),
            full_clone: config.full_clone,
            polling: TaskPolling { interval, max_polls: u32::try_from(max_polls).unwrap_or(u32::MAX) },
        })
    }

    /// Follows tasks as `polling` says instead of every 2 s up to `task_timeout` (tests).
    pub fn with_task_polling(mut self, polling: TaskPolling) -> Self {
        self.polling = polling;
        self
    }

    /// Where the API token comes from (never its secret).
    pub fn credential_source(&self) -> String {
        format!("the API token {} with its secret in {}", self.token_id, self.token_secret)
    }

    /// The host a clone of `template` goes to; [`ProviderError::Capacity`] naming every
    /// host's shortfall when none has room.
    fn choose_host<'a>(&self, cluster: &'a Snapshot, template: &PveGuest) -> Result<&'a str, ProviderError> {
        let (memory, cpus) = (template.memory_total, template.cpus);
        let mut shortfalls = Vec::new();
        let mut best: Option<(&str, u64)> = None;
        for host in &self.hosts {
            if !cluster.nodes.iter().any(|node| &node.name == host) {
                shortfalls.push(format!("{host} is not a node of the cluster"));
            }
        }
        for node in cluster.nodes.iter().filter(|node| self.hosts.is_empty() || self.hosts.contains(&node.name)) {
            let free_memory = node.memory_total.saturating_sub(node.memory_used);
            let idle_cpus = f64::from(node.max_cpu) * (1.0 - node.cpu.clamp(0.0, 1.0));
            if node.status != "online" {
                shortfalls.push(format!("{} is {}", node.name, node.status));
            } else if free_memory < memory {
                shortfalls.push(format!("{} has {} MiB of memory free", node.name, free_memory >> 20));
            } else if idle_cpus < f64::from(cpus) {
                shortfalls.push(format!("{} has {idle_cpus:.1} CPUs idle", node.name));
            } else if best.is_none_or(|(_, most)| free_memory > most) {
                best = Some((&node.name, free_memory));
            }
        }
        best.map(|(host, _)| host).ok_or_else(|| {
            Failure::Capacity.error(
                &self.label,
                format!(
                    "no host has room for a clone of VM {} ({} MiB of memory, {cpus} CPUs): {}",
                    template.vmid,
                    memory >> 20,
                    if shortfalls.is_empty() { "the cluster lists no node".to_owned() } else { shortfalls.join("; ") }
                ),
            )
        })
    }

    /// The VM `vmid` named `name`, if the cluster still has it.
    async fn find(&self, vmid: u32, name: &str) -> Result<Option<PveGuest>, ProviderError> {
        let cluster = self.client.cluster_resources().await?;
        Ok(cluster.vms.into_iter().find(|vm| vm.vmid == vmid && vm.name == name))
    }

    /// Destroys a clone that provisioning gives up on, as far as it can: a failure is
    /// logged, and the error that made provisioning give up is what its caller hears.
    async fn discard(&self, host: &str, vmid: u32, name: &str) {
        let destroyed = match self.client.destroy_vm(host, vmid).await {
            Ok(upid) => self.client.wait_for_task(&upid, &format!("destroy VM {vmid} ({name})"), self.polling).await,
            Err(error) => Err(error),
        };
        if let Err(error) = destroyed {
            tracing::warn!(provider = %self.name, vmid, host, name, %error,
                "could not destroy a clone bosun gave up on; remove it by hand");
        }
    }

    /// `error` from a call on the VM, unless the VM is gone meanwhile: then there is
    /// nothing left to do.
    async fn unless_gone(&self, error: ProviderError, vmid: u32, name: &str) -> Result<(), ProviderError> {
        if matches!(error, ProviderError::Unauthorized { .. }) {
            return Err(error);
        }
        match self.find(vmid, name).await {
            Ok(None) => {
                tracing::debug!(provider = %self.name, vmid, name, "Proxmox VM gone while terminating it");
                Ok(())
            }
            _ => Err(error),
        }
    }
}

fn instance_id_from_name(name: &str) -> Option<InstanceId> {
    name.parse().ok()
}

/// `NODE/VMID/NAME`.
fn provider_instance_id(node: &str, vmid: u32, name: &str) -> String {
    format!("{node}/{vmid}/{name}")
}

/// The vmid and name of the VM a provider instance id names, when it is one of bosun's
/// VMs (the inventory links such a VM to its instance's node).
pub fn parse_provider_instance_id(id: &str) -> Option<(u32, &str)> {
    let mut parts = id.splitn(3, '/');
    let (node, vmid, name) = (parts.next()?, parts.next()?, parts.next()?);
    let vmid = vmid.parse().ok().filter(|vmid| *vmid >= 100)?;
    (http::is_path_segment(node) && instance_id_from_name(name).is_some()).then_some((vmid, name))
}

fn state(vm: &PveGuest) -> ProviderInstanceState {
    match (vm.status.as_str(), vm.lock.as_deref()) {
        (_, Some("destroyed")) => ProviderInstanceState::Terminating,
        ("running" | "paused", _) => ProviderInstanceState::Running,
        _ => ProviderInstanceState::Pending,
    }
}

#[async_trait]
impl Provider for ProxmoxProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Proxmox
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let name = request.instance_id.as_str();
        if name.len() > MAX_NAME_LEN || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Failure::Invalid.error(
                &self.label,
                format!(
                    "instance id {name} cannot be a VM name, which must be a DNS label \
                     (letters, digits and '-', {MAX_NAME_LEN} characters at most)"
                ),
            ));
        }
        let cluster = self.client.cluster_resources().await?;
        let template = cluster.vms.iter().find(|vm| vm.vmid == self.template_vmid).ok_or_else(|| {
            Failure::Invalid
                .error(&self.label, format!("the cluster has no VM {} to clone (template_vmid)", self.template_vmid))
        })?;
        let host = self.choose_host(&cluster, template)?;
        let vmid = self.client.next_vmid().await?;
        let pool = request.pool.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string);
        let description = format!("bosun instance {} (pool {pool}, provider {})", request.instance_id, self.name);
        let clone = CloneVm {
            newid: vmid,
            name,
            description: &description,
            target: Some(host),
            storage: self.storage.as_deref(),
            full: self.full_clone,
        };
        let upid = self.client.clone_vm(&template.node, template.vmid, &clone).await?;
        let what = format!("clone VM {} as {vmid} ({name}) onto {host}", template.vmid);
        self.client.wait_for_task(&upid, &what, self.polling).await?;
        if let Err(error) = self.client.set_tags(host, vmid, &[TAG]).await {
            // Untagged, the VM would be missing from list(), and so from every repair.
            self.discard(host, vmid, name).await;
            return Err(error);
        }
        // From here list() shows the VM under its instance id: if starting it fails, the
        // reconciler terminates it with the failed instance.
        let upid = self.client.start_vm(host, vmid).await?;
        self.client.wait_for_task(&upid, &format!("start VM {vmid} ({name}) on {host}"), self.polling).await?;
        tracing::info!(provider = %self.name, vmid, host, name, "Proxmox VM cloned and started");
        Ok(Provisioned {
            provider_instance_id: provider_instance_id(host, vmid, name),
            region: String::new(),
            zone: host.to_owned(),
        })
    }

    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError> {
        let (vmid, name) = parse_provider_instance_id(provider_instance_id).ok_or_else(|| {
            Failure::Invalid.error(
                &self.label,
                format!("{provider_instance_id:?} is not the id of a VM bosun cloned (NODE/VMID/INSTANCE_ID)"),
            )
        })?;
        let Some(vm) = self.find(vmid, name).await? else {
            tracing::debug!(provider = %self.name, id = provider_instance_id, "Proxmox VM already gone");
            return Ok(());
        };
        if vm.template {
            return Err(Failure::Invalid.error(
                &self.label,
                format!("VM {vmid} ({name}) is a template; bosun destroys only the VMs it cloned"),
            ));
        }
        let node = vm.node.as_str();
        if vm.status != "stopped" {
            match self.client.stop_vm(node, vmid).await {
                Ok(upid) => {
                    let what = format!("stop VM {vmid} ({name}) on {node}");
                    self.client.wait_for_task(&upid, &what, self.polling).await?;
                }
                Err(error) => return self.unless_gone(error, vmid, name).await,
            }
        }
        match self.client.destroy_vm(node, vmid).await {
            Ok(upid) => {
                let what = format!("destroy VM {vmid} ({name}) on {node}");
                self.client.wait_for_task(&upid, &what, self.polling).await
            }
            Err(error) => self.unless_gone(error, vmid, name).await,
        }
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        let cluster = self.client.cluster_resources().await?;
        Ok(cluster
            .vms
            .iter()
            .filter(|vm| !vm.template && vm.tags.iter().any(|tag| tag == TAG))
            .filter_map(|vm| {
                let instance_id = instance_id_from_name(&vm.name)?;
                Some(ProviderInstance {
                    provider_instance_id: provider_instance_id(&vm.node, vm.vmid, &vm.name),
                    instance_id: Some(instance_id),
                    state: state(vm),
                    instance_type: String::new(),
                    region: String::new(),
                    zone: vm.node.clone(),
                    ssh_address: None,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
