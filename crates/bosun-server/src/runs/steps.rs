//! What each runbook step does on one node, and how the executor tells it is over.
//!
//! Steps go through the same operations as the API (`commands::issue`, `pools::scale`),
//! so node lifecycle rules, the notifier and the audit of their effects apply alike. Every
//! step is idempotent on the node's state: a cordon of a CORDONED node, an uncordon of an
//! ACTIVE one, a drain of a DRAINING one (its drain command is waited for) finish without
//! issuing anything, so a run resumed after a restart never does a step twice.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_config::runbook::StepAction;
use bosun_core::command::CommandRequest;
use bosun_core::{
    Artifact, CommandId, CommandKind, CommandState, Health, Node, NodeId, NodeStatus, PoolName, RunId, TaskRun,
};
use bosun_store::{CommandFilter, StoreError};

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// How a step begins on a node.
#[derive(Debug)]
pub(super) enum Begin {
    /// Nothing to do or wait for: the step is over with this message.
    Done(String),
    /// Issue this command and wait for it (`done_at_issue`: the step is over once issued).
    Issue { request: CommandRequest, done_at_issue: Option<String> },
    /// Wait for a command issued before (a drain already under way).
    Adopt(CommandId),
    /// Wait for the node's state, nothing to issue.
    Watch,
    /// The step cannot run on this node.
    Fail(String),
}

/// Where a begun step stands.
#[derive(Debug)]
pub(super) enum Check {
    Pending,
    Finished { message: String, artifact: Option<Artifact> },
    Failed { reason: String, artifact: Option<Artifact> },
}

/// The node a step acts on, or why the step cannot act on it.
pub(super) async fn node(app: &App, id: &NodeId) -> ApiResult<Result<Node, String>> {
    match app.store.node(id).await {
        Ok(node) => Ok(Ok(node)),
        Err(StoreError::NotFound { .. }) => Ok(Err(format!("node {id} was deleted"))),
        Err(error) => Err(error.into()),
    }
}

/// The command a step that is one command to its node issues (cordon, uncordon, drain,
/// diagnose, terminate), with its parameters; `None` for the other steps.
pub(crate) fn command_of(action: &StepAction) -> Option<(CommandKind, BTreeMap<String, String>)> {
    Some(match action {
        StepAction::Cordon { .. } => (CommandKind::Cordon, BTreeMap::new()),
        StepAction::Uncordon => (CommandKind::Uncordon, BTreeMap::new()),
        StepAction::Drain { .. } => (CommandKind::Drain, BTreeMap::new()),
        StepAction::Diagnose { test } => {
            (CommandKind::RunDiagnostic, BTreeMap::from([("test".to_owned(), test.clone())]))
        }
        StepAction::Terminate { .. } => (CommandKind::Terminate, BTreeMap::new()),
        StepAction::IssueCommand { .. } | StepAction::WaitForStatus { .. } | StepAction::ScalePool { .. } => {
            return None;
        }
    })
}

