//! Row shapes shared by the SQL backends, generic over how each database returns
//! timestamps (SQLite: integer microseconds; PostgreSQL: `timestamptz`), and their
//! conversion into domain types. Column names match the schema in `migrations/`.

use std::collections::BTreeMap;

use bosun_core::node::Gpu;
use bosun_core::pool::{PoolSpec, PoolStatus, ProviderBackoff, ScalingDecision};
use bosun_core::{
    Actor, BootstrapCommandLog, BootstrapLog, ChangeRecord, CheckResult, ClassifiedEvent, Command, CommandEvent,
    CommandKind, GpuSample, HealthReport, Instance, Labels, MetricSample, Node, NodeMetadata, Pool, Remediation,
    Revision, StoredPolicy, Timestamp,
};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{parse, parse_opt, unsigned};
use crate::error::{Result, StoreError};
use crate::transfer::{ChangeEntry, DocumentText};
use crate::write::StoredHealthReport;

/// A database's timestamp representation.
pub(crate) trait SqlTime: Copy {
    fn timestamp(self) -> Timestamp;
}

impl SqlTime for i64 {
    fn timestamp(self) -> Timestamp {
        Timestamp::from_unix_micros(self)
    }
}

impl SqlTime for DateTime<Utc> {
    fn timestamp(self) -> Timestamp {
        Timestamp::from_datetime(self)
    }
}

