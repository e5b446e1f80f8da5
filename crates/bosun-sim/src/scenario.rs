//! Scenario files: Navarch's format (reference/navarch.md 9.2-9.3), read strictly.
//!
//! Every key Navarch knows is accepted with its meaning; a key nobody knows is an error
//! naming its path (`events[2].params.xid: unknown key`), where Navarch silently dropped it.
//! bosun adds a few keys, all optional, so Navarch files parse unchanged:
//! - `config`: a bosun configuration document (server settings, fake providers, pools,
//!   health policy) for the embedded control plane;
//! - the action `scale_pool` (`target` pool, `params.count`), `params.count` for provider
//!   failures, and the failure type `provider_outage`;
//! - `node_count` assertions compare with `==`, `>=`, `<=`, `>` or `<`, and a `target` of
//!   `pool:NAME`, a status or a health narrows what is counted;
//! - `replicas: N` runs N control-plane replicas on the scenario's store, with the actions
//!   `kill_leader` and `restart_replica` (`target` `replica-K`).
//!
//! Parsing checks shape; [`Scenario::validate`] checks meaning (known failure types,
//! targets that exist, weights above zero), so every mistake is reported before anything
//! starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bosun_agent::FaultKind;
use serde::{Deserialize, Deserializer, Serialize};

/// A problem with a scenario file, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(path, *line))]
pub struct ScenarioError {
    /// The key path (`events[2].params`), when the problem has one.
    pub path: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

fn location(path: &Option<String>, line: Option<usize>) -> String {
    match (path, line) {
        (Some(path), Some(line)) => format!("{path} (line {line}): "),
        (Some(path), None) => format!("{path}: "),
        (None, Some(line)) => format!("line {line}: "),
        (None, None) => String::new(),
    }
}

impl ScenarioError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: Some(path.into()), line: None, message: message.into() }
    }
}

/// A duration as scenarios write it (`5s`, `2m`, `500ms`, `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct SimDuration(pub Duration);

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_yaml::Value::String(text) => text.clone(),
            serde_yaml::Value::Number(n) if n.as_u64() == Some(0) => "0".to_owned(),
            serde_yaml::Value::Number(n) => {
                return Err(serde::de::Error::custom(format!("a duration needs a unit: write {n}s, {n}m or {n}ms")));
            }
            _ => return Err(serde::de::Error::custom("expected a duration such as 30s")),
        };
        bosun_config::duration::parse(&text).map(SimDuration).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SimDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&bosun_config::duration::format(self.0))
    }
}

/// Replicas a scenario may run: each is a whole server in the simulator's process.
pub const MAX_REPLICAS: u32 = 9;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub fleet: Vec<FleetNode>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub assertions: Vec<Assertion>,
    /// Its presence switches to stress mode.
    pub stress: Option<Stress>,
    /// bosun: the embedded control plane's configuration document.
    pub config: Option<serde_yaml::Value>,
    /// bosun: control-plane replicas electing a leader through the store (1: one server,
    /// without an election).
    #[serde(default = "one_replica")]
    pub replicas: u32,
}

fn one_replica() -> u32 {
    1
}

/// The name of replica `index` (from 1), as `restart_replica` targets it.
pub fn replica_name(index: u32) -> String {
    format!("replica-{index}")
}

/// One simulated machine of a fixed fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetNode {
    pub id: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub instance_type: String,
    pub gpu_count: Option<u32>,
    #[serde(default)]
    pub gpu_type: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    StartFleet,
    StopFleet,
    InjectFailure,
    RecoverFailure,
    IssueCommand,
    WaitForStatus,
    Wait,
    Log,
    Assert,
    /// bosun: set a pool's size through the API (`target` pool, `params.count`).
    ScalePool,
    /// bosun: stop the control plane and start it again on the same store, as an operator
    /// restarting `bosun server` would. Fake-provider machines lived in the old process and
    /// are gone; fleet nodes (machines with agents of their own) carry on.
    RestartServer,
    /// bosun: the leading replica dies as `kill -9` kills it: no flush, no hand-over; a
    /// follower takes over once the lease has run out. Needs `replicas` of 2 or more.
    KillLeader,
    /// bosun: replica `target` (`replica-K`) stops as SIGTERM stops it (hand-over when it
    /// leads) and starts again; a killed replica just starts again.
    RestartReplica,
    /// bosun: store the runbook `params.runbook` (its YAML text).
    ApplyRunbook,
    /// bosun: start runbook `target` over `params.nodes`, `params.selector`, `params.pool`
    /// or its own targets.
    StartRun,
    /// bosun: wait until the newest run of runbook `target` is `params.expected_status`
    /// (within `params.timeout`).
    WaitForRun,
}

