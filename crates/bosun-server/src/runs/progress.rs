//! Where a runbook run stands, folded from its events.
//!
//! The run's history is its state: nothing about a run's progress lives only in memory,
//! so a restarted (or newly elected) server reads the events back and resumes exactly
//! after the last step each target finished. A step that had begun when the server
//! stopped is checked again, not begun again: its command (recorded with the
//! `step_started` event, in the transaction that issued it) is the one waited for.

use std::collections::{BTreeSet, HashMap};

use bosun_core::{CommandId, RunEvent, RunEventType, RunTarget, Timestamp};

/// What an `approval_decided` event's data says when the approval was given.
pub(crate) const APPROVED: &str = "approved";

/// Where one target of a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetState {
    /// No step has begun.
    Waiting,
    /// `step` began at `since` and has not ended; `command` is what it waits for.
    InStep { step: u32, since: Timestamp, command: Option<CommandId> },
    /// Every step before `next` finished; `next` has not begun.
    Between { next: u32 },
    /// Every step finished.
    Done,
    /// `step` failed; no later step runs on this target.
    Failed { step: u32, reason: String },
}

impl TargetState {
    /// Begun and not yet done or failed.
    pub(crate) fn in_flight(&self) -> bool {
        matches!(self, TargetState::InStep { .. } | TargetState::Between { .. })
    }
}

/// A run's targets and where each stands, plus the steps an approval was given for.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    steps: u32,
    targets: Vec<RunTarget>,
    index: HashMap<RunTarget, usize>,
    states: Vec<TargetState>,
    approved: BTreeSet<u32>,
}

impl Progress {
    /// A run of `steps` steps over `targets`, none begun.
    pub(crate) fn new(targets: &[RunTarget], steps: u32) -> Self {
        Progress {
            steps,
            targets: targets.to_vec(),
            index: targets.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect(),
            states: vec![TargetState::Waiting; targets.len()],
            approved: BTreeSet::new(),
        }
    }

    /// Takes in one event (stamped `at`). Events about unknown targets or steps (none are
    /// written) change nothing.
    pub(crate) fn apply(&mut self, event: &RunEvent, at: Timestamp) {
        let Some(step) = event.step.filter(|s| *s < self.steps) else { return };
        if event.event_type == RunEventType::ApprovalDecided {
            let decision = event.data.as_ref().and_then(|d| d.get("decision")).and_then(|d| d.as_str());
            if decision == Some(APPROVED) {
                self.approved.insert(step);
            }
            return;
        }
        let Some(&i) = event.target.as_ref().and_then(|t| self.index.get(t)) else { return };
        self.states[i] = match event.event_type {
            RunEventType::StepStarted => {
                let command = event
                    .data
                    .as_ref()
                    .and_then(|d| d.get("command"))
                    .and_then(|c| c.as_str())
                    .and_then(|c| c.parse().ok());
                TargetState::InStep { step, since: at, command }
            }
            RunEventType::StepFinished if step + 1 == self.steps => TargetState::Done,
            RunEventType::StepFinished => TargetState::Between { next: step + 1 },
            RunEventType::StepFailed => TargetState::Failed { step, reason: event.message.clone() },
            _ => return,
        };
    }

    pub(crate) fn target(&self, i: usize) -> &RunTarget {
        &self.targets[i]
    }

    pub(crate) fn state(&self, i: usize) -> &TargetState {
        &self.states[i]
    }

    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }

    /// Targets begun and not yet done or failed, in order.
    pub(crate) fn in_flight(&self) -> Vec<usize> {
        (0..self.states.len()).filter(|i| self.states[*i].in_flight()).collect()
    }

    /// The first target no step has begun on.
    pub(crate) fn next_waiting(&self) -> Option<usize> {
        self.states.iter().position(|s| *s == TargetState::Waiting)
    }

    /// The first target that failed, with its step and why.
    pub(crate) fn first_failure(&self) -> Option<(usize, u32, &str)> {
        self.states.iter().enumerate().find_map(|(i, s)| match s {
            TargetState::Failed { step, reason } => Some((i, *step, reason.as_str())),
            _ => None,
        })
    }

    /// How many targets are done, failed and not begun.
    pub(crate) fn counts(&self) -> Counts {
        let count = |f: fn(&TargetState) -> bool| self.states.iter().filter(|s| f(s)).count();
        Counts {
            done: count(|s| *s == TargetState::Done),
            failed: count(|s| matches!(s, TargetState::Failed { .. })),
            waiting: count(|s| *s == TargetState::Waiting),
            in_flight: count(TargetState::in_flight),
        }
    }

    /// Whether an approval was given for `step`.
    pub(crate) fn approved(&self, step: u32) -> bool {
        self.approved.contains(&step)
    }
}

/// Targets by where they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub done: usize,
    pub failed: usize,
    pub waiting: usize,
    pub in_flight: usize,
}

#[cfg(test)]
mod tests {
    use bosun_core::RunId;

    use super::*;

    fn node(id: &str) -> RunTarget {
        RunTarget::Node(id.parse().expect("node id"))
    }

    fn event(run: RunId, kind: RunEventType, step: u32, target: &str) -> RunEvent {
        RunEvent::new(run, kind, "").at_step(step).on(node(target))
    }

    #[test]
    fn events_fold_into_each_targets_place() {
        let run = RunId::new_at(Timestamp::UNIX_EPOCH);
        let at = Timestamp::UNIX_EPOCH;
        let mut progress = Progress::new(&[node("a"), node("b"), node("c")], 2);
        assert_eq!(progress.next_waiting(), Some(0));
        let command = CommandId::new_at(at);
        progress.apply(
            &event(run, RunEventType::StepStarted, 0, "a").with_data(serde_json::json!({"command": command})),
            at,
        );
        assert_eq!(*progress.state(0), TargetState::InStep { step: 0, since: at, command: Some(command) });
        progress.apply(&event(run, RunEventType::StepFinished, 0, "a"), at);
        assert_eq!(*progress.state(0), TargetState::Between { next: 1 });
        progress.apply(&event(run, RunEventType::StepStarted, 1, "a"), at);
        progress.apply(&event(run, RunEventType::StepFinished, 1, "a"), at);
        assert_eq!(*progress.state(0), TargetState::Done);
        let mut failed = event(run, RunEventType::StepFailed, 0, "b");
        failed.message = "node b was deleted".into();
        progress.apply(&failed, at);
        assert_eq!(progress.first_failure(), Some((1, 0, "node b was deleted")));
        assert_eq!(progress.next_waiting(), Some(2));
        assert_eq!(progress.counts(), Counts { done: 1, failed: 1, waiting: 1, in_flight: 0 });
        // Unknown targets and steps out of range change nothing.
        progress.apply(&event(run, RunEventType::StepStarted, 0, "zz"), at);
        progress.apply(&event(run, RunEventType::StepStarted, 7, "c"), at);
        assert_eq!(*progress.state(2), TargetState::Waiting);
    }

    #[test]
    fn only_a_given_approval_opens_its_step() {
        let run = RunId::new_at(Timestamp::UNIX_EPOCH);
        let mut progress = Progress::new(&[node("a")], 3);
        let decided = |decision: &str| {
            RunEvent::new(run, RunEventType::ApprovalDecided, "")
                .at_step(1)
                .with_data(serde_json::json!({ "decision": decision }))
        };
        progress.apply(&decided("rejected"), Timestamp::UNIX_EPOCH);
        assert!(!progress.approved(1));
        progress.apply(&decided(APPROVED), Timestamp::UNIX_EPOCH);
        assert!(progress.approved(1) && !progress.approved(2));
    }
}
