//! The tools the MCP server lists and calls. Code is their source of truth: each is a
//! [`ToolSpec`] with its name, description, JSON input schema and risk. At start every
//! tool gets its `tool_definitions` row ([`ensure_defined`]); `tools/list` lists the
//! enabled rows, so an operator who disables a tool there takes it away from every agent.
//!
//! A call's arguments are decoded into the tool's typed input (`deny_unknown_fields`,
//! errors located by `serde_path_to_error`), so an input that fails its schema is a tool
//! error naming the field. Read tools are in-process calls to the API (`inproc::call`) as
//! the caller's own token: the same authentication, validation and JSON as any client.
//! Tools that change the fleet go through the approval policy ([`super::actions`]). Every
//! call is recorded on the session's run ([`super::session::Ledger`]).

use std::sync::Arc;

use bosun_config::runbook::{StepAction, TargetSpec};
use bosun_core::{
    Actor, LabelSelector, NodeId, PoolName, Revision, RunId, RunKind, RunStatus, RunbookName, ToolDefinition, ToolName,
    ToolRisk,
};
use bosun_store::{StoreError, Write, WriteBatch};
use connectrpc::ConnectRpcService;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::actions::{self, Act, Gated, MAX_NODES};
use super::session::{Ledger, Outcome, Session};
use crate::app::App;
use crate::error::ApiResult;
use crate::inproc::{self, CallError};

/// One tool.
#[derive(Debug)]
pub(crate) struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub risk: ToolRisk,
    /// The JSON Schema of its arguments (an object schema).
    pub schema: fn() -> Value,
    pub action: Action,
}

