//! Drift between the store and the providers: machines whose provisioning call never
//! returned, machines of failed instances, machines an operator terminated, and machines
//! that vanished (preempted, deleted outside bosun, lost with a fake provider's process).

use std::collections::BTreeMap;
use std::sync::Mutex;

use bosun_core::{
    Actor, Instance, InstanceId, InstanceState, InstanceTrigger, NodeStatus, NodeTrigger, PoolName, Timestamp,
};
use bosun_provider::{ProviderInstance, ProviderInstanceState};
use bosun_store::{Write, WriteBatch};

use super::provision::commit_instance_with;
use super::{ACTOR, PoolsConfig, commit_instance, instances_in, nodes_in};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, Edit};

/// When each tracked machine was first found missing from its provider's listing (soft
/// state: a restart starts every grace again, which only delays a write-off).
#[derive(Debug, Default)]
pub(crate) struct MissingMachines {
    since: Mutex<BTreeMap<InstanceId, Timestamp>>,
}

impl MissingMachines {
    /// Records `instance` as missing at `now` (keeping an earlier sighting) and returns
    /// since when it has been missing.
    fn missing(&self, instance: &InstanceId, now: Timestamp) -> Timestamp {
        *self.lock().entry(instance.clone()).or_insert(now)
    }

    fn found(&self, instance: &InstanceId) {
        self.lock().remove(instance);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<InstanceId, Timestamp>> {
        self.since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The ledger's record of one drift repair on `instance`: a `drift_repair` run with one
/// event, finished at once when `finished` (the repair is the write itself), else left
/// running until the machine is terminated (`replacement::finish_terminations`).
fn drift_run(
    pool: &PoolName,
    instance: &Instance,
    repair: &str,
    reason: &str,
    finished: bool,
    now: Timestamp,
) -> Vec<Write> {
    use bosun_core::{RunEvent, RunEventType, RunKind, RunStatus, RunTarget, TaskRun};
    let mut targets = vec![RunTarget::Instance(instance.id.clone())];
    targets.extend(instance.node_id.clone().map(RunTarget::Node));
    targets.push(RunTarget::Pool(pool.clone()));
    let mut run = TaskRun::new(RunKind::DriftRepair, RunStatus::Running, Actor::system(ACTOR), targets, now);
    run.input = serde_json::json!({
        "repair": repair,
        "reason": reason,
        "provider": instance.provider,
        "provider_instance_id": instance.provider_instance_id,
    });
    let event_type = if finished { RunEventType::StepFinished } else { RunEventType::StepStarted };
    let event = RunEvent::new(run.id, event_type, format!("{repair}: {reason}"))
        .at_step(0)
        .on(RunTarget::Instance(instance.id.clone()));
    let mut writes = vec![Write::CreateRun(Box::new(run.clone())), Write::AppendRunEvent(Box::new(event))];
    if finished {
        run.status = RunStatus::Succeeded;
        run.finished_at = Some(now);
        writes.push(Write::UpdateRun { run: Box::new(run), expected: bosun_core::Revision::FIRST });
    }
    writes
}

/// Each provider's machines, listed at most once per pass; a provider that cannot be
/// listed is absent (and nothing is judged against it).
struct Listings<'a> {
    config: &'a PoolsConfig,
    pool: &'a PoolName,
    listed: BTreeMap<String, Option<Vec<ProviderInstance>>>,
}

impl<'a> Listings<'a> {
    fn new(config: &'a PoolsConfig, pool: &'a PoolName) -> Self {
        Self { config, pool, listed: BTreeMap::new() }
    }

    async fn of(&mut self, provider_name: &str) -> Option<&[ProviderInstance]> {
        if !self.listed.contains_key(provider_name) {
            let listed = match self.config.providers.get(provider_name) {
                None => None,
                Some(provider) => match provider.list().await {
                    Ok(listed) => Some(listed),
                    Err(error) => {
                        tracing::warn!(pool = %self.pool, provider = provider_name, %error,
                            "cannot list the provider's machines; retrying next pass");
                        None
                    }
                },
            };
            self.listed.insert(provider_name.to_owned(), listed);
        }
        self.listed.get(provider_name).and_then(|listed| listed.as_deref())
    }
}

/// The machine the provider lists for `instance` and has not terminated.
fn machine_of<'l>(listed: &'l [ProviderInstance], instance: &Instance) -> Option<&'l ProviderInstance> {
    listed.iter().find(|m| {
        m.state != ProviderInstanceState::Terminated
            && (m.instance_id.as_ref() == Some(&instance.id)
                || instance.provider_instance_id.as_deref() == Some(m.provider_instance_id.as_str()))
    })
}

/// Repairs drift between the pool's instances and what their providers report, listing
/// each provider once: see [`adopt_or_close`] and [`write_off_lost`].
pub(super) async fn repair_drift(app: &App, config: &PoolsConfig, pool: &PoolName) -> ApiResult<()> {
    let mut listings = Listings::new(config, pool);
    adopt_or_close(app, &mut listings, pool).await?;
    write_off_lost(app, &mut listings, pool).await
}

