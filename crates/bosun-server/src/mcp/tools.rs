//! The tools the MCP server lists and calls. Code is their source of truth: each is a
//! [`ToolSpec`] with its name, description, JSON input schema and whether it only reads.
//!
//! A call's arguments are decoded into the tool's typed input (`deny_unknown_fields`,
//! errors located by `serde_path_to_error`), so an input that fails its schema is a tool
//! error naming the field. Read tools are in-process calls to the API (`inproc::call`) as
//! the caller's own token: the same authentication, validation and JSON as any client.
//!
//! Tools that change the fleet (cordon, drain, terminate, scale, runbooks) come later,
//! behind the approval policies; they will be further [`Action`]s beside [`Action::Api`].

use std::sync::Arc;

use bosun_core::{RunKind, RunStatus};
use connectrpc::ConnectRpcService;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::McpCaller;
use crate::inproc::{self, CallError};
use crate::transport::Peer;

/// One tool.
#[derive(Debug)]
pub(crate) struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub read_only: bool,
    /// The JSON Schema of its arguments (an object schema).
    pub schema: fn() -> Value,
    pub action: Action,
}

/// What a call does once its arguments decoded.
#[derive(Debug)]
pub(crate) enum Action {
    /// A call to the API: `request` turns the arguments into the method's request JSON.
    Api { method: &'static str, request: fn(JsonObject) -> Result<Value, String> },
}

/// Every tool this server has, in the order `tools/list` gives them.
pub(crate) const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "list_nodes",
        description: "List the fleet's GPU nodes (id, status, health, pool, provider, GPUs, labels), filtered by \
                      status, pool, provider, region or label selector; paged (page_token from next_page_token).",
        read_only: true,
        schema: list_nodes_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/ListNodes", request: list_nodes },
    },
    ToolSpec {
        name: "get_node",
        description: "One node in full: status and why, health, GPUs, metrics, labels, instance and pool.",
        read_only: true,
        schema: node_id_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/GetNode", request: get_node },
    },
    ToolSpec {
        name: "node_health_history",
        description: "A node's health reports, newest first: each check's result, the events (XIDs, ECC errors) \
                      and the policy rule that judged them.",
        read_only: true,
        schema: health_history_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/GetHealthHistory", request: health_history },
    },
    ToolSpec {
        name: "list_events",
        description: "The change log, oldest first after after_seq: every change to nodes, instances, commands, \
                      pools and the policy, with who made it and why; filter by kind, resource and actor.",
        read_only: true,
        schema: list_events_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/ListEvents", request: list_events },
    },
    ToolSpec {
        name: "list_pools",
        description: "Every pool: its size and target, limits, autoscaler and the last scaling decision.",
        read_only: true,
        schema: no_arguments_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/ListPools", request: list_pools },
    },
    ToolSpec {
        name: "get_pool",
        description: "One pool in full, with its last scaling decision and its conditions.",
        read_only: true,
        schema: pool_name_schema,
        action: Action::Api { method: "/bosun.v1.AdminService/GetPool", request: get_pool },
    },
    ToolSpec {
        name: "list_runs",
        description: "Runs of the operations ledger (runbooks, replacements, scaling, drift repairs), newest first, \
                      filtered by status, kind or target (a node id, pool name or instance id); paged.",
        read_only: true,
        schema: list_runs_schema,
        action: Action::Api { method: "/bosun.v1.OpsService/ListRuns", request: list_runs },
    },
    ToolSpec {
        name: "get_run",
        description: "One run: its status, targets, input, who requested it and its approvals.",
        read_only: true,
        schema: run_id_schema,
        action: Action::Api { method: "/bosun.v1.OpsService/GetRun", request: get_run },
    },
];

/// The tools as `tools/list` describes them.
pub(crate) fn listed() -> Vec<Tool> {
    TOOLS
        .iter()
        .map(|spec| {
            let Value::Object(schema) = (spec.schema)() else { unreachable!("every tool's schema is an object") };
            Tool::new(spec.name, spec.description, Arc::new(schema))
                .with_annotations(ToolAnnotations::new().read_only(spec.read_only).destructive(false).open_world(false))
        })
        .collect()
}

/// Calls tool `name` with `arguments` as `caller`. An unknown tool is a protocol error
/// (invalid params); arguments that fail the tool's schema, and the API's refusals, are
/// tool errors the model reads.
pub(crate) async fn call(
    connect: &ConnectRpcService,
    caller: &McpCaller,
    peer: Option<Peer>,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<CallToolResult, McpError> {
    let Some(spec) = TOOLS.iter().find(|spec| spec.name == name) else {
        return Err(McpError::invalid_params(
            format!("unknown tool {name:?}; tools/list names the tools this server has"),
            None,
        ));
    };
    let arguments = arguments.unwrap_or_default();
    match &spec.action {
        Action::Api { method, request } => {
            let body = match request(arguments) {
                Ok(body) => body,
                Err(problem) => return Ok(tool_error(format!("invalid arguments for {name}: {problem}"))),
            };
            let request_id = format!("mcp-{}", uuid::Uuid::now_v7());
            let who = inproc::As { bearer: caller.bearer.as_deref(), peer, request_id: &request_id };
            match inproc::call(connect, who, method, &body).await {
                Ok(answer) => Ok(CallToolResult::structured(answer)),
                Err(CallError::Refused { code, message }) => Ok(tool_error(format!("{code}: {message}"))),
                Err(CallError::Failed(message)) => Ok(tool_error(format!("unavailable: {message}"))),
            }
        }
    }
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

const MAX_PAGE: u32 = 1000;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> JsonObject {
        let Value::Object(map) = value else { panic!("an object") };
        map
    }

    #[test]
    fn every_tool_is_listed_once_with_an_object_schema() {
        let tools = listed();
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
                method.starts_with("/bosun.v1.AdminService/") || method.starts_with("/bosun.v1.OpsService/"),
        }));
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let cases = [
            (get_node as fn(JsonObject) -> Result<Value, String>, json!({}), "missing field `node_id`"),
            (get_node, json!({"node_id": 5}), "node_id: invalid type: integer `5`"),
            (get_node, json!({"node_id": "n1", "nodes": 1}), "unknown field `nodes`"),
            (list_nodes, json!({"status": "sleeping"}), "status: unknown variant `sleeping`"),
            (list_nodes, json!({"page_size": 0}), "page_size: must be between 1 and 1000"),
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
