//! Replacing broken machines within a budget, behind a mass-failure guard (SPEC 3.2).
//!
//! The budget limits what is taken away, never what is added: the reconciler provisions
//! for usable capacity on its own, so UNHEALTHY nodes waiting here never leave the pool
//! short while `max_nodes` allows more machines.

use bosun_core::pool::{PoolCondition, PoolConditionKind};
use bosun_core::{
    Actor, Instance, InstanceState, InstanceTrigger, Node, NodeStatus, NodeTrigger, Pool, PoolName, RunEvent,
    RunEventType, RunKind, RunStatus, RunTarget, TaskRun, Timestamp,
};
use bosun_store::{PageRequest, RunFilter, Write, WriteBatch};

use super::{ACTOR, PoolsConfig, instances_in};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, Edit};
use crate::remediation;

/// The status message of an instance terminated to replace its node; replacements within
/// the window are counted from these, so the budget survives restarts without state.
const REPLACED: &str = "replaced: ";

/// What replacement did in one pass.
#[derive(Debug, Default)]
pub(super) struct Replacements {
    pub replaced: u32,
    /// UNHEALTHY nodes due for replacement whose termination waits (budget or guard).
    pub awaiting: u32,
    /// Why they wait.
    pub held: Option<PoolCondition>,
}

/// Whether `node` is due for replacement: UNHEALTHY for `unhealthy_after` consecutive
/// reports or liveness checks, or taken out of service for replacement by its ladder or an
/// operator.
fn due(pool: &Pool, node: &Node) -> bool {
    node.status == NodeStatus::Unhealthy
        && (node.unhealthy_streak >= pool.spec.health.unhealthy_after || remediation::marked_for_replacement(node))
}

/// Replaces the pool's nodes that are due, at most as many per `replacement_window` as
/// `max_unhealthy_replacement_fraction` of the pool allows (at least one), and none while
/// the mass-failure `guard` holds: a correlated failure must not wipe the pool.
pub(super) async fn replace_unhealthy(
    app: &App,
    config: &PoolsConfig,
    pool: &Pool,
    members: &[Node],
    live: usize,
    guard: Option<&PoolCondition>,
    now: Timestamp,
) -> ApiResult<Replacements> {
    if !pool.spec.health.auto_replace {
        return Ok(Replacements::default());
    }
    let due: Vec<&Node> = members.iter().filter(|n| due(pool, n)).collect();
    if due.is_empty() {
        return Ok(Replacements::default());
    }
    if let Some(guard) = guard {
        let awaiting = u32::try_from(due.len()).unwrap_or(u32::MAX);
        return Ok(Replacements { replaced: 0, awaiting, held: Some(guard.clone()) });
    }
    let window_start = now - pool.spec.replacement_window;
    let recent = instances_in(app, &pool.name, vec![InstanceState::Terminating, InstanceState::Terminated])
        .await?
        .iter()
        .filter(|i| i.status_message.starts_with(REPLACED) && i.state_changed_at >= window_start)
        .count();
    let size = live.max(pool.spec.min_nodes as usize);
    let budget = ((pool.spec.max_unhealthy_replacement_fraction * size as f64).floor() as usize).max(1);
    let allowed = budget.saturating_sub(recent);
    let mut replaced = 0u32;
    for node in due.iter().take(allowed) {
        if replace(app, config, pool, node, now).await? {
            replaced += 1;
        }
    }
    let held = due.len().saturating_sub(allowed);
    let condition = (held > 0).then(|| PoolCondition {
        kind: PoolConditionKind::AwaitingReplacement,
        message: format!(
            "replacement budget reached: {} of {budget} replacements in the last {} ({} of {size} nodes); \
             {held} UNHEALTHY node(s) wait for an operator or the next window",
            recent + replaced as usize,
            bosun_config::duration::format(pool.spec.replacement_window),
            pool.spec.max_unhealthy_replacement_fraction,
        ),
        since: previous_since(pool, PoolConditionKind::AwaitingReplacement).unwrap_or(now),
    });
    Ok(Replacements { replaced, awaiting: u32::try_from(held).unwrap_or(u32::MAX), held: condition })
}

/// When the pool's last decision first raised `kind`, if it holds it.
fn previous_since(pool: &Pool, kind: PoolConditionKind) -> Option<Timestamp> {
    let last = pool.status.last_decision.as_ref()?;
    last.conditions.iter().find(|c| c.kind == kind).map(|c| c.since)
}

