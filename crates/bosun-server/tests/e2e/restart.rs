//! Restarting the server on the same database keeps every node, command and instance, and
//! running agents carry on without operator action.

use std::time::Duration;

use bosun_api::v1;
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(a_restart_keeps_the_fleet_and_agents_carry_on);

async fn a_restart_keeps_the_fleet_and_agents_carry_on(backend: Backend) {
    let Some(mut h) = Harness::start(backend).await else { return };
    let agents: Vec<_> = ["n1", "n2"].iter().map(|n| h.spawn_agent(n, 2)).collect();
    for node in ["n1", "n2"] {
        h.wait_for_node(node, "registered", |_| true).await;
    }
    let cordon = v1::IssueCommandRequest {
        node_id: "n1".into(),
        r#type: v1::CommandType::COMMAND_TYPE_CORDON.into(),
        ..Default::default()
    };
    h.root().issue_command(cordon).await.expect("cordon");
    h.wait_for_node("n1", "CORDONED", |n| status_of(n) == v1::NodeStatus::NODE_STATUS_CORDONED).await;
    let before = h.root().list_commands(v1::ListCommandsRequest::default()).await.expect("list").into_owned().commands;
    let seq_before = h.change_count().await;

    h.restart().await;

    let nodes = h.root().list_nodes(v1::ListNodesRequest::default()).await.expect("list").into_owned().nodes;
    let statuses: Vec<_> = nodes.iter().map(|n| (n.node_id.as_str(), status_of(n))).collect();
    assert_eq!(statuses, [("n1", v1::NodeStatus::NODE_STATUS_CORDONED), ("n2", v1::NodeStatus::NODE_STATUS_ACTIVE)]);
    let after = h.root().list_commands(v1::ListCommandsRequest::default()).await.expect("list").into_owned().commands;
    assert_eq!(after.len(), before.len(), "every command survives");
    assert!(h.change_count().await >= seq_before, "the change log survives");

    // The agents were never told about the restart; a command issued now reaches them.
    let drain = v1::IssueCommandRequest {
        node_id: "n2".into(),
        r#type: v1::CommandType::COMMAND_TYPE_DRAIN.into(),
        ..Default::default()
    };
    let command = h.root().issue_command(drain).await.expect("drain").into_owned();
    let id = command.command.as_option().expect("command").command_id.clone();
    let mut state = None;
    for _ in 0..400 {
        let got = h.root().get_command(v1::GetCommandRequest { command_id: id.clone(), ..Default::default() }).await;
        state = got.expect("get").into_owned().command.as_option().and_then(|c| c.state.as_known());
        if state == Some(v1::CommandState::COMMAND_STATE_SUCCEEDED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, Some(v1::CommandState::COMMAND_STATE_SUCCEEDED), "the agent acknowledged after the restart");
    for agent in agents {
        agent.stop().await;
    }
    h.stop().await;
}