/// What a call does once its arguments decoded.
#[derive(Debug)]
pub(crate) enum Action {
    /// A call to the API: `request` turns the arguments into the method's request JSON.
    Api { method: &'static str, request: fn(JsonObject) -> Result<Value, String> },
    /// A change to the fleet, behind the approval policy.
    Act(fn(JsonObject) -> Result<Act, String>),
    /// A call to the API on behalf of the session: `request` also gets the session's run.
    SessionApi { method: &'static str, request: fn(JsonObject, RunId) -> Result<Value, String> },
}

/// Every tool this server has, in the order `tools/list` gives them.
pub(crate) const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "list_nodes",
        description: "List the fleet's GPU nodes (id, status, health, pool, provider, GPUs, labels), filtered by \
                      status, pool, provider, region or label selector; paged (page_token from next_page_token).",
        risk: ToolRisk::Read,
        schema: list_nodes_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/ListNodes", request: list_nodes },
    },
    ToolSpec {
        name: "get_node",
        description: "One node in full: status and why, health, GPUs, metrics, labels, instance and pool.",
        risk: ToolRisk::Read,
        schema: node_id_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/GetNode", request: get_node },
    },
    ToolSpec {
        name: "node_health_history",
        description: "A node's health reports, newest first: each check's result, the events (XIDs, ECC errors) \
                      and the policy rule that judged them.",
        risk: ToolRisk::Read,
        schema: health_history_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/GetHealthHistory", request: health_history },
    },
    ToolSpec {
        name: "list_events",
        description: "The change log, oldest first after after_seq: every change to nodes, instances, commands, \
                      pools and the policy, with who made it and why; filter by kind, resource and actor.",
        risk: ToolRisk::Read,
        schema: list_events_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/ListEvents", request: list_events },
    },
    ToolSpec {
        name: "list_pools",
        description: "Every pool: its size and target, limits, autoscaler and the last scaling decision.",
        risk: ToolRisk::Read,
        schema: no_arguments_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/ListPools", request: list_pools },
    },
    ToolSpec {
        name: "get_pool",
        description: "One pool in full, with its last scaling decision and its conditions.",
        risk: ToolRisk::Read,
        schema: pool_name_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/GetPool", request: get_pool },
    },
    ToolSpec {
        name: "list_runs",
        description: "Runs of the operations ledger (runbooks, replacements, scaling, drift repairs, AI sessions and \
                      their actions), newest first, filtered by status, kind or target (a node id, pool name or \
                      instance id); paged.",
        risk: ToolRisk::Read,
        schema: list_runs_schema,
        action: Action::Api { method: "/bosun.v1.OpsService/ListRuns", request: list_runs },
    },
    ToolSpec {
        name: "get_run",
        description: "One run: its status, targets, input, who requested it, its approvals and events. Shows the \
                      outcome of an action that awaited approval.",
        risk: ToolRisk::Read,
        schema: run_id_schema,
        action: Action::Api { method: "/bosun.v1.OpsService/GetRun", request: get_run },
    },
    ToolSpec {
        name: "cordon_node",
        description: "Cordon a node: no new work is scheduled on it; what runs keeps running. Goes through the \
                      approval policy.",
        risk: ToolRisk::Write,
        schema: node_reason_schema,
        action: Action::Act(cordon_node),
    },
    ToolSpec {
        name: "uncordon_node",
        description: "Return a cordoned node to service. Refused for a node judged unhealthy. Goes through the \
                      approval policy.",
        risk: ToolRisk::Write,
        schema: node_reason_schema,
        action: Action::Act(uncordon_node),
    },
    ToolSpec {
        name: "drain_node",
        description: "Drain a node: its workloads are moved off, then it stays out of service. Goes through the \
                      approval policy.",
        risk: ToolRisk::Write,
        schema: node_reason_required_schema,
        action: Action::Act(drain_node),
    },
    ToolSpec {
        name: "diagnose_node",
        description: "Run a diagnostic (the agent's test, e.g. dcgm) on a node; get_run or the node's commands \
                      show the result. Goes through the approval policy.",
        risk: ToolRisk::Write,
        schema: diagnose_schema,
        action: Action::Act(diagnose_node),
    },
    ToolSpec {
        name: "terminate_node",
        description: "Terminate nodes: their machines are given back to the provider. Destructive: counted against \
                      the session's budget, and the approval policy may require a person's approval (the answer \
                      then says awaiting approval, with the run to follow).",
        risk: ToolRisk::Destructive,
        schema: terminate_schema,
        action: Action::Act(terminate_node),
    },
    ToolSpec {
        name: "scale_pool",
        description: "Set a pool's target size (within its minimum and maximum). Destructive when it shrinks: \
                      counted against the session's budget, and the approval policy may require a person's approval.",
        risk: ToolRisk::Destructive,
        schema: scale_pool_schema,
        action: Action::Act(scale_pool),
    },
    ToolSpec {
        name: "start_runbook",
        description: "Start a stored runbook over nodes (node_ids, a label selector or a pool; else the runbook's \
                      own targets). Each step is gated by the approval policy as it comes; get_run follows it.",
        risk: ToolRisk::Write,
        schema: start_runbook_schema,
        action: Action::Act(start_runbook),
    },
    ToolSpec {
        name: "report_llm_usage",
        description: "Report the tokens one of your own LLM requests used, so bosun can price it and sum what \
                      operating the fleet costs: input_tokens is the uncached input, cached_input_tokens what the \
                      provider's prompt cache served, output_tokens what the model wrote. Recorded on this session.",
        risk: ToolRisk::Write,
        schema: report_llm_usage_schema,
        action: Action::SessionApi { method: "/bosun.v1.OpsService/RecordLlmUsage", request: report_llm_usage },
    },
];

/// Who tools are defined by.
const DEFINED_BY: &str = "mcp";

