//! Pools: keeping each pool at the size its spec and autoscaler ask for (SPEC 3.6).
//!
//! One pass over a pool ([`reconcile`]): repair drift against the providers (`drift`),
//! move scale-down victims on (`scale_down`), replace broken machines within the budget
//! and behind the mass-failure guard (`replacement`), then size the pool by its *usable*
//! capacity (ACTIVE nodes and machines still booting) and provision what is missing
//! through the providers `bosun_core::selection` picks (`provision`). Replacements are
//! provisioned at once (surge, up to `max_nodes` machines) while the broken machines leave
//! as the budget allows. Each instance is recorded (PROVISIONING) *before* its provider is
//! called, so a server that dies mid-call finds the record on restart instead of
//! provisioning the machine twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use bosun_core::autoscale::{self, Autoscaler, NodeBounds, ScaleInput};
use bosun_core::pool::{PoolCondition, PoolConditionKind, ScalingDecision};
use bosun_core::{Actor, Instance, InstanceState, Node, NodeId, NodeStatus, Pool, PoolName, PoolSpec, Timestamp};
use bosun_provider::{Bootstrap, Provider};
use bosun_store::{InstanceFilter, NodeFilter, StoreError, WriteBatch, all_pages};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::metrics::PoolGauges;

pub(crate) mod bootstrap;
mod drift;
mod machines;
mod provision;
mod replacement;
mod scale_down;

pub(crate) use drift::MissingMachines;
pub use machines::PoolMachines;
use provision::commit_instance;

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
    /// Each pool's image and SSH access ([`PoolMachines::from_config`]); a pool without an
    /// entry gets the providers' defaults.
    pub machines: BTreeMap<PoolName, PoolMachines>,
}

const ACTOR: &str = "pool-reconciler";
/// Instances one reconciliation provisions per pool at most: a pool far below its target
/// grows over a few passes rather than in one burst against the provider.
const MAX_PROVISION_PER_PASS: u32 = 50;

/// Stores each configured pool's spec, keeping the status of pools that already exist.
/// Replicas starting together race to do the same: the loser's compare-and-set fails and
/// it looks again.
pub(crate) async fn sync_specs(app: &App, config: &PoolsConfig) -> Result<(), StoreError> {
    for (name, spec) in &config.pools {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match sync_spec(app, name, spec).await {
                Err(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) if attempts < 3 => continue,
                other => break other?,
            }
        }
    }
    Ok(())
}

