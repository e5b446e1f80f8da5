//! Conversions between wire (`v1`) and domain (`bosun_core`) types.
//!
//! Outbound conversions cannot fail. Inbound ones validate everything and name the
//! offending field (`gpus[3].uuid`, `events[0].metrics`), so the server can answer
//! `invalid_argument` with a message the caller can act on.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use bosun_core::inventory::{PodRef, Workload};
use bosun_core::node::Gpu;
use bosun_core::workloads::MAX_REPORT_WORKLOADS;
use bosun_core::{
    BootstrapLog, ChangeRecord, CheckResult, ClassifiedEvent, Command, CommandEvent, CommandId, CommandKind,
    CommandState, EventType, GpuSample, Health, HealthEvent, HealthReport, HealthSystem, Instance, InstanceState,
    LabelSelector, Labels, MetricSample, Node, NodeId, NodeMetadata, NodeRegistration, NodeStatus, PoolName,
    Remediation, RemediationAction, Timestamp, ValidationError, Verdict,
};
use buffa::{EnumValue, MessageField};
use buffa_types::google::protobuf::Timestamp as WireTimestamp;

use crate::v1;

// ---------------------------------------------------------------------------------------
// Scalars and enums

pub fn timestamp(at: Timestamp) -> WireTimestamp {
    let micros = at.unix_micros();
    let seconds = micros.div_euclid(1_000_000);
    let nanos = i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0);
    WireTimestamp::from_unix(seconds, nanos)
}

pub(crate) fn stamp<P: buffa::ProtoBox<WireTimestamp>>(at: Timestamp) -> MessageField<WireTimestamp, P> {
    MessageField::some(timestamp(at))
}

pub(crate) fn opt_stamp<P: buffa::ProtoBox<WireTimestamp>>(at: Option<Timestamp>) -> MessageField<WireTimestamp, P> {
    at.map_or_else(MessageField::none, stamp)
}

/// A wire timestamp as a domain one (truncated to microseconds), naming `field` when it is
/// not a valid time between the years 0001 and 9999: refused, never clamped.
pub fn from_timestamp(field: &str, at: &WireTimestamp) -> Result<Timestamp, ValidationError> {
    if !(0..1_000_000_000).contains(&at.nanos) {
        return Err(ValidationError::new(field, format_args!("nanos {} is outside 0..999999999", at.nanos)));
    }
    at.seconds
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(i64::from(at.nanos) / 1000))
        .and_then(Timestamp::checked_from_unix_micros)
        .ok_or_else(|| {
            ValidationError::new(field, format_args!("{} seconds is outside the years 0001 to 9999", at.seconds))
        })
}