/// Decides how `action` begins on `node`.
pub(super) async fn begin(app: &App, action: &StepAction, node: &Node, timeout: Duration) -> ApiResult<Begin> {
    let request = |kind: CommandKind, parameters: BTreeMap<String, String>, reason: &str| CommandRequest {
        node_id: node.id.clone(),
        kind,
        parameters,
        reason: reason.to_owned(),
        // The command lapses with the step: an agent never acts on it after the run gave up.
        time_to_live: timeout.min(crate::commands::MAX_TTL),
    };
    // The step's own command ([`command_of`]).
    let issue = |reason: &str, done_at_issue: Option<String>| match command_of(action) {
        Some((kind, parameters)) => Begin::Issue { request: request(kind, parameters, reason), done_at_issue },
        None => Begin::Fail(format!("step {} issues no command of its own", action.name())),
    };
    if node.status == NodeStatus::Terminated && !matches!(action, StepAction::WaitForStatus { .. }) {
        return Ok(Begin::Fail(format!("node {} is TERMINATED", node.id)));
    }
    Ok(match action {
        StepAction::Cordon { .. } if node.status == NodeStatus::Cordoned => {
            Begin::Done(format!("node {} was already cordoned", node.id))
        }
        StepAction::Cordon { reason } => issue(reason, Some(format!("node {} cordoned", node.id))),
        StepAction::Uncordon if let Err(refused) = may_return_to_service(node) => Begin::Fail(refused.to_string()),
        StepAction::Uncordon if node.status == NodeStatus::Active => {
            Begin::Done(format!("node {} was already active", node.id))
        }
        StepAction::Uncordon => issue("runbook", Some(format!("node {} uncordoned", node.id))),
        StepAction::Drain { .. } if node.status == NodeStatus::Draining => match last_drain(app, &node.id).await? {
            Some(command) => Begin::Adopt(command),
            None => Begin::Fail(format!("node {} is DRAINING but no drain command of it was found", node.id)),
        },
        StepAction::Drain { reason } => issue(reason, None),
        StepAction::Diagnose { .. } => issue("runbook", None),
        StepAction::Terminate { .. } if node.status == NodeStatus::Terminating => Begin::Watch,
        StepAction::Terminate { reason } => issue(reason, None),
        StepAction::IssueCommand { command, parameters } => match command.parse::<CommandKind>() {
            Ok(kind) => Begin::Issue { request: request(kind, parameters.clone(), "runbook"), done_at_issue: None },
            Err(error) => Begin::Fail(format!("command {command:?}: {error}")),
        },
        StepAction::WaitForStatus { .. } => Begin::Watch,
        // The pool is resized once the step's start is recorded (fenced like every write of
        // the run), when the step is checked: a run cancelled meanwhile never resizes it.
        StepAction::ScalePool { pool, .. } => match pool.as_ref().or(node.pool.as_ref()) {
            Some(_) => Begin::Watch,
            None => Begin::Fail(format!("node {} is in no pool; name the pool in the scale_pool step", node.id)),
        },
    })
}

/// Safety first: a node judged broken stays out of service whatever a runbook says. Checked
/// when a step begins and again on the node as read for the change, so a health report
/// landing in between is not overridden.
pub(crate) fn may_return_to_service(node: &Node) -> ApiResult<()> {
    if node.status == NodeStatus::Unhealthy || node.health == Health::Unhealthy {
        return Err(ApiError::FailedPrecondition(format!(
            "node {} is unhealthy: a runbook does not put a broken node back into service (uncordon it by hand if \
             that is meant)",
            node.id
        )));
    }
    Ok(())
}

/// The drain command most recently issued to `node`.
async fn last_drain(app: &App, node: &NodeId) -> ApiResult<Option<CommandId>> {
    let filter = &CommandFilter { node_id: Some(node.clone()), states: Vec::new(), kind: Some(CommandKind::Drain) };
    let store = &app.store;
    let commands = bosun_store::all_pages(|page| async move { store.list_commands(filter, &page).await }).await?;
    Ok(commands.into_iter().max_by_key(|c| c.issued_at).map(|c| c.id))
}

