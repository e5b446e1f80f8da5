//! Nodes: machines whose agent registered with bosun (SPEC 3.1).

use serde::{Deserialize, Serialize};

use crate::lifecycle::TransitionError;
use crate::validation::{ValidationError, check_name, check_stored_int, check_text};
use crate::{Health, Labels, NodeId, NodeStatus, NodeTrigger, PoolName, Remediation, Revision, Timestamp};

/// Most GPUs one node may report.
pub const MAX_GPUS: usize = 64;

/// One GPU as the agent discovered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub memory_bytes: u64,
    pub driver_version: String,
    pub cuda_version: String,
}

impl Gpu {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, value) in [
            ("uuid", &self.uuid),
            ("name", &self.name),
            ("pci_bus_id", &self.pci_bus_id),
            ("driver_version", &self.driver_version),
            ("cuda_version", &self.cuda_version),
        ] {
            check_name(field, value)?;
        }
        check_stored_int("memory_bytes", self.memory_bytes)
    }
}

/// Facts about the machine beyond its GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeMetadata {
    pub hostname: String,
    pub internal_ip: String,
    pub external_ip: String,
    pub kernel_version: String,
    pub agent_version: String,
}

/// What an agent tells bosun about itself when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRegistration {
    pub node_id: NodeId,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<PoolName>,
    pub labels: Labels,
    pub gpus: Vec<Gpu>,
    pub metadata: NodeMetadata,
}

impl NodeRegistration {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("provider", &self.provider)?;
        check_name("region", &self.region)?;
        check_name("zone", &self.zone)?;
        check_name("instance_type", &self.instance_type)?;
        if self.gpus.len() > MAX_GPUS {
            return Err(ValidationError::new(
                "gpus",
                format_args!("{} GPUs reported; the limit is {MAX_GPUS}", self.gpus.len()),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, gpu) in self.gpus.iter().enumerate() {
            let at = |e: ValidationError| e.within(&format!("[{i}]")).within("gpus");
            if !seen.insert(gpu.index) {
                return Err(at(ValidationError::new("index", format_args!("GPU index {} appears twice", gpu.index))));
            }
            gpu.validate().map_err(at)?;
        }
        let m = &self.metadata;
        for (field, value) in [
            ("hostname", &m.hostname),
            ("internal_ip", &m.internal_ip),
            ("external_ip", &m.external_ip),
            ("kernel_version", &m.kernel_version),
            ("agent_version", &m.agent_version),
        ] {
            check_name(field, value).map_err(|e| e.within("metadata"))?;
        }
        Ok(())
    }
}

/// A registered node.
///
/// The per-GPU inventory is not part of it (lists of a hundred thousand nodes would carry
/// eight hundred thousand GPU records): a node records how many GPUs it has and of which
/// model, and stores keep the inventory beside it, written with the registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<PoolName>,
    pub labels: Labels,
    pub gpu_count: u32,
    /// The GPUs' model name, `mixed` when they differ, empty without GPUs.
    pub gpu_model: String,
    pub metadata: NodeMetadata,
    /// Change only through [`Node::apply`]; stores refuse illegal changes.
    pub status: NodeStatus,
    /// Why the node is in its status (`heartbeat timeout`, `fatal XID 79 on GPU 3`...).
    pub status_reason: String,
    pub status_changed_at: Timestamp,
    pub health: Health,
    /// Consecutive UNHEALTHY health reports or failed liveness checks; replacement is
    /// decided from this count (`unhealthy_after`), not from a single transition.
    pub unhealthy_streak: u32,
    /// The node's last remediation step (reset GPU, reboot, replace), if it ever needed one.
    pub remediation: Option<Remediation>,
    pub registered_at: Timestamp,
    /// Soft state, written in batches: may lag by one flush interval and is never part of
    /// compare-and-set or of change records.
    #[serde(skip)]
    pub last_heartbeat: Option<Timestamp>,
    pub last_health_report: Option<Timestamp>,
    pub revision: Revision,
}

impl Node {
    /// A node registering for the first time: ACTIVE, health not yet known. Its GPU
    /// inventory is `registration.gpus`, stored beside it.
    pub fn register(registration: &NodeRegistration, now: Timestamp) -> Result<Node, TransitionError> {
        let status = NodeStatus::apply(None, NodeTrigger::Register)?;
        let r = registration.clone();
        Ok(Node {
            id: r.node_id,
            provider: r.provider,
            region: r.region,
            zone: r.zone,
            instance_type: r.instance_type,
            pool: r.pool,
            labels: r.labels,
            gpu_count: gpu_count(&r.gpus),
            gpu_model: gpu_model(&r.gpus),
            metadata: r.metadata,
            status,
            status_reason: "registered".to_owned(),
            status_changed_at: now,
            health: Health::Unknown,
            unhealthy_streak: 0,
            remediation: None,
            registered_at: now,
            last_heartbeat: None,
            last_health_report: None,
            revision: Revision::FIRST,
        })
    }

    /// A known node registering again (agent restart): facts are refreshed, but status and
    /// health are kept, so a re-registration never launders an UNHEALTHY node.
    pub fn refresh_registration(&mut self, registration: &NodeRegistration) {
        let r = registration.clone();
        self.provider = r.provider;
        self.region = r.region;
        self.zone = r.zone;
        self.instance_type = r.instance_type;
        self.pool = r.pool;
        self.labels = r.labels;
        self.gpu_count = gpu_count(&r.gpus);
        self.gpu_model = gpu_model(&r.gpus);
        self.metadata = r.metadata;
    }

