//! Approvals: the policy's verdict on each step before it first runs, and the people's
//! decisions on the runs that wait for one.
//!
//! - A step allowed by the policy runs. One that requires an approval puts the run in
//!   AWAITING_APPROVAL with an [`Approval`] naming the role that may give it; one that is
//!   denied rejects the run, naming the rule.
//! - [`decide`] records a person's decision: the approver holds the required role (admin
//!   holds every role) and is not the run's requester. A decision is final.
//! - [`expire_overdue`] rejects runs whose approval nobody decided within
//!   `server.approval_timeout`.

use bosun_config::runbook::StepAction;
use std::collections::BTreeMap;

use bosun_core::{
    Actor, Approval, ApprovalDecision, ApprovalId, ApprovalOutcome, ApprovalPolicy, PolicyDecision, PoolName, Role,
    RunEvent, RunEventType, RunId, RunKind, RunStatus, RunTrigger, TaskRun,
};
use bosun_policy::approval::{ApprovalRules, Decision, Operation, builtin_rules};
use bosun_store::{ApprovalFilter, NodeFilter, Write, WriteBatch, all_pages};

use super::executor::{Driver, Flow};

/// Sets an event's step when it has one.
trait AtOptionalStep {
    fn at_optional_step(self, step: Option<u32>) -> Self;
}

impl AtOptionalStep for RunEvent {
    fn at_optional_step(mut self, step: Option<u32>) -> Self {
        self.step = step;
        self
    }
}
use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// Approvals expired per janitor pass (the rest in the next).
const EXPIRE_BATCH: u32 = 500;

/// The stored approval policy rules, or the built-in ones when none are stored (`true`).
pub(crate) async fn rules(app: &App) -> ApiResult<(Vec<ApprovalPolicy>, bool)> {
    let stored = app.store.approval_policies().await?;
    Ok(if stored.is_empty() { (builtin_rules(), true) } else { (stored, false) })
}

/// Decides step `step` of the driver's run before it first runs: the strictest decision
/// over the operations the step is (one per pool it touches).
pub(super) async fn gate(driver: &mut Driver<'_>, step: u32) -> ApiResult<Flow> {
    if driver.t.progress.approved(step) || driver.t.allowed.contains(&step) {
        return Ok(Flow::Continue);
    }
    let app = driver.app;
    let operations = operations(driver, step).await?;
    let Some((decision, operation)) = evaluate(app, operations).await? else { return Ok(Flow::Continue) };
    let rule = decision.rule.as_ref().map_or_else(|| "no rule".to_owned(), |r| format!("rule {r}"));
    let what = describe(driver, step, &operation);
    let now = app.now();
    match decision.decision {
        PolicyDecision::Allow => {
            driver.t.allowed.insert(step);
            Ok(Flow::Continue)
        }
        PolicyDecision::RequireApproval { role } => {
            let run = &driver.t.run;
            let approval = Approval {
                id: ApprovalId::new_at(now),
                run_id: run.id,
                step: Some(step),
                what: what.clone(),
                policy: decision.rule.clone(),
                required_role: role,
                requested_by: run.requested_by.clone(),
                requested_at: now,
                expires_at: now + app.settings.approval_timeout,
                decision: None,
                revision: bosun_core::Revision::FIRST,
            };
            let mut message = format!("{what} needs the approval of an {role} ({rule})");
            if let Some(error) = &decision.error {
                message.push_str(&format!("; the rule failed to evaluate: {error}"));
            }
            let event = driver
                .event(RunEventType::ApprovalRequested, message)
                .at_step(step)
                .with_data(serde_json::json!({ "approval": approval.id, "role": role, "rule": decision.rule }));
            let id = run.id;
            driver.t.run.apply(RunTrigger::AwaitApproval, now).map_err(|e| ApiError::transition(id, e))?;
            driver.commit(vec![event], vec![Write::CreateApproval(Box::new(approval))]).await?;
            tracing::info!(run = %driver.t.run.id, step, %role, "run awaits approval");
            Ok(Flow::Halt)
        }
        PolicyDecision::Deny => {
            let reason = format!("{what} is denied by the approval policy ({rule})");
            driver.t.run.apply(RunTrigger::Reject, now).map_err(|e| ApiError::transition(driver.t.run.id, e))?;
            driver.t.run.error = Some(reason.clone());
            let event = driver.event(RunEventType::StatusChanged, format!("rejected: {reason}")).at_step(step);
            driver.commit(vec![event], Vec::new()).await?;
            Ok(Flow::Halt)
        }
    }
}

