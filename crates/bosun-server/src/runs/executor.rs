//! The executor: leader work that moves every QUEUED or RUNNING runbook run on.
//!
//! Each pass reads the active runs; for each, it checks the steps under way, finishes the
//! ones that are over, and begins the next, keeping at most `max_parallel` targets in
//! flight. Every write it makes carries the run's revision (the run is rewritten, unchanged
//! but for its status, in the same batch): a run cancelled or approved meanwhile makes the
//! write fail as a conflict and nothing of it lands, and the executor reads the run again.
//!
//! What the executor remembers between passes (the parsed runbook, the progress folded
//! from the events) is a cache of the store: it is rebuilt whenever the run's revision is
//! not the one the executor last wrote.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bosun_config::runbook::RunbookSpec;
use bosun_core::{
    Actor, Artifact, RunEvent, RunEventType, RunId, RunKind, RunStatus, RunTarget, RunTrigger, TaskRun, Timestamp,
};
use bosun_store::{RunFilter, StoreError, Write, WriteBatch, all_pages};

use super::progress::{Progress, TargetState};
use super::steps::{self, Begin, Check};
use super::{ACTOR, RunInput, approvals, parse_spec};
use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// Events read per request when a run's progress is rebuilt.
const EVENT_PAGE: u32 = 5_000;

/// The executor's cache of the runs it moves on; one pass at a time.
#[derive(Debug, Default)]
pub(crate) struct Executor {
    runs: tokio::sync::Mutex<HashMap<RunId, Tracked>>,
}

/// A run as the executor last wrote it, with what it derived from it.
#[derive(Debug)]
pub(super) struct Tracked {
    pub run: TaskRun,
    pub spec: Arc<RunbookSpec>,
    pub input: RunInput,
    pub progress: Progress,
    /// Steps the approval policy let through without an approval (decided again after a
    /// restart: a policy changed meanwhile applies to the steps not yet begun).
    pub allowed: BTreeSet<u32>,
}

/// Whether a pass goes on with a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// The run waits for an approval, or has ended.
    Halt,
}

/// Moves every active runbook run on. Returns how many runs were active.
pub(crate) async fn advance_all(app: &App) -> ApiResult<usize> {
    let mut tracked = app.executor.runs.lock().await;
    let mut active = Vec::new();
    // Runbook runs, and the actions AI agents asked for that waited for an approval (each a
    // one-step runbook, see `mcp::actions`).
    for kind in [RunKind::Runbook, RunKind::AiAction] {
        for status in [RunStatus::Queued, RunStatus::Running] {
            let filter = &RunFilter { status: Some(status), kind: Some(kind), target: None };
            let store = &app.store;
            active.extend(all_pages(|page| async move { store.list_runs(filter, &page).await }).await?);
        }
    }
    // Oldest first: runs started earlier get their turn first.
    active.sort_by_key(|run| run.id);
    tracked.retain(|id, _| active.iter().any(|run| run.id == *id));
    let count = active.len();
    for run in active {
        let id = run.id;
        // Boxed: a step's future (an issued command's whole commit path) is large.
        if let Err(error) = Box::pin(advance(app, &mut tracked, run)).await {
            // Read again from the store next pass, whatever happened.
            tracked.remove(&id);
            match &error {
                ApiError::Store(StoreError::Conflict { .. }) => {
                    tracing::debug!(run = %id, "run changed meanwhile; reading it again next pass");
                }
                _ => tracing::warn!(run = %id, %error, "run could not move on; trying again next pass"),
            }
        }
    }
    Ok(count)
}

async fn advance(app: &App, tracked: &mut HashMap<RunId, Tracked>, run: TaskRun) -> ApiResult<()> {
    let id = run.id;
    let current = tracked.get(&id).is_some_and(|t| t.run.revision == run.revision);
    if !current {
        let loaded = match load(app, run.clone()).await {
            Ok(loaded) => loaded,
            // The run's own input or runbook text does not read (an upgrade changed the
            // runbook format): retrying cannot help.
            Err(ApiError::Invalid(problem)) => return fail_unreadable(app, run, &problem.to_string()).await,
            Err(error) => return Err(error),
        };
        tracked.insert(id, loaded);
    }
    let tracked = tracked.get_mut(&id).expect("inserted above");
    Driver { app, t: tracked }.advance().await
}