fn revision(what: &str, value: i64) -> Result<Revision> {
    Revision::new(unsigned(what, value)?).ok_or_else(|| StoreError::corrupt(what, "revision 0"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct NodeRow<T> {
    pub node_id: String,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<String>,
    pub status: String,
    pub status_reason: String,
    pub status_changed_at: T,
    pub health: String,
    pub unhealthy_streak: i64,
    pub labels: Json<Labels>,
    pub gpu_count: i64,
    pub gpu_model: String,
    pub metadata: Json<NodeMetadata>,
    pub registered_at: T,
    pub last_health_report: Option<T>,
    pub revision: i64,
    pub last_heartbeat: Option<T>,
    pub remediation: Option<Json<Remediation>>,
}

impl<T: SqlTime> NodeRow<T> {
    pub fn into_node(self) -> Result<Node> {
        Ok(Node {
            id: parse("nodes.node_id", &self.node_id)?,
            provider: self.provider,
            region: self.region,
            zone: self.zone,
            instance_type: self.instance_type,
            pool: parse_opt("nodes.pool", self.pool.as_deref())?,
            labels: self.labels.0,
            gpu_count: unsigned("nodes.gpu_count", self.gpu_count)?,
            gpu_model: self.gpu_model,
            metadata: self.metadata.0,
            status: parse("nodes.status", &self.status)?,
            status_reason: self.status_reason,
            status_changed_at: self.status_changed_at.timestamp(),
            health: parse("nodes.health", &self.health)?,
            unhealthy_streak: unsigned("nodes.unhealthy_streak", self.unhealthy_streak)?,
            remediation: self.remediation.map(|json| json.0),
            registered_at: self.registered_at.timestamp(),
            last_heartbeat: self.last_heartbeat.map(SqlTime::timestamp),
            last_health_report: self.last_health_report.map(SqlTime::timestamp),
            revision: revision("nodes.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GpuRow {
    pub gpu_index: i64,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub memory_bytes: i64,
    pub driver_version: String,
    pub cuda_version: String,
}

impl GpuRow {
    pub fn into_gpu(self) -> Result<Gpu> {
        Ok(Gpu {
            index: unsigned("node_gpus.gpu_index", self.gpu_index)?,
            uuid: self.uuid,
            name: self.name,
            pci_bus_id: self.pci_bus_id,
            memory_bytes: unsigned("node_gpus.memory_bytes", self.memory_bytes)?,
            driver_version: self.driver_version,
            cuda_version: self.cuda_version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InstanceRow<T> {
    pub instance_id: String,
    pub provider: String,
    pub provider_instance_id: Option<String>,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<String>,
    pub state: String,
    pub status_message: String,
    pub node_id: Option<String>,
    pub labels: Json<Labels>,
    pub created_at: T,
    pub state_changed_at: T,
    pub ready_at: Option<T>,
    pub terminated_at: Option<T>,
    pub revision: i64,
}

impl<T: SqlTime> InstanceRow<T> {
    pub fn into_instance(self) -> Result<Instance> {
        Ok(Instance {
            id: parse("instances.instance_id", &self.instance_id)?,
            provider: self.provider,
            provider_instance_id: self.provider_instance_id,
            region: self.region,
            zone: self.zone,
            instance_type: self.instance_type,
            pool: parse_opt("instances.pool", self.pool.as_deref())?,
            state: parse("instances.state", &self.state)?,
            status_message: self.status_message,
            node_id: parse_opt("instances.node_id", self.node_id.as_deref())?,
            labels: self.labels.0,
            created_at: self.created_at.timestamp(),
            state_changed_at: self.state_changed_at.timestamp(),
            ready_at: self.ready_at.map(SqlTime::timestamp),
            terminated_at: self.terminated_at.map(SqlTime::timestamp),
            revision: revision("instances.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CommandRow<T> {
    pub command_id: String,
    pub node_id: String,
    pub kind: String,
    pub custom_name: Option<String>,
    pub parameters: Json<BTreeMap<String, String>>,
    pub state: String,
    pub issued_by: String,
    pub reason: String,
    pub issued_at: T,
    pub deadline: T,
    pub delivered_at: Option<T>,
    pub delivery_count: i64,
    pub acked_at: Option<T>,
    pub finished_at: Option<T>,
    pub outcome_message: String,
    pub result: Json<BTreeMap<String, String>>,
    pub revision: i64,
}

impl<T: SqlTime> CommandRow<T> {
    pub fn into_command(self) -> Result<Command> {
        Ok(Command {
            id: parse("commands.command_id", &self.command_id)?,
            node_id: parse("commands.node_id", &self.node_id)?,
            kind: CommandKind::from_parts(&self.kind, self.custom_name.as_deref())
                .map_err(|e| StoreError::corrupt("commands.kind", e))?,
            parameters: self.parameters.0,
            state: parse("commands.state", &self.state)?,
            issued_by: parse::<Actor>("commands.issued_by", &self.issued_by)?,
            reason: self.reason,
            issued_at: self.issued_at.timestamp(),
            deadline: self.deadline.timestamp(),
            delivered_at: self.delivered_at.map(SqlTime::timestamp),
            delivery_count: unsigned("commands.delivery_count", self.delivery_count)?,
            acked_at: self.acked_at.map(SqlTime::timestamp),
            finished_at: self.finished_at.map(SqlTime::timestamp),
            outcome_message: self.outcome_message,
            result: self.result.0,
            revision: revision("commands.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CommandEventRow<T> {
    pub command_id: String,
    pub seq: i64,
    pub at: T,
    pub state: String,
    pub actor: String,
    pub message: String,
}

impl<T: SqlTime> CommandEventRow<T> {
    pub fn into_event(self) -> Result<CommandEvent> {
        Ok(CommandEvent {
            command_id: parse("command_events.command_id", &self.command_id)?,
            seq: unsigned("command_events.seq", self.seq)?,
            at: self.at.timestamp(),
            state: parse("command_events.state", &self.state)?,
            actor: parse("command_events.actor", &self.actor)?,
            message: self.message,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PoolRow<T> {
    pub name: String,
    pub spec: Json<PoolSpec>,
    pub last_scale_at: Option<T>,
    pub provider_backoff: Json<BTreeMap<String, ProviderBackoff>>,
    pub last_decision: Option<Json<ScalingDecision>>,
    pub revision: i64,
}

impl<T: SqlTime> PoolRow<T> {
    pub fn into_pool(self) -> Result<Pool> {
        Ok(Pool {
            name: parse("pools.name", &self.name)?,
            spec: self.spec.0,
            status: PoolStatus {
                last_scale_at: self.last_scale_at.map(SqlTime::timestamp),
                provider_backoff: self.provider_backoff.0,
                last_decision: self.last_decision.map(|d| d.0),
            },
            revision: revision("pools.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PolicyRow<T> {
    pub name: String,
    pub document: String,
    pub updated_at: T,
    pub revision: i64,
}

impl<T: SqlTime> PolicyRow<T> {
    pub fn into_policy(self) -> Result<StoredPolicy> {
        Ok(StoredPolicy {
            name: self.name,
            document: self.document,
            updated_at: self.updated_at.timestamp(),
            revision: revision("policies.revision", self.revision)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct HealthReportRow<T> {
    pub id: i64,
    pub node_id: String,
    pub received_at: T,
    pub health: String,
    pub results: Json<Vec<CheckResult>>,
    pub events: Json<Vec<ClassifiedEvent>>,
}

impl<T: SqlTime> HealthReportRow<T> {
    pub fn into_report(self) -> Result<StoredHealthReport> {
        Ok(StoredHealthReport {
            id: unsigned("health_reports.id", self.id)?,
            report: HealthReport {
                node_id: parse("health_reports.node_id", &self.node_id)?,
                received_at: self.received_at.timestamp(),
                results: self.results.0,
                events: self.events.0,
                health: parse("health_reports.health", &self.health)?,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BootstrapLogRow<T> {
    pub id: i64,
    pub node_id: String,
    pub instance_id: Option<String>,
    pub pool: Option<String>,
    pub started_at: T,
    pub duration_ms: i64,
    pub success: bool,
    pub error: String,
    pub commands: Json<Vec<BootstrapCommandLog>>,
}

impl<T: SqlTime> BootstrapLogRow<T> {
    pub fn into_log(self) -> Result<BootstrapLog> {
        Ok(BootstrapLog {
            id: unsigned("bootstrap_logs.id", self.id)?,
            node_id: parse("bootstrap_logs.node_id", &self.node_id)?,
            instance_id: parse_opt("bootstrap_logs.instance_id", self.instance_id.as_deref())?,
            pool: parse_opt("bootstrap_logs.pool", self.pool.as_deref())?,
            started_at: self.started_at.timestamp(),
            duration_ms: unsigned("bootstrap_logs.duration_ms", self.duration_ms)?,
            success: self.success,
            error: self.error,
            commands: self.commands.0,
        })
    }
}

/// A row of `changes`; `D` is how its document is read: a value (`Json<Value>`) for the
/// store's reads, the text itself (`String`) for a transfer, which hands it on unread.
#[derive(sqlx::FromRow)]
pub(crate) struct ChangeRow<T, D = Json<serde_json::Value>> {
    pub seq: i64,
    pub at: T,
    pub kind: String,
    pub resource_id: String,
    pub op: String,
    pub revision: i64,
    pub actor: String,
    pub reason: String,
    pub resource: D,
}

impl<T: SqlTime, D> ChangeRow<T, D> {
    /// The change, every field but its document checked.
    fn checked(self) -> Result<ChangeRecord<D>> {
        Ok(ChangeRecord {
            seq: unsigned("changes.seq", self.seq)?,
            at: self.at.timestamp(),
            kind: parse("changes.kind", &self.kind)?,
            resource_id: self.resource_id,
            op: parse("changes.op", &self.op)?,
            revision: revision("changes.revision", self.revision)?,
            actor: parse("changes.actor", &self.actor)?,
            reason: self.reason,
            resource: self.resource,
        })
    }
}

impl<T: SqlTime> ChangeRow<T> {
    pub fn into_change(self) -> Result<ChangeRecord> {
        self.checked()?.try_map_resource(|document| Ok(document.0))
    }
}

impl<T: SqlTime> ChangeRow<T, String> {
    pub fn into_entry(self) -> Result<ChangeEntry> {
        self.checked()?
            .try_map_resource(|text| DocumentText::parse(text).map_err(|e| StoreError::corrupt("changes.resource", e)))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SampleRow<T> {
    pub node_id: String,
    pub at: T,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub gpus: Json<Vec<GpuSample>>,
}

impl<T: SqlTime> SampleRow<T> {
    pub fn into_sample(self) -> Result<MetricSample> {
        Ok(MetricSample {
            node_id: parse("metric_samples.node_id", &self.node_id)?,
            at: self.at.timestamp(),
            cpu_percent: self.cpu_percent,
            memory_percent: self.memory_percent,
            gpus: self.gpus.0,
        })
    }
}

/// The columns of a node the write rules check (`rules::NodeHeader`).
#[derive(sqlx::FromRow)]
pub(crate) struct NodeHeaderRow<T> {
    pub revision: i64,
    pub status: String,
    pub registered_at: T,
    pub gpu_count: i64,
    pub gpu_model: String,
}

impl<T: SqlTime> NodeHeaderRow<T> {
    pub const COLUMNS: &'static str = "revision, status, registered_at, gpu_count, gpu_model";

    pub fn into_header(self) -> Result<crate::rules::NodeHeader> {
        Ok(crate::rules::NodeHeader {
            revision: revision("nodes.revision", self.revision)?,
            status: parse("nodes.status", &self.status)?,
            registered_at: self.registered_at.timestamp(),
            gpu_count: unsigned("nodes.gpu_count", self.gpu_count)?,
            gpu_model: self.gpu_model,
        })
    }
}

/// The columns of an instance the write rules check (`rules::InstanceHeader`).
#[derive(sqlx::FromRow)]
pub(crate) struct InstanceHeaderRow<T> {
    pub revision: i64,
    pub state: String,
    pub provider: String,
    pub created_at: T,
}

impl<T: SqlTime> InstanceHeaderRow<T> {
    pub const COLUMNS: &'static str = "revision, state, provider, created_at";

    pub fn into_header(self) -> Result<crate::rules::InstanceHeader> {
        Ok(crate::rules::InstanceHeader {
            revision: revision("instances.revision", self.revision)?,
            state: parse("instances.state", &self.state)?,
            provider: self.provider,
            created_at: self.created_at.timestamp(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow<T> {
    pub name: String,
    pub holder: Option<String>,
    pub epoch: i64,
    pub revision: i64,
    pub renewals: i64,
    pub acquired_at: T,
    pub renewed_at: T,
}

impl<T: SqlTime> LeaseRow<T> {
    pub const COLUMNS: &'static str = "name, holder, epoch, revision, renewals, acquired_at, renewed_at";

    pub fn into_lease(self) -> Result<bosun_core::Lease> {
        Ok(bosun_core::Lease {
            name: parse("leases.name", &self.name)?,
            holder: parse_opt("leases.holder", self.holder.as_deref())?,
            epoch: unsigned("leases.epoch", self.epoch)?,
            revision: revision("leases.revision", self.revision)?,
            renewals: unsigned("leases.renewals", self.renewals)?,
            acquired_at: self.acquired_at.timestamp(),
            renewed_at: self.renewed_at.timestamp(),
        })
    }
}
