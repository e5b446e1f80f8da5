//! Background work: flushing soft state, judging liveness, expiring commands, failing
//! unregistered instances, retention, and re-reading the policy and the fleet.
//!
//! Each pass is a plain async function of the shared state, so tests run passes directly
//! against a fake clock; the loops only call them on a timer. A pass that fails (the store
//! is down) logs and waits for its next turn: nothing here gives up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_store::RetentionPolicy;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::error::ApiResult;
use crate::{commands, instances, nodes, remediation};

/// Writes buffered heartbeats and metric samples. A failed write puts them back for the
/// next flush.
pub(crate) async fn flush_soft_state(app: &App) -> ApiResult<usize> {
    let batch = app.fleet.take_pending();
    if batch.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    let written = async {
        app.store.record_heartbeats(&batch.heartbeats).await?;
        if !batch.samples.is_empty() {
            app.store.record_metric_samples(&batch.samples).await?;
        }
        Ok::<_, bosun_store::StoreError>(batch.heartbeats.len())
    }
    .await;
    app.metrics.flush(written.is_ok(), started.elapsed());
    match written {
        Ok(count) => Ok(count),
        Err(error) => {
            app.fleet.restore_pending(batch);
            Err(error.into())
        }
    }
}

/// Expires overdue commands, fails instances whose agent never registered, escalates
/// remediation steps past their deadline and rejects runs whose approval expired (leader
/// work), and re-reads the stored policy on
/// every replica (in case the change follower could not when it read a change of it).
pub(crate) async fn janitor(app: &App) -> ApiResult<()> {
    app.as_leader(async {
        let expired = commands::expire_overdue(app).await?;
        let failed = instances::fail_unregistered(app).await?;
        let escalated = remediation::escalate_overdue(app).await?.len();
        let approvals = crate::runs::approvals::expire_overdue(app).await?;
        let sessions = crate::mcp::session::close_abandoned(app).await?;
        // In case the server could not define its MCP tools when it started.
        if app.settings.mcp.enabled && !app.mcp_tools_defined.load(std::sync::atomic::Ordering::Relaxed) {
            crate::mcp::tools::ensure_defined(app).await?;
        }
        if expired + failed + escalated + approvals + sessions > 0 {
            tracing::info!(
                expired_commands = expired,
                failed_instances = failed,
                timed_out_remediations = escalated,
                expired_approvals = approvals,
                abandoned_mcp_sessions = sessions,
                "janitor pass"
            );
        }
        Ok::<_, crate::error::ApiError>(())
    })
    .await
    .transpose()?;
    app.policies.refresh(&app.store).await?;
    Ok(())
}

/// Deletes expired TERMINATED nodes and finished instances, compacts the change log, and
/// brings the fleet view up to date with the store.
pub(crate) async fn retention(app: &App) -> ApiResult<()> {
    app.as_leader(async {
        let nodes = nodes::purge_terminated(app).await?;
        let instances = instances::purge_finished(app).await?;
        let report = app
            .store
            .apply_retention(&RetentionPolicy {
                changes_older_than: app.settings.change_retention,
                runs_older_than: app.settings.run_retention,
                audit_older_than: app.settings.audit_retention,
                inventory_syncs_older_than: app.settings.inventory_sync_retention,
            })
            .await?;
        let ledger = report.run_events_deleted + report.artifacts_deleted + report.audit_deleted;
        if nodes + instances > 0 || report.changes_deleted > 0 || ledger > 0 || report.inventory_syncs_deleted > 0 {
            tracing::info!(
                nodes,
                instances,
                changes = report.changes_deleted,
                samples = report.samples_deleted,
                run_events = report.run_events_deleted,
                artifacts = report.artifacts_deleted,
                audit = report.audit_deleted,
                inventory_syncs = report.inventory_syncs_deleted,
                "retention pass"
            );
        }
        Ok::<_, crate::error::ApiError>(())
    })
    .await
    .transpose()?;
    if app.has_peers() {
        // With a change follower this reads only the heartbeats other replicas wrote: a
        // reload of a large fleet costs every replica seconds of CPU on PostgreSQL.
        app.learn_from_peers().await?;
    } else {
        app.reload_fleet().await?;
    }
    Ok(())
}

