//! Graded remediation (SPEC 3.2): what the server does about a fault that asks more of a
//! machine than a health verdict.
//!
//! A health report's verdicts carry actions. `restart_app` faults are counted, and the same
//! application XID on one GPU more than `repeat_limit` times within `repeat_window` (read
//! from the node's stored health history, so restarts forget nothing) escalates to
//! `reset_gpu`. `reset_gpu` and `reboot` go to the node's ladder
//! ([`RemediationSpec::decide`]): a step is a command to the agent, recorded on the node
//! with its deadline in the same transaction; a fault recurring within the window climbs a
//! rung; a step that fails or outlives its deadline means replacement. A `replace` step
//! takes the node out of service (UNHEALTHY) and makes it due for its pool's replacement at
//! once. Operators skip rungs with [`remediate`].

use std::collections::BTreeMap;

use bosun_core::command::CommandRequest;
use bosun_core::remediation::{LadderDecision, StepState};
use bosun_core::{
    Actor, Command, CommandId, CommandKind, CommandState, Health, HealthReport, Node, NodeId, NodeStatus, NodeTrigger,
    Remediation, RemediationAction, RemediationSpec, Timestamp,
};
use bosun_store::{StoreError, Write};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, Edit};

/// The prefix of the status reason of a node the ladder (or an operator) takes out of
/// service for replacement.
pub(crate) const REPLACE_REASON: &str = "remediation: replace";

/// Health reports read to count repeated application faults (the store keeps at most 100
/// per node).
const HISTORY_READ: u32 = 100;

/// What a report asks of the machine beyond its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Demand {
    /// `reset_gpu` or `reboot`: `replace` verdicts take the UNHEALTHY path, milder ones
    /// ask nothing of the machine.
    pub action: RemediationAction,
    /// What the step will answer, e.g. `XID 94 on GPU 3`.
    pub fault: String,
    pub gpu: Option<u32>,
}

/// The ladder of `node`: its pool's, or the built-in one.
pub(crate) fn spec_for(app: &App, node: &Node) -> RemediationSpec {
    let pool = node.pool.as_ref().and_then(|name| app.pools.as_ref()?.pools.iter().find(|(n, _)| n == name));
    pool.map_or_else(RemediationSpec::default, |(_, spec)| spec.remediation.clone())
}

