//! What the operator commands print: wire messages turned into rows with snake_case keys
//! (JSON, YAML) and aligned columns (tables).
//!
//! Enum values print as their upper-case word (`ACTIVE`, `HEALTHY`), timestamps as RFC
//! 3339 in UTC, absent values as `null` in JSON and `-` in tables.

use std::collections::BTreeMap;

use bosun_api::{convert, v1};
use buffa::{EnumValue, MessageField};
use buffa_types::google::protobuf::Timestamp as WireTimestamp;
use serde::Serialize;

use crate::output::Table;

mod bootstrap_log;
pub mod ledger;
pub mod node_inventory;

pub use bootstrap_log::{BootstrapLogRow, bootstrap_logs};

fn time<P: buffa::ProtoBox<WireTimestamp>>(at: &MessageField<WireTimestamp, P>) -> Option<String> {
    at.as_option().and_then(|t| convert::from_timestamp("at", t).ok()).map(bosun_core::Timestamp::to_rfc3339)
}

/// A wire time as RFC 3339, when set.
pub fn time_text<P: buffa::ProtoBox<WireTimestamp>>(at: &MessageField<WireTimestamp, P>) -> Option<String> {
    time(at)
}

pub(crate) fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn sorted<S: std::hash::BuildHasher>(map: &std::collections::HashMap<String, String, S>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}

pub fn node_status(status: EnumValue<v1::NodeStatus>) -> String {
    match convert::node_status_filter("status", status) {
        Ok(Some(status)) => status.as_str().to_owned(),
        _ => "UNKNOWN".to_owned(),
    }
}

pub fn health(health: EnumValue<v1::HealthStatus>) -> String {
    convert::health_from("health", health).map_or_else(|_| "UNKNOWN".to_owned(), |h| h.as_str().to_owned())
}

fn command_state(state: EnumValue<v1::CommandState>) -> String {
    convert::command_states_from("state", &[state])
        .ok()
        .and_then(|s| s.first().map(|s| s.as_str().to_owned()))
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}

fn instance_state(state: EnumValue<v1::InstanceState>) -> String {
    convert::instance_states_from("state", &[state])
        .ok()
        .and_then(|s| s.first().map(|s| s.as_str().to_owned()))
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}

fn command_type(kind: EnumValue<v1::CommandType>, custom_name: &str) -> String {
    convert::command_kind_from(kind, custom_name).map_or_else(|_| "UNKNOWN".to_owned(), |k| k.to_string())
}

#[derive(Debug, Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub status: String,
    pub health: String,
    pub pool: Option<String>,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub instance_type: Option<String>,
    pub gpu_count: u32,
    pub gpu_model: Option<String>,
    pub status_reason: Option<String>,
    pub unhealthy_streak: u32,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub internal_ip: Option<String>,
    pub external_ip: Option<String>,
    pub agent_version: Option<String>,
    pub registered_at: Option<String>,
    pub last_heartbeat: Option<String>,
    pub last_health_report: Option<String>,
    /// The node's last remediation step, if it ever needed one.
    pub remediation: Option<RemediationRow>,
    /// Only in `nodes get`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuRow>,
}

#[derive(Debug, Serialize)]
pub struct RemediationRow {
    pub step: String,
    pub state: String,
    pub fault: Option<String>,
    pub gpu_index: Option<u32>,
    pub command_id: Option<String>,
    pub started_at: Option<String>,
    pub deadline: Option<String>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

impl RemediationRow {
    fn from_wire(step: &v1::RemediationStep) -> Self {
        RemediationRow {
            step: convert::remediation_action_from("step", step.step)
                .map_or_else(|_| "unknown".to_owned(), |s| s.to_string()),
            state: step.state.clone(),
            fault: non_empty(&step.fault),
            gpu_index: step.gpu_index,
            command_id: non_empty(&step.command_id),
            started_at: time(&step.started_at),
            deadline: time(&step.deadline),
            finished_at: time(&step.finished_at),
            message: non_empty(&step.message),
        }
    }

