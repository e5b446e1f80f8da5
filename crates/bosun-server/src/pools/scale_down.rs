//! Scale-down: victims are drained, then terminated once drained or `drain_timeout`
//! passed.

use std::collections::BTreeMap;

use bosun_core::{Actor, Instance, InstanceTrigger, Node, NodeStatus, NodeTrigger, Pool, Timestamp};
use bosun_store::{CommandFilter, NodeFilter, PageRequest, Write, all_pages};

use super::replacement::finish_terminations;
use super::{ACTOR, PoolsConfig, commit_instance, nodes_in};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, Edit};

/// The status reason of a node drained for a scale-down.
const SCALE_DOWN: &str = "scale-down: ";

/// Moves the pool's scale-down victims on: a node whose drain finished (or ran past
/// `drain_timeout`) is terminated with its instance. Returns the nodes still draining.
pub(super) async fn progress_scale_down(app: &App, pool: &Pool, now: Timestamp) -> ApiResult<Vec<bosun_core::NodeId>> {
    let mut still_draining = Vec::new();
    let actor = Actor::system(ACTOR);
    for node in nodes_in(app, &pool.name, NodeStatus::Draining).await? {
        if !node.status_reason.starts_with(SCALE_DOWN) {
            continue;
        }
        let filter = CommandFilter {
            node_id: Some(node.id.clone()),
            states: vec![bosun_core::CommandState::Succeeded, bosun_core::CommandState::Failed],
            kind: Some(bosun_core::CommandKind::Drain),
        };
        let finished = app
            .store
            .list_commands(&filter, &PageRequest::first(100))
            .await?
            .items
            .iter()
            .any(|c| c.issued_at >= node.status_changed_at);
        let timed_out = now.saturating_since(node.status_changed_at) >= pool.spec.drain_timeout;
        // The agent's acknowledgement says the node drained; a scheduler polled through
        // `drain_status_url` must agree (its workloads may still be moving off).
        let finished = finished && scheduler_drained(app, pool.name.as_str(), &node.id).await;
        if !finished && !timed_out {
            still_draining.push(node.id.clone());
            continue;
        }
        let Some(mut instance) = app.store.instance_for_node(&node.id).await? else { continue };
        let reason = format!("{SCALE_DOWN}{}", if finished { "drained" } else { "drain timed out" });
        instance.apply(InstanceTrigger::Terminate, &reason, now).map_err(|e| ApiError::transition(&instance.id, e))?;
        let expected = instance.revision;
        nodes::edit_node(app, &node.id, &actor, &reason, |n| {
            if n.status != NodeStatus::Draining {
                return Ok(Edit::Keep(()));
            }
            n.apply(NodeTrigger::Drained, &reason, now).map_err(|e| ApiError::transition(&n.id, e))?;
            Ok(Edit::Commit {
                writes: vec![Write::UpdateInstance { instance: Box::new(instance.clone()), expected }],
                value: (),
            })
        })
        .await?;
    }
    Ok(still_draining)
}

/// Whether the scheduler behind the notifier says `node` is drained (yes when none is
/// asked). An unreachable scheduler is a no: the drain then ends at `drain_timeout`.
async fn scheduler_drained(app: &App, pool: &str, node: &bosun_core::NodeId) -> bool {
    match app.notifier.drained(node).await {
        None | Some(Ok(true)) => true,
        Some(Ok(false)) => false,
        Some(Err(error)) => {
            tracing::warn!(pool, node = %node, %error, "cannot ask the scheduler whether the node is drained");
            false
        }
    }
}

/// Starts removing `count` instances: victims UNHEALTHY first, then CORDONED, then the
/// least utilized, then the newest. A victim with a node is drained (terminated by a later
/// pass); one still booting is terminated at once. Returns how many were started.
pub(super) async fn scale_down(
    app: &App,
    config: &PoolsConfig,
    pool: &Pool,
    instances: &[Instance],
    draining: &[bosun_core::NodeId],
    count: u32,
    target: u32,
) -> ApiResult<u32> {
    let now = app.now();
    // The pool's nodes in one read rather than one per victim candidate.
    let filter = &NodeFilter { pool: Some(pool.name.clone()), ..NodeFilter::default() };
    let store = &app.store;
    let mut nodes: BTreeMap<bosun_core::NodeId, Node> =
        all_pages(|page| async move { store.list_nodes(filter, &page).await })
            .await?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
    let mut candidates = Vec::new();
    for instance in instances {
        let node = match &instance.node_id {
            Some(id) if draining.contains(id) => continue,
            Some(id) => nodes.remove(id),
            None => None,
        };
        let rank = match node.as_ref().map(|n| n.status) {
            Some(NodeStatus::Unhealthy) => 0,
            Some(NodeStatus::Cordoned) => 1,
            _ => 2,
        };
        let utilization = node.as_ref().and_then(|n| app.fleet.mean_utilization([&n.id])).unwrap_or(0.0);
        candidates.push((rank, utilization, std::cmp::Reverse(instance.created_at), instance, node));
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let reason = format!("{SCALE_DOWN}pool {} to {target}", pool.name);
    let mut started = 0;
    for (_, _, _, instance, node) in candidates.into_iter().take(count as usize) {
        match node {
            Some(node) if node.status != NodeStatus::Terminating => {
                let request = bosun_core::command::CommandRequest {
                    node_id: node.id.clone(),
                    kind: bosun_core::CommandKind::Drain,
                    parameters: Default::default(),
                    reason: reason.clone(),
                    time_to_live: pool.spec.drain_timeout,
                };
                match crate::commands::issue(app, request, &Actor::system(ACTOR)).await {
                    Ok(_) => started += 1,
                    Err(ApiError::FailedPrecondition(why)) => {
                        tracing::info!(pool = %pool.name, node = %node.id, %why, "scale-down victim skipped");
                    }
                    Err(error) => return Err(error),
                }
            }
            Some(_) => {}
            None => {
                let mut instance = instance.clone();
                instance
                    .apply(InstanceTrigger::Terminate, &reason, now)
                    .map_err(|e| ApiError::transition(&instance.id, e))?;
                commit_instance(app, instance, &reason).await?;
                started += 1;
            }
        }
    }
    finish_terminations(app, config, &pool.name).await?;
    Ok(started)
}
