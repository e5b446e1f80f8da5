//! The MCP server at `/mcp`: an rmcp client initializes a session, lists the tools and
//! reads the fleet as its token; agent tokens, the kill switch and the per-token rate
//! limit refuse; bad input of every kind is a JSON-RPC error below 500.

use std::time::Duration;

use bosun_agent::ControlPlane as _;
use bosun_api::v1;
use bosun_store::Backend;
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode, JsonObject};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::harness::*;

on_sql_backends!(
    an_agent_reads_the_fleet_through_mcp,
    the_readme_exchange_over_plain_http,
    only_operator_and_admin_tokens_may_use_mcp,
    an_open_server_takes_anonymous_calls_from_this_machine,
    the_configuration_turns_mcp_off,
    the_stored_switch_turns_mcp_off_on_every_replica,
    the_configuration_wins_over_the_stored_switch,
    each_token_is_rate_limited,
    bad_input_is_a_json_rpc_error_below_500,
);

const READ_TOOLS: [&str; 8] =
    ["list_nodes", "get_node", "node_health_history", "list_events", "list_pools", "get_pool", "list_runs", "get_run"];
/// Tools that change the fleet, after the read tools in `tools/list`.
const WRITE_TOOLS: [&str; 8] = [
    "cordon_node",
    "uncordon_node",
    "drain_node",
    "diagnose_node",
    "terminate_node",
    "scale_pool",
    "start_runbook",
    "report_llm_usage",
];

/// Settings whose rate limit stays out of the way (the fake clock does not move).
pub(crate) fn mcp_settings() -> bosun_server::Settings {
    let mut settings = settings();
    settings.mcp.rate_limit_per_second = 1000;
    settings
}

pub(crate) fn http_client() -> reqwest::Client {
    bosun_provider::https_client_builder().expect("client").build().expect("client")
}

/// An rmcp client session with `/mcp` as `token`.
pub(crate) async fn connect(h: &Harness, token: &str) -> Result<RunningService<RoleClient, ()>, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", h.url())).auth_header(token);
    let transport = StreamableHttpClientTransport::with_client(http_client(), config);
    ().serve(transport).await.map_err(|e| e.to_string())
}

pub(crate) fn arguments(value: Value) -> JsonObject {
    let Value::Object(map) = value else { panic!("arguments are an object") };
    map
}

pub(crate) async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments(args));
    client.call_tool(params).await.unwrap_or_else(|e| panic!("{tool}: {e}"))
}

pub(crate) fn text(result: &CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

async fn an_agent_reads_the_fleet_through_mcp(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    for node in ["n1", "n2"] {
        h.agent_client().register(&registration(node), None).await.expect("register");
    }
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let info = client.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("bosun"));
    assert_eq!(info.protocol_version.as_str(), "2025-11-25");

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, [READ_TOOLS.as_slice(), WRITE_TOOLS.as_slice()].concat());
    for tool in &tools {
        let annotations = tool.annotations.as_ref().expect("annotated");
        let reads = READ_TOOLS.contains(&tool.name.as_ref());
        assert_eq!(annotations.read_only_hint, Some(reads), "{}", tool.name);
        let destructive = ["terminate_node", "scale_pool"].contains(&tool.name.as_ref());
        assert_eq!(annotations.destructive_hint, Some(destructive), "{}", tool.name);
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
    }

    let node = call(&client, "get_node", json!({"node_id": "n1"})).await;
    assert_eq!(node.is_error, Some(false), "{}", text(&node));
    let answer = node.structured_content.expect("structured");
    assert_eq!(answer["node"]["nodeId"], "n1", "{answer}");

    let nodes = call(&client, "list_nodes", json!({})).await;
    let answer = nodes.structured_content.expect("structured");
    let ids: Vec<&str> =
        answer["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["nodeId"].as_str()).collect();
    assert_eq!(ids, ["n1", "n2"]);
    let none = call(&client, "list_nodes", json!({"status": "cordoned"})).await;
    assert_eq!(none.structured_content.expect("structured")["nodes"].as_array().map_or(0, Vec::len), 0);

    // The API's refusal is a tool error the model reads.
    let ghost = call(&client, "get_node", json!({"node_id": "ghost"})).await;
    assert_eq!(ghost.is_error, Some(true));
    assert!(text(&ghost).starts_with("not_found:"), "{}", text(&ghost));

    // Input failing the tool's schema: a tool error naming the field.
    for (args, field) in [
        (json!({"node_id": 5}), "node_id"),
        (json!({}), "node_id"),
        (json!({"node_id": "n1", "verbose": true}), "verbose"),
    ] {
        let refused = call(&client, "get_node", args.clone()).await;
        assert_eq!(refused.is_error, Some(true), "{args}");
        assert!(text(&refused).contains(field), "{args}: {}", text(&refused));
    }
    let refused = call(&client, "list_nodes", json!({"page_size": 0})).await;
    assert!(text(&refused).contains("page_size"), "{}", text(&refused));

    // An unknown tool: a protocol error.
    let params = CallToolRequestParams::new("drop_tables").with_arguments(JsonObject::new());
    match client.call_tool(params).await {
        Err(ServiceError::McpError(error)) => {
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
            assert!(error.message.contains("drop_tables"), "{}", error.message);
        }
        other => panic!("an unknown tool must be an error, got {other:?}"),
    }
    client.cancel().await.expect("closed");
    h.stop().await;
}

