//! Navarch's wire messages in and out of bosun's: requests from navarch-node agents and
//! the navarch CLI become bosun.v1 requests (so every call is validated and handled by the
//! one bosun.v1 path), and bosun.v1 answers become Navarch's.
//!
//! Where the two disagree, the mapping is:
//! - bosun's TERMINATING node is Navarch's TERMINATED ("scheduled for termination"); a
//!   Navarch TERMINATED filter matches both.
//! - Navarch's command types are renumbered (UNCORDON is 5 there, 2 here); an UNCORDON is
//!   delivered to a Navarch agent as CORDON with `uncordon=true`, which is how its agent
//!   reads it. REBOOT, RESET_GPU and custom commands have no Navarch form.
//! - IssueCommand's `reason` parameter is the command's reason.
//! - Navarch's node labels live in its metadata; bosun's on the node.
//! - A listed node's GPUs are described by count and model (see [`node_info`]).

use bosun_core::{Command, CommandKind, ValidationError};
use buffa::{EnumValue, Enumeration, MessageField};

use crate::{navarch, v1};

/// Re-types an enum whose values are numbered alike on both sides (health, event types,
/// watch systems, instance states); unknown numbers stay unknown and are refused, naming
/// the field, where the bosun.v1 request is read.
fn same_numbers<A: Enumeration, B: Enumeration>(value: EnumValue<A>) -> EnumValue<B> {
    EnumValue::from(value.to_i32())
}

fn non_negative_u32(field: &str, value: i32) -> Result<u32, ValidationError> {
    u32::try_from(value).map_err(|_| ValidationError::new(field, format_args!("{value} is negative")))
}

fn non_negative_u64(field: &str, value: i64) -> Result<u64, ValidationError> {
    u64::try_from(value).map_err(|_| ValidationError::new(field, format_args!("{value} is negative")))
}