/// The wire's map type (buffa uses its own hasher), from a domain map.
fn map<M: FromIterator<(String, String)>>(map: &BTreeMap<String, String>) -> M {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A wire map in the domain's deterministic order.
fn sorted<S: BuildHasher>(map: &std::collections::HashMap<String, String, S>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn node_status(status: NodeStatus) -> v1::NodeStatus {
    match status {
        NodeStatus::Active => v1::NodeStatus::NODE_STATUS_ACTIVE,
        NodeStatus::Cordoned => v1::NodeStatus::NODE_STATUS_CORDONED,
        NodeStatus::Draining => v1::NodeStatus::NODE_STATUS_DRAINING,
        NodeStatus::Unhealthy => v1::NodeStatus::NODE_STATUS_UNHEALTHY,
        NodeStatus::Terminating => v1::NodeStatus::NODE_STATUS_TERMINATING,
        NodeStatus::Terminated => v1::NodeStatus::NODE_STATUS_TERMINATED,
    }
}

/// A status filter: UNSPECIFIED means "any".
pub fn node_status_filter(
    field: &str,
    status: EnumValue<v1::NodeStatus>,
) -> Result<Option<NodeStatus>, ValidationError> {
    Ok(match known(field, status)? {
        v1::NodeStatus::NODE_STATUS_UNSPECIFIED => None,
        v1::NodeStatus::NODE_STATUS_ACTIVE => Some(NodeStatus::Active),
        v1::NodeStatus::NODE_STATUS_CORDONED => Some(NodeStatus::Cordoned),
        v1::NodeStatus::NODE_STATUS_DRAINING => Some(NodeStatus::Draining),
        v1::NodeStatus::NODE_STATUS_UNHEALTHY => Some(NodeStatus::Unhealthy),
        v1::NodeStatus::NODE_STATUS_TERMINATING => Some(NodeStatus::Terminating),
        v1::NodeStatus::NODE_STATUS_TERMINATED => Some(NodeStatus::Terminated),
    })
}

pub fn health(health: Health) -> v1::HealthStatus {
    match health {
        Health::Unknown => v1::HealthStatus::HEALTH_STATUS_UNKNOWN,
        Health::Healthy => v1::HealthStatus::HEALTH_STATUS_HEALTHY,
        Health::Degraded => v1::HealthStatus::HEALTH_STATUS_DEGRADED,
        Health::Unhealthy => v1::HealthStatus::HEALTH_STATUS_UNHEALTHY,
    }
}

pub fn health_from(field: &str, health: EnumValue<v1::HealthStatus>) -> Result<Health, ValidationError> {
    Ok(match known(field, health)? {
        v1::HealthStatus::HEALTH_STATUS_UNKNOWN => Health::Unknown,
        v1::HealthStatus::HEALTH_STATUS_HEALTHY => Health::Healthy,
        v1::HealthStatus::HEALTH_STATUS_DEGRADED => Health::Degraded,
        v1::HealthStatus::HEALTH_STATUS_UNHEALTHY => Health::Unhealthy,
    })
}

fn event_type(event_type: EventType) -> v1::HealthEventType {
    use v1::HealthEventType as W;
    match event_type {
        EventType::Xid => W::HEALTH_EVENT_TYPE_XID,
        EventType::Thermal => W::HEALTH_EVENT_TYPE_THERMAL,
        EventType::Power => W::HEALTH_EVENT_TYPE_POWER,
        EventType::Memory => W::HEALTH_EVENT_TYPE_MEMORY,
        EventType::Nvlink => W::HEALTH_EVENT_TYPE_NVLINK,
        EventType::Pcie => W::HEALTH_EVENT_TYPE_PCIE,
        EventType::DriverError => W::HEALTH_EVENT_TYPE_DRIVER_ERROR,
        EventType::EccSbe => W::HEALTH_EVENT_TYPE_ECC_SBE,
        EventType::EccDbe => W::HEALTH_EVENT_TYPE_ECC_DBE,
        EventType::Unknown => W::HEALTH_EVENT_TYPE_UNKNOWN,
    }
}

fn event_type_from(value: EnumValue<v1::HealthEventType>) -> EventType {
    use v1::HealthEventType as W;
    // An event type this server does not know yet is classified as `unknown`, as CEL
    // policies expect; it is not an error.
    match value.as_known() {
        Some(W::HEALTH_EVENT_TYPE_XID) => EventType::Xid,
        Some(W::HEALTH_EVENT_TYPE_THERMAL) => EventType::Thermal,
        Some(W::HEALTH_EVENT_TYPE_POWER) => EventType::Power,
        Some(W::HEALTH_EVENT_TYPE_MEMORY) => EventType::Memory,
        Some(W::HEALTH_EVENT_TYPE_NVLINK) => EventType::Nvlink,
        Some(W::HEALTH_EVENT_TYPE_PCIE) => EventType::Pcie,
        Some(W::HEALTH_EVENT_TYPE_DRIVER_ERROR) => EventType::DriverError,
        Some(W::HEALTH_EVENT_TYPE_ECC_SBE) => EventType::EccSbe,
        Some(W::HEALTH_EVENT_TYPE_ECC_DBE) => EventType::EccDbe,
        Some(W::HEALTH_EVENT_TYPE_UNKNOWN) | None => EventType::Unknown,
    }
}

fn system(system: HealthSystem) -> v1::HealthWatchSystem {
    use v1::HealthWatchSystem as W;
    match system {
        HealthSystem::Pcie => W::HEALTH_WATCH_SYSTEM_PCIE,
        HealthSystem::Nvlink => W::HEALTH_WATCH_SYSTEM_NVLINK,
        HealthSystem::Pmu => W::HEALTH_WATCH_SYSTEM_PMU,
        HealthSystem::Mcu => W::HEALTH_WATCH_SYSTEM_MCU,
        HealthSystem::Mem => W::HEALTH_WATCH_SYSTEM_MEM,
        HealthSystem::Sm => W::HEALTH_WATCH_SYSTEM_SM,
        HealthSystem::Inforom => W::HEALTH_WATCH_SYSTEM_INFOROM,
        HealthSystem::Thermal => W::HEALTH_WATCH_SYSTEM_THERMAL,
        HealthSystem::Power => W::HEALTH_WATCH_SYSTEM_POWER,
        HealthSystem::Driver => W::HEALTH_WATCH_SYSTEM_DRIVER,
        HealthSystem::Nvswitch => W::HEALTH_WATCH_SYSTEM_NVSWITCH,
        HealthSystem::Unknown => W::HEALTH_WATCH_SYSTEM_UNKNOWN,
    }
}

fn system_from(value: EnumValue<v1::HealthWatchSystem>) -> HealthSystem {
    use v1::HealthWatchSystem as W;
    match value.as_known() {
        Some(W::HEALTH_WATCH_SYSTEM_PCIE) => HealthSystem::Pcie,
        Some(W::HEALTH_WATCH_SYSTEM_NVLINK) => HealthSystem::Nvlink,
        Some(W::HEALTH_WATCH_SYSTEM_PMU) => HealthSystem::Pmu,
        Some(W::HEALTH_WATCH_SYSTEM_MCU) => HealthSystem::Mcu,
        Some(W::HEALTH_WATCH_SYSTEM_MEM) => HealthSystem::Mem,
        Some(W::HEALTH_WATCH_SYSTEM_SM) => HealthSystem::Sm,
        Some(W::HEALTH_WATCH_SYSTEM_INFOROM) => HealthSystem::Inforom,
        Some(W::HEALTH_WATCH_SYSTEM_THERMAL) => HealthSystem::Thermal,
        Some(W::HEALTH_WATCH_SYSTEM_POWER) => HealthSystem::Power,
        Some(W::HEALTH_WATCH_SYSTEM_DRIVER) => HealthSystem::Driver,
        Some(W::HEALTH_WATCH_SYSTEM_NVSWITCH) => HealthSystem::Nvswitch,
        Some(W::HEALTH_WATCH_SYSTEM_UNKNOWN) | None => HealthSystem::Unknown,
    }
}

pub fn instance_state(state: InstanceState) -> v1::InstanceState {
    use v1::InstanceState as W;
    match state {
        InstanceState::Provisioning => W::INSTANCE_STATE_PROVISIONING,
        InstanceState::PendingRegistration => W::INSTANCE_STATE_PENDING_REGISTRATION,
        InstanceState::Running => W::INSTANCE_STATE_RUNNING,
        InstanceState::Terminating => W::INSTANCE_STATE_TERMINATING,
        InstanceState::Terminated => W::INSTANCE_STATE_TERMINATED,
        InstanceState::Failed => W::INSTANCE_STATE_FAILED,
    }
}

pub fn instance_states_from(
    field: &str,
    states: &[EnumValue<v1::InstanceState>],
) -> Result<Vec<InstanceState>, ValidationError> {
    use v1::InstanceState as W;
    states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            Ok(match known(&format!("{field}[{i}]"), *state)? {
                W::INSTANCE_STATE_PROVISIONING => InstanceState::Provisioning,
                W::INSTANCE_STATE_PENDING_REGISTRATION => InstanceState::PendingRegistration,
                W::INSTANCE_STATE_RUNNING => InstanceState::Running,
                W::INSTANCE_STATE_TERMINATING => InstanceState::Terminating,
                W::INSTANCE_STATE_TERMINATED => InstanceState::Terminated,
                W::INSTANCE_STATE_FAILED => InstanceState::Failed,
                W::INSTANCE_STATE_UNSPECIFIED => {
                    return Err(ValidationError::new(format!("{field}[{i}]"), "is unspecified"));
                }
            })
        })
        .collect()
}

