//! Commands: issue, at-least-once delivery by long poll, idempotent acknowledgement,
//! cancellation and expiry (SPEC 3.4).
//!
//! A command is handed out (DELIVERED) by the poll that returns it; if the agent does not
//! acknowledge it within the redelivery timeout, the next poll hands it out again, so a
//! lost response loses nothing. Agents deduplicate by command id, and acknowledging twice
//! changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_core::command::CommandRequest;
use bosun_core::{
    Actor, Command, CommandId, CommandKind, CommandState, CommandTrigger, InstanceState, NodeId, NodeStatus,
    NodeTrigger, ResourceKind,
};
use bosun_store::{CommandFilter, PageRequest, StoreError, Write, WriteBatch, all_pages};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, Edit};

/// The longest time-to-live an issuer may ask for.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Commands handed out by one poll.
const MAX_PER_POLL: u32 = 100;
/// How often a change is recomputed after losing a compare-and-set race.
const ATTEMPTS: usize = 8;

/// The status change a command makes on the server at once, if any.
fn status_trigger(kind: &CommandKind) -> Option<NodeTrigger> {
    match kind {
        CommandKind::Cordon => Some(NodeTrigger::Cordon),
        CommandKind::Uncordon => Some(NodeTrigger::Uncordon),
        CommandKind::Drain => Some(NodeTrigger::Drain),
        CommandKind::Terminate => Some(NodeTrigger::Terminate),
        _ => None,
    }
}

/// Issues a command. Cordon, uncordon, drain and terminate change the node's status in the
/// same transaction as the command is created, so the status and the command never
/// disagree; an illegal transition is refused naming the node's status.
pub(crate) async fn issue(app: &App, request: CommandRequest, actor: &Actor) -> ApiResult<Command> {
    issue_with(app, request, actor, |_| Ok(()), |_| Vec::new()).await
}

/// [`issue`], refused when `check` refuses the node as it is read for the change, and
/// committing `also(&command)` in the same transaction (a runbook run records the step
/// that issued the command with it, so a restart never issues it twice).
pub(crate) async fn issue_with(
    app: &App,
    request: CommandRequest,
    actor: &Actor,
    check: impl Fn(&bosun_core::Node) -> ApiResult<()>,
    also: impl Fn(&Command) -> Vec<Write>,
) -> ApiResult<Command> {
    let now = app.now();
    let node_id = request.node_id.clone();
    let reason =
        if request.reason.is_empty() { format!("{} by {actor}", request.kind) } else { request.reason.clone() };
    let command = Command::issue(request, actor.clone(), now).map_err(|e| match e {
        bosun_core::command::CommandError::Invalid(e) => ApiError::Invalid(e),
        bosun_core::command::CommandError::Transition(e) => ApiError::transition(&node_id, e),
    })?;
    let trigger = status_trigger(&command.kind);
    let (_, command) = nodes::edit_node(app, &node_id, actor, &reason, |node| {
        check(node)?;
        if node.status == NodeStatus::Terminated {
            return Err(ApiError::FailedPrecondition(format!(
                "node {node_id} is TERMINATED and takes no more commands"
            )));
        }
        // TERMINATE may be issued again to a TERMINATING node whose first one was lost
        // (cancelled, expired, failed): the status stays, the new command is delivered.
        let retried_termination = trigger == Some(NodeTrigger::Terminate) && node.status == NodeStatus::Terminating;
        if let Some(trigger) = trigger.filter(|_| !retried_termination) {
            node.apply(trigger, &reason, now).map_err(|e| ApiError::transition(&node_id, e))?;
        }
        let mut writes = vec![Write::CreateCommand(Box::new(command.clone()))];
        writes.extend(also(&command));
        Ok(Edit::Commit { writes, value: command.clone() })
    })
    .await?;
    app.waiters.wake(&node_id);
    app.notifier.notify(&command, &app.store, &app.metrics);
    tracing::info!(node = %node_id, command = %command.id, kind = %command.kind, %actor, "command issued");
    Ok(command)
}