    /// One line: `reset_gpu succeeded for XID 94 on GPU 3 (command ..., started ...)`.
    fn summary(&self) -> String {
        let mut text = format!("{} {} for {}", self.step, self.state, dash(self.fault.as_deref()));
        if let Some(message) = &self.message {
            text.push_str(&format!(": {message}"));
        }
        if let Some(command) = &self.command_id {
            text.push_str(&format!(" (command {command})"));
        }
        text.push_str(&format!(", started {}", dash(self.started_at.as_deref())));
        if self.state == "running" {
            text.push_str(&format!(", deadline {}", dash(self.deadline.as_deref())));
        }
        text
    }
}

#[derive(Debug, Serialize)]
pub struct GpuRow {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub memory_bytes: u64,
}

impl NodeRow {
    pub fn from_wire(node: &v1::Node) -> Self {
        NodeRow {
            node_id: node.node_id.clone(),
            status: node_status(node.status),
            health: health(node.health),
            pool: non_empty(&node.pool),
            provider: non_empty(&node.provider),
            region: non_empty(&node.region),
            zone: non_empty(&node.zone),
            instance_type: non_empty(&node.instance_type),
            gpu_count: node.gpu_count,
            gpu_model: non_empty(&node.gpu_model),
            status_reason: non_empty(&node.status_reason),
            unhealthy_streak: node.unhealthy_streak,
            labels: sorted(&node.labels),
            hostname: node.metadata.as_option().and_then(|m| non_empty(&m.hostname)),
            internal_ip: node.metadata.as_option().and_then(|m| non_empty(&m.internal_ip)),
            external_ip: node.metadata.as_option().and_then(|m| non_empty(&m.external_ip)),
            agent_version: node.metadata.as_option().and_then(|m| non_empty(&m.agent_version)),
            registered_at: time(&node.registered_at),
            last_heartbeat: time(&node.last_heartbeat),
            last_health_report: time(&node.last_health_report),
            remediation: node.remediation.as_option().map(RemediationRow::from_wire),
            gpus: node
                .gpus
                .iter()
                .map(|g| GpuRow {
                    index: g.index,
                    uuid: g.uuid.clone(),
                    name: g.name.clone(),
                    pci_bus_id: g.pci_bus_id.clone(),
                    memory_bytes: g.memory_bytes,
                })
                .collect(),
        }
    }
}

pub fn node_table(nodes: &[NodeRow]) -> Table {
    let mut table = Table::new(["NODE", "STATUS", "HEALTH", "POOL", "PROVIDER", "REGION", "GPUS", "LAST HEARTBEAT"]);
    for n in nodes {
        table.row([
            n.node_id.clone(),
            n.status.clone(),
            n.health.clone(),
            dash(n.pool.as_deref()),
            dash(n.provider.as_deref()),
            dash(n.region.as_deref()),
            n.gpu_count.to_string(),
            dash(n.last_heartbeat.as_deref()),
        ]);
    }
    table
}

/// `nodes get`: the row's fields one per line (with the host or VM the node is, when the
/// inventory links one), then the GPUs, then its GPU workloads when `inventory` was read.
pub fn node_detail(node: &NodeRow, inventory: Option<&node_inventory::NodeInventory>) -> String {
    let mut out = Table::new(["FIELD", "VALUE"]).headless();
    let labels: Vec<String> = node.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (field, value) in [
        ("node", node.node_id.clone()),
        ("status", node.status.clone()),
        ("status reason", dash(node.status_reason.as_deref())),
        ("health", node.health.clone()),
        ("unhealthy streak", node.unhealthy_streak.to_string()),
        ("pool", dash(node.pool.as_deref())),
        ("provider", dash(node.provider.as_deref())),
        ("region", dash(node.region.as_deref())),
        ("zone", dash(node.zone.as_deref())),
        ("instance type", dash(node.instance_type.as_deref())),
        ("labels", dash(Some(&labels.join(",")))),
        ("hostname", dash(node.hostname.as_deref())),
        ("internal ip", dash(node.internal_ip.as_deref())),
        ("external ip", dash(node.external_ip.as_deref())),
        ("agent", dash(node.agent_version.as_deref())),
        ("gpus", format!("{} x {}", node.gpu_count, dash(node.gpu_model.as_deref()))),
        ("registered", dash(node.registered_at.as_deref())),
        ("last heartbeat", dash(node.last_heartbeat.as_deref())),
        ("last health report", dash(node.last_health_report.as_deref())),
        ("remediation", node.remediation.as_ref().map_or_else(|| "-".to_owned(), RemediationRow::summary)),
    ] {
        out.row([format!("{field}:"), value]);
    }
    for (field, value) in inventory.map(node_inventory::NodeInventory::link_rows).unwrap_or_default() {
        out.row([format!("{field}:"), value]);
    }
    let mut text = out.render();
    if !node.gpus.is_empty() {
        let mut gpus = Table::new(["GPU", "UUID", "NAME", "PCI BUS"]);
        for g in &node.gpus {
            gpus.row([g.index.to_string(), g.uuid.clone(), g.name.clone(), g.pci_bus_id.clone()]);
        }
        text.push('\n');
        text.push_str(&gpus.render());
    }
    if let Some(inventory) = inventory {
        text.push('\n');
        text.push_str(&inventory.workload_table());
    }
    text
}

#[derive(Debug, Serialize)]
pub struct CommandRow {
    pub command_id: String,
    pub node_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub parameters: BTreeMap<String, String>,
    pub issued_by: String,
    pub reason: Option<String>,
    pub issued_at: Option<String>,
    pub deadline: Option<String>,
    pub delivery_count: u32,
    pub finished_at: Option<String>,
    pub outcome_message: Option<String>,
    pub result: BTreeMap<String, String>,
    /// Only in `commands get`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<CommandEventRow>,
}

#[derive(Debug, Serialize)]
pub struct CommandEventRow {
    pub at: Option<String>,
    pub state: String,
    pub actor: String,
    pub message: Option<String>,
}

impl CommandRow {
    pub fn from_wire(command: &v1::Command, events: &[v1::CommandEvent]) -> Self {
        CommandRow {
            command_id: command.command_id.clone(),
            node_id: command.node_id.clone(),
            kind: command_type(command.r#type, &command.custom_name),
            state: command_state(command.state),
            parameters: sorted(&command.parameters),
            issued_by: command.issued_by.clone(),
            reason: non_empty(&command.reason),
            issued_at: time(&command.issued_at),
            deadline: time(&command.deadline),
            delivery_count: command.delivery_count,
            finished_at: time(&command.finished_at),
            outcome_message: non_empty(&command.outcome_message),
            result: sorted(&command.result),
            events: events
                .iter()
                .map(|e| CommandEventRow {
                    at: time(&e.at),
                    state: command_state(e.state),
                    actor: e.actor.clone(),
                    message: non_empty(&e.message),
                })
                .collect(),
        }
    }
}

pub fn command_table(commands: &[CommandRow]) -> Table {
    let mut table = Table::new(["COMMAND", "NODE", "TYPE", "STATE", "ISSUED BY", "ISSUED AT"]);
    for c in commands {
        table.row([
            c.command_id.clone(),
            c.node_id.clone(),
            c.kind.clone(),
            c.state.clone(),
            c.issued_by.clone(),
            dash(c.issued_at.as_deref()),
        ]);
    }
    table
}

pub fn command_detail(command: &CommandRow) -> String {
    let mut out = Table::new(["FIELD", "VALUE"]).headless();
    let pairs = |map: &BTreeMap<String, String>| {
        dash(Some(&map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")))
    };
    for (field, value) in [
        ("command", command.command_id.clone()),
        ("node", command.node_id.clone()),
        ("type", command.kind.clone()),
        ("state", command.state.clone()),
        ("parameters", pairs(&command.parameters)),
        ("issued by", command.issued_by.clone()),
        ("reason", dash(command.reason.as_deref())),
        ("issued", dash(command.issued_at.as_deref())),
        ("deadline", dash(command.deadline.as_deref())),
        ("deliveries", command.delivery_count.to_string()),
        ("finished", dash(command.finished_at.as_deref())),
        ("outcome", dash(command.outcome_message.as_deref())),
        ("result", pairs(&command.result)),
    ] {
        out.row([format!("{field}:"), value]);
    }
    let mut text = out.render();
    if !command.events.is_empty() {
        let mut events = Table::new(["AT", "STATE", "ACTOR", "MESSAGE"]);
        for e in &command.events {
            events.row([dash(e.at.as_deref()), e.state.clone(), e.actor.clone(), dash(e.message.as_deref())]);
        }
        text.push('\n');
        text.push_str(&events.render());
    }
    text
}

#[derive(Debug, Serialize)]
pub struct InstanceRow {
    pub instance_id: String,
    pub state: String,
    pub status_message: Option<String>,
    pub provider: Option<String>,
    pub provider_instance_id: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub instance_type: Option<String>,
    pub pool: Option<String>,
    pub node_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub created_at: Option<String>,
    pub state_changed_at: Option<String>,
    pub ready_at: Option<String>,
    pub terminated_at: Option<String>,
}

impl InstanceRow {
    pub fn from_wire(instance: &v1::Instance) -> Self {
        InstanceRow {
            instance_id: instance.instance_id.clone(),
            state: instance_state(instance.state),
            status_message: non_empty(&instance.status_message),
            provider: non_empty(&instance.provider),
            provider_instance_id: non_empty(&instance.provider_instance_id),
            region: non_empty(&instance.region),
            zone: non_empty(&instance.zone),
            instance_type: non_empty(&instance.instance_type),
            pool: non_empty(&instance.pool),
            node_id: non_empty(&instance.node_id),
            labels: sorted(&instance.labels),
            created_at: time(&instance.created_at),
            state_changed_at: time(&instance.state_changed_at),
            ready_at: time(&instance.ready_at),
            terminated_at: time(&instance.terminated_at),
        }
    }
}

pub fn instance_table(instances: &[InstanceRow]) -> Table {
    let mut table = Table::new(["INSTANCE", "STATE", "POOL", "PROVIDER", "TYPE", "NODE", "CREATED"]);
    for i in instances {
        table.row([
            i.instance_id.clone(),
            i.state.clone(),
            dash(i.pool.as_deref()),
            dash(i.provider.as_deref()),
            dash(i.instance_type.as_deref()),
            dash(i.node_id.as_deref()),
            dash(i.created_at.as_deref()),
        ]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct EventRow {
    pub seq: u64,
    pub at: Option<String>,
    pub kind: String,
    pub resource_id: String,
    pub op: String,
    pub revision: u64,
    pub actor: String,
    pub reason: Option<String>,
    /// The resource after the change (before it, for a delete).
    pub resource: Option<serde_json::Value>,
}

impl EventRow {
    pub fn from_wire(event: &v1::ChangeEvent) -> Self {
        EventRow {
            seq: event.seq,
            at: time(&event.at),
            kind: event.kind.clone(),
            resource_id: event.resource_id.clone(),
            op: event.op.clone(),
            revision: event.revision,
            actor: event.actor.clone(),
            reason: non_empty(&event.reason),
            resource: serde_json::from_str(&event.resource_json).ok(),
        }
    }
}

impl EventRow {
    /// The status (nodes) or state (instances, commands) the change left the resource in,
    /// so that consecutive updates of one resource read apart.
    pub fn state(&self) -> Option<&str> {
        let resource = self.resource.as_ref()?;
        resource.get("status").or_else(|| resource.get("state"))?.as_str()
    }
}

pub fn event_table(events: &[EventRow]) -> Table {
    let mut table = Table::new(["SEQ", "AT", "KIND", "RESOURCE", "OP", "STATE", "ACTOR", "REASON"]);
    for e in events {
        table.row([
            e.seq.to_string(),
            dash(e.at.as_deref()),
            e.kind.clone(),
            e.resource_id.clone(),
            e.op.clone(),
            dash(e.state()),
            e.actor.clone(),
            dash(e.reason.as_deref()),
        ]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct HealthReportRow {
    pub id: u64,
    pub received_at: Option<String>,
    pub health: String,
    pub events: Vec<HealthEventRow>,
    pub checks: Vec<CheckRow>,
}

#[derive(Debug, Serialize)]
pub struct HealthEventRow {
    pub event_type: String,
    pub gpu_index: i32,
    pub message: Option<String>,
    pub result: String,
    pub rule: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckRow {
    pub name: String,
    pub status: String,
    pub message: Option<String>,
}

impl HealthReportRow {
    pub fn from_wire(report: &v1::HealthReport) -> Self {
        let received = report
            .received_at
            .as_option()
            .and_then(|at| convert::from_timestamp("received_at", at).ok())
            .unwrap_or(bosun_core::Timestamp::UNIX_EPOCH);
        HealthReportRow {
            id: report.id,
            received_at: time(&report.received_at),
            health: health(report.health),
            events: report
                .events
                .iter()
                .filter_map(|e| {
                    let event = convert::health_event_from(e.event.as_option()?, received).ok()?;
                    let verdict = e.verdict.as_option();
                    Some(HealthEventRow {
                        event_type: event.event_type.as_str().to_owned(),
                        gpu_index: event.gpu_index,
                        message: non_empty(&event.message),
                        result: verdict.map_or_else(|| "HEALTHY".to_owned(), |v| health(v.result)),
                        rule: verdict.and_then(|v| v.rule.clone()),
                    })
                })
                .collect(),
            checks: report
                .results
                .iter()
                .map(|r| CheckRow {
                    name: r.check_name.clone(),
                    status: health(r.status),
                    message: non_empty(&r.message),
                })
                .collect(),
        }
    }
}

pub fn health_table(reports: &[HealthReportRow]) -> Table {
    let mut table = Table::new(["REPORT", "RECEIVED", "HEALTH", "FINDING"]);
    for r in reports {
        let worst = r.events.iter().find(|e| e.result == r.health && e.rule.is_some());
        let finding = match worst {
            Some(e) => {
                format!("{} (GPU {}): {}", e.rule.as_deref().unwrap_or("-"), e.gpu_index, dash(e.message.as_deref()))
            }
            None => r
                .checks
                .iter()
                .find(|c| c.status == r.health)
                .map_or("-".to_owned(), |c| format!("check {}: {}", c.name, dash(c.message.as_deref()))),
        };
        table.row([r.id.to_string(), dash(r.received_at.as_deref()), r.health.clone(), finding]);
    }
    table
}

/// A control-plane replica, as `bosun replicas list` shows it.
#[derive(Debug, Serialize)]
pub struct ReplicaRow {
    pub replica_id: String,
    pub leader: bool,
    /// The leader lease's epoch, for the leader; 0 for the others.
    pub epoch: u64,
    pub address: String,
    pub last_seen: Option<String>,
    pub started_at: Option<String>,
}

impl ReplicaRow {
    pub fn from_wire(replica: &v1::Replica) -> Self {
        ReplicaRow {
            replica_id: replica.replica_id.clone(),
            leader: replica.leader,
            epoch: replica.epoch,
            address: replica.address.clone(),
            last_seen: time(&replica.last_seen),
            started_at: time(&replica.started_at),
        }
    }
}

pub fn replica_table(replicas: &[ReplicaRow]) -> Table {
    let mut table = Table::new(["REPLICA", "ROLE", "EPOCH", "ADDRESS", "LAST SEEN"]);
    for r in replicas {
        table.row([
            r.replica_id.clone(),
            if r.leader { "leader".to_owned() } else { "follower".to_owned() },
            if r.leader { r.epoch.to_string() } else { "-".to_owned() },
            r.address.clone(),
            r.last_seen.clone().unwrap_or_default(),
        ]);
    }
    table
}

#[derive(Debug, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub min_nodes: u32,
    pub max_nodes: u32,
    pub instance_type: String,
    pub providers: Vec<String>,
    pub strategy: String,
    pub autoscaling: Option<String>,
    pub cooldown_seconds: u32,
    pub last_scale_at: Option<String>,
    pub last_decision: Option<DecisionRow>,
    pub provider_backoff: Vec<BackoffRow>,
    /// The pool now.
    pub usage: Option<UsageRow>,
}

#[derive(Debug, Serialize)]
pub struct UsageRow {
    pub usable: u32,
    pub booting: u32,
    pub serving: u32,
    pub unhealthy: u32,
}

#[derive(Debug, Serialize)]
pub struct DecisionRow {
    pub at: Option<String>,
    pub current: u32,
    pub target: u32,
    pub reason: String,
    pub inputs: BTreeMap<String, String>,
    pub conditions: Vec<ConditionRow>,
}

#[derive(Debug, Serialize)]
pub struct ConditionRow {
    pub kind: String,
    pub message: String,
    pub since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BackoffRow {
    pub provider: String,
    pub consecutive_failures: u32,
    pub retry_after: Option<String>,
    pub last_error: Option<String>,
}

impl PoolRow {
    pub fn from_wire(pool: &v1::Pool) -> Self {
        PoolRow {
            name: pool.name.clone(),
            min_nodes: pool.min_nodes,
            max_nodes: pool.max_nodes,
            instance_type: pool.instance_type.clone(),
            providers: pool.providers.clone(),
            strategy: pool.strategy.clone(),
            autoscaling: non_empty(&pool.autoscaling),
            cooldown_seconds: pool.cooldown_seconds,
            last_scale_at: time(&pool.last_scale_at),
            last_decision: pool.last_decision.as_option().map(|d| DecisionRow {
                at: time(&d.at),
                current: d.current,
                target: d.target,
                reason: d.reason.clone(),
                inputs: sorted(&d.inputs),
                conditions: d
                    .conditions
                    .iter()
                    .map(|c| ConditionRow { kind: c.kind.clone(), message: c.message.clone(), since: time(&c.since) })
                    .collect(),
            }),
            provider_backoff: pool
                .provider_backoff
                .iter()
                .map(|b| BackoffRow {
                    provider: b.provider.clone(),
                    consecutive_failures: b.consecutive_failures,
                    retry_after: time(&b.retry_after),
                    last_error: non_empty(&b.last_error),
                })
                .collect(),
            usage: pool.usage.as_option().map(|u| UsageRow {
                usable: u.usable,
                booting: u.booting,
                serving: u.serving,
                unhealthy: u.unhealthy,
            }),
        }
    }
}

pub fn pool_table(pools: &[PoolRow]) -> Table {
    let mut table = Table::new([
        "POOL",
        "MIN",
        "MAX",
        "CURRENT",
        "TARGET",
        "BOOTING",
        "UNHEALTHY",
        "AUTOSCALING",
        "PROVIDERS",
        "LAST SCALE",
    ]);
    for p in pools {
        // CURRENT is the usable capacity now; the decision's own count is as of its pass.
        let current = p.usage.as_ref().map(|u| u.usable).or(p.last_decision.as_ref().map(|d| d.current));
        let target = p.last_decision.as_ref().map(|d| d.target.to_string());
        let count = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        table.row([
            p.name.clone(),
            p.min_nodes.to_string(),
            p.max_nodes.to_string(),
            count(current),
            dash(target.as_deref()),
            count(p.usage.as_ref().map(|u| u.booting)),
            count(p.usage.as_ref().map(|u| u.unhealthy)),
            dash(p.autoscaling.as_deref()),
            p.providers.join(","),
            dash(p.last_scale_at.as_deref()),
        ]);
    }
    table
}

/// `pools get`: the pool, its last decision with the inputs behind it, and backoffs.
pub fn pool_detail(pool: &PoolRow) -> String {
    let mut out = Table::new(["FIELD", "VALUE"]).headless();
    for (field, value) in [
        ("pool", pool.name.clone()),
        ("size", format!("{}..{}", pool.min_nodes, pool.max_nodes)),
        (
            "now",
            pool.usage.as_ref().map_or_else(
                || "-".to_owned(),
                |u| {
                    format!(
                        "{} usable: {} serving, {} booting, {} unhealthy",
                        u.usable, u.serving, u.booting, u.unhealthy
                    )
                },
            ),
        ),
        ("instance type", pool.instance_type.clone()),
        ("providers", format!("{} ({})", pool.providers.join(", "), pool.strategy)),
        ("autoscaling", dash(pool.autoscaling.as_deref())),
        ("cooldown", format!("{}s", pool.cooldown_seconds)),
        ("last scale", dash(pool.last_scale_at.as_deref())),
    ] {
        out.row([format!("{field}:"), value]);
    }
    if let Some(d) = &pool.last_decision {
        let inputs: Vec<String> = d.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.row(["decision:".to_owned(), format!("{} -> {} at {}", d.current, d.target, dash(d.at.as_deref()))]);
        out.row(["reason:".to_owned(), d.reason.clone()]);
        out.row(["inputs:".to_owned(), dash(Some(&inputs.join(", ")))]);
        for c in &d.conditions {
            out.row(["condition:".to_owned(), format!("{} since {}: {}", c.kind, dash(c.since.as_deref()), c.message)]);
        }
    }
    for b in &pool.provider_backoff {
        out.row([
            "backoff:".to_owned(),
            format!(
                "{} after {} failure(s) until {}: {}",
                b.provider,
                b.consecutive_failures,
                dash(b.retry_after.as_deref()),
                dash(b.last_error.as_deref())
            ),
        ]);
    }
    out.render()
}

#[cfg(test)]
mod tests {
    use bosun_core::Timestamp;

    use super::*;

    fn at(text: &str) -> MessageField<WireTimestamp, buffa::Inline<WireTimestamp>> {
        MessageField::some(convert::timestamp(text.parse::<Timestamp>().expect("timestamp")))
    }

    fn node(id: &str, status: v1::NodeStatus, health: v1::HealthStatus, pool: &str, heartbeat: bool) -> v1::Node {
        v1::Node {
            node_id: id.into(),
            provider: "gcp".into(),
            region: "us-central1".into(),
            zone: "us-central1-a".into(),
            instance_type: "a3-highgpu-8g".into(),
            pool: pool.into(),
            labels: [("team".to_owned(), "ml".to_owned())].into_iter().collect(),
            gpu_count: 8,
            gpu_model: "NVIDIA H100 80GB HBM3".into(),
            status: status.into(),
            status_reason: "registered".into(),
            health: health.into(),
            registered_at: at("2026-11-23T10:00:00Z"),
            last_heartbeat: if heartbeat { at("2026-11-23T10:05:30.250Z") } else { MessageField::none() },
            ..Default::default()
        }
    }

    fn fleet() -> Vec<NodeRow> {
        use v1::HealthStatus as H;
        use v1::NodeStatus as S;
        [
            node("gpu-node-01", S::NODE_STATUS_ACTIVE, H::HEALTH_STATUS_HEALTHY, "training", true),
            node("gpu-node-02", S::NODE_STATUS_UNHEALTHY, H::HEALTH_STATUS_UNHEALTHY, "training", true),
            node("gpu-node-03", S::NODE_STATUS_CORDONED, H::HEALTH_STATUS_UNKNOWN, "", false),
        ]
        .iter()
        .map(NodeRow::from_wire)
        .collect()
    }

    #[test]
    fn node_list_as_a_table() {
        insta::assert_snapshot!(node_table(&fleet()).render());
    }

    #[test]
    fn node_list_as_json() {
        insta::assert_snapshot!(
            crate::output::render(crate::output::Format::Json, &fleet(), String::new).expect("json")
        );
    }

    #[test]
    fn command_list_as_table_and_json() {
        let command = v1::Command {
            command_id: "019b76da-a800-7312-8d86-cc6df4ff6f3d".into(),
            node_id: "gpu-node-02".into(),
            r#type: v1::CommandType::COMMAND_TYPE_RUN_DIAGNOSTIC.into(),
            parameters: [("test".to_owned(), "quick".to_owned())].into_iter().collect(),
            state: v1::CommandState::COMMAND_STATE_SUCCEEDED.into(),
            issued_by: "operator:oncall".into(),
            reason: "XID 79 on GPU 3".into(),
            issued_at: at("2026-11-23T10:06:00Z"),
            deadline: at("2026-11-23T11:06:00Z"),
            delivery_count: 1,
            finished_at: at("2026-11-23T10:06:04Z"),
            outcome_message: "diagnostic quick passed".into(),
            ..Default::default()
        };
        let rows = vec![CommandRow::from_wire(&command, &[])];
        insta::assert_snapshot!("command_table", command_table(&rows).render());
        insta::assert_snapshot!(
            "command_json",
            crate::output::render(crate::output::Format::Json, &rows, String::new).expect("json")
        );
    }
}