/// One election step (leader renews, followers look); leader work starts or stops with
/// its outcome.
pub(crate) async fn elect(app: &App) -> Option<crate::election::Transition> {
    match &app.leadership {
        crate::app::Leadership::Sole => None,
        crate::app::Leadership::Elected(elector) => {
            let transition = elector.tick(&app.store, app.clock.as_ref(), &app.metrics).await;
            if let crate::election::Transition::Elected { epoch } = transition {
                // A new leader reconciles its pools now, not one autoscale interval later:
                // the fleet waited out a whole lease without a leader already.
                app.elected.send_replace(epoch);
            }
            Some(transition)
        }
    }
}

/// Starts every loop; they stop when `shutdown` is cancelled.
pub(crate) fn spawn(app: &Arc<App>, shutdown: &CancellationToken, tasks: &mut JoinSet<()>) {
    let s = &app.settings;
    if let Some(election) = &s.election {
        // A follower whose wait for a silent lease ends before the next step looks again
        // exactly then: a step that ran a few milliseconds short of it (ticks jitter under
        // load) would otherwise cost another renew interval of a fleet without a leader.
        let schedule =
            Schedule { period: election.renew_every, start: Start::Now, wake: None, sooner: Some(takeover_due_in) };
        run_loop(tasks, shutdown, app, "election", schedule, |app| async move {
            elect(&app).await;
            Ok(())
        });
    }
    // Every replica flushes: staggered, replicas started together (a rollout, a restart of
    // the cluster) do not all write to the store at the same moment, every period.
    every(tasks, shutdown, app, "flush", s.flush_interval, Start::Staggered, |app| async move {
        flush_soft_state(&app).await.map(drop)
    });
    every(tasks, shutdown, app, "liveness", s.liveness_interval, Start::AfterPeriod, |app| async move {
        app.as_leader(nodes::judge_liveness(&app)).await.transpose().map(drop)
    });
    every(
        tasks,
        shutdown,
        app,
        "janitor",
        s.janitor_interval,
        Start::AfterPeriod,
        |app| async move { janitor(&app).await },
    );
    every(tasks, shutdown, app, "retention", s.retention_interval, Start::AfterPeriod, |app| async move {
        retention(&app).await
    });
    // Runbook runs move on every run_interval, and at once when one is started or approved.
    let schedule = Schedule {
        period: s.run_interval,
        start: Start::AfterPeriod,
        wake: Some(app.run_wake.subscribe()),
        sooner: None,
    };
    run_loop(tasks, shutdown, app, "runs", schedule, |app| async move {
        app.as_leader(crate::runs::executor::advance_all(&app)).await.transpose().map(drop)
    });
    if !app.inventory.entries.is_empty() {
        // Each source is read when its own interval has passed; the loop only looks.
        every(tasks, shutdown, app, "inventory", crate::inventory::TICK, Start::Now, |app| async move {
            app.as_leader(crate::inventory::sync_due(&app)).await.transpose().map(drop)
        });
    }
    // The services come from the configuration: synced when this replica starts leading
    // (at once, and at each election); a pass in a term that synced them does nothing, so
    // the period only paces a retry after a failed sync.
    let synced_term = crate::inventory_services::SyncedTerm::default();
    let schedule = Schedule {
        period: crate::inventory_services::RETRY,
        start: Start::Now,
        wake: Some(app.elected.subscribe()),
        sooner: None,
    };
    run_loop(tasks, shutdown, app, "services", schedule, move |app| {
        let synced_term = Arc::clone(&synced_term);
        async move {
            let pass = crate::inventory_services::sync_once_per_term(&app, &synced_term);
            app.as_leader(pass).await.transpose().map(drop)
        }
    });
    if app.pools.is_some() {
        // At once: drift with the providers is repaired and min_nodes met at start.
        let schedule = Schedule {
            period: s.autoscale_interval,
            start: Start::Now,
            wake: Some(app.elected.subscribe()),
            sooner: None,
        };
        run_loop(tasks, shutdown, app, "pools", schedule, |app| async move {
            app.as_leader(crate::pools::reconcile_all(&app)).await.unwrap_or(Ok(()))
        });
    }
}