/// Gives every tool of [`TOOLS`] its `tool_definitions` row: created when missing; the
/// description and schema brought up to date when the code changed them, keeping whether
/// an operator disabled it. Racing replicas: the loser's conflict is harmless.
pub(crate) async fn ensure_defined(app: &App) -> ApiResult<()> {
    let stored = app.store.tools().await?;
    let now = app.now();
    let mut batch = WriteBatch::new(Actor::system(DEFINED_BY), "MCP tools defined");
    for spec in TOOLS {
        let name = ToolName::new(spec.name).map_err(crate::error::ApiError::Invalid)?;
        let schema = (spec.schema)();
        let current = stored.iter().find(|t| t.name == name);
        if let Some(row) = current
            && row.description == spec.description
            && row.input_schema == schema
            && row.risk == spec.risk
        {
            continue;
        }
        let tool = ToolDefinition {
            name,
            description: spec.description.to_owned(),
            input_schema: schema,
            risk: spec.risk,
            enabled: current.is_none_or(|row| row.enabled),
            updated_at: now,
            revision: current.map_or(Revision::FIRST, |row| row.revision),
        };
        batch.push(Write::PutTool { tool: Box::new(tool), expected: current.map(|row| row.revision) });
    }
    if !batch.is_empty() {
        match app.store.commit(batch).await {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    app.mcp_tools_defined.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Enables or disables tool `name` for every agent (compare-and-set, retried once when
/// another change raced it). Returns the tool as stored.
pub(crate) async fn set_enabled(app: &App, by: Actor, name: &str, enabled: bool) -> ApiResult<ToolDefinition> {
    let name = ToolName::new(name).map_err(crate::error::ApiError::Invalid)?;
    if !TOOLS.iter().any(|spec| spec.name == name.as_str()) {
        let known: Vec<&str> = TOOLS.iter().map(|spec| spec.name).collect();
        return Err(crate::error::ApiError::NotFound(format!(
            "no MCP tool is named {name}; the tools are {}",
            known.join(", ")
        )));
    }
    for _ in 0..2 {
        let Some(mut tool) = app.store.tools().await?.into_iter().find(|t| t.name == name) else {
            return Err(crate::error::ApiError::FailedPrecondition(format!(
                "tool {name} is not defined in the store yet; a server defines its tools when it starts with mcp.enabled"
            )));
        };
        if tool.enabled == enabled {
            return Ok(tool);
        }
        let expected = tool.revision;
        tool.enabled = enabled;
        tool.updated_at = app.now();
        let what = if enabled { "enabled" } else { "disabled" };
        let batch = WriteBatch::new(by.clone(), format!("MCP tool {name} {what}"))
            .with(Write::PutTool { tool: Box::new(tool), expected: Some(expected) });
        match app.store.commit(batch).await {
            Ok(_) => {
                let stored = app.store.tools().await?.into_iter().find(|t| t.name == name);
                return stored.ok_or_else(|| crate::error::ApiError::Internal(format!("tool {name} vanished")));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(crate::error::ApiError::Aborted(format!("tool {name} kept changing; try again")))
}

/// The tools `tools/list` offers: those enabled in `rows` that this server has, in code order.
pub(crate) fn listed(rows: &[ToolDefinition]) -> Vec<Tool> {
    TOOLS
        .iter()
        .filter_map(|spec| {
            let row = rows.iter().find(|row| row.name.as_str() == spec.name && row.enabled)?;
            let Value::Object(schema) = row.input_schema.clone() else { return None };
            let annotations = ToolAnnotations::new()
                .read_only(spec.risk == ToolRisk::Read)
                .destructive(spec.risk == ToolRisk::Destructive)
                .open_world(false);
            Some(Tool::new(spec.name, row.description.clone(), Arc::new(schema)).with_annotations(annotations))
        })
        .collect()
}

/// Calls tool `name` with `arguments` in `session`. An unknown or disabled tool is a
/// protocol error (invalid params); arguments that fail the tool's schema, the policy's
/// refusals and the API's are tool errors the model reads. Every call of a tool is recorded.
pub(crate) async fn call(
    app: &App,
    connect: &ConnectRpcService,
    session: &Session,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<CallToolResult, McpError> {
    let unknown =
        || McpError::invalid_params(format!("unknown tool {name:?}; tools/list names the tools this server has"), None);
    let spec = TOOLS.iter().find(|spec| spec.name == name).ok_or_else(unknown)?;
    let rows = app
        .store
        .tools()
        .await
        .map_err(|e| McpError::internal_error(format!("the tools cannot be read: {e}"), None))?;
    let tool = ToolName::new(spec.name).map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let arguments = arguments.unwrap_or_default();
    let request_id = format!("mcp-{}", uuid::Uuid::now_v7());
    let ledger = Ledger {
        session,
        tool: &tool,
        input: Value::Object(arguments.clone()),
        started: tokio::time::Instant::now(),
        request_id: &request_id,
    };
    if !rows.iter().any(|row| row.name == tool && row.enabled) {
        ledger.record(app, &Outcome::refused("the tool is disabled (tool_definitions)")).await;
        return Err(unknown());
    }
    let api = match &spec.action {
        Action::Api { method, request } => Some((*method, request(arguments.clone()))),
        Action::SessionApi { method, request } => Some((*method, request(arguments.clone(), session.run))),
        Action::Act(_) => None,
    };
    match (&spec.action, api) {
        (_, Some((method, body))) => {
            let body = match body {
                Ok(body) => body,
                Err(problem) => {
                    return Ok(refuse(app, &ledger, format!("invalid arguments for {name}: {problem}")).await);
                }
            };
            let who =
                inproc::As { bearer: session.caller.bearer.as_deref(), peer: session.peer, request_id: &request_id };
            let (outcome, result) = match inproc::call(connect, who, method, &body).await {
                Ok(answer) => (Outcome::succeeded(answer.clone()), CallToolResult::structured(answer)),
                Err(CallError::Refused { code, message }) => {
                    let message = format!("{code}: {message}");
                    (Outcome::failed(message.clone()), tool_error(message))
                }
                Err(CallError::Failed(message)) => {
                    let message = format!("unavailable: {message}");
                    (Outcome::failed(message.clone()), tool_error(message))
                }
            };
            ledger.record(app, &outcome).await;
            Ok(result)
        }
        (Action::Act(decode_act), None) => match decode_act(arguments) {
            Ok(act) => Ok(actions::call(app, &ledger, act, spec.risk).await),
            Err(problem) => Ok(refuse(app, &ledger, format!("invalid arguments for {name}: {problem}")).await),
        },
        (_, None) => Err(McpError::internal_error(format!("tool {name} has no action"), None)),
    }
}

/// Records a call refused for its arguments, and tells the agent why.
async fn refuse(app: &App, ledger: &Ledger<'_>, message: String) -> CallToolResult {
    ledger.record(app, &Outcome::refused(message.clone())).await;
    tool_error(message)
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Decodes a tool's arguments; the error names the field (`limit: invalid type: ...`).
fn decode<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(arguments)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." { inner.to_string() } else { format!("{path}: {inner}") }
    })
}

fn in_range(field: &str, value: Option<u32>, max: u32) -> Result<(), String> {
    match value {
        Some(v) if v == 0 || v > max => Err(format!("{field}: must be between 1 and {max}")),
        _ => Ok(()),
    }
}

/// Drops unset optional fields, so the API sees its own defaults.
fn request(value: Value) -> Result<Value, String> {
    let Value::Object(mut map) = value else { return Ok(value) };
    map.retain(|_, v| !v.is_null());
    Ok(Value::Object(map))
}

/// Pages of lists stay small enough for an agent's context, and within the 1 MiB an
/// in-process answer may be (`inproc::MAX_ANSWER`).
const MAX_PAGE: u32 = 200;
const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NodeStatus {
    Active,
    Cordoned,
    Draining,
    Unhealthy,
    Terminating,
    Terminated,
}

impl NodeStatus {
    fn proto(self) -> &'static str {
        match self {
            NodeStatus::Active => "NODE_STATUS_ACTIVE",
            NodeStatus::Cordoned => "NODE_STATUS_CORDONED",
            NodeStatus::Draining => "NODE_STATUS_DRAINING",
            NodeStatus::Unhealthy => "NODE_STATUS_UNHEALTHY",
            NodeStatus::Terminating => "NODE_STATUS_TERMINATING",
            NodeStatus::Terminated => "NODE_STATUS_TERMINATED",
        }
    }
}

fn list_nodes_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["active", "cordoned", "draining", "unhealthy", "terminating", "terminated"],
                       "description": "Only nodes in this status."},
            "pool": {"type": "string", "description": "Only nodes of this pool."},
            "provider": {"type": "string", "description": "Only nodes of this provider."},
            "region": {"type": "string", "description": "Only nodes in this region."},
            "label_selector": {"type": "string", "description": "key=value and bare key terms, comma-separated, all matched."},
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "description": "Default 100."},
            "page_token": {"type": "string", "description": "next_page_token of the previous page."}
        },
        "additionalProperties": false
    })
}