impl std::fmt::Display for Action {
    /// The action as scenarios write it (`inject_failure`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A unit variant always serializes to its name.
        let name = serde_yaml::to_string(self).unwrap_or_default();
        f.write_str(name.trim())
    }
}

/// A timed step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Since the scenario's start.
    pub at: SimDuration,
    pub action: Action,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub params: EventParams,
}

/// Every parameter any action takes (Navarch's set, plus `count`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    pub failure_type: Option<String>,
    pub xid_code: Option<u32>,
    /// A GPU, or below zero for every GPU (temperature only).
    pub gpu_index: Option<i64>,
    pub message: Option<String>,
    pub command_type: Option<String>,
    #[serde(default)]
    pub command_args: BTreeMap<String, serde_yaml::Value>,
    pub expected_status: Option<String>,
    pub timeout: Option<SimDuration>,
    pub log_message: Option<String>,
    /// bosun: machines a provider-level `boot_failure` affects; a pool's size for `scale_pool`.
    pub count: Option<u32>,
    /// bosun: a runbook's YAML for `apply_runbook`.
    pub runbook: Option<String>,
    /// bosun: the nodes `start_run` runs on (else `selector`, else `pool`).
    #[serde(default)]
    pub nodes: Vec<String>,
    pub selector: Option<String>,
    pub pool: Option<String>,
}

impl EventParams {
    /// The parameters that are set, as `name=value` in declaration order (`sim validate`).
    pub fn describe(&self) -> Vec<String> {
        let mut set = Vec::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                set.push(format!("{name}={value}"));
            }
        };
        put("failure_type", self.failure_type.clone());
        put("xid_code", self.xid_code.map(|c| c.to_string()));
        put("gpu_index", self.gpu_index.map(|g| g.to_string()));
        put("message", self.message.as_ref().map(|m| format!("{m:?}")));
        put("command_type", self.command_type.clone());
        for (name, value) in &self.command_args {
            let text = match value {
                serde_yaml::Value::String(text) => text.clone(),
                other => serde_yaml::to_string(other).unwrap_or_default().trim().to_owned(),
            };
            put(&format!("command_args.{name}"), Some(text));
        }
        put("expected_status", self.expected_status.clone());
        put("timeout", self.timeout.as_ref().map(|t| bosun_config::duration::format(t.0)));
        put("log_message", self.log_message.as_ref().map(|m| format!("{m:?}")));
        put("count", self.count.map(|c| c.to_string()));
        put("runbook", self.runbook.as_ref().map(|r| format!("{} bytes", r.len())));
        if !self.nodes.is_empty() {
            put("nodes", Some(self.nodes.join(",")));
        }
        put("selector", self.selector.clone());
        put("pool", self.pool.clone());
        set
    }
}

/// A check on the control plane's state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    #[serde(rename = "type", default)]
    pub kind: AssertionKind,
    #[serde(default)]
    pub target: String,
    pub expected: ScalarText,
}

/// What an assertion checks. An empty type is `node_status`, as in Navarch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertionKind {
    #[default]
    #[serde(alias = "")]
    NodeStatus,
    HealthStatus,
    NodeCount,
    /// bosun: the node's last remediation step, `none` or `STEP [STATE]`
    /// (`reset_gpu succeeded`, `replace`).
    Remediation,
    /// bosun: the status of the newest run of runbook `target`; a `succeeded` run must also
    /// have every step's start and finish recorded for every node.
    RunStatus,
}

impl fmt::Display for AssertionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssertionKind::NodeStatus => "node_status",
            AssertionKind::HealthStatus => "health_status",
            AssertionKind::NodeCount => "node_count",
            AssertionKind::Remediation => "remediation",
            AssertionKind::RunStatus => "run_status",
        })
    }
}

/// `remediation`'s expectation: no step at all, or a step and optionally its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemediationExpectation {
    None,
    Step(bosun_core::RemediationAction, Option<bosun_core::remediation::StepState>),
}

