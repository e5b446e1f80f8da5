//! The tools that change the fleet, behind the approval policy.
//!
//! A call is first weighed as the operations it is (`runs::approvals::operations_for`,
//! with kind `ai_session` and the token as actor, so a rule may single AI agents out), the
//! same way a runbook step is, then:
//!
//! - **allowed**: done at once. Each command carries the call's audit entry and, with
//!   the last, its tool call record, in the same transaction (`commands::issue_with`); a
//!   pool resize goes through the leader's reconcile pass, so its record follows it.
//! - **approval required**: one transaction creates an `ai_action` run (a one-step runbook
//!   of the action) AWAITING_APPROVAL, its approval, and the call's record. A person
//!   approves it with `bosun runs approve RUN`; the executor then carries it out like any
//!   runbook run, and `get_run` shows the outcome.
//! - **denied**: a tool error naming the rule, recorded as refused.
//!
//! Destructive calls are also counted against the session's budget
//! (`mcp.destructive_calls_per_session`) before the policy is asked. `start_runbook` is
//! not weighed itself: it starts a runbook run whose steps the policy gates one by one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bosun_config::runbook::{StepAction, TargetSpec};
use bosun_core::command::CommandRequest;
use bosun_core::{
    Approval, ApprovalId, NodeId, PolicyDecision, PoolName, Revision, RunEvent, RunEventType, RunKind, RunStatus,
    RunTarget, RunbookName, TaskRun, ToolCallStatus, ToolRisk,
};
use bosun_store::{Write, WriteBatch};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use super::session::{Ledger, Outcome, Session};
use crate::app::App;
use crate::error::ApiError;
use crate::runs::approvals::{self, Asker};
use crate::runs::{self, RunInput};

/// Most nodes one call acts on.
pub(crate) const MAX_NODES: usize = 100;
/// Longest list of node ids an audit entry's resource names before it counts the rest.
const MAX_RESOURCE_BYTES: usize = 512;

/// A decoded call of a tool that changes something.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Act {
    /// Weighed by the approval policy before it is done.
    Gated(Gated),
    /// A runbook run, whose steps the policy gates as they come.
    StartRunbook { runbook: RunbookName, targets: Option<TargetSpec>, reason: String },
}

/// An action the approval policy weighs as a whole.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Gated {
    /// The step (cordon, uncordon, drain, diagnose, terminate: one command to a node) on
    /// each of `nodes`.
    Nodes { step: StepAction, nodes: Vec<NodeId>, reason: String },
    /// A pool's new target size.
    ScalePool { pool: PoolName, target: u32, reason: String },
}

/// What the agent is told, and what the ledger keeps.
fn answer(outcome: &Outcome, text: String) -> CallToolResult {
    match (&outcome.status, &outcome.output) {
        (ToolCallStatus::Succeeded | ToolCallStatus::AwaitingApproval, Some(output)) => {
            let mut result = CallToolResult::structured(output.clone());
            result.content = vec![ContentBlock::text(text)];
            result
        }
        _ => CallToolResult::error(vec![ContentBlock::text(text)]),
    }
}

/// The RPC code an error is audited with, as the API would answer it.
fn code_of(error: &ApiError) -> &'static str {
    error.code().as_str()
}

/// How much harm this call can do: a pool resize is destructive only when it shrinks the
/// pool, and a runbook as much as its most harmful step.
async fn risk_of(app: &App, act: &Act, tool_risk: ToolRisk) -> Result<ToolRisk, ApiError> {
    Ok(match act {
        Act::Gated(Gated::ScalePool { pool, target, .. }) => {
            if *target < approvals::pool_size(app, pool).await? {
                ToolRisk::Destructive
            } else {
                ToolRisk::Write
            }
        }
        Act::StartRunbook { runbook, .. } => match app.store.runbook(runbook).await {
            Ok(stored) => {
                let spec = runs::parse_spec(app, stored.spec).await?;
                let destructive = spec.steps.iter().any(|step| step.action.risk() == ToolRisk::Destructive);
                if destructive { ToolRisk::Destructive } else { tool_risk }
            }
            // `runs::start_with` says what is wrong.
            Err(_) => tool_risk,
        },
        Act::Gated(Gated::Nodes { .. }) => tool_risk,
    })
}