async fn sync_spec(app: &App, name: &PoolName, spec: &PoolSpec) -> Result<(), StoreError> {
    let actor = Actor::system(ACTOR);
    match app.store.pool(name).await {
        Err(StoreError::NotFound { .. }) => {
            let batch = WriteBatch::new(actor, "pool configured").create_pool(Pool::new(name.clone(), spec.clone()));
            app.store.commit(batch).await.map(drop)
        }
        Ok(mut pool) if &pool.spec != spec => {
            pool.spec = spec.clone();
            app.store.commit(WriteBatch::new(actor, "pool configuration changed").update_pool(pool)).await.map(drop)
        }
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Reconciles every pool once. Does nothing unless this replica leads.
pub(crate) async fn reconcile_all(app: &App) -> ApiResult<()> {
    let Some(config) = &app.pools else { return Ok(()) };
    if !app.is_leader() {
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
    app.metrics.pool_pass();
    first_error.map_or(Ok(()), Err)
}

pub(super) async fn live_instances(app: &App, pool: &PoolName) -> ApiResult<Vec<Instance>> {
    instances_in(
        app,
        pool,
        vec![InstanceState::Provisioning, InstanceState::PendingRegistration, InstanceState::Running],
    )
    .await
}

pub(super) async fn instances_in(app: &App, pool: &PoolName, states: Vec<InstanceState>) -> ApiResult<Vec<Instance>> {
    let filter = &InstanceFilter { states, pool: Some(pool.clone()), ..InstanceFilter::default() };
    let store = &app.store;
    Ok(all_pages(|page| async move { store.list_instances(filter, &page).await }).await?)
}

pub(super) async fn nodes_in(app: &App, pool: &PoolName, status: NodeStatus) -> ApiResult<Vec<Node>> {
    let filter = &NodeFilter { status: Some(status), pool: Some(pool.clone()), ..NodeFilter::default() };
    let store = &app.store;
    Ok(all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?)
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

    let pool = app.store.pool(name).await?;
    if target < pool.spec.min_nodes || target > pool.spec.max_nodes {
        return Err(ApiError::invalid(
            "target",
            format_args!("{target} is outside the pool's {}..={} nodes", pool.spec.min_nodes, pool.spec.max_nodes),
        ));
    }
    tracing::info!(pool = %name, target, %actor, "pool scaled by an operator");
    // The provisioning this starts is leader work: fenced like the background passes.
    app.as_leader(reconcile_to(app, config, name, Some((target, actor.clone())))).await.unwrap_or_else(|| {
        Err(ApiError::FailedPrecondition("this replica does not lead; send the request to the leader".into()))
    })
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
    drift::repair_drift(app, config, name).await?;
    bootstrap::bootstrap_machines(app, config, &pool).await?;
    let draining = scale_down::progress_scale_down(app, &pool, now).await?;
    drift::follow_terminating_nodes(app, name).await?;
    replacement::finish_terminations(app, config, name).await?;
    // The pool's nodes that are not on their way out.
    let members: Vec<Node> = pool_nodes(app, name)
        .await?
        .into_iter()
        .filter(|n| !matches!(n.status, NodeStatus::Terminating | NodeStatus::Terminated))
        .collect();
    let guard = replacement::mass_failure(&pool, &members, now);
    if guard.is_some() && !previously(&pool, PoolConditionKind::MassFailure) {
        tracing::warn!(pool = %name, "mass-failure guard raised: the pool's terminations are held");
    }
    let live_before = live_instances(app, name).await?.len();
    let replacements =
        replacement::replace_unhealthy(app, config, &pool, &members, live_before, guard.as_ref(), now).await?;
    let instances = live_instances(app, name).await?;
    let status_of: BTreeMap<&NodeId, NodeStatus> = members.iter().map(|n| (&n.id, n.status)).collect();
    // Machines being drained away are already on their way out.
    let leaving = |i: &Instance| i.node_id.as_ref().is_some_and(|n| draining.contains(n));
    // Usable capacity: machines still booting and nodes in service. A node an operator
    // cordoned or drained is still the pool's (taking it out of scheduling is no reason to
    // buy another machine); an UNHEALTHY node (silent ones included) is not, unless the
    // pool keeps broken machines (`auto_replace: false`) and so never replaces them.
    let counts = |status: NodeStatus| counts_as_usable(status, &pool.spec);
    let usable: Vec<Instance> = instances
        .iter()
        .filter(|i| !leaving(i))
        .filter(|i| {
            // A running instance whose node is not among the members read above has just
            // registered (its node is ACTIVE).
            i.state != InstanceState::Running
                || i.node_id.as_ref().and_then(|n| status_of.get(n)).is_none_or(|status| counts(*status))
        })
        .cloned()
        .collect();
    let leaving_count = instances.iter().filter(|i| leaving(i)).count();
    let nominal = u32::try_from(instances.len() - leaving_count).unwrap_or(u32::MAX);
    let current = u32::try_from(usable.len()).unwrap_or(u32::MAX);
    let total = u32::try_from(instances.len()).unwrap_or(u32::MAX);
    let booting = instances.iter().filter(|i| i.state != InstanceState::Running).count();
    let active: Vec<&Node> = members.iter().filter(|n| n.status == NodeStatus::Active).collect();
    let healthy = u32::try_from(active.len()).unwrap_or(u32::MAX);
    let utilization = app.fleet.mean_utilization(active.iter().map(|n| &n.id));
    let history = app.demand.sample(name, now, utilization);
    let spec = &pool.spec;
    let bounds = NodeBounds::new(spec.min_nodes, spec.max_nodes)?;
    let offset = provision::utc_offset(&spec.timezone, now)?;
    let autoscaler = spec.autoscaling.as_ref().map(|a| Autoscaler::from_spec(a, offset)).transpose()?;
    // Autoscalers size usable capacity. A pool without one holds its size: the last
    // target (an operator's scale included), else the machines it has; machines that stop
    // serving are replaced, not forgotten.
    let held = pool.status.last_decision.as_ref().map_or(nominal, |d| d.target);
    let input = ScaleInput {
        now,
        current: if autoscaler.is_some() { current } else { held },
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
    let mut capped = None;
    if plan.target > current {
        // Surge: replacements for machines that stopped serving are provisioned at once, up
        // to max_nodes machines in all; the broken ones leave as the budget allows.
        let room = spec.max_nodes.saturating_sub(total);
        let wanted = plan.target - current;
        if wanted > room {
            capped = Some(format!(
                "at max_nodes {}: {total} machines, {} not serving; {} more wait for broken machines to leave",
                spec.max_nodes,
                total - current,
                wanted - room
            ));
        }
        let mut live_per_provider: BTreeMap<String, u32> = BTreeMap::new();
        for instance in &instances {
            *live_per_provider.entry(instance.provider.clone()).or_default() += 1;
        }
        for _ in 0..wanted.min(room).min(MAX_PROVISION_PER_PASS) {
            match provision::provision_one(app, config, &mut pool, &mut live_per_provider, now).await? {
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
        removing =
            scale_down::scale_down(app, config, &pool, &usable, &draining, current - plan.target, plan.target).await?;
    }
    let mut reason = plan.reason.clone();
    if current != plan.target || current != nominal {
        reason.push_str(&format!("; usable {current} of target {}", plan.target));
    }
    if removing > 0 {
        reason.push_str(&format!("; draining {removing} for removal"));
    }
    if replacements.replaced > 0 {
        reason.push_str(&format!("; replaced {} UNHEALTHY node(s)", replacements.replaced));
    }
    let budget_held = replacements.held.filter(|held| held.kind == PoolConditionKind::AwaitingReplacement);
    for condition in guard.iter().chain(&budget_held) {
        reason.push_str(&format!("; {}", condition.message));
    }
    if provisioned > 0 {
        reason.push_str(&format!("; provisioned {provisioned}"));
    }
    if let Some(capped) = &capped {
        reason.push_str(&format!("; {capped}"));
    }
    if let Some(why) = failures.first() {
        reason.push_str(&format!("; could not provision: {why}"));
    }
    let inputs = BTreeMap::from([
        ("current".to_owned(), current.to_string()),
        ("machines".to_owned(), total.to_string()),
        ("booting".to_owned(), booting.to_string()),
        ("leaving".to_owned(), leaving_count.to_string()),
        ("healthy".to_owned(), healthy.to_string()),
        ("awaiting_replacement".to_owned(), replacements.awaiting.to_string()),
        ("mean_gpu_utilization".to_owned(), utilization.map_or_else(|| "unknown".to_owned(), |u| format!("{u:.1}"))),
        ("min_nodes".to_owned(), pool.spec.min_nodes.to_string()),
        ("max_nodes".to_owned(), pool.spec.max_nodes.to_string()),
    ]);
    let mut conditions: Vec<PoolCondition> = guard.into_iter().collect();
    conditions.extend(budget_held);
    app.metrics.pool(
        name.as_str(),
        PoolGauges {
            usable: current,
            target: plan.target,
            awaiting_replacement: replacements.awaiting,
            mass_failure: conditions.iter().any(|c| c.kind == PoolConditionKind::MassFailure),
        },
    );
    let decision = ScalingDecision { at: now, current, target: plan.target, reason, inputs, conditions };
    let changed = pool.status.last_decision.as_ref().is_none_or(|last| {
        (last.current, last.target, &last.reason, &last.conditions)
            != (decision.current, decision.target, &decision.reason, &decision.conditions)
    });
    if provisioned > 0 || removing > 0 {
        pool.status.last_scale_at = Some(now);
        let requester = requested.as_ref().map(|(_, actor)| actor.clone());
        let scale = ScaleRecord { current, target: plan.target, provisioned, removing, failures: &failures };
        app.store.commit(scale_run(&pool, &decision, requester, &scale, now)).await?;
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

/// What one pass did to a pool's size.
struct ScaleRecord<'a> {
    current: u32,
    target: u32,
    provisioned: u32,
    removing: u32,
    failures: &'a [String],
}

/// The ledger's record of one pass that changed a pool's size: a run of kind `scale`,
/// finished in the batch that records it (the machines' own progress is the instances'),
/// with the decision and its inputs as input.
fn scale_run(
    pool: &Pool,
    decision: &ScalingDecision,
    requester: Option<Actor>,
    scale: &ScaleRecord<'_>,
    now: Timestamp,
) -> WriteBatch {
    use bosun_core::{RunEvent, RunEventType, RunKind, RunStatus, RunTarget, TaskRun};
    let actor = Actor::system(ACTOR);
    let mut run = TaskRun::new(
        RunKind::Scale,
        RunStatus::Running,
        requester.unwrap_or_else(|| actor.clone()),
        vec![RunTarget::Pool(pool.name.clone())],
        now,
    );
    run.input = serde_json::json!({
        "current": scale.current,
        "target": scale.target,
        "reason": decision.reason,
        "inputs": decision.inputs,
    });
    let mut batch = WriteBatch::new(actor, decision.reason.clone()).create_run(run.clone());
    let mut event = |event_type, message: String| {
        batch.push(bosun_store::Write::AppendRunEvent(Box::new(
            RunEvent::new(run.id, event_type, message).on(RunTarget::Pool(pool.name.clone())),
        )));
    };
    if scale.provisioned > 0 {
        event(
            RunEventType::Log,
            format!("provisioning {} machine(s): {} -> {}", scale.provisioned, scale.current, scale.target),
        );
    }
    if scale.removing > 0 {
        event(
            RunEventType::Log,
            format!("draining {} node(s) for removal: {} -> {}", scale.removing, scale.current, scale.target),
        );
    }
    for why in scale.failures {
        event(RunEventType::Error, format!("could not provision: {why}"));
    }
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(now);
    run.result = Some(serde_json::json!({"provisioned": scale.provisioned, "removing": scale.removing}));
    batch.update_run(run)
}

/// Whether the pool's last decision raised `kind`.
fn previously(pool: &Pool, kind: PoolConditionKind) -> bool {
    pool.status.last_decision.as_ref().is_some_and(|d| d.conditions.iter().any(|c| c.kind == kind))
}

/// Every node of the pool, in one read.
async fn pool_nodes(app: &App, pool: &PoolName) -> ApiResult<Vec<Node>> {
    let filter = &NodeFilter { pool: Some(pool.clone()), ..NodeFilter::default() };
    let store = &app.store;
    Ok(all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?)
}

/// Whether a node in `status` is usable capacity of a pool with `spec`: nodes in service
/// are (an operator's cordon or drain is no reason to buy another machine); an UNHEALTHY
/// one (silent ones included) is not, unless the pool keeps broken machines
/// (`auto_replace: false`) and so never replaces them.
pub(crate) fn counts_as_usable(status: NodeStatus, spec: &PoolSpec) -> bool {
    match status {
        NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining => true,
        NodeStatus::Unhealthy => !spec.health.auto_replace,
        NodeStatus::Terminating | NodeStatus::Terminated => false,
    }
}

/// A pool's capacity now: booting machines from the store, nodes from the fleet view.
pub(crate) async fn usage(app: &App, pool: &Pool) -> ApiResult<PoolUsage> {
    let filter = &InstanceFilter {
        pool: Some(pool.name.clone()),
        states: vec![InstanceState::Provisioning, InstanceState::PendingRegistration],
        ..InstanceFilter::default()
    };
    let store = &app.store;
    let booting = all_pages(|page| async move { store.list_instances(filter, &page).await }).await?.len();
    let booting = u32::try_from(booting).unwrap_or(u32::MAX);
    let statuses = app.fleet.pool_statuses(&pool.name);
    let count =
        |wanted: fn(NodeStatus) -> bool| statuses.iter().filter(|(s, _)| wanted(**s)).map(|(_, n)| *n).sum::<u32>();
    let usable_nodes: u32 =
        statuses.iter().filter(|(status, _)| counts_as_usable(**status, &pool.spec)).map(|(_, n)| *n).sum();
    Ok(PoolUsage {
        usable: booting.saturating_add(usable_nodes),
        booting,
        serving: count(|s| matches!(s, NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining)),
        unhealthy: count(|s| s == NodeStatus::Unhealthy),
    })
}

/// [`usage`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolUsage {
    pub usable: u32,
    pub booting: u32,
    pub serving: u32,
    pub unhealthy: u32,
}
