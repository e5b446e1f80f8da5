//! Graded remediation (SPEC 3.2): application XIDs never cost a machine, repeated faults
//! climb reset GPU -> reboot -> replace, failed or late steps mean replacement, and
//! operators can skip the ladder. Reports are sent by a bare agent client so the tests
//! choose when commands are acknowledged, and how.

use std::time::Duration;

use bosun_agent::{AckOutcome, CommandAck, ControlPlane};
use bosun_api::{AgentClient, v1};
use bosun_core::{Clock, EventType, HealthEvent, HealthSystem, NodeId};
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(
    application_xids_degrade_and_repeats_climb_the_ladder,
    the_catalog_decides_what_a_single_xid_asks_for,
    a_failed_or_late_step_means_replacement,
    operators_skip_the_ladder,
);

fn xid_on(h: &Harness, code: u32, gpu: i32) -> HealthEvent {
    HealthEvent {
        timestamp: h.clock.now(),
        gpu_index: gpu,
        gpu_uuid: format!("GPU-{gpu}"),
        system: HealthSystem::Driver,
        event_type: EventType::Xid,
        metrics: [("xid_code".to_owned(), code.to_string())].into(),
        message: format!("XID {code}"),
    }
}

async fn report(h: &Harness, client: &AgentClient, node: &str, code: u32) {
    let event = xid_on(h, code, 3);
    client.report_health(&node_id(node), &[], &[event]).await.expect("report");
}

async fn commands(h: &Harness, node: &str) -> Vec<v1::Command> {
    let request = v1::ListCommandsRequest { node_id: node.to_owned(), ..Default::default() };
    h.root().list_commands(request).await.expect("list").into_owned().commands
}

fn kind_of(command: &v1::Command) -> v1::CommandType {
    command.r#type.as_known().expect("known type")
}

fn step_of(node: &v1::Node) -> Option<(v1::RemediationAction, String)> {
    node.remediation.as_option().map(|r| (r.step.as_known().expect("known step"), r.state.clone()))
}

/// Hands out `node`'s due commands and acknowledges each with `outcome`, as its agent would.
async fn acknowledge(client: &AgentClient, node: &str, outcome: AckOutcome, message: &str) -> Vec<v1::CommandType> {
    let node: NodeId = node_id(node);
    let delivered = client.poll_commands(&node, Duration::ZERO).await.expect("poll");
    let mut kinds = Vec::new();
    for command in delivered {
        let ack =
            CommandAck { command_id: command.id, outcome, message: message.to_owned(), details: Default::default() };
        client.ack_command(&node, &ack).await.expect("ack");
        kinds.push(bosun_api::convert::command_type(&command.kind).0);
    }
    kinds
}