impl std::str::FromStr for RemediationExpectation {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut words = text.split_whitespace();
        let step = words.next().unwrap_or_default();
        if step.eq_ignore_ascii_case("none") && words.next().is_none() {
            return Ok(RemediationExpectation::None);
        }
        let step: bosun_core::RemediationAction = step.parse().map_err(|e: bosun_core::ValidationError| e.problem)?;
        if !step.acts_on_machine() {
            return Err(format!("{step} is not a remediation step (reset_gpu, reboot, replace) or none"));
        }
        let state = words.next().map(str::parse).transpose().map_err(|e: bosun_core::ValidationError| e.problem)?;
        if let Some(extra) = words.next() {
            return Err(format!("unexpected {extra:?}: expected STEP [running|succeeded|failed] or none"));
        }
        Ok(RemediationExpectation::Step(step, state))
    }
}

/// A YAML scalar read as text (`expected: 800` and `expected: "800"` are the same).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_yaml::Value::deserialize(deserializer)? {
            serde_yaml::Value::String(s) => Ok(ScalarText(s)),
            serde_yaml::Value::Number(n) => Ok(ScalarText(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(ScalarText(b.to_string())),
            _ => Err(serde::de::Error::custom("expected a single value (text or number)")),
        }
    }
}

/// `node_count`'s expectation: a comparison and a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountExpectation {
    pub comparison: Comparison,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    AtLeast,
    AtMost,
    Above,
    Below,
}

impl CountExpectation {
    pub fn holds(self, actual: u64) -> bool {
        match self.comparison {
            Comparison::Equal => actual == self.count,
            Comparison::AtLeast => actual >= self.count,
            Comparison::AtMost => actual <= self.count,
            Comparison::Above => actual > self.count,
            Comparison::Below => actual < self.count,
        }
    }
}

impl fmt::Display for CountExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.comparison {
            Comparison::Equal => "==",
            Comparison::AtLeast => ">=",
            Comparison::AtMost => "<=",
            Comparison::Above => ">",
            Comparison::Below => "<",
        };
        write!(f, "{op} {}", self.count)
    }
}

impl FromStr for CountExpectation {
    type Err = String;
    /// `==3`, `>= 800`, `<5`... A bare number is a floor (`>=`): Navarch's stress files
    /// write `expected: "800"` for "at least 800 of the 1000 nodes".
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (comparison, number) = [
            ("==", Comparison::Equal),
            (">=", Comparison::AtLeast),
            ("<=", Comparison::AtMost),
            (">", Comparison::Above),
            ("<", Comparison::Below),
            ("=", Comparison::Equal),
        ]
        .into_iter()
        .find_map(|(prefix, comparison)| text.strip_prefix(prefix).map(|rest| (comparison, rest)))
        .unwrap_or((Comparison::AtLeast, text));
        let count = number.trim().parse().map_err(|_| {
            format!("{text:?} is not a node count: write a number, or ==N, >=N, <=N, >N, <N (a bare number means >=)")
        })?;
        Ok(CountExpectation { comparison, count })
    }
}