pub fn command_state(state: CommandState) -> v1::CommandState {
    use v1::CommandState as W;
    match state {
        CommandState::Pending => W::COMMAND_STATE_PENDING,
        CommandState::Delivered => W::COMMAND_STATE_DELIVERED,
        CommandState::Acked => W::COMMAND_STATE_ACKED,
        CommandState::Succeeded => W::COMMAND_STATE_SUCCEEDED,
        CommandState::Failed => W::COMMAND_STATE_FAILED,
        CommandState::Expired => W::COMMAND_STATE_EXPIRED,
        CommandState::Cancelled => W::COMMAND_STATE_CANCELLED,
    }
}

pub fn command_states_from(
    field: &str,
    states: &[EnumValue<v1::CommandState>],
) -> Result<Vec<CommandState>, ValidationError> {
    use v1::CommandState as W;
    states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            Ok(match known(&format!("{field}[{i}]"), *state)? {
                W::COMMAND_STATE_PENDING => CommandState::Pending,
                W::COMMAND_STATE_DELIVERED => CommandState::Delivered,
                W::COMMAND_STATE_ACKED => CommandState::Acked,
                W::COMMAND_STATE_SUCCEEDED => CommandState::Succeeded,
                W::COMMAND_STATE_FAILED => CommandState::Failed,
                W::COMMAND_STATE_EXPIRED => CommandState::Expired,
                W::COMMAND_STATE_CANCELLED => CommandState::Cancelled,
                W::COMMAND_STATE_UNSPECIFIED => {
                    return Err(ValidationError::new(format!("{field}[{i}]"), "is unspecified"));
                }
            })
        })
        .collect()
}

/// The wire type and custom name of a command kind.
pub fn command_type(kind: &CommandKind) -> (v1::CommandType, String) {
    use v1::CommandType as W;
    let wire = match kind {
        CommandKind::Cordon => W::COMMAND_TYPE_CORDON,
        CommandKind::Uncordon => W::COMMAND_TYPE_UNCORDON,
        CommandKind::Drain => W::COMMAND_TYPE_DRAIN,
        CommandKind::Terminate => W::COMMAND_TYPE_TERMINATE,
        CommandKind::RunDiagnostic => W::COMMAND_TYPE_RUN_DIAGNOSTIC,
        CommandKind::Reboot => W::COMMAND_TYPE_REBOOT,
        CommandKind::ResetGpu => W::COMMAND_TYPE_RESET_GPU,
        CommandKind::Custom(_) => W::COMMAND_TYPE_CUSTOM,
    };
    (wire, kind.custom_name().unwrap_or_default().to_owned())
}

pub fn command_kind_from(kind: EnumValue<v1::CommandType>, custom_name: &str) -> Result<CommandKind, ValidationError> {
    use v1::CommandType as W;
    let builtin = |kind: CommandKind| {
        if custom_name.is_empty() {
            Ok(kind)
        } else {
            Err(ValidationError::new("custom_name", "is only allowed with type COMMAND_TYPE_CUSTOM"))
        }
    };
    match known("type", kind)? {
        W::COMMAND_TYPE_UNSPECIFIED => Err(ValidationError::new("type", "is required")),
        W::COMMAND_TYPE_CORDON => builtin(CommandKind::Cordon),
        W::COMMAND_TYPE_UNCORDON => builtin(CommandKind::Uncordon),
        W::COMMAND_TYPE_DRAIN => builtin(CommandKind::Drain),
        W::COMMAND_TYPE_TERMINATE => builtin(CommandKind::Terminate),
        W::COMMAND_TYPE_RUN_DIAGNOSTIC => builtin(CommandKind::RunDiagnostic),
        W::COMMAND_TYPE_REBOOT => builtin(CommandKind::Reboot),
        W::COMMAND_TYPE_RESET_GPU => builtin(CommandKind::ResetGpu),
        W::COMMAND_TYPE_CUSTOM => {
            CommandKind::custom(custom_name).map_err(|e| ValidationError::new("custom_name", e.problem))
        }
    }
}

pub fn remediation_action(action: RemediationAction) -> v1::RemediationAction {
    use v1::RemediationAction as W;
    match action {
        RemediationAction::None => W::REMEDIATION_ACTION_NONE,
        RemediationAction::RestartApp => W::REMEDIATION_ACTION_RESTART_APP,
        RemediationAction::ResetGpu => W::REMEDIATION_ACTION_RESET_GPU,
        RemediationAction::Reboot => W::REMEDIATION_ACTION_REBOOT,
        RemediationAction::Replace => W::REMEDIATION_ACTION_REPLACE,
    }
}

pub fn remediation_action_from(
    field: &str,
    action: EnumValue<v1::RemediationAction>,
) -> Result<RemediationAction, ValidationError> {
    use v1::RemediationAction as W;
    Ok(match known(field, action)? {
        W::REMEDIATION_ACTION_NONE => RemediationAction::None,
        W::REMEDIATION_ACTION_RESTART_APP => RemediationAction::RestartApp,
        W::REMEDIATION_ACTION_RESET_GPU => RemediationAction::ResetGpu,
        W::REMEDIATION_ACTION_REBOOT => RemediationAction::Reboot,
        W::REMEDIATION_ACTION_REPLACE => RemediationAction::Replace,
    })
}

/// The enum value, or an error naming `field` when the number is not one this server
/// knows.
fn known<E: buffa::Enumeration>(field: &str, value: EnumValue<E>) -> Result<E, ValidationError> {
    value.as_known().ok_or_else(|| ValidationError::new(field, format_args!("{value} is not a known value")))
}

