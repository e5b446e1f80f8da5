//! Commands sent to nodes, delivered at least once (SPEC 3.4).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lifecycle::TransitionError;
use crate::validation::{ValidationError, check_identifier, check_text};
use crate::{Actor, CommandId, CommandState, CommandTrigger, NodeId, Revision, Timestamp};

/// Most parameters (or result details) one command may carry.
pub const MAX_COMMAND_PARAMETERS: usize = 32;

/// What a command asks the node to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CommandKind {
    Cordon,
    Uncordon,
    Drain,
    Terminate,
    /// Parameter `test` names the diagnostic.
    RunDiagnostic,
    Reboot,
    /// Parameter `gpu` names the GPU index to reset (a remediation step).
    ResetGpu,
    /// A site-specific command the agent has a handler for.
    Custom(String),
}

impl CommandKind {
    const BUILTIN: [(CommandKind, &'static str); 7] = [
        (CommandKind::Cordon, "CORDON"),
        (CommandKind::Uncordon, "UNCORDON"),
        (CommandKind::Drain, "DRAIN"),
        (CommandKind::Terminate, "TERMINATE"),
        (CommandKind::RunDiagnostic, "RUN_DIAGNOSTIC"),
        (CommandKind::Reboot, "REBOOT"),
        (CommandKind::ResetGpu, "RESET_GPU"),
    ];

    /// The stored kind name: the builtin's name, or `CUSTOM` (the name is kept apart).
    pub fn kind_name(&self) -> &'static str {
        match self {
            CommandKind::Custom(_) => "CUSTOM",
            builtin => Self::BUILTIN.iter().find(|(k, _)| k == builtin).map_or("CUSTOM", |(_, name)| name),
        }
    }

    /// Rebuilds a kind from its stored parts.
    pub fn from_parts(kind_name: &str, custom_name: Option<&str>) -> Result<Self, ValidationError> {
        match (kind_name, custom_name) {
            ("CUSTOM", Some(name)) => Self::custom(name),
            (_, None) => kind_name.parse(),
            (other, Some(_)) => {
                Err(ValidationError::new("kind", format_args!("{other} commands do not take a custom name")))
            }
        }
    }

    pub fn custom(name: &str) -> Result<Self, ValidationError> {
        check_identifier("kind", name, 64)?;
        Ok(CommandKind::Custom(name.to_owned()))
    }

    pub fn custom_name(&self) -> Option<&str> {
        match self {
            CommandKind::Custom(name) => Some(name),
            _ => None,
        }
    }

    /// Cordon, uncordon and drain change the node's status on the server at once (and are
    /// delivered too, so the agent can stop accepting work).
    pub fn changes_status_at_once(&self) -> bool {
        matches!(self, CommandKind::Cordon | CommandKind::Uncordon | CommandKind::Drain)
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandKind::Custom(name) => write!(f, "custom:{name}"),
            builtin => f.write_str(builtin.kind_name()),
        }
    }
}

impl FromStr for CommandKind {
    type Err = ValidationError;
    /// Parses a builtin name in any case, or `custom:<name>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix("custom:") {
            return Self::custom(name);
        }
        Self::BUILTIN.iter().find(|(_, name)| name.eq_ignore_ascii_case(text)).map(|(k, _)| k.clone()).ok_or_else(
            || {
                ValidationError::new(
                    "kind",
                    format_args!(
                        "{text:?} is not one of CORDON, UNCORDON, DRAIN, TERMINATE, RUN_DIAGNOSTIC, REBOOT, RESET_GPU or custom:<name>"
                    ),
                )
            },
        )
    }
}

impl TryFrom<String> for CommandKind {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<CommandKind> for String {
    fn from(kind: CommandKind) -> String {
        kind.to_string()
    }
}

/// A command and its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: CommandId,
    pub node_id: NodeId,
    pub kind: CommandKind,
    pub parameters: BTreeMap<String, String>,
    /// Change only through [`Command::apply`]; stores refuse illegal changes.
    pub state: CommandState,
    pub issued_by: Actor,
    pub reason: String,
    pub issued_at: Timestamp,
    /// PENDING or DELIVERED commands expire after this.
    pub deadline: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// How many times PollCommands handed it out (more than one after redelivery).
    pub delivery_count: u32,
    pub acked_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The agent's (or the expiry's, or the canceller's) message.
    pub outcome_message: String,
    /// Result details reported by the agent.
    pub result: BTreeMap<String, String>,
    pub revision: Revision,
}

/// What to issue.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    pub node_id: NodeId,
    pub kind: CommandKind,
    pub parameters: BTreeMap<String, String>,
    pub reason: String,
    /// How long the command may wait for delivery and acknowledgement.
    pub time_to_live: Duration,
}

impl Command {
    pub fn issue(request: CommandRequest, issued_by: Actor, now: Timestamp) -> Result<Command, CommandError> {
        let state = CommandState::apply(None, CommandTrigger::Issue)?;
        check_map("parameters", &request.parameters)?;
        check_text("reason", &request.reason)?;
        if request.kind == CommandKind::RunDiagnostic && !request.parameters.contains_key("test") {
            return Err(ValidationError::new("parameters.test", "RUN_DIAGNOSTIC needs the diagnostic to run").into());
        }
        if request.kind == CommandKind::ResetGpu
            && request.parameters.get("gpu").is_none_or(|gpu| gpu.trim().parse::<u32>().is_err())
        {
            return Err(ValidationError::new("parameters.gpu", "RESET_GPU needs the index of the GPU to reset").into());
        }
        Ok(Command {
            id: CommandId::new_at(now),
            node_id: request.node_id,
            kind: request.kind,
            parameters: request.parameters,
            state,
            issued_by,
            reason: request.reason,
            issued_at: now,
            deadline: now + request.time_to_live,
            delivered_at: None,
            delivery_count: 0,
            acked_at: None,
            finished_at: None,
            outcome_message: String::new(),
            result: BTreeMap::new(),
            revision: Revision::FIRST,
        })
    }

