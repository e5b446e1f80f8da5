//! A simulated network partition between one agent and the control plane.
//!
//! The simulator's `network` fault wraps an agent's [`ControlPlane`] in a
//! [`PartitionableControlPlane`]; flipping its [`NetworkSwitch`] makes every call fail as
//! an unreachable server would, and flipping it back lets the agent recover on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bosun_core::inventory::Workload;
use bosun_core::{CheckResult, HealthEvent, MetricSample, NodeId, NodeRegistration};

use crate::control_plane::{AgentConfig, CommandAck, ControlPlane, DeliveredCommand, RpcError};

/// Turns one agent's connection to the control plane off and on. Clones share the switch.
#[derive(Debug, Clone)]
pub struct NetworkSwitch {
    down: Arc<AtomicBool>,
}

impl NetworkSwitch {
    /// Wraps `inner` so that this switch controls whether its calls get through.
    pub fn wrap(inner: Arc<dyn ControlPlane>) -> (Arc<dyn ControlPlane>, NetworkSwitch) {
        let switch = NetworkSwitch { down: Arc::new(AtomicBool::new(false)) };
        (Arc::new(PartitionableControlPlane { inner, switch: switch.clone() }), switch)
    }

    /// Cuts the connection: every call fails with [`RpcError::Unavailable`].
    pub fn disconnect(&self) {
        self.down.store(true, Ordering::Relaxed);
    }

    /// Restores the connection.
    pub fn reconnect(&self) {
        self.down.store(false, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    fn check(&self) -> Result<(), RpcError> {
        if self.is_connected() { Ok(()) } else { Err(RpcError::Unavailable("network down (simulated)".into())) }
    }
}

/// A [`ControlPlane`] whose calls fail while its [`NetworkSwitch`] is off.
struct PartitionableControlPlane {
    inner: Arc<dyn ControlPlane>,
    switch: NetworkSwitch,
}

#[async_trait]
impl ControlPlane for PartitionableControlPlane {
    async fn register(
        &self,
        registration: &NodeRegistration,
        instance_id: Option<&str>,
    ) -> Result<AgentConfig, RpcError> {
        self.switch.check()?;
        self.inner.register(registration, instance_id).await
    }

    async fn heartbeat(&self, sample: &MetricSample) -> Result<(), RpcError> {
        self.switch.check()?;
        self.inner.heartbeat(sample).await
    }

    async fn report_health(
        &self,
        node: &NodeId,
        results: &[CheckResult],
        events: &[HealthEvent],
    ) -> Result<(), RpcError> {
        self.switch.check()?;
        self.inner.report_health(node, results, events).await
    }

    async fn poll_commands(&self, node: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError> {
        self.switch.check()?;
        self.inner.poll_commands(node, wait).await
    }

    async fn ack_command(&self, node: &NodeId, ack: &CommandAck) -> Result<(), RpcError> {
        self.switch.check()?;
        self.inner.ack_command(node, ack).await
    }

    async fn report_workloads(&self, node: &NodeId, workloads: &[Workload]) -> Result<(), RpcError> {
        self.switch.check()?;
        self.inner.report_workloads(node, workloads).await
    }
}