/// The mass-failure guard: more than `mass_failure_fraction` of the pool (its target size)
/// turned UNHEALTHY within one `replacement_window` (and at least two nodes: one failure
/// is never a mass failure). Once raised, the guard holds until no more than that fraction
/// of the pool is UNHEALTHY (an operator acted, nodes recovered, or lost machines were
/// written off), however long ago they failed. `members` are the pool's nodes that are
/// not leaving.
pub(super) fn mass_failure(pool: &Pool, members: &[Node], now: Timestamp) -> Option<PoolCondition> {
    let spec = &pool.spec;
    let last_target = pool.status.last_decision.as_ref().map_or(0, |d| d.target);
    let size = match last_target.max(spec.min_nodes) {
        0 => members.len(),
        size => size as usize,
    };
    let threshold = spec.mass_failure_fraction * size as f64;
    let unhealthy = members.iter().filter(|n| n.status == NodeStatus::Unhealthy).count();
    let window_start = now - spec.replacement_window;
    let recent =
        members.iter().filter(|n| n.status == NodeStatus::Unhealthy && n.status_changed_at >= window_start).count();
    let previous = previous_since(pool, PoolConditionKind::MassFailure);
    let engaged = match previous {
        Some(_) => unhealthy as f64 > threshold,
        None => recent >= 2 && recent as f64 > threshold,
    };
    if !engaged {
        return None;
    }
    let window = bosun_config::duration::format(spec.replacement_window);
    Some(PoolCondition {
        kind: PoolConditionKind::MassFailure,
        message: format!(
            "mass failure: {unhealthy} of {size} nodes are UNHEALTHY ({recent} turned so within {window}; the guard \
             trips above {}): no machine is terminated, provisioning continues up to max_nodes. A bad policy or a \
             shared cause is likelier than that many broken machines: check `bosun health history` and the \
             policy, then terminate or uncordon the nodes; the guard lifts at {} UNHEALTHY or fewer",
            spec.mass_failure_fraction,
            threshold.floor(),
        ),
        since: previous.unwrap_or(now),
    })
}

/// Starts replacing `node`: the node and its instance become TERMINATING in one batch, then
/// the machine is terminated ([`finish_terminations`]). `false` when the node has no
/// instance bosun manages.
async fn replace(app: &App, config: &PoolsConfig, pool: &Pool, node: &Node, now: Timestamp) -> ApiResult<bool> {
    let Some(mut instance) = app.store.instance_for_node(&node.id).await? else {
        tracing::warn!(pool = %pool.name, node = %node.id, "UNHEALTHY node has no instance bosun manages; not replaced");
        return Ok(false);
    };
    let reason = if remediation::marked_for_replacement(node) {
        format!("{REPLACED}node {}: {}", node.id, node.status_reason)
    } else {
        format!("{REPLACED}node {} UNHEALTHY for {} reports: {}", node.id, node.unhealthy_streak, node.status_reason)
    };
    instance.apply(InstanceTrigger::Terminate, &reason, now).map_err(|e| ApiError::transition(&instance.id, e))?;
    let expected = instance.revision;
    let actor = Actor::system(ACTOR);
    let run = replacement_run(pool, node, &instance, &reason, &actor, now);
    let (_, started) = nodes::edit_node(app, &node.id, &actor, &reason, |n| {
        if n.status != NodeStatus::Unhealthy {
            // An operator acted on it meanwhile: leave it to them.
            return Ok(Edit::Keep(false));
        }
        n.apply(NodeTrigger::Terminate, &reason, now).map_err(|e| ApiError::transition(&n.id, e))?;
        let event = RunEvent::new(
            run.id,
            RunEventType::StepStarted,
            format!("node {} taken out of service; terminating its machine {}", node.id, instance.id),
        )
        .at_step(0)
        .on(RunTarget::Node(node.id.clone()));
        Ok(Edit::Commit {
            writes: vec![
                Write::UpdateInstance { instance: Box::new(instance.clone()), expected },
                Write::CreateRun(Box::new(run.clone())),
                Write::AppendRunEvent(Box::new(event)),
            ],
            value: true,
        })
    })
    .await?;
    if started {
        tracing::warn!(pool = %pool.name, node = %node.id, instance = %instance.id, "replacing an UNHEALTHY node");
        finish_terminations(app, config, &pool.name).await?;
    }
    Ok(started)
}

