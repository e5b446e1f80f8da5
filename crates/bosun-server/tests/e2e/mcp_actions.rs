//! MCP tools that change the fleet: every session is an `ai_session` run with a tool call
//! record per call; writes the approval policy allows are done at once, in the same
//! transaction as their record and audit entry; a destructive call over six nodes waits
//! for an admin's approval as an `ai_action` run the executor then carries out; a denied
//! call names the rule; a session's destructive budget runs out; disabled tools are gone.

use std::time::Duration;

use bosun_agent::ControlPlane as _;
use bosun_api::v1;
use bosun_core::{PoolSpec, RunId, ToolCallStatus};
use bosun_provider::fake::FakeSettings;
use bosun_store::Backend;
use rmcp::model::{CallToolRequestParams, ErrorCode, JsonObject};
use rmcp::service::ServiceError;
use serde_json::{Value, json};

use crate::harness::*;
use crate::mcp::{call, connect, mcp_settings, text};

on_sql_backends!(
    a_session_is_a_run_and_an_allowed_cordon_is_done_and_recorded,
    terminating_six_nodes_waits_for_an_admins_approval,
    a_denied_call_names_the_rule_and_the_destructive_budget_runs_out,
    a_disabled_tool_is_neither_listed_nor_callable,
    shrinking_a_pool_by_most_of_it_waits_for_an_approval_then_resizes_it,
    the_janitor_closes_a_session_its_server_abandoned,
    an_agent_reports_its_llm_usage_priced_on_its_session,
    a_runbook_an_agent_starts_is_weighed_as_the_agents_and_spends_its_budget,
);

async fn register(h: &Harness, nodes: &[&str]) {
    for node in nodes {
        h.agent_client().register(&registration(node), None).await.expect("register");
    }
}

/// The runs of `kind`, newest first.
async fn runs(h: &Harness, kind: &str) -> Vec<v1::Run> {
    let request = v1::ListRunsRequest { kind: kind.into(), ..Default::default() };
    h.ops(Some(ADMIN)).list_runs(request).await.expect("runs").into_owned().runs
}

async fn get_run(h: &Harness, id: &str) -> v1::Run {
    let request = v1::GetRunRequest { run_id: id.into(), ..Default::default() };
    h.ops(Some(ADMIN)).get_run(request).await.expect("run").into_owned().run.as_option().cloned().expect("run")
}

/// The one open session's run.
async fn session_run(h: &Harness) -> v1::Run {
    let sessions = runs(h, "ai_session").await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sessions.into_iter().next().expect("one")
}

async fn tool_calls(h: &Harness, run: &str) -> Vec<bosun_core::ledger::StoredToolCall> {
    let id: RunId = run.parse().expect("run id");
    h.server().store().tool_calls(&id, 0, 1000).await.expect("tool calls")
}

async fn audit(h: &Harness, method: &str) -> Vec<v1::AuditEntry> {
    let request = v1::ListAuditRequest { method: method.into(), ..Default::default() };
    h.ops(Some(ADMIN)).list_audit(request).await.expect("audit").into_owned().entries
}

fn status_of(node: &v1::Node) -> v1::NodeStatus {
    node.status.as_known().expect("a known status")
}

