//! A Proxmox source's tasks (clones, starts, backups, migrations...) as runs of the
//! operations ledger, of kind `external`, so `bosun runs list --kind external` shows what
//! the hypervisors did beside what bosun did.
//!
//! Each task is one run whose id is derived from its source and UPID (time-ordered by the
//! task's start): reading the same task again, after a restart or on another replica,
//! names the same run, so a task is recorded once. A task still running is recorded as a
//! running run and finished when a later read shows it ended; one read ended is recorded
//! finished at once. `OK` and `WARNINGS: N` succeed; any other exit status fails the run
//! with that status as its error.

use std::collections::HashSet;
use std::sync::Mutex;

use bosun_core::{Actor, RunId, RunKind, RunStatus, RunTrigger, SourceName, TaskRun, Timestamp};
use bosun_provider::proxmox::PveTask;
use bosun_store::{StoreError, WriteBatch};
use sha2::Digest as _;

use crate::app::App;
use crate::error::ApiResult;

/// The actor tasks are recorded under (the Proxmox user who ran each is in its input).
const ACTOR: &str = "inventory";

/// The UPIDs of one source's tasks already recorded as finished: they need no store read
/// on the next sync. Bounded by what one snapshot holds (pruned to its tasks each sync).
#[derive(Debug, Default)]
pub(crate) struct RecordedTasks(Mutex<HashSet<String>>);

/// The run a task of `source` is recorded as.
pub(crate) fn run_id(source: &SourceName, task: &PveTask) -> RunId {
    let hash = sha2::Sha256::digest(format!("{source}\n{}", task.upid).as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&hash[..10]);
    let started_ms = u64::try_from(task.started).unwrap_or(0).saturating_mul(1000);
    RunId::from_uuid(uuid::Builder::from_unix_timestamp_millis(started_ms, &random).into_uuid())
}

fn seconds(at: i64) -> Timestamp {
    Timestamp::from_unix_micros(at.saturating_mul(1_000_000))
}

/// How a task ended, as a run's trigger and error.
fn outcome(task: &PveTask) -> Option<(RunTrigger, Option<String>)> {
    let status = task.exit_status.as_deref()?;
    let succeeded = status == "OK" || status.starts_with("WARNINGS");
    Some(if succeeded { (RunTrigger::Succeed, None) } else { (RunTrigger::Fail, Some(status.to_owned())) })
}

/// Finishes `run` as `task` ended; false while the task still runs.
fn finish(run: &mut TaskRun, task: &PveTask) -> bool {
    let Some((trigger, error)) = outcome(task) else { return false };
    let ended = task.ended.map_or(run.created_at, seconds).max(run.created_at);
    if run.apply(trigger, ended).is_err() {
        return false;
    }
    run.error = error;
    run.result = Some(serde_json::json!({ "exit_status": task.exit_status }));
    true
}

/// A new run for `task`, as it began.
fn new_run(source: &SourceName, task: &PveTask) -> TaskRun {
    let started = seconds(task.started);
    let mut run = TaskRun::new(RunKind::External, RunStatus::Running, Actor::system(ACTOR), Vec::new(), started);
    run.id = run_id(source, task);
    run.input = serde_json::json!({
        "source": source.as_str(),
        "upid": task.upid,
        "node": task.node,
        "type": task.kind,
        "id": task.target,
        "user": task.user,
    });
    run
}

/// Records the tasks of one read of `source`: new ones as runs, running ones that have
/// since ended as finished. A task the store refuses (a field too large, say) is skipped
/// with a warning; it never holds back the others or the inventory.
pub(crate) async fn record(
    app: &App,
    source: &SourceName,
    recorded: &RecordedTasks,
    tasks: &[PveTask],
) -> ApiResult<()> {
    let known: HashSet<String> = {
        let mut finished = recorded.0.lock().unwrap_or_else(|p| p.into_inner());
        finished.retain(|upid| tasks.iter().any(|t| t.upid == *upid));
        finished.clone()
    };
    for task in tasks.iter().filter(|t| !known.contains(&t.upid)) {
        let reason = format!("task {} of inventory source {source}", task.upid);
        let batch = WriteBatch::new(Actor::system(ACTOR), reason);
        let batch = match app.store.run(&run_id(source, task)).await {
            Ok(mut run) if run.status == RunStatus::Running => {
                if !finish(&mut run, task) {
                    continue;
                }
                batch.update_run(run)
            }
            Ok(_finished) => {
                recorded.0.lock().unwrap_or_else(|p| p.into_inner()).insert(task.upid.clone());
                continue;
            }
            Err(StoreError::NotFound { .. }) => {
                let run = new_run(source, task);
                let mut ended = run.clone();
                // A run begins running; one already over is finished in the same commit.
                if finish(&mut ended, task) { batch.create_run(run).update_run(ended) } else { batch.create_run(run) }
            }
            Err(other) => return Err(other.into()),
        };
        match app.store.commit(batch).await {
            Ok(_) => {
                if task.exit_status.is_some() {
                    recorded.0.lock().unwrap_or_else(|p| p.into_inner()).insert(task.upid.clone());
                }
            }
            // Refused as written, or written meanwhile by another replica: the next read
            // looks again.
            Err(
                refused @ (StoreError::Invalid(_)
                | StoreError::TooLarge { .. }
                | StoreError::Conflict { .. }
                | StoreError::AlreadyExists { .. }),
            ) => {
                tracing::warn!(%source, upid = %task.upid, "task not recorded: {refused}");
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}