/// Waits up to `wait` (capped by the server) for commands due for `node`, and hands them
/// out. Answers at once when some are due, when `wait` is zero, and on shutdown.
pub(crate) async fn poll(app: &App, node: &NodeId, wait: Duration) -> ApiResult<Vec<Command>> {
    let wait = wait.min(app.settings.command_poll_wait);
    let give_up = tokio::time::Instant::now() + wait;
    let notify = app.waiters.get(node);
    // Counted as waiting from its first wait until it answers.
    let mut waiting = None;
    loop {
        // Registered before looking, so a command issued between the look and the wait
        // still wakes this poll.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let (delivered, next_due) = deliver_due(app, node).await?;
        if !delivered.is_empty() {
            return Ok(delivered);
        }
        let now = tokio::time::Instant::now();
        if now >= give_up {
            return Ok(Vec::new());
        }
        // A redelivery falling due also ends the wait.
        let until = next_due.map_or(give_up, |due| give_up.min(now + due));
        waiting.get_or_insert_with(|| app.metrics.waiting("PollCommands"));
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(until) => {}
            () = app.shutdown.cancelled() => return Ok(Vec::new()),
        }
    }
}

/// Marks every command due for `node` DELIVERED and returns them, with how long until the
/// next delivered command falls due for redelivery.
async fn deliver_due(app: &App, node: &NodeId) -> ApiResult<(Vec<Command>, Option<Duration>)> {
    let redelivery = app.settings.command_redelivery;
    for _ in 0..3 {
        let now = app.now();
        // New commands and ones awaiting redelivery are read separately, so a backlog of
        // delivered-but-unacknowledged commands never hides a new one.
        let mut outstanding = Vec::new();
        for state in [CommandState::Pending, CommandState::Delivered] {
            let filter = CommandFilter { node_id: Some(node.clone()), states: vec![state], kind: None };
            outstanding.extend(app.store.list_commands(&filter, &PageRequest::first(MAX_PER_POLL)).await?.items);
        }
        let mut due = Vec::new();
        let mut next_due: Option<Duration> = None;
        for mut command in outstanding {
            if command.is_due_for_delivery(now, redelivery) {
                command.apply(CommandTrigger::Deliver, now).map_err(|e| ApiError::transition(command.id, e))?;
                due.push(command);
            } else if let (CommandState::Delivered, Some(at)) = (command.state, command.delivered_at)
                && command.deadline > now
            {
                let left = redelivery.saturating_sub(now.saturating_since(at));
                next_due = Some(next_due.map_or(left, |d| d.min(left)));
            }
        }
        if due.is_empty() {
            return Ok((due, next_due));
        }
        let mut batch = WriteBatch::new(Actor::Node(node.clone()), "delivered");
        for command in &due {
            batch = batch.update_command(command.clone());
        }
        match app.store.commit(batch).await {
            Ok(committed) => {
                for (i, command) in due.iter_mut().enumerate() {
                    command.revision = committed.revision(i);
                }
                return Ok((due, next_due));
            }
            // Another poll for the same node (a duplicate agent, a retried request) won a
            // command first: look again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("commands of node {node} kept changing while they were delivered; poll again")))
}

/// What an agent reports about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    Accepted,
    Succeeded,
    Failed,
}

impl AckOutcome {
    fn target(self) -> CommandState {
        match self {
            AckOutcome::Accepted => CommandState::Acked,
            AckOutcome::Succeeded => CommandState::Succeeded,
            AckOutcome::Failed => CommandState::Failed,
        }
    }
}

/// Records an agent's acknowledgement. Idempotent: acknowledging again, or acknowledging
/// a command that has already finished (expired, cancelled), changes nothing and answers
/// with the command's state, so an agent retrying a lost response is never stuck.
pub(crate) async fn ack(
    app: &App,
    node: &NodeId,
    id: &CommandId,
    outcome: AckOutcome,
    message: &str,
    details: BTreeMap<String, String>,
) -> ApiResult<CommandState> {
    let actor = Actor::Node(node.clone());
    for _ in 0..ATTEMPTS {
        let now = app.now();
        let mut command = match app.store.command(id).await {
            Ok(command) if &command.node_id == node => command,
            // Another node's command is reported as unknown: ids are not to be probed.
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::Store(StoreError::not_found(ResourceKind::Command, id)));
            }
            Err(error) => return Err(error.into()),
        };
        if command.state.is_final() || command.state == outcome.target() {
            return Ok(command.state);
        }
        if command.state == CommandState::Pending {
            // Delivered by a poll this server did not see commit (another replica).
            command.apply(CommandTrigger::Deliver, now).map_err(|e| ApiError::transition(id, e))?;
        }
        let trigger = match outcome {
            AckOutcome::Accepted => CommandTrigger::Ack,
            AckOutcome::Succeeded => CommandTrigger::Succeed,
            AckOutcome::Failed => CommandTrigger::Fail,
        };
        command.apply(trigger, now).map_err(|e| ApiError::transition(id, e))?;
        command.outcome_message = message.to_owned();
        if !details.is_empty() {
            // The notifier's delivery outcome stays beside what the agent reports.
            let notified = command.result.remove(crate::notifier::RESULT_KEY);
            command.result = details.clone();
            if let Some(notified) = notified {
                while command.result.len() >= bosun_core::command::MAX_COMMAND_PARAMETERS {
                    command.result.pop_last();
                }
                command.result.insert(crate::notifier::RESULT_KEY.to_owned(), notified);
            }
        }
        command.validate()?;
        let reason = if message.is_empty() { format!("agent reported {}", command.state) } else { message.to_owned() };
        let mut batch = WriteBatch::new(actor.clone(), reason);
        batch = batch.update_command(command.clone());
        if let Some(write) = finish_termination(app, &command).await? {
            batch.push(write);
        }
        let remediation = crate::remediation::on_command_finished(app, &command).await?;
        let remediation_node = remediation.is_some();
        batch.writes.extend(remediation);
        match app.store.commit(batch).await {
            Ok(_) => {
                let changed_node = (command.kind == CommandKind::Terminate && command.state == CommandState::Succeeded)
                    || remediation_node;
                if changed_node && let Ok(node) = app.store.node(node).await {
                    app.fleet.upsert(&node);
                }
                return Ok(command.state);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("command {id} kept changing while it was acknowledged; retry")))
}