/// Stress mode: a generated fleet under random failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stress {
    pub duration: Option<SimDuration>,
    pub metrics_interval: Option<SimDuration>,
    /// 0: from the time of day (not reproducible).
    #[serde(default)]
    pub seed: u64,
    pub report_file: Option<String>,
    pub html_report_file: Option<String>,
    pub log_file: Option<String>,
    pub fleet_gen: Option<FleetGen>,
    pub chaos: Option<Chaos>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetGen {
    pub total_nodes: u32,
    #[serde(default)]
    pub templates: Vec<Template>,
    #[serde(default)]
    pub providers: BTreeMap<String, u32>,
    #[serde(default)]
    pub regions: BTreeMap<String, u32>,
    #[serde(default)]
    pub zones: BTreeMap<String, Vec<String>>,
    pub startup: Option<Startup>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub weight: u32,
    pub gpu_count: u32,
    #[serde(default)]
    pub gpu_type: String,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// US dollars per machine-hour: the report estimates what the fleet cost.
    pub price_per_hour: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartupPattern {
    Instant,
    #[default]
    Linear,
    Exponential,
    Wave,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Startup {
    pub pattern: Option<StartupPattern>,
    pub duration: Option<SimDuration>,
    pub batch_size: Option<u32>,
    pub jitter_percent: Option<f64>,
    pub cold_start_min: Option<SimDuration>,
    pub cold_start_max: Option<SimDuration>,
    pub cold_start_mean: Option<SimDuration>,
    pub cold_start_stddev: Option<SimDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    #[serde(default)]
    pub enabled: bool,
    /// Failures per minute per 1000 nodes.
    #[serde(default)]
    pub failure_rate: f64,
    #[serde(default)]
    pub xid_distribution: BTreeMap<u32, u32>,
    #[serde(default)]
    pub failure_types: Vec<WeightedFailure>,
    pub cascading: Option<Cascading>,
    pub recovery: Option<Recovery>,
    #[serde(default)]
    pub scheduled_outages: Vec<Outage>,
    /// Navarch's correlated failures: a failure (`trigger`, an XID code or a failure type)
    /// sets off another (`response`) with a probability, after a delay, in a scope.
    #[serde(default)]
    pub correlated_failures: Vec<CorrelatedFailure>,
}

/// One correlation rule, as Navarch's stress-testing guide writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelatedFailure {
    #[serde(default)]
    pub name: String,
    /// An XID code (`"74"`) or a failure type (`temperature`).
    pub trigger: ScalarText,
    /// The failure type set off.
    pub response: String,
    #[serde(default)]
    pub probability: f64,
    pub delay: Option<SimDuration>,
    pub scope: CorrelationScope,
}

/// Where a correlated failure lands, relative to the failure that set it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationScope {
    SameNode,
    SameRack,
    SameZone,
    Random,
}

/// What sets a correlation rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Xid(u32),
    Failure(FailureType),
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().parse::<u32>() {
            Ok(code) => Ok(Trigger::Xid(code)),
            Err(_) => text.parse().map(Trigger::Failure).map_err(|e| format!("{e}, or an XID code")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedFailure {
    #[serde(rename = "type")]
    pub kind: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Rack,
    Zone,
    Region,
    Provider,
    Random,
    Percentage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cascading {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub probability: f64,
    pub max_depth: Option<u32>,
    pub min_delay: Option<SimDuration>,
    pub max_delay: Option<SimDuration>,
    pub scope: Option<Scope>,
    pub max_affected_percent: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub probability: f64,
    pub mean_time: Option<SimDuration>,
    pub std_dev: Option<SimDuration>,
    #[serde(default)]
    pub replace_fatal: bool,
    pub replace_cold_start: Option<SimDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub name: String,
    pub start_time: SimDuration,
    pub duration: SimDuration,
    pub scope: Scope,
    #[serde(default)]
    pub target: String,
    pub failure_type: String,
}

/// A failure the simulator can cause: a GPU fault, or the node's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    Gpu(FaultKind),
    /// The agent stops reaching the control plane.
    Network,
    /// bosun: every provision call of a fake provider fails.
    ProviderOutage,
}

impl FromStr for FailureType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "network" => Ok(FailureType::Network),
            "provider_outage" => Ok(FailureType::ProviderOutage),
            other => other
                .parse()
                .map(FailureType::Gpu)
                .map_err(|e: bosun_agent::FaultError| format!("{e}, network or provider_outage")),
        }
    }
}

impl fmt::Display for FailureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureType::Gpu(kind) => kind.fmt(f),
            FailureType::Network => f.write_str("network"),
            FailureType::ProviderOutage => f.write_str("provider_outage"),
        }
    }
}

/// The Navarch simulator's agent intervals, used when the scenario's `config` sets none.
const SIM_HEARTBEAT_INTERVAL: &str = "3s";
const SIM_HEALTH_CHECK_INTERVAL: &str = "5s";

/// Commands `issue_command` sends, in Navarch's names and bosun's.
pub const COMMAND_TYPES: &[&str] = &["cordon", "uncordon", "drain", "terminate", "run_diagnostic", "diagnose"];

