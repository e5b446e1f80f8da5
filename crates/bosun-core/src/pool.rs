//! Pools: groups of like machines bosun keeps at the right size and health (SPEC 3.6).
//!
//! A pool's spec comes from configuration; its status (last scale time, provider backoff,
//! last decision) is stored so that a restart neither forgets a cooldown nor retries a
//! failing provider at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::remediation::RemediationSpec;
use crate::serde_secs::{opt_secs, secs};
use crate::validation::{ValidationError, check_name};
use crate::{Labels, PoolName, Revision, Timestamp};

named_enum!(
    /// How a pool with several providers picks one to provision from.
    SelectionStrategy, field = "strategy" {
        Priority => "priority",
        RoundRobin => "round-robin",
        Availability => "availability",
        Cost => "cost",
    }
);

/// One provider a pool may provision from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolProvider {
    /// A key of the configuration's `providers` map.
    pub name: String,
    /// Lower is tried first (priority strategy).
    pub priority: u32,
    /// Share of picks under round-robin.
    pub weight: u32,
    pub regions: Vec<String>,
    /// Overrides the pool's instance type for this provider.
    pub instance_type: Option<String>,
}

/// Health handling of a pool's nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolHealthSpec {
    /// A node is replaced after this many consecutive UNHEALTHY reports or liveness checks.
    pub unhealthy_after: u32,
    pub auto_replace: bool,
    /// Return an UNHEALTHY node to ACTIVE after this long with only healthy reports.
    #[serde(with = "opt_secs")]
    pub recover_after: Option<Duration>,
}

impl Default for PoolHealthSpec {
    fn default() -> Self {
        Self { unhealthy_after: 2, auto_replace: true, recover_after: None }
    }
}

/// One window of the scheduled autoscaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleWindow {
    /// Lower-case day names; empty means every day.
    pub days: Vec<String>,
    pub start_hour: u32,
    pub end_hour: u32,
    pub min_nodes: u32,
    pub max_nodes: u32,
}

named_enum!(
    /// How a composite autoscaler combines its members' targets.
    CompositeMode, field = "mode" {
        Max => "max",
        Min => "min",
        Avg => "avg",
    }
);

/// The autoscaling policy of a pool (`autoscaling.type` in configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AutoscalingSpec {
    Reactive { scale_up_at: f64, scale_down_at: f64 },
    Queue { jobs_per_node: u32 },
    Scheduled { schedule: Vec<ScheduleWindow>, fallback: Option<Box<AutoscalingSpec>> },
    Predictive { lookback_window: u32, growth_factor: f64, fallback: Option<Box<AutoscalingSpec>> },
    Composite { mode: CompositeMode, autoscalers: Vec<AutoscalingSpec> },
}

/// A pool's desired shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub providers: Vec<PoolProvider>,
    pub strategy: SelectionStrategy,
    /// Abstract (`h100-8x`) or provider-specific.
    pub instance_type: String,
    pub region: String,
    pub zones: Vec<String>,
    pub min_nodes: u32,
    pub max_nodes: u32,
    #[serde(with = "secs")]
    pub cooldown: Duration,
    pub autoscaling: Option<AutoscalingSpec>,
    pub health: PoolHealthSpec,
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// At most this fraction of the pool is replaced or terminated for health within
    /// `replacement_window`; beyond it bosun raises an event and waits for an operator.
    pub max_unhealthy_replacement_fraction: f64,
    #[serde(with = "secs")]
    pub replacement_window: Duration,
    /// When more than this fraction of the pool turns UNHEALTHY within one
    /// `replacement_window`, bosun stops terminating its machines (a bad policy or a shared
    /// cause is likelier than that many broken machines) and keeps provisioning.
    #[serde(default = "default_mass_failure_fraction")]
    pub mass_failure_fraction: f64,
    /// The remediation ladder of the pool's nodes.
    #[serde(default)]
    pub remediation: RemediationSpec,
    /// IANA zone name for scheduled autoscaling.
    pub timezone: String,
    pub labels: Labels,
    pub setup_commands: Vec<String>,
}