/// A raw POST of `body` to `/mcp`; the status, headers and body.
async fn post(
    h: &Harness,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = http_client()
        .post(format!("{}/mcp", h.url()))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(Duration::from_secs(30), request.body(body).send())
        .await
        .expect("answered in time")
        .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body =
        tokio::time::timeout(Duration::from_secs(30), response.text()).await.expect("read in time").unwrap_or_default();
    (status, headers, body)
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
const LIST_TOOLS: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The JSON-RPC error of an answer: its code and message.
fn jsonrpc_error(body: &str) -> (i64, String) {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("a JSON body ({e}): {body}"));
    assert_eq!(value["jsonrpc"], "2.0", "{body}");
    let code = value["error"]["code"].as_i64().unwrap_or_else(|| panic!("an error code: {body}"));
    (code, value["error"]["message"].as_str().unwrap_or_default().to_owned())
}

/// Initializes a session as `token` over raw HTTP; its id.
async fn open_session(h: &Harness, token: &str) -> String {
    let auth = bearer(token);
    let (status, headers, body) = post(h, &[("authorization", &auth)], INITIALIZE).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("a session id").to_owned()
}

/// The JSON-RPC message in an event stream's one `data:` line.
fn event(body: &str) -> Value {
    let data: Vec<&str> =
        body.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim).filter(|d| !d.is_empty()).collect();
    assert_eq!(data.len(), 1, "one message: {body}");
    serde_json::from_str(data[0]).unwrap_or_else(|e| panic!("JSON ({e}): {body}"))
}

/// The curl exchange README.md shows, over plain HTTP.
async fn the_readme_exchange_over_plain_http(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let session = open_session(&h, OPERATOR).await;
    let auth = bearer(OPERATOR);
    let in_session = [("authorization", auth.as_str()), ("mcp-session-id", session.as_str())];
    let (status, _, body) = post(&h, &in_session, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!((status, body.as_str()), (202, ""));
    let (status, headers, body) = post(&h, &in_session, LIST_TOOLS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let tools: Value = event(&body);
    assert_eq!(tools["result"]["tools"][1]["name"], "get_node", "{body}");
    assert_eq!(tools["result"]["tools"][1]["annotations"]["readOnlyHint"], true, "{body}");
    let get_node =
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_node","arguments":{"node_id":"n1"}}}"#;
    let (status, _, body) = post(&h, &in_session, get_node).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = event(&body);
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["result"]["isError"], false, "{body}");
    assert_eq!(answer["result"]["structuredContent"]["node"]["nodeId"], "n1", "{body}");
    assert_eq!(answer["result"]["content"][0]["type"], "text", "{body}");

    let response = http_client()
        .delete(format!("{}/mcp", h.url()))
        .header("authorization", &auth)
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("an answer");
    assert!(response.status().is_success(), "{}", response.status());
    let (status, _, body) = post(&h, &in_session, LIST_TOOLS).await;
    assert_eq!(status, 404, "the session is gone: {body}");
    assert_eq!(jsonrpc_error(&body).0, -32600);
    h.stop().await;
}

async fn only_operator_and_admin_tokens_may_use_mcp(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    for token in [AGENTS, PINNED_N9] {
        let auth = bearer(token);
        let (status, _, body) = post(&h, &[("authorization", &auth)], INITIALIZE).await;
        assert_eq!(status, 403, "{body}");
        let (_, message) = jsonrpc_error(&body);
        assert!(message.contains("operator or admin token"), "{message}");
    }
    assert!(connect(&h, AGENTS).await.is_err(), "the rmcp client cannot initialize with an agent token");
    let (status, headers, body) = post(&h, &[("authorization", "Bearer wrong")], INITIALIZE).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    jsonrpc_error(&body);
    let (status, _, body) = post(&h, &[], INITIALIZE).await;
    assert_eq!(status, 401, "no token: {body}");
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains("bosun_auth_failures_total 2"), "failed tokens are counted: {metrics}");

    // Both roles may; a session belongs to the token that opened it.
    let session = open_session(&h, OPERATOR).await;
    let _ = open_session(&h, ADMIN).await;
    let admin = bearer(ADMIN);
    let (status, _, body) = post(&h, &[("authorization", &admin), ("mcp-session-id", &session)], LIST_TOOLS).await;
    assert_eq!(status, 403, "{body}");
    assert!(jsonrpc_error(&body).1.contains("another token"), "{body}");
    let operator = bearer(OPERATOR);
    let (status, _, body) = post(&h, &[("authorization", &operator), ("mcp-session-id", &session)], LIST_TOOLS).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("get_node"), "{body}");
    h.stop().await;
}

