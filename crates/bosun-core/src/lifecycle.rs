//! The four lifecycles of bosun (node, instance, command, task run), validated here and nowhere else.
//!
//! Each lifecycle is a state enum plus a trigger enum ("what happened"); `apply` is the
//! only way to compute a next state and rejects anything the specification does not allow.
//! Stores double-check every status change they persist with `can_become`, so a caller
//! that bypasses `apply` still cannot persist an illegal transition.

use crate::ResourceKind;

/// A trigger was applied in a state that does not allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct TransitionError {
    pub kind: ResourceKind,
    /// The state the resource is in.
    pub from: &'static str,
    /// The state the trigger would lead to.
    pub to: &'static str,
    /// What was attempted, when known (`cordon`, `deliver`...).
    pub trigger: Option<&'static str>,
    /// The states from which the trigger is allowed.
    pub allowed_from: Vec<&'static str>,
}

impl TransitionError {
    fn describe(&self) -> String {
        match self.trigger {
            Some(trigger) => format!(
                "cannot {trigger} {kind}: it is {from}, and {trigger} moves a {kind} to {to} only from {allowed}",
                kind = self.kind,
                from = self.from,
                to = self.to,
                allowed = join_states(&self.allowed_from),
            ),
            None => format!("{} cannot go from {} to {}", self.kind, self.from, self.to),
        }
    }
}

fn join_states(states: &[&str]) -> String {
    match states {
        [] => "no state".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

named_enum!(
    /// Where a node stands in the fleet (SPEC 3.1).
    NodeStatus, field = "status" {
        Active => "ACTIVE",
        Cordoned => "CORDONED",
        Draining => "DRAINING",
        Unhealthy => "UNHEALTHY",
        Terminating => "TERMINATING",
        Terminated => "TERMINATED",
    }
);

/// Something that happens to a node and may change its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeTrigger {
    /// The first registration of a node id.
    Register,
    Cordon,
    /// Operator returns the node to service; from UNHEALTHY this is an explicit override.
    Uncordon,
    Drain,
    /// A health report classified UNHEALTHY, or the heartbeat timed out.
    MarkUnhealthy,
    /// The pool's recovery policy (`health.recover_after`) returns a node to service.
    Recover,
    /// Operator terminate, replacement or scale-down.
    Terminate,
    /// Draining finished.
    Drained,
    /// The provider confirmed the machine is gone.
    TerminationConfirmed,
}

impl NodeTrigger {
    pub const ALL: &'static [NodeTrigger] = &[
        NodeTrigger::Register,
        NodeTrigger::Cordon,
        NodeTrigger::Uncordon,
        NodeTrigger::Drain,
        NodeTrigger::MarkUnhealthy,
        NodeTrigger::Recover,
        NodeTrigger::Terminate,
        NodeTrigger::Drained,
        NodeTrigger::TerminationConfirmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeTrigger::Register => "register",
            NodeTrigger::Cordon => "cordon",
            NodeTrigger::Uncordon => "uncordon",
            NodeTrigger::Drain => "drain",
            NodeTrigger::MarkUnhealthy => "mark unhealthy",
            NodeTrigger::Recover => "recover",
            NodeTrigger::Terminate => "terminate",
            NodeTrigger::Drained => "finish draining",
            NodeTrigger::TerminationConfirmed => "confirm termination of",
        }
    }

    /// The state this trigger leads to, and the states it is allowed from (`None` = a new
    /// node).
    fn rule(self) -> (NodeStatus, &'static [Option<NodeStatus>]) {
        use NodeStatus::*;
        match self {
            NodeTrigger::Register => (Active, &[None]),
            NodeTrigger::Cordon => (Cordoned, &[Some(Active), Some(Unhealthy)]),
            NodeTrigger::Uncordon => (Active, &[Some(Cordoned), Some(Draining), Some(Unhealthy)]),
            NodeTrigger::Drain => (Draining, &[Some(Active), Some(Cordoned), Some(Unhealthy)]),
            NodeTrigger::MarkUnhealthy => (Unhealthy, &[Some(Active), Some(Cordoned), Some(Draining)]),
            NodeTrigger::Recover => (Active, &[Some(Unhealthy)]),
            NodeTrigger::Terminate => (Terminating, &[Some(Active), Some(Cordoned), Some(Draining), Some(Unhealthy)]),
            NodeTrigger::Drained => (Terminating, &[Some(Draining)]),
            NodeTrigger::TerminationConfirmed => (Terminated, &[Some(Terminating)]),
        }
    }
}