fn list_nodes(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        status: Option<NodeStatus>,
        pool: Option<String>,
        provider: Option<String>,
        region: Option<String>,
        label_selector: Option<String>,
        page_size: Option<u32>,
        page_token: Option<String>,
    }
    let input: Input = decode(arguments)?;
    in_range("page_size", input.page_size, MAX_PAGE)?;
    request(json!({
        "status": input.status.map(NodeStatus::proto),
        "pool": input.pool,
        "provider": input.provider,
        "region": input.region,
        "labelSelector": input.label_selector,
        "pageSize": input.page_size.unwrap_or(DEFAULT_PAGE),
        "pageToken": input.page_token,
    }))
}

fn node_id_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"node_id": {"type": "string", "description": "The node's id."}},
        "required": ["node_id"],
        "additionalProperties": false
    })
}

fn get_node(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        node_id: String,
    }
    let input: Input = decode(arguments)?;
    Ok(json!({"nodeId": input.node_id}))
}

const MAX_HISTORY: u32 = 100;

fn health_history_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "node_id": {"type": "string", "description": "The node's id."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY, "description": "Newest reports first; default 20."}
        },
        "required": ["node_id"],
        "additionalProperties": false
    })
}

fn health_history(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        node_id: String,
        limit: Option<u32>,
    }
    let input: Input = decode(arguments)?;
    in_range("limit", input.limit, MAX_HISTORY)?;
    request(json!({"nodeId": input.node_id, "limit": input.limit}))
}