/// Ends a run the executor cannot carry out, saying why, rather than retrying it forever.
async fn fail_unreadable(app: &App, mut run: TaskRun, problem: &str) -> ApiResult<()> {
    let reason = format!("run {} cannot be carried out: {problem}", run.id);
    tracing::warn!(run = %run.id, "{reason}");
    run.apply(RunTrigger::Fail, app.now()).map_err(|e| ApiError::transition(run.id, e))?;
    run.error = Some(reason.clone());
    let event = RunEvent::new(run.id, RunEventType::StatusChanged, format!("failed: {reason}"));
    let mut batch = WriteBatch::new(Actor::system(ACTOR), reason);
    batch.writes = fenced(&run, &[event], Vec::new());
    app.store.commit(batch).await?;
    app.metrics.run_finished(RunStatus::Failed.as_str());
    Ok(())
}

/// Reads a run's runbook and events back into the executor's cache.
async fn load(app: &App, run: TaskRun) -> ApiResult<Tracked> {
    let input: RunInput = serde_json::from_value(run.input.clone()).map_err(|e| ApiError::invalid("input", e))?;
    let spec = parse_spec(app, input.spec.clone()).await?;
    let steps = u32::try_from(spec.steps.len()).unwrap_or(u32::MAX);
    let mut progress = Progress::new(&run.targets, steps);
    let mut after = 0;
    loop {
        let events = app.store.run_events(&run.id, after, EVENT_PAGE).await?;
        for stored in &events {
            progress.apply(&stored.event, stored.at);
        }
        match events.last() {
            Some(last) if events.len() == EVENT_PAGE as usize => after = last.seq,
            _ => break,
        }
    }
    Ok(Tracked { run, spec, input, progress, allowed: BTreeSet::new() })
}

/// Moves one run on.
pub(super) struct Driver<'a> {
    pub app: &'a App,
    pub t: &'a mut Tracked,
}