impl NodeStatus {
    /// The next status after `trigger`, for an existing node (`Some`) or a new one (`None`).
    pub fn apply(current: Option<NodeStatus>, trigger: NodeTrigger) -> Result<NodeStatus, TransitionError> {
        let (to, allowed) = trigger.rule();
        if allowed.contains(&current) {
            return Ok(to);
        }
        Err(TransitionError {
            kind: ResourceKind::Node,
            from: current.map_or("not registered", NodeStatus::as_str),
            to: to.as_str(),
            trigger: Some(trigger.as_str()),
            allowed_from: allowed.iter().map(|s| s.map_or("not registered", NodeStatus::as_str)).collect(),
        })
    }

    /// True when some trigger moves a node from `self` to `to`.
    pub fn can_become(self, to: NodeStatus) -> bool {
        NodeTrigger::ALL.iter().any(|t| NodeStatus::apply(Some(self), *t) == Ok(to))
    }

    /// Checks a status change about to be persisted.
    pub fn check_change(self, to: NodeStatus) -> Result<(), TransitionError> {
        if self == to || self.can_become(to) {
            return Ok(());
        }
        Err(TransitionError {
            kind: ResourceKind::Node,
            from: self.as_str(),
            to: to.as_str(),
            trigger: None,
            allowed_from: Vec::new(),
        })
    }

    /// Nodes in these states are gone or going; they never count toward a pool's size and
    /// are not judged for liveness.
    pub fn is_leaving(self) -> bool {
        matches!(self, NodeStatus::Terminating | NodeStatus::Terminated)
    }
}

named_enum!(
    /// Where a cloud instance stands, from the provisioning call to termination (SPEC 3.5).
    InstanceState, field = "state" {
        Provisioning => "PROVISIONING",
        PendingRegistration => "PENDING_REGISTRATION",
        Running => "RUNNING",
        Terminating => "TERMINATING",
        Terminated => "TERMINATED",
        Failed => "FAILED",
    }
);

/// Something that happens to a cloud instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceTrigger {
    /// bosun is about to call the provider.
    StartProvisioning,
    /// The provider accepted the request.
    Provisioned,
    /// The instance's agent registered. Allowed from PROVISIONING too: a fast machine can
    /// register before the provider's API call returns.
    AgentRegistered,
    /// Provisioning error, registration or provisioning timeout.
    Fail,
    /// bosun asked the provider to terminate it (also a FAILED one whose VM may exist).
    Terminate,
    /// The provider confirmed termination, or no longer lists the instance.
    Gone,
}

impl InstanceTrigger {
    pub const ALL: &'static [InstanceTrigger] = &[
        InstanceTrigger::StartProvisioning,
        InstanceTrigger::Provisioned,
        InstanceTrigger::AgentRegistered,
        InstanceTrigger::Fail,
        InstanceTrigger::Terminate,
        InstanceTrigger::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceTrigger::StartProvisioning => "start provisioning",
            InstanceTrigger::Provisioned => "mark provisioned",
            InstanceTrigger::AgentRegistered => "register the agent of",
            InstanceTrigger::Fail => "fail",
            InstanceTrigger::Terminate => "terminate",
            InstanceTrigger::Gone => "confirm termination of",
        }
    }

    fn rule(self) -> (InstanceState, &'static [Option<InstanceState>]) {
        use InstanceState::*;
        match self {
            InstanceTrigger::StartProvisioning => (Provisioning, &[None]),
            InstanceTrigger::Provisioned => (PendingRegistration, &[Some(Provisioning)]),
            InstanceTrigger::AgentRegistered => (Running, &[Some(Provisioning), Some(PendingRegistration)]),
            InstanceTrigger::Fail => {
                (Failed, &[Some(Provisioning), Some(PendingRegistration), Some(Running), Some(Terminating)])
            }
            InstanceTrigger::Terminate => {
                (Terminating, &[Some(Provisioning), Some(PendingRegistration), Some(Running), Some(Failed)])
            }
            InstanceTrigger::Gone => (
                Terminated,
                &[Some(Provisioning), Some(PendingRegistration), Some(Running), Some(Terminating), Some(Failed)],
            ),
        }
    }
}

