//! Provisioning one instance through the best provider that accepts it.

use std::collections::BTreeMap;

use bosun_core::instance::InstanceRequest;
use bosun_core::pool::{ProviderBackoff, SelectionStrategy};
use bosun_core::selection::{self, Candidate, Offer};
use bosun_core::{Actor, Instance, InstanceId, InstanceTrigger, Pool, PoolSpec, Timestamp};
use bosun_provider::{Provider, ProvisionRequest, resolve_instance_type};
use bosun_store::{StoreError, WriteBatch};

use super::{ACTOR, PoolsConfig};
use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// Provisions one instance from the best provider that accepts it, recording failures as
/// backoff on the pool. `Ok(Err(why))` when no provider could.
pub(super) async fn provision_one(
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
        let machines = config.machines.get(&pool.name).cloned().unwrap_or_default();
        let provision = ProvisionRequest {
            instance_id: id.clone(),
            pool: Some(pool.name.clone()),
            instance_type,
            region,
            zone: instance.zone.clone(),
            labels: pool.spec.labels.clone(),
            bootstrap: config.bootstrap.clone(),
            ssh: machines.ssh_access(),
            image: machines.image,
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
pub(super) fn utc_offset(timezone: &str, now: Timestamp) -> ApiResult<chrono::FixedOffset> {
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
pub(super) async fn commit_instance(app: &App, instance: Instance, reason: &str) -> ApiResult<()> {
    commit_instance_with(app, instance, reason, Vec::new()).await.map(drop)
}

/// [`commit_instance`], with `extra` writes (a run's record) in the same batch. `true` when
/// the instance was written as given; on a conflict only its provider id is kept and
/// `extra` is dropped with the rest.
pub(super) async fn commit_instance_with(
    app: &App,
    mut instance: Instance,
    reason: &str,
    extra: Vec<bosun_store::Write>,
) -> ApiResult<bool> {
    let mut batch = WriteBatch::new(Actor::system(ACTOR), reason).update_instance(instance.clone());
    for write in extra {
        batch.push(write);
    }
    match app.store.commit(batch).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => {
            let mut stored = app.store.instance(&instance.id).await?;
            if stored.provider_instance_id.is_none() {
                stored.provider_instance_id = instance.provider_instance_id.take();
                app.store.commit(WriteBatch::new(Actor::system(ACTOR), reason).update_instance(stored)).await?;
            }
            Ok(false)
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
