//! Health: what agents report, how events are classified, and how a report's overall
//! health is aggregated (SPEC 3.2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::remediation::RemediationAction;
use crate::validation::{ValidationError, check_name, check_text};
use crate::{NodeId, Timestamp};

named_enum!(
    /// A node's (or a check's, or an event's) judged health.
    Health, field = "health" {
        Unknown => "UNKNOWN",
        Healthy => "HEALTHY",
        Degraded => "DEGRADED",
        Unhealthy => "UNHEALTHY",
    }
);

impl Health {
    /// How bad this is, for worst-of aggregation. Unknown counts as healthy: a check that
    /// could not decide must not take a machine out of service.
    fn severity(self) -> u8 {
        match self {
            Health::Unknown | Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Unhealthy => 2,
        }
    }

    /// The worse of two verdicts; on a tie the first wins.
    pub fn worst(self, other: Health) -> Health {
        if other.severity() > self.severity() { other } else { self }
    }
}

named_enum!(
    /// The kind of a raw health event, as CEL policies see it in `event.event_type`.
    EventType, field = "event_type" {
        Xid => "xid",
        Thermal => "thermal",
        Power => "power",
        Memory => "memory",
        Nvlink => "nvlink",
        Pcie => "pcie",
        DriverError => "driver_error",
        EccSbe => "ecc_sbe",
        EccDbe => "ecc_dbe",
        Unknown => "unknown",
    }
);

named_enum!(
    /// The DCGM health-watch subsystem an event belongs to (`event.system`).
    HealthSystem, field = "system" {
        Pcie => "DCGM_HEALTH_WATCH_PCIE",
        Nvlink => "DCGM_HEALTH_WATCH_NVLINK",
        Pmu => "DCGM_HEALTH_WATCH_PMU",
        Mcu => "DCGM_HEALTH_WATCH_MCU",
        Mem => "DCGM_HEALTH_WATCH_MEM",
        Sm => "DCGM_HEALTH_WATCH_SM",
        Inforom => "DCGM_HEALTH_WATCH_INFOROM",
        Thermal => "DCGM_HEALTH_WATCH_THERMAL",
        Power => "DCGM_HEALTH_WATCH_POWER",
        Driver => "DCGM_HEALTH_WATCH_DRIVER",
        Nvswitch => "DCGM_HEALTH_WATCH_NVSWITCH",
        Unknown => "DCGM_HEALTH_WATCH_UNKNOWN",
    }
);

/// Most metrics one event may carry.
pub const MAX_EVENT_METRICS: usize = 64;

/// Most events one health report may carry; agents send more as several reports.
pub const MAX_REPORT_EVENTS: usize = 1000;

/// Most check results one health report may carry.
pub const MAX_REPORT_RESULTS: usize = 100;

/// A raw hardware event from an agent, before classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    pub timestamp: Timestamp,
    /// The GPU the event is about; -1 for the node as a whole.
    pub gpu_index: i32,
    pub gpu_uuid: String,
    pub system: HealthSystem,
    pub event_type: EventType,
    /// Event details, e.g. `xid_code`, `temperature`, `ecc_sbe_count`. Values are text on
    /// the wire; the policy engine types them (int, then double, then bool, else string).
    pub metrics: BTreeMap<String, String>,
    pub message: String,
}

impl HealthEvent {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.gpu_index < -1 {
            return Err(ValidationError::new("gpu_index", "must be -1 (node level) or a GPU index"));
        }
        check_name("gpu_uuid", &self.gpu_uuid)?;
        check_text("message", &self.message)?;
        if self.metrics.len() > MAX_EVENT_METRICS {
            return Err(ValidationError::new("metrics", format_args!("more than {MAX_EVENT_METRICS} entries")));
        }
        for (key, value) in &self.metrics {
            check_name("metrics", key)?;
            check_name(&format!("metrics.{key}"), value)?;
        }
        Ok(())
    }

    /// The XID code of an XID event, when it carries a readable one.
    pub fn xid_code(&self) -> Option<u32> {
        if self.event_type != EventType::Xid {
            return None;
        }
        self.metrics.get("xid_code").and_then(|code| code.trim().parse().ok())
    }
}