impl PoolSpec {
    /// A single-provider pool with every other setting at its default.
    pub fn single_provider(provider: &str, instance_type: &str, min_nodes: u32, max_nodes: u32) -> Self {
        Self {
            providers: vec![PoolProvider {
                name: provider.to_owned(),
                priority: 0,
                weight: 1,
                regions: Vec::new(),
                instance_type: None,
            }],
            strategy: SelectionStrategy::Priority,
            instance_type: instance_type.to_owned(),
            region: String::new(),
            zones: Vec::new(),
            min_nodes,
            max_nodes,
            cooldown: Duration::from_secs(300),
            autoscaling: None,
            health: PoolHealthSpec::default(),
            drain_timeout: Duration::from_secs(600),
            max_unhealthy_replacement_fraction: 0.2,
            replacement_window: Duration::from_secs(600),
            mass_failure_fraction: default_mass_failure_fraction(),
            remediation: RemediationSpec::default(),
            timezone: "UTC".to_owned(),
            labels: Labels::new(),
            setup_commands: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.providers.is_empty() {
            return Err(ValidationError::new("providers", "a pool needs at least one provider"));
        }
        for (i, p) in self.providers.iter().enumerate() {
            check_name("name", &p.name).map_err(|e| e.within(&format!("providers[{i}]")))?;
        }
        check_name("instance_type", &self.instance_type)?;
        if self.instance_type.is_empty() {
            return Err(ValidationError::new("instance_type", "is required"));
        }
        if self.max_nodes == 0 {
            return Err(ValidationError::new("max_nodes", "must be at least 1"));
        }
        if self.min_nodes > self.max_nodes {
            return Err(ValidationError::new(
                "min_nodes",
                format_args!("{} is above max_nodes {}", self.min_nodes, self.max_nodes),
            ));
        }
        if !(0.0..=1.0).contains(&self.max_unhealthy_replacement_fraction) {
            return Err(ValidationError::new(
                "max_unhealthy_replacement_fraction",
                format_args!("{} is outside 0..1", self.max_unhealthy_replacement_fraction),
            ));
        }
        if self.health.unhealthy_after == 0 {
            return Err(ValidationError::new("health.unhealthy_after", "must be at least 1"));
        }
        if !(self.mass_failure_fraction > 0.0 && self.mass_failure_fraction <= 1.0) {
            return Err(ValidationError::new(
                "mass_failure_fraction",
                format_args!("{} is outside (0, 1]", self.mass_failure_fraction),
            ));
        }
        self.remediation.validate().map_err(|e| e.within("remediation"))
    }
}

fn default_mass_failure_fraction() -> f64 {
    0.5
}

/// A provider's backoff after provisioning failures: 30 s doubling to 10 min, reset on
/// success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderBackoff {
    pub consecutive_failures: u32,
    pub retry_after: Timestamp,
    pub last_error: String,
}

/// One scaling decision, kept with the inputs that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingDecision {
    pub at: Timestamp,
    /// Usable capacity: ACTIVE nodes plus machines still booting.
    pub current: u32,
    pub target: u32,
    pub reason: String,
    pub inputs: BTreeMap<String, String>,
    /// What the operator should know about the pool, as of this decision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PoolCondition>,
}

named_enum!(
    /// Something about a pool an operator should know.
    ///
    /// `awaiting_replacement`: UNHEALTHY nodes wait because the replacement budget is
    /// spent. `mass_failure`: too much of the pool failed at once, terminations are held.
    PoolConditionKind, field = "condition" {
        AwaitingReplacement => "awaiting_replacement",
        MassFailure => "mass_failure",
    }
);

/// One condition of a pool, with the explanation the operator reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCondition {
    pub kind: PoolConditionKind,
    pub message: String,
    /// When the condition was first raised (kept while it holds).
    pub since: Timestamp,
}

/// What a pool remembers between reconciliations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub last_scale_at: Option<Timestamp>,
    pub provider_backoff: BTreeMap<String, ProviderBackoff>,
    pub last_decision: Option<ScalingDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: PoolName,
    pub spec: PoolSpec,
    pub status: PoolStatus,
    pub revision: Revision,
}

impl Pool {
    pub fn new(name: PoolName, spec: PoolSpec) -> Self {
        Self { name, spec, status: PoolStatus::default(), revision: Revision::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation() {
        let spec = PoolSpec::single_provider("fake", "h100-8x", 3, 10);
        assert!(spec.validate().is_ok());
        let mut bad = spec.clone();
        bad.min_nodes = 11;
        assert_eq!(bad.validate().unwrap_err().to_string(), "invalid min_nodes: 11 is above max_nodes 10");
        let mut bad = spec.clone();
        bad.providers.clear();
        assert_eq!(bad.validate().unwrap_err().field, "providers");
    }

    #[test]
    fn spec_round_trips_through_json() {
        let mut spec = PoolSpec::single_provider("fake", "h100-8x", 0, 4);
        spec.autoscaling = Some(AutoscalingSpec::Composite {
            mode: CompositeMode::Max,
            autoscalers: vec![
                AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 },
                AutoscalingSpec::Queue { jobs_per_node: 10 },
            ],
        });
        spec.health.recover_after = Some(Duration::from_secs(900));
        let json = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(json["cooldown"], 300);
        assert_eq!(json["autoscaling"]["type"], "composite");
        assert_eq!(serde_json::from_value::<PoolSpec>(json).expect("deserializes"), spec);
    }
}
