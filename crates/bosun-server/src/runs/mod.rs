//! Runbook runs: started by an operator over a fixed set of nodes, moved on step by step by
//! the leader, gated by the approval policy, and recorded in the operations ledger.
//!
//! - [`start`] resolves the targets once (node ids, a label selector or a pool) and stores
//!   the run QUEUED with the runbook's text, so a later version of the runbook does not
//!   change a run under way.
//! - The executor ([`executor`]) is leader work: each pass moves every QUEUED or RUNNING
//!   run on. Its state is the run's events ([`progress`]): a restarted server resumes after
//!   the last step each target finished.
//! - Before a step first runs, the approval policy decides it ([`approvals`]): allowed, or
//!   the run waits in AWAITING_APPROVAL for a person, or it is rejected.

pub(crate) mod approvals;
pub(crate) mod executor;
pub(crate) mod progress;
mod steps;

use std::collections::BTreeMap;
use std::sync::Arc;

use bosun_config::runbook::{RunbookSpec, TargetSpec};
use bosun_core::{
    Actor, NodeId, NodeStatus, PoolName, Role, RunEvent, RunEventType, RunId, RunKind, RunStatus, RunTarget,
    RunTrigger, RunbookName, TaskRun,
};
use bosun_store::{ApprovalFilter, NodeFilter, StoreError, Write, WriteBatch, all_pages};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{ApiError, ApiResult};

pub(crate) use executor::Executor;
pub(crate) use steps::{command_of, may_return_to_service};

/// Who changes runs on the executor's behalf.
pub(crate) const ACTOR: &str = "runs";

/// What a runbook run was asked to do, kept as the run's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunInput {
    /// The runbook's text when the run started.
    pub spec: String,
    /// The requester's role, as approval policies see it.
    pub role: Role,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// How many of the targets each pool holds (nodes in no pool are not counted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<PoolName, u32>,
    /// For a run an AI agent asked for (an `ai_action`, or a runbook it started): its MCP
    /// session (an `ai_session` run). The policy weighs its steps with kind `ai_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_run: Option<RunId>,
}

/// Parses a runbook's text off the async workers.
pub(crate) async fn parse_spec(app: &App, text: String) -> ApiResult<Arc<RunbookSpec>> {
    app.policies.run(move || RunbookSpec::parse(&text)).await?.map(Arc::new).map_err(|e| ApiError::invalid("yaml", e))
}

/// Starts `runbook` for `requester` over `targets` (the runbook's own when `None`).
pub(crate) async fn start(
    app: &App,
    requester: Actor,
    role: Role,
    runbook: &RunbookName,
    targets: Option<TargetSpec>,
    reason: String,
) -> ApiResult<TaskRun> {
    let requester = Requester { actor: requester, role, session_run: None };
    start_with(app, requester, runbook, targets, reason, |_| Vec::new()).await
}

/// Who starts a run: the actor, its role as approval policies see it, and the MCP session
/// it started from, if any (its steps are then weighed as an AI agent's).
#[derive(Debug, Clone)]
pub(crate) struct Requester {
    pub actor: Actor,
    pub role: Role,
    pub session_run: Option<RunId>,
}

/// [`start`], committing `also(&run)` in the same transaction as the new run (an MCP
/// session records the tool call that started it).
pub(crate) async fn start_with(
    app: &App,
    requester: Requester,
    runbook: &RunbookName,
    targets: Option<TargetSpec>,
    reason: String,
    also: impl FnOnce(&TaskRun) -> Vec<Write>,
) -> ApiResult<TaskRun> {
    let Requester { actor: requester, role, session_run } = requester;
    let stored = match app.store.runbook(runbook).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::NotFound(format!(
                "runbook {runbook} does not exist; apply it first with `bosun runbooks apply FILE`"
            )));
        }
        Err(error) => return Err(error.into()),
    };
    let spec = parse_spec(app, stored.spec.clone())
        .await
        .map_err(|e| ApiError::Internal(format!("the stored runbook {runbook} does not parse: {e}")))?;
    let targets = targets.or_else(|| spec.targets.clone()).ok_or_else(|| {
        ApiError::invalid(
            "targets",
            format_args!("runbook {runbook} names no targets of its own; give nodes, a selector or a pool"),
        )
    })?;
    let nodes = resolve(app, &targets).await?;
    let input = RunInput { spec: stored.spec.clone(), role, reason, pools: pool_counts(&nodes), session_run };
    let now = app.now();
    let count = nodes.len();
    let mut run = TaskRun::new(
        RunKind::Runbook,
        RunStatus::Queued,
        requester.clone(),
        nodes.into_iter().map(|(id, _)| RunTarget::Node(id)).collect(),
        now,
    );
    run.runbook = Some(runbook.clone());
    run.runbook_version = Some(stored.version);
    run.input = serde_json::to_value(&input).map_err(|e| ApiError::Internal(format!("run input: {e}")))?;
    let event = RunEvent::new(
        run.id,
        RunEventType::StatusChanged,
        format!("queued by {requester}: runbook {runbook} version {} over {count} node(s)", stored.version),
    );
    let mut batch = WriteBatch::new(requester, format!("runbook {runbook} started"))
        .create_run(run.clone())
        .append_run_event(event);
    for write in also(&run) {
        batch.push(write);
    }
    app.store.commit(batch).await?;
    tracing::info!(run = %run.id, %runbook, nodes = count, "runbook run queued");
    wake(app);
    Ok(run)
}