/// What `report` asks of `node_id`'s machine: the hardest `reset_gpu` or `reboot` any of
/// its events asks for, or `reset_gpu` for an application XID that has repeated too often
/// on one GPU. Reads the node and its history only when the report holds such events.
pub(crate) async fn demand(
    app: &App,
    node_id: &NodeId,
    report: &HealthReport,
    now: Timestamp,
) -> ApiResult<Option<(RemediationSpec, Demand)>> {
    let Some(strongest) = report.strongest_action() else { return Ok(None) };
    if report.health == Health::Unhealthy || strongest.verdict.action == RemediationAction::Replace {
        // The node leaves service for replacement; the ladder has nothing to add.
        return Ok(None);
    }
    let node = match app.store.node(node_id).await {
        Ok(node) => node,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let spec = spec_for(app, &node);
    if strongest.verdict.action.acts_on_machine() {
        let event = &strongest.event;
        let gpu = u32::try_from(event.gpu_index).ok();
        // A node-level fault cannot be answered by resetting one GPU.
        let action = match (strongest.verdict.action, gpu) {
            (RemediationAction::ResetGpu, None) => RemediationAction::Reboot,
            (action, _) => action,
        };
        return Ok(Some((spec, Demand { action, fault: describe_fault(event), gpu })));
    }
    let repeated = repeated_application_fault(app, node_id, report, &spec, now).await?;
    Ok(repeated.map(|demand| (spec, demand)))
}

/// `XID 94 on GPU 3`, `thermal on node`: the fault a step answers, in a few words.
fn describe_fault(event: &bosun_core::HealthEvent) -> String {
    let on = if event.gpu_index < 0 { "node".to_owned() } else { format!("GPU {}", event.gpu_index) };
    match event.xid_code() {
        Some(code) => format!("XID {code} on {on}"),
        None => format!("{} on {on}", event.event_type),
    }
}

/// The first application XID of `report` seen on its GPU more than `repeat_limit` times
/// within `repeat_window` (this report included), as a `reset_gpu` demand.
async fn repeated_application_fault(
    app: &App,
    node_id: &NodeId,
    report: &HealthReport,
    spec: &RemediationSpec,
    now: Timestamp,
) -> ApiResult<Option<Demand>> {
    let key = |e: &bosun_core::ClassifiedEvent| {
        (e.verdict.action == RemediationAction::RestartApp)
            .then(|| e.event.xid_code().map(|code| (e.event.gpu_index, code)))
            .flatten()
    };
    let mut counts: BTreeMap<(i32, u32), u32> = BTreeMap::new();
    for event in &report.events {
        if let Some(k) = key(event) {
            *counts.entry(k).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return Ok(None);
    }
    let since = now - spec.repeat_window;
    let history = match app.store.health_history(node_id, HISTORY_READ).await {
        Ok(history) => history,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    for stored in history.iter().filter(|s| s.report.received_at >= since) {
        for event in &stored.report.events {
            if let Some(count) = key(event).and_then(|k| counts.get_mut(&k)) {
                *count += 1;
            }
        }
    }
    let Some(((gpu_index, code), count)) = counts.into_iter().find(|(_, count)| *count > spec.repeat_limit) else {
        return Ok(None);
    };
    let window = bosun_config::duration::format(spec.repeat_window);
    let gpu = u32::try_from(gpu_index).ok();
    let on = gpu.map_or_else(|| "node".to_owned(), |g| format!("GPU {g}"));
    Ok(Some(Demand {
        action: if gpu.is_some() { RemediationAction::ResetGpu } else { RemediationAction::Reboot },
        fault: format!("XID {code} on {on} {count} times within {window}"),
        gpu,
    }))
}

/// Whether a node in this status is in service, so that a ladder step may act on it.
fn in_service(status: NodeStatus) -> bool {
    matches!(status, NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining)
}

/// Applies the ladder's decision about `demand` to `node` (inside a node edit): returns
/// the command to create with it, if the step takes one.
pub(crate) fn climb(
    node: &mut Node,
    spec: &RemediationSpec,
    demand: &Demand,
    now: Timestamp,
    actor: &Actor,
) -> ApiResult<Option<Command>> {
    if !in_service(node.status) {
        return Ok(None);
    }
    match spec.decide(node.remediation.as_ref(), demand.action, now) {
        LadderDecision::Wait => Ok(None),
        LadderDecision::Take(step) => take_step(node, spec, step, &demand.fault, demand.gpu, now, actor),
    }
}

/// Starts `step` on `node`: a command for `reset_gpu` and `reboot`, the UNHEALTHY status
/// for `replace`. Returns the command.
fn take_step(
    node: &mut Node,
    spec: &RemediationSpec,
    step: RemediationAction,
    fault: &str,
    gpu: Option<u32>,
    now: Timestamp,
    actor: &Actor,
) -> ApiResult<Option<Command>> {
    let (kind, parameters) = match (step, gpu) {
        (RemediationAction::Replace, _) => {
            mark_for_replacement(node, fault, gpu, now)?;
            return Ok(None);
        }
        (RemediationAction::ResetGpu, Some(gpu)) => {
            (CommandKind::ResetGpu, BTreeMap::from([("gpu".to_owned(), gpu.to_string())]))
        }
        (RemediationAction::ResetGpu, None) => {
            return Err(ApiError::invalid("gpu_index", "reset_gpu needs the GPU to reset"));
        }
        (RemediationAction::Reboot, _) => (CommandKind::Reboot, BTreeMap::new()),
        (other, _) => {
            return Err(ApiError::invalid("action", format_args!("{other} is not a remediation step")));
        }
    };
    let request = CommandRequest {
        node_id: node.id.clone(),
        kind,
        parameters,
        reason: format!("remediation: {step} for {fault}"),
        time_to_live: spec.step_timeout,
    };
    let command = Command::issue(request, actor.clone(), now).map_err(|e| match e {
        bosun_core::command::CommandError::Invalid(e) => ApiError::Invalid(e),
        bosun_core::command::CommandError::Transition(e) => ApiError::transition(&node.id, e),
    })?;
    node.remediation = Some(Remediation::start(step, fault, gpu, Some(command.id), now, spec.step_timeout));
    if node.health == Health::Healthy || node.health == Health::Unknown {
        node.health = Health::Degraded;
    }
    tracing::warn!(node = %node.id, %step, fault, command = %command.id, "remediation step started");
    Ok(Some(command))
}

/// Takes `node` out of service for its pool to replace: UNHEALTHY, with a `replace` step
/// that makes it due for replacement without waiting for more reports.
fn mark_for_replacement(node: &mut Node, fault: &str, gpu: Option<u32>, now: Timestamp) -> ApiResult<()> {
    let reason = format!("{REPLACE_REASON} ({fault})");
    node.remediation = Some(Remediation::start(RemediationAction::Replace, fault, gpu, None, now, Default::default()));
    node.health = Health::Unhealthy;
    if in_service(node.status) {
        node.apply(NodeTrigger::MarkUnhealthy, &reason, now).map_err(|e| ApiError::transition(&node.id, e))?;
    }
    tracing::warn!(node = %node.id, fault, "remediation: node taken out of service for replacement");
    Ok(())
}

/// Whether `node` waits for replacement because the ladder or an operator decided so.
pub(crate) fn marked_for_replacement(node: &Node) -> bool {
    node.remediation.as_ref().is_some_and(|r| r.step == RemediationAction::Replace)
}

/// Whether liveness should leave `node` alone: a reboot it was told to do is under way
/// (until the step's deadline, even after the agent acknowledged starting it).
pub(crate) fn rebooting(node: &Node, now: Timestamp) -> bool {
    node.remediation.as_ref().is_some_and(|r| r.step == RemediationAction::Reboot && now < r.deadline)
}

/// The node write that records how the remediation step carried by `command` ended, when
/// the command just finished: success finishes the step, failure climbs to replacement.
pub(crate) async fn on_command_finished(app: &App, command: &Command) -> ApiResult<Option<Write>> {
    if !matches!(command.kind, CommandKind::ResetGpu | CommandKind::Reboot) || !command.state.is_final() {
        return Ok(None);
    }
    let node = match app.store.node(&command.node_id).await {
        Ok(node) => node,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let carried =
        node.remediation.as_ref().is_some_and(|r| r.command_id == Some(command.id) && r.state == StepState::Running);
    if !carried {
        return Ok(None);
    }
    let expected = node.revision;
    let mut node = node;
    finish_step(&mut node, command.state == CommandState::Succeeded, &command.outcome_message, app.now())?;
    Ok(Some(Write::UpdateNode { node: Box::new(node), expected, gpus: None }))
}

/// Records the end of the node's running step; a failure means replacement.
fn finish_step(node: &mut Node, succeeded: bool, message: &str, now: Timestamp) -> ApiResult<()> {
    let Some(step) = node.remediation.as_mut() else { return Ok(()) };
    step.finish(succeeded, message, now);
    if succeeded {
        tracing::info!(node = %node.id, step = %step.step, "remediation step succeeded");
        return Ok(());
    }
    let fault = format!("{} failed for {}: {message}", step.step, step.fault);
    let gpu = step.gpu_index;
    mark_for_replacement(node, &fault, gpu, now)
}

/// Fails every running step past its deadline (its command expired, was cancelled, or the
/// agent never finished it) and takes its node out of service for replacement. Returns
/// the nodes it escalated.
pub(crate) async fn escalate_overdue(app: &App) -> ApiResult<Vec<NodeId>> {
    let now = app.now();
    let actor = Actor::system("remediation");
    let mut escalated = Vec::new();
    for id in app.fleet.overdue_remediations(now) {
        let result = nodes::edit_node(app, &id, &actor, "remediation step timed out", |node| {
            if !node.remediation.as_ref().is_some_and(|r| r.is_overdue(now)) {
                return Ok(Edit::Keep(false));
            }
            finish_step(node, false, "timed out", now)?;
            Ok(Edit::Commit { writes: Vec::new(), value: true })
        })
        .await;
        match result {
            Ok((_, true)) => escalated.push(id),
            Ok((_, false)) => {}
            Err(ApiError::Store(StoreError::NotFound { .. })) => app.fleet.remove(&id),
            Err(error) => return Err(error),
        }
    }
    Ok(escalated)
}

/// An operator's `bosun nodes remediate NODE --action A`: takes the step now, whatever the
/// ladder would have done. `reset_gpu` needs `gpu`; `replace` also applies to an UNHEALTHY
/// node (it is then replaced without waiting for more reports).
pub(crate) async fn remediate(
    app: &App,
    id: &NodeId,
    action: RemediationAction,
    gpu: Option<u32>,
    reason: &str,
    actor: &Actor,
) -> ApiResult<(Node, Option<CommandId>)> {
    if !action.acts_on_machine() {
        return Err(ApiError::invalid(
            "action",
            format_args!("{action} is not a remediation step; use reset_gpu, reboot or replace"),
        ));
    }
    if action == RemediationAction::ResetGpu && gpu.is_none() {
        return Err(ApiError::invalid("gpu_index", "reset_gpu needs the GPU to reset"));
    }
    let fault =
        if reason.is_empty() { format!("requested by {actor}") } else { format!("requested by {actor}: {reason}") };
    let why = format!("remediation: {action} {fault}");
    let (node, command) = nodes::edit_node(app, id, actor, &why, |node| {
        let replace_unhealthy = action == RemediationAction::Replace && node.status == NodeStatus::Unhealthy;
        if !in_service(node.status) && !replace_unhealthy {
            return Err(ApiError::FailedPrecondition(format!(
                "node {id} is {}; remediation acts on ACTIVE, CORDONED or DRAINING nodes (and replace also on \
                 UNHEALTHY ones)",
                node.status
            )));
        }
        if let Some(gpu) = gpu
            && gpu >= node.gpu_count
        {
            return Err(ApiError::invalid("gpu_index", format_args!("node {id} has {} GPUs", node.gpu_count)));
        }
        let spec = spec_for(app, node);
        let command = take_step(node, &spec, action, &fault, gpu, app.now(), actor)?;
        let writes = command.iter().map(|c| Write::CreateCommand(Box::new(c.clone()))).collect();
        Ok(Edit::Commit { writes, value: command.map(|c| c.id) })
    })
    .await?;
    app.metrics.remediation_step(action);
    if command.is_some() {
        app.waiters.wake(id);
    }
    Ok((node, command))
}