/// Whether the step begun at `step` on `node` is over.
pub(super) async fn check(
    app: &App,
    run: &TaskRun,
    step: u32,
    action: &StepAction,
    node_id: &NodeId,
    command: Option<CommandId>,
) -> ApiResult<Check> {
    let node = match node(app, node_id).await? {
        Ok(node) => node,
        Err(reason) => return Ok(Check::Failed { reason, artifact: None }),
    };
    if let StepAction::ScalePool { pool, target } = action {
        return scale(app, run, pool.as_ref().or(node.pool.as_ref()), *target, node_id).await;
    }
    let run = run.id;
    let Some(command) = command else {
        return Ok(match action {
            StepAction::WaitForStatus { status } if node.status == *status => {
                Check::Finished { message: format!("node {node_id} is {status}"), artifact: None }
            }
            StepAction::Terminate { .. } if node.status == NodeStatus::Terminated => {
                Check::Finished { message: format!("node {node_id} is TERMINATED"), artifact: None }
            }
            _ => Check::Pending,
        });
    };
    if matches!(action, StepAction::Terminate { .. }) && node.status == NodeStatus::Terminated {
        return Ok(Check::Finished { message: format!("node {node_id} is TERMINATED"), artifact: None });
    }
    let command = match app.store.command(&command).await {
        Ok(command) => command,
        Err(StoreError::NotFound { .. }) => {
            return Ok(Check::Failed {
                reason: format!("command {command} of node {node_id} is gone"),
                artifact: None,
            });
        }
        Err(error) => return Err(error.into()),
    };
    let artifact = match action {
        StepAction::Diagnose { test } if command.state.is_final() => {
            Some(diagnostic_artifact(run, step, test, &command))
        }
        _ => None,
    };
    Ok(match command.state {
        CommandState::Succeeded => match action {
            // The agent says the node drained; a scheduler asked through the notifier must agree.
            StepAction::Drain { .. } => match app.notifier.drained(node_id).await {
                None | Some(Ok(true)) => Check::Finished { message: format!("node {node_id} drained"), artifact },
                Some(Ok(false)) | Some(Err(_)) => Check::Pending,
            },
            _ => Check::Finished {
                message: format!("{} {} on node {node_id} succeeded{}", command.kind, command.id, said(&command)),
                artifact,
            },
        },
        CommandState::Failed | CommandState::Expired | CommandState::Cancelled => Check::Failed {
            reason: format!(
                "{} {} on node {node_id} ended {}{}",
                command.kind,
                command.id,
                command.state.as_str().to_lowercase(),
                said(&command)
            ),
            artifact,
        },
        _ => Check::Pending,
    })
}

/// Sets `pool`'s target size (the same size again changes nothing, so a step checked twice
/// resizes once).
async fn scale(app: &App, run: &TaskRun, pool: Option<&PoolName>, target: u32, node: &NodeId) -> ApiResult<Check> {
    let Some(pool) = pool else {
        let reason = format!("node {node} is in no pool; name the pool in the scale_pool step");
        return Ok(Check::Failed { reason, artifact: None });
    };
    scale_pool(app, run, pool, target).await
}

/// Sets `pool`'s target size for `run`.
pub(super) async fn scale_pool(app: &App, run: &TaskRun, pool: &PoolName, target: u32) -> ApiResult<Check> {
    match crate::pools::scale(app, pool, target, &run.requested_by).await {
        Ok(decision) => Ok(Check::Finished {
            message: format!("pool {pool} set to {target} node(s): {}", decision.reason),
            artifact: None,
        }),
        Err(error) if fails_the_step(&error) => Ok(Check::Failed { reason: error.to_string(), artifact: None }),
        Err(error) => Err(error),
    }
}

fn said(command: &bosun_core::Command) -> String {
    if command.outcome_message.is_empty() { String::new() } else { format!(": {}", command.outcome_message) }
}

/// A diagnostic's outcome as a JSON artifact of the run.
fn diagnostic_artifact(run: RunId, step: u32, test: &str, command: &bosun_core::Command) -> Artifact {
    let content = serde_json::json!({
        "node": command.node_id,
        "test": test,
        "command": command.id,
        "state": command.state.as_str(),
        "message": command.outcome_message,
        "result": command.result,
        "finished_at": command.finished_at.map(|at| at.to_string()),
    });
    Artifact {
        run_id: run,
        name: format!("step{step}-{}-{test}.json", command.node_id).replace('/', "_"),
        media_type: "application/json".to_owned(),
        content: serde_json::to_vec_pretty(&content).unwrap_or_default(),
    }
}

/// Whether an error of an operation a step called is the step's failure (the node or the
/// request is wrong), rather than the control plane's (the store is down; try again).
pub(super) fn fails_the_step(error: &ApiError) -> bool {
    use connectrpc::ErrorCode;
    matches!(
        error.code(),
        ErrorCode::InvalidArgument
            | ErrorCode::NotFound
            | ErrorCode::FailedPrecondition
            | ErrorCode::PermissionDenied
            | ErrorCode::ResourceExhausted
            | ErrorCode::AlreadyExists
    )
}