const MAX_EVENTS: u32 = 500;

fn list_events_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["node", "instance", "command", "pool", "policy"],
                     "description": "Only changes to resources of this kind."},
            "resource_id": {"type": "string", "description": "With kind: one resource's history."},
            "actor": {"type": "string", "description": "node:<id>, operator:<name> or system:<component>."},
            "after_seq": {"type": "integer", "minimum": 0, "description": "Only changes after this sequence number."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS, "description": "Default 100."}
        },
        "additionalProperties": false
    })
}

fn list_events(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        kind: Option<EventKind>,
        resource_id: Option<String>,
        actor: Option<String>,
        after_seq: Option<u64>,
        limit: Option<u32>,
    }
    #[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    enum EventKind {
        Node,
        Instance,
        Command,
        Pool,
        Policy,
    }
    let input: Input = decode(arguments)?;
    in_range("limit", input.limit, MAX_EVENTS)?;
    if input.resource_id.is_some() && input.kind.is_none() {
        return Err("resource_id: needs kind too".to_owned());
    }
    request(json!({
        "kind": input.kind,
        "resourceId": input.resource_id,
        "actor": input.actor,
        "afterSeq": input.after_seq.map(|seq| seq.to_string()),
        "limit": input.limit,
    }))
}

fn no_arguments_schema() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

fn list_pools(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {}
    let Input {} = decode(arguments)?;
    Ok(json!({}))
}

fn pool_name_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string", "description": "The pool's name."}},
        "required": ["name"],
        "additionalProperties": false
    })
}

fn get_pool(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        name: String,
    }
    let input: Input = decode(arguments)?;
    Ok(json!({"name": input.name}))
}

fn list_runs_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": names(RunStatus::ALL.iter().map(|s| s.as_str())), "description": "Only runs in this status."},
            "kind": {"type": "string", "enum": names(RunKind::ALL.iter().map(|k| k.as_str())), "description": "Only runs of this kind."},
            "target": {"type": "string", "description": "Only runs acting on this node id, pool name or instance id."},
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "description": "Default 100."},
            "page_token": {"type": "string", "description": "next_page_token of the previous page."}
        },
        "additionalProperties": false
    })
}

fn list_runs(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        status: Option<String>,
        kind: Option<String>,
        target: Option<String>,
        page_size: Option<u32>,
        page_token: Option<String>,
    }
    let input: Input = decode(arguments)?;
    in_range("page_size", input.page_size, MAX_PAGE)?;
    request(json!({
        "status": input.status,
        "kind": input.kind,
        "target": input.target,
        "pageSize": input.page_size.unwrap_or(DEFAULT_PAGE),
        "pageToken": input.page_token,
    }))
}

fn names(names: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    names.collect()
}

fn run_id_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"run_id": {"type": "string", "description": "The run's id (a UUID)."}},
        "required": ["run_id"],
        "additionalProperties": false
    })
}

fn get_run(arguments: JsonObject) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        run_id: String,
    }
    let input: Input = decode(arguments)?;
    Ok(json!({"runId": input.run_id}))
}

fn node_reason_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "node_id": {"type": "string", "description": "The node's id."},
            "reason": {"type": "string", "maxLength": MAX_REASON, "description": "Why, for the node's history and the audit log."}
        },
        "required": ["node_id"],
        "additionalProperties": false
    })
}

fn node_reason_required_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "node_id": {"type": "string", "description": "The node's id."},
            "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON, "description": "Why, for the node's history and the audit log."}
        },
        "required": ["node_id", "reason"],
        "additionalProperties": false
    })
}

/// The longest reason a tool takes.
const MAX_REASON: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeReason {
    node_id: String,
    #[serde(default)]
    reason: String,
}

fn node_id(field: &str, id: &str) -> Result<NodeId, String> {
    id.parse().map_err(|e: bosun_core::ValidationError| format!("{field}: {}", e.problem))
}