/// RegisterNode as bosun.v1's, linked to `instance_id` when given (Navarch names a
/// provisioned machine's node after its instance).
pub fn register_request(
    request: &navarch::RegisterNodeRequest,
    instance_id: Option<String>,
) -> Result<v1::RegisterRequest, ValidationError> {
    let gpus = request
        .gpus
        .iter()
        .enumerate()
        .map(|(i, gpu)| {
            Ok(v1::GpuInfo {
                index: non_negative_u32(&format!("gpus[{i}].index"), gpu.index)?,
                uuid: gpu.uuid.clone(),
                name: gpu.name.clone(),
                pci_bus_id: gpu.pci_bus_id.clone(),
                memory_bytes: non_negative_u64(&format!("gpus[{i}].memory_total"), gpu.memory_total)?,
                driver_version: gpu.driver_version.clone(),
                cuda_version: gpu.cuda_version.clone(),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, ValidationError>>()?;
    let metadata = request.metadata.as_option();
    Ok(v1::RegisterRequest {
        node_id: request.node_id.clone(),
        provider: request.provider.clone(),
        region: request.region.clone(),
        zone: request.zone.clone(),
        instance_type: request.instance_type.clone(),
        labels: metadata.map(|m| m.labels.clone().into_iter().collect()).unwrap_or_default(),
        // navarch-node's `-pool` flag becomes the label `pool`.
        pool: metadata.and_then(|m| m.labels.get("pool").cloned()).unwrap_or_default(),
        gpus,
        metadata: MessageField::some(v1::NodeMetadata {
            hostname: metadata.map(|m| m.hostname.clone()).unwrap_or_default(),
            internal_ip: metadata.map(|m| m.internal_ip.clone()).unwrap_or_default(),
            external_ip: metadata.map(|m| m.external_ip.clone()).unwrap_or_default(),
            kernel_version: metadata.map(|m| m.kernel_version.clone()).unwrap_or_default(),
            agent_version: "navarch-node".to_owned(),
            ..Default::default()
        }),
        instance_id: instance_id.unwrap_or_default(),
        ..Default::default()
    })
}

/// RegisterNode's answer: the agent's intervals.
pub fn register_response(response: &v1::RegisterResponse) -> navarch::RegisterNodeResponse {
    let config = response.config.as_option();
    let seconds = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
    navarch::RegisterNodeResponse {
        success: true,
        message: "registration successful".to_owned(),
        config: MessageField::some(navarch::NodeConfig {
            health_check_interval_seconds: seconds(config.map_or(0, |c| c.health_check_interval_seconds)),
            heartbeat_interval_seconds: seconds(config.map_or(0, |c| c.heartbeat_interval_seconds)),
            enabled_health_checks: config.map(|c| c.enabled_health_checks.clone()).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// SendHeartbeat as bosun.v1's. The node's timestamp is dropped: the server stamps
/// heartbeats with its own clock.
pub fn heartbeat_request(request: &navarch::HeartbeatRequest) -> Result<v1::HeartbeatRequest, ValidationError> {
    let metrics = match request.metrics.as_option() {
        None => MessageField::none(),
        Some(metrics) => {
            let gpu_metrics = metrics
                .gpu_metrics
                .iter()
                .enumerate()
                .map(|(i, gpu)| {
                    Ok(v1::GpuMetrics {
                        gpu_index: non_negative_u32(&format!("metrics.gpu_metrics[{i}].gpu_index"), gpu.gpu_index)?,
                        temperature: f64::from(gpu.temperature),
                        power_usage: f64::from(gpu.power_usage),
                        utilization_percent: gpu.utilization_percent,
                        memory_used: non_negative_u64(
                            &format!("metrics.gpu_metrics[{i}].memory_used"),
                            gpu.memory_used,
                        )?,
                        ..Default::default()
                    })
                })
                .collect::<Result<Vec<_>, ValidationError>>()?;
            MessageField::some(v1::NodeMetrics {
                cpu_usage_percent: metrics.cpu_usage_percent,
                memory_usage_percent: metrics.memory_usage_percent,
                gpu_metrics,
                ..Default::default()
            })
        }
    };
    Ok(v1::HeartbeatRequest { node_id: request.node_id.clone(), metrics, ..Default::default() })
}

/// ReportHealth as bosun.v1's. Result timestamps are dropped (the server stamps reports).
pub fn report_health_request(request: &navarch::ReportHealthRequest) -> v1::ReportHealthRequest {
    v1::ReportHealthRequest {
        node_id: request.node_id.clone(),
        results: request
            .results
            .iter()
            .map(|result| v1::HealthCheckResult {
                check_name: result.check_name.clone(),
                status: same_numbers(result.status),
                message: result.message.clone(),
                details: result.details.clone().into_iter().collect(),
                ..Default::default()
            })
            .collect(),
        events: request
            .events
            .iter()
            .map(|event| v1::HealthEvent {
                timestamp: event.timestamp.clone(),
                gpu_index: event.gpu_index,
                gpu_uuid: event.gpu_uuid.clone(),
                system: same_numbers(event.system),
                event_type: same_numbers(event.event_type),
                metrics: event.metrics.clone().into_iter().collect(),
                message: event.message.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub fn report_health_response(response: &v1::ReportHealthResponse) -> navarch::ReportHealthResponse {
    navarch::ReportHealthResponse {
        acknowledged: true,
        node_status: node_status(response.status).into(),
        ..Default::default()
    }
}

/// A bosun node status as Navarch's.
pub fn node_status(status: EnumValue<v1::NodeStatus>) -> navarch::NodeStatus {
    use navarch::NodeStatus as N;
    use v1::NodeStatus as B;
    match status.as_known() {
        Some(B::NODE_STATUS_ACTIVE) => N::NODE_STATUS_ACTIVE,
        Some(B::NODE_STATUS_CORDONED) => N::NODE_STATUS_CORDONED,
        Some(B::NODE_STATUS_DRAINING) => N::NODE_STATUS_DRAINING,
        Some(B::NODE_STATUS_UNHEALTHY) => N::NODE_STATUS_UNHEALTHY,
        Some(B::NODE_STATUS_TERMINATING | B::NODE_STATUS_TERMINATED) => N::NODE_STATUS_TERMINATED,
        Some(B::NODE_STATUS_UNSPECIFIED) | None => N::NODE_STATUS_UNKNOWN,
    }
}

/// The bosun statuses a Navarch status filter matches: none for no filter.
pub fn node_status_filter(status: EnumValue<navarch::NodeStatus>) -> Result<Vec<v1::NodeStatus>, ValidationError> {
    use navarch::NodeStatus as N;
    use v1::NodeStatus as B;
    Ok(match status.as_known() {
        Some(N::NODE_STATUS_UNKNOWN) => Vec::new(),
        Some(N::NODE_STATUS_ACTIVE) => vec![B::NODE_STATUS_ACTIVE],
        Some(N::NODE_STATUS_CORDONED) => vec![B::NODE_STATUS_CORDONED],
        Some(N::NODE_STATUS_DRAINING) => vec![B::NODE_STATUS_DRAINING],
        Some(N::NODE_STATUS_UNHEALTHY) => vec![B::NODE_STATUS_UNHEALTHY],
        Some(N::NODE_STATUS_TERMINATED) => vec![B::NODE_STATUS_TERMINATING, B::NODE_STATUS_TERMINATED],
        None => return Err(ValidationError::new("status", format_args!("{} is not a known value", status.to_i32()))),
    })
}

fn gpu_info(gpu: &v1::GpuInfo) -> navarch::GPUInfo {
    navarch::GPUInfo {
        index: i32::try_from(gpu.index).unwrap_or(i32::MAX),
        uuid: gpu.uuid.clone(),
        name: gpu.name.clone(),
        pci_bus_id: gpu.pci_bus_id.clone(),
        memory_total: i64::try_from(gpu.memory_bytes).unwrap_or(i64::MAX),
        driver_version: gpu.driver_version.clone(),
        cuda_version: gpu.cuda_version.clone(),
        ..Default::default()
    }
}

/// A bosun node as Navarch's NodeInfo. A listed node carries no GPU rows (lists stay one
/// query); its GPUs are then described by count and model alone, so that Navarch's CLI
/// still counts them. GetNode gives each GPU in full.
pub fn node_info(node: &v1::Node) -> navarch::NodeInfo {
    let gpus = if node.gpus.is_empty() {
        let count = i32::try_from(node.gpu_count).unwrap_or(i32::MAX);
        (0..count).map(|index| navarch::GPUInfo { index, name: node.gpu_model.clone(), ..Default::default() }).collect()
    } else {
        node.gpus.iter().map(gpu_info).collect()
    };
    let metadata = node.metadata.as_option();
    let text = |f: fn(&v1::NodeMetadata) -> &String| metadata.map(|m| f(m).clone()).unwrap_or_default();
    navarch::NodeInfo {
        node_id: node.node_id.clone(),
        provider: node.provider.clone(),
        region: node.region.clone(),
        zone: node.zone.clone(),
        instance_type: node.instance_type.clone(),
        status: node_status(node.status).into(),
        health_status: same_numbers(node.health),
        last_heartbeat: node.last_heartbeat.clone(),
        gpus,
        metadata: MessageField::some(navarch::NodeMetadata {
            hostname: text(|m| &m.hostname),
            internal_ip: text(|m| &m.internal_ip),
            external_ip: text(|m| &m.external_ip),
            kernel_version: text(|m| &m.kernel_version),
            labels: node.labels.clone().into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A bosun instance as Navarch's InstanceInfo.
pub fn instance_info(instance: &v1::Instance) -> navarch::InstanceInfo {
    navarch::InstanceInfo {
        instance_id: instance.instance_id.clone(),
        provider: instance.provider.clone(),
        region: instance.region.clone(),
        zone: instance.zone.clone(),
        instance_type: instance.instance_type.clone(),
        state: same_numbers(instance.state),
        pool_name: instance.pool.clone(),
        created_at: instance.created_at.clone(),
        ready_at: instance.ready_at.clone(),
        terminated_at: instance.terminated_at.clone(),
        node_id: instance.node_id.clone(),
        status_message: instance.status_message.clone(),
        labels: instance.labels.clone().into_iter().collect(),
        ..Default::default()
    }
}

/// A Navarch instance-state filter as bosun's: none for no filter.
pub fn instance_state_filter(state: EnumValue<navarch::InstanceState>) -> Vec<EnumValue<v1::InstanceState>> {
    if state.as_known() == Some(navarch::InstanceState::INSTANCE_STATE_UNKNOWN) {
        return Vec::new();
    }
    vec![same_numbers(state)]
}

/// IssueCommand as bosun.v1's. A RUN_DIAGNOSTIC without a `test` runs `all`, as a Navarch
/// agent would.
pub fn issue_command_request(
    request: &navarch::IssueCommandRequest,
) -> Result<v1::IssueCommandRequest, ValidationError> {
    use navarch::NodeCommandType as N;
    use v1::CommandType as B;
    let kind = match request.command_type.as_known() {
        Some(N::NODE_COMMAND_TYPE_CORDON) => B::COMMAND_TYPE_CORDON,
        Some(N::NODE_COMMAND_TYPE_UNCORDON) => B::COMMAND_TYPE_UNCORDON,
        Some(N::NODE_COMMAND_TYPE_DRAIN) => B::COMMAND_TYPE_DRAIN,
        Some(N::NODE_COMMAND_TYPE_RUN_DIAGNOSTIC) => B::COMMAND_TYPE_RUN_DIAGNOSTIC,
        Some(N::NODE_COMMAND_TYPE_TERMINATE) => B::COMMAND_TYPE_TERMINATE,
        Some(N::NODE_COMMAND_TYPE_UNKNOWN) => return Err(ValidationError::new("command_type", "is required")),
        None => {
            return Err(ValidationError::new(
                "command_type",
                format_args!("{} is not a known value", request.command_type.to_i32()),
            ));
        }
    };
    let mut parameters = request.parameters.clone();
    let reason = parameters.remove("reason").unwrap_or_default();
    if kind == B::COMMAND_TYPE_RUN_DIAGNOSTIC {
        parameters.entry("test".to_owned()).or_insert_with(|| "all".to_owned());
    }
    Ok(v1::IssueCommandRequest {
        node_id: request.node_id.clone(),
        r#type: kind.into(),
        parameters: parameters.into_iter().collect(),
        reason,
        ..Default::default()
    })
}

/// A command as a Navarch agent receives it, or why it cannot be sent to one.
pub fn node_command(command: &Command) -> Result<navarch::NodeCommand, String> {
    use navarch::NodeCommandType as N;
    let mut parameters: std::collections::HashMap<String, String> =
        command.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let kind = match &command.kind {
        CommandKind::Cordon => N::NODE_COMMAND_TYPE_CORDON,
        CommandKind::Uncordon => {
            parameters.insert("uncordon".to_owned(), "true".to_owned());
            N::NODE_COMMAND_TYPE_CORDON
        }
        CommandKind::Drain => N::NODE_COMMAND_TYPE_DRAIN,
        CommandKind::RunDiagnostic => N::NODE_COMMAND_TYPE_RUN_DIAGNOSTIC,
        CommandKind::Terminate => N::NODE_COMMAND_TYPE_TERMINATE,
        other @ (CommandKind::Reboot | CommandKind::ResetGpu | CommandKind::Custom(_)) => {
            return Err(format!("a Navarch agent cannot run {other}; run bosun's agent on this node for it"));
        }
    };
    Ok(navarch::NodeCommand {
        command_id: command.id.to_string(),
        r#type: kind.into(),
        parameters: parameters.into_iter().collect(),
        issued_at: MessageField::some(crate::convert::timestamp(command.issued_at)),
        ..Default::default()
    })
}

pub fn issue_command_response(command: &v1::Command) -> navarch::IssueCommandResponse {
    navarch::IssueCommandResponse {
        command_id: command.command_id.clone(),
        issued_at: command.issued_at.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use bosun_core::command::CommandRequest;
    use bosun_core::{Actor, Timestamp};

    use super::*;

    #[test]
    fn terminating_reads_as_terminated_and_that_filter_matches_both() {
        let terminating = EnumValue::from(v1::NodeStatus::NODE_STATUS_TERMINATING);
        assert_eq!(node_status(terminating), navarch::NodeStatus::NODE_STATUS_TERMINATED);
        let filter = node_status_filter(navarch::NodeStatus::NODE_STATUS_TERMINATED.into()).expect("known");
        assert_eq!(filter, [v1::NodeStatus::NODE_STATUS_TERMINATING, v1::NodeStatus::NODE_STATUS_TERMINATED]);
        assert!(node_status_filter(EnumValue::from(42)).is_err());
    }

    #[test]
    fn issued_commands_are_renumbered_and_keep_their_reason_apart() {
        let request = navarch::IssueCommandRequest {
            node_id: "n1".into(),
            command_type: navarch::NodeCommandType::NODE_COMMAND_TYPE_RUN_DIAGNOSTIC.into(),
            parameters: [("reason".to_owned(), "weekly".to_owned())].into_iter().collect(),
            ..Default::default()
        };
        let issued = issue_command_request(&request).expect("valid");
        assert_eq!(issued.r#type.as_known(), Some(v1::CommandType::COMMAND_TYPE_RUN_DIAGNOSTIC));
        assert_eq!(issued.reason, "weekly");
        assert_eq!(issued.parameters.get("test").map(String::as_str), Some("all"), "Navarch's default");
        assert!(!issued.parameters.contains_key("reason"));
    }

    #[test]
    fn an_uncordon_reaches_a_navarch_agent_as_cordon_with_uncordon_true_and_a_reboot_not_at_all() {
        let command = |kind| {
            let request = CommandRequest {
                node_id: "n1".parse().expect("id"),
                kind,
                parameters: Default::default(),
                reason: String::new(),
                time_to_live: std::time::Duration::from_secs(60),
            };
            Command::issue(request, Actor::operator("alice"), Timestamp::UNIX_EPOCH).expect("valid")
        };
        let uncordon = node_command(&command(CommandKind::Uncordon)).expect("representable");
        assert_eq!(uncordon.r#type.as_known(), Some(navarch::NodeCommandType::NODE_COMMAND_TYPE_CORDON));
        assert_eq!(uncordon.parameters.get("uncordon").map(String::as_str), Some("true"));
        let refused = node_command(&command(CommandKind::Reboot)).expect_err("no Navarch form");
        assert!(refused.contains("REBOOT"), "{refused}");
    }
}
