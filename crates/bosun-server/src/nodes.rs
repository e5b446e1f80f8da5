//! Node operations: registration, health reports, liveness and status changes.
//!
//! Every change reads the node, decides with `bosun_core`'s lifecycle, and commits with the
//! revision it read; a concurrent change makes the commit fail with a conflict and the
//! decision is made again on fresh data ([`edit_node`]). So two reports, a liveness pass
//! and an operator's cordon racing on one node all land, each on the state the previous
//! one left, and none is lost.

use std::sync::Arc;

use bosun_core::node::Gpu;
use bosun_core::{
    Actor, ClassifiedEvent, Health, HealthReport, Instance, InstanceId, InstanceState, InstanceTrigger, Node, NodeId,
    NodeRegistration, NodeStatus, NodeTrigger, ResourceKind, Timestamp, Verdict,
};
use bosun_store::{InstanceFilter, NodeFilter, PageRequest, StoreError, Write, WriteBatch, all_pages};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::remediation;

/// How often a change is recomputed after losing a compare-and-set race before the caller
/// is told to retry.
const ATTEMPTS: usize = 8;

/// What an edit decided.
pub(crate) enum Edit<T> {
    /// Nothing to write.
    Keep(T),
    /// Write the edited node (if it changed) and then `writes`, in one batch.
    Commit { writes: Vec<Write>, value: T },
}