impl InstanceState {
    pub fn apply(current: Option<InstanceState>, trigger: InstanceTrigger) -> Result<InstanceState, TransitionError> {
        let (to, allowed) = trigger.rule();
        if allowed.contains(&current) {
            return Ok(to);
        }
        Err(TransitionError {
            kind: ResourceKind::Instance,
            from: current.map_or("not tracked", InstanceState::as_str),
            to: to.as_str(),
            trigger: Some(trigger.as_str()),
            allowed_from: allowed.iter().map(|s| s.map_or("not tracked", InstanceState::as_str)).collect(),
        })
    }

    pub fn can_become(self, to: InstanceState) -> bool {
        InstanceTrigger::ALL.iter().any(|t| InstanceState::apply(Some(self), *t) == Ok(to))
    }

    pub fn check_change(self, to: InstanceState) -> Result<(), TransitionError> {
        if self == to || self.can_become(to) {
            return Ok(());
        }
        Err(TransitionError {
            kind: ResourceKind::Instance,
            from: self.as_str(),
            to: to.as_str(),
            trigger: None,
            allowed_from: Vec::new(),
        })
    }

    /// PROVISIONING, PENDING_REGISTRATION and RUNNING count toward a pool's size.
    pub fn counts_toward_pool_size(self) -> bool {
        matches!(self, InstanceState::Provisioning | InstanceState::PendingRegistration | InstanceState::Running)
    }

    /// No further state change is expected (the record only awaits retention).
    pub fn is_final(self) -> bool {
        matches!(self, InstanceState::Terminated)
    }
}

named_enum!(
    /// Where a command stands (SPEC 3.4).
    CommandState, field = "state" {
        Pending => "PENDING",
        Delivered => "DELIVERED",
        Acked => "ACKED",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Expired => "EXPIRED",
        Cancelled => "CANCELLED",
    }
);

/// Something that happens to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandTrigger {
    Issue,
    /// Handed out by PollCommands; again from DELIVERED when the redelivery timeout passed.
    Deliver,
    /// The agent accepted the command and is working on it.
    Ack,
    Succeed,
    Fail,
    /// The deadline passed before the agent acknowledged it.
    Expire,
    /// An operator withdrew it before the agent acknowledged it.
    Cancel,
}

impl CommandTrigger {
    pub const ALL: &'static [CommandTrigger] = &[
        CommandTrigger::Issue,
        CommandTrigger::Deliver,
        CommandTrigger::Ack,
        CommandTrigger::Succeed,
        CommandTrigger::Fail,
        CommandTrigger::Expire,
        CommandTrigger::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandTrigger::Issue => "issue",
            CommandTrigger::Deliver => "deliver",
            CommandTrigger::Ack => "acknowledge",
            CommandTrigger::Succeed => "complete",
            CommandTrigger::Fail => "fail",
            CommandTrigger::Expire => "expire",
            CommandTrigger::Cancel => "cancel",
        }
    }

    fn rule(self) -> (CommandState, &'static [Option<CommandState>]) {
        use CommandState::*;
        match self {
            CommandTrigger::Issue => (Pending, &[None]),
            CommandTrigger::Deliver => (Delivered, &[Some(Pending), Some(Delivered)]),
            CommandTrigger::Ack => (Acked, &[Some(Delivered)]),
            CommandTrigger::Succeed => (Succeeded, &[Some(Delivered), Some(Acked)]),
            CommandTrigger::Fail => (Failed, &[Some(Delivered), Some(Acked)]),
            CommandTrigger::Expire => (Expired, &[Some(Pending), Some(Delivered)]),
            CommandTrigger::Cancel => (Cancelled, &[Some(Pending), Some(Delivered)]),
        }
    }
}

impl CommandState {
    pub fn apply(current: Option<CommandState>, trigger: CommandTrigger) -> Result<CommandState, TransitionError> {
        let (to, allowed) = trigger.rule();
        if allowed.contains(&current) {
            return Ok(to);
        }
        Err(TransitionError {
            kind: ResourceKind::Command,
            from: current.map_or("not issued", CommandState::as_str),
            to: to.as_str(),
            trigger: Some(trigger.as_str()),
            allowed_from: allowed.iter().map(|s| s.map_or("not issued", CommandState::as_str)).collect(),
        })
    }

    pub fn can_become(self, to: CommandState) -> bool {
        CommandTrigger::ALL.iter().any(|t| CommandState::apply(Some(self), *t) == Ok(to))
    }