async fn application_xids_degrade_and_repeats_climb_the_ladder(backend: Backend) {
    use v1::RemediationAction as Step;
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");

    // XID 13 once: the application's fault. DEGRADED, no machine action.
    report(&h, &client, "n1", 13).await;
    let node = h.node("n1").await;
    assert_eq!(
        (status_of(&node), health_of(&node)),
        (v1::NodeStatus::NODE_STATUS_ACTIVE, v1::HealthStatus::HEALTH_STATUS_DEGRADED)
    );
    assert_eq!(step_of(&node), None);
    assert!(commands(&h, "n1").await.is_empty(), "no command for an application fault");

    // Twice more within the hour: tolerated (three in an hour).
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(300));
        report(&h, &client, "n1", 13).await;
    }
    assert!(commands(&h, "n1").await.is_empty());
    // The fourth within the hour is no longer the application's fault: reset the GPU.
    h.clock.advance(Duration::from_secs(300));
    report(&h, &client, "n1", 13).await;
    let issued = commands(&h, "n1").await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(kind_of(&issued[0]), v1::CommandType::COMMAND_TYPE_RESET_GPU);
    assert_eq!(issued[0].parameters.get("gpu").map(String::as_str), Some("3"));
    assert!(issued[0].reason.contains("XID 13 on GPU 3 4 times within 1h"), "{}", issued[0].reason);
    let node = h.node("n1").await;
    assert_eq!(step_of(&node), Some((Step::REMEDIATION_ACTION_RESET_GPU, "running".to_owned())));
    assert_eq!(node.remediation.as_option().expect("step").command_id, issued[0].command_id);
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_ACTIVE, "the node stays in service");

    // Another fault while the reset runs belongs to the same incident.
    report(&h, &client, "n1", 13).await;
    assert_eq!(commands(&h, "n1").await.len(), 1);
    // The agent resets the GPU.
    let acked = acknowledge(&client, "n1", AckOutcome::Succeeded, "GPU 3 reset").await;
    assert_eq!(acked, [v1::CommandType::COMMAND_TYPE_RESET_GPU]);
    assert_eq!(step_of(&h.node("n1").await), Some((Step::REMEDIATION_ACTION_RESET_GPU, "succeeded".to_owned())));

    // It recurs within the window: reboot.
    h.clock.advance(Duration::from_secs(60));
    report(&h, &client, "n1", 13).await;
    assert_eq!(step_of(&h.node("n1").await), Some((Step::REMEDIATION_ACTION_REBOOT, "running".to_owned())));
    let acked = acknowledge(&client, "n1", AckOutcome::Succeeded, "rebooted").await;
    assert_eq!(acked, [v1::CommandType::COMMAND_TYPE_REBOOT]);

    // And again: the machine is replaced.
    h.clock.advance(Duration::from_secs(60));
    report(&h, &client, "n1", 13).await;
    let node = h.node("n1").await;
    assert_eq!(step_of(&node), Some((Step::REMEDIATION_ACTION_REPLACE, "succeeded".to_owned())));
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    assert!(node.status_reason.starts_with("remediation: replace"), "{}", node.status_reason);

    // Every step is in the change log: the commands, and the node's step with each change.
    let events = h
        .root()
        .list_events(v1::ListEventsRequest { resource_id: "n1".into(), kind: "node".into(), ..Default::default() })
        .await
        .expect("events")
        .into_owned()
        .events;
    let steps: Vec<&str> = ["\"reset_gpu\"", "\"reboot\"", "\"replace\""]
        .into_iter()
        .filter(|step| events.iter().any(|e| e.resource_json.contains(&format!("\"step\":{step}"))))
        .collect();
    assert_eq!(steps.len(), 3, "each step is recorded on the node: {steps:?}");
    let metrics = h.get_text("/metrics").await;
    for line in [
        "bosun_remediation_steps_total{step=\"reset_gpu\"} 1",
        "bosun_remediation_steps_total{step=\"reboot\"} 1",
        "bosun_remediation_steps_total{step=\"replace\"} 1",
        "bosun_xid_events_total{xid=\"13\",action=\"restart_app\"} 7",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }
    h.stop().await;
}

async fn the_catalog_decides_what_a_single_xid_asks_for(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    for node in ["n1", "n2", "n3"] {
        client.register(&registration(node), None).await.expect("register");
    }
    // XID 79 (fell off the bus): replaced directly, no ladder step.
    report(&h, &client, "n1", 79).await;
    let n1 = h.node("n1").await;
    assert_eq!(status_of(&n1), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    assert!(n1.status_reason.contains("fatal-xid"), "{}", n1.status_reason);
    assert!(commands(&h, "n1").await.is_empty());
    // XID 94 (contained ECC error): the GPU is reset at once.
    report(&h, &client, "n2", 94).await;
    let issued = commands(&h, "n2").await;
    assert_eq!(issued.iter().map(kind_of).collect::<Vec<_>>(), [v1::CommandType::COMMAND_TYPE_RESET_GPU]);
    assert_eq!(health_of(&h.node("n2").await), v1::HealthStatus::HEALTH_STATUS_DEGRADED);
    // An XID the catalog does not know: DEGRADED and counted, never a machine action.
    for _ in 0..5 {
        report(&h, &client, "n3", 9999).await;
    }
    let n3 = h.node("n3").await;
    assert_eq!(
        (status_of(&n3), health_of(&n3)),
        (v1::NodeStatus::NODE_STATUS_ACTIVE, v1::HealthStatus::HEALTH_STATUS_DEGRADED)
    );
    assert!(commands(&h, "n3").await.is_empty());
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains("bosun_xid_events_total{xid=\"unknown\",action=\"none\"} 5"), "{metrics}");
    h.stop().await;
}

