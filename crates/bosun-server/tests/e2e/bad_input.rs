//! Bad input on every RPC: invalid or missing fields are invalid_argument naming the
//! field, unknown ids not_found, oversized bodies refused; nothing is written.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::{ConnectError, ErrorCode};

use crate::harness::*;

on_sql_backends!(every_rpc_names_the_bad_field_and_writes_nothing, oversized_bodies_are_refused);

const UNKNOWN_COMMAND: &str = "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6071";

fn check<T: std::fmt::Debug>(call: &str, result: Result<T, ConnectError>, code: ErrorCode, mentions: &str) {
    let (got, message) = refused(result);
    assert_eq!(got, code, "{call}: {message}");
    assert!(message.contains(mentions), "{call}: {message:?} should mention {mentions:?}");
}

async fn every_rpc_names_the_bad_field_and_writes_nothing(backend: Backend) {
    use ErrorCode::{InvalidArgument as Invalid, NotFound};
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let seq = h.change_count().await;
    let admin = h.root();
    // The admin token may act for any node, so the checks below are about input alone.
    let agent = h.raw_agent(Some(ADMIN));

    // AgentService.
    let register = |id: &str| v1::RegisterRequest { node_id: id.into(), ..Default::default() };
    check("register without id", agent.register_node(register("")).await, Invalid, "node_id");
    check("register bad id", agent.register_node(register("bad id!")).await, Invalid, "node_id");
    let mut labels = register("n2");
    labels.labels.insert("".into(), "x".into());
    check("register bad label", agent.register_node(labels).await, Invalid, "labels");
    let mut gpu = register("n2");
    gpu.gpus.push(v1::GpuInfo { index: 0, uuid: "bad\u{1}".into(), ..Default::default() });
    check("register bad gpu", agent.register_node(gpu).await, Invalid, "gpus[0].uuid");
    let mut instance = register("n2");
    instance.instance_id = "no spaces allowed".into();
    check("register bad instance", agent.register_node(instance).await, Invalid, "instance_id");

    let heartbeat = |id: &str| v1::HeartbeatRequest { node_id: id.into(), ..Default::default() };
    check("heartbeat without id", agent.heartbeat(heartbeat("")).await, Invalid, "node_id");
    check("heartbeat unknown", agent.heartbeat(heartbeat("ghost")).await, NotFound, "ghost");
    let mut metrics = heartbeat("n1");
    metrics.metrics = buffa::MessageField::some(v1::NodeMetrics { cpu_usage_percent: 250.0, ..Default::default() });
    check("heartbeat bad metrics", agent.heartbeat(metrics).await, Invalid, "metrics.cpu_percent");

    let report = |id: &str| v1::ReportHealthRequest { node_id: id.into(), ..Default::default() };
    check("report unknown", agent.report_health(report("ghost")).await, NotFound, "ghost");
    let mut bad_event = report("n1");
    bad_event.events.push(v1::HealthEvent { gpu_index: -7, ..Default::default() });
    check("report bad event", agent.report_health(bad_event).await, Invalid, "events[0]");
    let mut bad_result = report("n1");
    bad_result.results.push(v1::HealthCheckResult { check_name: "".into(), ..Default::default() });
    check("report bad result", agent.report_health(bad_result).await, Invalid, "results[0].check_name");
    let mut many = report("n1");
    many.events = vec![v1::HealthEvent::default(); 1001];
    check("report too many events", agent.report_health(many).await, Invalid, "events");

    let poll = |id: &str| v1::PollCommandsRequest { node_id: id.into(), ..Default::default() };
    check("poll without id", agent.poll_commands(poll("")).await, Invalid, "node_id");
    check("poll unknown", agent.poll_commands(poll("ghost")).await, NotFound, "ghost");

    let ack = |command: &str, outcome: v1::AckOutcome| v1::AckCommandRequest {
        node_id: "n1".into(),
        command_id: command.into(),
        outcome: outcome.into(),
        ..Default::default()
    };
    let succeeded = v1::AckOutcome::ACK_OUTCOME_SUCCEEDED;
    check("ack without command", agent.ack_command(ack("", succeeded)).await, Invalid, "command_id");
    check("ack bad command", agent.ack_command(ack("nope", succeeded)).await, Invalid, "command_id");
    check(
        "ack without outcome",
        agent.ack_command(ack(UNKNOWN_COMMAND, v1::AckOutcome::ACK_OUTCOME_UNSPECIFIED)).await,
        Invalid,
        "outcome",
    );
    check("ack unknown command", agent.ack_command(ack(UNKNOWN_COMMAND, succeeded)).await, NotFound, UNKNOWN_COMMAND);
    let mut bad_details = ack(UNKNOWN_COMMAND, succeeded);
    bad_details.details.insert("not an identifier!".into(), "x".into());
    check("ack bad details", agent.ack_command(bad_details).await, Invalid, "details");
    let mut bad_message = ack(UNKNOWN_COMMAND, succeeded);
    bad_message.message = "bell\u{7}".into();
    check("ack bad message", agent.ack_command(bad_message).await, Invalid, "message");

    // AdminService.
    check(
        "list nodes bad selector",
        admin.list_nodes(v1::ListNodesRequest { label_selector: "=x".into(), ..Default::default() }).await,
        Invalid,
        "label_selector",
    );
    check(
        "list nodes huge page",
        admin.list_nodes(v1::ListNodesRequest { page_size: 10_001, ..Default::default() }).await,
        Invalid,
        "page_size",
    );
    check(
        "list nodes bad token",
        admin.list_nodes(v1::ListNodesRequest { page_token: "garbage".into(), ..Default::default() }).await,
        Invalid,
        "page_token",
    );
    check(
        "list nodes unknown status",
        admin.list_nodes(v1::ListNodesRequest { status: buffa::EnumValue::from(99), ..Default::default() }).await,
        Invalid,
        "status",
    );
    check("get node without id", admin.get_node(v1::GetNodeRequest::default()).await, Invalid, "node_id");
    check(
        "get unknown node",
        admin.get_node(v1::GetNodeRequest { node_id: "ghost".into(), ..Default::default() }).await,
        NotFound,
        "ghost",
    );
    check(
        "delete unknown node",
        admin.delete_node(v1::DeleteNodeRequest { node_id: "ghost".into(), ..Default::default() }).await,
        NotFound,
        "ghost",
    );
    let issue = |node: &str, kind: v1::CommandType| v1::IssueCommandRequest {
        node_id: node.into(),
        r#type: kind.into(),
        ..Default::default()
    };
    check(
        "issue without type",
        admin.issue_command(issue("n1", v1::CommandType::COMMAND_TYPE_UNSPECIFIED)).await,
        Invalid,
        "type",
    );
    check(
        "issue to unknown node",
        admin.issue_command(issue("ghost", v1::CommandType::COMMAND_TYPE_CORDON)).await,
        NotFound,
        "ghost",
    );
    check(
        "custom without name",
        admin.issue_command(issue("n1", v1::CommandType::COMMAND_TYPE_CUSTOM)).await,
        Invalid,
        "custom_name",
    );
    check(
        "diagnostic without test",
        admin.issue_command(issue("n1", v1::CommandType::COMMAND_TYPE_RUN_DIAGNOSTIC)).await,
        Invalid,
        "parameters.test",
    );
    check(
        "issue with huge ttl",
        admin
            .issue_command(v1::IssueCommandRequest {
                ttl_seconds: u32::MAX,
                ..issue("n1", v1::CommandType::COMMAND_TYPE_REBOOT)
            })
            .await,
        Invalid,
        "ttl_seconds",
    );
    check(
        "list commands bad state",
        admin
            .list_commands(v1::ListCommandsRequest {
                states: vec![v1::CommandState::COMMAND_STATE_UNSPECIFIED.into()],
                ..Default::default()
            })
            .await,
        Invalid,
        "states[0]",
    );
    check("get command without id", admin.get_command(v1::GetCommandRequest::default()).await, Invalid, "command_id");
    check(
        "get unknown command",
        admin.get_command(v1::GetCommandRequest { command_id: UNKNOWN_COMMAND.into(), ..Default::default() }).await,
        NotFound,
        UNKNOWN_COMMAND,
    );
    check(
        "cancel unknown command",
        admin
            .cancel_command(v1::CancelCommandRequest { command_id: UNKNOWN_COMMAND.into(), ..Default::default() })
            .await,
        NotFound,
        UNKNOWN_COMMAND,
    );
    check(
        "list instances bad pool",
        admin.list_instances(v1::ListInstancesRequest { pool: "Bad Pool".into(), ..Default::default() }).await,
        Invalid,
        "pool",
    );
    check(
        "get instance without id",
        admin.get_instance(v1::GetInstanceRequest::default()).await,
        Invalid,
        "instance_id",
    );
    check(
        "get unknown instance",
        admin.get_instance(v1::GetInstanceRequest { instance_id: "i-ghost".into(), ..Default::default() }).await,
        NotFound,
        "i-ghost",
    );
    check(
        "history of unknown node",
        admin.get_health_history(v1::GetHealthHistoryRequest { node_id: "ghost".into(), ..Default::default() }).await,
        NotFound,
        "ghost",
    );
    check(
        "history too long",
        admin
            .get_health_history(v1::GetHealthHistoryRequest {
                node_id: "n1".into(),
                limit: 1_000_000,
                ..Default::default()
            })
            .await,
        Invalid,
        "limit",
    );
    check(
        "events bad kind",
        admin.list_events(v1::ListEventsRequest { kind: "gizmo".into(), ..Default::default() }).await,
        Invalid,
        "kind",
    );
    check(
        "events resource without kind",
        admin.list_events(v1::ListEventsRequest { resource_id: "n1".into(), ..Default::default() }).await,
        Invalid,
        "resource_id",
    );
    check(
        "events bad actor",
        admin.list_events(v1::ListEventsRequest { actor: "root".into(), ..Default::default() }).await,
        Invalid,
        "actor",
    );
    // A stream's error arrives as its first message.
    let watch =
        match admin.watch_events(v1::WatchEventsRequest { after_seq: 5, from_now: true, ..Default::default() }).await {
            Ok(mut stream) => stream.message().await.map(|_| ()),
            Err(error) => Err(error),
        };
    check("watch from_now and after_seq", watch, Invalid, "from_now");
    check("set empty policy", admin.set_policy(v1::SetPolicyRequest::default()).await, Invalid, "yaml");
    let broken = "version: v1\nmetadata: {name: broken}\nrules:\n  - name: bad\n    condition: 'event.nope +'\n    result: unhealthy\n";
    let (code, message) =
        refused(admin.set_policy(v1::SetPolicyRequest { yaml: broken.into(), ..Default::default() }).await);
    assert_eq!(code, Invalid, "{message}");
    assert!(message.starts_with("invalid policy.rules[0]: rule \"bad\": condition does not compile"), "{message}");
    let policy = admin.get_policy(v1::GetPolicyRequest::default()).await.expect("policy").into_owned();
    assert_eq!(policy.source, "built-in", "the old policy stays");
    check(
        "test a broken policy",
        admin.test_policy(v1::TestPolicyRequest { yaml: broken.into(), ..Default::default() }).await,
        Invalid,
        "bad",
    );

    assert_eq!(h.change_count().await, seq, "no refused call wrote anything");
    h.stop().await;
}

async fn oversized_bodies_are_refused(backend: Backend) {
    let mut settings = settings();
    settings.max_request_bytes = 64 * 1024;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let seq = h.change_count().await;
    let mut request = v1::RegisterRequest { node_id: "n1".into(), ..Default::default() };
    request.metadata =
        buffa::MessageField::some(v1::NodeMetadata { hostname: "x".repeat(100 * 1024), ..Default::default() });
    let (code, message) = refused(h.raw_agent(Some(AGENTS)).register_node(request).await);
    assert_eq!(code, ErrorCode::ResourceExhausted, "{message}");
    let (code, _) = refused(h.root().get_node(v1::GetNodeRequest { node_id: "n1".into(), ..Default::default() }).await);
    assert_eq!(code, ErrorCode::NotFound, "nothing was registered");
    assert_eq!(h.change_count().await, seq);
    h.stop().await;
}