    pub fn check_change(self, to: CommandState) -> Result<(), TransitionError> {
        if self == to || self.can_become(to) {
            return Ok(());
        }
        Err(TransitionError {
            kind: ResourceKind::Command,
            from: self.as_str(),
            to: to.as_str(),
            trigger: None,
            allowed_from: Vec::new(),
        })
    }

    /// SUCCEEDED, FAILED, EXPIRED and CANCELLED never change again.
    pub fn is_final(self) -> bool {
        matches!(self, CommandState::Succeeded | CommandState::Failed | CommandState::Expired | CommandState::Cancelled)
    }

    /// Waiting to be handed to (or re-handed to) the agent.
    pub fn is_outstanding(self) -> bool {
        matches!(self, CommandState::Pending | CommandState::Delivered)
    }
}

named_enum!(
    /// Where a task run of the operations ledger stands.
    RunStatus, field = "status" {
        Queued => "queued",
        AwaitingApproval => "awaiting_approval",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        Rejected => "rejected",
    }
);

/// Something that happens to a task run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunTrigger {
    /// Recorded, to be started by the executor.
    Queue,
    /// Work begins: at once (bosun's own actions), when the executor picks it up, or when
    /// the approval it waited for is given.
    Start,
    /// A step needs an approval first (before the run starts, or between steps).
    AwaitApproval,
    Succeed,
    Fail,
    /// An operator withdrew it.
    Cancel,
    /// Its approval was refused or expired, or an approval policy rule denies a step.
    Reject,
}

impl RunTrigger {
    pub const ALL: &'static [RunTrigger] = &[
        RunTrigger::Queue,
        RunTrigger::Start,
        RunTrigger::AwaitApproval,
        RunTrigger::Succeed,
        RunTrigger::Fail,
        RunTrigger::Cancel,
        RunTrigger::Reject,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Queue => "queue",
            RunTrigger::Start => "start",
            RunTrigger::AwaitApproval => "hold for approval",
            RunTrigger::Succeed => "complete",
            RunTrigger::Fail => "fail",
            RunTrigger::Cancel => "cancel",
            RunTrigger::Reject => "reject",
        }
    }

    fn rule(self) -> (RunStatus, &'static [Option<RunStatus>]) {
        use RunStatus::*;
        match self {
            RunTrigger::Queue => (Queued, &[None]),
            RunTrigger::Start => (Running, &[None, Some(Queued), Some(AwaitingApproval)]),
            RunTrigger::AwaitApproval => (AwaitingApproval, &[None, Some(Queued), Some(Running)]),
            RunTrigger::Succeed => (Succeeded, &[Some(Running)]),
            RunTrigger::Fail => (Failed, &[Some(Queued), Some(AwaitingApproval), Some(Running)]),
            RunTrigger::Cancel => (Cancelled, &[Some(Queued), Some(AwaitingApproval), Some(Running)]),
            RunTrigger::Reject => (Rejected, &[Some(Queued), Some(AwaitingApproval), Some(Running)]),
        }
    }
}

impl RunStatus {
    pub fn apply(current: Option<RunStatus>, trigger: RunTrigger) -> Result<RunStatus, TransitionError> {
        let (to, allowed) = trigger.rule();
        if allowed.contains(&current) {
            return Ok(to);
        }
        Err(TransitionError {
            kind: ResourceKind::Run,
            from: current.map_or("not started", RunStatus::as_str),
            to: to.as_str(),
            trigger: Some(trigger.as_str()),
            allowed_from: allowed.iter().map(|s| s.map_or("not started", RunStatus::as_str)).collect(),
        })
    }

    /// The status a run may be created in.
    pub fn can_begin_as(self) -> bool {
        RunTrigger::ALL.iter().any(|t| RunStatus::apply(None, *t) == Ok(self))
    }

    pub fn can_become(self, to: RunStatus) -> bool {
        RunTrigger::ALL.iter().any(|t| RunStatus::apply(Some(self), *t) == Ok(to))
    }

    pub fn check_change(self, to: RunStatus) -> Result<(), TransitionError> {
        if self == to || self.can_become(to) {
            return Ok(());
        }
        Err(TransitionError {
            kind: ResourceKind::Run,
            from: self.as_str(),
            to: to.as_str(),
            trigger: None,
            allowed_from: Vec::new(),
        })
    }