/// Carries out `act` for the session; `tool_risk` is the tool's.
pub(crate) async fn call(app: &App, ledger: &Ledger<'_>, act: Act, tool_risk: ToolRisk) -> CallToolResult {
    let session = ledger.session;
    let resource = resource_of(&act);
    let risk = match risk_of(app, &act, tool_risk).await {
        Ok(risk) => risk,
        Err(error) => return failed(app, ledger, resource, &error).await,
    };
    if risk == ToolRisk::Destructive
        && let Err(spent) = session.spend_destructive_call(app.settings.mcp.destructive_calls_per_session)
    {
        let outcome = Outcome::refused(spent.clone()).audited(resource, "resource_exhausted");
        ledger.record(app, &outcome).await;
        return answer(&outcome, spent);
    }
    let result = match act {
        Act::StartRunbook { runbook, targets, reason } => start_runbook(app, ledger, &runbook, targets, reason).await,
        Act::Gated(gated) => weigh(app, ledger, gated, &resource).await,
    };
    match result {
        Ok(result) => result,
        Err(error) => failed(app, ledger, resource, &error).await,
    }
}

/// Records a call that failed with `error`, and tells the agent why.
async fn failed(app: &App, ledger: &Ledger<'_>, resource: String, error: &ApiError) -> CallToolResult {
    let message = format!("{}: {error}", code_of(error));
    let outcome = Outcome::failed(message.clone()).audited(resource, code_of(error));
    ledger.record(app, &outcome).await;
    answer(&outcome, message)
}

/// What a call acts on, as the audit log names it.
fn resource_of(act: &Act) -> String {
    match act {
        Act::Gated(Gated::Nodes { nodes, .. }) => {
            // The first few ids (the tool call record keeps them all), so the entry stays
            // short whatever the ids' lengths.
            let mut resource = String::from("node:");
            for (i, node) in nodes.iter().enumerate() {
                if resource.len() + node.as_str().len() > MAX_RESOURCE_BYTES {
                    let _ = write!(resource, "(+{} more)", nodes.len() - i);
                    break;
                }
                if i > 0 {
                    resource.push(',');
                }
                resource.push_str(node.as_str());
            }
            resource
        }
        Act::Gated(Gated::ScalePool { pool, .. }) => format!("pool:{pool}"),
        Act::StartRunbook { runbook, .. } => format!("runbook:{runbook}"),
    }
}

async fn start_runbook(
    app: &App,
    ledger: &Ledger<'_>,
    runbook: &RunbookName,
    targets: Option<TargetSpec>,
    reason: String,
) -> Result<CallToolResult, ApiError> {
    let session = ledger.session;
    let resource = format!("runbook:{runbook}");
    let outcome_for = |run: &TaskRun| {
        Outcome::succeeded(json!({
            "status": "started",
            "run_id": run.id,
            "targets": run.targets.len(),
        }))
        .audited(resource.clone(), "ok")
    };
    let requester = runs::Requester { actor: session.actor(), role: session.role(), session_run: Some(session.run) };
    let run =
        runs::start_with(app, requester, runbook, targets, reason, |run| ledger.writes(&outcome_for(run))).await?;
    let outcome = outcome_for(&run);
    let text = format!(
        "runbook {runbook} started as run {} over {} node(s); its steps are gated by the approval policy as they \
         come; get_run {} shows its progress",
        run.id,
        run.targets.len(),
        run.id
    );
    Ok(answer(&outcome, text))
}

/// The nodes `nodes` as they are now, and how many of them each pool holds.
async fn pools_of(app: &App, nodes: &[NodeId]) -> Result<BTreeMap<PoolName, u32>, ApiError> {
    let targets = runs::resolve(app, &TargetSpec::Nodes(nodes.to_vec())).await?;
    Ok(runs::pool_counts(&targets))
}

