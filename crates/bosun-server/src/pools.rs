//! Pools: keeping each pool at the size its spec and autoscaler ask for (SPEC 3.6).
//!
//! This is the first slice of the reconciler: pool specs are synced into the store, the
//! target comes from `bosun_core::autoscale::plan`, and missing instances are provisioned
//! through the providers `bosun_core::selection` picks, with per-provider backoff. Each
//! instance is recorded (PROVISIONING) *before* its provider is called, so a server that
//! dies mid-call finds the record on restart instead of provisioning the machine twice.
//! Unhealthy nodes are replaced within a budget (SPEC 3.2). Scale-down drains its victims
//! (UNHEALTHY first, then CORDONED, then least utilized, then newest) and terminates each
//! once its drain finished or `drain_timeout` passed.

use std::collections::BTreeMap;
use std::sync::Arc;

use bosun_core::autoscale::{self, Autoscaler, NodeBounds, ScaleInput};
use bosun_core::instance::InstanceRequest;
use bosun_core::pool::SelectionStrategy;
use bosun_core::pool::{ProviderBackoff, ScalingDecision};
use bosun_core::selection::{self, Candidate, Offer};
use bosun_core::{
    Actor, Instance, InstanceId, InstanceState, InstanceTrigger, Node, NodeStatus, NodeTrigger, Pool, PoolName,
    PoolSpec, Timestamp,
};
use bosun_provider::{Bootstrap, Provider, ProvisionRequest, resolve_instance_type};
use bosun_store::{CommandFilter, InstanceFilter, NodeFilter, PageRequest, StoreError, Write, WriteBatch, all_pages};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, Edit};

/// Who decides: one replica acts on providers at a time. A single process is always the
/// leader; multi-replica election plugs in here without touching the reconciler.
pub trait Leadership: Send + Sync + std::fmt::Debug {
    fn is_leader(&self) -> bool;
}

/// The single-process leadership: always the leader.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLeader;

impl Leadership for AlwaysLeader {
    fn is_leader(&self) -> bool {
        true
    }
}

/// What autoscalers read besides the store, kept in memory (soft state): the latest demand
/// each pool's scheduler reported (they report again every interval) and each pool's
/// utilization samples, one per reconcile, for the predictive autoscaler (a restart
/// starts a new history, which the predictive autoscaler treats as too little data).
#[derive(Debug, Default)]
pub(crate) struct DemandBoard {
    latest: std::sync::Mutex<BTreeMap<PoolName, autoscale::Demand>>,
    history: std::sync::Mutex<BTreeMap<PoolName, std::collections::VecDeque<autoscale::PoolSample>>>,
}

/// Utilization samples kept per pool.
const HISTORY: usize = 100;

impl DemandBoard {
    /// Appends one utilization sample and returns the pool's history, oldest first.
    pub(crate) fn sample(
        &self,
        pool: &PoolName,
        at: Timestamp,
        utilization: Option<f64>,
    ) -> Vec<autoscale::PoolSample> {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let samples = history.entry(pool.clone()).or_default();
        if let Some(utilization) = utilization.filter(|u| u.is_finite()) {
            samples.push_back(autoscale::PoolSample { at, utilization });
            while samples.len() > HISTORY {
                samples.pop_front();
            }
        }
        samples.iter().copied().collect()
    }

    pub(crate) fn report(&self, pool: PoolName, demand: autoscale::Demand) {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).insert(pool, demand);
    }

    /// The latest report, unless it is older than `max_age` (a scheduler that stopped
    /// reporting must not pin the pool's size).
    pub(crate) fn current(
        &self,
        pool: &PoolName,
        now: Timestamp,
        max_age: std::time::Duration,
    ) -> Option<autoscale::Demand> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.get(pool).copied().filter(|d| now.saturating_since(d.reported_at) <= max_age)
    }
}

/// The pools a server manages and the providers they provision from.
#[derive(Debug, Clone)]
pub struct PoolsConfig {
    pub pools: Vec<(PoolName, PoolSpec)>,
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
    /// What new machines' agents are told: the server URL and their registration token.
    pub bootstrap: Bootstrap,
    pub leadership: Arc<dyn Leadership>,
}