fn reason(reason: String, required: bool) -> Result<String, String> {
    if required && reason.trim().is_empty() {
        return Err("reason: is required: say why, for the node's history and the audit log".to_owned());
    }
    if reason.len() > MAX_REASON {
        return Err(format!("reason: is {} bytes long; the limit is {MAX_REASON}", reason.len()));
    }
    // The reason travels into the runbook of an action that awaits approval (YAML), and into
    // the node's history: printable text, lines and tabs.
    if let Some(bad) =
        reason.chars().find(|c| (c.is_control() && !matches!(c, '\n' | '\t')) || matches!(c, '\u{fffe}' | '\u{ffff}'))
    {
        return Err(format!("reason: contains the character {bad:?}; use printable text"));
    }
    Ok(reason)
}

fn one_node(arguments: JsonObject, required: bool, step: impl FnOnce(String) -> StepAction) -> Result<Act, String> {
    let input: NodeReason = decode(arguments)?;
    let node = node_id("node_id", &input.node_id)?;
    let reason = reason(input.reason, required)?;
    Ok(Act::Gated(Gated::Nodes { step: step(reason.clone()), nodes: vec![node], reason }))
}

fn cordon_node(arguments: JsonObject) -> Result<Act, String> {
    one_node(arguments, false, |reason| StepAction::Cordon { reason })
}

fn uncordon_node(arguments: JsonObject) -> Result<Act, String> {
    one_node(arguments, false, |_| StepAction::Uncordon)
}

fn drain_node(arguments: JsonObject) -> Result<Act, String> {
    one_node(arguments, true, |reason| StepAction::Drain { reason })
}

/// The longest diagnostic name.
const MAX_TEST: usize = 128;

fn diagnose_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "node_id": {"type": "string", "description": "The node's id."},
            "test": {"type": "string", "minLength": 1, "maxLength": MAX_TEST, "description": "The diagnostic the agent runs (e.g. dcgm, nccl)."},
            "reason": {"type": "string", "maxLength": MAX_REASON}
        },
        "required": ["node_id", "test"],
        "additionalProperties": false
    })
}

fn diagnose_node(arguments: JsonObject) -> Result<Act, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        node_id: String,
        test: String,
        #[serde(default)]
        reason: String,
    }
    let input: Input = decode(arguments)?;
    let node = node_id("node_id", &input.node_id)?;
    if input.test.trim().is_empty() || input.test.len() > MAX_TEST || input.test.chars().any(char::is_control) {
        return Err(format!("test: names the diagnostic to run, 1 to {MAX_TEST} characters, no control characters"));
    }
    let reason = reason(input.reason, false)?;
    Ok(Act::Gated(Gated::Nodes { step: StepAction::Diagnose { test: input.test }, nodes: vec![node], reason }))
}

fn terminate_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "node_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_NODES,
                         "description": "The nodes to terminate."},
            "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON, "description": "Why, for the nodes' history and the audit log."}
        },
        "required": ["node_ids", "reason"],
        "additionalProperties": false
    })
}

fn node_ids(ids: Vec<String>) -> Result<Vec<NodeId>, String> {
    if ids.is_empty() || ids.len() > MAX_NODES {
        return Err(format!("node_ids: {} node(s); give 1 to {MAX_NODES}", ids.len()));
    }
    let mut nodes: Vec<NodeId> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let node = node_id(&format!("node_ids[{i}]"), id)?;
        if nodes.contains(&node) {
            return Err(format!("node_ids[{i}]: {id} is named twice"));
        }
        nodes.push(node);
    }
    Ok(nodes)
}

fn terminate_node(arguments: JsonObject) -> Result<Act, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        node_ids: Vec<String>,
        reason: String,
    }
    let input: Input = decode(arguments)?;
    let nodes = node_ids(input.node_ids)?;
    let reason = reason(input.reason, true)?;
    Ok(Act::Gated(Gated::Nodes { step: StepAction::Terminate { reason: reason.clone() }, nodes, reason }))
}

fn scale_pool_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "pool": {"type": "string", "description": "The pool's name."},
            "target": {"type": "integer", "minimum": 0, "description": "The pool's new target size."},
            "reason": {"type": "string", "maxLength": MAX_REASON}
        },
        "required": ["pool", "target"],
        "additionalProperties": false
    })
}

fn scale_pool(arguments: JsonObject) -> Result<Act, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        pool: String,
        target: u32,
        #[serde(default)]
        reason: String,
    }
    let input: Input = decode(arguments)?;
    let pool: PoolName = input.pool.parse().map_err(|e: bosun_core::ValidationError| format!("pool: {}", e.problem))?;
    Ok(Act::Gated(Gated::ScalePool { pool, target: input.target, reason: reason(input.reason, false)? }))
}

