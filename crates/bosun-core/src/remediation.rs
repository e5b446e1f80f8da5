//! Graded remediation (SPEC 3.2): what a health fault asks of its machine, and the ladder
//! a node climbs while a fault keeps coming back: reset the GPU, reboot, replace.
//!
//! A policy verdict carries a [`RemediationAction`]. `none` and `restart_app` never touch
//! the machine (an application fault is the application's to handle); `replace` takes the
//! node out of service for its pool to replace; `reset_gpu` and `reboot` are rungs of the
//! node's ladder, decided by [`RemediationSpec::decide`] from the node's last step
//! ([`Remediation`], stored on the node) so that the ladder survives restarts and every
//! step is a command with an acknowledgement and a deadline.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::serde_secs::secs;
use crate::validation::ValidationError;
use crate::{CommandId, Timestamp};

named_enum!(
    /// What a fault asks for, mildest first: the declaration order is the escalation order.
    RemediationAction, field = "action" {
        None => "none",
        RestartApp => "restart_app",
        ResetGpu => "reset_gpu",
        Reboot => "reboot",
        Replace => "replace",
    }
);

impl RemediationAction {
    /// The steps a ladder may hold: the actions that act on the machine.
    pub const LADDER: [RemediationAction; 3] =
        [RemediationAction::ResetGpu, RemediationAction::Reboot, RemediationAction::Replace];

    /// Whether bosun acts on the machine for it (rather than leaving it to the application).
    pub fn acts_on_machine(self) -> bool {
        Self::LADDER.contains(&self)
    }
}

/// How a pool remediates its nodes (`remediation:` in configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationSpec {
    /// The ladder, mildest first; always ends with `replace` (`[replace]` skips the resets).
    pub steps: Vec<RemediationAction>,
    /// A fault within this long after a step finished climbs to the next step.
    #[serde(with = "secs")]
    pub window: Duration,
    /// A step whose command has not succeeded within this long failed: the node is replaced.
    #[serde(with = "secs")]
    pub step_timeout: Duration,
    /// An application-class XID on one GPU more than this many times within
    /// `repeat_window` is no longer the application's fault: it escalates to `reset_gpu`.
    pub repeat_limit: u32,
    #[serde(with = "secs")]
    pub repeat_window: Duration,
}

impl Default for RemediationSpec {
    /// NVIDIA's remediation chain: reset the GPU, then reboot, then replace; a step has ten
    /// minutes; a fault recurring within an hour climbs; 3 application faults an hour are
    /// tolerated on one GPU.
    fn default() -> Self {
        Self {
            steps: RemediationAction::LADDER.to_vec(),
            window: Duration::from_secs(3600),
            step_timeout: Duration::from_secs(600),
            repeat_limit: 3,
            repeat_window: Duration::from_secs(3600),
        }
    }
}

/// What the ladder does about a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LadderDecision {
    /// A step is still running, or the node is already being replaced: the fault belongs
    /// to the incident that step answers.
    Wait,
    /// Take this step now.
    Take(RemediationAction),
}

impl RemediationSpec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.steps.is_empty() {
            return Err(ValidationError::new("steps", "needs at least one step (replace)"));
        }
        for (index, step) in self.steps.iter().enumerate() {
            if !step.acts_on_machine() {
                return Err(ValidationError::new(
                    format!("steps[{index}]"),
                    format_args!("{step} is not a ladder step (reset_gpu, reboot or replace)"),
                ));
            }
        }
        if !self.steps.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(ValidationError::new("steps", "must go from mildest to hardest: reset_gpu, reboot, replace"));
        }
        if self.steps.last() != Some(&RemediationAction::Replace) {
            return Err(ValidationError::new(
                "steps",
                "must end with replace (to keep broken machines instead, set health.auto_replace: false)",
            ));
        }
        for (field, value) in
            [("window", self.window), ("step_timeout", self.step_timeout), ("repeat_window", self.repeat_window)]
        {
            if value.is_zero() {
                return Err(ValidationError::new(field, "must be longer than zero"));
            }
        }
        if self.repeat_limit == 0 {
            return Err(ValidationError::new("repeat_limit", "must be at least 1"));
        }
        Ok(())
    }

    /// The first step of the ladder at least as hard as `wanted` (the ladder ends with
    /// `replace`, so there always is one).
    pub fn step_for(&self, wanted: RemediationAction) -> RemediationAction {
        self.steps.iter().copied().find(|step| *step >= wanted).unwrap_or(RemediationAction::Replace)
    }

    /// Decides what to do about a fault that asks for `demand`, given the node's last step.
    ///
    /// - `replace` is taken at once, whatever the ladder says.
    /// - A step still running absorbs the fault (its command is on its way); one past its
    ///   deadline has failed, and failure means replacement.
    /// - A fault within `window` after a step finished climbs to the step after it.
    /// - Otherwise the ladder starts at the first step at least as hard as the demand.
    ///
    /// `demand` below `reset_gpu` asks nothing of the machine: [`LadderDecision::Wait`].
    pub fn decide(&self, last: Option<&Remediation>, demand: RemediationAction, now: Timestamp) -> LadderDecision {
        if !demand.acts_on_machine() {
            return LadderDecision::Wait;
        }
        if demand == RemediationAction::Replace {
            return match last {
                Some(step) if step.step == RemediationAction::Replace => LadderDecision::Wait,
                _ => LadderDecision::Take(RemediationAction::Replace),
            };
        }
        let Some(last) = last else { return LadderDecision::Take(self.step_for(demand)) };
        if last.step == RemediationAction::Replace {
            return LadderDecision::Wait;
        }
        match last.state {
            StepState::Running if now < last.deadline => LadderDecision::Wait,
            StepState::Running | StepState::Failed => LadderDecision::Take(RemediationAction::Replace),
            StepState::Succeeded => {
                let finished = last.finished_at.unwrap_or(last.started_at);
                if now.saturating_since(finished) <= self.window {
                    let next = self.steps.iter().copied().find(|step| *step > last.step);
                    LadderDecision::Take(next.unwrap_or(RemediationAction::Replace).max(self.step_for(demand)))
                } else {
                    LadderDecision::Take(self.step_for(demand))
                }
            }
        }
    }
}