/// Tells the executor there is work now rather than at its next pass.
pub(crate) fn wake(app: &App) {
    app.run_wake.send_modify(|n| *n = n.wrapping_add(1));
}

/// The nodes `targets` names now, in a stable order, with their pools. TERMINATED nodes
/// are left out of a selector or pool; naming one is an error.
pub(crate) async fn resolve(app: &App, targets: &TargetSpec) -> ApiResult<Vec<(NodeId, Option<PoolName>)>> {
    let store = &app.store;
    let matching = |filter: NodeFilter, what: String| async move {
        let filter = &filter;
        let nodes = all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?;
        let nodes: Vec<_> =
            nodes.into_iter().filter(|n| n.status != NodeStatus::Terminated).map(|n| (n.id, n.pool)).collect();
        if nodes.is_empty() {
            return Err(ApiError::FailedPrecondition(format!("{what} matches no nodes that are not TERMINATED")));
        }
        Ok(nodes)
    };
    match targets {
        TargetSpec::Nodes(ids) => {
            let mut seen = std::collections::BTreeSet::new();
            let mut nodes = Vec::with_capacity(ids.len());
            for id in ids.iter().filter(|id| seen.insert(*id)) {
                let node = match store.node(id).await {
                    Ok(node) => node,
                    Err(StoreError::NotFound { .. }) => {
                        return Err(ApiError::NotFound(format!("node {id} does not exist")));
                    }
                    Err(error) => return Err(error.into()),
                };
                if node.status == NodeStatus::Terminated {
                    return Err(ApiError::FailedPrecondition(format!("node {id} is TERMINATED")));
                }
                nodes.push((node.id, node.pool));
            }
            Ok(nodes)
        }
        TargetSpec::Selector(selector) => {
            matching(NodeFilter { labels: selector.clone(), ..NodeFilter::default() }, format!("selector {selector}"))
                .await
        }
        TargetSpec::Pool(pool) => {
            matching(NodeFilter { pool: Some(pool.clone()), ..NodeFilter::default() }, format!("pool {pool}")).await
        }
    }
}

/// How many of `nodes` each pool holds.
pub(crate) fn pool_counts(nodes: &[(NodeId, Option<PoolName>)]) -> BTreeMap<PoolName, u32> {
    let mut counts = BTreeMap::new();
    for pool in nodes.iter().filter_map(|(_, pool)| pool.as_ref()) {
        *counts.entry(pool.clone()).or_default() += 1;
    }
    counts
}

/// How often a cancellation is tried again when the executor moved the run on meanwhile.
const CANCEL_ATTEMPTS: usize = 8;

/// Stops a runbook run that has not finished, and withdraws the approval it waited for.
/// bosun's own runs (replacements, scaling, drift repairs) follow their machines and
/// cannot be cancelled.
pub(crate) async fn cancel(app: &App, id: RunId, by: Actor, reason: &str) -> ApiResult<TaskRun> {
    for _ in 0..CANCEL_ATTEMPTS {
        let mut run = app.store.run(&id).await?;
        if !matches!(run.kind, RunKind::Runbook | RunKind::AiAction) {
            return Err(ApiError::FailedPrecondition(format!(
                "run {id} is a {} run; only runbook runs and AI agents' actions can be cancelled",
                run.kind
            )));
        }
        if run.status.is_final() {
            return Err(ApiError::FailedPrecondition(format!("run {id} is already {}", run.status)));
        }
        let now = app.now();
        run.apply(RunTrigger::Cancel, now).map_err(|e| ApiError::transition(id, e))?;
        let why = if reason.is_empty() { format!("cancelled by {by}") } else { format!("cancelled by {by}: {reason}") };
        run.error = Some(why.clone());
        let mut batch = WriteBatch::new(by.clone(), why.clone());
        for mut approval in app.store.list_approvals(&ApprovalFilter { run: Some(id), undecided: true }, 100).await? {
            let expected = approval.revision;
            approval.decision = Some(bosun_core::ApprovalDecision {
                outcome: bosun_core::ApprovalOutcome::Rejected,
                by: by.clone(),
                reason: "the run was cancelled".to_owned(),
                at: now,
            });
            batch.push(Write::UpdateApproval { approval: Box::new(approval), expected });
        }
        batch = batch.update_run(run.clone()).append_run_event(RunEvent::new(
            id,
            RunEventType::StatusChanged,
            format!("{why}; commands already issued are not withdrawn"),
        ));
        match app.store.commit(batch).await {
            Ok(_) => {
                app.metrics.run_finished(RunStatus::Cancelled.as_str());
                tracing::info!(run = %id, actor = %by, "run cancelled");
                return Ok(app.store.run(&id).await?);
            }
            // The executor moved the run on (or an approval was decided) meanwhile.
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("run {id} kept changing while it was cancelled; retry")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_counted_per_pool() {
        let node = |id: &str, pool: Option<&str>| {
            (id.parse::<NodeId>().expect("id"), pool.map(|p| p.parse::<PoolName>().expect("pool")))
        };
        let nodes = [node("a", Some("train")), node("b", None), node("c", Some("infer")), node("d", Some("train"))];
        let counts: Vec<(String, u32)> = pool_counts(&nodes).into_iter().map(|(p, n)| (p.to_string(), n)).collect();
        assert_eq!(counts, [("infer".to_owned(), 1), ("train".to_owned(), 2)]);
        assert!(pool_counts(&[node("a", None)]).is_empty());
    }
}
