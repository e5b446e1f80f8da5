//! Registration, health reports and the node lifecycle, with real agents.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::Clock;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    three_agents_register_and_a_fatal_xid_makes_one_unhealthy,
    registration_is_idempotent_and_does_not_launder_unhealthy,
    terminated_nodes_are_kept_then_deleted,
    a_large_report_is_judged_event_by_event,
);

fn command(node: &str, kind: v1::CommandType) -> v1::IssueCommandRequest {
    v1::IssueCommandRequest { node_id: node.to_owned(), r#type: kind.into(), ..Default::default() }
}

fn fault(node: &str, params: &[(&str, &str)]) -> v1::IssueCommandRequest {
    v1::IssueCommandRequest {
        node_id: node.to_owned(),
        r#type: v1::CommandType::COMMAND_TYPE_CUSTOM.into(),
        custom_name: bosun_agent::FAULT_COMMAND.to_owned(),
        parameters: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

async fn three_agents_register_and_a_fatal_xid_makes_one_unhealthy(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let agents: Vec<_> = ["n1", "n2", "n3"].iter().map(|n| h.spawn_agent(n, 8)).collect();
    for node in ["n1", "n2", "n3"] {
        // Registered, and its first health report (the boot check) is in.
        h.wait_for_node(node, "HEALTHY", |n| health_of(n) == v1::HealthStatus::HEALTH_STATUS_HEALTHY).await;
    }
    let listed = h.root().list_nodes(v1::ListNodesRequest::default()).await.expect("list").into_owned();
    let summary: Vec<_> =
        listed.nodes.iter().map(|n| (n.node_id.as_str(), status_of(n), health_of(n), n.gpu_count)).collect();
    assert_eq!(
        summary,
        [
            ("n1", v1::NodeStatus::NODE_STATUS_ACTIVE, v1::HealthStatus::HEALTH_STATUS_HEALTHY, 8),
            ("n2", v1::NodeStatus::NODE_STATUS_ACTIVE, v1::HealthStatus::HEALTH_STATUS_HEALTHY, 8),
            ("n3", v1::NodeStatus::NODE_STATUS_ACTIVE, v1::HealthStatus::HEALTH_STATUS_HEALTHY, 8),
        ]
    );
    let detail = h.node("n2").await;
    assert_eq!(detail.gpus.len(), 8, "GetNode carries the GPU inventory");
    assert_eq!(detail.provider, "fake");

    // XID 79 (GPU fell off the bus) on n2, injected through the agent's fake GPUs.
    let issued = h.root().issue_command(fault("n2", &[("fault", "xid"), ("gpu", "3"), ("code", "79")])).await;
    let command_id = issued.expect("issue").into_owned().command.as_option().expect("command").command_id.clone();
    let node = h.wait_for_node("n2", "UNHEALTHY", |n| status_of(n) == v1::NodeStatus::NODE_STATUS_UNHEALTHY).await;
    assert_eq!(health_of(&node), v1::HealthStatus::HEALTH_STATUS_UNHEALTHY);
    assert!(node.status_reason.contains("fatal-xid"), "reason names the rule: {}", node.status_reason);
    for healthy in ["n1", "n3"] {
        assert_eq!(status_of(&h.node(healthy).await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    }
    // The XID is reported once, yet every later report counts while n2 stays UNHEALTHY, so
    // replacement (unhealthy_after: 2 by default) will fire for it.
    h.wait_for_node("n2", "unhealthy for two reports", |n| {
        n.unhealthy_streak >= 2 && status_of(n) == v1::NodeStatus::NODE_STATUS_UNHEALTHY
    })
    .await;

    let history = h
        .root()
        .get_health_history(v1::GetHealthHistoryRequest { node_id: "n2".into(), ..Default::default() })
        .await
        .expect("history")
        .into_owned();
    // Newest first: the reports after the XID (still UNHEALTHY, so kept), then the XID's.
    let worst = history
        .reports
        .iter()
        .find(|r| r.health.as_known() == Some(v1::HealthStatus::HEALTH_STATUS_UNHEALTHY))
        .expect("the report that carried the XID");
    let rules: Vec<_> = worst.events.iter().filter_map(|e| e.verdict.as_option()?.rule.clone()).collect();
    assert_eq!(rules, ["fatal-xid"]);

    let command = h
        .root()
        .get_command(v1::GetCommandRequest { command_id, ..Default::default() })
        .await
        .expect("command")
        .into_owned();
    let states: Vec<_> = command.events.iter().map(|e| e.state.as_known().expect("state")).collect();
    assert_eq!(
        states.last(),
        Some(&v1::CommandState::COMMAND_STATE_SUCCEEDED),
        "the agent acknowledged the injection: {states:?}"
    );

    for agent in agents {
        agent.stop().await;
    }
    h.stop().await;
}

async fn registration_is_idempotent_and_does_not_launder_unhealthy(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    let first = h.node("n1").await;
    let events_before = h.change_count().await;
    client.register(&registration("n1"), None).await.expect("register again");
    let again = h.node("n1").await;
    assert_eq!(again.revision, first.revision, "an identical registration changes nothing");
    assert_eq!(h.change_count().await, events_before, "and writes no change record");

    // A fatal event makes it UNHEALTHY; registering again keeps it so.
    let xid = bosun_core::HealthEvent {
        timestamp: h.clock.now(),
        gpu_index: 0,
        gpu_uuid: "GPU-n1-0".into(),
        system: bosun_core::HealthSystem::Driver,
        event_type: bosun_core::EventType::Xid,
        metrics: [("xid_code".to_owned(), "48".to_owned())].into(),
        message: "Xid 48: double bit ECC error".into(),
    };
    client.report_health(&node_id("n1"), &[], &[xid]).await.expect("report");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    client.register(&registration("n1"), None).await.expect("register after failure");
    let node = h.node("n1").await;
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "registration does not launder UNHEALTHY");
    assert_eq!(health_of(&node), v1::HealthStatus::HEALTH_STATUS_UNHEALTHY);

    // Only an operator's explicit uncordon returns it to service.
    h.root().issue_command(command("n1", v1::CommandType::COMMAND_TYPE_UNCORDON)).await.expect("override");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    h.stop().await;
}

async fn terminated_nodes_are_kept_then_deleted(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let agent = h.spawn_agent("n1", 2);
    h.wait_for_node("n1", "registered", |_| true).await;
    let (code, message) =
        refused(h.root().delete_node(v1::DeleteNodeRequest { node_id: "n1".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::FailedPrecondition);
    assert!(message.contains("ACTIVE"), "{message}");

    h.root().issue_command(command("n1", v1::CommandType::COMMAND_TYPE_TERMINATE)).await.expect("terminate");
    let outcome = agent.task.await.expect("agent task").expect("agent run");
    assert_eq!(outcome, bosun_agent::AgentOutcome::Terminated, "the agent stops after TERMINATE");
    h.wait_for_node("n1", "TERMINATED", |n| status_of(n) == v1::NodeStatus::NODE_STATUS_TERMINATED).await;

    // Within retention it stays queryable; after it, retention deletes it.
    h.server().retention().await.expect("retention");
    h.node("n1").await;
    h.clock.advance(h.settings.terminated_retention + std::time::Duration::from_secs(1));
    h.server().retention().await.expect("retention");
    let (code, _) = refused(h.root().get_node(v1::GetNodeRequest { node_id: "n1".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::NotFound);
    h.stop().await;
}

/// Reports above a few dozen events are classified on the blocking pool; the verdict must
/// be the same as for a small report: every event judged, the worst one decides.
async fn a_large_report_is_judged_event_by_event(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    let event = |index: usize, xid: &str| bosun_core::HealthEvent {
        timestamp: h.clock.now(),
        gpu_index: (index % 8) as i32,
        gpu_uuid: format!("GPU-n1-{}", index % 8),
        system: bosun_core::HealthSystem::Driver,
        event_type: bosun_core::EventType::Xid,
        metrics: [("xid_code".to_owned(), xid.to_owned())].into(),
        message: format!("Xid {xid}"),
    };
    // 199 application-class XIDs (restart the app: DEGRADED) and one XID 48 (double-bit ECC).
    let mut events: Vec<_> = (0..199).map(|i| event(i, "13")).collect();
    events.insert(120, event(120, "48"));
    client.report_health(&node_id("n1"), &[], &events).await.expect("report");

    let node = h.node("n1").await;
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "the one fatal event decides");
    let history = h
        .root()
        .get_health_history(v1::GetHealthHistoryRequest { node_id: "n1".into(), ..Default::default() })
        .await
        .expect("history")
        .into_owned();
    let report = history.reports.first().expect("the report is stored");
    assert_eq!(report.events.len(), 200, "every event is kept");
    let judged = report.events.iter().filter(|e| e.verdict.as_option().is_some()).count();
    assert_eq!(judged, 200, "and every event carries its verdict");
    h.stop().await;
}
