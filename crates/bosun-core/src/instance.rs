//! Instances: cloud machines bosun asked a provider for, tracked from the provisioning call
//! to termination (SPEC 3.5).

use serde::{Deserialize, Serialize};

use crate::lifecycle::TransitionError;
use crate::validation::{ValidationError, check_name, check_text};
use crate::{InstanceId, InstanceState, InstanceTrigger, Labels, NodeId, PoolName, Revision, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub provider: String,
    /// The provider's own id, known once the provisioning call returned.
    pub provider_instance_id: Option<String>,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<PoolName>,
    /// Change only through [`Instance::apply`]; stores refuse illegal changes.
    pub state: InstanceState,
    pub status_message: String,
    /// The node its agent registered as, once it did.
    pub node_id: Option<NodeId>,
    pub labels: Labels,
    pub created_at: Timestamp,
    pub state_changed_at: Timestamp,
    pub ready_at: Option<Timestamp>,
    pub terminated_at: Option<Timestamp>,
    pub revision: Revision,
}

/// What bosun knows about an instance before calling the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRequest {
    pub id: InstanceId,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<PoolName>,
    pub labels: Labels,
}

impl Instance {
    /// Starts tracking an instance in PROVISIONING, before the provider is called.
    pub fn start_provisioning(request: InstanceRequest, now: Timestamp) -> Result<Instance, TransitionError> {
        let state = InstanceState::apply(None, InstanceTrigger::StartProvisioning)?;
        let InstanceRequest { id, provider, region, zone, instance_type, pool, labels } = request;
        Ok(Instance {
            id,
            provider,
            provider_instance_id: None,
            region,
            zone,
            instance_type,
            pool,
            state,
            status_message: "provisioning requested".to_owned(),
            node_id: None,
            labels,
            created_at: now,
            state_changed_at: now,
            ready_at: None,
            terminated_at: None,
            revision: Revision::FIRST,
        })
    }

    /// Applies a lifecycle trigger; stamps `ready_at` on the first move to RUNNING and
    /// `terminated_at` on TERMINATED.
    pub fn apply(&mut self, trigger: InstanceTrigger, message: &str, now: Timestamp) -> Result<(), TransitionError> {
        let next = InstanceState::apply(Some(self.state), trigger)?;
        if next != self.state {
            self.state_changed_at = now;
        }
        match next {
            InstanceState::Running if self.ready_at.is_none() => self.ready_at = Some(now),
            InstanceState::Terminated if self.terminated_at.is_none() => self.terminated_at = Some(now),
            _ => {}
        }
        self.state = next;
        self.status_message = message.to_owned();
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("provider", &self.provider)?;
        if let Some(id) = &self.provider_instance_id {
            check_name("provider_instance_id", id)?;
        }
        check_name("region", &self.region)?;
        check_name("zone", &self.zone)?;
        check_name("instance_type", &self.instance_type)?;
        check_text("status_message", &self.status_message)?;
        if self.state == InstanceState::Running && self.node_id.is_none() {
            return Err(ValidationError::new("node_id", "a RUNNING instance must be linked to its node"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_ready_and_terminated_times_once() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + std::time::Duration::from_secs(60);
        let request = InstanceRequest {
            id: InstanceId::new("training-abc").expect("valid"),
            provider: "fake".into(),
            region: "local".into(),
            zone: "local-a".into(),
            instance_type: "h100-8x".into(),
            pool: None,
            labels: Labels::new(),
        };
        let mut instance = Instance::start_provisioning(request, t0).expect("new");
        instance.apply(InstanceTrigger::Provisioned, "waiting for node to register", t0).expect("legal");
        instance.node_id = Some(NodeId::new("training-abc").expect("valid"));
        instance.apply(InstanceTrigger::AgentRegistered, "node registered", t1).expect("legal");
        assert_eq!(instance.ready_at, Some(t1));
        instance.apply(InstanceTrigger::Terminate, "scale down", t1).expect("legal");
        instance.apply(InstanceTrigger::Gone, "provider confirmed", t1).expect("legal");
        assert_eq!((instance.state, instance.terminated_at), (InstanceState::Terminated, Some(t1)));
        assert!(instance.apply(InstanceTrigger::Terminate, "again", t1).is_err());
    }
}