async fn a_session_is_a_run_and_an_allowed_cordon_is_done_and_recorded(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    register(&h, &["n1", "n2"]).await;
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let session = session_run(&h).await;
    assert_eq!((session.status.as_str(), session.requested_by.as_str()), ("running", "operator:oncall"));
    let input: Value = serde_json::from_str(&session.input_json).expect("input");
    assert_eq!(input["role"], "operator", "{input}");
    assert!(input["client"]["name"].is_string(), "{input}");

    let read = call(&client, "get_node", json!({"node_id": "n1"})).await;
    assert_eq!(read.is_error, Some(false), "{}", text(&read));

    // The builtin policy lets a write through: done at once.
    let cordoned = call(&client, "cordon_node", json!({"node_id": "n1", "reason": "xid 79 on gpu 3"})).await;
    assert_eq!(cordoned.is_error, Some(false), "{}", text(&cordoned));
    let answer = cordoned.structured_content.clone().expect("structured");
    assert_eq!(answer["status"], "done", "{answer}");
    assert_eq!(answer["commands"][0]["node_id"], "n1", "{answer}");
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_CORDONED);
    assert_eq!(h.node("n1").await.status_reason, "xid 79 on gpu 3");

    // Both calls are recorded on the session's run, with input, output, status and duration.
    let calls = tool_calls(&h, &session.id).await;
    let summary: Vec<(&str, ToolCallStatus)> = calls.iter().map(|c| (c.call.tool.as_str(), c.call.status)).collect();
    assert_eq!(summary, [("get_node", ToolCallStatus::Succeeded), ("cordon_node", ToolCallStatus::Succeeded)]);
    assert_eq!(calls[1].call.input, json!({"node_id": "n1", "reason": "xid 79 on gpu 3"}));
    assert_eq!(calls[1].call.output.as_ref().expect("output")["commands"][0]["kind"], "CORDON");
    // The API lists them too.
    let request = v1::ListToolCallsRequest { run_id: session.id.clone(), ..Default::default() };
    let listed = h.ops(Some(OPERATOR)).list_tool_calls(request).await.expect("calls").into_owned();
    let tools: Vec<(&str, &str)> = listed.calls.iter().map(|c| (c.tool.as_str(), c.status.as_str())).collect();
    assert_eq!(tools, [("get_node", "succeeded"), ("cordon_node", "succeeded")]);
    assert!(!listed.more);
    let input: Value = serde_json::from_str(&listed.calls[1].input_json).expect("input");
    assert_eq!(input["node_id"], "n1");
    let request = v1::ListToolCallsRequest { run_id: session.id.clone(), limit: 1, ..Default::default() };
    let first = h.ops(Some(OPERATOR)).list_tool_calls(request).await.expect("calls").into_owned();
    assert!(first.more && first.calls.len() == 1 && first.calls[0].tool == "get_node", "{first:?}");
    let after_id = first.calls[0].id;
    let request = v1::ListToolCallsRequest { run_id: session.id.clone(), limit: 1, after_id, ..Default::default() };
    let next = h.ops(Some(OPERATOR)).list_tool_calls(request).await.expect("calls").into_owned();
    assert!(!next.more && next.calls.len() == 1 && next.calls[0].tool == "cordon_node", "{next:?}");
    // A schema failure is recorded as refused.
    let refused = call(&client, "cordon_node", json!({"node": "n2"})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains("unknown field `node`"), "{}", text(&refused));
    let calls = tool_calls(&h, &session.id).await;
    assert_eq!(calls.last().map(|c| c.call.status), Some(ToolCallStatus::Refused));

    // The write is audited as the token, naming the node; reads are not.
    let entries = audit(&h, "bosun.mcp/cordon_node").await;
    let entry = entries.iter().find(|e| e.outcome == "ok").expect("audited");
    assert_eq!((entry.actor.as_str(), entry.role.as_str(), entry.resource.as_str()), ("oncall", "operator", "node:n1"));
    assert!(audit(&h, "bosun.mcp/get_node").await.is_empty());
    let events = get_run(&h, &session.id).await.events;
    assert!(
        events.iter().any(|e| e.r#type == "tool_call" && e.message.starts_with("cordon_node succeeded")),
        "{events:?}"
    );

    // Ending the session ends its run.
    client.cancel().await.expect("closed");
    for _ in 0..400 {
        if get_run(&h, &session.id).await.status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ended = get_run(&h, &session.id).await;
    assert_eq!(ended.status, "succeeded", "{ended:?}");
    assert!(ended.events.iter().any(|e| e.message.contains("MCP session closed")), "{:?}", ended.events);
    h.stop().await;
}

async fn terminating_six_nodes_waits_for_an_admins_approval(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    let nodes = ["n1", "n2", "n3", "n4", "n5", "n6"];
    // Real agents, so the terminations are carried out to the end.
    let agents: Vec<_> = nodes.iter().map(|n| h.spawn_agent(n, 1)).collect();
    for node in nodes {
        h.wait_for_node(node, "registered", |_| true).await;
    }
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let session = session_run(&h).await;

    let asked = call(&client, "terminate_node", json!({"node_ids": nodes, "reason": "bad batch of boards"})).await;
    assert_eq!(asked.is_error, Some(false), "{}", text(&asked));
    let said = text(&asked);
    assert!(said.starts_with("awaiting approval"), "{said}");
    let answer = asked.structured_content.clone().expect("structured");
    assert_eq!(answer["status"], "awaiting_approval", "{answer}");
    assert_eq!(answer["required_role"], "admin", "{answer}");
    let run_id = answer["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(answer["approve_with"], format!("bosun runs approve {run_id}"));
    assert!(said.contains(&format!("bosun runs approve {run_id}")), "{said}");
    // Nothing happened yet.
    for node in nodes {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_ACTIVE, "{node}");
    }

    // The action is an ai_action run awaiting the approval; the call's record points at it.
    let action = get_run(&h, &run_id).await;
    assert_eq!((action.kind.as_str(), action.status.as_str()), ("ai_action", "awaiting_approval"));
    assert_eq!(action.targets.len(), 6);
    let pending = action.pending_approval.as_option().expect("pending").clone();
    assert_eq!(pending.required_role, "admin");
    assert_eq!(Some(pending.id.as_str()), answer["approval_id"].as_str());
    assert!(pending.what.contains("terminate on 6 node(s)"), "{}", pending.what);
    let input: Value = serde_json::from_str(&action.input_json).expect("input");
    assert_eq!(input["session_run"], session.id.as_str(), "{input}");
    let calls = tool_calls(&h, &session.id).await;
    let record = &calls.last().expect("recorded").call;
    assert_eq!(record.status, ToolCallStatus::AwaitingApproval);
    assert_eq!(record.approval_id.map(|a| a.to_string()), Some(pending.id.clone()));

    // The requester cannot approve; an admin can, and the executor carries it out.
    let own =
        h.ops(Some(OPERATOR)).approve_run(v1::ApproveRunRequest { run_id: run_id.clone(), ..Default::default() }).await;
    assert!(own.is_err(), "an operator cannot approve its own action");
    h.ops(Some(ADMIN))
        .approve_run(v1::ApproveRunRequest {
            run_id: run_id.clone(),
            reason: "boards confirmed bad".into(),
            ..Default::default()
        })
        .await
        .expect("approved");
    let mut status = String::new();
    for _ in 0..400 {
        h.server().advance_runs().await.expect("advance");
        status = get_run(&h, &run_id).await.status;
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "succeeded", "{:?}", get_run(&h, &run_id).await);
    for node in nodes {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_TERMINATED, "{node}");
    }
    // get_run, over MCP, shows the approval and the outcome.
    let followed = call(&client, "get_run", json!({"run_id": run_id})).await;
    let run = followed.structured_content.clone().expect("structured")["run"].clone();
    assert_eq!((&run["approvedBy"], &run["status"]), (&json!("operator:root"), &json!("succeeded")), "{run}");
    let events = run["events"].as_array().expect("events");
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"approval_decided"), "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "step_finished").count(), 6, "{types:?}");
    let entries = audit(&h, "bosun.mcp/terminate_node").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].resource, "node:n1,n2,n3,n4,n5,n6");
    client.cancel().await.expect("closed");
    for agent in agents {
        agent.stop().await;
    }
    h.stop().await;
}

