//! Navarch's wire API (`navarch.ControlPlaneService`), driven with requests shaped like
//! navarch-node's (Connect, binary protobuf, the shared token) and the navarch CLI's, plus
//! Connect JSON and gRPC on the same port.

use std::time::Duration;

use bosun_api::{navarch, v1};
use bosun_core::PoolSpec;
use bosun_provider::fake::FakeSettings;
use bosun_server::Settings;
use bosun_store::Backend;
use connectrpc::ErrorCode;
use connectrpc::client::{ClientConfig, HttpClient};

use crate::harness::*;

on_sql_backends!(
    a_navarch_agent_registers_heartbeats_reports_and_runs_commands,
    navarch_speaks_connect_json_and_grpc_beside_bosun,
    a_shared_token_acts_for_navarch_nodes_only_without_a_node_token_key,
    navarch_lists_a_pools_instances,
    navarchs_register_answer_carries_the_servers_intervals,
);

fn client(h: &Harness, token: &str) -> navarch::ControlPlaneServiceClient<HttpClient> {
    // connect-go's defaults, as navarch-node and the navarch CLI use them: the Connect
    // protocol with binary protobuf.
    let config = ClientConfig::new(h.url().parse().expect("uri"))
        .with_default_header("authorization", format!("Bearer {token}"));
    navarch::ControlPlaneServiceClient::new(HttpClient::plaintext(), config)
}

