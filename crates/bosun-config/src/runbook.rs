//! Runbooks: a named list of steps over bosun's operations, applied with
//! `bosun runbooks apply FILE` and run over nodes with `bosun runs start`.
//!
//! ```yaml
//! name: cordon-check-uncordon
//! description: Take nodes out one at a time, check them, put them back.
//! max_parallel: 1
//! stop_on_failure: true
//! steps:
//!   - cordon: {reason: maintenance}
//!   - diagnose: {test: quick, timeout: 5m}
//!   - uncordon: {}
//! ```
//!
//! Parsing is as strict as the configuration file's: an unknown step or key is an error
//! naming its path and line, and nothing is stored.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_core::{LabelSelector, NodeId, NodeStatus, PoolName, RunbookName};
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::duration::ConfigDuration;

/// The largest runbook text accepted.
pub const MAX_RUNBOOK_BYTES: usize = 256 * 1024;

/// Steps a runbook may hold.
pub const MAX_STEPS: usize = 100;

/// A runbook as applied: defaults filled in, every value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookSpec {
    pub name: RunbookName,
    pub description: String,
    /// Targets worked on at once.
    pub max_parallel: u32,
    /// Stop the run at the first target whose step failed (otherwise that target is
    /// skipped and the others go on).
    pub stop_on_failure: bool,
    /// The targets used when a run names none.
    pub targets: Option<TargetSpec>,
    pub steps: Vec<RunbookStep>,
}

/// Which nodes a run works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Nodes(Vec<NodeId>),
    Selector(LabelSelector),
    Pool(PoolName),
}

/// One step, done for each target in turn. Every step has a timeout: past it the step has
/// failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookStep {
    pub action: StepAction,
    pub timeout: Duration,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    Cordon {
        reason: String,
    },
    Uncordon,
    /// Drains the node and waits until it is drained.
    Drain {
        reason: String,
    },
    /// Runs a diagnostic and waits for its result, which is stored as an artifact.
    Diagnose {
        test: String,
    },
    Terminate {
        reason: String,
    },
    /// Issues a command (a built-in kind such as `REBOOT`, or a custom one) and waits for
    /// the agent to finish it.
    IssueCommand {
        command: String,
        parameters: BTreeMap<String, String>,
    },
    /// Waits until the node reaches `status`.
    WaitForStatus {
        status: NodeStatus,
    },
    /// Sets a pool's target size (its minimum and maximum still apply).
    ScalePool {
        pool: Option<PoolName>,
        target: u32,
    },
}

impl StepAction {
    /// The step's name as written in a runbook.
    pub fn name(&self) -> &'static str {
        match self {
            StepAction::Cordon { .. } => "cordon",
            StepAction::Uncordon => "uncordon",
            StepAction::Drain { .. } => "drain",
            StepAction::Diagnose { .. } => "diagnose",
            StepAction::Terminate { .. } => "terminate",
            StepAction::IssueCommand { .. } => "issue_command",
            StepAction::WaitForStatus { .. } => "wait_for_status",
            StepAction::ScalePool { .. } => "scale_pool",
        }
    }

    /// How much harm the step can do, as approval policies see it: terminating machines
    /// (directly, by command or by resizing a pool) is destructive; waiting only reads.
    pub fn risk(&self) -> bosun_core::ToolRisk {
        use bosun_core::ToolRisk;
        match self {
            StepAction::Terminate { .. } | StepAction::ScalePool { .. } => ToolRisk::Destructive,
            StepAction::IssueCommand { command, .. } if command.eq_ignore_ascii_case("terminate") => {
                ToolRisk::Destructive
            }
            StepAction::WaitForStatus { .. } => ToolRisk::Read,
            _ => ToolRisk::Write,
        }
    }

    /// How long the step may take unless the runbook says otherwise.
    fn default_timeout(&self) -> Duration {
        const MINUTE: u64 = 60;
        Duration::from_secs(match self {
            StepAction::Drain { .. } => 30 * MINUTE,
            StepAction::Diagnose { .. } | StepAction::WaitForStatus { .. } => 10 * MINUTE,
            _ => 5 * MINUTE,
        })
    }
}

