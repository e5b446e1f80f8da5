//! Why an agent stopped with an error.
//!
//! Transient trouble (server down, network cut, GPUs not ready yet) never surfaces here:
//! the agent retries it. Only what retrying cannot fix does, phrased so an operator
//! reading the last log line knows what to change.

use bosun_core::{NodeId, ValidationError};

use crate::control_plane::RpcError;

/// A failure the agent cannot recover from by retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The control plane rejected the registration for a reason retrying cannot change.
    #[error("the control plane refused to register node {node_id}: {error}{}", hint(.error))]
    RegistrationRefused { node_id: NodeId, error: RpcError },
    /// The agent's own settings describe a node the control plane would reject.
    #[error("node {node_id} cannot register: {error}; fix the agent's settings")]
    InvalidRegistration { node_id: NodeId, error: ValidationError },
}

fn hint(error: &RpcError) -> &'static str {
    match error {
        RpcError::Unauthenticated(_) => "; check the agent's token (--token-file)",
        RpcError::PermissionDenied(_) => "; the agent's token may not register this node",
        RpcError::InvalidArgument(_) => "; fix the agent's settings",
        _ => "",
    }
}