/// The ledger's record of one replacement: a run that starts with the node taken out of
/// service and ends when its machine is terminated (the pool provisions the new machine to
/// keep its size). What judged the node is its input.
fn replacement_run(
    pool: &Pool,
    node: &Node,
    instance: &Instance,
    reason: &str,
    actor: &Actor,
    now: Timestamp,
) -> TaskRun {
    let targets = vec![
        RunTarget::Node(node.id.clone()),
        RunTarget::Instance(instance.id.clone()),
        RunTarget::Pool(pool.name.clone()),
    ];
    let mut run = TaskRun::new(RunKind::Replacement, RunStatus::Running, actor.clone(), targets, now);
    run.input = serde_json::json!({
        "reason": reason,
        "node_status_reason": node.status_reason,
        "unhealthy_streak": node.unhealthy_streak,
        "health": node.health.as_str(),
        "remediation": node.remediation,
    });
    run
}

/// The writes that finish the run waiting for `instance`'s machine to be terminated (a
/// replacement or a drift repair), if there is one: its last event and its success.
async fn finish_replacement_run(app: &App, instance: &Instance, now: Timestamp) -> ApiResult<Vec<Write>> {
    let filter = RunFilter { status: Some(RunStatus::Running), kind: None, target: Some(instance.id.to_string()) };
    let waiting = app.store.list_runs(&filter, &PageRequest::first(10)).await?.items;
    let Some(mut run) = waiting.into_iter().find(|r| matches!(r.kind, RunKind::Replacement | RunKind::DriftRepair))
    else {
        return Ok(Vec::new());
    };
    let event = RunEvent::new(
        run.id,
        RunEventType::StepFinished,
        format!("machine {} terminated by provider {}", instance.id, instance.provider),
    )
    .at_step(0)
    .on(RunTarget::Instance(instance.id.clone()));
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(now);
    run.result = Some(serde_json::json!({
        "terminated_instance": instance.id,
        "provider_instance_id": instance.provider_instance_id,
    }));
    let expected = run.revision;
    Ok(vec![Write::AppendRunEvent(Box::new(event)), Write::UpdateRun { run: Box::new(run), expected }])
}

/// Terminates through their provider the pool's machines whose instance is TERMINATING
/// (a replacement, or a termination a crash interrupted) and records them, and their
/// nodes, as TERMINATED. A provider that fails is tried again next pass.
pub(super) async fn finish_terminations(app: &App, config: &PoolsConfig, pool: &PoolName) -> ApiResult<()> {
    let actor = Actor::system(ACTOR);
    for mut instance in instances_in(app, pool, vec![InstanceState::Terminating]).await? {
        let Some(provider) = config.providers.get(&instance.provider) else {
            tracing::warn!(%pool, instance = %instance.id, provider = %instance.provider,
                "cannot terminate: the provider is not configured");
            continue;
        };
        if let Some(machine) = &instance.provider_instance_id
            && let Err(error) = provider.terminate(machine).await
        {
            tracing::warn!(%pool, instance = %instance.id, %error, "terminating the machine failed; retrying next pass");
            continue;
        }
        let now = app.now();
        let reason = instance.status_message.clone();
        instance.apply(InstanceTrigger::Gone, &reason, now).map_err(|e| ApiError::transition(&instance.id, e))?;
        let mut writes =
            vec![Write::UpdateInstance { instance: Box::new(instance.clone()), expected: instance.revision }];
        writes.extend(finish_replacement_run(app, &instance, now).await?);
        match &instance.node_id {
            Some(node) => {
                nodes::edit_node(app, node, &actor, &reason, |n| {
                    if n.status == NodeStatus::Terminating {
                        n.apply(NodeTrigger::TerminationConfirmed, &reason, now)
                            .map_err(|e| ApiError::transition(&n.id, e))?;
                    }
                    Ok(Edit::Commit { writes: writes.clone(), value: () })
                })
                .await?;
            }
            None => {
                let mut batch = WriteBatch::new(actor.clone(), reason);
                for write in writes {
                    batch.push(write);
                }
                app.store.commit(batch).await?;
            }
        }
    }
    Ok(())
}