const ACTOR: &str = "pool-reconciler";
/// Instances one reconciliation provisions per pool at most: a pool far below its target
/// grows over a few passes rather than in one burst against the provider.
const MAX_PROVISION_PER_PASS: u32 = 50;

/// Stores each configured pool's spec, keeping the status of pools that already exist.
pub(crate) async fn sync_specs(app: &App, config: &PoolsConfig) -> Result<(), StoreError> {
    for (name, spec) in &config.pools {
        let actor = Actor::system(ACTOR);
        match app.store.pool(name).await {
            Err(StoreError::NotFound { .. }) => {
                let batch =
                    WriteBatch::new(actor, "pool configured").create_pool(Pool::new(name.clone(), spec.clone()));
                app.store.commit(batch).await?;
            }
            Ok(mut pool) if &pool.spec != spec => {
                pool.spec = spec.clone();
                app.store.commit(WriteBatch::new(actor, "pool configuration changed").update_pool(pool)).await?;
            }
            Ok(_) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Reconciles every pool once. Does nothing unless this replica leads.
pub(crate) async fn reconcile_all(app: &App) -> ApiResult<()> {
    let Some(config) = &app.pools else { return Ok(()) };
    if !config.leadership.is_leader() {
        return Ok(());
    }
    // One pool's failure does not stop the others; the first is reported.
    let mut first_error = None;
    for (name, _) in &config.pools {
        if let Err(error) = reconcile(app, config, name).await {
            tracing::warn!(pool = %name, %error, "pool reconciliation failed; retrying next interval");
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn live_instances(app: &App, pool: &PoolName) -> ApiResult<Vec<Instance>> {
    instances_in(
        app,
        pool,
        vec![InstanceState::Provisioning, InstanceState::PendingRegistration, InstanceState::Running],
    )
    .await
}

async fn instances_in(app: &App, pool: &PoolName, states: Vec<InstanceState>) -> ApiResult<Vec<Instance>> {
    let filter = &InstanceFilter { states, pool: Some(pool.clone()), ..InstanceFilter::default() };
    let store = &app.store;
    Ok(all_pages(|page| async move { store.list_instances(filter, &page).await }).await?)
}

async fn nodes_in(app: &App, pool: &PoolName, status: NodeStatus) -> ApiResult<Vec<Node>> {
    let filter = &NodeFilter { status: Some(status), pool: Some(pool.clone()), ..NodeFilter::default() };
    let store = &app.store;
    Ok(all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?)
}

/// The status message of an instance terminated to replace its node; replacements within
/// the window are counted from these, so the budget survives restarts without state.
const REPLACED: &str = "replaced: ";

/// Replaces the pool's nodes that have been UNHEALTHY for `unhealthy_after` consecutive
/// reports or liveness checks, at most as many per `replacement_window` as
/// `max_unhealthy_replacement_fraction` of the pool allows (at least one): a correlated
/// failure must not wipe the pool. Returns how many were replaced and, when the budget
/// held some back, why.
async fn replace_unhealthy(
    app: &App,
    config: &PoolsConfig,
    pool: &Pool,
    live: usize,
    now: Timestamp,
) -> ApiResult<(u32, Option<String>)> {
    let health = &pool.spec.health;
    if !health.auto_replace {
        return Ok((0, None));
    }
    let due: Vec<Node> = nodes_in(app, &pool.name, NodeStatus::Unhealthy)
        .await?
        .into_iter()
        .filter(|n| n.unhealthy_streak >= health.unhealthy_after)
        .collect();
    if due.is_empty() {
        return Ok((0, None));
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
    let note = (held > 0).then(|| {
        format!(
            "replacement budget reached: {} of {budget} replacements in the last {} ({} of {size} nodes); \
             {held} UNHEALTHY node(s) wait for an operator or the next window",
            recent + replaced as usize,
            bosun_config::duration::format(pool.spec.replacement_window),
            pool.spec.max_unhealthy_replacement_fraction,
        )
    });
    Ok((replaced, note))
}

/// Starts replacing `node`: the node and its instance become TERMINATING in one batch, then
/// the machine is terminated ([`finish_terminations`]). `false` when the node has no
/// instance bosun manages.
async fn replace(app: &App, config: &PoolsConfig, pool: &Pool, node: &Node, now: Timestamp) -> ApiResult<bool> {
    let Some(mut instance) = app.store.instance_for_node(&node.id).await? else {
        tracing::warn!(pool = %pool.name, node = %node.id, "UNHEALTHY node has no instance bosun manages; not replaced");
        return Ok(false);
    };
    let reason =
        format!("{REPLACED}node {} UNHEALTHY for {} reports: {}", node.id, node.unhealthy_streak, node.status_reason);
    instance.apply(InstanceTrigger::Terminate, &reason, now).map_err(|e| ApiError::transition(&instance.id, e))?;
    let expected = instance.revision;
    let actor = Actor::system(ACTOR);
    let (_, started) = nodes::edit_node(app, &node.id, &actor, &reason, |n| {
        if n.status != NodeStatus::Unhealthy {
            // An operator acted on it meanwhile: leave it to them.
            return Ok(Edit::Keep(false));
        }
        n.apply(NodeTrigger::Terminate, &reason, now).map_err(|e| ApiError::transition(&n.id, e))?;
        Ok(Edit::Commit {
            writes: vec![Write::UpdateInstance { instance: Box::new(instance.clone()), expected }],
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

/// Terminates through their provider the pool's machines whose instance is TERMINATING
/// (a replacement, or a termination a crash interrupted) and records them, and their
/// nodes, as TERMINATED. A provider that fails is tried again next pass.
async fn finish_terminations(app: &App, config: &PoolsConfig, pool: &PoolName) -> ApiResult<()> {
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
        let write = Write::UpdateInstance { instance: Box::new(instance.clone()), expected: instance.revision };
        match &instance.node_id {
            Some(node) => {
                nodes::edit_node(app, node, &actor, &reason, |n| {
                    if n.status == NodeStatus::Terminating {
                        n.apply(NodeTrigger::TerminationConfirmed, &reason, now)
                            .map_err(|e| ApiError::transition(&n.id, e))?;
                    }
                    Ok(Edit::Commit { writes: vec![write.clone()], value: () })
                })
                .await?;
            }
            None => {
                let mut batch = WriteBatch::new(actor.clone(), reason);
                batch.push(write);
                app.store.commit(batch).await?;
            }
        }
    }
    Ok(())
}

/// Repairs drift between the pool's instances and what their providers report: an
/// instance recorded PROVISIONING whose provider call never returned (the server died
/// mid-call) is adopted when the provider lists a machine tagged with its id; a FAILED
/// instance whose machine exists is terminated, so no VM bills unseen.
async fn repair_drift(app: &App, config: &PoolsConfig, pool: &PoolName) -> ApiResult<()> {
    let unsure = instances_in(app, pool, vec![InstanceState::Provisioning, InstanceState::Failed]).await?;
    let unsure: Vec<Instance> =
        unsure.into_iter().filter(|i| i.state == InstanceState::Failed || i.provider_instance_id.is_none()).collect();
    if unsure.is_empty() {
        return Ok(());
    }
    let mut listings: BTreeMap<String, Vec<bosun_provider::ProviderInstance>> = BTreeMap::new();
    for mut instance in unsure {
        let Some(provider) = config.providers.get(&instance.provider) else { continue };
        if !listings.contains_key(&instance.provider) {
            match provider.list().await {
                Ok(listed) => {
                    listings.insert(instance.provider.clone(), listed);
                }
                Err(error) => {
                    tracing::warn!(%pool, provider = %instance.provider, %error, "cannot list the provider's machines; retrying next pass");
                    continue;
                }
            }
        }
        let machine = listings.get(&instance.provider).and_then(|listed| {
            listed.iter().find(|m| {
                m.instance_id.as_ref() == Some(&instance.id)
                    && m.state != bosun_provider::ProviderInstanceState::Terminated
            })
        });
        let now = app.now();
        let Some(machine) = machine else {
            // No machine: a FAILED instance is over once the provider has had ample time to
            // list a machine a lost call may still have created.
            let settled = now.saturating_since(instance.state_changed_at) > app.settings.instance_registration_timeout;
            if instance.state == InstanceState::Failed && settled {
                let reason = format!("no machine at the provider: {}", instance.status_message);
                instance
                    .apply(InstanceTrigger::Terminate, &reason, now)
                    .map_err(|e| ApiError::transition(&instance.id, e))?;
                instance
                    .apply(InstanceTrigger::Gone, &reason, now)
                    .map_err(|e| ApiError::transition(&instance.id, e))?;
                commit_instance(app, instance, "failed instance has no machine").await?;
            }
            continue;
        };
        if instance.state == InstanceState::Provisioning {
            instance.provider_instance_id = Some(machine.provider_instance_id.clone());
            instance
                .apply(InstanceTrigger::Provisioned, "adopted: the provider has its machine", now)
                .map_err(|e| ApiError::transition(&instance.id, e))?;
            tracing::info!(%pool, instance = %instance.id, machine = %machine.provider_instance_id,
                "adopted a machine whose provisioning call did not return");
            commit_instance(app, instance, "adopted").await?;
        } else {
            // FAILED, yet the machine exists: terminate it (finished by finish_terminations).
            instance.provider_instance_id.get_or_insert_with(|| machine.provider_instance_id.clone());
            let reason = format!("terminating the machine of a failed instance: {}", instance.status_message);
            instance
                .apply(InstanceTrigger::Terminate, &reason, now)
                .map_err(|e| ApiError::transition(&instance.id, e))?;
            commit_instance(app, instance, "terminating a failed instance's machine").await?;
        }
    }
    Ok(())
}

/// Terminates through their provider the machines of the pool's nodes an operator (or a
/// TERMINATE command) put in TERMINATING: the node's status says it is going, the machine
/// must follow. [`finish_terminations`] then records both as TERMINATED.
async fn follow_terminating_nodes(app: &App, pool: &PoolName) -> ApiResult<()> {
    for node in nodes_in(app, pool, NodeStatus::Terminating).await? {
        let Some(mut instance) = app.store.instance_for_node(&node.id).await? else { continue };
        if instance.state.is_final() || instance.state == InstanceState::Terminating {
            continue;
        }
        let reason = format!("node {} is TERMINATING: {}", node.id, node.status_reason);
        instance
            .apply(InstanceTrigger::Terminate, &reason, app.now())
            .map_err(|e| ApiError::transition(&instance.id, e))?;
        commit_instance(app, instance, &reason).await?;
    }
    Ok(())
}

/// The status reason of a node drained for a scale-down.
const SCALE_DOWN: &str = "scale-down: ";

/// Moves the pool's scale-down victims on: a node whose drain finished (or ran past
/// `drain_timeout`) is terminated with its instance. Returns the nodes still draining.
async fn progress_scale_down(app: &App, pool: &Pool, now: Timestamp) -> ApiResult<Vec<bosun_core::NodeId>> {
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

/// Starts removing `count` instances: victims UNHEALTHY first, then CORDONED, then the
/// least utilized, then the newest. A victim with a node is drained (terminated by a later
/// pass); one still booting is terminated at once. Returns how many were started.
async fn scale_down(
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

/// One pass over one pool: decide the target, provision what is missing, store the
/// decision.
pub(crate) async fn reconcile(app: &App, config: &PoolsConfig, name: &PoolName) -> ApiResult<ScalingDecision> {
    reconcile_to(app, config, name, None).await
}

/// An operator's `pools scale NAME N`: moves the pool to `target` now (within its bounds).
/// The scale time is stored, so an autoscaler takes over again only after the cooldown.
pub(crate) async fn scale(app: &App, name: &PoolName, target: u32, actor: &Actor) -> ApiResult<ScalingDecision> {
    let Some(config) = &app.pools else {
        return Err(ApiError::FailedPrecondition(
            "this server manages no pools (configure pools and providers)".into(),
        ));
    };
    if !config.pools.iter().any(|(n, _)| n == name) {
        return Err(ApiError::NotFound(format!("pool {name} is not managed by this server")));
    }
    if !config.leadership.is_leader() {
        return Err(ApiError::FailedPrecondition("this replica does not lead; send the request to the leader".into()));
    }
    let pool = app.store.pool(name).await?;
    if target < pool.spec.min_nodes || target > pool.spec.max_nodes {
        return Err(ApiError::invalid(
            "target",
            format_args!("{target} is outside the pool's {}..={} nodes", pool.spec.min_nodes, pool.spec.max_nodes),
        ));
    }
    tracing::info!(pool = %name, target, %actor, "pool scaled by an operator");
    reconcile_to(app, config, name, Some((target, actor.clone()))).await
}

async fn reconcile_to(
    app: &App,
    config: &PoolsConfig,
    name: &PoolName,
    requested: Option<(u32, Actor)>,
) -> ApiResult<ScalingDecision> {
    let _one_pass_at_a_time = app.pool_pass.lock().await;
    let now = app.now();
    let mut pool = app.store.pool(name).await?;
    repair_drift(app, config, name).await?;
    let draining = progress_scale_down(app, &pool, now).await?;
    follow_terminating_nodes(app, name).await?;
    finish_terminations(app, config, name).await?;
    let before = live_instances(app, name).await?.len();
    let (replaced, budget_note) = replace_unhealthy(app, config, &pool, before, now).await?;
    let instances = live_instances(app, name).await?;
    // Machines being drained away are already on their way out.
    let leaving = instances.iter().filter(|i| i.node_id.as_ref().is_some_and(|n| draining.contains(n))).count();
    let current = u32::try_from(instances.len() - leaving).unwrap_or(u32::MAX);
    let booting = instances.iter().filter(|i| i.state != InstanceState::Running).count();
    let active = nodes_in(app, name, NodeStatus::Active).await?;
    let healthy = u32::try_from(active.len()).unwrap_or(u32::MAX);
    let utilization = app.fleet.mean_utilization(active.iter().map(|n| &n.id));
    let history = app.demand.sample(name, now, utilization);
    let spec = &pool.spec;
    let bounds = NodeBounds::new(spec.min_nodes, spec.max_nodes)?;
    let offset = utc_offset(&spec.timezone, now)?;
    let autoscaler = spec.autoscaling.as_ref().map(|a| Autoscaler::from_spec(a, offset)).transpose()?;
    let input = ScaleInput {
        now,
        current,
        booting: u32::try_from(booting).unwrap_or(u32::MAX),
        healthy,
        bounds,
        mean_gpu_utilization: utilization,
        demand: app.demand.current(name, now, app.settings.autoscale_interval * 5),
        history: &history,
    };
    let plan = match &requested {
        Some((target, actor)) => {
            autoscale::Decision { target: *target, reason: format!("scaled by {actor}: {current} -> {target}") }
        }
        None => autoscale::plan(autoscaler.as_ref(), &input, spec.cooldown, pool.status.last_scale_at),
    };
    let mut provisioned = 0u32;
    let mut failures = Vec::new();
    if plan.target > current {
        let mut live_per_provider: BTreeMap<String, u32> = BTreeMap::new();
        for instance in &instances {
            *live_per_provider.entry(instance.provider.clone()).or_default() += 1;
        }
        for _ in 0..(plan.target - current).min(MAX_PROVISION_PER_PASS) {
            match provision_one(app, config, &mut pool, &mut live_per_provider, now).await? {
                Ok(provider) => {
                    provisioned += 1;
                    *live_per_provider.entry(provider).or_default() += 1;
                }
                Err(why) => {
                    failures.push(why);
                    break;
                }
            }
        }
    }
    let mut removing = 0u32;
    if plan.target < current {
        removing = scale_down(app, config, &pool, &instances, &draining, current - plan.target, plan.target).await?;
    }
    let mut reason = plan.reason.clone();
    if removing > 0 {
        reason.push_str(&format!("; draining {removing} for removal"));
    }
    if replaced > 0 {
        reason.push_str(&format!("; replaced {replaced} UNHEALTHY node(s)"));
    }
    if let Some(note) = &budget_note {
        reason.push_str(&format!("; {note}"));
    }
    if provisioned > 0 {
        reason.push_str(&format!("; provisioned {provisioned}"));
    }
    if let Some(why) = failures.first() {
        reason.push_str(&format!("; could not provision: {why}"));
    }
    let inputs = BTreeMap::from([
        ("current".to_owned(), current.to_string()),
        ("booting".to_owned(), booting.to_string()),
        ("leaving".to_owned(), leaving.to_string()),
        ("healthy".to_owned(), healthy.to_string()),
        ("mean_gpu_utilization".to_owned(), utilization.map_or_else(|| "unknown".to_owned(), |u| format!("{u:.1}"))),
        ("min_nodes".to_owned(), pool.spec.min_nodes.to_string()),
        ("max_nodes".to_owned(), pool.spec.max_nodes.to_string()),
    ]);
    let decision = ScalingDecision { at: now, current, target: plan.target, reason, inputs };
    let changed = pool.status.last_decision.as_ref().is_none_or(|last| {
        (last.current, last.target, &last.reason) != (decision.current, decision.target, &decision.reason)
    });
    if provisioned > 0 || removing > 0 {
        pool.status.last_scale_at = Some(now);
    }
    if changed || provisioned > 0 || removing > 0 {
        pool.status.last_decision = Some(decision.clone());
        let why = decision.reason.clone();
        match app.store.commit(WriteBatch::new(Actor::system(ACTOR), why).update_pool(pool)).await {
            // Another writer (an operator's scale, another pass) got there first: the next
            // pass recomputes from what it wrote.
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(decision)
}

/// Provisions one instance from the best provider that accepts it, recording failures as
/// backoff on the pool. `Ok(Err(why))` when no provider could.
async fn provision_one(
    app: &App,
    config: &PoolsConfig,
    pool: &mut Pool,
    live_per_provider: &mut BTreeMap<String, u32>,
    now: Timestamp,
) -> ApiResult<Result<String, String>> {
    let mut offers = BTreeMap::new();
    if matches!(pool.spec.strategy, SelectionStrategy::Availability | SelectionStrategy::Cost) {
        for entry in &pool.spec.providers {
            if let Some(provider) = config.providers.get(&entry.name) {
                offers.insert(entry.name.clone(), offer(provider.as_ref(), &pool.spec, entry).await);
            }
        }
    }
    let candidates: Vec<Candidate<'_>> = pool
        .spec
        .providers
        .iter()
        .map(|p| Candidate {
            provider: p,
            live_instances: live_per_provider.get(&p.name).copied().unwrap_or(0),
            offer: offers.get(&p.name).copied().unwrap_or_default(),
        })
        .collect();
    let selection = selection::select(pool.spec.strategy, &candidates, &pool.status.provider_backoff, now);
    if selection.order.is_empty() {
        let why: Vec<String> = selection.skipped.iter().map(|(name, why)| format!("{name}: {why}")).collect();
        return Ok(Err(format!("no provider available ({})", why.join("; "))));
    }
    let mut last_error = String::new();
    for name in selection.order {
        let Some(provider) = config.providers.get(&name) else {
            last_error = format!("provider {name} is not configured");
            continue;
        };
        let entry = pool.spec.providers.iter().find(|p| p.name == name);
        let requested = entry.and_then(|p| p.instance_type.clone()).unwrap_or_else(|| pool.spec.instance_type.clone());
        let instance_type = match resolve_instance_type(provider.kind(), &requested) {
            Ok(instance_type) => instance_type,
            Err(why) => {
                last_error = why;
                continue;
            }
        };
        let region = entry.and_then(|p| p.regions.first().cloned()).unwrap_or_else(|| pool.spec.region.clone());
        let id = InstanceId::new(format!("i-{}", uuid::Uuid::now_v7().simple()))?;
        let request = InstanceRequest {
            id: id.clone(),
            provider: name.clone(),
            region: region.clone(),
            zone: pool.spec.zones.first().cloned().unwrap_or_default(),
            instance_type: instance_type.clone(),
            pool: Some(pool.name.clone()),
            labels: pool.spec.labels.clone(),
        };
        let mut instance = Instance::start_provisioning(request, now).map_err(|e| ApiError::transition(&id, e))?;
        // Recorded before the provider is called: a crash mid-call leaves a record that the
        // next start matches against the provider, never a second machine.
        let created = app
            .store
            .commit(WriteBatch::new(Actor::system(ACTOR), "provisioning").create_instance(instance.clone()))
            .await?;
        instance.revision = created.revision(0);
        let provision = ProvisionRequest {
            instance_id: id.clone(),
            pool: Some(pool.name.clone()),
            instance_type,
            region,
            zone: instance.zone.clone(),
            labels: pool.spec.labels.clone(),
            bootstrap: config.bootstrap.clone(),
        };
        match provider.provision(&provision).await {
            Ok(accepted) => {
                instance.provider_instance_id = Some(accepted.provider_instance_id.clone());
                instance.zone = accepted.zone;
                instance
                    .apply(InstanceTrigger::Provisioned, "waiting for the agent to register", app.now())
                    .map_err(|e| ApiError::transition(&id, e))?;
                commit_instance(app, instance, "provisioned").await?;
                pool.status.provider_backoff.remove(&name);
                tracing::info!(pool = %pool.name, provider = %name, instance = %id,
                    machine = %accepted.provider_instance_id, "instance provisioned");
                return Ok(Ok(name));
            }
            Err(error) => {
                let message = error.to_string();
                instance.apply(InstanceTrigger::Fail, &message, app.now()).map_err(|e| ApiError::transition(&id, e))?;
                commit_instance(app, instance, "provisioning failed").await?;
                let backoff = ProviderBackoff::after_failure(pool.status.provider_backoff.get(&name), now, &message);
                tracing::warn!(pool = %pool.name, provider = %name, %error, retry_after = %backoff.retry_after,
                    "provisioning failed; backing the provider off");
                pool.status.provider_backoff.insert(name.clone(), backoff);
                last_error = message;
            }
        }
    }
    Ok(Err(last_error))
}

/// The pool's time zone's offset from UTC at `now` (daylight saving included), for the
/// scheduled autoscaler's windows.
fn utc_offset(timezone: &str, now: Timestamp) -> ApiResult<chrono::FixedOffset> {
    use chrono::Offset as _;
    use chrono::TimeZone as _;
    let zone: chrono_tz::Tz = timezone.parse().map_err(|_| {
        ApiError::invalid(
            "timezone",
            format_args!("{timezone:?} is not in the time zone database (e.g. UTC, Europe/Berlin)"),
        )
    })?;
    Ok(zone.offset_from_utc_datetime(&now.as_datetime().naive_utc()).fix())
}

/// What `provider` says about the pool's instance type now: price, and capacity in the
/// pool's region. Unknown when the provider does not publish it or cannot be asked.
async fn offer(provider: &dyn Provider, spec: &PoolSpec, entry: &bosun_core::pool::PoolProvider) -> Offer {
    let requested = entry.instance_type.clone().unwrap_or_else(|| spec.instance_type.clone());
    let Ok(wanted) = resolve_instance_type(provider.kind(), &requested) else { return Offer::default() };
    let region = entry.regions.first().cloned().unwrap_or_else(|| spec.region.clone());
    match provider.instance_types().await {
        Ok(types) => types.iter().find(|t| t.name == wanted).map_or(Offer::default(), |t| Offer {
            price_per_hour: t.price_per_hour,
            has_capacity: (!t.regions_with_capacity.is_empty())
                .then(|| region.is_empty() || t.regions_with_capacity.contains(&region)),
        }),
        Err(error) => {
            tracing::warn!(provider = provider.name(), %error, "cannot read instance types; treating price and capacity as unknown");
            Offer::default()
        }
    }
}

/// Writes an instance whose record this pass created, retrying once when its agent
/// registered in between (the registration moved it on; the provider's answer still
/// belongs on it).
async fn commit_instance(app: &App, mut instance: Instance, reason: &str) -> ApiResult<()> {
    let batch = WriteBatch::new(Actor::system(ACTOR), reason).update_instance(instance.clone());
    match app.store.commit(batch).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => {
            let mut stored = app.store.instance(&instance.id).await?;
            if stored.provider_instance_id.is_none() {
                stored.provider_instance_id = instance.provider_instance_id.take();
                app.store.commit(WriteBatch::new(Actor::system(ACTOR), reason).update_instance(stored)).await?;
            }
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_resolve_to_the_offset_in_force_including_daylight_saving() {
        let winter: Timestamp = "2026-01-15T12:00:00Z".parse().expect("time");
        let summer: Timestamp = "2026-07-15T12:00:00Z".parse().expect("time");
        let hours = |tz: &str, at| utc_offset(tz, at).expect("known zone").local_minus_utc() / 3600;
        assert_eq!(hours("Europe/Berlin", winter), 1);
        assert_eq!(hours("Europe/Berlin", summer), 2);
        assert_eq!(hours("America/Los_Angeles", summer), -7);
        assert_eq!(hours("UTC", summer), 0);
        let error = utc_offset("Mars/Olympus_Mons", winter).unwrap_err().to_string();
        assert!(error.contains("timezone") && error.contains("Mars/Olympus_Mons"), "{error}");
    }
}