async fn an_open_server_takes_anonymous_calls_from_this_machine(backend: Backend) {
    let settings = bosun_server::Settings { auth: bosun_config::AuthConfig::default(), ..mcp_settings() };
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", h.url()));
    let client = ().serve(StreamableHttpClientTransport::with_client(http_client(), config)).await.expect("a session");
    let node = call(&client, "get_node", json!({"node_id": "n1"})).await;
    assert_eq!(node.is_error, Some(false), "{}", text(&node));
    client.cancel().await.expect("closed");
    // Without tokens, a request addressed to another name (a DNS-rebinding page) is refused.
    let (status, _, body) = post(&h, &[("host", "rebound.example")], INITIALIZE).await;
    assert_eq!(status, 403, "{body}");
    jsonrpc_error(&body);
    h.stop().await;
}

async fn the_configuration_turns_mcp_off(backend: Backend) {
    let mut settings = mcp_settings();
    settings.mcp.enabled = false;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let auth = bearer(OPERATOR);
    let (status, _, body) = post(&h, &[("authorization", &auth)], INITIALIZE).await;
    assert_eq!(status, 503, "{body}");
    let (code, message) = jsonrpc_error(&body);
    assert_eq!(code, -32000);
    assert!(message.contains("disabled by the configuration (mcp.enabled: false)"), "{message}");
    let error = connect(&h, OPERATOR).await.expect_err("no session");
    assert!(error.contains("disabled"), "{error}");
    assert_eq!(h.get_text("/healthz").await, "ok\n", "the rest of the port serves");
    h.stop().await;
}