/// How strict a decision is: deny, then an approval by a higher role, then allow.
fn strictness(decision: PolicyDecision) -> u8 {
    match decision {
        PolicyDecision::Allow => 0,
        PolicyDecision::RequireApproval { role } => 1 + role as u8,
        PolicyDecision::Deny => u8::MAX,
    }
}

/// The policy's decision over `operations`: the strictest, with the operation it was
/// made for; `None` when there is nothing to decide. The policy is compiled off the async
/// workers.
pub(crate) async fn evaluate(app: &App, operations: Vec<Operation>) -> ApiResult<Option<(Decision, Operation)>> {
    let (rules, _) = rules(app).await?;
    app.policies
        .run(move || {
            ApprovalRules::compile(rules).map(|compiled| {
                operations
                    .into_iter()
                    .map(|operation| (compiled.decide(&operation), operation))
                    .max_by_key(|(d, _)| strictness(d.decision))
            })
        })
        .await?
        .map_err(|e| ApiError::Internal(format!("the stored approval policy does not compile: {e}")))
}

/// Who asks for an action and in what capacity, as approval policies see it.
#[derive(Debug, Clone)]
pub(crate) struct Asker {
    pub actor: Actor,
    pub role: Role,
    pub kind: RunKind,
}

/// The operations `action` over `targets` nodes is, as approval policies see it: once per
/// pool the targets are in (`pools`: how many of them each holds), with that pool's share;
/// a pool resize once per pool it resizes (`pools`' keys when the action names none), over
/// the nodes it would remove.
pub(crate) async fn operations_for(
    app: &App,
    action: &StepAction,
    targets: u32,
    pools: &BTreeMap<PoolName, u32>,
    asker: &Asker,
) -> ApiResult<Vec<Operation>> {
    // `acted_on` of the pool's `size` nodes.
    let operation = |pool: Option<&PoolName>, targets: u32, acted_on: u32, size: u32| Operation {
        tool: action.name().to_owned(),
        risk: action.risk(),
        actor: actor_name(&asker.actor),
        role: asker.role,
        kind: asker.kind.to_string(),
        targets,
        pool: pool.map(ToString::to_string),
        pool_fraction: if size == 0 { 0.0 } else { f64::from(acted_on.min(size)) / f64::from(size) },
    };
    let mut operations = Vec::new();
    match action {
        StepAction::ScalePool { pool, target } => {
            let resized: Vec<&PoolName> = match pool {
                Some(pool) => vec![pool],
                None => pools.keys().collect(),
            };
            for pool in resized {
                let size = pool_size(app, pool).await?;
                let removed = size.saturating_sub(*target);
                operations.push(operation(Some(pool), removed, removed, size));
            }
        }
        _ => {
            for (pool, in_pool) in pools {
                let size = pool_size(app, pool).await?;
                operations.push(operation(Some(pool), targets, *in_pool, size));
            }
        }
    }
    if operations.is_empty() {
        operations.push(operation(None, targets, 0, 0));
    }
    Ok(operations)
}