    /// Applies a lifecycle trigger and its bookkeeping (delivery count, timestamps).
    pub fn apply(&mut self, trigger: CommandTrigger, now: Timestamp) -> Result<(), TransitionError> {
        let next = CommandState::apply(Some(self.state), trigger)?;
        match trigger {
            CommandTrigger::Deliver => {
                self.delivered_at = Some(now);
                self.delivery_count += 1;
            }
            CommandTrigger::Ack => self.acked_at = Some(now),
            CommandTrigger::Succeed | CommandTrigger::Fail => {
                self.acked_at.get_or_insert(now);
                self.finished_at = Some(now);
            }
            CommandTrigger::Expire | CommandTrigger::Cancel => self.finished_at = Some(now),
            CommandTrigger::Issue => {}
        }
        self.state = next;
        Ok(())
    }

    /// Whether PollCommands should hand this command out at `now`: PENDING, or DELIVERED
    /// longer ago than `redelivery_after` without an acknowledgement, and not expired.
    pub fn is_due_for_delivery(&self, now: Timestamp, redelivery_after: Duration) -> bool {
        if now >= self.deadline {
            return false;
        }
        match (self.state, self.delivered_at) {
            (CommandState::Pending, _) => true,
            (CommandState::Delivered, Some(at)) => now.saturating_since(at) >= redelivery_after,
            _ => false,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        check_map("parameters", &self.parameters)?;
        check_map("result", &self.result)?;
        check_text("reason", &self.reason)?;
        check_text("outcome_message", &self.outcome_message)
    }
}

/// Checks command parameters or results: bounded count, identifier keys, printable values.
/// Entry points call it with the field name their caller used.
pub fn check_map(field: &str, map: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if map.len() > MAX_COMMAND_PARAMETERS {
        return Err(ValidationError::new(field, format_args!("more than {MAX_COMMAND_PARAMETERS} entries")));
    }
    for (key, value) in map {
        check_identifier(field, key, 64)?;
        check_text(&format!("{field}.{key}"), value)?;
    }
    Ok(())
}

/// Why a command could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// One step in a command's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEvent {
    pub command_id: CommandId,
    /// 1 for the issue, then one more per state change.
    pub seq: u32,
    pub at: Timestamp,
    pub state: CommandState,
    pub actor: Actor,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: CommandKind) -> CommandRequest {
        CommandRequest {
            node_id: NodeId::new("n1").expect("valid"),
            kind,
            parameters: BTreeMap::new(),
            reason: "maintenance".into(),
            time_to_live: Duration::from_secs(600),
        }
    }

    #[test]
    fn kinds_round_trip() {
        for text in ["CORDON", "UNCORDON", "DRAIN", "TERMINATE", "RUN_DIAGNOSTIC", "REBOOT", "custom:flash-bios"] {
            let kind: CommandKind = text.parse().expect("valid kind");
            assert_eq!(kind.to_string(), text);
            assert_eq!(CommandKind::from_parts(kind.kind_name(), kind.custom_name()), Ok(kind));
        }
        assert_eq!("drain".parse::<CommandKind>(), Ok(CommandKind::Drain));
        assert!("custom:".parse::<CommandKind>().is_err());
        assert!("explode".parse::<CommandKind>().is_err());
        assert!(CommandKind::from_parts("DRAIN", Some("x")).is_err());
    }

    #[test]
    fn delivery_is_at_least_once_until_acknowledged_or_expired() {
        let t0 = Timestamp::UNIX_EPOCH;
        let redelivery = Duration::from_secs(30);
        let mut cmd = Command::issue(request(CommandKind::Terminate), Actor::operator("alice"), t0).expect("valid");
        assert!(cmd.is_due_for_delivery(t0, redelivery));
        cmd.apply(CommandTrigger::Deliver, t0).expect("legal");
        assert!(!cmd.is_due_for_delivery(t0 + Duration::from_secs(29), redelivery));
        let t1 = t0 + Duration::from_secs(30);
        assert!(cmd.is_due_for_delivery(t1, redelivery));
        cmd.apply(CommandTrigger::Deliver, t1).expect("redelivery is legal");
        assert_eq!(cmd.delivery_count, 2);
        cmd.apply(CommandTrigger::Succeed, t1).expect("legal");
        assert!(!cmd.is_due_for_delivery(t1 + Duration::from_secs(60), redelivery));
        assert_eq!(cmd.finished_at, Some(t1));

        let cmd = Command::issue(request(CommandKind::Reboot), Actor::operator("alice"), t0).expect("valid");
        assert!(!cmd.is_due_for_delivery(cmd.deadline, redelivery), "expired commands are never delivered");
    }

    #[test]
    fn diagnostics_need_a_test_name() {
        let err = Command::issue(request(CommandKind::RunDiagnostic), Actor::operator("a"), Timestamp::UNIX_EPOCH)
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid parameters.test: RUN_DIAGNOSTIC needs the diagnostic to run");
    }
}
