//! bosun's wire contract.
//!
//! **API Boundary.** **Architecture Invariant:** this is the only crate that knows wire
//! types. Everything else speaks `bosun_core`; [`convert`] translates in both directions
//! and validates what comes in, naming the offending field. [`agent_client`] is the
//! agent's `ControlPlane` over the network.

/// Generated from `proto/bosun/v1/*.proto` and `proto/navarch/*.proto` by build.rs.
#[allow(clippy::all, missing_debug_implementations)]
pub mod proto {
    connectrpc::include_generated!();
}

pub mod agent_client;
pub mod convert;
pub mod navarch_wire;
pub mod ops;
pub mod servers;
pub mod transport;
pub mod usage;

pub use agent_client::AgentClient;
pub use transport::{ClientTls, Transport};

pub use proto::bosun::v1;
/// Navarch's control-plane API (`navarch.ControlPlaneService`), served for agents and CLIs
/// that still speak it.
pub use proto::navarch;

/// Every bosun.v1 method's path (`/bosun.v1.AgentService/Heartbeat`...), from the generated
/// services: for tools that exercise the whole API (the fuzzer, `bosun debug probe`). New
/// methods are appended, so existing fuzz inputs keep their method.
pub const V1_METHODS: &[&str] = &[
    v1::AGENT_SERVICE_REGISTER_NODE_SPEC.procedure,
    v1::AGENT_SERVICE_HEARTBEAT_SPEC.procedure,
    v1::AGENT_SERVICE_REPORT_HEALTH_SPEC.procedure,
    v1::AGENT_SERVICE_POLL_COMMANDS_SPEC.procedure,
    v1::AGENT_SERVICE_ACK_COMMAND_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_NODES_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_NODE_SPEC.procedure,
    v1::ADMIN_SERVICE_DELETE_NODE_SPEC.procedure,
    v1::ADMIN_SERVICE_REMEDIATE_NODE_SPEC.procedure,
    v1::ADMIN_SERVICE_ISSUE_COMMAND_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_COMMANDS_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_COMMAND_SPEC.procedure,
    v1::ADMIN_SERVICE_CANCEL_COMMAND_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_INSTANCES_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_INSTANCE_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_HEALTH_HISTORY_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_BOOTSTRAP_LOGS_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_EVENTS_SPEC.procedure,
    v1::ADMIN_SERVICE_WATCH_EVENTS_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_POOLS_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_POOL_SPEC.procedure,
    v1::ADMIN_SERVICE_SCALE_POOL_SPEC.procedure,
    v1::ADMIN_SERVICE_REPORT_POOL_DEMAND_SPEC.procedure,
    v1::ADMIN_SERVICE_INJECT_FAULT_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_POLICY_SPEC.procedure,
    v1::ADMIN_SERVICE_SET_POLICY_SPEC.procedure,
    v1::ADMIN_SERVICE_TEST_POLICY_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_REPLICAS_SPEC.procedure,
    v1::OPS_SERVICE_APPLY_RUNBOOK_SPEC.procedure,
    v1::OPS_SERVICE_LIST_RUNBOOKS_SPEC.procedure,
    v1::OPS_SERVICE_GET_RUNBOOK_SPEC.procedure,
    v1::OPS_SERVICE_START_RUN_SPEC.procedure,
    v1::OPS_SERVICE_CANCEL_RUN_SPEC.procedure,
    v1::OPS_SERVICE_APPROVE_RUN_SPEC.procedure,
    v1::OPS_SERVICE_REJECT_RUN_SPEC.procedure,
    v1::OPS_SERVICE_LIST_RUNS_SPEC.procedure,
    v1::OPS_SERVICE_GET_RUN_SPEC.procedure,
    v1::OPS_SERVICE_LIST_RUN_EVENTS_SPEC.procedure,
    v1::OPS_SERVICE_LIST_ARTIFACTS_SPEC.procedure,
    v1::OPS_SERVICE_GET_ARTIFACT_SPEC.procedure,
    v1::OPS_SERVICE_GET_APPROVAL_POLICY_SPEC.procedure,
    v1::OPS_SERVICE_SET_APPROVAL_POLICY_SPEC.procedure,
    v1::OPS_SERVICE_TEST_APPROVAL_POLICY_SPEC.procedure,
    v1::OPS_SERVICE_LIST_AUDIT_SPEC.procedure,
    // Methods added later come last, whatever their service: fuzz inputs name a method
    // by its index in this list.
    v1::AGENT_SERVICE_REPORT_WORKLOADS_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_INVENTORY_SPEC.procedure,
    v1::ADMIN_SERVICE_GET_INVENTORY_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_INVENTORY_SOURCES_SPEC.procedure,
    v1::ADMIN_SERVICE_SYNC_INVENTORY_SPEC.procedure,
    v1::ADMIN_SERVICE_LIST_INVENTORY_SYNCS_SPEC.procedure,
    v1::OPS_SERVICE_SET_MCP_ENABLED_SPEC.procedure,
    v1::OPS_SERVICE_GET_MCP_STATUS_SPEC.procedure,
    v1::OPS_SERVICE_LIST_TOOLS_SPEC.procedure,
    v1::OPS_SERVICE_SET_TOOL_ENABLED_SPEC.procedure,
    v1::OPS_SERVICE_LIST_TOOL_CALLS_SPEC.procedure,
    v1::OPS_SERVICE_RECORD_LLM_USAGE_SPEC.procedure,
    v1::OPS_SERVICE_SET_PRICING_SPEC.procedure,
    v1::OPS_SERVICE_LIST_PRICING_SPEC.procedure,
    v1::OPS_SERVICE_SUMMARIZE_USAGE_SPEC.procedure,
];

#[cfg(test)]
mod tests {
    /// A method added to the protos must be added to [`super::V1_METHODS`] too.
    #[test]
    fn every_method_of_the_protos_is_listed() {
        let protos = [
            include_str!("../proto/bosun/v1/agent.proto"),
            include_str!("../proto/bosun/v1/admin.proto"),
            include_str!("../proto/bosun/v1/ops.proto"),
        ];
        let declared = protos.iter().flat_map(|p| p.lines()).filter(|l| l.trim_start().starts_with("rpc ")).count();
        assert_eq!(super::V1_METHODS.len(), declared);
    }
}