async fn a_failed_or_late_step_means_replacement(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    for node in ["n1", "n2"] {
        client.register(&registration(node), None).await.expect("register");
        report(&h, &client, node, 94).await;
    }
    // n1's agent cannot reset the GPU: replaced.
    acknowledge(&client, "n1", AckOutcome::Failed, "nvidia-smi: GPU 3 is in use").await;
    let n1 = h.node("n1").await;
    assert_eq!(status_of(&n1), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    let step = n1.remediation.as_option().expect("step");
    assert_eq!(step.step.as_known(), Some(v1::RemediationAction::REMEDIATION_ACTION_REPLACE));
    assert!(step.fault.contains("reset_gpu failed") && step.fault.contains("GPU 3 is in use"), "{}", step.fault);

    // n2's agent never answers: past the step's deadline (10 min) it is replaced too.
    h.clock.advance(Duration::from_secs(599));
    h.server().janitor().await.expect("janitor");
    assert_eq!(status_of(&h.node("n2").await), v1::NodeStatus::NODE_STATUS_ACTIVE, "not before the deadline");
    h.clock.advance(Duration::from_secs(2));
    h.server().janitor().await.expect("janitor");
    let n2 = h.node("n2").await;
    assert_eq!(status_of(&n2), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    assert!(n2.remediation.as_option().expect("step").fault.contains("timed out"), "{n2:?}");
    h.stop().await;
}

async fn operators_skip_the_ladder(backend: Backend) {
    use v1::RemediationAction as Step;
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    let remediate = |action: Step, gpu: Option<u32>| v1::RemediateNodeRequest {
        node_id: "n1".into(),
        action: action.into(),
        gpu_index: gpu,
        reason: "suspect GPU".into(),
        ..Default::default()
    };
    let cases = [
        (remediate(Step::REMEDIATION_ACTION_RESET_GPU, None), ErrorCode::InvalidArgument, "gpu_index"),
        (remediate(Step::REMEDIATION_ACTION_RESET_GPU, Some(8)), ErrorCode::InvalidArgument, "has 8 GPUs"),
        (remediate(Step::REMEDIATION_ACTION_NONE, None), ErrorCode::InvalidArgument, "not a remediation step"),
        (remediate(Step::REMEDIATION_ACTION_RESTART_APP, None), ErrorCode::InvalidArgument, "not a remediation step"),
    ];
    for (request, code, needle) in cases {
        let (got, message) = refused(h.root().remediate_node(request).await);
        assert_eq!(got, code, "{message}");
        assert!(message.contains(needle), "{message}");
    }
    let ghost =
        v1::RemediateNodeRequest { node_id: "ghost".into(), ..remediate(Step::REMEDIATION_ACTION_REBOOT, None) };
    assert_eq!(refused(h.root().remediate_node(ghost).await).0, ErrorCode::NotFound);
    let (code, _) = refused(h.admin(None).remediate_node(remediate(Step::REMEDIATION_ACTION_REBOOT, None)).await);
    assert_eq!(code, ErrorCode::Unauthenticated);

    // An operator resets GPU 2 directly: a command, the node's step, actor recorded.
    let reset = h.admin(Some(OPERATOR)).remediate_node(remediate(Step::REMEDIATION_ACTION_RESET_GPU, Some(2))).await;
    let reset = reset.expect("reset").into_owned();
    let command = reset.command_id.clone().expect("a command");
    let issued = commands(&h, "n1").await;
    assert_eq!(issued[0].command_id, command);
    assert_eq!(issued[0].parameters.get("gpu").map(String::as_str), Some("2"));
    let step = reset.node.as_option().and_then(|n| n.remediation.as_option()).expect("step");
    assert!(step.fault.contains("requested by operator:oncall: suspect GPU"), "{}", step.fault);

    // ... and then asks for a replacement: out of service at once, no command.
    let replaced = h.root().remediate_node(remediate(Step::REMEDIATION_ACTION_REPLACE, None)).await;
    let replaced = replaced.expect("replace").into_owned();
    assert_eq!(replaced.command_id, None);
    let node = replaced.node.as_option().expect("node");
    assert_eq!(status_of(node), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    assert!(node.status_reason.starts_with("remediation: replace"), "{}", node.status_reason);
    // Replacing an UNHEALTHY node again is allowed (it is still in the pool's hands);
    // a reboot is not.
    assert!(h.root().remediate_node(remediate(Step::REMEDIATION_ACTION_REPLACE, None)).await.is_ok());
    let (code, message) = refused(h.root().remediate_node(remediate(Step::REMEDIATION_ACTION_REBOOT, None)).await);
    assert_eq!(code, ErrorCode::FailedPrecondition, "{message}");
    h.stop().await;
}