/// The policy's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// HEALTHY, DEGRADED or UNHEALTHY.
    pub health: Health,
    /// The rule that matched, if any (no match means healthy).
    pub rule: Option<String>,
    /// What the event asks of the machine (the matching rule's `action`). Reports stored
    /// before actions existed read as `none`.
    #[serde(default = "no_action")]
    pub action: RemediationAction,
    /// Rules that failed to evaluate on this event, with the error; reported rather than
    /// silently skipped.
    pub errors: Vec<String>,
}

impl Verdict {
    pub fn healthy() -> Self {
        Self { health: Health::Healthy, rule: None, action: RemediationAction::None, errors: Vec::new() }
    }
}

fn no_action() -> RemediationAction {
    RemediationAction::None
}

/// An event together with its classification, as stored in health history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifiedEvent {
    pub event: HealthEvent,
    pub verdict: Verdict,
}

/// The result of one agent-side check (boot, gpu, nvml, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub status: Health,
    pub message: String,
    pub details: BTreeMap<String, String>,
}

impl CheckResult {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.is_empty() {
            return Err(ValidationError::new("name", "is required"));
        }
        check_name("name", &self.name)?;
        check_text("message", &self.message)?;
        for (key, value) in &self.details {
            check_name("details", key)?;
            check_text(&format!("details.{key}"), value)?;
        }
        Ok(())
    }
}

/// One health report from a node, classified, as kept in the node's bounded history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub node_id: NodeId,
    /// Server time of receipt (agent clocks are not trusted).
    pub received_at: Timestamp,
    pub results: Vec<CheckResult>,
    pub events: Vec<ClassifiedEvent>,
    /// Worst of all check results and event verdicts; HEALTHY for an empty report.
    pub health: Health,
}

impl HealthReport {
    /// Builds a report, computing its overall health as the worst of its parts.
    pub fn new(
        node_id: NodeId,
        received_at: Timestamp,
        results: Vec<CheckResult>,
        events: Vec<ClassifiedEvent>,
    ) -> Self {
        let health = results
            .iter()
            .map(|r| r.status)
            .chain(events.iter().map(|e| e.verdict.health))
            .fold(Health::Healthy, Health::worst);
        Self { node_id, received_at, results, events, health }
    }

    /// The hardest action any of the report's events asks for, with that event.
    pub fn strongest_action(&self) -> Option<&ClassifiedEvent> {
        self.events
            .iter()
            .rev()
            .filter(|e| e.verdict.action != RemediationAction::None)
            .max_by_key(|e| e.verdict.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Health) -> CheckResult {
        CheckResult { name: "gpu".into(), status, message: String::new(), details: BTreeMap::new() }
    }

    #[test]
    fn report_health_is_worst_of_parts() {
        let node = NodeId::new("n1").expect("valid");
        let at = Timestamp::UNIX_EPOCH;
        let cases = [
            (vec![], Health::Healthy),
            (vec![Health::Unknown], Health::Healthy),
            (vec![Health::Healthy, Health::Degraded], Health::Degraded),
            (vec![Health::Degraded, Health::Unhealthy, Health::Healthy], Health::Unhealthy),
        ];
        for (statuses, expected) in cases {
            let results = statuses.iter().copied().map(check).collect();
            assert_eq!(HealthReport::new(node.clone(), at, results, vec![]).health, expected, "{statuses:?}");
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!(EventType::EccDbe.as_str(), "ecc_dbe");
        assert_eq!("XID".parse::<EventType>(), Ok(EventType::Xid));
        assert_eq!(HealthSystem::Mem.to_string(), "DCGM_HEALTH_WATCH_MEM");
        assert_eq!(serde_json::to_string(&Health::Degraded).expect("serializes"), "\"DEGRADED\"");
    }
}
