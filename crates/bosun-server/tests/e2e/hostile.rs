//! The findings of an attack on a release build (issue 11), each as a test that failed
//! before its fix: hostile documents, numbers and bodies are refused with
//! `invalid_argument` naming the problem, and the server keeps serving everyone else.

use bosun_api::v1;
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(nested_policy_documents_are_refused_and_the_server_stays_responsive);

mod bodies {
    use super::*;
    on_every_backend!(json_bodies_must_be_objects, streaming_methods_with_a_unary_content_type_answer_415);
}

mod store {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_sqlite_file_fails_readiness_refuses_writes_and_stops_the_server() {
        super::a_deleted_sqlite_file_fails_readiness_refuses_writes_and_stops_the_server().await;
    }
}

mod values {
    use super::*;
    on_every_backend!(
        numbers_beyond_the_store_are_invalid_and_liveness_keeps_judging,
        times_beyond_year_9999_are_refused
    );
}

/// A 400 KB flow mapping nested 100,000 deep: libyaml needs minutes of CPU for it.
fn nested_policy() -> String {
    format!("rules: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000))
}

async fn nested_policy_documents_are_refused_and_the_server_stays_responsive(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let admin = h.root();
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let request = v1::TestPolicyRequest { yaml: nested_policy(), ..Default::default() };
                refused(admin.test_policy(request).await)
            })
        })
        .collect();
    // Served while the documents are being refused.
    let nodes = admin.list_nodes(v1::ListNodesRequest::default()).await.expect("ListNodes answers");
    assert!(nodes.into_owned().nodes.is_empty());
    for sender in senders {
        let (code, message) = sender.await.expect("sender");
        assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
        assert!(message.contains("nests more than 32 levels deep"), "{message}");
    }

    let set = admin.set_policy(v1::SetPolicyRequest { yaml: nested_policy(), ..Default::default() }).await;
    assert_eq!(refused(set).0, ErrorCode::InvalidArgument);

    // A condition the CEL compiler would recurse on 4,000 times (it aborted the process).
    let chain = format!("rules:\n  - {{name: deep, condition: '{}1 > 0', result: unhealthy}}\n", "1 + ".repeat(4000));
    let (code, message) = refused(admin.test_policy(v1::TestPolicyRequest { yaml: chain, ..Default::default() }).await);
    assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
    assert!(message.contains("the limit is 32"), "{message}");
    h.stop().await;
}

async fn numbers_beyond_the_store_are_invalid_and_liveness_keeps_judging(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let agent = h.raw_agent(Some(ADMIN));
    agent.register_node(v1::RegisterRequest { node_id: "quiet".into(), ..Default::default() }).await.expect("register");
    h.clock.advance(h.settings.startup_grace + h.settings.heartbeat_timeout);

    // PostgreSQL used to answer `unavailable` (bigint out of range), which made the
    // server blind for a grace period: repeated, it kept a dead node ACTIVE.
    let mut huge = v1::RegisterRequest { node_id: "huge".into(), ..Default::default() };
    huge.gpus.push(v1::GpuInfo { index: 0, memory_bytes: u64::MAX, ..Default::default() });
    let (code, message) = refused(agent.register_node(huge).await);
    assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
    assert!(message.contains("gpus[0].memory_bytes"), "{message}");
    let mut metrics = v1::HeartbeatRequest { node_id: "quiet".into(), ..Default::default() };
    metrics.metrics = buffa::MessageField::some(v1::NodeMetrics {
        gpu_metrics: vec![v1::GpuMetrics { memory_used: u64::MAX, ..Default::default() }],
        ..Default::default()
    });
    let (code, message) = refused(agent.heartbeat(metrics).await);
    assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
    assert!(message.contains("metrics.gpus[0].memory_used_bytes"), "{message}");

    assert_eq!(h.server().judge_liveness().await.expect("judge"), [node_id("quiet")], "liveness still judges");
    h.stop().await;
}

