//! GPU workloads (ReportWorkloads): authenticated like every agent call, validated and
//! bounded, and taken by the inventory; a real agent's simulated process reaches it and
//! is listed as the node's workload.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bosun_agent::{
    Agent, AgentConfig, AgentOptions, CommandAck, ControlPlane, DeliveredCommand, FakeGpus, HostMetrics, ProcessTable,
    RpcError, process_hooks,
};
use bosun_api::v1;
use bosun_core::inventory::Workload;
use bosun_core::workloads::MAX_REPORT_WORKLOADS;
use bosun_core::{CheckResult, HealthEvent, MetricSample, NodeId, NodeRegistration};
use bosun_store::Backend;
use connectrpc::ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

on_every_backend!(reports_are_authenticated_validated_and_bounded, a_simulated_process_reaches_the_server);

fn workload(node: &str, pid: u32) -> Workload {
    Workload {
        node_id: node_id(node),
        gpu_indexes: vec![0, 1],
        pid,
        process_name: "python3".into(),
        container_id: Some("ab".repeat(32)),
        pod: None,
        gpu_memory_bytes: 8 << 30,
        started_at: Some("2026-01-01T00:00:00Z".parse().expect("valid")),
    }
}

async fn reports_are_authenticated_validated_and_bounded(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let client = h.agent_client();
    client.register(&registration("n1"), None).await.expect("register");
    let n1 = node_id("n1");
    client.report_workloads(&n1, &[workload("n1", 4242), workload("n1", 7)]).await.expect("a snapshot is taken");
    client.report_workloads(&n1, &[]).await.expect("so is an empty one");

    let most: Vec<_> =
        (1..=u32::try_from(MAX_REPORT_WORKLOADS).expect("small")).map(|pid| workload("n1", pid)).collect();
    client.report_workloads(&n1, &most).await.expect("the largest report allowed");
    let too_many: Vec<_> =
        (1..=u32::try_from(MAX_REPORT_WORKLOADS + 1).expect("small")).map(|pid| workload("n1", pid)).collect();
    match client.report_workloads(&n1, &too_many).await {
        Err(RpcError::Other { code, message }) => {
            assert_eq!(code, "resource_exhausted");
            assert_eq!(message, "workloads: the report carries 4097 workloads; the limit is 4096");
        }
        other => panic!("a report over the limit is refused whole: {other:?}"),
    }

    let bad = Workload { gpu_indexes: vec![], ..workload("n1", 9) };
    match client.report_workloads(&n1, &[workload("n1", 1), bad]).await {
        Err(RpcError::InvalidArgument(message)) => assert!(message.contains("workloads[1].gpu_indexes"), "{message}"),
        other => panic!("a bad field is named: {other:?}"),
    }
    let twice = [workload("n1", 5), workload("n1", 5)];
    match client.report_workloads(&n1, &twice).await {
        Err(RpcError::InvalidArgument(message)) => assert!(message.contains("workloads[1].pid"), "{message}"),
        other => panic!("a pid reported twice is refused: {other:?}"),
    }

    let request = |node: &str| v1::ReportWorkloadsRequest { node_id: node.into(), ..Default::default() };
    let (code, _) = refused(h.raw_agent(None).report_workloads(request("n1")).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    let (code, _) = refused(h.raw_agent(Some(PINNED_N9)).report_workloads(request("n1")).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "a token pinned to n9 may not report for n1");
    let (code, _) = refused(h.raw_agent(Some(AGENTS)).report_workloads(request("n1")).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "the shared agent token only registers");
    let (code, message) = refused(h.raw_agent(Some(ADMIN)).report_workloads(request("n404")).await);
    assert_eq!(code, ErrorCode::NotFound, "an unknown node registers again: {message}");
    let (code, message) = refused(h.raw_agent(Some(ADMIN)).report_workloads(request("bad id")).await);
    assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
    h.stop().await;
}

/// A control plane that keeps every workload report the server accepted.
struct Accepted {
    inner: Arc<dyn ControlPlane>,
    reports: Mutex<Vec<Vec<Workload>>>,
}

#[async_trait]
impl ControlPlane for Accepted {
    async fn register(&self, registration: &NodeRegistration, instance: Option<&str>) -> Result<AgentConfig, RpcError> {
        self.inner.register(registration, instance).await
    }

    async fn heartbeat(&self, sample: &MetricSample) -> Result<(), RpcError> {
        self.inner.heartbeat(sample).await
    }

    async fn report_health(
        &self,
        node: &NodeId,
        results: &[CheckResult],
        events: &[HealthEvent],
    ) -> Result<(), RpcError> {
        self.inner.report_health(node, results, events).await
    }

    async fn poll_commands(&self, node: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError> {
        self.inner.poll_commands(node, wait).await
    }

    async fn ack_command(&self, node: &NodeId, ack: &CommandAck) -> Result<(), RpcError> {
        self.inner.ack_command(node, ack).await
    }

    async fn report_workloads(&self, node: &NodeId, workloads: &[Workload]) -> Result<(), RpcError> {
        self.inner.report_workloads(node, workloads).await?;
        self.reports.lock().expect("unpoisoned").push(workloads.to_vec());
        Ok(())
    }
}

async fn a_simulated_process_reaches_the_server(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let gpus = Arc::new(FakeGpus::new(4).with_clock(h.clock.clone()));
    let mut options = AgentOptions::new(node_id("n1"));
    options.host_metrics = HostMetrics::fixed(20.0, 30.0);
    options.processes = ProcessTable::Simulated;
    options.clock = h.clock.clone();
    options.hooks.custom.extend(process_hooks(&gpus));
    let control = Arc::new(Accepted { inner: h.agent_client(), reports: Mutex::default() });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(Agent::new(options, gpus, control.clone()).run(shutdown.clone()));
    h.wait_for_node("n1", "registered", |_| true).await;

    let parameters = [("pid", "4242"), ("gpu", "1"), ("name", "train"), ("memory", "8GiB")];
    let request = v1::IssueCommandRequest {
        node_id: "n1".into(),
        r#type: v1::CommandType::COMMAND_TYPE_CUSTOM.into(),
        custom_name: bosun_agent::PROCESS_COMMAND.into(),
        parameters: parameters.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    };
    h.root().issue_command(request).await.expect("issued");
    let reported = |control: &Accepted| {
        control.reports.lock().expect("unpoisoned").iter().flatten().find(|w| w.pid == 4242).cloned()
    };
    // The agent looks every heartbeat interval (a second here) and reports the change.
    let mut accepted = None;
    for _ in 0..400 {
        accepted = reported(&control);
        if accepted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workload = accepted.expect("the server accepted a report of the simulated process");
    assert_eq!(
        (workload.node_id.as_str(), workload.gpu_indexes, workload.process_name.as_str(), workload.gpu_memory_bytes),
        ("n1", vec![1], "train", 8 << 30)
    );
    // ...and the inventory holds it, as node n1's workload of the agents' source.
    let request = v1::ListInventoryRequest {
        kind: "workload".to_owned(),
        node_id: "n1".to_owned(),
        gone: "false".to_owned(),
        ..Default::default()
    };
    let listed = h.admin(Some(OPERATOR)).list_inventory(request).await.expect("list").into_owned().records;
    let stored = listed.iter().find(|r| r.name == "train").expect("the workload is in the inventory");
    assert_eq!((stored.source.as_str(), stored.node_id.as_str()), ("agents", "n1"));
    assert!(stored.id.starts_with("agents/n1/4242"), "{}", stored.id);
    let stored: serde_json::Value = serde_json::from_str(&stored.json).expect("json");
    assert_eq!(
        (stored["gpu_indexes"].clone(), stored["gpu_memory_bytes"].as_u64()),
        (serde_json::json!([1]), Some(8 << 30))
    );
    shutdown.cancel();
    let _ = running.await;
    h.stop().await;
}