    /// Applies a lifecycle trigger, recording why and when.
    pub fn apply(&mut self, trigger: NodeTrigger, reason: &str, now: Timestamp) -> Result<(), TransitionError> {
        let next = NodeStatus::apply(Some(self.status), trigger)?;
        if next != self.status {
            self.status_changed_at = now;
        }
        self.status = next;
        self.status_reason = reason.to_owned();
        Ok(())
    }

    /// The time liveness is judged from: the last heartbeat, or registration for a node
    /// whose agent never heartbeated.
    pub fn last_seen(&self) -> Timestamp {
        self.last_heartbeat.unwrap_or(self.registered_at).max(self.registered_at)
    }

    /// Checks fields a caller may have edited before persisting.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_text("status_reason", &self.status_reason)?;
        if let Some(remediation) = &self.remediation {
            check_text("remediation.fault", &remediation.fault)?;
            check_text("remediation.message", &remediation.message)?;
        }
        check_name("gpu_model", &self.gpu_model)
    }

    /// Checks that `gpus` is this node's inventory: as many GPUs as it says it has.
    pub fn check_inventory(&self, gpus: &[Gpu]) -> Result<(), ValidationError> {
        if gpu_count(gpus) != self.gpu_count || gpu_model(gpus) != self.gpu_model {
            return Err(ValidationError::new(
                "gpus",
                format_args!(
                    "node {} says {} x {:?} but its inventory has {} x {:?}",
                    self.id,
                    self.gpu_count,
                    self.gpu_model,
                    gpus.len(),
                    gpu_model(gpus)
                ),
            ));
        }
        Ok(())
    }
}

fn gpu_count(gpus: &[Gpu]) -> u32 {
    u32::try_from(gpus.len()).unwrap_or(u32::MAX)
}

/// The common model name of `gpus`, `mixed` if they differ, empty for none.
fn gpu_model(gpus: &[Gpu]) -> String {
    match gpus.split_first() {
        None => String::new(),
        Some((first, rest)) if rest.iter().all(|g| g.name == first.name) => first.name.clone(),
        Some(_) => "mixed".to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn registration(id: &str) -> NodeRegistration {
        NodeRegistration {
            node_id: NodeId::new(id).expect("valid id"),
            provider: "gcp".into(),
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
            instance_type: "a3-highgpu-8g".into(),
            pool: None,
            labels: Labels::new(),
            gpus: (0..8)
                .map(|i| Gpu {
                    index: i,
                    uuid: format!("GPU-{i:08}"),
                    name: "NVIDIA H100 80GB HBM3".into(),
                    pci_bus_id: format!("0000:{i:02x}:00.0"),
                    memory_bytes: 80 << 30,
                    driver_version: "550.54.15".into(),
                    cuda_version: "12.4".into(),
                })
                .collect(),
            metadata: NodeMetadata { hostname: id.into(), ..Default::default() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::registration;
    use super::*;

    #[test]
    fn registration_starts_active_and_re_registration_keeps_status() {
        let t0 = Timestamp::UNIX_EPOCH;
        let mut node = Node::register(&registration("n1"), t0).expect("new node");
        assert_eq!((node.status, node.health), (NodeStatus::Active, Health::Unknown));
        assert_eq!((node.gpu_count, node.gpu_model.as_str()), (8, "NVIDIA H100 80GB HBM3"));
        node.apply(NodeTrigger::MarkUnhealthy, "fatal XID 79", t0).expect("legal");
        let mut again = registration("n1");
        again.metadata.agent_version = "2.0".into();
        again.gpus.truncate(7);
        node.refresh_registration(&again);
        assert_eq!(node.gpu_count, 7);
        assert_eq!(node.status, NodeStatus::Unhealthy, "re-registration must not launder UNHEALTHY");
        assert_eq!(node.metadata.agent_version, "2.0");
    }

    #[test]
    fn liveness_is_judged_from_registration_until_the_first_heartbeat() {
        let t0 = Timestamp::UNIX_EPOCH;
        let mut node = Node::register(&registration("n1"), t0).expect("new node");
        assert_eq!(node.last_seen(), t0);
        let later = t0 + std::time::Duration::from_secs(5);
        node.last_heartbeat = Some(later);
        assert_eq!(node.last_seen(), later);
    }

    #[test]
    fn inventory_must_match_the_summary() {
        let reg = registration("n1");
        let node = Node::register(&reg, Timestamp::UNIX_EPOCH).expect("new node");
        assert!(node.check_inventory(&reg.gpus).is_ok());
        assert!(node.check_inventory(&reg.gpus[..4]).is_err());
        let mut mixed = reg.gpus.clone();
        mixed[0].name = "NVIDIA A100".into();
        assert_eq!(super::gpu_model(&mixed), "mixed");
        assert_eq!(super::gpu_model(&[]), "");
    }

    #[test]
    fn registration_validation_names_the_field() {
        let mut reg = registration("n1");
        reg.gpus[3].uuid = "bad\u{0}uuid".into();
        assert_eq!(reg.validate().unwrap_err().field, "gpus[3].uuid");
        let mut reg = registration("n1");
        reg.gpus[1].index = 0;
        assert_eq!(reg.validate().unwrap_err().field, "gpus[1].index");
        let mut reg = registration("n1");
        reg.metadata.hostname = "h".repeat(300);
        assert_eq!(reg.validate().unwrap_err().field, "metadata.hostname");
    }
}