/// `bosun mcp disable`: an open session's next call fails, raw requests get 503 with a
/// JSON-RPC error naming who turned it off and why; only an admin turns it back on; a
/// replica on the same database sees the switch at once.
async fn the_stored_switch_turns_mcp_off_on_every_replica(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    h.agent_client().register(&registration("n1"), None).await.expect("register");
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let node = call(&client, "get_node", json!({"node_id": "n1"})).await;
    assert_eq!(node.is_error, Some(false), "{}", text(&node));
    let session = open_session(&h, ADMIN).await;
    let replica = match backend {
        Backend::Postgres => Some(h.replica().await),
        _ => None,
    };

    let operator = h.ops(Some(OPERATOR));
    let status = operator.get_mcp_status(v1::GetMcpStatusRequest::default()).await.expect("status").into_owned();
    assert!(status.enabled && status.config_enabled && status.stored_enabled, "{status:?}");
    assert!(status.changed_by.is_empty() && status.changed_at.as_option().is_none(), "never set: {status:?}");
    let request = v1::SetMcpEnabledRequest { enabled: false, reason: "incident 42".to_owned(), ..Default::default() };
    let set = operator.set_mcp_enabled(request).await.expect("an operator turns MCP off").into_owned();
    let status = set.status.as_option().expect("status").clone();
    assert!(!status.enabled && status.config_enabled && !status.stored_enabled, "{status:?}");
    assert_eq!((status.changed_by.as_str(), status.reason.as_str()), ("oncall", "incident 42"));
    assert!(status.changed_at.as_option().is_some());

    let expected = "bosun's MCP server is disabled (by oncall at ";
    let params = CallToolRequestParams::new("get_node").with_arguments(arguments(json!({"node_id": "n1"})));
    let answer = tokio::time::timeout(Duration::from_secs(10), client.call_tool(params)).await;
    let error = answer.expect("the rmcp client is answered at once").expect_err("MCP is off").to_string();
    assert!(error.contains(expected) && error.contains("incident 42"), "{error}");
    let auth = bearer(ADMIN);
    let in_session = [("authorization", auth.as_str()), ("mcp-session-id", session.as_str())];
    let mut servers = vec![&h];
    servers.extend(replica.as_ref());
    for server in &servers {
        let (status, _, body) = post(server, &in_session, LIST_TOOLS).await;
        assert_eq!(status, 503, "{body}");
        let (code, message) = jsonrpc_error(&body);
        assert_eq!(code, -32000);
        assert!(message.starts_with(expected), "{message}");
        assert!(message.ends_with(": incident 42); an admin re-enables it with `bosun mcp enable`"), "{message}");
        let (status, _, body) = post(server, &[("authorization", &auth)], INITIALIZE).await;
        assert_eq!(status, 503, "no new session either: {body}");
    }
    let (status, _, body) = post(&h, &[], INITIALIZE).await;
    assert_eq!(status, 401, "an unauthenticated caller learns nothing of the switch: {body}");

    // The operator cannot turn it on; the admin can.
    let on = v1::SetMcpEnabledRequest { enabled: true, ..Default::default() };
    let (code, message) = refused(operator.set_mcp_enabled(on.clone()).await);
    assert_eq!(code, connectrpc::ErrorCode::PermissionDenied, "{message}");
    assert!(message.contains("admin token"), "{message}");
    let admin = h.ops(Some(ADMIN));
    let set = admin.set_mcp_enabled(on).await.expect("an admin turns MCP on").into_owned();
    let status = set.status.as_option().expect("status").clone();
    assert!(status.enabled && status.stored_enabled, "{status:?}");
    assert_eq!((status.changed_by.as_str(), status.reason.as_str()), ("root", ""));
    let again = connect(&h, OPERATOR).await.expect("a new MCP session");
    let node = call(&again, "get_node", json!({"node_id": "n1"})).await;
    assert_eq!(node.is_error, Some(false), "calls work again: {}", text(&node));
    again.cancel().await.expect("closed");
    let (status, _, body) = post(&h, &in_session, LIST_TOOLS).await;
    assert_eq!(status, 200, "{body}");
    if let Some(replica) = &replica {
        // Sessions are per replica: the replica opens one of its own again.
        open_session(replica, ADMIN).await;
    }
    if let Some(replica) = &replica {
        let status = replica.ops(Some(OPERATOR)).get_mcp_status(v1::GetMcpStatusRequest::default()).await;
        assert_eq!(status.expect("status").into_owned().changed_by, "root");
    }

    // Audited as mutations of the setting, the refusal too.
    let audit = admin
        .list_audit(v1::ListAuditRequest {
            method: "bosun.v1.OpsService/SetMcpEnabled".to_owned(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_owned();
    let seen: Vec<(&str, &str, &str)> =
        audit.entries.iter().map(|e| (e.actor.as_str(), e.outcome.as_str(), e.resource.as_str())).collect();
    assert_eq!(
        seen,
        [("oncall", "ok", "setting:mcp.enabled"), ("oncall", "refused", ""), ("root", "ok", "setting:mcp.enabled")]
    );
    drop(client);
    if let Some(replica) = replica {
        replica.stop().await;
    }
    h.stop().await;
}

/// With `mcp.enabled: false` in the configuration, the stored switch cannot turn MCP on.
async fn the_configuration_wins_over_the_stored_switch(backend: Backend) {
    let mut settings = mcp_settings();
    settings.mcp.enabled = false;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let admin = h.ops(Some(ADMIN));
    let on = v1::SetMcpEnabledRequest { enabled: true, ..Default::default() };
    let (code, message) = refused(admin.set_mcp_enabled(on).await);
    assert_eq!(code, connectrpc::ErrorCode::FailedPrecondition, "{message}");
    assert!(message.contains("configuration disables"), "{message}");
    let status = admin.get_mcp_status(v1::GetMcpStatusRequest::default()).await.expect("status").into_owned();
    assert!(!status.enabled && !status.config_enabled && status.stored_enabled, "{status:?}");
    h.stop().await;
}

async fn each_token_is_rate_limited(backend: Backend) {
    let mut settings = settings();
    settings.mcp.rate_limit_per_second = 3;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let auth = bearer(OPERATOR);
    let session = open_session(&h, OPERATOR).await;
    let in_session = [("authorization", auth.as_str()), ("mcp-session-id", session.as_str())];
    for _ in 0..2 {
        let (status, _, body) = post(&h, &in_session, LIST_TOOLS).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) = post(&h, &in_session, LIST_TOOLS).await;
    assert_eq!(status, 429, "the fourth request within a second: {body}");
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let (code, message) = jsonrpc_error(&body);
    assert_eq!(code, -32000);
    assert!(message.contains("mcp.rate_limit_per_second"), "{message}");
    // Per token: the admin's allowance is whole.
    let _ = open_session(&h, ADMIN).await;
    h.clock.advance(Duration::from_millis(334));
    let (status, _, body) = post(&h, &in_session, LIST_TOOLS).await;
    assert_eq!(status, 200, "one request's worth came back: {body}");
    let (status, _, _) = post(&h, &in_session, LIST_TOOLS).await;
    assert_eq!(status, 429);
    h.stop().await;
}

/// What is sent (name, headers, body) and what must come back (status, JSON-RPC code).
type BadInput<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, u16, i64);

async fn bad_input_is_a_json_rpc_error_below_500(backend: Backend) {
    let mut settings = mcp_settings();
    settings.max_request_bytes = 64 * 1024;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    let auth = bearer(OPERATOR);
    let session = open_session(&h, OPERATOR).await;
    let with_session = [("authorization", auth.as_str()), ("mcp-session-id", session.as_str())];
    let huge = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(100 * 1024));
    let cases: Vec<BadInput<'_>> = vec![
        ("not JSON", with_session.to_vec(), "{not json".to_owned(), 400, -32700),
        ("a batch", with_session.to_vec(), "[]".to_owned(), 400, -32600),
        ("jsonrpc 1.0", with_session.to_vec(), r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.to_owned(), 400, -32600),
        (
            "params 5",
            with_session.to_vec(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":5}"#.to_owned(),
            400,
            -32600,
        ),
        (
            "bad params",
            with_session.to_vec(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":[]}}"#.to_owned(),
            400,
            -32602,
        ),
        ("a huge body", with_session.to_vec(), huge, 413, -32600),
        ("no session id", vec![("authorization", auth.as_str())], LIST_TOOLS.to_owned(), 400, -32600),
        (
            "an unknown session id",
            vec![("authorization", auth.as_str()), ("mcp-session-id", "00000000-0000-4000-8000-000000000000")],
            LIST_TOOLS.to_owned(),
            404,
            -32600,
        ),
    ];
    for (what, headers, body, expected_status, expected_code) in cases {
        let (status, _, answer) = post(&h, &headers, body).await;
        assert_eq!(status, expected_status, "{what}: {answer}");
        let (code, message) = jsonrpc_error(&answer);
        assert_eq!(code, expected_code, "{what}: {message}");
        assert!(!message.is_empty(), "{what}");
    }

    // Headers rmcp checks: its plain-text refusals come back as JSON-RPC errors.
    let client = http_client();
    let url = format!("{}/mcp", h.url());
    let with = |request: reqwest::RequestBuilder| request.header("authorization", &auth);
    let raw = [
        (
            "a wrong content type",
            with(client.post(&url))
                .header("content-type", "text/plain")
                .header("mcp-session-id", &session)
                .body(LIST_TOOLS),
            415,
        ),
        (
            "no Accept",
            with(client.post(&url))
                .header("content-type", "application/json")
                .header("mcp-session-id", &session)
                .body(LIST_TOOLS),
            406,
        ),
        ("a PUT", with(client.put(&url)).header("mcp-session-id", &session).body(LIST_TOOLS), 405),
        (
            "a GET of an unknown session",
            with(client.get(&url)).header("accept", "text/event-stream").header("mcp-session-id", "nope"),
            404,
        ),
        ("a DELETE without a session", with(client.delete(&url)), 400),
    ];
    for (what, request, expected_status) in raw {
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status().as_u16();
        let answer = response.text().await.unwrap_or_default();
        assert!(status < 500, "{what}: {status} {answer}");
        assert_eq!(status, expected_status, "{what}: {answer}");
        jsonrpc_error(&answer);
    }

    // The server serves on, and the session still works.
    assert_eq!(h.get_text("/healthz").await, "ok\n");
    let (status, _, body) = post(&h, &with_session, LIST_TOOLS).await;
    assert_eq!(status, 200, "{body}");
    h.stop().await;
}