/// Weighs `act` with the approval policy and acts on the decision.
async fn weigh(app: &App, ledger: &Ledger<'_>, act: Gated, resource: &str) -> Result<CallToolResult, ApiError> {
    let session = ledger.session;
    let (step, targets, pools) = match &act {
        Gated::Nodes { step, nodes, .. } => {
            let pools = pools_of(app, nodes).await?;
            (step.clone(), u32::try_from(nodes.len()).unwrap_or(u32::MAX), pools)
        }
        Gated::ScalePool { pool, target, .. } => {
            app.store.pool(pool).await?;
            (StepAction::ScalePool { pool: Some(pool.clone()), target: *target }, 0, BTreeMap::new())
        }
    };
    let asker = Asker { actor: session.actor(), role: session.role(), kind: RunKind::AiSession };
    let operations = approvals::operations_for(app, &step, targets, &pools, &asker).await?;
    let decided = approvals::evaluate(app, operations).await?;
    let (decision, rule) = match decided {
        Some((decision, _)) => (decision.decision, decision.rule.map(|r| r.to_string())),
        None => (PolicyDecision::Allow, None),
    };
    match decision {
        PolicyDecision::Allow => match act {
            Gated::Nodes { step, nodes, reason } => issue(app, ledger, &step, &nodes, &reason).await,
            Gated::ScalePool { pool, target, .. } => scale(app, ledger, &pool, target).await,
        },
        PolicyDecision::RequireApproval { role } => {
            let rule = rule.unwrap_or_default();
            await_approval(app, ledger, AwaitedAction { act, step, pools, role, rule, resource }).await
        }
        PolicyDecision::Deny => {
            let rule = rule.map_or_else(|| "no rule".to_owned(), |r| format!("rule {r}"));
            let message = format!(
                "denied by the approval policy ({rule}): {} on {resource} may not be done by an AI agent's session; \
                 ask a person",
                step.name()
            );
            let outcome = Outcome::refused(message.clone()).audited(resource, "permission_denied");
            ledger.record(app, &outcome).await;
            Ok(answer(&outcome, message))
        }
    }
}

/// The command step `step` issues to `node`, as a runbook's step would issue it.
fn command(app: &App, step: &StepAction, node: &NodeId, reason: &str) -> Result<CommandRequest, ApiError> {
    let (kind, parameters) = runs::command_of(step)
        .ok_or_else(|| ApiError::Internal(format!("step {} is not one command to a node", step.name())))?;
    Ok(CommandRequest {
        node_id: node.clone(),
        kind,
        parameters,
        reason: reason.to_owned(),
        time_to_live: app.settings.command_ttl,
    })
}

/// An issued command, as a call's output lists it.
fn issued_json(command: &bosun_core::Command) -> Value {
    json!({"node_id": command.node_id, "command_id": command.id, "kind": command.kind.to_string()})
}

/// Issues the step's command to every node now; the last command carries the call's record.
async fn issue(
    app: &App,
    ledger: &Ledger<'_>,
    step: &StepAction,
    nodes: &[NodeId],
    reason: &str,
) -> Result<CallToolResult, ApiError> {
    let session = ledger.session;
    let actor = session.actor();
    let mut issued: Vec<Value> = Vec::with_capacity(nodes.len());
    let returns_to_service = matches!(step, StepAction::Uncordon);
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let request = command(app, step, node, reason)?;
        let done_so_far = issued.clone();
        let outcome_for = |command: &bosun_core::Command| {
            let mut commands = done_so_far.clone();
            commands.push(issued_json(command));
            Outcome::succeeded(json!({"status": "done", "commands": commands}))
                .audited(format!("node:{}", command.node_id), "ok")
        };
        let check = |node: &bosun_core::Node| {
            if returns_to_service { runs::may_return_to_service(node) } else { Ok(()) }
        };
        let result = crate::commands::issue_with(app, request, &actor, check, |command| {
            let outcome = outcome_for(command);
            if last { ledger.writes(&outcome) } else { vec![ledger.audit(&outcome)] }
        })
        .await;
        match result {
            Ok(command) => issued.push(issued_json(&command)),
            Err(error) => {
                let mut message = format!("{}: {error}", code_of(&error));
                if !issued.is_empty() {
                    // The commands themselves are in the call's output.
                    let _ = write!(message, " ({} command(s) were issued before this node's failed)", issued.len());
                }
                let mut outcome = Outcome::failed(message.clone()).audited(format!("node:{node}"), code_of(&error));
                outcome.output = (!issued.is_empty()).then(|| json!({"status": "partly done", "commands": issued}));
                ledger.record(app, &outcome).await;
                return Ok(CallToolResult::error(vec![ContentBlock::text(message)]));
            }
        }
    }
    let mut text = format!("{} done:", step.name());
    for command in &issued {
        let _ = write!(text, " command {} to node {};", command["command_id"], command["node_id"]);
    }
    let outcome = Outcome::succeeded(json!({"status": "done", "commands": issued}));
    Ok(answer(&outcome, text.trim_end_matches(';').replace('"', "")))
}