/// An instance recorded PROVISIONING whose provider call never returned (the server died
/// mid-call) is adopted when the provider lists a machine tagged with its id; a FAILED
/// instance whose machine exists is terminated, so no VM bills unseen.
async fn adopt_or_close(app: &App, listings: &mut Listings<'_>, pool: &PoolName) -> ApiResult<()> {
    let unsure = instances_in(app, pool, vec![InstanceState::Provisioning, InstanceState::Failed]).await?;
    let unsure: Vec<Instance> =
        unsure.into_iter().filter(|i| i.state == InstanceState::Failed || i.provider_instance_id.is_none()).collect();
    if unsure.is_empty() {
        return Ok(());
    }
    for mut instance in unsure {
        let Some(listed) = listings.of(&instance.provider).await else { continue };
        let machine = machine_of(listed, &instance).cloned();
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
                let run = drift_run(pool, &instance, "closed a failed instance without a machine", &reason, true, now);
                commit_instance_with(app, instance, "failed instance has no machine", run).await?;
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
            let why = format!("the provider lists machine {} for it", machine.provider_instance_id);
            let run =
                drift_run(pool, &instance, "adopted a machine whose provisioning call did not return", &why, true, now);
            commit_instance_with(app, instance, "adopted", run).await?;
        } else {
            // FAILED, yet the machine exists: terminate it (finished by finish_terminations).
            instance.provider_instance_id.get_or_insert_with(|| machine.provider_instance_id.clone());
            let reason = format!("terminating the machine of a failed instance: {}", instance.status_message);
            instance
                .apply(InstanceTrigger::Terminate, &reason, now)
                .map_err(|e| ApiError::transition(&instance.id, e))?;
            let run = drift_run(pool, &instance, "terminating the machine of a failed instance", &reason, false, now);
            commit_instance_with(app, instance, "terminating a failed instance's machine", run).await?;
        }
    }
    Ok(())
}

/// A machine its provider no longer lists (preempted, deleted outside bosun, lost with a
/// fake provider's process) is written off once it has been missing for
/// `lost_machine_grace` and is at least that old (listings lag behind provisioning): its
/// instance becomes TERMINATED and its node follows, with the reason. Nothing is taken
/// away that still exists, so this never counts against the replacement budget.
async fn write_off_lost(app: &App, listings: &mut Listings<'_>, pool: &PoolName) -> ApiResult<()> {
    let tracked = instances_in(app, pool, vec![InstanceState::PendingRegistration, InstanceState::Running]).await?;
    let grace = app.settings.lost_machine_grace;
    for instance in tracked {
        let Some(machine_id) = instance.provider_instance_id.clone() else { continue };
        let Some(listed) = listings.of(&instance.provider).await else { continue };
        let now = app.now();
        if machine_of(listed, &instance).is_some() {
            app.missing_machines.found(&instance.id);
            continue;
        }
        let missing_since = app.missing_machines.missing(&instance.id, now);
        if now.saturating_since(missing_since) < grace || now.saturating_since(instance.created_at) < grace {
            continue;
        }
        let reason = format!(
            "machine lost: provider {} has not listed {machine_id} for {}",
            instance.provider,
            bosun_config::duration::format(now.saturating_since(missing_since))
        );
        write_off(app, pool, instance, &reason, now).await?;
    }
    Ok(())
}

/// Starts writing `instance` off: it and its node become TERMINATING for `reason` in one
/// batch, and [`finish_terminations`](super::replacement::finish_terminations) (later in
/// the same pass) asks the provider to terminate the machine, which every provider
/// answers for a machine it no longer has, and records both as TERMINATED. Going through
/// the provider once more means a machine a flaky listing missed is not left billing.
async fn write_off(app: &App, pool: &PoolName, mut instance: Instance, reason: &str, now: Timestamp) -> ApiResult<()> {
    let id = instance.id.clone();
    instance.apply(InstanceTrigger::Terminate, reason, now).map_err(|e| ApiError::transition(&id, e))?;
    let mut writes = vec![Write::UpdateInstance { instance: Box::new(instance.clone()), expected: instance.revision }];
    writes.extend(drift_run(pool, &instance, "writing off a lost machine", reason, false, now));
    let actor = Actor::system(ACTOR);
    match &instance.node_id {
        Some(node) => {
            let result = nodes::edit_node(app, node, &actor, reason, |n| {
                if !n.status.is_leaving() {
                    n.apply(NodeTrigger::Terminate, reason, now).map_err(|e| ApiError::transition(&n.id, e))?;
                }
                Ok(Edit::Commit { writes: writes.clone(), value: () })
            })
            .await;
            match result {
                Ok(_) => {}
                // Changed meanwhile (the agent came back, an operator acted): next pass.
                Err(ApiError::Store(bosun_store::StoreError::Conflict { .. }) | ApiError::Aborted(_)) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        None => {
            let mut batch = WriteBatch::new(actor, reason);
            for write in writes {
                batch.push(write);
            }
            app.store.commit(batch).await?;
        }
    }
    app.missing_machines.found(&id);
    tracing::warn!(instance = %id, node = ?instance.node_id, reason, "machine written off");
    Ok(())
}

/// Terminates through their provider the machines of the pool's nodes an operator (or a
/// TERMINATE command) put in TERMINATING: the node's status says it is going, the machine
/// must follow. [`finish_terminations`] then records both as TERMINATED.
pub(super) async fn follow_terminating_nodes(app: &App, pool: &PoolName) -> ApiResult<()> {
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