    /// SUCCEEDED, FAILED, CANCELLED and REJECTED never change again.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// Checks one lifecycle against a table written the way the specification writes it:
    /// rows are "from" states (`None` = the resource does not exist yet), columns are "to"
    /// states, and each cell lists the triggers that make that move. Every cell is
    /// checked, including the empty ones (no trigger may make that move).
    fn check_table<S: Copy + PartialEq + fmt::Debug, T: Copy + fmt::Debug>(
        states: &[S],
        triggers: &[T],
        apply: impl Fn(Option<S>, T) -> Result<S, TransitionError>,
        name: impl Fn(T) -> &'static str,
        table: &[(Option<S>, Vec<Vec<&str>>)],
    ) {
        let mut from_states: Vec<Option<S>> = vec![None];
        from_states.extend(states.iter().copied().map(Some));
        assert_eq!(table.len(), from_states.len(), "the table must have one row per state plus (new)");
        for (from, row) in table {
            assert_eq!(row.len(), states.len(), "row {from:?} must have one cell per target state");
            for (to, cell) in states.iter().zip(row) {
                let mut actual: Vec<&str> =
                    triggers.iter().filter(|t| apply(*from, **t) == Ok(*to)).map(|t| name(*t)).collect();
                let mut expected = cell.clone();
                actual.sort_unstable();
                expected.sort_unstable();
                assert_eq!(actual, expected, "cell {from:?} -> {to:?}");
            }
            // Every trigger not listed in the row must be refused with an error that
            // names the current state.
            for trigger in triggers {
                if row.iter().flatten().any(|t| *t == name(*trigger)) {
                    continue;
                }
                let err = apply(*from, *trigger).expect_err("trigger not in the table must fail");
                assert!(err.to_string().contains("cannot"), "{err}");
            }
        }
    }