/// Resizes the pool now (through the leader's reconcile pass), then records the call.
async fn scale(app: &App, ledger: &Ledger<'_>, pool: &PoolName, target: u32) -> Result<CallToolResult, ApiError> {
    let decision = crate::pools::scale(app, pool, target, &ledger.session.actor()).await?;
    let output = json!({"status": "done", "pool": pool, "target": target, "decision": decision.reason});
    let outcome = Outcome::succeeded(output).audited(format!("pool:{pool}"), "ok");
    ledger.record(app, &outcome).await;
    Ok(answer(&outcome, format!("pool {pool} set to {target} node(s): {}", decision.reason)))
}

/// A one-step runbook of `step`, as the `ai_action` run's text.
fn action_spec(tool: &str, step: &StepAction, parallel: usize, reason: &str) -> String {
    let quoted = |text: &str| Value::String(text.to_owned()).to_string();
    let step = match step {
        StepAction::Cordon { .. } => format!("cordon: {{reason: {}}}", quoted(reason)),
        StepAction::Uncordon => "uncordon: {}".to_owned(),
        StepAction::Drain { .. } => format!("drain: {{reason: {}}}", quoted(reason)),
        StepAction::Diagnose { test } => format!("diagnose: {{test: {}}}", quoted(test)),
        StepAction::ScalePool { pool, target } => {
            let pool = pool.as_ref().map_or_else(String::new, |p| format!("pool: {}, ", quoted(p.as_str())));
            format!("scale_pool: {{{pool}target: {target}}}")
        }
        _ => format!("terminate: {{reason: {}}}", quoted(reason)),
    };
    format!(
        "name: mcp.{tool}\ndescription: {}\nmax_parallel: {}\nsteps:\n  - {step}\n",
        quoted(&format!("{tool} asked for by an AI agent over MCP")),
        parallel.max(1)
    )
}

/// An action the policy holds for a person's approval.
struct AwaitedAction<'a> {
    act: Gated,
    /// The step it amounts to.
    step: StepAction,
    /// How many of its nodes each pool holds.
    pools: BTreeMap<PoolName, u32>,
    /// Who may approve it, and the rule that says so.
    role: bosun_core::Role,
    rule: String,
    /// What it acts on, as the audit log names it.
    resource: &'a str,
}