named_enum!(
    /// How a remediation step went.
    StepState, field = "state" {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

/// A node's last remediation step, kept on the node so that the ladder survives restarts
/// and shows in `bosun nodes get` and the node's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    pub step: RemediationAction,
    /// What the step answers: `XID 94 on GPU 3`, `requested by operator:alice`.
    pub fault: String,
    /// The GPU a `reset_gpu` step resets.
    pub gpu_index: Option<u32>,
    /// The command that carries the step to the agent (`replace` has none: the pool acts).
    pub command_id: Option<CommandId>,
    pub state: StepState,
    pub started_at: Timestamp,
    /// A step still running at this time has failed.
    pub deadline: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// How the step ended: the agent's message, `timed out`, ...
    pub message: String,
}

impl Remediation {
    /// A step that starts now. `replace` is finished as soon as it is decided (the pool
    /// carries it out); the others run until their command succeeds or the deadline.
    pub fn start(
        step: RemediationAction,
        fault: impl Into<String>,
        gpu_index: Option<u32>,
        command_id: Option<CommandId>,
        now: Timestamp,
        timeout: Duration,
    ) -> Self {
        let replace = step == RemediationAction::Replace;
        Self {
            step,
            fault: fault.into(),
            gpu_index,
            command_id,
            state: if replace { StepState::Succeeded } else { StepState::Running },
            started_at: now,
            deadline: now + timeout,
            finished_at: replace.then_some(now),
            message: String::new(),
        }
    }

    /// Whether the step is running and its deadline has not passed.
    pub fn is_running(&self, now: Timestamp) -> bool {
        self.state == StepState::Running && now < self.deadline
    }

    /// Whether a running step has outlived its deadline.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.state == StepState::Running && now >= self.deadline
    }

    /// Records how the step ended.
    pub fn finish(&mut self, succeeded: bool, message: impl Into<String>, now: Timestamp) {
        self.state = if succeeded { StepState::Succeeded } else { StepState::Failed };
        self.finished_at = Some(now);
        self.message = message.into();
    }

    /// One line for tables and status reasons: `reset_gpu running for XID 94 on GPU 3`.
    pub fn summary(&self) -> String {
        let mut text = format!("{} {} for {}", self.step, self.state, self.fault);
        if !self.message.is_empty() {
            text.push_str(": ");
            text.push_str(&self.message);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RemediationAction::{Reboot, Replace, ResetGpu, RestartApp};
    use StepState::{Failed, Running, Succeeded};

    fn t(seconds: u64) -> Timestamp {
        Timestamp::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn last(action: RemediationAction, state: StepState, started: u64, finished: Option<u64>) -> Remediation {
        Remediation {
            step: action,
            fault: "XID 94 on GPU 3".into(),
            gpu_index: Some(3),
            command_id: None,
            state,
            started_at: t(started),
            deadline: t(started + 600),
            finished_at: finished.map(t),
            message: String::new(),
        }
    }

    #[test]
    fn the_ladder_climbs_on_recurrence_and_replaces_on_failure() {
        let spec = RemediationSpec::default();
        let take = LadderDecision::Take;
        let wait = LadderDecision::Wait;
        let cases: Vec<(&str, Option<Remediation>, RemediationAction, u64, LadderDecision)> = vec![
            ("application faults ask nothing of the machine", None, RestartApp, 0, wait),
            ("a first fault starts at its own rung", None, ResetGpu, 0, take(ResetGpu)),
            ("a reboot-class fault starts at reboot", None, Reboot, 0, take(Reboot)),
            ("replace is taken at once", None, Replace, 0, take(Replace)),
            ("a running step absorbs the fault", Some(last(ResetGpu, Running, 0, None)), ResetGpu, 100, wait),
            ("replace overrides a running step", Some(last(ResetGpu, Running, 0, None)), Replace, 100, take(Replace)),
            ("a step past its deadline failed", Some(last(ResetGpu, Running, 0, None)), ResetGpu, 600, take(Replace)),
            ("a failed step means replacement", Some(last(Reboot, Failed, 0, Some(10))), ResetGpu, 100, take(Replace)),
            (
                "recurrence after a reset climbs to reboot",
                Some(last(ResetGpu, Succeeded, 0, Some(10))),
                ResetGpu,
                3000,
                take(Reboot),
            ),
            (
                "recurrence after a reboot climbs to replace",
                Some(last(Reboot, Succeeded, 0, Some(10))),
                ResetGpu,
                3000,
                take(Replace),
            ),
            (
                "a fault after the window starts over",
                Some(last(Reboot, Succeeded, 0, Some(10))),
                ResetGpu,
                3700,
                take(ResetGpu),
            ),
            (
                "a harder fault than the next rung wins",
                Some(last(ResetGpu, Succeeded, 0, Some(10))),
                Replace,
                100,
                take(Replace),
            ),
            ("a node being replaced waits", Some(last(Replace, Succeeded, 0, Some(0))), Replace, 100, wait),
        ];
        for (name, previous, demand, now, expected) in cases {
            assert_eq!(spec.decide(previous.as_ref(), demand, t(now)), expected, "{name}");
        }
    }

    #[test]
    fn a_replace_only_ladder_skips_the_resets() {
        let spec = RemediationSpec { steps: vec![Replace], ..RemediationSpec::default() };
        assert_eq!(spec.decide(None, ResetGpu, t(0)), LadderDecision::Take(Replace));
        let no_reset = RemediationSpec { steps: vec![Reboot, Replace], ..RemediationSpec::default() };
        assert_eq!(no_reset.decide(None, ResetGpu, t(0)), LadderDecision::Take(Reboot));
    }

    #[test]
    fn invalid_ladders_name_the_problem() {
        let with = |steps: Vec<RemediationAction>| RemediationSpec { steps, ..RemediationSpec::default() };
        let cases = [
            (with(vec![]), "invalid steps: needs at least one step (replace)"),
            (
                with(vec![RestartApp, Replace]),
                "invalid steps[0]: restart_app is not a ladder step (reset_gpu, reboot or replace)",
            ),
            (
                with(vec![Reboot, ResetGpu, Replace]),
                "invalid steps: must go from mildest to hardest: reset_gpu, reboot, replace",
            ),
            (
                with(vec![ResetGpu, Reboot]),
                "invalid steps: must end with replace (to keep broken machines instead, set health.auto_replace: false)",
            ),
            (
                RemediationSpec { repeat_limit: 0, ..RemediationSpec::default() },
                "invalid repeat_limit: must be at least 1",
            ),
            (
                RemediationSpec { step_timeout: Duration::ZERO, ..RemediationSpec::default() },
                "invalid step_timeout: must be longer than zero",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(spec.validate().unwrap_err().to_string(), message);
        }
        assert!(RemediationSpec::default().validate().is_ok());
    }

    #[test]
    fn steps_start_finish_and_time_out() {
        let mut step = Remediation::start(ResetGpu, "XID 94 on GPU 3", Some(3), None, t(0), Duration::from_secs(60));
        assert!(step.is_running(t(59)) && !step.is_overdue(t(59)));
        assert!(step.is_overdue(t(60)) && !step.is_running(t(60)));
        step.finish(true, "GPU 3 reset", t(30));
        assert_eq!(step.summary(), "reset_gpu succeeded for XID 94 on GPU 3: GPU 3 reset");
        let replace = Remediation::start(Replace, "XID 79 on GPU 0", Some(0), None, t(0), Duration::from_secs(60));
        assert_eq!((replace.state, replace.finished_at), (Succeeded, Some(t(0))));
        assert!(RemediationAction::Replace > RemediationAction::Reboot && RemediationAction::None < RestartApp);
    }
}