impl Scenario {
    /// Reads a scenario file's text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            bosun_yaml::from_str(text, &bosun_yaml::Limits::FILE).map_err(|error| match error {
                bosun_yaml::Error::Schema { path, location, problem, .. } => {
                    let message = match problem.strip_prefix("unknown field `") {
                        Some(rest) => match rest.split_once("`, expected ") {
                            Some((key, expected)) => format!("unknown key `{key}`; expected {expected}"),
                            None => format!("unknown key `{}`", rest.trim_end_matches('`')),
                        },
                        None => problem,
                    };
                    ScenarioError { path, line: location.map(|(line, _)| line), message }
                }
                syntax @ bosun_yaml::Error::Syntax { .. } => {
                    ScenarioError { path: None, line: syntax.line(), message: format!("not valid YAML: {syntax}") }
                }
                bosun_yaml::Error::Limit(limit) => ScenarioError { path: None, line: None, message: limit.to_string() },
            })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks what the schema cannot: names, known types, targets and weights.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.name.trim().is_empty() {
            return Err(ScenarioError::at("name", "a scenario needs a name"));
        }
        let mut ids = BTreeSet::new();
        for (i, node) in self.fleet.iter().enumerate() {
            let path = format!("fleet[{i}].id");
            node.id.parse::<bosun_core::NodeId>().map_err(|e| ScenarioError::at(&path, e.to_string()))?;
            if !ids.insert(node.id.as_str()) {
                return Err(ScenarioError::at(path, format!("node {:?} is listed twice", node.id)));
            }
            bosun_core::Labels::try_from(node.labels.clone())
                .map_err(|e| ScenarioError::at(format!("fleet[{i}].labels"), e.to_string()))?;
            if node.gpu_count == Some(0) {
                return Err(ScenarioError::at(format!("fleet[{i}].gpu_count"), "a node needs at least one GPU"));
            }
        }
        for (i, event) in self.events.iter().enumerate() {
            validate_event(&format!("events[{i}]"), event)?;
        }
        for (i, assertion) in self.assertions.iter().enumerate() {
            validate_assertion(&format!("assertions[{i}]"), assertion.kind, &assertion.expected.0)?;
        }
        if let Some(stress) = &self.stress {
            validate_stress(stress)?;
        }
        if self.config.is_some() {
            self.control_plane_config()?;
        }
        self.validate_replicas()?;
        Ok(())
    }

    /// `replicas` and the actions that need several.
    fn validate_replicas(&self) -> Result<(), ScenarioError> {
        if self.replicas == 0 {
            return Err(ScenarioError::at("replicas", "needs at least one control-plane replica"));
        }
        if self.replicas > MAX_REPLICAS {
            return Err(ScenarioError::at(
                "replicas",
                format!("{} replicas is more than the simulator runs ({MAX_REPLICAS} at most)", self.replicas),
            ));
        }
        for (i, event) in self.events.iter().enumerate() {
            let path = format!("events[{i}]");
            match event.action {
                Action::KillLeader if self.replicas < 2 => {
                    return Err(ScenarioError::at(
                        format!("{path}.action"),
                        "kill_leader needs replicas: 2 or more (one replica killed leaves no control plane)",
                    ));
                }
                Action::RestartReplica => {
                    let target = event.target.trim();
                    let known = (1..=self.replicas).any(|k| replica_name(k) == target);
                    if !known {
                        return Err(ScenarioError::at(
                            format!("{path}.target"),
                            format!(
                                "restart_replica needs a replica, {} to {}, not {target:?}",
                                replica_name(1),
                                replica_name(self.replicas)
                            ),
                        ));
                    }
                }
                Action::RestartServer if self.replicas > 1 => {
                    return Err(ScenarioError::at(
                        format!("{path}.action"),
                        "restart_server restarts the one control plane; with replicas use restart_replica or \
                         kill_leader",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The embedded control plane's configuration: the `config` document, with the Navarch
    /// simulator's agent intervals where it sets none. Errors name the key under `config`;
    /// providers must be fake (the simulator provisions no real machines).
    pub fn control_plane_config(&self) -> Result<bosun_config::Config, ScenarioError> {
        let mut document = self.config.clone().unwrap_or(serde_yaml::Value::Mapping(Default::default()));
        let serde_yaml::Value::Mapping(root) = &mut document else {
            return Err(ScenarioError::at("config", "must be a mapping (a bosun configuration document)"));
        };
        let server = root
            .entry(serde_yaml::Value::String("server".into()))
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        let serde_yaml::Value::Mapping(server) = server else {
            return Err(ScenarioError::at("config.server", "must be a mapping"));
        };
        for (key, value) in
            [("heartbeat_interval", SIM_HEARTBEAT_INTERVAL), ("health_check_interval", SIM_HEALTH_CHECK_INTERVAL)]
        {
            server
                .entry(serde_yaml::Value::String(key.into()))
                .or_insert_with(|| serde_yaml::Value::String(value.into()));
        }
        let text = serde_yaml::to_string(&document).map_err(|e| ScenarioError::at("config", e.to_string()))?;
        // Lines would count in the re-written document, not the scenario: name keys only.
        let config =
            bosun_config::Config::from_yaml_str(&text, |name| std::env::var(name).ok()).map_err(|e| ScenarioError {
                path: Some(e.key().map_or_else(|| "config".to_owned(), |key| format!("config.{key}"))),
                line: None,
                message: e.problem().to_owned(),
            })?;
        for (name, provider) in &config.providers {
            if provider.provider_type() != bosun_config::ProviderType::Fake {
                return Err(ScenarioError::at(
                    format!("config.providers.{name}.type"),
                    format!("is {}; the simulator runs fake providers only", provider.provider_type()),
                ));
            }
        }
        Ok(config)
    }

    /// The events in the order they run: by `at`, file order among equal times.
    pub fn timeline(&self) -> Vec<&Event> {
        let mut events: Vec<&Event> = self.events.iter().collect();
        events.sort_by_key(|e| e.at); // stable: equal times keep file order
        events
    }
}

fn require<'a>(path: &str, key: &str, value: Option<&'a str>, why: &str) -> Result<&'a str, ScenarioError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ScenarioError::at(format!("{path}.{key}"), why.to_owned())),
    }
}

fn validate_event(path: &str, event: &Event) -> Result<(), ScenarioError> {
    let p = &event.params;
    let target = (!event.target.trim().is_empty()).then_some(event.target.as_str());
    match event.action {
        Action::InjectFailure | Action::RecoverFailure => {
            let needs = if event.action == Action::InjectFailure { "inject_failure" } else { "recover_failure" };
            require(path, "target", target, &format!("{needs} needs the node (or fake provider) it acts on"))?;
            if let Some(kind) = &p.failure_type {
                kind.parse::<FailureType>().map_err(|e| ScenarioError::at(format!("{path}.params.failure_type"), e))?;
            } else if event.action == Action::InjectFailure {
                return Err(ScenarioError::at(
                    format!("{path}.params.failure_type"),
                    "inject_failure needs a failure_type (xid_error, temperature, memory_error, network...)",
                ));
            }
        }
        Action::IssueCommand => {
            require(path, "target", target, "issue_command needs the node to command")?;
            let kind =
                require(path, "params.command_type", p.command_type.as_deref(), "issue_command needs a command_type")?;
            if !COMMAND_TYPES.contains(&kind.to_ascii_lowercase().as_str()) && !kind.starts_with("custom:") {
                return Err(ScenarioError::at(
                    format!("{path}.params.command_type"),
                    format!("unknown command {kind:?}: expected one of {} or custom:NAME", COMMAND_TYPES.join(", ")),
                ));
            }
            for (key, value) in &p.command_args {
                scalar_text(value).ok_or_else(|| {
                    ScenarioError::at(format!("{path}.params.command_args.{key}"), "expected a single value")
                })?;
            }
        }
        Action::WaitForStatus => {
            require(path, "target", target, "wait_for_status needs the node to watch")?;
            let expected = require(
                path,
                "params.expected_status",
                p.expected_status.as_deref(),
                "wait_for_status needs an expected_status",
            )?;
            expected
                .parse::<ExpectedStatus>()
                .map_err(|e| ScenarioError::at(format!("{path}.params.expected_status"), e))?;
        }
        Action::Assert => {
            let kind: AssertionKind = match p.failure_type.as_deref().map(str::trim) {
                None | Some("") => AssertionKind::NodeStatus,
                Some(text) => serde_yaml::from_str(text).map_err(|_| {
                    ScenarioError::at(
                        format!("{path}.params.failure_type"),
                        format!(
                            "unknown assertion {text:?}: expected node_status, health_status, node_count, \
                             remediation or run_status"
                        ),
                    )
                })?,
            };
            let expected = require(
                path,
                "params.expected_status",
                p.expected_status.as_deref(),
                "assert needs an expected_status",
            )?;
            validate_assertion(&format!("{path}.params"), kind, expected)?;
        }
        Action::ScalePool => {
            require(path, "target", target, "scale_pool needs the pool to scale")?;
            if p.count.is_none() {
                return Err(ScenarioError::at(format!("{path}.params.count"), "scale_pool needs the pool's new size"));
            }
        }
        Action::ApplyRunbook => {
            let text = require(path, "params.runbook", p.runbook.as_deref(), "apply_runbook needs the runbook's YAML")?;
            bosun_config::runbook::RunbookSpec::parse(text)
                .map_err(|e| ScenarioError::at(format!("{path}.params.runbook"), e.to_string()))?;
        }
        Action::StartRun => {
            require(path, "target", target, "start_run needs the runbook to run")?;
            let given = [!p.nodes.is_empty(), p.selector.is_some(), p.pool.is_some()];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(ScenarioError::at(
                    format!("{path}.params"),
                    "give nodes, a selector or a pool, not several",
                ));
            }
        }
        Action::WaitForRun => {
            require(path, "target", target, "wait_for_run needs the runbook whose newest run it watches")?;
            let expected = require(
                path,
                "params.expected_status",
                p.expected_status.as_deref(),
                "wait_for_run needs an expected_status (succeeded, failed...)",
            )?;
            expected
                .parse::<bosun_core::RunStatus>()
                .map_err(|e| ScenarioError::at(format!("{path}.params.expected_status"), e.to_string()))?;
        }
        Action::StartFleet
        | Action::StopFleet
        | Action::Wait
        | Action::Log
        | Action::RestartServer
        | Action::KillLeader
        | Action::RestartReplica => {}
    }
    Ok(())
}

fn validate_assertion(path: &str, kind: AssertionKind, expected: &str) -> Result<(), ScenarioError> {
    let result = match kind {
        AssertionKind::NodeCount => expected.parse::<CountExpectation>().map(drop),
        AssertionKind::NodeStatus => expected.parse::<ExpectedStatus>().map(drop),
        AssertionKind::HealthStatus => expected.parse::<ExpectedStatus>().and_then(|wanted| {
            wanted.health().map(drop).ok_or_else(|| {
                format!("health_status compares a health: healthy, degraded, unhealthy or unknown, not {expected:?}")
            })
        }),
        AssertionKind::Remediation => expected.parse::<RemediationExpectation>().map(drop),
        AssertionKind::RunStatus => expected.parse::<bosun_core::RunStatus>().map(drop).map_err(|e| e.to_string()),
    };
    result.map_err(|e| ScenarioError::at(format!("{path}.expected"), e))
}

fn validate_stress(stress: &Stress) -> Result<(), ScenarioError> {
    // Report files are written inside the run's directory (`--out`).
    for (key, name) in [("report_file", &stress.report_file), ("html_report_file", &stress.html_report_file)] {
        let Some(name) = name else { continue };
        let path = std::path::Path::new(name);
        let inside = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if name.is_empty() || !inside {
            return Err(ScenarioError::at(
                format!("stress.{key}"),
                format!("{name:?} must be a relative file name: reports are written inside the run's --out directory"),
            ));
        }
    }
    let Some(fleet) = &stress.fleet_gen else {
        return Err(ScenarioError::at("stress.fleet_gen", "stress mode needs fleet_gen to generate its fleet"));
    };
    if fleet.total_nodes == 0 {
        return Err(ScenarioError::at("stress.fleet_gen.total_nodes", "must be at least 1"));
    }
    for (i, t) in fleet.templates.iter().enumerate() {
        if t.weight == 0 {
            return Err(ScenarioError::at(format!("stress.fleet_gen.templates[{i}].weight"), "must be above 0"));
        }
        bosun_core::Labels::try_from(t.labels.clone())
            .map_err(|e| ScenarioError::at(format!("stress.fleet_gen.templates[{i}].labels"), e.to_string()))?;
        if t.gpu_count == 0 {
            return Err(ScenarioError::at(format!("stress.fleet_gen.templates[{i}].gpu_count"), "must be above 0"));
        }
        if t.price_per_hour.is_some_and(|p| !p.is_finite() || p < 0.0) {
            return Err(ScenarioError::at(
                format!("stress.fleet_gen.templates[{i}].price_per_hour"),
                "must be a price in US dollars >= 0",
            ));
        }
    }
    for (key, map) in [("providers", &fleet.providers), ("regions", &fleet.regions)] {
        if !map.is_empty() && map.values().all(|w| *w == 0) {
            return Err(ScenarioError::at(format!("stress.fleet_gen.{key}"), "every weight is 0"));
        }
    }
    if let Some(chaos) = &stress.chaos {
        if !chaos.failure_rate.is_finite() || chaos.failure_rate < 0.0 {
            return Err(ScenarioError::at("stress.chaos.failure_rate", "must be a number of failures >= 0"));
        }
        for (i, f) in chaos.failure_types.iter().enumerate() {
            let failure: FailureType =
                f.kind.parse().map_err(|e| ScenarioError::at(format!("stress.chaos.failure_types[{i}].type"), e))?;
            if failure == FailureType::ProviderOutage {
                return Err(ScenarioError::at(
                    format!("stress.chaos.failure_types[{i}].type"),
                    "provider_outage is an event for pools, not a node failure",
                ));
            }
        }
        for (i, rule) in chaos.correlated_failures.iter().enumerate() {
            let at = |key: &str| format!("stress.chaos.correlated_failures[{i}].{key}");
            rule.trigger.0.parse::<Trigger>().map_err(|e| ScenarioError::at(at("trigger"), e))?;
            let response: FailureType = rule.response.parse().map_err(|e| ScenarioError::at(at("response"), e))?;
            if response == FailureType::ProviderOutage {
                return Err(ScenarioError::at(
                    at("response"),
                    "provider_outage is an event for pools, not a node failure",
                ));
            }
            if !(0.0..=1.0).contains(&rule.probability) {
                return Err(ScenarioError::at(at("probability"), "must be between 0 and 1"));
            }
        }
        for (key, p) in [
            ("cascading.probability", chaos.cascading.as_ref().map(|c| c.probability)),
            ("recovery.probability", chaos.recovery.as_ref().map(|r| r.probability)),
        ] {
            if let Some(p) = p
                && !(0.0..=1.0).contains(&p)
            {
                return Err(ScenarioError::at(format!("stress.chaos.{key}"), "must be between 0 and 1"));
            }
        }
        for (i, outage) in chaos.scheduled_outages.iter().enumerate() {
            outage
                .failure_type
                .parse::<FailureType>()
                .map_err(|e| ScenarioError::at(format!("stress.chaos.scheduled_outages[{i}].failure_type"), e))?;
            if outage.scope == Scope::Percentage {
                outage.target.trim().trim_end_matches('%').parse::<f64>().map_err(|_| {
                    ScenarioError::at(
                        format!("stress.chaos.scheduled_outages[{i}].target"),
                        "a percentage outage needs a target such as 10 or 10%",
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// A status or health a node is expected to have (`active`, `unhealthy`, `healthy`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedStatus {
    Status(bosun_core::NodeStatus),
    Health(bosun_core::Health),
}

impl FromStr for ExpectedStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        use bosun_core::{Health, NodeStatus};
        let wanted = text.trim().to_ascii_uppercase();
        let wanted =
            wanted.strip_prefix("NODE_STATUS_").or_else(|| wanted.strip_prefix("HEALTH_STATUS_")).unwrap_or(&wanted);
        if let Some(status) = NodeStatus::ALL.iter().find(|s| s.as_str() == wanted) {
            return Ok(ExpectedStatus::Status(*status));
        }
        Health::ALL.iter().find(|h| h.as_str() == wanted).map(|h| ExpectedStatus::Health(*h)).ok_or_else(|| {
            format!(
                "unknown status {text:?}: expected active, cordoned, draining, unhealthy, terminating, \
                     terminated, or a health (healthy, degraded, unknown)"
            )
        })
    }
}

impl ExpectedStatus {
    /// The health a `health_status` check compares. `unhealthy` names a status and a
    /// health alike; there it means the health.
    pub fn health(self) -> Option<bosun_core::Health> {
        match self {
            ExpectedStatus::Health(health) => Some(health),
            ExpectedStatus::Status(bosun_core::NodeStatus::Unhealthy) => Some(bosun_core::Health::Unhealthy),
            ExpectedStatus::Status(_) => None,
        }
    }
}

/// A YAML scalar as text (numbers and booleans as written).
pub fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
