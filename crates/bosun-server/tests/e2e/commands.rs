//! Every command path: status commands delivered to a real agent, at-least-once delivery
//! with redelivery, idempotent acks, cancellation, expiry, diagnostics.

use std::time::Duration;

use bosun_agent::{AckOutcome, CommandAck, ControlPlane};
use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    a_lost_terminate_can_be_issued_again,
    status_commands_change_status_at_once_and_reach_the_agent,
    undelivered_commands_are_redelivered_and_acks_are_idempotent,
    commands_are_cancelled_and_expire,
    diagnostics_run_on_the_agent_and_report_back,
);

fn issue(node: &str, kind: v1::CommandType) -> v1::IssueCommandRequest {
    v1::IssueCommandRequest { node_id: node.to_owned(), r#type: kind.into(), ..Default::default() }
}

async fn issued(h: &Harness, request: v1::IssueCommandRequest) -> v1::Command {
    h.root().issue_command(request).await.expect("issue").into_owned().command.as_option().expect("command").clone()
}

async fn command(h: &Harness, id: &str) -> (v1::Command, Vec<v1::CommandEvent>) {
    let response = h
        .root()
        .get_command(v1::GetCommandRequest { command_id: id.to_owned(), ..Default::default() })
        .await
        .expect("get command")
        .into_owned();
    (response.command.as_option().expect("command").clone(), response.events)
}

async fn wait_for_command(h: &Harness, id: &str, state: v1::CommandState) -> v1::Command {
    for _ in 0..400 {
        let (command, _) = command(h, id).await;
        if command.state.as_known() == Some(state) {
            return command;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("command {id} never reached {state:?}: {:?}", command(h, id).await);
}

async fn status_commands_change_status_at_once_and_reach_the_agent(backend: Backend) {
    use v1::CommandType as T;
    use v1::NodeStatus as S;
    let Some(h) = Harness::start(backend).await else { return };
    let agent = h.spawn_agent("n1", 2);
    h.wait_for_node("n1", "registered", |_| true).await;

    for (kind, status) in [
        (T::COMMAND_TYPE_CORDON, S::NODE_STATUS_CORDONED),
        (T::COMMAND_TYPE_UNCORDON, S::NODE_STATUS_ACTIVE),
        (T::COMMAND_TYPE_DRAIN, S::NODE_STATUS_DRAINING),
    ] {
        let command = issued(&h, issue("n1", kind)).await;
        assert_eq!(status_of(&h.node("n1").await), status, "{kind:?} changes the status before delivery");
        wait_for_command(&h, &command.command_id, v1::CommandState::COMMAND_STATE_SUCCEEDED).await;
    }
    let flags = &agent.flags;
    assert!(flags.is_cordoned() && flags.is_draining(), "the agent applied cordon and drain locally");

    // DRAINING cannot be cordoned; the refusal names the state.
    let (code, message) = refused(h.root().issue_command(issue("n1", T::COMMAND_TYPE_CORDON)).await);
    assert_eq!(code, ErrorCode::FailedPrecondition);
    assert!(message.contains("DRAINING"), "{message}");

    let terminate = issued(&h, issue("n1", T::COMMAND_TYPE_TERMINATE)).await;
    // TERMINATING at once; the agent, woken by the command, may already have shut the
    // machine down (TERMINATED) by the time the node is read.
    let status = status_of(&h.node("n1").await);
    assert!(matches!(status, S::NODE_STATUS_TERMINATING | S::NODE_STATUS_TERMINATED), "{status:?}");
    wait_for_command(&h, &terminate.command_id, v1::CommandState::COMMAND_STATE_SUCCEEDED).await;
    h.wait_for_node("n1", "TERMINATED", |n| status_of(n) == S::NODE_STATUS_TERMINATED).await;
    let (code, message) = refused(h.root().issue_command(issue("n1", T::COMMAND_TYPE_REBOOT)).await);
    assert_eq!(code, ErrorCode::FailedPrecondition);
    assert!(message.contains("TERMINATED"), "{message}");

    let listed = h
        .root()
        .list_commands(v1::ListCommandsRequest { node_id: "n1".into(), ..Default::default() })
        .await
        .expect("list")
        .into_owned();
    assert_eq!(listed.commands.len(), 4, "every accepted command is listed");
    let _ = agent.task.await;
    h.stop().await;
}

async fn undelivered_commands_are_redelivered_and_acks_are_idempotent(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    let n1 = node_id("n1");
    client.register(&registration("n1"), None).await.expect("register");
    let reboot = issued(&h, issue("n1", v1::CommandType::COMMAND_TYPE_REBOOT)).await;

    let first = client.poll_commands(&n1, Duration::ZERO).await.expect("poll");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id.to_string(), reboot.command_id);
    // The response was "lost": nothing is due until the redelivery timeout passes.
    assert!(client.poll_commands(&n1, Duration::ZERO).await.expect("poll").is_empty());
    h.clock.advance(h.settings.command_redelivery + Duration::from_secs(1));
    let again = client.poll_commands(&n1, Duration::ZERO).await.expect("poll");
    assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), [first[0].id], "handed out again");
    let (delivered, _) = command(&h, &reboot.command_id).await;
    assert_eq!(delivered.delivery_count, 2);

    let ack = |outcome| CommandAck {
        command_id: first[0].id,
        outcome,
        message: "rebooted".into(),
        details: Default::default(),
    };
    client.ack_command(&n1, &ack(AckOutcome::Accepted)).await.expect("accepted");
    client.ack_command(&n1, &ack(AckOutcome::Succeeded)).await.expect("succeeded");
    let seq = h.change_count().await;
    client.ack_command(&n1, &ack(AckOutcome::Succeeded)).await.expect("the same ack again is fine");
    client.ack_command(&n1, &ack(AckOutcome::Accepted)).await.expect("a late ACCEPTED is fine too");
    assert_eq!(h.change_count().await, seq, "repeated acks write nothing");
    let (done, events) = command(&h, &reboot.command_id).await;
    assert_eq!(done.state.as_known(), Some(v1::CommandState::COMMAND_STATE_SUCCEEDED));
    let states: Vec<_> = events.iter().map(|e| e.state.as_known().expect("state")).collect();
    use v1::CommandState as C;
    assert_eq!(
        states,
        [
            C::COMMAND_STATE_PENDING,
            C::COMMAND_STATE_DELIVERED,
            C::COMMAND_STATE_DELIVERED,
            C::COMMAND_STATE_ACKED,
            C::COMMAND_STATE_SUCCEEDED
        ]
    );
    assert!(client.poll_commands(&n1, Duration::ZERO).await.expect("poll").is_empty(), "finished commands stay done");
    h.stop().await;
}