    fn cells(row: [&[&'static str]; 6]) -> Vec<Vec<&'static str>> {
        row.iter().map(|cell| cell.to_vec()).collect()
    }

    #[test]
    fn node_lifecycle_matches_spec_table_3_1() {
        use NodeStatus::*;
        // Columns: ACTIVE, CORDONED, DRAINING, UNHEALTHY, TERMINATING, TERMINATED.
        let table = [
            (None, cells([&["register"], &[], &[], &[], &[], &[]])),
            (Some(Active), cells([&[], &["cordon"], &["drain"], &["mark unhealthy"], &["terminate"], &[]])),
            (Some(Cordoned), cells([&["uncordon"], &[], &["drain"], &["mark unhealthy"], &["terminate"], &[]])),
            (
                Some(Draining),
                cells([&["uncordon"], &[], &[], &["mark unhealthy"], &["finish draining", "terminate"], &[]]),
            ),
            (Some(Unhealthy), cells([&["uncordon", "recover"], &["cordon"], &["drain"], &[], &["terminate"], &[]])),
            (Some(Terminating), cells([&[], &[], &[], &[], &[], &["confirm termination of"]])),
            (Some(Terminated), cells([&[], &[], &[], &[], &[], &[]])),
        ];
        check_table(NodeStatus::ALL, NodeTrigger::ALL, NodeStatus::apply, NodeTrigger::as_str, &table);
    }

    #[test]
    fn instance_lifecycle() {
        use InstanceState::*;
        // Columns: PROVISIONING, PENDING_REGISTRATION, RUNNING, TERMINATING, TERMINATED, FAILED.
        let reg = "register the agent of";
        let gone = "confirm termination of";
        let table = [
            (None, cells([&["start provisioning"], &[], &[], &[], &[], &[]])),
            (Some(Provisioning), cells([&[], &["mark provisioned"], &[reg], &["terminate"], &[gone], &["fail"]])),
            (Some(PendingRegistration), cells([&[], &[], &[reg], &["terminate"], &[gone], &["fail"]])),
            (Some(Running), cells([&[], &[], &[], &["terminate"], &[gone], &["fail"]])),
            (Some(Terminating), cells([&[], &[], &[], &[], &[gone], &["fail"]])),
            (Some(Terminated), cells([&[], &[], &[], &[], &[], &[]])),
            (Some(Failed), cells([&[], &[], &[], &["terminate"], &[gone], &[]])),
        ];
        check_table(InstanceState::ALL, InstanceTrigger::ALL, InstanceState::apply, InstanceTrigger::as_str, &table);
    }

    #[test]
    fn command_lifecycle() {
        use CommandState::*;
        let cells7 =
            |row: [&[&'static str]; 7]| -> Vec<Vec<&'static str>> { row.iter().map(|cell| cell.to_vec()).collect() };
        // Columns: PENDING, DELIVERED, ACKED, SUCCEEDED, FAILED, EXPIRED, CANCELLED.
        let table = [
            (None, cells7([&["issue"], &[], &[], &[], &[], &[], &[]])),
            (Some(Pending), cells7([&[], &["deliver"], &[], &[], &[], &["expire"], &["cancel"]])),
            (
                Some(Delivered),
                cells7([&[], &["deliver"], &["acknowledge"], &["complete"], &["fail"], &["expire"], &["cancel"]]),
            ),
            (Some(Acked), cells7([&[], &[], &[], &["complete"], &["fail"], &[], &[]])),
            (Some(Succeeded), cells7([&[], &[], &[], &[], &[], &[], &[]])),
            (Some(Failed), cells7([&[], &[], &[], &[], &[], &[], &[]])),
            (Some(Expired), cells7([&[], &[], &[], &[], &[], &[], &[]])),
            (Some(Cancelled), cells7([&[], &[], &[], &[], &[], &[], &[]])),
        ];
        check_table(CommandState::ALL, CommandTrigger::ALL, CommandState::apply, CommandTrigger::as_str, &table);
    }

    #[test]
    fn run_lifecycle() {
        use RunStatus::*;
        let cells7 =
            |row: [&[&'static str]; 7]| -> Vec<Vec<&'static str>> { row.iter().map(|cell| cell.to_vec()).collect() };
        let hold = "hold for approval";
        // Columns: queued, awaiting_approval, running, succeeded, failed, cancelled, rejected.
        let table = [
            (None, cells7([&["queue"], &[hold], &["start"], &[], &[], &[], &[]])),
            (Some(Queued), cells7([&[], &[hold], &["start"], &[], &["fail"], &["cancel"], &["reject"]])),
            (Some(AwaitingApproval), cells7([&[], &[], &["start"], &[], &["fail"], &["cancel"], &["reject"]])),
            (Some(Running), cells7([&[], &[hold], &[], &["complete"], &["fail"], &["cancel"], &["reject"]])),
            (Some(Succeeded), cells7([&[], &[], &[], &[], &[], &[], &[]])),
            (Some(Failed), cells7([&[], &[], &[], &[], &[], &[], &[]])),
            (Some(Cancelled), cells7([&[], &[], &[], &[], &[], &[], &[]])),
            (Some(Rejected), cells7([&[], &[], &[], &[], &[], &[], &[]])),
        ];
        check_table(RunStatus::ALL, RunTrigger::ALL, RunStatus::apply, RunTrigger::as_str, &table);
        assert!(RunStatus::Running.can_begin_as() && !RunStatus::Failed.can_begin_as());
        assert_eq!(
            RunStatus::apply(Some(Succeeded), RunTrigger::Cancel).unwrap_err().to_string(),
            "cannot cancel run: it is succeeded, and cancel moves a run to cancelled only from queued, awaiting_approval or running"
        );
    }

    #[test]
    fn errors_name_the_current_and_target_states() {
        let err = NodeStatus::apply(Some(NodeStatus::Terminated), NodeTrigger::Uncordon).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot uncordon node: it is TERMINATED, and uncordon moves a node to ACTIVE only from CORDONED, DRAINING or UNHEALTHY"
        );
        let err = NodeStatus::Terminated.check_change(NodeStatus::Active).unwrap_err();
        assert_eq!(err.to_string(), "node cannot go from TERMINATED to ACTIVE");
        assert!(NodeStatus::Active.check_change(NodeStatus::Active).is_ok());
    }

    #[test]
    fn final_and_counting_states() {
        assert!(CommandState::Cancelled.is_final() && !CommandState::Acked.is_final());
        let counted: Vec<_> = InstanceState::ALL.iter().filter(|s| s.counts_toward_pool_size()).collect();
        assert_eq!(
            counted,
            [&InstanceState::Provisioning, &InstanceState::PendingRegistration, &InstanceState::Running]
        );
    }

    #[test]
    fn parses_names_in_any_case() {
        assert_eq!("active".parse::<NodeStatus>(), Ok(NodeStatus::Active));
        assert_eq!("PENDING_REGISTRATION".parse::<InstanceState>(), Ok(InstanceState::PendingRegistration));
        assert_eq!(
            "asleep".parse::<NodeStatus>().unwrap_err().to_string(),
            "invalid status: \"asleep\" is not one of ACTIVE, CORDONED, DRAINING, UNHEALTHY, TERMINATING, TERMINATED"
        );
    }
}
