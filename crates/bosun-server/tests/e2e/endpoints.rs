//! The plain HTTP endpoints and the Connect JSON protocol, as curl would use them.

use bosun_agent::ControlPlane;
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(
    health_readiness_metrics_and_connect_json,
    grpc_and_connect_over_h2c_on_the_same_port,
    metrics_pass_promtool_and_list_series_in_a_stable_order,
);

async fn health_readiness_metrics_and_connect_json(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");

    assert_eq!(http(&h, "GET", "/healthz", &[], "").await.0, 200, "open without a token");
    let (status, body) = http(&h, "GET", "/readyz", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    let bearer = format!("Bearer {ADMIN}");
    let (status, body) = http(
        &h,
        "POST",
        "/bosun.v1.AdminService/ListNodes",
        &[("content-type", "application/json"), ("authorization", &bearer)],
        "{}",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(json["nodes"][0]["nodeId"], "n1");
    assert_eq!(json["nodes"][0]["status"], "NODE_STATUS_ACTIVE");

    let (status, body) = http(
        &h,
        "POST",
        "/bosun.v1.AdminService/GetNode",
        &[("content-type", "application/json"), ("authorization", &bearer)],
        r#"{"nodeId": "bad id!"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(json["code"], "invalid_argument");
    assert!(json["message"].as_str().expect("message").contains("node_id"), "{body}");

    let (status, metrics) = http(&h, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    for needle in [
        // Registered, no health report yet.
        "bosun_nodes{status=\"ACTIVE\",health=\"UNKNOWN\"} 1",
        "bosun_rpc_requests_total{method=\"ListNodes\",code=\"ok\"} 1",
        "bosun_rpc_requests_total{method=\"GetNode\",code=\"invalid_argument\"} 1",
        "bosun_rpc_duration_seconds_bucket",
        "bosun_store_operation_duration_seconds_bucket",
        "bosun_node_heartbeat_age_seconds",
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle}:\n{metrics}");
    }
    h.stop().await;
}

async fn grpc_and_connect_over_h2c_on_the_same_port(backend: Backend) {
    use connectrpc::Protocol;
    use connectrpc::client::{ClientConfig, Http2Connection};
    let Some(h) = Harness::start(backend).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let uri: http::Uri = h.url().parse().expect("uri");
    let connection = Http2Connection::connect_plaintext(uri.clone()).await.expect("h2c").shared(8);
    let config = ClientConfig::new(uri)
        .with_protocol(Protocol::Grpc)
        .with_default_header("authorization", format!("Bearer {ADMIN}"));
    let client = bosun_api::v1::AdminServiceClient::new(connection, config);
    let nodes =
        client.list_nodes(bosun_api::v1::ListNodesRequest::default()).await.expect("gRPC ListNodes").into_owned();
    assert_eq!(nodes.nodes.len(), 1);
    let error = client
        .get_node(bosun_api::v1::GetNodeRequest { node_id: "ghost".into(), ..Default::default() })
        .await
        .expect_err("unknown node");
    assert_eq!(error.code, connectrpc::ErrorCode::NotFound, "gRPC status codes match Connect's");

    // Connect itself over the same h2c connection kind.
    let uri: http::Uri = h.url().parse().expect("uri");
    let connection = Http2Connection::connect_plaintext(uri.clone()).await.expect("h2c").shared(8);
    let config = ClientConfig::new(uri)
        .with_protocol(Protocol::Connect)
        .with_default_header("authorization", format!("Bearer {ADMIN}"));
    let client = bosun_api::v1::AdminServiceClient::new(connection, config);
    let nodes =
        client.list_nodes(bosun_api::v1::ListNodesRequest::default()).await.expect("Connect over h2c").into_owned();
    assert_eq!(nodes.nodes.len(), 1);
    h.stop().await;
}

/// `promtool check metrics` on a scrape with every kind of family populated: counters,
/// labelled counters, gauges, histograms. promtool reads the classic text format, which
/// `/metrics` serves unless OpenMetrics is asked for.
async fn metrics_pass_promtool_and_list_series_in_a_stable_order(backend: Backend) {
    let Some(promtool) = promtool() else { return };
    let Some(h) = Harness::start(backend).await else { return };
    let agent = h.spawn_agent("n1", 4);
    h.wait_for_node("n1", "registered", |_| true).await;
    let xid = bosun_api::v1::IssueCommandRequest {
        node_id: "n1".into(),
        r#type: bosun_api::v1::CommandType::COMMAND_TYPE_CUSTOM.into(),
        custom_name: bosun_agent::FAULT_COMMAND.into(),
        parameters: [("fault".to_owned(), "xid".to_owned()), ("code".to_owned(), "13".to_owned())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    h.root().issue_command(xid).await.expect("inject an application XID");
    h.wait_for_node("n1", "DEGRADED", |n| health_of(n) == bosun_api::v1::HealthStatus::HEALTH_STATUS_DEGRADED).await;
    h.server().flush().await.expect("flush");

    let classic = h.get_text("/metrics").await;
    assert!(classic.contains("bosun_xid_events_total{xid=\"13\",action=\"restart_app\"} 1"), "{classic}");
    assert!(classic.contains("# TYPE bosun_heartbeats_total counter"), "{classic}");
    assert!(classic.contains("bosun_node_heartbeat_age_seconds{stat=\"p99\"}"), "{classic}");
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(classic.as_bytes()).expect("feed promtool");
    let checked = child.wait_with_output().expect("promtool finishes");
    let complaints =
        format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && complaints.trim().is_empty(), "promtool check metrics:\n{complaints}");

    // OpenMetrics for scrapers that ask (Prometheus does).
    let (status, open) =
        http(&h, "GET", "/metrics", &[("accept", "application/openmetrics-text; version=1.0.0")], "").await;
    assert_eq!(status, 200);
    assert!(open.contains("# TYPE bosun_heartbeats counter") && open.trim_end().ends_with("# EOF"), "{open}");

    // Series in a stable, sorted order: the node gauges by status then health.
    let series: Vec<&str> = classic.lines().filter(|l| l.starts_with("bosun_nodes{")).collect();
    let mut sorted = series.clone();
    sorted.sort_unstable();
    assert_eq!(series, sorted);
    assert_eq!(
        h.get_text("/metrics").await.lines().filter(|l| l.starts_with("bosun_nodes{")).collect::<Vec<_>>(),
        series
    );
    agent.stop().await;
    h.stop().await;
}

/// promtool, or `None` (skipping) where it is not installed; CI must have it.
fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required under CI to check /metrics: install it (apt-get install prometheus)"
        );
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
    }
    found
}