async fn commands_are_cancelled_and_expire(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    let n1 = node_id("n1");
    client.register(&registration("n1"), None).await.expect("register");

    let reboot = issued(&h, issue("n1", v1::CommandType::COMMAND_TYPE_REBOOT)).await;
    let cancelled = h
        .root()
        .cancel_command(v1::CancelCommandRequest {
            command_id: reboot.command_id.clone(),
            reason: "changed my mind".into(),
            ..Default::default()
        })
        .await
        .expect("cancel")
        .into_owned();
    assert_eq!(
        cancelled.command.as_option().expect("command").state.as_known(),
        Some(v1::CommandState::COMMAND_STATE_CANCELLED)
    );
    assert!(client.poll_commands(&n1, Duration::ZERO).await.expect("poll").is_empty(), "cancelled: never delivered");
    let (code, message) = refused(
        h.root()
            .cancel_command(v1::CancelCommandRequest { command_id: reboot.command_id.clone(), ..Default::default() })
            .await,
    );
    assert_eq!(code, ErrorCode::FailedPrecondition);
    assert!(message.contains("CANCELLED"), "{message}");

    let short =
        issued(&h, v1::IssueCommandRequest { ttl_seconds: 60, ..issue("n1", v1::CommandType::COMMAND_TYPE_REBOOT) })
            .await;
    h.clock.advance(Duration::from_secs(59));
    h.server().janitor().await.expect("janitor");
    assert_eq!(command(&h, &short.command_id).await.0.state.as_known(), Some(v1::CommandState::COMMAND_STATE_PENDING));
    h.clock.advance(Duration::from_secs(2));
    h.server().janitor().await.expect("janitor");
    assert_eq!(command(&h, &short.command_id).await.0.state.as_known(), Some(v1::CommandState::COMMAND_STATE_EXPIRED));
    assert!(client.poll_commands(&n1, Duration::ZERO).await.expect("poll").is_empty(), "expired: never delivered");
    h.stop().await;
}

async fn diagnostics_run_on_the_agent_and_report_back(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let agent = h.spawn_agent("n1", 4);
    h.wait_for_node("n1", "registered", |_| true).await;
    let diagnose = issued(
        &h,
        v1::IssueCommandRequest {
            parameters: [("test".to_owned(), "quick".to_owned())].into_iter().collect(),
            ..issue("n1", v1::CommandType::COMMAND_TYPE_RUN_DIAGNOSTIC)
        },
    )
    .await;
    let done = wait_for_command(&h, &diagnose.command_id, v1::CommandState::COMMAND_STATE_SUCCEEDED).await;
    assert!(!done.result.is_empty(), "the diagnostic's findings come back: {done:?}");
    agent.stop().await;
    h.stop().await;
}

async fn a_lost_terminate_can_be_issued_again(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    let first = issued(&h, issue("n1", v1::CommandType::COMMAND_TYPE_TERMINATE)).await;
    h.root()
        .cancel_command(v1::CancelCommandRequest { command_id: first.command_id, ..Default::default() })
        .await
        .expect("cancel");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_TERMINATING, "cancelling undoes nothing");
    // The node is not stuck: TERMINATE again, and this time the agent confirms it.
    let again = issued(&h, issue("n1", v1::CommandType::COMMAND_TYPE_TERMINATE)).await;
    let n1 = node_id("n1");
    let delivered = client.poll_commands(&n1, Duration::ZERO).await.expect("poll");
    assert_eq!(delivered.iter().map(|c| c.id.to_string()).collect::<Vec<_>>(), [again.command_id]);
    let ack = CommandAck {
        command_id: delivered[0].id,
        outcome: AckOutcome::Succeeded,
        message: "bye".into(),
        details: Default::default(),
    };
    client.ack_command(&n1, &ack).await.expect("ack");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_TERMINATED);
    h.stop().await;
}