async fn times_beyond_year_9999_are_refused(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let agent = h.raw_agent(Some(ADMIN));
    agent.register_node(v1::RegisterRequest { node_id: "n1".into(), ..Default::default() }).await.expect("register");
    for (seconds, nanos) in [(i64::MAX, 0), (253_402_300_800, 0), (-62_135_596_801, 0), (0, -5)] {
        let at = buffa_types::google::protobuf::Timestamp { seconds, nanos, ..Default::default() };
        let event = v1::HealthEvent { timestamp: buffa::MessageField::some(at), ..Default::default() };
        let report = v1::ReportHealthRequest { node_id: "n1".into(), events: vec![event], ..Default::default() };
        let (code, message) = refused(agent.report_health(report).await);
        assert_eq!(code, ErrorCode::InvalidArgument, "{seconds}s: {message}");
        assert!(message.contains("events[0].timestamp"), "{message}");
    }
    let root = h.root();
    let history = root.get_health_history(v1::GetHealthHistoryRequest { node_id: "n1".into(), ..Default::default() });
    assert!(history.await.expect("history").into_owned().reports.is_empty(), "nothing was stored as 1970");
    h.stop().await;
}

async fn json_bodies_must_be_objects(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let bearer = format!("Bearer {ADMIN}");
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    // Decoded by position, `["n1"]` used to register node n1.
    for body in [r#"["n1"]"#, r#""n1""#, "42", "null", "  "] {
        let (status, answer) = http(&h, "POST", "/bosun.v1.AgentService/RegisterNode", &headers, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let json: serde_json::Value = serde_json::from_str(&answer).expect("a Connect error");
        assert_eq!(json["code"], "invalid_argument", "{body}: {answer}");
    }
    let root = h.root();
    let nodes = root.list_nodes(v1::ListNodesRequest::default()).await.expect("list").into_owned().nodes;
    assert!(nodes.is_empty(), "nothing registered");
    let (status, answer) =
        http(&h, "POST", "/bosun.v1.AgentService/RegisterNode", &headers, r#" {"nodeId": "n1"}"#).await;
    assert_eq!(status, 200, "{answer}");
    h.stop().await;
}

async fn streaming_methods_with_a_unary_content_type_answer_415(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let bearer = format!("Bearer {ADMIN}");
    for content_type in ["application/json", "application/proto", "application/json; charset=utf-8"] {
        let headers = [("content-type", content_type), ("authorization", bearer.as_str())];
        let (status, answer) = http(&h, "POST", "/bosun.v1.AdminService/WatchEvents", &headers, "{}").await;
        assert_eq!(status, 415, "{content_type}: {answer}");
        assert!(answer.contains("application/connect+json"), "{answer}");
    }
    // Answered before its body is read, an HTTP/1.1 connection is closed, and says so: a
    // client must not send its next request into it.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.server().local_addr()).await.expect("connect");
    let request = format!(
        "POST /bosun.v1.AdminService/WatchEvents HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         authorization: {bearer}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read until closed");
    assert!(answer.starts_with("HTTP/1.1 415") && answer.contains("connection: close"), "{answer}");
    h.stop().await;
}

async fn a_deleted_sqlite_file_fails_readiness_refuses_writes_and_stops_the_server() {
    let Some(h) = Harness::start(Backend::Sqlite).await else { return };
    assert_eq!(http(&h, "GET", "/readyz", &[], "").await, (200, "ready\n".to_owned()));
    let path = h.sqlite_path().expect("a SQLite file");
    std::fs::remove_file(&path).expect("delete the database under the server");

    let (status, body) = http(&h, "GET", "/readyz", &[], "").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("was deleted"), "{body}");
    // Writes are refused, not acknowledged into the unlinked file.
    let register = v1::RegisterRequest { node_id: "n1".into(), ..Default::default() };
    let (code, message) = refused(h.raw_agent(Some(ADMIN)).register_node(register).await);
    assert_eq!(code, ErrorCode::Unavailable, "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    // The server reports it cannot go on (the binary then exits non-zero).
    let reason = tokio::time::timeout(std::time::Duration::from_secs(10), h.server().failed()).await.expect("failed");
    assert!(reason.contains("was deleted"), "{reason}");
    h.stop().await;
}