fn start_runbook_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "runbook": {"type": "string", "description": "The stored runbook's name."},
            "node_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_NODES},
            "selector": {"type": "string", "description": "A label selector (key=value, comma-separated)."},
            "pool": {"type": "string"},
            "reason": {"type": "string", "maxLength": MAX_REASON}
        },
        "required": ["runbook"],
        "additionalProperties": false
    })
}

fn start_runbook(arguments: JsonObject) -> Result<Act, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        runbook: String,
        node_ids: Option<Vec<String>>,
        selector: Option<String>,
        pool: Option<String>,
        #[serde(default)]
        reason: String,
    }
    let input: Input = decode(arguments)?;
    let runbook: RunbookName =
        input.runbook.parse().map_err(|e: bosun_core::ValidationError| format!("runbook: {}", e.problem))?;
    let targets = match (input.node_ids, input.selector, input.pool) {
        (None, None, None) => None,
        (Some(ids), None, None) => Some(TargetSpec::Nodes(node_ids(ids)?)),
        (None, Some(selector), None) => {
            Some(TargetSpec::Selector(selector.parse::<LabelSelector>().map_err(|e| format!("selector: {e}"))?))
        }
        (None, None, Some(pool)) => Some(TargetSpec::Pool(
            pool.parse().map_err(|e: bosun_core::ValidationError| format!("pool: {}", e.problem))?,
        )),
        _ => return Err("node_ids, selector, pool: give one of them, not several".to_owned()),
    };
    Ok(Act::StartRunbook { runbook, targets, reason: reason(input.reason, false)? })
}

fn report_llm_usage_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "provider": {"type": "string", "description": "The model's provider, as in `bosun pricing list` (e.g. anthropic)."},
            "model": {"type": "string", "description": "The model, as in `bosun pricing list`."},
            "input_tokens": {"type": "integer", "minimum": 0, "description": "Uncached input tokens."},
            "output_tokens": {"type": "integer", "minimum": 0},
            "cached_input_tokens": {"type": "integer", "minimum": 0, "description": "Input tokens served from the prompt cache; default 0."},
            "latency_ms": {"type": "integer", "minimum": 0},
            "request_id": {"type": "string", "description": "The provider's id of the request; a request is recorded once."}
        },
        "required": ["provider", "model", "input_tokens", "output_tokens"],
        "additionalProperties": false
    })
}