// ---------------------------------------------------------------------------------------
// Outbound: domain -> wire

pub fn gpu(gpu: &Gpu) -> v1::GpuInfo {
    v1::GpuInfo {
        index: gpu.index,
        uuid: gpu.uuid.clone(),
        name: gpu.name.clone(),
        pci_bus_id: gpu.pci_bus_id.clone(),
        memory_bytes: gpu.memory_bytes,
        driver_version: gpu.driver_version.clone(),
        cuda_version: gpu.cuda_version.clone(),
        ..Default::default()
    }
}

pub fn metadata(metadata: &NodeMetadata) -> v1::NodeMetadata {
    v1::NodeMetadata {
        hostname: metadata.hostname.clone(),
        internal_ip: metadata.internal_ip.clone(),
        external_ip: metadata.external_ip.clone(),
        kernel_version: metadata.kernel_version.clone(),
        agent_version: metadata.agent_version.clone(),
        ..Default::default()
    }
}

/// A node on the wire; `gpus` is its inventory when the caller has it (GetNode), empty
/// in lists.
pub fn node(node: &Node, gpus: &[Gpu]) -> v1::Node {
    v1::Node {
        node_id: node.id.to_string(),
        provider: node.provider.clone(),
        region: node.region.clone(),
        zone: node.zone.clone(),
        instance_type: node.instance_type.clone(),
        pool: node.pool.as_ref().map(ToString::to_string).unwrap_or_default(),
        labels: map(node.labels.as_map()),
        gpu_count: node.gpu_count,
        gpu_model: node.gpu_model.clone(),
        gpus: gpus.iter().map(gpu).collect(),
        metadata: MessageField::some(metadata(&node.metadata)),
        status: node_status(node.status).into(),
        status_reason: node.status_reason.clone(),
        status_changed_at: stamp(node.status_changed_at),
        health: health(node.health).into(),
        unhealthy_streak: node.unhealthy_streak,
        registered_at: stamp(node.registered_at),
        last_heartbeat: opt_stamp(node.last_heartbeat),
        last_health_report: opt_stamp(node.last_health_report),
        revision: node.revision.get(),
        remediation: node.remediation.as_ref().map(remediation_step).into(),
        ..Default::default()
    }
}

pub fn remediation_step(step: &Remediation) -> v1::RemediationStep {
    v1::RemediationStep {
        step: remediation_action(step.step).into(),
        state: step.state.to_string(),
        fault: step.fault.clone(),
        gpu_index: step.gpu_index,
        command_id: step.command_id.map(|id| id.to_string()).unwrap_or_default(),
        started_at: stamp(step.started_at),
        deadline: stamp(step.deadline),
        finished_at: opt_stamp(step.finished_at),
        message: step.message.clone(),
        ..Default::default()
    }
}

pub fn instance(instance: &Instance) -> v1::Instance {
    v1::Instance {
        instance_id: instance.id.to_string(),
        provider: instance.provider.clone(),
        provider_instance_id: instance.provider_instance_id.clone().unwrap_or_default(),
        region: instance.region.clone(),
        zone: instance.zone.clone(),
        instance_type: instance.instance_type.clone(),
        pool: instance.pool.as_ref().map(ToString::to_string).unwrap_or_default(),
        state: instance_state(instance.state).into(),
        status_message: instance.status_message.clone(),
        node_id: instance.node_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        labels: map(instance.labels.as_map()),
        created_at: stamp(instance.created_at),
        state_changed_at: stamp(instance.state_changed_at),
        ready_at: opt_stamp(instance.ready_at),
        terminated_at: opt_stamp(instance.terminated_at),
        revision: instance.revision.get(),
        ..Default::default()
    }
}

pub fn command(command: &Command) -> v1::Command {
    let (kind, custom_name) = command_type(&command.kind);
    v1::Command {
        command_id: command.id.to_string(),
        node_id: command.node_id.to_string(),
        r#type: kind.into(),
        custom_name,
        parameters: map(&command.parameters),
        state: command_state(command.state).into(),
        issued_by: command.issued_by.to_string(),
        reason: command.reason.clone(),
        issued_at: stamp(command.issued_at),
        deadline: stamp(command.deadline),
        delivered_at: opt_stamp(command.delivered_at),
        delivery_count: command.delivery_count,
        acked_at: opt_stamp(command.acked_at),
        finished_at: opt_stamp(command.finished_at),
        outcome_message: command.outcome_message.clone(),
        result: map(&command.result),
        revision: command.revision.get(),
        ..Default::default()
    }
}

/// A command as handed to its agent.
pub fn node_command(command: &Command) -> v1::NodeCommand {
    let (kind, custom_name) = command_type(&command.kind);
    v1::NodeCommand {
        command_id: command.id.to_string(),
        r#type: kind.into(),
        custom_name,
        parameters: map(&command.parameters),
        issued_at: stamp(command.issued_at),
        deadline: stamp(command.deadline),
        delivery: command.delivery_count,
        ..Default::default()
    }
}

pub fn command_event(event: &CommandEvent) -> v1::CommandEvent {
    v1::CommandEvent {
        seq: event.seq,
        at: stamp(event.at),
        state: command_state(event.state).into(),
        actor: event.actor.to_string(),
        message: event.message.clone(),
        ..Default::default()
    }
}

pub fn health_event(event: &HealthEvent) -> v1::HealthEvent {
    v1::HealthEvent {
        timestamp: stamp(event.timestamp),
        gpu_index: event.gpu_index,
        gpu_uuid: event.gpu_uuid.clone(),
        system: system(event.system).into(),
        event_type: event_type(event.event_type).into(),
        metrics: map(&event.metrics),
        message: event.message.clone(),
        ..Default::default()
    }
}

