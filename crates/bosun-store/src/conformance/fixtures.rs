//! Builders for realistic records, and small helpers the cases share.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_core::command::CommandRequest;
use bosun_core::instance::InstanceRequest;
use bosun_core::{
    Actor, Command, CommandKind, Gpu, Instance, InstanceId, InstanceTrigger, Labels, Node, NodeId, NodeMetadata,
    NodeRegistration, Pool, PoolName, PoolSpec, Timestamp,
};

use super::Ctx;
use crate::error::StoreError;
use crate::write::WriteBatch;

pub(crate) fn node_id(id: &str) -> NodeId {
    NodeId::new(id).expect("valid node id")
}

pub(crate) fn registration(id: &str) -> NodeRegistration {
    NodeRegistration {
        node_id: node_id(id),
        provider: "gcp".into(),
        region: "us-central1".into(),
        zone: "us-central1-a".into(),
        instance_type: "a3-highgpu-8g".into(),
        pool: Some(PoolName::new("training").expect("valid")),
        labels: Labels::try_from([("gpu", "h100"), ("tier", "prod")]).expect("valid labels"),
        gpus: (0..8)
            .map(|i| Gpu {
                index: i,
                uuid: format!("GPU-{id}-{i}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: format!("0000:{:02x}:00.0", i + 0x18),
                memory_bytes: 85_899_345_920,
                driver_version: "550.54.15".into(),
                cuda_version: "12.4".into(),
            })
            .collect(),
        metadata: NodeMetadata {
            hostname: id.into(),
            internal_ip: "10.0.0.7".into(),
            external_ip: String::new(),
            kernel_version: "6.1.0-18-amd64".into(),
            agent_version: "0.1.0".into(),
        },
    }
}

pub(crate) fn new_node(id: &str, at: Timestamp) -> Node {
    Node::register(&registration(id), at).expect("new node")
}

/// Creates fixture nodes with their fixture GPU inventory.
pub(crate) trait RegisterExt {
    fn register(self, node: Node) -> Self;
}

impl RegisterExt for WriteBatch {
    fn register(self, node: Node) -> Self {
        let gpus = registration(node.id.as_str()).gpus;
        self.create_node(node, gpus)
    }
}

pub(crate) fn actor() -> Actor {
    Actor::operator("conformance")
}

pub(crate) fn batch(reason: &str) -> WriteBatch {
    WriteBatch::new(actor(), reason)
}

pub(crate) fn instance_request(id: &str) -> InstanceRequest {
    InstanceRequest {
        id: InstanceId::new(id).expect("valid instance id"),
        provider: "fake".into(),
        region: "local".into(),
        zone: "local-a".into(),
        instance_type: "h100-8x".into(),
        pool: Some(PoolName::new("training").expect("valid")),
        labels: Labels::try_from([("bosun.dev/pool", "training")]).expect("valid"),
    }
}

pub(crate) fn command_request(node: &str, kind: CommandKind) -> CommandRequest {
    let mut parameters = BTreeMap::new();
    if kind == CommandKind::RunDiagnostic {
        parameters.insert("test".to_owned(), "nvbandwidth".to_owned());
    }
    if kind == CommandKind::ResetGpu {
        parameters.insert("gpu".to_owned(), "3".to_owned());
    }
    CommandRequest {
        node_id: node_id(node),
        kind,
        parameters,
        reason: "conformance".into(),
        time_to_live: Duration::from_secs(600),
    }
}

pub(crate) fn pool(name: &str) -> Pool {
    Pool::new(PoolName::new(name).expect("valid pool name"), PoolSpec::single_provider("fake", "h100-8x", 1, 8))
}

impl Ctx {
    pub fn now(&self) -> Timestamp {
        use bosun_core::Clock as _;
        self.clock.now()
    }

    /// Stores a new node and returns it as stored (revision 1).
    pub async fn create_node(&self, id: &str) -> Node {
        let node = new_node(id, self.now());
        self.store.commit(batch("create node").register(node)).await.expect("create node");
        self.store.node(&node_id(id)).await.expect("read back node")
    }

    /// Stores a new instance in PENDING_REGISTRATION.
    pub async fn create_instance(&self, id: &str) -> Instance {
        let mut instance = Instance::start_provisioning(instance_request(id), self.now()).expect("new instance");
        instance.provider_instance_id = Some(format!("vm-{id}"));
        instance.apply(InstanceTrigger::Provisioned, "waiting for the agent", self.now()).expect("legal");
        self.store.commit(batch("create instance").create_instance(instance.clone())).await.expect("create instance");
        self.store.instance(&instance.id).await.expect("read back instance")
    }

    pub async fn issue_command(&self, node: &str, kind: CommandKind) -> Command {
        let command = Command::issue(command_request(node, kind), actor(), self.now()).expect("valid command");
        self.store.commit(batch("issue").create_command(command.clone())).await.expect("issue command");
        self.store.command(&command.id).await.expect("read back command")
    }

    pub async fn node_ids(&self, filter: &crate::query::NodeFilter) -> Vec<String> {
        let page = self.store.list_nodes(filter, &crate::query::PageRequest::first(1000)).await.expect("list nodes");
        page.items.iter().map(|n| n.id.to_string()).collect()
    }
}

/// Asserts an error's variant with a readable failure message.
macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err(ref e @ $pattern) => e.to_string(),
            Err(other) => panic!("expected {}, got error {other:?}", stringify!($pattern)),
            Ok(value) => panic!("expected {}, got Ok({value:?})", stringify!($pattern)),
        }
    };
}
pub(crate) use assert_err;

/// For tests that need to name the error type in patterns.
pub(crate) type E = StoreError;