const DENY_AI_DRAINS: &str = "\
rules:
  - name: no-ai-drains
    condition: \"kind == 'ai_session' && tool == 'drain'\"
    decision: deny
  - name: admin-for-many
    condition: \"risk == 'destructive' && targets > 5\"
    decision: require_approval
    role: admin
";

async fn a_denied_call_names_the_rule_and_the_destructive_budget_runs_out(backend: Backend) {
    let mut settings = mcp_settings();
    settings.mcp.destructive_calls_per_session = 1;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    register(&h, &["n1", "n2", "n3"]).await;
    h.ops(Some(ADMIN))
        .set_approval_policy(v1::SetApprovalPolicyRequest { yaml: DENY_AI_DRAINS.into(), ..Default::default() })
        .await
        .expect("policy");
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let session = session_run(&h).await;

    let denied = call(&client, "drain_node", json!({"node_id": "n1", "reason": "maintenance"})).await;
    assert_eq!(denied.is_error, Some(true));
    assert!(text(&denied).contains("denied by the approval policy (rule no-ai-drains)"), "{}", text(&denied));
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    let entries = audit(&h, "bosun.mcp/drain_node").await;
    assert_eq!((entries[0].outcome.as_str(), entries[0].code.as_str()), ("refused", "permission_denied"));

    // One destructive call is allowed (one node: no rule matches) ...
    let first = call(&client, "terminate_node", json!({"node_ids": ["n2"], "reason": "xid 79"})).await;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    assert_eq!(status_of(&h.node("n2").await), v1::NodeStatus::NODE_STATUS_TERMINATING);
    // ... and the budget of one is spent.
    let second = call(&client, "terminate_node", json!({"node_ids": ["n3"], "reason": "xid 79"})).await;
    assert_eq!(second.is_error, Some(true));
    assert!(text(&second).contains("budget of 1 destructive call(s) is spent"), "{}", text(&second));
    assert_eq!(status_of(&h.node("n3").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    // Writes that are not destructive still go.
    let cordon = call(&client, "cordon_node", json!({"node_id": "n3"})).await;
    assert_eq!(cordon.is_error, Some(false), "{}", text(&cordon));

    let statuses: Vec<(String, ToolCallStatus)> =
        tool_calls(&h, &session.id).await.into_iter().map(|c| (c.call.tool.to_string(), c.call.status)).collect();
    assert_eq!(
        statuses,
        [
            ("drain_node".to_owned(), ToolCallStatus::Refused),
            ("terminate_node".to_owned(), ToolCallStatus::Succeeded),
            ("terminate_node".to_owned(), ToolCallStatus::Refused),
            ("cordon_node".to_owned(), ToolCallStatus::Succeeded),
        ]
    );
    client.cancel().await.expect("closed");
    h.stop().await;
}

async fn a_disabled_tool_is_neither_listed_nor_callable(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    register(&h, &["n1"]).await;
    let tools = h.ops(Some(OPERATOR)).list_tools(v1::ListToolsRequest::default()).await.expect("tools").into_owned();
    let terminate = tools.tools.iter().find(|t| t.name == "terminate_node").expect("defined at start");
    assert!(terminate.enabled && terminate.risk == "destructive", "{terminate:?}");
    let schema: Value = serde_json::from_str(&terminate.input_schema_json).expect("schema");
    assert_eq!(schema["required"], json!(["node_ids", "reason"]));
    // An operator takes a tool away; only an admin gives it back.
    let set = |enabled| v1::SetToolEnabledRequest { name: "terminate_node".into(), enabled, ..Default::default() };
    let off = h.ops(Some(OPERATOR)).set_tool_enabled(set(false)).await.expect("disabled").into_owned();
    assert!(!off.tool.as_option().expect("tool").enabled);
    let refused = h.ops(Some(OPERATOR)).set_tool_enabled(set(true)).await.map(|_| ());
    assert_eq!(refused.expect_err("operators cannot enable").code, connectrpc::ErrorCode::PermissionDenied);
    let unknown = v1::SetToolEnabledRequest { name: "drop_tables".into(), ..Default::default() };
    let unknown = h.ops(Some(OPERATOR)).set_tool_enabled(unknown).await.map(|_| ());
    assert_eq!(unknown.expect_err("unknown").code, connectrpc::ErrorCode::NotFound);
    let entries = audit(&h, "bosun.v1.OpsService/SetToolEnabled").await;
    assert!(entries.iter().any(|e| e.resource == "tool:terminate_node" && e.outcome == "ok"), "{entries:?}");
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let names: Vec<String> =
        client.list_all_tools().await.expect("tools/list").into_iter().map(|t| t.name.to_string()).collect();
    assert!(!names.iter().any(|n| n == "terminate_node"), "{names:?}");
    assert!(names.iter().any(|n| n == "cordon_node"), "{names:?}");
    let mut arguments = JsonObject::new();
    arguments.insert("node_ids".into(), json!(["n1"]));
    arguments.insert("reason".into(), json!("x"));
    match client.call_tool(CallToolRequestParams::new("terminate_node").with_arguments(arguments)).await {
        Err(ServiceError::McpError(error)) => assert_eq!(error.code, ErrorCode::INVALID_PARAMS),
        other => panic!("a disabled tool must be an error, got {other:?}"),
    }
    assert_eq!(status_of(&h.node("n1").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    // Enabled again, it is offered to the next session.
    h.ops(Some(ADMIN)).set_tool_enabled(set(true)).await.expect("enabled");
    client.cancel().await.expect("closed");
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let names: Vec<String> =
        client.list_all_tools().await.expect("tools/list").into_iter().map(|t| t.name.to_string()).collect();
    assert!(names.iter().any(|n| n == "terminate_node"), "{names:?}");
    client.cancel().await.expect("closed");
    h.stop().await;
}

async fn shrinking_a_pool_by_most_of_it_waits_for_an_approval_then_resizes_it(backend: Backend) {
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", 1, 4);
    spec.region = "local".into();
    spec.health.auto_replace = false;
    // One destructive call per session: growing the pool is not one.
    let mut settings = mcp_settings();
    settings.mcp.destructive_calls_per_session = 1;
    let Some((h, cloud)) =
        Harness::start_with_fake_pool_and_settings(backend, "manual", spec, FakeSettings::default(), settings).await
    else {
        return;
    };
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    // Growing removes nothing: allowed, done at once.
    let grown = call(&client, "scale_pool", json!({"pool": "manual", "target": 3})).await;
    assert_eq!(grown.is_error, Some(false), "{}", text(&grown));
    assert_eq!(grown.structured_content.clone().expect("structured")["status"], "done");
    assert_eq!(cloud.live_count(), 3);
    wait_running(&h, 3).await;

    // Shrinking to one removes two of three nodes: the builtin rule wants an admin.
    let asked = call(&client, "scale_pool", json!({"pool": "manual", "target": 1, "reason": "idle"})).await;
    assert_eq!(asked.is_error, Some(false), "{}", text(&asked));
    let answer = asked.structured_content.clone().expect("structured");
    assert_eq!(answer["status"], "awaiting_approval", "{answer}");
    let run_id = answer["run_id"].as_str().expect("run").to_owned();
    let action = get_run(&h, &run_id).await;
    assert_eq!(action.targets, ["pool:manual"]);
    // That shrink spent the budget.
    let again = call(&client, "scale_pool", json!({"pool": "manual", "target": 2})).await;
    assert!(text(&again).contains("budget of 1 destructive call(s) is spent"), "{}", text(&again));
    assert_eq!(cloud.live_count(), 3, "nothing removed before the approval");
    h.ops(Some(ADMIN))
        .approve_run(v1::ApproveRunRequest { run_id: run_id.clone(), ..Default::default() })
        .await
        .expect("approved");
    let mut run = get_run(&h, &run_id).await;
    for _ in 0..20 {
        h.server().advance_runs().await.expect("advance");
        run = get_run(&h, &run_id).await;
        if run.status == "succeeded" {
            break;
        }
    }
    assert_eq!(run.status, "succeeded", "{run:?}");
    let finished = run.events.iter().find(|e| e.r#type == "step_finished").expect("step finished");
    assert!(finished.message.starts_with("pool manual set to 1 node(s)"), "{}", finished.message);
    let pool = h.server().store().pool(&"manual".parse().expect("name")).await.expect("pool");
    assert_eq!(pool.status.last_decision.expect("decided").target, 1);
    client.cancel().await.expect("closed");
    h.stop().await;
}

async fn the_janitor_closes_a_session_its_server_abandoned(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let session = session_run(&h).await;
    // Within the hour nothing is closed; after two idle hours the session is abandoned.
    h.clock.advance(Duration::from_secs(30 * 60));
    h.server().janitor().await.expect("janitor");
    assert_eq!(get_run(&h, &session.id).await.status, "running");
    h.clock.advance(Duration::from_secs(90 * 60));
    h.server().janitor().await.expect("janitor");
    let closed = get_run(&h, &session.id).await;
    assert_eq!(closed.status, "succeeded");
    assert!(
        closed.events.iter().any(|e| e.message.contains("abandoned: nothing happened in it for 2h")),
        "{:?}",
        closed.events
    );
    client.cancel().await.expect("closed");
    h.stop().await;
}

async fn an_agent_reports_its_llm_usage_priced_on_its_session(backend: Backend) {
    let Some(h) = Harness::start_with(backend, mcp_settings()).await else { return };
    let price = v1::Price {
        provider: "acme".into(),
        model: "acme-large".into(),
        input_per_mtok_usd: 3.0,
        output_per_mtok_usd: 15.0,
        cached_input_per_mtok_usd: Some(0.3),
        effective_from: buffa::MessageField::some(bosun_api::convert::timestamp(
            "2025-01-01T00:00:00Z".parse().expect("time"),
        )),
        ..Default::default()
    };
    h.ops(Some(ADMIN))
        .set_pricing(v1::SetPricingRequest { prices: vec![price], ..Default::default() })
        .await
        .expect("priced");
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let session = session_run(&h).await;
    let usage = json!({"provider": "acme", "model": "acme-large", "input_tokens": 2000, "cached_input_tokens": 1000,
                       "output_tokens": 1000, "latency_ms": 850, "request_id": "req-1"});
    let reported = call(&client, "report_llm_usage", usage).await;
    assert_eq!(reported.is_error, Some(false), "{}", text(&reported));
    let answer = reported.structured_content.clone().expect("structured");
    assert_eq!((answer["priced"].clone(), answer["costUsd"].clone()), (json!(true), json!(0.0213)), "{answer}");
    let unknown = json!({"provider": "acme", "model": "acme-next", "input_tokens": 10, "output_tokens": 5});
    let unknown = call(&client, "report_llm_usage", unknown).await;
    assert_eq!(unknown.is_error, Some(false), "{}", text(&unknown));
    let answer = unknown.structured_content.clone().expect("structured");
    assert_ne!(answer["priced"], json!(true), "proto3 JSON leaves false out: {answer}");
    assert!(answer["note"].as_str().is_some_and(|n| n.contains("cost unknown")), "{answer}");
    // Negative counts and a repeated request id are the API's refusals, as tool errors.
    let negative = json!({"provider": "acme", "model": "acme-large", "input_tokens": -1, "output_tokens": 5});
    let negative = call(&client, "report_llm_usage", negative).await;
    assert_eq!(negative.is_error, Some(true));
    let said = text(&negative);
    assert!(said.starts_with("invalid_argument:") && said.contains("input_tokens"), "{said}");
    let again = json!({"provider": "acme", "model": "acme-large", "input_tokens": 1, "output_tokens": 1, "request_id": "req-1"});
    let again = call(&client, "report_llm_usage", again).await;
    assert!(text(&again).starts_with("already_exists:"), "{}", text(&again));

    // Both requests are the session's: its cost, one unpriced.
    let request = v1::SummarizeUsageRequest { by: "run".into(), ..Default::default() };
    let rows = h.ops(Some(OPERATOR)).summarize_usage(request).await.expect("summary").into_owned().rows;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].run_id, session.id);
    assert_eq!((rows[0].requests, rows[0].unpriced_requests, rows[0].cost_micro_usd), (2, 1, Some(21_300)));
    let statuses: Vec<ToolCallStatus> = tool_calls(&h, &session.id).await.into_iter().map(|c| c.call.status).collect();
    use ToolCallStatus::{Failed, Succeeded};
    assert_eq!(statuses, [Succeeded, Succeeded, Failed, Failed]);
    client.cancel().await.expect("closed");
    h.stop().await;
}

const AI_DESTRUCTIVE_NEEDS_ADMIN: &str = "\
rules:
  - name: ai-destructive
    condition: \"kind == 'ai_session' && risk == 'destructive'\"
    decision: require_approval
    role: admin
";

async fn a_runbook_an_agent_starts_is_weighed_as_the_agents_and_spends_its_budget(backend: Backend) {
    let mut settings = mcp_settings();
    settings.mcp.destructive_calls_per_session = 1;
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    register(&h, &["n1", "n2"]).await;
    let admin = h.ops(Some(ADMIN));
    let policy = v1::SetApprovalPolicyRequest { yaml: AI_DESTRUCTIVE_NEEDS_ADMIN.into(), ..Default::default() };
    admin.set_approval_policy(policy).await.expect("policy");
    let runbook = "name: retire\nsteps:\n  - terminate: {reason: retiring}\n";
    admin.apply_runbook(v1::ApplyRunbookRequest { yaml: runbook.into(), ..Default::default() }).await.expect("apply");
    let client = connect(&h, OPERATOR).await.expect("an MCP session");
    let session = session_run(&h).await;

    // A reason that is not printable text is refused as the input it is: no budget spent.
    let odd = call(&client, "terminate_node", json!({"node_ids": ["n1"], "reason": "bad \u{7f} byte"})).await;
    assert_eq!(odd.is_error, Some(true));
    assert!(text(&odd).contains("reason: contains the character"), "{}", text(&odd));

    // Started by the agent, the runbook's terminate step is weighed as the agent's: it waits
    // for an admin (a person's run of it would not), and the run spent the session's budget.
    let started = call(&client, "start_runbook", json!({"runbook": "retire", "node_ids": ["n2"]})).await;
    assert_eq!(started.is_error, Some(false), "{}", text(&started));
    let run_id = started.structured_content.clone().expect("structured")["run_id"].as_str().expect("run").to_owned();
    let again = call(&client, "start_runbook", json!({"runbook": "retire", "node_ids": ["n1"]})).await;
    assert!(text(&again).contains("budget of 1 destructive call(s) is spent"), "{}", text(&again));
    let mut run = get_run(&h, &run_id).await;
    for _ in 0..20 {
        h.server().advance_runs().await.expect("advance");
        run = get_run(&h, &run_id).await;
        if run.status != "queued" && run.status != "running" {
            break;
        }
    }
    assert_eq!(run.status, "awaiting_approval", "{run:?}");
    let pending = run.pending_approval.as_option().expect("pending");
    assert_eq!((pending.policy.as_str(), pending.required_role.as_str()), ("ai-destructive", "admin"));
    let input: Value = serde_json::from_str(&run.input_json).expect("input");
    assert_eq!(input["session_run"], session.id.as_str(), "{input}");
    assert_eq!(status_of(&h.node("n2").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    client.cancel().await.expect("closed");
    h.stop().await;
}