pub fn verdict(verdict: &Verdict) -> v1::EventVerdict {
    v1::EventVerdict {
        result: health(verdict.health).into(),
        rule: verdict.rule.clone(),
        errors: verdict.errors.clone(),
        action: remediation_action(verdict.action).into(),
        ..Default::default()
    }
}

pub fn check_result(result: &CheckResult) -> v1::HealthCheckResult {
    v1::HealthCheckResult {
        check_name: result.name.clone(),
        status: health(result.status).into(),
        message: result.message.clone(),
        details: map(&result.details),
        ..Default::default()
    }
}

/// A stored health report; `id` is its position in the node's history.
pub fn health_report(id: u64, report: &HealthReport) -> v1::HealthReport {
    v1::HealthReport {
        id,
        node_id: report.node_id.to_string(),
        received_at: stamp(report.received_at),
        health: health(report.health).into(),
        results: report.results.iter().map(check_result).collect(),
        events: report
            .events
            .iter()
            .map(|e| v1::ClassifiedEvent {
                event: MessageField::some(health_event(&e.event)),
                verdict: MessageField::some(verdict(&e.verdict)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub fn bootstrap_log(log: &BootstrapLog) -> v1::BootstrapLog {
    v1::BootstrapLog {
        id: log.id,
        node_id: log.node_id.to_string(),
        instance_id: log.instance_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        pool: log.pool.as_ref().map(ToString::to_string).unwrap_or_default(),
        started_at: stamp(log.started_at),
        duration_ms: log.duration_ms,
        success: log.success,
        error: log.error.clone(),
        commands: log
            .commands
            .iter()
            .map(|c| v1::BootstrapCommandLog {
                command: c.command.clone(),
                stdout: c.stdout.clone(),
                stderr: c.stderr.clone(),
                exit_code: c.exit_code,
                duration_ms: c.duration_ms,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A replica as listed, with whether it holds the leader lease (and in which epoch).
pub fn replica(presence: &bosun_core::ReplicaPresence, leading_epoch: Option<u64>) -> v1::Replica {
    v1::Replica {
        replica_id: presence.replica_id.to_string(),
        leader: leading_epoch.is_some(),
        epoch: leading_epoch.unwrap_or(0),
        address: presence.address.clone(),
        last_seen: stamp(presence.last_seen),
        started_at: stamp(presence.started_at),
        ..Default::default()
    }
}

pub fn change_event(change: &ChangeRecord) -> v1::ChangeEvent {
    v1::ChangeEvent {
        seq: change.seq,
        at: stamp(change.at),
        kind: change.kind.to_string(),
        resource_id: change.resource_id.clone(),
        op: change.op.to_string(),
        revision: change.revision.get(),
        actor: change.actor.to_string(),
        reason: change.reason.clone(),
        resource_json: change.resource.to_string(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Inbound: wire -> domain, validated

pub fn node_id(field: &str, id: &str) -> Result<NodeId, ValidationError> {
    NodeId::new(id).map_err(|e| ValidationError::new(field, e.problem))
}

fn optional_pool(field: &str, pool: &str) -> Result<Option<PoolName>, ValidationError> {
    if pool.is_empty() {
        return Ok(None);
    }
    PoolName::new(pool).map(Some).map_err(|e| ValidationError::new(field, e.problem))
}

pub fn pool_filter(pool: &str) -> Result<Option<PoolName>, ValidationError> {
    optional_pool("pool", pool)
}

pub fn labels<S: BuildHasher>(
    field: &str,
    labels: &std::collections::HashMap<String, String, S>,
) -> Result<Labels, ValidationError> {
    Labels::try_from(sorted(labels)).map_err(|e| ValidationError { field: field.to_owned(), ..e })
}

pub fn label_selector(field: &str, text: &str) -> Result<LabelSelector, ValidationError> {
    text.parse().map_err(|e: ValidationError| ValidationError::new(field, e.problem))
}

fn gpu_from(gpu: &v1::GpuInfo) -> Gpu {
    Gpu {
        index: gpu.index,
        uuid: gpu.uuid.clone(),
        name: gpu.name.clone(),
        pci_bus_id: gpu.pci_bus_id.clone(),
        memory_bytes: gpu.memory_bytes,
        driver_version: gpu.driver_version.clone(),
        cuda_version: gpu.cuda_version.clone(),
    }
}

/// A registration request as a domain registration, every field checked.
pub fn registration(request: &v1::RegisterRequest) -> Result<NodeRegistration, ValidationError> {
    let metadata = request.metadata.as_option().map_or_else(NodeMetadata::default, |m| NodeMetadata {
        hostname: m.hostname.clone(),
        internal_ip: m.internal_ip.clone(),
        external_ip: m.external_ip.clone(),
        kernel_version: m.kernel_version.clone(),
        agent_version: m.agent_version.clone(),
    });
    let registration = NodeRegistration {
        node_id: node_id("node_id", &request.node_id)?,
        provider: request.provider.clone(),
        region: request.region.clone(),
        zone: request.zone.clone(),
        instance_type: request.instance_type.clone(),
        pool: optional_pool("pool", &request.pool)?,
        labels: labels("labels", &request.labels)?,
        gpus: request.gpus.iter().map(gpu_from).collect(),
        metadata,
    };
    registration.validate()?;
    Ok(registration)
}

/// Heartbeat metrics as a sample taken at `at` (server time).
pub fn metric_sample(node: NodeId, at: Timestamp, metrics: &v1::NodeMetrics) -> Result<MetricSample, ValidationError> {
    let sample = MetricSample {
        node_id: node,
        at,
        cpu_percent: metrics.cpu_usage_percent,
        memory_percent: metrics.memory_usage_percent,
        gpus: metrics
            .gpu_metrics
            .iter()
            .map(|g| GpuSample {
                index: g.gpu_index,
                temperature_c: g.temperature,
                power_w: g.power_usage,
                utilization_percent: g.utilization_percent,
                memory_used_bytes: g.memory_used,
            })
            .collect(),
    };
    sample.validate().map_err(|e| e.within("metrics"))?;
    Ok(sample)
}

/// A health event; an event without a timestamp is stamped `received_at`.
pub fn health_event_from(event: &v1::HealthEvent, received_at: Timestamp) -> Result<HealthEvent, ValidationError> {
    let event = HealthEvent {
        timestamp: match event.timestamp.as_option() {
            Some(at) => from_timestamp("timestamp", at)?,
            None => received_at,
        },
        gpu_index: event.gpu_index,
        gpu_uuid: event.gpu_uuid.clone(),
        system: system_from(event.system),
        event_type: event_type_from(event.event_type),
        metrics: sorted(&event.metrics),
        message: event.message.clone(),
    };
    event.validate()?;
    Ok(event)
}

pub fn health_events_from(
    field: &str,
    events: &[v1::HealthEvent],
    received_at: Timestamp,
) -> Result<Vec<HealthEvent>, ValidationError> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| health_event_from(e, received_at).map_err(|err| err.within(&format!("[{i}]")).within(field)))
        .collect()
}

pub fn check_results_from(field: &str, results: &[v1::HealthCheckResult]) -> Result<Vec<CheckResult>, ValidationError> {
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = |e: ValidationError| e.within(&format!("[{i}]")).within(field);
            let result = CheckResult {
                name: r.check_name.clone(),
                status: health_from("status", r.status).map_err(at)?,
                message: r.message.clone(),
                details: sorted(&r.details),
            };
            result.validate().map_err(|e| {
                // CheckResult names its field `name`; the wire calls it `check_name`.
                let e = if e.field == "name" { ValidationError { field: "check_name".into(), ..e } } else { e };
                at(e)
            })?;
            Ok(result)
        })
        .collect()
}

/// A scaling decision on the wire.
pub fn scaling_decision(d: &bosun_core::pool::ScalingDecision) -> v1::ScalingDecision {
    v1::ScalingDecision {
        at: stamp(d.at),
        current: d.current,
        target: d.target,
        reason: d.reason.clone(),
        inputs: map(&d.inputs),
        conditions: d
            .conditions
            .iter()
            .map(|c| v1::PoolCondition {
                kind: c.kind.to_string(),
                message: c.message.clone(),
                since: stamp(c.since),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A pool on the wire.
pub fn pool(pool: &bosun_core::Pool) -> v1::Pool {
    let spec = &pool.spec;
    let status = &pool.status;
    let autoscaling = spec.autoscaling.as_ref().map(|a| {
        use bosun_core::pool::AutoscalingSpec as A;
        match a {
            A::Reactive { .. } => "reactive",
            A::Queue { .. } => "queue",
            A::Scheduled { .. } => "scheduled",
            A::Predictive { .. } => "predictive",
            A::Composite { .. } => "composite",
        }
    });
    v1::Pool {
        name: pool.name.to_string(),
        min_nodes: spec.min_nodes,
        max_nodes: spec.max_nodes,
        instance_type: spec.instance_type.clone(),
        providers: spec.providers.iter().map(|p| p.name.clone()).collect(),
        strategy: spec.strategy.as_str().to_owned(),
        autoscaling: autoscaling.unwrap_or_default().to_owned(),
        cooldown_seconds: u32::try_from(spec.cooldown.as_secs()).unwrap_or(u32::MAX),
        last_scale_at: opt_stamp(status.last_scale_at),
        last_decision: status
            .last_decision
            .as_ref()
            .map_or_else(MessageField::none, |d| MessageField::some(scaling_decision(d))),
        provider_backoff: status
            .provider_backoff
            .iter()
            .map(|(provider, b)| v1::ProviderBackoff {
                provider: provider.clone(),
                consecutive_failures: b.consecutive_failures,
                retry_after: stamp(b.retry_after),
                last_error: b.last_error.clone(),
                ..Default::default()
            })
            .collect(),
        revision: pool.revision.get(),
        ..Default::default()
    }
}

/// A registration as the agent sends it.
pub fn register_request(registration: &NodeRegistration, instance_id: Option<&str>) -> v1::RegisterRequest {
    v1::RegisterRequest {
        node_id: registration.node_id.to_string(),
        provider: registration.provider.clone(),
        region: registration.region.clone(),
        zone: registration.zone.clone(),
        instance_type: registration.instance_type.clone(),
        pool: registration.pool.as_ref().map(ToString::to_string).unwrap_or_default(),
        labels: map(registration.labels.as_map()),
        gpus: registration.gpus.iter().map(gpu).collect(),
        metadata: MessageField::some(metadata(&registration.metadata)),
        instance_id: instance_id.unwrap_or_default().to_owned(),
        ..Default::default()
    }
}

/// A metric sample as heartbeat metrics (the server stamps the time).
pub fn node_metrics(sample: &MetricSample) -> v1::NodeMetrics {
    v1::NodeMetrics {
        cpu_usage_percent: sample.cpu_percent,
        memory_usage_percent: sample.memory_percent,
        gpu_metrics: sample
            .gpus
            .iter()
            .map(|g| v1::GpuMetrics {
                gpu_index: g.index,
                temperature: g.temperature_c,
                power_usage: g.power_w,
                utilization_percent: g.utilization_percent,
                memory_used: g.memory_used_bytes,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A command handed to an agent, as the agent reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedCommand {
    pub id: CommandId,
    pub kind: CommandKind,
    pub parameters: BTreeMap<String, String>,
    pub deadline: Option<Timestamp>,
}

pub fn node_command_from(command: &v1::NodeCommand) -> Result<ReceivedCommand, ValidationError> {
    Ok(ReceivedCommand {
        id: command.command_id.parse().map_err(|e: ValidationError| ValidationError::new("command_id", e.problem))?,
        kind: command_kind_from(command.r#type, &command.custom_name)?,
        parameters: sorted(&command.parameters),
        deadline: command.deadline.as_option().map(|at| from_timestamp("deadline", at)).transpose()?,
    })
}

/// Classified events as a domain list (for tests and tools that read reports back).
pub fn classified_events(
    events: &[v1::ClassifiedEvent],
    received_at: Timestamp,
) -> Result<Vec<ClassifiedEvent>, ValidationError> {
    events
        .iter()
        .map(|e| {
            let event = e.event.as_option().map(|ev| health_event_from(ev, received_at)).transpose()?;
            let verdict = e.verdict.as_option();
            Ok(ClassifiedEvent {
                event: event.ok_or_else(|| ValidationError::new("event", "is required"))?,
                verdict: Verdict {
                    health: verdict.map_or(Ok(Health::Healthy), |v| health_from("verdict.result", v.result))?,
                    rule: verdict.and_then(|v| v.rule.clone()),
                    action: verdict
                        .map_or(Ok(RemediationAction::None), |v| remediation_action_from("verdict.action", v.action))?,
                    errors: verdict.map(|v| v.errors.clone()).unwrap_or_default(),
                },
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// GPU workloads

/// A workload on the wire (the node is the request's).
pub fn gpu_workload(workload: &Workload) -> v1::GpuWorkload {
    v1::GpuWorkload {
        pid: workload.pid,
        gpu_indexes: workload.gpu_indexes.clone(),
        process_name: workload.process_name.clone(),
        container_id: workload.container_id.clone().unwrap_or_default(),
        pod: workload.pod.as_ref().map_or_else(MessageField::none, |pod| {
            MessageField::some(v1::WorkloadPod {
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone().unwrap_or_default(),
                name: pod.name.clone().unwrap_or_default(),
                ..Default::default()
            })
        }),
        gpu_memory_bytes: workload.gpu_memory_bytes,
        started_at: opt_stamp(workload.started_at),
        ..Default::default()
    }
}

/// An agent's report of `node`'s workloads.
pub fn report_workloads_request(node: &NodeId, workloads: &[Workload]) -> v1::ReportWorkloadsRequest {
    v1::ReportWorkloadsRequest {
        node_id: node.to_string(),
        workloads: workloads.iter().map(gpu_workload).collect(),
        ..Default::default()
    }
}

/// Why a report of workloads was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadReportError {
    /// More workloads than one report may carry (`resource_exhausted`): the report is
    /// refused whole, since a snapshot cut short would say the rest ended.
    #[error("workloads: the report carries {count} workloads; the limit is {MAX_REPORT_WORKLOADS}")]
    TooMany { count: usize },
    /// A field is wrong (`invalid_argument`).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// A report's workloads on `node`, every field checked and named
/// (`workloads[3].gpu_indexes`); the count is checked before anything else is read. GPU
/// indexes are sorted; a pid reported twice is refused.
pub fn workloads_from(node: &NodeId, workloads: &[v1::GpuWorkload]) -> Result<Vec<Workload>, WorkloadReportError> {
    if workloads.len() > MAX_REPORT_WORKLOADS {
        return Err(WorkloadReportError::TooMany { count: workloads.len() });
    }
    let mut pids = std::collections::HashSet::with_capacity(workloads.len());
    let mut converted = Vec::with_capacity(workloads.len());
    for (i, wire) in workloads.iter().enumerate() {
        let at = |e: ValidationError| e.within(&format!("[{i}]")).within("workloads");
        let workload = workload_from(node, wire).map_err(at)?;
        if !pids.insert(workload.pid) {
            return Err(at(ValidationError::new("pid", format_args!("{} is reported twice", workload.pid))).into());
        }
        converted.push(workload);
    }
    Ok(converted)
}

fn workload_from(node: &NodeId, wire: &v1::GpuWorkload) -> Result<Workload, ValidationError> {
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let mut gpu_indexes = wire.gpu_indexes.clone();
    gpu_indexes.sort_unstable();
    let workload = Workload {
        node_id: node.clone(),
        gpu_indexes,
        pid: wire.pid,
        process_name: wire.process_name.clone(),
        container_id: optional(&wire.container_id),
        pod: wire.pod.as_option().map(|pod| PodRef {
            namespace: optional(&pod.namespace),
            name: optional(&pod.name),
            uid: pod.uid.clone(),
        }),
        gpu_memory_bytes: wire.gpu_memory_bytes,
        started_at: wire.started_at.as_option().map(|at| from_timestamp("started_at", at)).transpose()?,
    };
    bosun_core::workloads::validate(&workload)?;
    Ok(workload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let at: Timestamp = "2026-11-23T13:26:00.123456Z".parse().expect("valid");
        assert_eq!(from_timestamp("at", &timestamp(at)), Ok(at));
        let before_epoch = Timestamp::from_unix_micros(-1_500_000);
        assert_eq!(from_timestamp("at", &timestamp(before_epoch)), Ok(before_epoch));
    }

    #[test]
    fn out_of_range_timestamps_are_refused_naming_the_field() {
        for (seconds, nanos) in
            [(i64::MAX, 0), (i64::MIN, 0), (253_402_300_800, 0), (-62_135_596_801, 0), (0, -1), (0, 1_000_000_000)]
        {
            let wire = WireTimestamp { seconds, nanos, ..Default::default() };
            let error = from_timestamp("events[0].timestamp", &wire).unwrap_err();
            assert_eq!(error.field, "events[0].timestamp", "{seconds}s {nanos}ns");
        }
        let last = WireTimestamp { seconds: 253_402_300_799, nanos: 999_999_999, ..Default::default() };
        assert_eq!(
            from_timestamp("at", &last).map(Timestamp::to_rfc3339).as_deref(),
            Ok("9999-12-31T23:59:59.999999Z")
        );
    }

    #[test]
    fn registration_errors_name_the_field() {
        let mut request = v1::RegisterRequest { node_id: "n1".into(), ..Default::default() };
        request.gpus.push(v1::GpuInfo { index: 0, uuid: "bad\u{1}".into(), ..Default::default() });
        assert_eq!(registration(&request).unwrap_err().field, "gpus[0].uuid");
        let request = v1::RegisterRequest { node_id: "".into(), ..Default::default() };
        assert_eq!(registration(&request).unwrap_err().to_string(), "invalid node_id: is required");
        let mut request = v1::RegisterRequest { node_id: "n1".into(), ..Default::default() };
        request.labels.insert("bad key".into(), "v".into());
        assert_eq!(registration(&request).unwrap_err().field, "labels");
    }

    #[test]
    fn command_kinds() {
        let custom = command_kind_from(v1::CommandType::COMMAND_TYPE_CUSTOM.into(), "flash-bios").expect("valid");
        assert_eq!(custom, CommandKind::custom("flash-bios").expect("valid"));
        assert_eq!(command_kind_from(v1::CommandType::COMMAND_TYPE_UNSPECIFIED.into(), "").unwrap_err().field, "type");
        assert_eq!(
            command_kind_from(v1::CommandType::COMMAND_TYPE_DRAIN.into(), "x").unwrap_err().field,
            "custom_name"
        );
        assert_eq!(
            command_kind_from(EnumValue::from(99), "").unwrap_err().to_string(),
            "invalid type: 99 is not a known value"
        );
    }

    #[test]
    fn events_are_validated_with_paths() {
        let mut event = v1::HealthEvent { gpu_index: -2, ..Default::default() };
        event.event_type = v1::HealthEventType::HEALTH_EVENT_TYPE_XID.into();
        let err =
            health_events_from("events", &[v1::HealthEvent::default(), event], Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(err.field, "events[1].gpu_index");
    }

    fn wire_workload(pid: u32) -> v1::GpuWorkload {
        v1::GpuWorkload { pid, gpu_indexes: vec![0], process_name: "python".into(), ..Default::default() }
    }

    #[test]
    fn workloads_round_trip() {
        let node = NodeId::new("n1").expect("valid");
        let workloads = vec![
            Workload {
                node_id: node.clone(),
                gpu_indexes: vec![0, 5],
                pid: 4242,
                process_name: "python3".into(),
                container_id: Some("ab".repeat(32)),
                pod: Some(PodRef { namespace: None, name: None, uid: "5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10".into() }),
                gpu_memory_bytes: 8 << 30,
                started_at: Some("2026-03-01T10:15:42.370000Z".parse().expect("valid")),
            },
            Workload {
                node_id: node.clone(),
                gpu_indexes: vec![7],
                pid: 7,
                process_name: String::new(),
                container_id: None,
                pod: Some(PodRef { namespace: Some("ml".into()), name: Some("trainer-0".into()), uid: "u-1".into() }),
                gpu_memory_bytes: 0,
                started_at: None,
            },
        ];
        let request = report_workloads_request(&node, &workloads);
        assert_eq!(request.node_id, "n1");
        assert_eq!(workloads_from(&node, &request.workloads), Ok(workloads));
    }

    #[test]
    fn too_many_workloads_are_refused_whole_before_anything_is_read() {
        let node = NodeId::new("n1").expect("valid");
        // Every entry is invalid too: the count is what the caller hears about.
        let many = vec![v1::GpuWorkload::default(); MAX_REPORT_WORKLOADS + 1];
        let error = workloads_from(&node, &many).unwrap_err();
        assert_eq!(error, WorkloadReportError::TooMany { count: MAX_REPORT_WORKLOADS + 1 });
        assert_eq!(error.to_string(), "workloads: the report carries 4097 workloads; the limit is 4096");
        let most: Vec<_> = (1..=u32::try_from(MAX_REPORT_WORKLOADS).expect("small")).map(wire_workload).collect();
        assert_eq!(workloads_from(&node, &most).map(|w| w.len()), Ok(MAX_REPORT_WORKLOADS));
    }

    #[test]
    fn bad_workload_fields_are_named() {
        let node = NodeId::new("n1").expect("valid");
        let invalid = |w: v1::GpuWorkload| match workloads_from(&node, &[wire_workload(1), w]) {
            Err(WorkloadReportError::Invalid(e)) => e.field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(invalid(v1::GpuWorkload { pid: 0, ..wire_workload(2) }), "workloads[1].pid");
        assert_eq!(invalid(wire_workload(1)), "workloads[1].pid", "a pid reported twice");
        assert_eq!(invalid(v1::GpuWorkload { gpu_indexes: vec![], ..wire_workload(2) }), "workloads[1].gpu_indexes");
        assert_eq!(
            invalid(v1::GpuWorkload { gpu_indexes: vec![2, 2], ..wire_workload(2) }),
            "workloads[1].gpu_indexes"
        );
        assert_eq!(
            invalid(v1::GpuWorkload { process_name: "x\u{0}".into(), ..wire_workload(2) }),
            "workloads[1].process_name"
        );
        assert_eq!(
            invalid(v1::GpuWorkload { container_id: "x".repeat(200), ..wire_workload(2) }),
            "workloads[1].container_id"
        );
        let pod = v1::WorkloadPod { name: "p".into(), ..Default::default() };
        assert_eq!(
            invalid(v1::GpuWorkload { pod: MessageField::some(pod), ..wire_workload(2) }),
            "workloads[1].pod.uid"
        );
        assert_eq!(
            invalid(v1::GpuWorkload { gpu_memory_bytes: u64::MAX, ..wire_workload(2) }),
            "workloads[1].gpu_memory_bytes"
        );
        let year_zero = WireTimestamp { seconds: -62_135_596_801, ..Default::default() };
        assert_eq!(
            invalid(v1::GpuWorkload { started_at: MessageField::some(year_zero), ..wire_workload(2) }),
            "workloads[1].started_at"
        );
        let unsorted = v1::GpuWorkload { gpu_indexes: vec![3, 1], ..wire_workload(2) };
        let accepted = workloads_from(&node, &[unsorted]).expect("unsorted GPUs are sorted");
        assert_eq!(accepted[0].gpu_indexes, [1, 3]);
    }
}