impl RunbookSpec {
    /// Parses and checks a runbook: limits, YAML syntax, schema (unknown keys and steps are
    /// errors naming path and line), then values.
    pub fn parse(text: &str) -> Result<RunbookSpec, ConfigError> {
        let limits = bosun_yaml::Limits::FILE.with_max_bytes(MAX_RUNBOOK_BYTES);
        let raw: RawRunbook = crate::parse::parse_document(text, &limits)?;
        raw.resolve()
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    name: String,
    #[serde(default)]
    description: String,
    max_parallel: Option<u32>,
    stop_on_failure: Option<bool>,
    targets: Option<RawTargets>,
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    nodes: Option<Vec<String>>,
    selector: Option<String>,
    pool: Option<String>,
}

/// One step: a mapping with exactly one key, the step's name (`- cordon: {reason: x}`).
/// Written as a struct of optional steps rather than an enum so an unknown step name is an
/// unknown key, reported with its path and line like any other.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    cordon: Option<ReasonStep>,
    uncordon: Option<TimeoutOnly>,
    drain: Option<ReasonStep>,
    diagnose: Option<DiagnoseStep>,
    terminate: Option<ReasonStep>,
    issue_command: Option<CommandStep>,
    wait_for_status: Option<StatusStep>,
    scale_pool: Option<ScaleStep>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TimeoutOnly {
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ReasonStep {
    reason: Option<String>,
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DiagnoseStep {
    test: String,
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CommandStep {
    command: String,
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StatusStep {
    status: String,
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ScaleStep {
    pool: Option<String>,
    target: u32,
    timeout: Option<ConfigDuration>,
}

/// Longest timeout a step may have.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl RawRunbook {
    fn resolve(self) -> Result<RunbookSpec, ConfigError> {
        let name = RunbookName::new(self.name).map_err(|e| ConfigError::invalid("name", e.problem))?;
        if self.description.len() > 4096 {
            return Err(ConfigError::invalid("description", "is longer than 4096 bytes"));
        }
        let max_parallel = self.max_parallel.unwrap_or(1);
        if max_parallel == 0 {
            return Err(ConfigError::invalid("max_parallel", "must be at least 1"));
        }
        if self.steps.is_empty() {
            return Err(ConfigError::invalid("steps", "a runbook needs at least one step"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(ConfigError::invalid(
                "steps",
                format_args!("{} steps; the limit is {MAX_STEPS}", self.steps.len()),
            ));
        }
        let targets = self.targets.map(RawTargets::resolve).transpose()?;
        let steps = self
            .steps
            .into_iter()
            .enumerate()
            .map(|(index, step)| step.resolve(&format!("steps[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunbookSpec {
            name,
            description: self.description,
            max_parallel,
            stop_on_failure: self.stop_on_failure.unwrap_or(true),
            targets,
            steps,
        })
    }
}

impl RawTargets {
    fn resolve(self) -> Result<TargetSpec, ConfigError> {
        match (self.nodes, self.selector, self.pool) {
            (Some(nodes), None, None) if !nodes.is_empty() => nodes
                .into_iter()
                .enumerate()
                .map(|(i, id)| {
                    NodeId::new(id).map_err(|e| ConfigError::invalid(format!("targets.nodes[{i}]"), e.problem))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(TargetSpec::Nodes),
            (None, Some(selector), None) => selector
                .parse::<LabelSelector>()
                .map(TargetSpec::Selector)
                .map_err(|e| ConfigError::invalid("targets.selector", e.problem)),
            (None, None, Some(pool)) => {
                PoolName::new(pool).map(TargetSpec::Pool).map_err(|e| ConfigError::invalid("targets.pool", e.problem))
            }
            _ => Err(ConfigError::invalid("targets", "give exactly one of nodes (a non-empty list), selector or pool")),
        }
    }
}

fn reason(given: Option<String>, key: &str) -> Result<String, ConfigError> {
    let reason = given.unwrap_or_else(|| "runbook".to_owned());
    if reason.len() > 1024 {
        return Err(ConfigError::invalid(format!("{key}.reason"), "is longer than 1024 bytes"));
    }
    Ok(reason)
}

impl RawStep {
    fn resolve(self, key: &str) -> Result<RunbookStep, ConfigError> {
        let RawStep { cordon, uncordon, drain, diagnose, terminate, issue_command, wait_for_status, scale_pool } = self;
        let given = [
            cordon.is_some(),
            uncordon.is_some(),
            drain.is_some(),
            diagnose.is_some(),
            terminate.is_some(),
            issue_command.is_some(),
            wait_for_status.is_some(),
            scale_pool.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ConfigError::invalid(
                key,
                "a step is one of cordon, uncordon, drain, diagnose, terminate, issue_command, wait_for_status or \
                 scale_pool, written as `- cordon: {}`",
            ));
        }
        let (action, timeout) = if let Some(s) = cordon {
            (StepAction::Cordon { reason: reason(s.reason, key)? }, s.timeout)
        } else if let Some(s) = uncordon {
            (StepAction::Uncordon, s.timeout)
        } else if let Some(s) = drain {
            (StepAction::Drain { reason: reason(s.reason, key)? }, s.timeout)
        } else if let Some(s) = terminate {
            (StepAction::Terminate { reason: reason(s.reason, key)? }, s.timeout)
        } else if let Some(s) = diagnose {
            if s.test.trim().is_empty() {
                return Err(ConfigError::invalid(format!("{key}.diagnose.test"), "names the diagnostic to run"));
            }
            (StepAction::Diagnose { test: s.test }, s.timeout)
        } else if let Some(s) = issue_command {
            if s.command.trim().is_empty() {
                return Err(ConfigError::invalid(format!("{key}.issue_command.command"), "names the command"));
            }
            (StepAction::IssueCommand { command: s.command, parameters: s.parameters }, s.timeout)
        } else if let Some(s) = wait_for_status {
            let status = s
                .status
                .parse::<NodeStatus>()
                .map_err(|e| ConfigError::invalid(format!("{key}.wait_for_status.status"), e.problem))?;
            (StepAction::WaitForStatus { status }, s.timeout)
        } else if let Some(s) = scale_pool {
            let pool = s
                .pool
                .map(PoolName::new)
                .transpose()
                .map_err(|e| ConfigError::invalid(format!("{key}.scale_pool.pool"), e.problem))?;
            (StepAction::ScalePool { pool, target: s.target }, s.timeout)
        } else {
            unreachable!("exactly one step is given (checked above)")
        };
        let timeout = timeout.map_or_else(|| action.default_timeout(), |ConfigDuration(d)| d);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(ConfigError::invalid(format!("{key}.{}.timeout", action.name()), "must be between 1s and 24h"));
        }
        Ok(RunbookStep { action, timeout })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
name: cordon-check-uncordon
description: Take nodes out one at a time, check them, put them back.
max_parallel: 1
stop_on_failure: true
steps:
  - cordon: {reason: maintenance}
  - diagnose: {test: quick, timeout: 5m}
  - uncordon: {}
";

    #[test]
    fn the_issue_example_parses_as_written() {
        let spec = RunbookSpec::parse(EXAMPLE).expect("valid runbook");
        assert_eq!(spec.name.as_str(), "cordon-check-uncordon");
        assert_eq!((spec.max_parallel, spec.stop_on_failure, spec.targets), (1, true, None));
        assert_eq!(
            spec.steps,
            [
                RunbookStep {
                    action: StepAction::Cordon { reason: "maintenance".into() },
                    timeout: Duration::from_secs(300)
                },
                RunbookStep {
                    action: StepAction::Diagnose { test: "quick".into() },
                    timeout: Duration::from_secs(300)
                },
                RunbookStep { action: StepAction::Uncordon, timeout: Duration::from_secs(300) },
            ]
        );
    }

    #[test]
    fn every_step_and_target_kind_parses() {
        let text = "\
name: everything
targets: {selector: 'gpu=h100'}
steps:
  - drain: {timeout: 1h}
  - terminate: {reason: broken}
  - issue_command: {command: REBOOT, parameters: {delay: '5'}}
  - wait_for_status: {status: cordoned}
  - scale_pool: {pool: training, target: 4}
";
        let spec = RunbookSpec::parse(text).expect("valid runbook");
        assert!(matches!(spec.targets, Some(TargetSpec::Selector(_))));
        let names: Vec<&str> = spec.steps.iter().map(|s| s.action.name()).collect();
        assert_eq!(names, ["drain", "terminate", "issue_command", "wait_for_status", "scale_pool"]);
        assert_eq!(spec.steps[0].timeout, Duration::from_secs(3600));
        assert_eq!(spec.steps[3].action, StepAction::WaitForStatus { status: NodeStatus::Cordoned });
        let risks: Vec<&str> = spec.steps.iter().map(|s| s.action.risk().as_str()).collect();
        assert_eq!(risks, ["write", "destructive", "write", "read", "destructive"]);
    }

    #[test]
    fn unknown_steps_keys_and_bad_values_name_path_and_line() {
        let cases = [
            ("name: x\nsteps:\n  - reboot: {}\n", "steps[0]", "line 3"),
            ("name: x\nsteps:\n  - cordon: {}\n  - cordon: {why: x}\n", "steps[1].cordon", "line 4"),
            ("name: x\nspeed: 3\nsteps:\n  - uncordon: {}\n", "speed", "line 2"),
            ("name: x\nsteps:\n  - diagnose: {test: quick, timeout: 30}\n", "steps[0].diagnose.timeout", "line 3"),
        ];
        for (text, path, line) in cases {
            let message = RunbookSpec::parse(text).expect_err(text).to_string();
            assert!(message.contains(path) && message.contains(line), "{text}: {message}");
        }
        let invalid = [
            ("name: x\nsteps: []\n", "steps"),
            ("name: x\nsteps:\n  - {}\n", "steps[0]"),
            ("name: x\nsteps:\n  - cordon: {}\n    uncordon: {}\n", "steps[0]"),
            ("name: 'has space'\nsteps:\n  - uncordon: {}\n", "name"),
            ("name: x\nmax_parallel: 0\nsteps:\n  - uncordon: {}\n", "max_parallel"),
            ("name: x\nsteps:\n  - wait_for_status: {status: asleep}\n", "steps[0].wait_for_status.status"),
            ("name: x\ntargets: {pool: a, selector: 'a=b'}\nsteps:\n  - uncordon: {}\n", "targets"),
            ("name: x\nsteps:\n  - drain: {timeout: 2d}\n", "steps[0].drain.timeout"),
        ];
        for (text, key) in invalid {
            let message = RunbookSpec::parse(text).expect_err(text).to_string();
            assert!(message.contains(key), "{text}: {message}");
        }
    }
}