/// Reads node `id`, lets `edit` decide, and commits what it decided with the revision it
/// read, recomputing on conflicts. Returns the node as stored afterwards.
pub(crate) async fn edit_node<T>(
    app: &App,
    id: &NodeId,
    actor: &Actor,
    reason: &str,
    mut edit: impl FnMut(&mut Node) -> ApiResult<Edit<T>>,
) -> ApiResult<(Node, T)> {
    for _ in 0..ATTEMPTS {
        let before = app.store.node(id).await?;
        let mut node = before.clone();
        let (writes, value) = match edit(&mut node)? {
            Edit::Keep(value) => {
                app.fleet.upsert(&before);
                return Ok((before, value));
            }
            Edit::Commit { writes, value } => (writes, value),
        };
        let changed = node != before;
        let mut batch = WriteBatch::new(actor.clone(), reason);
        if changed {
            node.validate()?;
            batch.push(Write::UpdateNode { node: Box::new(node.clone()), expected: before.revision, gpus: None });
        }
        batch.writes.extend(writes);
        if batch.is_empty() {
            return Ok((before, value));
        }
        match app.store.commit(batch).await {
            Ok(committed) => {
                if changed {
                    node.revision = committed.revision(0);
                }
                app.fleet.upsert(&node);
                return Ok((node, value));
            }
            // Another resource in the batch changed: reading the node again cannot help.
            Err(StoreError::Conflict { kind: ResourceKind::Node, .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("node {id} kept changing while this request was applied; retry it")))
}

/// The outcome of a registration.
#[derive(Debug)]
pub(crate) struct Registered {
    pub node: Node,
    pub created: bool,
}

/// Registers a new node, or refreshes a known one's facts keeping its status and health:
/// re-registration never returns an UNHEALTHY machine to service. Links the node's
/// instance (the one named, or the one the store associates with the node id).
/// Whether a registration may refresh a node that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reregistration {
    Allowed,
    /// The caller holds only the shared agent token: it may create nodes, not take over
    /// existing ones.
    Refused,
}

pub(crate) async fn register(
    app: &App,
    registration: &NodeRegistration,
    instance_id: Option<&InstanceId>,
    actor: &Actor,
    existing: Reregistration,
) -> ApiResult<Registered> {
    let id = &registration.node_id;
    for _ in 0..ATTEMPTS {
        let now = app.now();
        let instance = instance_to_link(app, id, instance_id).await?;
        let (batch, node, created) = match app.store.node(id).await {
            Err(StoreError::NotFound { .. }) => {
                let node = Node::register(registration, now).map_err(|e| ApiError::transition(id, e))?;
                let batch =
                    WriteBatch::new(actor.clone(), "registered").create_node(node.clone(), registration.gpus.clone());
                (batch, node, true)
            }
            Err(error) => return Err(error.into()),
            Ok(known) => {
                if existing == Reregistration::Refused {
                    return Err(ApiError::PermissionDenied(format!(
                        "node {id} is already registered; only its own agent may register it again, presenting \
                         the node token it was given (`bosun agent --state-dir` keeps it across restarts), \
                         or delete the node first (`bosun nodes delete {id} --force`)"
                    )));
                }
                if known.status == NodeStatus::Terminated {
                    return Err(ApiError::FailedPrecondition(format!(
                        "node {id} is TERMINATED and cannot register again; give the machine a new node id, \
                         or forget the old one with `bosun nodes delete {id}`"
                    )));
                }
                let mut node = known.clone();
                node.refresh_registration(registration);
                let gpus = app.store.node_gpus(id).await?;
                let mut batch = WriteBatch::new(actor.clone(), "registered again");
                if node != known || !same_inventory(&gpus, &registration.gpus) {
                    batch = batch.refresh_node(node.clone(), registration.gpus.clone());
                }
                (batch, node, false)
            }
        };
        let mut batch = batch;
        if let Some(mut instance) = instance {
            instance.node_id = Some(id.clone());
            instance
                .apply(InstanceTrigger::AgentRegistered, "agent registered", now)
                .map_err(|e| ApiError::transition(&instance.id, e))?;
            batch = batch.update_instance(instance);
        }
        let mut node = node;
        if !batch.is_empty() {
            let refreshes_node =
                matches!(batch.writes.first(), Some(Write::CreateNode { .. } | Write::UpdateNode { .. }));
            match app.store.commit(batch).await {
                Ok(committed) => {
                    if refreshes_node {
                        node.revision = committed.revision(0);
                    }
                }
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { kind: ResourceKind::Node, .. }) => {
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        app.fleet.upsert(&node);
        app.fleet.seen(id, now);
        return Ok(Registered { node, created });
    }
    Err(ApiError::Aborted(format!("node {id} kept changing while it registered; retry")))
}

fn same_inventory(stored: &[Gpu], registered: &[Gpu]) -> bool {
    let mut registered = registered.to_vec();
    registered.sort_by_key(|g| g.index);
    stored == registered.as_slice()
}

/// The instance a registering node brings to RUNNING, if one is waiting for it.
async fn instance_to_link(app: &App, node: &NodeId, named: Option<&InstanceId>) -> ApiResult<Option<Instance>> {
    let instance = match named {
        Some(id) => match app.store.instance(id).await {
            Ok(instance) => Some(instance),
            Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::invalid("instance_id", format_args!("no instance {id} is known")));
            }
            Err(error) => return Err(error.into()),
        },
        None => app.store.instance_for_node(node).await?,
    };
    let Some(instance) = instance else { return Ok(None) };
    if let Some(linked) = &instance.node_id
        && linked != node
    {
        return Err(ApiError::FailedPrecondition(format!("instance {} already belongs to node {linked}", instance.id)));
    }
    let waiting = matches!(instance.state, InstanceState::Provisioning | InstanceState::PendingRegistration);
    Ok(waiting.then_some(instance))
}

/// A classified health report and what it did to its node.
#[derive(Debug)]
pub(crate) struct ReportOutcome {
    pub node: Node,
    pub verdicts: Vec<Verdict>,
}

/// Applies a health report: classifies its events with the active policy, stores it when
/// it says something (events, a problem, or a change of health), updates the node's
/// health, and moves the node to UNHEALTHY when the report is.
pub(crate) async fn report_health(
    app: &App,
    node_id: &NodeId,
    results: Vec<bosun_core::CheckResult>,
    events: Vec<bosun_core::HealthEvent>,
) -> ApiResult<ReportOutcome> {
    let now = app.now();
    let active = app.policies.current();
    let report = app.policies.classify(Arc::clone(&active), node_id.clone(), now, results, events).await?;
    for classified in &report.events {
        let verdict = &classified.verdict;
        app.metrics.policy_evaluation(verdict.rule.as_deref(), verdict.health, verdict.errors.len());
        if let Some(code) = classified.event.xid_code() {
            let known = active.policy.xid_catalog().get(code).is_some();
            app.metrics.xid_event(known.then_some(code), verdict.action);
        }
    }
    let verdicts: Vec<Verdict> = report.events.iter().map(|e| e.verdict.clone()).collect();
    let actor = Actor::Node(node_id.clone());
    let reason = describe_report(&report);
    let demand = remediation::demand(app, node_id, &report, now).await?;
    let ladder_actor = Actor::system("remediation");
    let (node, step) = edit_node(app, node_id, &actor, &reason, |node| {
        if node.status == NodeStatus::Terminated {
            return Ok(Edit::Keep(None));
        }
        // UNHEALTHY is sticky: every report while the node stays UNHEALTHY, even a quiet
        // one (a fatal XID is reported once), counts toward the streak that replacement
        // (`unhealthy_after`) reads. Otherwise only reports that say something are written.
        let stays_unhealthy = node.status == NodeStatus::Unhealthy;
        let says_something = !report.events.is_empty()
            || !matches!(report.health, Health::Healthy | Health::Unknown)
            || report.health != node.health
            || stays_unhealthy;
        if !says_something {
            return Ok(Edit::Keep(None));
        }
        node.health = report.health;
        node.last_health_report = Some(now);
        if report.health == Health::Unhealthy || stays_unhealthy {
            node.unhealthy_streak = node.unhealthy_streak.saturating_add(1);
        } else {
            node.unhealthy_streak = 0;
        }
        if report.health == Health::Unhealthy
            && matches!(node.status, NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining)
        {
            node.apply(NodeTrigger::MarkUnhealthy, &reason, now).map_err(|e| ApiError::transition(node_id, e))?;
        }
        let mut writes = vec![Write::AppendHealthReport(Box::new(report.clone()))];
        let mut step = None;
        if let Some((spec, demand)) = &demand {
            let before = node.remediation.clone();
            let command = remediation::climb(node, spec, demand, now, &ladder_actor)?;
            if node.remediation != before {
                step = node.remediation.as_ref().map(|r| r.step);
            }
            writes.extend(command.map(|c| Write::CreateCommand(Box::new(c))));
        }
        Ok(Edit::Commit { writes, value: step })
    })
    .await?;
    if let Some(step) = step {
        app.metrics.remediation_step(step);
        app.waiters.wake(node_id);
    }
    Ok(ReportOutcome { node, verdicts })
}

/// One line on why a report judged the node as it did, for the status reason and the
/// change log: the first event or check with the report's health.
fn describe_report(report: &HealthReport) -> String {
    let event = report.events.iter().find(|e| e.verdict.health == report.health && e.verdict.rule.is_some());
    let text = match event {
        Some(ClassifiedEvent { event, verdict }) => {
            let gpu = if event.gpu_index < 0 { "node".to_owned() } else { format!("GPU {}", event.gpu_index) };
            let rule = verdict.rule.as_deref().unwrap_or("none");
            format!("health report {}: rule {rule} on {gpu}: {}", report.health, event.message)
        }
        None => match report.results.iter().find(|r| r.status == report.health) {
            Some(check) => format!("health report {}: check {}: {}", report.health, check.name, check.message),
            None => format!("health report {}", report.health),
        },
    };
    truncate(text.trim_end_matches([' ', ':']), 256)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Marks judged nodes silent for longer than the heartbeat timeout UNHEALTHY (reason
/// `heartbeat timeout`). Does nothing while the control plane is blind (after a start or
/// a store outage). Returns the nodes it marked.
pub(crate) async fn judge_liveness(app: &App) -> ApiResult<Vec<NodeId>> {
    let now = app.now();
    // A new leader has not seen heartbeats for long (the other replicas flush theirs to
    // the store): it judges nobody until one heartbeat timeout has passed.
    if app.sight.is_blind(now) || app.newly_elected(app.settings.heartbeat_timeout) {
        return Ok(Vec::new());
    }
    // Other replicas register nodes and flush the heartbeats they hear to the store: with
    // peers, every pass starts from what the store holds.
    if app.has_peers() {
        app.learn_from_peers().await?;
    }
    let cutoff = now - app.settings.heartbeat_timeout;
    let actor = Actor::system("liveness");
    let mut marked = Vec::new();
    for id in app.fleet.silent_since(cutoff) {
        let result = edit_node(app, &id, &actor, "heartbeat timeout", |node| {
            let cached = app.fleet.get(&node.id).map(|v| v.last_seen);
            let seen = node.last_seen().max(cached.unwrap_or(node.last_seen()));
            let judged = matches!(node.status, NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining);
            if !judged || seen >= cutoff || remediation::rebooting(node, now) {
                return Ok(Edit::Keep(false));
            }
            node.apply(NodeTrigger::MarkUnhealthy, "heartbeat timeout", now)
                .map_err(|e| ApiError::transition(&node.id, e))?;
            node.unhealthy_streak = node.unhealthy_streak.saturating_add(1);
            Ok(Edit::Commit { writes: Vec::new(), value: true })
        })
        .await;
        match result {
            Ok((_, true)) => {
                tracing::warn!(node = %id, timeout = ?app.settings.heartbeat_timeout, "node marked UNHEALTHY: heartbeat timeout");
                marked.push(id);
            }
            Ok((_, false)) => {}
            Err(ApiError::Store(StoreError::NotFound { .. })) => app.fleet.remove(&id),
            // The store went away mid-pass: stop; the next pass starts blind anyway.
            Err(error) => return Err(error),
        }
    }
    count_continued_silence(app, cutoff, now).await?;
    Ok(marked)
}

/// Counts each further heartbeat timeout of silence of an UNHEALTHY node in its unhealthy
/// streak: a dead agent sends no reports, and replacement (`unhealthy_after`, default 2)
/// must still fire for it. A node silent for k timeouts has a streak of at least k.
async fn count_continued_silence(app: &App, cutoff: Timestamp, now: Timestamp) -> ApiResult<()> {
    let timeout = app.settings.heartbeat_timeout.as_micros().max(1);
    let actor = Actor::system("liveness");
    for (id, seen) in app.fleet.silent_unhealthy(cutoff) {
        let timeouts = u32::try_from(now.saturating_since(seen).as_micros() / timeout).unwrap_or(u32::MAX);
        let result = edit_node(app, &id, &actor, "still silent", |node| {
            if node.status != NodeStatus::Unhealthy || node.unhealthy_streak >= timeouts || node.last_seen() >= cutoff {
                return Ok(Edit::Keep(()));
            }
            node.unhealthy_streak = timeouts;
            Ok(Edit::Commit { writes: Vec::new(), value: () })
        })
        .await;
        match result {
            Ok(_) => {}
            Err(ApiError::Store(StoreError::NotFound { .. })) => app.fleet.remove(&id),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Forgets a node and its history. Only TERMINATED nodes, unless `force`; never a node
/// whose instance is still live.
pub(crate) async fn delete_node(app: &App, id: &NodeId, force: bool, reason: &str, actor: &Actor) -> ApiResult<()> {
    for _ in 0..ATTEMPTS {
        let node = app.store.node(id).await?;
        if node.status != NodeStatus::Terminated && !force {
            return Err(ApiError::FailedPrecondition(format!(
                "node {id} is {}; only TERMINATED nodes are deleted (terminate it first, or pass force)",
                node.status
            )));
        }
        let batch = WriteBatch::new(actor.clone(), reason);
        let Some(batch) = unlink_instances(app, id, batch).await? else {
            return Err(ApiError::FailedPrecondition(format!(
                "node {id} still runs on a live instance; terminate the instance first"
            )));
        };
        match app.store.commit(batch.delete_node(id.clone(), Some(node.revision))).await {
            Ok(_) => {
                app.fleet.remove(id);
                app.waiters.forget(id);
                return Ok(());
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("node {id} kept changing while it was deleted; retry")))
}

/// Adds to `batch` the unlinking of every finished instance of `node`; `None` when a live
/// instance still belongs to it.
async fn unlink_instances(app: &App, node: &NodeId, mut batch: WriteBatch) -> ApiResult<Option<WriteBatch>> {
    let filter = InstanceFilter { node_id: Some(node.clone()), ..Default::default() };
    let instances = app.store.list_instances(&filter, &PageRequest::first(100)).await?.items;
    for mut instance in instances {
        if !instance.state.is_final() {
            return Ok(None);
        }
        instance.node_id = None;
        batch = batch.update_instance(instance);
    }
    Ok(Some(batch))
}

/// Deletes TERMINATED nodes older than the retention period. Returns how many.
pub(crate) async fn purge_terminated(app: &App) -> ApiResult<usize> {
    let cutoff: Timestamp = app.now() - app.settings.terminated_retention;
    let filter = &NodeFilter { status: Some(NodeStatus::Terminated), ..Default::default() };
    let store = &app.store;
    let terminated = all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?;
    let expired: Vec<NodeId> = terminated.into_iter().filter(|n| n.status_changed_at < cutoff).map(|n| n.id).collect();
    let actor = Actor::system("retention");
    let mut deleted = 0;
    for id in expired {
        match delete_node(app, &id, false, "terminated retention expired", &actor).await {
            Ok(()) => deleted += 1,
            Err(ApiError::Store(StoreError::NotFound { .. })) => {}
            Err(ApiError::FailedPrecondition(why)) => tracing::warn!(node = %id, %why, "terminated node kept"),
            Err(error) => return Err(error),
        }
    }
    Ok(deleted)
}