/// A TERMINATE that succeeded on a machine no provider instance backs is the end of the
/// node: the agent shut the machine down. A provider-managed node stays TERMINATING
/// until its provider confirms the instance is gone.
async fn finish_termination(app: &App, command: &Command) -> ApiResult<Option<Write>> {
    if command.kind != CommandKind::Terminate || command.state != CommandState::Succeeded {
        return Ok(None);
    }
    let node = app.store.node(&command.node_id).await?;
    if node.status != NodeStatus::Terminating {
        return Ok(None);
    }
    let instance = app.store.instance_for_node(&node.id).await?;
    if instance.is_some_and(|i| !matches!(i.state, InstanceState::Terminated | InstanceState::Failed)) {
        return Ok(None);
    }
    let expected = node.revision;
    let mut node = node;
    node.apply(NodeTrigger::TerminationConfirmed, "the agent shut the machine down", app.now())
        .map_err(|e| ApiError::transition(&command.node_id, e))?;
    Ok(Some(Write::UpdateNode { node: Box::new(node), expected, gpus: None }))
}

/// Withdraws a command the agent has not acknowledged yet. The status change a cordon,
/// drain or terminate made is not undone: uncordon a cordoned or draining node; a
/// TERMINATING node takes TERMINATE again.
pub(crate) async fn cancel(app: &App, id: &CommandId, reason: &str, actor: &Actor) -> ApiResult<Command> {
    for _ in 0..ATTEMPTS {
        let mut command = app.store.command(id).await?;
        command.apply(CommandTrigger::Cancel, app.now()).map_err(|e| ApiError::transition(id, e))?;
        if !reason.is_empty() {
            command.outcome_message = reason.to_owned();
        }
        let why = if reason.is_empty() { "cancelled".to_owned() } else { reason.to_owned() };
        match app.store.commit(WriteBatch::new(actor.clone(), why).update_command(command.clone())).await {
            Ok(committed) => {
                command.revision = committed.revision(0);
                return Ok(command);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Aborted(format!("command {id} kept changing while it was cancelled; retry")))
}

/// Expires every PENDING or DELIVERED command past its deadline. Returns how many.
pub(crate) async fn expire_overdue(app: &App) -> ApiResult<usize> {
    let now = app.now();
    let filter =
        &CommandFilter { node_id: None, states: vec![CommandState::Pending, CommandState::Delivered], kind: None };
    let store = &app.store;
    let outstanding = all_pages(|page| async move { store.list_commands(filter, &page).await }).await?;
    let overdue: Vec<Command> = outstanding.into_iter().filter(|c| c.deadline <= now).collect();
    let actor = Actor::system("commands");
    let mut expired = 0;
    for mut command in overdue {
        if command.apply(CommandTrigger::Expire, now).is_err() {
            continue;
        }
        command.outcome_message = "the deadline passed before the agent acknowledged it".to_owned();
        match app.store.commit(WriteBatch::new(actor.clone(), "deadline passed").update_command(command)).await {
            Ok(_) => expired += 1,
            // Acknowledged or cancelled meanwhile: nothing to expire.
            Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(expired)
}