/// What navarch-node sends at start: its GPUs, hostname and labels.
fn registration_of(node: &str) -> navarch::RegisterNodeRequest {
    let gpu = |index: i32| navarch::GPUInfo {
        index,
        uuid: format!("GPU-{node}-{index}"),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: format!("0000:0{index}:00.0"),
        memory_total: 80 * 1024 * 1024 * 1024,
        ..Default::default()
    };
    navarch::RegisterNodeRequest {
        node_id: node.into(),
        provider: "gcp".into(),
        region: "us-central1".into(),
        zone: "us-central1-a".into(),
        instance_type: "a3-highgpu-8g".into(),
        gpus: vec![gpu(0), gpu(1)],
        metadata: navarch::NodeMetadata {
            hostname: format!("{node}.internal"),
            labels: [("team".to_owned(), "ml".to_owned()), ("pool".to_owned(), "training".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

fn xid_event(code: u32, gpu: i32) -> navarch::HealthEvent {
    navarch::HealthEvent {
        gpu_index: gpu,
        gpu_uuid: format!("GPU-n1-{gpu}"),
        system: navarch::HealthWatchSystem::HEALTH_WATCH_SYSTEM_DRIVER.into(),
        event_type: navarch::HealthEventType::HEALTH_EVENT_TYPE_XID.into(),
        metrics: [("xid_code".to_owned(), code.to_string())].into_iter().collect(),
        message: format!("XID {code}"),
        ..Default::default()
    }
}

fn report(node: &str, events: Vec<navarch::HealthEvent>) -> navarch::ReportHealthRequest {
    let boot = navarch::HealthCheckResult {
        check_name: "boot".into(),
        status: navarch::HealthStatus::HEALTH_STATUS_HEALTHY.into(),
        message: "boot ok".into(),
        ..Default::default()
    };
    navarch::ReportHealthRequest { node_id: node.into(), results: vec![boot], events, ..Default::default() }
}

fn issue(node: &str, kind: navarch::NodeCommandType, reason: &str) -> navarch::IssueCommandRequest {
    navarch::IssueCommandRequest {
        node_id: node.into(),
        command_type: kind.into(),
        parameters: [("reason".to_owned(), reason.to_owned())].into_iter().collect(),
        ..Default::default()
    }
}

async fn poll(agent: &navarch::ControlPlaneServiceClient<HttpClient>, node: &str) -> Vec<navarch::NodeCommand> {
    let request = navarch::GetNodeCommandsRequest { node_id: node.into(), ..Default::default() };
    agent.get_node_commands(request).await.expect("GetNodeCommands").into_owned().commands
}

async fn bosun_command(h: &Harness, id: &str) -> v1::Command {
    let request = v1::GetCommandRequest { command_id: id.into(), ..Default::default() };
    let response = h.root().get_command(request).await.expect("get command").into_owned();
    response.command.as_option().expect("command").clone()
}

async fn list(
    cli: &navarch::ControlPlaneServiceClient<HttpClient>,
    status: navarch::NodeStatus,
) -> Vec<navarch::NodeInfo> {
    let request = navarch::ListNodesRequest { status: status.into(), ..Default::default() };
    cli.list_nodes(request).await.expect("ListNodes").into_owned().nodes
}

async fn a_navarch_agent_registers_heartbeats_reports_and_runs_commands(backend: Backend) {
    use navarch::NodeCommandType as T;
    use navarch::NodeStatus as S;
    let Some(h) = Harness::start(backend).await else { return };
    let agent = client(&h, AGENTS);
    let cli = client(&h, OPERATOR);

    let registered = agent.register_node(registration_of("n1")).await.expect("RegisterNode").into_owned();
    assert!(registered.success, "{registered:?}");
    let config = registered.config.as_option().expect("config");
    assert_eq!(config.heartbeat_interval_seconds, 1, "the server's intervals");
    let node = h.node("n1").await;
    assert_eq!((node.gpu_count, node.labels.get("team").map(String::as_str)), (2, Some("ml")));
    assert_eq!(node.metadata.as_option().expect("metadata").hostname, "n1.internal");
    assert_eq!(node.pool, "training", "navarch-node's -pool label");
    assert_eq!(node.gpus[1].memory_bytes, 80 * 1024 * 1024 * 1024);

    let heartbeat = navarch::HeartbeatRequest {
        node_id: "n1".into(),
        metrics: navarch::NodeMetrics {
            cpu_usage_percent: 12.0,
            memory_usage_percent: 40.0,
            gpu_metrics: vec![navarch::GPUMetrics {
                gpu_index: 0,
                temperature: 65,
                power_usage: 450,
                utilization_percent: 95.0,
                memory_used: 1 << 30,
                ..Default::default()
            }],
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    h.clock.advance(Duration::from_secs(5));
    assert!(agent.send_heartbeat(heartbeat).await.expect("SendHeartbeat").into_owned().acknowledged);
    h.server().flush().await.expect("flush");
    let last = h.node("n1").await.last_heartbeat.as_option().expect("heartbeat").clone();
    assert!(last.seconds > node.registered_at.as_option().expect("registered").seconds, "stamped by the server");

    // An application XID: DEGRADED, still in service.
    let answered = agent.report_health(report("n1", vec![xid_event(13, 0)])).await.expect("ReportHealth").into_owned();
    assert!(answered.acknowledged);
    assert_eq!(answered.node_status.as_known(), Some(S::NODE_STATUS_ACTIVE));

    // The CLI cordons with a reason; the agent picks the command up on its next poll.
    let cordon = cli.issue_command(issue("n1", T::NODE_COMMAND_TYPE_CORDON, "bad fan")).await.expect("cordon");
    let cordon = cordon.into_owned();
    assert!(cordon.issued_at.is_set(), "{cordon:?}");
    let node = h.node("n1").await;
    assert_eq!((status_of(&node), node.status_reason.as_str()), (v1::NodeStatus::NODE_STATUS_CORDONED, "bad fan"));
    assert!(list(&cli, S::NODE_STATUS_ACTIVE).await.is_empty());
    let cordoned = list(&cli, S::NODE_STATUS_CORDONED).await;
    assert_eq!(cordoned.len(), 1);
    let info = &cordoned[0];
    assert_eq!((info.node_id.as_str(), info.gpus.len(), info.provider.as_str()), ("n1", 2, "gcp"));
    assert_eq!(info.health_status.as_known(), Some(navarch::HealthStatus::HEALTH_STATUS_DEGRADED));
    assert_eq!(info.metadata.as_option().expect("metadata").labels.get("team").map(String::as_str), Some("ml"));
    assert!(info.last_heartbeat.is_set());

    let commands = poll(&agent, "n1").await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].command_id, cordon.command_id);
    assert_eq!(commands[0].r#type.as_known(), Some(T::NODE_COMMAND_TYPE_CORDON));
    assert!(poll(&agent, "n1").await.is_empty(), "handed out once");
    let finished = bosun_command(&h, &cordon.command_id).await;
    assert_eq!(finished.state.as_known(), Some(v1::CommandState::COMMAND_STATE_SUCCEEDED));
    assert!(finished.outcome_message.contains("Navarch agent"), "{}", finished.outcome_message);

    // Uncordon (5 in Navarch) reaches its agent as CORDON with uncordon=true.
    cli.issue_command(issue("n1", T::NODE_COMMAND_TYPE_UNCORDON, "fan replaced")).await.expect("uncordon");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    let commands = poll(&agent, "n1").await;
    assert_eq!(commands[0].r#type.as_known(), Some(T::NODE_COMMAND_TYPE_CORDON));
    assert_eq!(commands[0].parameters.get("uncordon").map(String::as_str), Some("true"));

    // A command a Navarch agent has no handler for fails at once instead of lingering.
    let reboot = v1::IssueCommandRequest {
        node_id: "n1".into(),
        r#type: v1::CommandType::COMMAND_TYPE_REBOOT.into(),
        ..Default::default()
    };
    let reboot = h.root().issue_command(reboot).await.expect("reboot").into_owned();
    let reboot_id = reboot.command.as_option().expect("command").command_id.clone();
    assert!(poll(&agent, "n1").await.is_empty());
    let failed = bosun_command(&h, &reboot_id).await;
    assert_eq!(failed.state.as_known(), Some(v1::CommandState::COMMAND_STATE_FAILED));
    assert!(failed.outcome_message.contains("cannot run REBOOT"), "{}", failed.outcome_message);

    // A hardware XID takes the node out of service.
    let answered = agent.report_health(report("n1", vec![xid_event(79, 1)])).await.expect("ReportHealth").into_owned();
    assert_eq!(answered.node_status.as_known(), Some(S::NODE_STATUS_UNHEALTHY));
    assert_eq!(list(&cli, S::NODE_STATUS_UNHEALTHY).await.len(), 1);

    // Drain, then the CLI's errors.
    cli.issue_command(issue("n1", T::NODE_COMMAND_TYPE_DRAIN, "")).await.expect("drain");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_DRAINING);
    let got = cli.get_node(navarch::GetNodeRequest { node_id: "n1".into(), ..Default::default() }).await;
    assert_eq!(
        got.expect("GetNode").into_owned().node.as_option().expect("node").status.as_known(),
        Some(S::NODE_STATUS_DRAINING)
    );
    let missing = cli.get_node(navarch::GetNodeRequest { node_id: "ghost".into(), ..Default::default() }).await;
    assert_eq!(refused(missing).0, ErrorCode::NotFound);
    let (code, message) = refused(cli.issue_command(issue("n1", T::NODE_COMMAND_TYPE_UNKNOWN, "")).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.contains("command_type"), "{message}");
    let (code, _) = refused(agent.list_nodes(navarch::ListNodesRequest::default()).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "agents cannot list the fleet");
    let (code, _) =
        refused(cli.send_heartbeat(navarch::HeartbeatRequest { node_id: "n1".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "operators cannot heartbeat");

    // Bad input is named.
    let mut bad = registration_of("n2");
    bad.gpus[0].index = -1;
    let (code, message) = refused(agent.register_node(bad).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.contains("gpus[0].index"), "{message}");
    let (code, message) = refused(agent.send_heartbeat(navarch::HeartbeatRequest::default()).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(message.contains("node_id"), "{message}");
    let (code, _) =
        refused(agent.send_heartbeat(navarch::HeartbeatRequest { node_id: "n3".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::NotFound, "unregistered");

    // Navarch's calls are audited like bosun's: its commands and refusals.
    let audit = h.ops(Some(OPERATOR)).list_audit(v1::ListAuditRequest::default()).await.expect("audit").into_owned();
    let navarch_calls: Vec<(&str, &str, &str)> = audit
        .entries
        .iter()
        .filter(|e| e.method.starts_with("navarch."))
        .map(|e| (e.method.rsplit('/').next().unwrap_or_default(), e.resource.as_str(), e.outcome.as_str()))
        .collect();
    assert!(navarch_calls.contains(&("IssueCommand", "node:n1", "ok")), "{navarch_calls:?}");
    assert!(navarch_calls.contains(&("RegisterNode", "node:n1", "ok")), "{navarch_calls:?}");
    assert!(navarch_calls.contains(&("ListNodes", "", "refused")), "{navarch_calls:?}");
    h.stop().await;
}

async fn navarch_speaks_connect_json_and_grpc_beside_bosun(backend: Backend) {
    use connectrpc::Protocol;
    use connectrpc::client::Http2Connection;
    let Some(h) = Harness::start(backend).await else { return };
    let agent_json = [("content-type", "application/json"), ("authorization", "Bearer agents-secret")];
    let body = r#"{"nodeId":"j1","provider":"aws","gpus":[{"index":0,"memoryTotal":"85899345920"}],
                   "metadata":{"hostname":"j1.local","labels":{"rack":"r7"}}}"#;
    let (status, answer) = http(&h, "POST", "/navarch.ControlPlaneService/RegisterNode", &agent_json, body).await;
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["config"]["heartbeatIntervalSeconds"], 1);
    // snake_case input works too, as protojson accepts both.
    let heartbeat = r#"{"node_id":"j1","metrics":{"cpu_usage_percent":3.5}}"#;
    let (status, answer) = http(&h, "POST", "/navarch.ControlPlaneService/SendHeartbeat", &agent_json, heartbeat).await;
    assert_eq!((status, answer.as_str()), (200, r#"{"acknowledged":true}"#));

    let admin_json = [("content-type", "application/json"), ("authorization", "Bearer admin-secret")];
    let (status, answer) = http(&h, "POST", "/navarch.ControlPlaneService/ListNodes", &admin_json, "{}").await;
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    let node = &answer["nodes"][0];
    assert_eq!((node["nodeId"].as_str(), node["status"].as_str()), (Some("j1"), Some("NODE_STATUS_ACTIVE")));
    assert_eq!(node["gpus"].as_array().map(Vec::len), Some(1));
    assert_eq!(node["metadata"]["labels"]["rack"], "r7");
    let (status, answer) =
        http(&h, "POST", "/navarch.ControlPlaneService/GetNode", &admin_json, r#"{"nodeId":"j1"}"#).await;
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["node"]["gpus"][0]["memoryTotal"], "85899345920", "int64 as a string");
    let (status, answer) = http(
        &h,
        "POST",
        "/navarch.ControlPlaneService/IssueCommand",
        &admin_json,
        r#"{"nodeId":"j1","commandType":"NODE_COMMAND_TYPE_CORDON","parameters":{"reason":"json"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("commandId") && answer.contains("issuedAt"), "{answer}");
    let (status, answer) =
        http(&h, "POST", "/navarch.ControlPlaneService/GetNode", &admin_json, r#"{"nodeId":"nope"}"#).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("not_found"), "{answer}");
    let (status, _) =
        http(&h, "POST", "/navarch.ControlPlaneService/ListNodes", &[("content-type", "application/json")], "{}").await;
    assert_eq!(status, 401, "no token");

    // gRPC over h2c, as a gRPC client of Navarch's service would call it.
    let uri: http::Uri = h.url().parse().expect("uri");
    let connection = Http2Connection::connect_plaintext(uri.clone()).await.expect("h2c").shared(4);
    let config = ClientConfig::new(uri)
        .with_protocol(Protocol::Grpc)
        .with_default_header("authorization", format!("Bearer {ADMIN}"));
    let grpc = navarch::ControlPlaneServiceClient::new(connection, config);
    let nodes = grpc.list_nodes(navarch::ListNodesRequest::default()).await.expect("gRPC ListNodes").into_owned();
    assert_eq!(nodes.nodes.len(), 1);
    assert_eq!(nodes.nodes[0].status.as_known(), Some(navarch::NodeStatus::NODE_STATUS_CORDONED));
    h.stop().await;
}

async fn a_shared_token_acts_for_navarch_nodes_only_without_a_node_token_key(backend: Backend) {
    let Some(h) = Harness::start_with(backend, settings_with_node_token_key()).await else { return };
    let shared = client(&h, AGENTS);
    shared.register_node(registration_of("n1")).await.expect("a new node registers with the shared token");
    let heartbeat = |node: &str| navarch::HeartbeatRequest { node_id: node.into(), ..Default::default() };
    let (code, message) = refused(shared.send_heartbeat(heartbeat("n1")).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert!(message.contains("node_token_key") && message.contains("pinned"), "{message}");
    let (code, _) = refused(shared.register_node(registration_of("n1")).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "nor take a registered node over");

    // A token pinned to its node is the way for Navarch agents then.
    let pinned = client(&h, PINNED_N9);
    pinned.register_node(registration_of("n9")).await.expect("register n9");
    pinned.register_node(registration_of("n9")).await.expect("and again, as navarch-node does at every start");
    assert!(pinned.send_heartbeat(heartbeat("n9")).await.expect("heartbeat").into_owned().acknowledged);
    let (code, _) = refused(pinned.send_heartbeat(heartbeat("n1")).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "only for its own node");
    h.stop().await;
}

async fn navarch_lists_a_pools_instances(backend: Backend) {
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", 2, 4);
    spec.region = "local".into();
    let Some((h, _cloud)) = Harness::start_with_fake_pool(backend, "training", spec, FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let running = wait_running(&h, 2).await;
    let cli = client(&h, OPERATOR);
    let all = cli.list_instances(navarch::ListInstancesRequest::default()).await.expect("ListInstances").into_owned();
    assert_eq!(all.instances.len(), 2);
    let filtered = navarch::ListInstancesRequest {
        state: navarch::InstanceState::INSTANCE_STATE_RUNNING.into(),
        pool_name: "training".into(),
        ..Default::default()
    };
    let filtered = cli.list_instances(filtered).await.expect("ListInstances").into_owned();
    assert_eq!(filtered.instances.len(), 2);
    let other_pool = navarch::ListInstancesRequest { pool_name: "inference".into(), ..Default::default() };
    assert!(cli.list_instances(other_pool).await.expect("ListInstances").into_owned().instances.is_empty());
    let request = navarch::GetInstanceRequest { instance_id: running[0].instance_id.clone(), ..Default::default() };
    let instance = cli.get_instance(request).await.expect("GetInstance").into_owned();
    let instance = instance.instance.as_option().expect("instance");
    assert_eq!((instance.pool_name.as_str(), instance.node_id.as_str()), ("training", running[0].node_id.as_str()));
    assert_eq!(instance.state.as_known(), Some(navarch::InstanceState::INSTANCE_STATE_RUNNING));
    assert!(instance.created_at.is_set() && instance.ready_at.is_set() && !instance.terminated_at.is_set());
    let missing = navarch::GetInstanceRequest { instance_id: "nope".into(), ..Default::default() };
    assert_eq!(refused(cli.get_instance(missing).await).0, ErrorCode::NotFound);
    h.stop().await;
}

/// navarch-node adopts both intervals from RegisterNode's answer (NodeConfig): each must
/// be the server's own setting, in whole seconds.
async fn navarchs_register_answer_carries_the_servers_intervals(backend: Backend) {
    let settings = Settings {
        heartbeat_interval: Duration::from_secs(3),
        health_check_interval: Duration::from_secs(7),
        ..settings()
    };
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let registered = client(&h, AGENTS).register_node(registration_of("n1")).await.expect("RegisterNode").into_owned();
    let config = registered.config.as_option().expect("config");
    assert_eq!((config.heartbeat_interval_seconds, config.health_check_interval_seconds), (3, 7));
    h.stop().await;
}