/// When a loop's first pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Now,
    AfterPeriod,
    /// After the period and a random part of another.
    Staggered,
}

/// A random part of `period`.
fn random_part_of(period: Duration) -> Duration {
    use std::hash::BuildHasher as _;
    // std's hasher keys are random per process and per call: enough to spread replicas.
    let draw = std::collections::hash_map::RandomState::new().hash_one(0u8);
    period.mul_f64(draw as f64 / u64::MAX as f64)
}

fn every<F, Fut>(
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
    app: &Arc<App>,
    name: &'static str,
    period: Duration,
    start: Start,
    pass: F,
) where
    F: Fn(Arc<App>) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<()>> + Send,
{
    run_loop(tasks, shutdown, app, name, Schedule { period, start, wake: None, sooner: None }, pass);
}

/// How long until this replica may take over the lease it watches.
pub(crate) fn takeover_due_in(app: &App) -> Option<Duration> {
    match &app.leadership {
        crate::app::Leadership::Elected(elector) => elector.takeover_due_in(app.now()),
        crate::app::Leadership::Sole => None,
    }
}

/// When a loop's passes run: every `period` from `start`, at once when `wake` changes, and
/// after a pass at the time `sooner` names when that comes before the next period.
struct Schedule {
    period: Duration,
    start: Start,
    wake: Option<tokio::sync::watch::Receiver<u64>>,
    sooner: Option<fn(&App) -> Option<Duration>>,
}

fn run_loop<F, Fut>(
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
    app: &Arc<App>,
    name: &'static str,
    schedule: Schedule,
    pass: F,
) where
    F: Fn(Arc<App>) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<()>> + Send,
{
    let Schedule { period, start, mut wake, sooner } = schedule;
    let app = Arc::clone(app);
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let first = match start {
            Start::Now => tokio::time::Instant::now(),
            Start::AfterPeriod => tokio::time::Instant::now() + period,
            Start::Staggered => tokio::time::Instant::now() + period + random_part_of(period),
        };
        let mut ticker = tokio::time::interval_at(first, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken = async {
                let changed = match wake.as_mut() {
                    Some(wake) => wake.changed().await.is_ok(),
                    None => false,
                };
                // The sender lives in the `App` this loop holds; should it go, never wake.
                if !changed {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = ticker.tick() => {}
                () = woken => ticker.reset(),
                () = shutdown.cancelled() => return,
            }
            // This pass covers the wake-ups before it; one during it (the pass may have
            // started as a follower) runs another.
            if let Some(wake) = wake.as_mut() {
                wake.borrow_and_update();
            }
            if let Err(error) = pass(Arc::clone(&app)).await {
                tracing::warn!(%error, "{name} pass failed; retrying next interval");
            }
            if let Some(due) = sooner.and_then(|sooner| sooner(&app))
                && due < period
            {
                ticker.reset_at(tokio::time::Instant::now() + due);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staggered_starts_fall_within_one_period_and_differ() {
        let period = Duration::from_secs(1);
        let draws: Vec<Duration> = (0..64).map(|_| random_part_of(period)).collect();
        assert!(draws.iter().all(|d| *d <= period), "{draws:?}");
        let first = draws[0];
        assert!(draws.iter().any(|d| *d != first), "replicas started together would flush together");
    }
}