/// Records the action as an `ai_action` run awaiting the approval of its role.
async fn await_approval(
    app: &App,
    ledger: &Ledger<'_>,
    awaited: AwaitedAction<'_>,
) -> Result<CallToolResult, ApiError> {
    let AwaitedAction { act, step, pools, role, rule, resource } = awaited;
    let session: &Session = ledger.session;
    let (targets, reason, what) = match &act {
        Gated::Nodes { nodes, reason, .. } => (
            nodes.iter().cloned().map(RunTarget::Node).collect::<Vec<_>>(),
            reason.clone(),
            format!("{} on {} node(s)", step.name(), nodes.len()),
        ),
        Gated::ScalePool { pool, target, reason } => {
            (vec![RunTarget::Pool(pool.clone())], reason.clone(), format!("scale_pool {pool} to {target} node(s)"))
        }
    };
    let now = app.now();
    let actor = session.actor();
    let spec = action_spec(ledger.tool.as_str(), &step, targets.len(), &reason);
    // What the executor will parse once approved must parse now (a reason YAML cannot hold
    // is the caller's error, not a run that fails after a person approved it).
    runs::parse_spec(app, spec.clone())
        .await
        .map_err(|e| ApiError::invalid("reason", format_args!("cannot be carried into the action's runbook: {e}")))?;
    let input = RunInput { spec, role: session.role(), reason: reason.clone(), pools, session_run: Some(session.run) };
    let mut run = TaskRun::new(RunKind::AiAction, RunStatus::AwaitingApproval, actor.clone(), targets, now);
    run.input = serde_json::to_value(&input).map_err(|e| ApiError::Internal(format!("run input: {e}")))?;
    let rule_said = if rule.is_empty() { "no rule".to_owned() } else { format!("rule {rule}") };
    let approval = Approval {
        id: ApprovalId::new_at(now),
        run_id: run.id,
        step: Some(0),
        what: format!("{what}, asked for by {actor} over MCP (session run {})", session.run),
        policy: rule.parse().ok(),
        required_role: role,
        requested_by: actor.clone(),
        requested_at: now,
        expires_at: now + app.settings.approval_timeout,
        decision: None,
        revision: Revision::FIRST,
    };
    let approve_with = format!("bosun runs approve {}", run.id);
    let output = json!({
        "status": "awaiting_approval",
        "run_id": run.id,
        "approval_id": approval.id,
        "required_role": role,
        "rule": rule,
        "approve_with": approve_with,
        "expires_at": approval.expires_at.to_string(),
    });
    let outcome = Outcome {
        status: ToolCallStatus::AwaitingApproval,
        output: Some(output),
        error: None,
        approval: Some(approval.id),
        audit: Some((resource.to_owned(), "ok")),
    };
    let queued = RunEvent::new(
        run.id,
        RunEventType::StatusChanged,
        format!("asked for by {actor} over MCP (session run {}): {what}", session.run),
    );
    let requested = RunEvent::new(
        run.id,
        RunEventType::ApprovalRequested,
        format!("{what} needs the approval of an {role} ({rule_said})"),
    )
    .at_step(0)
    .with_data(json!({ "approval": approval.id, "role": role, "rule": rule }));
    let mut batch = WriteBatch::new(actor, format!("{} awaits approval", ledger.tool))
        .create_run(run.clone())
        .append_run_event(queued)
        .with(Write::CreateApproval(Box::new(approval.clone())))
        .append_run_event(requested);
    for write in ledger.writes(&outcome) {
        batch.push(write);
    }
    app.store.commit(batch).await?;
    tracing::info!(run = %run.id, session = %session.run, %role, "AI agent's action awaits approval");
    let text = format!(
        "awaiting approval: {what} needs the approval of an {role} ({rule_said}). Approval {} is on run {}; a person \
         holding the {role} role approves it with `{approve_with}` (or rejects it with `bosun runs reject {} \
         --reason ...`). get_run {} shows the outcome.",
        approval.id, run.id, run.id, run.id
    );
    Ok(answer(&outcome, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_resource_names_the_first_nodes_and_counts_the_rest() {
        let node = |i: usize| format!("gpu-node-{i:03}-{}", "x".repeat(30)).parse::<NodeId>().expect("id");
        let act = |n: usize| {
            Act::Gated(Gated::Nodes {
                step: StepAction::Terminate { reason: String::new() },
                nodes: (0..n).map(node).collect(),
                reason: String::new(),
            })
        };
        assert_eq!(resource_of(&act(2)), format!("node:{},{}", node(0), node(1)));
        let many = resource_of(&act(MAX_NODES));
        assert!(many.len() <= MAX_RESOURCE_BYTES + 16, "{many}");
        assert!(many.starts_with(&format!("node:{},", node(0))) && many.ends_with(" more)"), "{many}");
    }

    #[test]
    fn action_specs_parse_as_runbooks() {
        let pool: PoolName = "train".parse().expect("pool");
        let steps = [
            StepAction::Cordon { reason: String::new() },
            StepAction::Uncordon,
            StepAction::Drain { reason: String::new() },
            StepAction::Diagnose { test: "dcgm \"level 3\"".to_owned() },
            StepAction::Terminate { reason: String::new() },
            StepAction::ScalePool { pool: Some(pool), target: 4 },
        ];
        for step in steps {
            let text = action_spec("some_tool", &step, 6, "xid 79: \"fell off the bus\"\nsecond line");
            let spec = bosun_config::runbook::RunbookSpec::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(spec.steps.len(), 1);
            assert_eq!(spec.steps[0].action.name(), step.name(), "{text}");
            assert_eq!(spec.max_parallel, 6);
            match (&spec.steps[0].action, &step) {
                (StepAction::Terminate { reason }, _) | (StepAction::Cordon { reason }, _) => {
                    assert_eq!(reason, "xid 79: \"fell off the bus\"\nsecond line");
                }
                (StepAction::Diagnose { test }, _) => assert_eq!(test, "dcgm \"level 3\""),
                (StepAction::ScalePool { target, .. }, _) => assert_eq!(*target, 4),
                _ => {}
            }
        }
    }
}
