//! Commands: issue, delivery bookkeeping, history, lists.

use std::time::Duration;

use bosun_core::{Actor, Command, CommandKind, CommandState, CommandTrigger};

use super::{Ctx, E, assert_err, batch, command_request, node_id};
use crate::query::{CommandFilter, PageRequest};
use crate::write::WriteBatch;

async fn ids(ctx: &Ctx, filter: &CommandFilter) -> Vec<bosun_core::CommandId> {
    let page = ctx.store.list_commands(filter, &PageRequest::first(100)).await.expect("list");
    page.items.iter().map(|c| c.id).collect()
}

pub(crate) async fn create_requires_existing_node(ctx: &Ctx) {
    let command =
        Command::issue(command_request("ghost", CommandKind::Drain), super::actor(), ctx.now()).expect("valid");
    let message = assert_err!(ctx.store.commit(batch("issue").create_command(command)).await, E::NotFound { .. });
    assert_eq!(message, "node ghost not found");
}

pub(crate) async fn create_then_get_with_first_event(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let command =
        Command::issue(command_request("n1", CommandKind::RunDiagnostic), super::actor(), ctx.now()).expect("valid");
    ctx.store.commit(batch("run diagnostics").create_command(command.clone())).await.expect("issue");
    let stored = ctx.store.command(&command.id).await.expect("get");
    assert_eq!(stored, command);
    let events = ctx.store.command_events(&command.id).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].state), (1, CommandState::Pending));
    assert_eq!(events[0].message, "run diagnostics");
    assert_eq!(events[0].actor, super::actor());
}

pub(crate) async fn state_changes_and_redeliveries_add_events(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let mut command = ctx.issue_command("n1", CommandKind::Terminate).await;
    let agent = Actor::Node(node_id("n1"));
    let steps = [
        (CommandTrigger::Deliver, "delivered"),
        (CommandTrigger::Deliver, "redelivered after timeout"),
        (CommandTrigger::Ack, "agent accepted"),
        (CommandTrigger::Succeed, "drained and shut down"),
    ];
    for (trigger, reason) in steps {
        ctx.clock.advance(Duration::from_secs(31));
        command.apply(trigger, ctx.now()).expect("legal");
        ctx.store.commit(WriteBatch::new(agent.clone(), reason).update_command(command.clone())).await.expect("update");
        command = ctx.store.command(&command.id).await.expect("get");
    }
    assert_eq!(command.delivery_count, 2);
    assert_eq!(command.state, CommandState::Succeeded);
    assert!(command.finished_at.is_some() && command.acked_at.is_some());
    let events = ctx.store.command_events(&command.id).await.expect("events");
    let summary: Vec<_> = events.iter().map(|e| (e.seq, e.state.as_str(), e.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            (1, "PENDING", "issue"),
            (2, "DELIVERED", "delivered"),
            (3, "DELIVERED", "redelivered after timeout"),
            (4, "ACKED", "agent accepted"),
            (5, "SUCCEEDED", "drained and shut down"),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].at < w[1].at));
    assert_eq!(events[4].actor, agent);
}

pub(crate) async fn updates_without_state_change_add_no_event(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let mut command = ctx.issue_command("n1", CommandKind::Reboot).await;
    command.parameters.insert("note".into(), "re-read".into());
    ctx.store.commit(batch("edit").update_command(command.clone())).await.expect("update");
    assert_eq!(ctx.store.command_events(&command.id).await.expect("events").len(), 1);
    assert_eq!(ctx.store.command(&command.id).await.expect("get").revision.get(), 2);
}

pub(crate) async fn illegal_transition_is_rejected(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let mut command = ctx.issue_command("n1", CommandKind::Reboot).await;
    command.apply(CommandTrigger::Cancel, ctx.now()).expect("legal");
    ctx.store.commit(batch("cancel").update_command(command.clone())).await.expect("cancel");
    let mut command = ctx.store.command(&command.id).await.expect("get");
    command.state = CommandState::Delivered;
    let message =
        assert_err!(ctx.store.commit(batch("revive").update_command(command)).await, E::InvalidTransition { .. });
    assert!(message.ends_with("command cannot go from CANCELLED to DELIVERED"), "{message}");
    let fresh = Command {
        state: CommandState::Delivered,
        ..Command::issue(command_request("n1", CommandKind::Reboot), super::actor(), ctx.now()).expect("valid")
    };
    let message = assert_err!(ctx.store.commit(batch("bad").create_command(fresh)).await, E::Invalid(_));
    assert_eq!(message, "invalid state: a new command must be PENDING");
}

