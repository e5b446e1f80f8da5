//! Checks every backend applies inside its commit transaction, after reading the stored
//! record and before writing: revisions (compare-and-set), lifecycle transitions, fields
//! that never change, and field validation. Kept here so all backends enforce exactly the
//! same contract.

use bosun_core::node::Gpu;
use bosun_core::{
    Command, CommandId, CommandKind, CommandState, Instance, InstanceState, Node, NodeId, NodeStatus, Pool,
    ResourceKind, Revision, StoredPolicy, Timestamp,
};

use crate::error::{Result, StoreError};

/// The parts of a stored node the rules need.
#[derive(Debug, Clone)]
pub(crate) struct NodeHeader {
    pub revision: Revision,
    pub status: NodeStatus,
    pub registered_at: Timestamp,
    pub gpu_count: u32,
    pub gpu_model: String,
}

impl From<&Node> for NodeHeader {
    fn from(n: &Node) -> Self {
        Self {
            revision: n.revision,
            status: n.status,
            registered_at: n.registered_at,
            gpu_count: n.gpu_count,
            gpu_model: n.gpu_model.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct InstanceHeader {
    pub revision: Revision,
    pub state: InstanceState,
    pub provider: String,
    pub created_at: Timestamp,
}

impl From<&Instance> for InstanceHeader {
    fn from(i: &Instance) -> Self {
        Self { revision: i.revision, state: i.state, provider: i.provider.clone(), created_at: i.created_at }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CommandHeader {
    pub revision: Revision,
    pub state: CommandState,
    pub node_id: NodeId,
    pub kind: CommandKind,
    pub issued_at: Timestamp,
    pub delivery_count: u32,
}

impl From<&Command> for CommandHeader {
    fn from(c: &Command) -> Self {
        Self {
            revision: c.revision,
            state: c.state,
            node_id: c.node_id.clone(),
            kind: c.kind.clone(),
            issued_at: c.issued_at,
            delivery_count: c.delivery_count,
        }
    }
}

pub(crate) fn check_expected(kind: ResourceKind, id: &str, stored: Revision, expected: Revision) -> Result<()> {
    if stored != expected {
        return Err(StoreError::Conflict { kind, id: id.to_owned(), expected, actual: stored });
    }
    Ok(())
}

pub(crate) fn unchanged<T: PartialEq>(kind: ResourceKind, id: &str, field: &str, stored: &T, new: &T) -> Result<()> {
    if stored != new {
        return Err(StoreError::invalid(field, format_args!("{kind} {id}: {field} cannot change after creation")));
    }
    Ok(())
}

pub(crate) fn check_node_create(node: &Node, gpus: &[Gpu]) -> Result<()> {
    // Every node starts by registering (see `Node::register`); any later status is reached
    // through updates, so the change log shows how.
    if node.status != NodeStatus::Active {
        return Err(StoreError::invalid("status", "a new node must be ACTIVE"));
    }
    node.validate()?;
    check_gpus(gpus)?;
    node.check_inventory(gpus)?;
    Ok(())
}

/// A GPU inventory as the store will hold it: every value storable by every backend.
fn check_gpus(gpus: &[Gpu]) -> Result<()> {
    for (index, gpu) in gpus.iter().enumerate() {
        gpu.validate().map_err(|e| StoreError::Invalid(e.within(&format!("[{index}]")).within("gpus")))?;
    }
    Ok(())
}

/// A health report as the store will hold it: every event valid, its time included.
pub(crate) fn check_health_report(report: &bosun_core::HealthReport) -> Result<()> {
    for (index, classified) in report.events.iter().enumerate() {
        classified
            .event
            .validate()
            .map_err(|e| StoreError::Invalid(e.within(&format!("[{index}]")).within("events")))?;
    }
    Ok(())
}

/// Metric samples as the store will hold them: readings every backend stores alike.
pub(crate) fn check_samples(samples: &[bosun_core::MetricSample]) -> Result<()> {
    for (index, sample) in samples.iter().enumerate() {
        sample.validate().map_err(|e| StoreError::Invalid(e.within(&format!("[{index}]")).within("samples")))?;
    }
    Ok(())
}

/// Checks a node update; `gpus` is the new inventory, if the update replaces it.
pub(crate) fn check_node_update(
    stored: &NodeHeader,
    node: &Node,
    expected: Revision,
    gpus: Option<&[Gpu]>,
) -> Result<()> {
    let id = node.id.as_str();
    check_expected(ResourceKind::Node, id, stored.revision, expected)?;
    unchanged(ResourceKind::Node, id, "registered_at", &stored.registered_at, &node.registered_at)?;
    stored
        .status
        .check_change(node.status)
        .map_err(|transition| StoreError::InvalidTransition { id: format!("node {id}"), transition })?;
    node.validate()?;
    match gpus {
        Some(gpus) => {
            check_gpus(gpus)?;
            node.check_inventory(gpus)?;
        }
        None if stored.gpu_count != node.gpu_count || stored.gpu_model != node.gpu_model => {
            return Err(StoreError::invalid(
                "gpus",
                format_args!("node {id}: the GPU summary changes only together with a new GPU inventory"),
            ));
        }
        None => {}
    }
    Ok(())
}

pub(crate) fn check_instance_create(instance: &Instance) -> Result<()> {
    instance.validate()?;
    Ok(())
}

pub(crate) fn check_instance_update(stored: &InstanceHeader, instance: &Instance, expected: Revision) -> Result<()> {
    let id = instance.id.as_str();
    check_expected(ResourceKind::Instance, id, stored.revision, expected)?;
    unchanged(ResourceKind::Instance, id, "provider", &stored.provider, &instance.provider)?;
    unchanged(ResourceKind::Instance, id, "created_at", &stored.created_at, &instance.created_at)?;
    stored
        .state
        .check_change(instance.state)
        .map_err(|transition| StoreError::InvalidTransition { id: format!("instance {id}"), transition })?;
    instance.validate()?;
    Ok(())
}

pub(crate) fn check_command_create(command: &Command) -> Result<()> {
    if command.state != CommandState::Pending {
        return Err(StoreError::invalid("state", "a new command must be PENDING"));
    }
    command.validate()?;
    Ok(())
}

/// Checks a command update and tells whether it adds a history event (a state change or
/// a redelivery).
pub(crate) fn check_command_update(stored: &CommandHeader, command: &Command, expected: Revision) -> Result<bool> {
    let id = command.id.to_string();
    check_expected(ResourceKind::Command, &id, stored.revision, expected)?;
    unchanged(ResourceKind::Command, &id, "node_id", &stored.node_id, &command.node_id)?;
    unchanged(ResourceKind::Command, &id, "kind", &stored.kind, &command.kind)?;
    unchanged(ResourceKind::Command, &id, "issued_at", &stored.issued_at, &command.issued_at)?;
    stored
        .state
        .check_change(command.state)
        .map_err(|transition| StoreError::InvalidTransition { id: format!("command {id}"), transition })?;
    command.validate()?;
    Ok(stored.state != command.state || command.delivery_count > stored.delivery_count)
}

pub(crate) fn check_pool(pool: &Pool) -> Result<()> {
    pool.spec.validate().map_err(|e| StoreError::Invalid(e.within("spec")))
}

/// A replica's announcement as the store will hold it: its address bounded.
pub(crate) fn check_replica(replica: &bosun_core::ReplicaPresence) -> Result<()> {
    const MAX_ADDRESS: usize = 512;
    if replica.address.len() > MAX_ADDRESS || replica.address.contains('\0') {
        return Err(StoreError::invalid(
            "address",
            format_args!("must be at most {MAX_ADDRESS} bytes without NUL characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_policy(policy: &StoredPolicy) -> Result<()> {
    policy.validate().map_err(|e| StoreError::Invalid(e.within("policy")))
}

/// A command id as the resource id of change records.
pub(crate) fn command_id_text(id: &CommandId) -> String {
    id.to_string()
}

/// Deleting a node that an instance still points at would silently rewrite the instance;
/// callers unlink it explicitly (in the same batch) instead.
pub(crate) fn linked_instance_error(node: &NodeId, instance: &bosun_core::InstanceId) -> StoreError {
    StoreError::invalid(
        "node_id",
        format_args!("node {node} is still linked to instance {instance}; unlink the instance in the same batch first"),
    )
}

/// The id a drift report is recorded under: an identifier, as the change log's ids are.
pub(crate) fn check_drift_id(id: &str) -> Result<()> {
    bosun_core::validation::check_identifier("id", id, 128).map_err(StoreError::Invalid)
}