/// Counts are taken signed so that the API refuses a negative one naming it
/// (`invalid_argument`), as it does for any client.
fn report_llm_usage(arguments: JsonObject, run: RunId) -> Result<Value, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        provider: String,
        model: String,
        input_tokens: i64,
        output_tokens: i64,
        cached_input_tokens: Option<i64>,
        latency_ms: Option<i64>,
        request_id: Option<String>,
    }
    let input: Input = decode(arguments)?;
    // 64-bit integers are strings in proto3 JSON.
    request(json!({
        "provider": input.provider,
        "model": input.model,
        "inputTokens": input.input_tokens.to_string(),
        "outputTokens": input.output_tokens.to_string(),
        "cachedInputTokens": input.cached_input_tokens.map(|n| n.to_string()),
        "latencyMs": input.latency_ms.map(|n| n.to_string()),
        "requestId": input.request_id,
        "runId": run.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> JsonObject {
        let Value::Object(map) = value else { panic!("an object") };
        map
    }

    fn rows() -> Vec<ToolDefinition> {
        TOOLS
            .iter()
            .map(|spec| ToolDefinition {
                name: ToolName::new(spec.name).expect("name"),
                description: spec.description.to_owned(),
                input_schema: (spec.schema)(),
                risk: spec.risk,
                enabled: true,
                updated_at: bosun_core::Timestamp::from_unix_micros(0),
                revision: Revision::FIRST,
            })
            .collect()
    }

    #[test]
    fn every_tool_is_listed_once_with_an_object_schema() {
        let tools = listed(&rows());
        assert_eq!(tools.len(), TOOLS.len());
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len(), "names are unique");
        for tool in tools {
            assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
            assert_eq!(tool.input_schema.get("additionalProperties"), Some(&json!(false)), "{}", tool.name);
        }
        assert!(TOOLS.iter().all(|t| match t.action {
            Action::Api { method, .. } =>
                t.risk == ToolRisk::Read
                    && (method.starts_with("/bosun.v1.AdminService/") || method.starts_with("/bosun.v1.OpsService/")),
            Action::Act(_) | Action::SessionApi { .. } => t.risk != ToolRisk::Read,
        }));
    }

    #[test]
    fn disabled_tools_are_not_listed() {
        let mut rows = rows();
        rows.iter_mut().filter(|row| row.name.as_str() == "terminate_node").for_each(|row| row.enabled = false);
        let names: Vec<String> = listed(&rows).into_iter().map(|t| t.name.to_string()).collect();
        assert!(!names.iter().any(|n| n == "terminate_node"), "{names:?}");
        assert_eq!(names.len(), TOOLS.len() - 1);
    }

    #[test]
    fn write_tools_decode_or_name_the_field() {
        let ok = terminate_node(object(json!({"node_ids": ["n1", "n2"], "reason": "xid 79"}))).expect("valid");
        assert!(matches!(ok, Act::Gated(Gated::Nodes { ref nodes, .. }) if nodes.len() == 2));
        let cases = [
            (
                terminate_node as fn(JsonObject) -> Result<Act, String>,
                json!({"node_ids": [], "reason": "r"}),
                "node_ids: 0 node(s)",
            ),
            (terminate_node, json!({"node_ids": ["n1", "n1"], "reason": "r"}), "node_ids[1]: n1 is named twice"),
            (terminate_node, json!({"node_ids": ["n1", "bad id"], "reason": "r"}), "node_ids[1]:"),
            (terminate_node, json!({"node_ids": ["n1"], "reason": " "}), "reason: is required"),
            (terminate_node, json!({"node_ids": ["n1"], "reason": "a\u{7f}b"}), "reason: contains the character"),
            (cordon_node, json!({"node_id": "n1", "reason": "a\u{85}b"}), "reason: contains the character"),
            (terminate_node, json!({"node_ids": ["n1"]}), "missing field `reason`"),
            (drain_node, json!({"node_id": "n1"}), "reason: is required"),
            (cordon_node, json!({"node": "n1"}), "unknown field `node`"),
            (scale_pool, json!({"pool": "p", "target": -1}), "target: invalid value"),
            (diagnose_node, json!({"node_id": "n1", "test": ""}), "test: names the diagnostic"),
            (start_runbook, json!({"runbook": "r", "pool": "p", "selector": "a=b"}), "give one of them"),
        ];
        for (decode, arguments, expected) in cases {
            let error = decode(object(arguments.clone())).expect_err("refused");
            assert!(error.contains(expected), "{arguments}: {error:?} should contain {expected:?}");
        }
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let cases = [
            (get_node as fn(JsonObject) -> Result<Value, String>, json!({}), "missing field `node_id`"),
            (get_node, json!({"node_id": 5}), "node_id: invalid type: integer `5`"),
            (get_node, json!({"node_id": "n1", "nodes": 1}), "unknown field `nodes`"),
            (list_nodes, json!({"status": "sleeping"}), "status: unknown variant `sleeping`"),
            (list_nodes, json!({"page_size": 0}), "page_size: must be between 1 and 200"),
            (list_nodes, json!({"page_size": -3}), "page_size: invalid value"),
            (health_history, json!({"node_id": "n1", "limit": 101}), "limit: must be between 1 and 100"),
            (list_events, json!({"resource_id": "n1"}), "resource_id: needs kind"),
            (list_pools, json!({"x": 1}), "unknown field `x`"),
        ];
        for (decode, arguments, expected) in cases {
            let error = decode(object(arguments.clone())).expect_err("refused");
            assert!(error.contains(expected), "{arguments}: {error:?} should contain {expected:?}");
        }
    }

    #[test]
    fn good_arguments_become_the_api_request() {
        let body = list_nodes(object(json!({"status": "cordoned", "pool": "a"}))).expect("valid");
        assert_eq!(body, json!({"status": "NODE_STATUS_CORDONED", "pool": "a", "pageSize": 100}));
        let body = list_events(object(json!({"kind": "node", "resource_id": "n1", "after_seq": 7}))).expect("valid");
        assert_eq!(body, json!({"kind": "node", "resourceId": "n1", "afterSeq": "7"}));
        assert_eq!(get_run(object(json!({"run_id": "r"}))).expect("valid"), json!({"runId": "r"}));
    }
}