/// The operations step `step` of the driver's run is (see [`operations_for`]).
async fn operations(driver: &Driver<'_>, step: u32) -> ApiResult<Vec<Operation>> {
    let action = &driver.t.spec.steps[step as usize].action;
    let targets = u32::try_from(driver.t.run.targets.len()).unwrap_or(u32::MAX);
    // A run an AI agent asked for is weighed as its session's, so rules written for AI
    // agents (`kind == 'ai_session'`) cover the runbooks it starts too.
    let kind = if driver.t.input.session_run.is_some() { RunKind::AiSession } else { driver.t.run.kind };
    let asker = Asker { actor: driver.t.run.requested_by.clone(), role: driver.t.input.role, kind };
    operations_for(driver.app, action, targets, &driver.t.input.pools, &asker).await
}

/// The pool's nodes that are not TERMINATED.
pub(crate) async fn pool_size(app: &App, pool: &bosun_core::PoolName) -> ApiResult<u32> {
    let filter = &NodeFilter { pool: Some(pool.clone()), ..NodeFilter::default() };
    let store = &app.store;
    let nodes = all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?;
    let live = nodes.iter().filter(|n| n.status != bosun_core::NodeStatus::Terminated).count();
    Ok(u32::try_from(live).unwrap_or(u32::MAX))
}

/// The name policies compare `actor` with: a token's name, else the actor as written.
fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Operator(name) => name.clone(),
        other => other.to_string(),
    }
}

fn describe(driver: &Driver<'_>, step: u32, operation: &Operation) -> String {
    let runbook = driver.t.run.runbook.as_ref().map_or_else(String::new, |r| format!(" of runbook {r}"));
    let risk = operation.risk.as_str();
    let pool = operation
        .pool
        .as_ref()
        .map_or_else(String::new, |pool| format!(", {:.0}% of pool {pool}", operation.pool_fraction * 100.0));
    format!("step {step} ({}, {risk}){runbook} on {} node(s){pool}", operation.tool, operation.targets)
}

/// A person's decision on the approval run `id` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Approve,
    Reject,
}

/// Records `by`'s decision (with role `role`) on the approval run `id` waits for.
pub(crate) async fn decide(
    app: &App,
    id: RunId,
    by: Actor,
    role: Role,
    verdict: Verdict,
    reason: &str,
) -> ApiResult<TaskRun> {
    if verdict == Verdict::Reject && reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "is required: say why the run may not go ahead"));
    }
    let mut run = app.store.run(&id).await?;
    let pending = app.store.list_approvals(&ApprovalFilter { run: Some(id), undecided: true }, 1).await?;
    let Some(mut approval) = pending.into_iter().next() else {
        let last = app.store.list_approvals(&ApprovalFilter { run: Some(id), undecided: false }, 100).await?;
        return Err(ApiError::FailedPrecondition(match last.iter().rev().find_map(|a| a.decision.as_ref()) {
            Some(decided) if run.status != RunStatus::AwaitingApproval => format!(
                "run {id} is {} and waits for no approval; its last approval was already {} by {}",
                run.status, decided.outcome, decided.by
            ),
            _ => format!("run {id} is {} and waits for no approval", run.status),
        }));
    };
    let now = app.now();
    if approval.expires_at <= now {
        return Err(ApiError::FailedPrecondition(format!(
            "approval {} expired at {} undecided; the run is rejected at the janitor's next pass",
            approval.id, approval.expires_at
        )));
    }
    let requester = run.requested_by == by;
    // The requester may withdraw their own run; approving it takes someone else.
    if verdict == Verdict::Approve && requester {
        return Err(ApiError::PermissionDenied(format!(
            "a requester cannot approve its own run: run {id} was started by {by}; another person holding the {} \
             role approves it{}",
            approval.required_role,
            if by == Actor::Operator("anonymous".to_owned()) {
                " (with no auth.tokens configured every caller is anonymous: configure tokens so approvals name people)"
            } else {
                ""
            }
        )));
    }
    if role < approval.required_role && !(verdict == Verdict::Reject && requester) {
        return Err(ApiError::PermissionDenied(format!(
            "approval {} needs the {} role; {by} holds the {role} role",
            approval.id, approval.required_role
        )));
    }
    let outcome = match verdict {
        Verdict::Approve => ApprovalOutcome::Approved,
        Verdict::Reject => ApprovalOutcome::Rejected,
    };
    let expected = approval.revision;
    approval.decision = Some(ApprovalDecision { outcome, by: by.clone(), reason: reason.to_owned(), at: now });
    let said = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    let mut events = vec![
        RunEvent::new(id, RunEventType::ApprovalDecided, format!("{outcome} by {by}{said}"))
            .with_data(serde_json::json!({ "approval": approval.id, "decision": outcome.as_str(), "by": by }))
            .at_optional_step(approval.step),
    ];
    match verdict {
        Verdict::Approve => {
            run.apply(RunTrigger::Start, now).map_err(|e| ApiError::transition(id, e))?;
            run.approved_by = Some(by.clone());
        }
        Verdict::Reject => {
            run.apply(RunTrigger::Reject, now).map_err(|e| ApiError::transition(id, e))?;
            run.error = Some(format!("approval rejected by {by}{said}"));
            events.push(RunEvent::new(id, RunEventType::StatusChanged, format!("rejected by {by}{said}")));
        }
    }
    let mut batch = WriteBatch::new(by.clone(), format!("approval {outcome}"))
        .with(Write::UpdateApproval { approval: Box::new(approval), expected })
        .update_run(run);
    for event in events {
        batch = batch.append_run_event(event);
    }
    app.store.commit(batch).await?;
    if verdict == Verdict::Reject {
        app.metrics.run_finished(RunStatus::Rejected.as_str());
    }
    tracing::info!(run = %id, actor = %by, %outcome, "approval decided");
    super::wake(app);
    Ok(app.store.run(&id).await?)
}