pub(crate) async fn node_and_kind_cannot_change(ctx: &Ctx) {
    ctx.create_node("n1").await;
    ctx.create_node("n2").await;
    let command = ctx.issue_command("n1", CommandKind::Reboot).await;
    let mut moved = command.clone();
    moved.node_id = node_id("n2");
    let message = assert_err!(ctx.store.commit(batch("move").update_command(moved)).await, E::Invalid(_));
    assert!(message.contains("node_id cannot change"), "{message}");
    let mut changed = command;
    changed.kind = CommandKind::Terminate;
    assert_err!(ctx.store.commit(batch("change").update_command(changed)).await, E::Invalid(_));
}

pub(crate) async fn list_in_issue_order_with_state_filter(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let mut issued = Vec::new();
    for _ in 0..5 {
        ctx.clock.advance(Duration::from_millis(3));
        issued.push(ctx.issue_command("n1", CommandKind::Reboot).await);
    }
    assert_eq!(ids(ctx, &CommandFilter::default()).await, issued.iter().map(|c| c.id).collect::<Vec<_>>());
    let mut delivered = issued[1].clone();
    delivered.apply(CommandTrigger::Deliver, ctx.now()).expect("legal");
    ctx.store.commit(batch("deliver").update_command(delivered)).await.expect("deliver");
    let pending = CommandFilter { states: vec![CommandState::Pending], ..Default::default() };
    let expected: Vec<_> = issued.iter().filter(|c| c.id != issued[1].id).map(|c| c.id).collect();
    assert_eq!(ids(ctx, &pending).await, expected);
    let outstanding =
        CommandFilter { states: vec![CommandState::Pending, CommandState::Delivered], ..Default::default() };
    assert_eq!(ids(ctx, &outstanding).await.len(), 5);
    let first_page = ctx.store.list_commands(&CommandFilter::default(), &PageRequest::first(3)).await.expect("page");
    let second = ctx
        .store
        .list_commands(&CommandFilter::default(), &PageRequest::after(3, first_page.next.expect("more")))
        .await
        .expect("page");
    let paged: Vec<_> = first_page.items.iter().chain(&second.items).map(|c| c.id).collect();
    assert_eq!(paged, issued.iter().map(|c| c.id).collect::<Vec<_>>());
}

pub(crate) async fn list_by_node_and_kind(ctx: &Ctx) {
    ctx.create_node("n1").await;
    ctx.create_node("n2").await;
    let a = ctx.issue_command("n1", CommandKind::Drain).await;
    let b = ctx.issue_command("n2", CommandKind::Drain).await;
    let c = ctx.issue_command("n1", CommandKind::Cordon).await;
    let on_n1 = CommandFilter { node_id: Some(node_id("n1")), ..Default::default() };
    let mut got = ids(ctx, &on_n1).await;
    got.sort();
    let mut want = vec![a.id, c.id];
    want.sort();
    assert_eq!(got, want);
    let drains = CommandFilter { kind: Some(CommandKind::Drain), ..Default::default() };
    let mut got = ids(ctx, &drains).await;
    got.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(got, want);
}

pub(crate) async fn events_of_missing_command_is_not_found(ctx: &Ctx) {
    let id = bosun_core::CommandId::new_at(ctx.now());
    assert_err!(ctx.store.command_events(&id).await, E::NotFound { .. });
    assert_err!(ctx.store.command(&id).await, E::NotFound { .. });
}

pub(crate) async fn custom_kind_round_trips(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let kind = CommandKind::custom("flash-bios").expect("valid");
    let command = ctx.issue_command("n1", kind.clone()).await;
    assert_eq!(command.kind, kind);
    let filter = CommandFilter { kind: Some(kind), ..Default::default() };
    assert_eq!(ids(ctx, &filter).await, [command.id]);
}
