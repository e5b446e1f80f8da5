//! The plain HTTP endpoints and the Connect JSON protocol, as curl would use them.

use bosun_agent::ControlPlane;
use bosun_store::Backend;

use crate::harness::*;

on_sql_backends!(health_readiness_metrics_and_connect_json, grpc_and_connect_over_h2c_on_the_same_port);

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