/// Expires the approvals undecided past their time and rejects their runs. Returns how
/// many expired.
pub(crate) async fn expire_overdue(app: &App) -> ApiResult<usize> {
    let now = app.now();
    let undecided = app.store.list_approvals(&ApprovalFilter { run: None, undecided: true }, EXPIRE_BATCH).await?;
    let actor = Actor::system("approvals");
    let mut expired = 0;
    for mut approval in undecided.into_iter().filter(|a| a.expires_at <= now) {
        let id = approval.run_id;
        let expected = approval.revision;
        let waited = bosun_config::duration::format(approval.expires_at.saturating_since(approval.requested_at));
        let why = format!("approval {} expired undecided after {waited}", approval.id);
        approval.decision = Some(ApprovalDecision {
            outcome: ApprovalOutcome::Expired,
            by: actor.clone(),
            reason: why.clone(),
            at: now,
        });
        let step = approval.step;
        let mut batch = WriteBatch::new(actor.clone(), why.clone())
            .with(Write::UpdateApproval { approval: Box::new(approval.clone()), expected });
        let mut run = app.store.run(&id).await?;
        let rejects = run.status == RunStatus::AwaitingApproval;
        if rejects {
            run.apply(RunTrigger::Reject, now).map_err(|e| ApiError::transition(id, e))?;
            run.error = Some(why.clone());
            batch = batch.update_run(run).append_run_event(RunEvent::new(
                id,
                RunEventType::StatusChanged,
                format!("rejected: {why}"),
            ));
        }
        batch = batch.append_run_event(
            RunEvent::new(id, RunEventType::ApprovalDecided, why)
                .with_data(
                    serde_json::json!({ "approval": approval.id, "decision": ApprovalOutcome::Expired.as_str() }),
                )
                .at_optional_step(step),
        );
        match app.store.commit(batch).await {
            Ok(_) => {
                expired += 1;
                if rejects {
                    app.metrics.run_finished(RunStatus::Rejected.as_str());
                }
            }
            // Decided meanwhile.
            Err(bosun_store::StoreError::Conflict { .. } | bosun_store::StoreError::FailedPrecondition { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(expired)
}