impl Driver<'_> {
    async fn advance(&mut self) -> ApiResult<()> {
        if self.t.run.status == RunStatus::Queued {
            self.t.run.apply(RunTrigger::Start, self.app.now()).map_err(|e| ApiError::transition(self.t.run.id, e))?;
            let started = self.event(RunEventType::StatusChanged, "started");
            self.commit(vec![started], Vec::new()).await?;
        }
        for i in self.t.progress.in_flight() {
            if self.drive(i).await? == Flow::Halt {
                return Ok(());
            }
        }
        while !self.stopping() && self.t.progress.counts().in_flight < self.t.spec.max_parallel as usize {
            let Some(i) = self.t.progress.next_waiting() else { break };
            if self.drive(i).await? == Flow::Halt {
                return Ok(());
            }
        }
        self.finish_if_settled().await
    }

    /// A target failed and the runbook stops on failure.
    fn stopping(&self) -> bool {
        self.t.spec.stop_on_failure && self.t.progress.first_failure().is_some()
    }

    /// Moves target `i` through as many steps as are over now.
    async fn drive(&mut self, i: usize) -> ApiResult<Flow> {
        loop {
            let next = match self.t.progress.state(i).clone() {
                TargetState::Done | TargetState::Failed { .. } => return Ok(Flow::Continue),
                TargetState::Waiting => 0,
                TargetState::Between { next } => next,
                TargetState::InStep { step, since, command } => {
                    if !Box::pin(self.check_step(i, step, since, command)).await? {
                        return Ok(Flow::Continue);
                    }
                    continue;
                }
            };
            if self.stopping() {
                return Ok(Flow::Continue);
            }
            if Box::pin(approvals::gate(self, next)).await? == Flow::Halt {
                return Ok(Flow::Halt);
            }
            Box::pin(self.begin_step(i, next)).await?;
        }
    }

    /// Checks the step under way on target `i`; true when it ended.
    async fn check_step(
        &mut self,
        i: usize,
        step: u32,
        since: Timestamp,
        command: Option<bosun_core::CommandId>,
    ) -> ApiResult<bool> {
        let spec = Arc::clone(&self.t.spec);
        let step_spec = &spec.steps[step as usize];
        let node = match (self.t.progress.target(i).clone(), &step_spec.action) {
            (RunTarget::Node(node), _) => node,
            // A pool resize asked for by an AI agent (`mcp::actions`), with the pool as its target.
            (RunTarget::Pool(pool), bosun_config::runbook::StepAction::ScalePool { target, .. }) => {
                let ended = match steps::scale_pool(self.app, &self.t.run, &pool, *target).await? {
                    Check::Finished { message, .. } => Ok(message),
                    Check::Failed { reason, .. } => Err(reason),
                    Check::Pending => return Ok(false),
                };
                self.end_step(i, step, ended, None).await?;
                return Ok(true);
            }
            (other, _) => {
                self.end_step(i, step, Err(format!("{other} is not a node")), None).await?;
                return Ok(true);
            }
        };
        match steps::check(self.app, &self.t.run, step, &step_spec.action, &node, command).await? {
            Check::Finished { message, artifact } => self.end_step(i, step, Ok(message), artifact).await?,
            Check::Failed { reason, artifact } => self.end_step(i, step, Err(reason), artifact).await?,
            Check::Pending => {
                if self.app.now().saturating_since(since) < step_spec.timeout {
                    return Ok(false);
                }
                let reason = format!(
                    "{} on node {node} did not finish within {}",
                    step_spec.action.name(),
                    bosun_config::duration::format(step_spec.timeout)
                );
                self.end_step(i, step, Err(reason), None).await?;
            }
        }
        Ok(true)
    }

    /// Begins step `step` on target `i` (its approval, if one was needed, is given).
    async fn begin_step(&mut self, i: usize, step: u32) -> ApiResult<()> {
        let target = self.t.progress.target(i).clone();
        let run_id = self.t.run.id;
        let event = |kind, message: String| RunEvent::new(run_id, kind, message).at_step(step).on(target.clone());
        let started = event(RunEventType::StepStarted, String::new());
        let fail = |reason: String| vec![started.clone(), event(RunEventType::StepFailed, reason)];
        let spec = Arc::clone(&self.t.spec);
        let step_spec = &spec.steps[step as usize];
        let node_id = match (&target, &step_spec.action) {
            (RunTarget::Node(node_id), _) => node_id,
            // A pool resize (an AI agent's action): resized when the step is checked.
            (RunTarget::Pool(_), bosun_config::runbook::StepAction::ScalePool { .. }) => {
                let started = started.clone().with_data(serde_json::json!({ "step": step_spec.action.name() }));
                return self.commit(vec![started], Vec::new()).await;
            }
            _ => {
                let events = fail(format!("{target} is not a node; runbook steps act on nodes"));
                return self.commit(events, Vec::new()).await;
            }
        };
        let node = match steps::node(self.app, node_id).await? {
            Ok(node) => node,
            Err(reason) => return self.commit(fail(reason), Vec::new()).await,
        };
        let finished = |message: String| event(RunEventType::StepFinished, message);
        let started = started.clone().with_data(serde_json::json!({ "step": step_spec.action.name() }));
        match steps::begin(self.app, &step_spec.action, &node, step_spec.timeout).await? {
            Begin::Done(message) => {
                let events = vec![started, finished(message)];
                self.commit(events, Vec::new()).await
            }
            Begin::Fail(reason) => self.commit(fail(reason), Vec::new()).await,
            Begin::Watch => self.commit(vec![started], Vec::new()).await,
            Begin::Adopt(command) => {
                let started =
                    started.with_data(serde_json::json!({ "step": step_spec.action.name(), "command": command }));
                self.commit(vec![started], Vec::new()).await
            }
            Begin::Issue { mut request, done_at_issue } => {
                request.reason = format!("{} (run {}, step {step})", request.reason, self.t.run.id);
                let events_for = |command: &bosun_core::Command| {
                    let mut events = vec![started.clone().with_data(serde_json::json!({
                        "step": step_spec.action.name(),
                        "command": command.id,
                    }))];
                    events.extend(done_at_issue.clone().map(&finished));
                    events
                };
                let run = self.t.run.clone();
                let actor = self.t.run.requested_by.clone();
                let returns_to_service = request.kind == bosun_core::CommandKind::Uncordon;
                let check = |node: &bosun_core::Node| {
                    if returns_to_service { steps::may_return_to_service(node) } else { Ok(()) }
                };
                let issued = crate::commands::issue_with(self.app, request, &actor, check, |command| {
                    fenced(&run, &events_for(command), Vec::new())
                })
                .await;
                match issued {
                    Ok(command) => {
                        self.committed(&events_for(&command));
                        Ok(())
                    }
                    Err(error) if steps::fails_the_step(&error) => {
                        self.commit(fail(error.to_string()), Vec::new()).await
                    }
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// Records the end of `step` on target `i`, with what it produced. An artifact the
    /// store refuses (too large) fails the step with that reason instead.
    async fn end_step(
        &mut self,
        i: usize,
        step: u32,
        outcome: Result<String, String>,
        artifact: Option<Artifact>,
    ) -> ApiResult<()> {
        let target = self.t.progress.target(i).clone();
        let run_id = self.t.run.id;
        let event = |kind, message: String| RunEvent::new(run_id, kind, message).at_step(step).on(target.clone());
        let ended = match &outcome {
            Ok(message) => event(RunEventType::StepFinished, message.clone()),
            Err(reason) => event(RunEventType::StepFailed, reason.clone()),
        };
        let Some(artifact) = artifact else { return self.commit(vec![ended], Vec::new()).await };
        let name = artifact.name.clone();
        let ended = ended.with_data(serde_json::json!({ "artifact": name }));
        match self.commit(vec![ended], vec![Write::PutArtifact(Box::new(artifact))]).await {
            Err(ApiError::Store(error @ StoreError::TooLarge { .. })) => {
                let reason = format!("its result could not be kept: {error}");
                self.commit(vec![event(RunEventType::StepFailed, reason)], Vec::new()).await
            }
            other => other,
        }
    }

    /// Ends the run once no target is waiting or under way, or at the first failure when
    /// the runbook stops on failure.
    async fn finish_if_settled(&mut self) -> ApiResult<()> {
        let counts = self.t.progress.counts();
        let stopping = self.stopping();
        if !stopping && counts.in_flight + counts.waiting > 0 {
            return Ok(());
        }
        let now = self.app.now();
        let total = self.t.progress.len();
        let mut events = Vec::new();
        let failure = self.t.progress.first_failure().map(|(i, step, reason)| {
            let action = self.t.spec.steps.get(step as usize).map_or("?", |s| s.action.name());
            format!("{} failed step {step} ({action}): {reason}", self.t.progress.target(i))
        });
        if stopping && counts.in_flight + counts.waiting > 0 {
            events.push(self.event(
                RunEventType::Log,
                format!(
                    "stopping on failure: {} target(s) left mid-way, {} not begun",
                    counts.in_flight, counts.waiting
                ),
            ));
        }
        let (trigger, summary) = match &failure {
            None => (RunTrigger::Succeed, format!("succeeded: {total} of {total} target(s) done")),
            Some(first) => {
                (RunTrigger::Fail, format!("failed: {} of {total} target(s) failed; first: {first}", counts.failed))
            }
        };
        self.t.run.apply(trigger, now).map_err(|e| ApiError::transition(self.t.run.id, e))?;
        self.t.run.error = failure;
        self.t.run.result = Some(serde_json::json!({
            "done": counts.done,
            "failed": counts.failed,
            "left_mid_way": if stopping { counts.in_flight } else { 0 },
            "not_begun": counts.waiting,
        }));
        events.push(self.event(RunEventType::StatusChanged, summary));
        self.commit(events, Vec::new()).await?;
        tracing::info!(run = %self.t.run.id, status = %self.t.run.status, "runbook run finished");
        Ok(())
    }

    pub(super) fn event(&self, kind: RunEventType, message: impl Into<String>) -> RunEvent {
        RunEvent::new(self.t.run.id, kind, message)
    }

    /// Commits `writes` and `events` with the run as the executor holds it (its status
    /// may have changed), checked against the revision the executor last wrote.
    pub(super) async fn commit(&mut self, events: Vec<RunEvent>, writes: Vec<Write>) -> ApiResult<()> {
        let reason = events.last().map_or_else(|| "run moved on".to_owned(), |e| e.message.clone());
        let mut batch = WriteBatch::new(Actor::system(ACTOR), reason);
        batch.writes = fenced(&self.t.run, &events, writes);
        self.app.store.commit(batch).await?;
        self.committed(&events);
        Ok(())
    }

    /// Takes in what a successful commit wrote.
    fn committed(&mut self, events: &[RunEvent]) {
        self.t.run.revision = self.t.run.revision.next();
        let now = self.app.now();
        for event in events {
            self.t.progress.apply(event, now);
            let ended = match event.event_type {
                RunEventType::StepFinished => Some(true),
                RunEventType::StepFailed => Some(false),
                _ => None,
            };
            if let (Some(finished), Some(step)) = (ended, event.step.and_then(|s| self.t.spec.steps.get(s as usize))) {
                self.app.metrics.run_step(step.action.name(), finished);
            }
        }
        if self.t.run.status.is_final() {
            self.app.metrics.run_finished(self.t.run.status.as_str());
        }
    }
}

/// The run rewritten with its expected revision, then `writes` and `events`: the batch
/// fails as a whole if anyone else changed the run since the executor last wrote it.
fn fenced(run: &TaskRun, events: &[RunEvent], writes: Vec<Write>) -> Vec<Write> {
    let mut all = Vec::with_capacity(1 + writes.len() + events.len());
    all.push(Write::UpdateRun { run: Box::new(run.clone()), expected: run.revision });
    all.extend(writes);
    all.extend(events.iter().cloned().map(|e| Write::AppendRunEvent(Box::new(e))));
    all
}
