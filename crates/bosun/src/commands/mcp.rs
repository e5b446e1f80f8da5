//! `bosun mcp`: the MCP server's stored kill switch, for every replica at once; the tools
//! agents may call, each enabled or disabled for every agent; the calls a session made.

use std::process::ExitCode;

use bosun_api::v1;
use clap::{Args, Subcommand};

use super::remote::{Remote, call};
use crate::output;
use crate::views::{non_empty, time_text};

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: McpCommand,
}

#[derive(Debug, Subcommand)]
enum McpCommand {
    /// Refuse every MCP call at once, on every replica (operator or admin).
    Disable {
        /// Why; every refused MCP call shows it.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take MCP calls again (admin; not while the configuration says mcp.enabled: false).
    Enable,
    /// Whether MCP calls are taken, and who last turned them off or on.
    Status,
    /// The tools agents may call, with their risk and whether each is enabled.
    Tools,
    /// Enable or disable one tool for every agent at once.
    Tool {
        #[command(subcommand)]
        command: ToolCommand,
    },
    /// The tool calls recorded on a run (an MCP session's, `bosun runs list --kind
    /// ai_session`), oldest first.
    Calls {
        /// The run's id.
        run_id: String,
        /// At most this many calls (default 500, at most 10,000).
        #[arg(long)]
        limit: Option<u32>,
        /// Only calls numbered after this one (the last ID of the previous page).
        #[arg(long)]
        after: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum ToolCommand {
    /// Offer the tool to agents again (admin).
    Enable { name: String },
    /// Take the tool away from every agent: not listed, not callable (operator or admin).
    Disable { name: String },
}

/// A tool as printed.
#[derive(Debug, serde::Serialize)]
struct Tool {
    name: String,
    risk: String,
    enabled: bool,
    description: String,
    input_schema: serde_json::Value,
}

impl Tool {
    fn from_wire(tool: &v1::ToolDefinition) -> Self {
        Tool {
            name: tool.name.clone(),
            risk: tool.risk.clone(),
            enabled: tool.enabled,
            description: tool.description.clone(),
            input_schema: serde_json::from_str(&tool.input_schema_json).unwrap_or(serde_json::Value::Null),
        }
    }
}

fn tools_text(tools: &[Tool]) -> String {
    let mut table = output::Table::new(["NAME", "RISK", "ENABLED", "DESCRIPTION"]);
    for tool in tools {
        let mut description: String = tool.description.chars().take(70).collect();
        if tool.description.chars().count() > 70 {
            description.push_str("...");
        }
        let enabled = if tool.enabled { "yes" } else { "no" };
        table.row([tool.name.clone(), tool.risk.clone(), enabled.to_owned(), description]);
    }
    table.render()
}

/// A recorded tool call as printed.
#[derive(Debug, serde::Serialize)]
struct Call {
    id: u64,
    at: Option<String>,
    tool: String,
    status: String,
    duration_ms: u64,
    input: serde_json::Value,
    output: Option<serde_json::Value>,
    error: Option<String>,
    approval_id: Option<String>,
}

impl Call {
    fn from_wire(call: &v1::ToolCall) -> Self {
        let json = |s: &str| serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_owned()));
        Call {
            id: call.id,
            at: time_text(&call.at),
            tool: call.tool.clone(),
            status: call.status.clone(),
            duration_ms: call.duration_ms,
            input: json(&call.input_json),
            output: non_empty(&call.output_json).map(|o| json(&o)),
            error: non_empty(&call.error),
            approval_id: non_empty(&call.approval_id),
        }
    }
}

fn calls_text(calls: &[Call], more: bool) -> String {
    let mut table = output::Table::new(["ID", "AT", "TOOL", "STATUS", "MS", "DETAIL"]);
    for call in calls {
        let detail: String = match (&call.error, &call.approval_id) {
            (_, Some(approval)) => format!("approval {approval}"),
            (Some(error), None) => error.chars().take(80).collect(),
            (None, None) => call.input.to_string().chars().take(80).collect(),
        };
        table.row([
            call.id.to_string(),
            call.at.clone().unwrap_or_else(|| "-".to_owned()),
            call.tool.clone(),
            call.status.clone(),
            call.duration_ms.to_string(),
            detail,
        ]);
    }
    let mut text = table.render();
    if let (true, Some(last)) = (more, calls.last()) {
        text.push_str(&format!("(more: --after {})\n", last.id));
    }
    text
}

/// `GetMcpStatus` as printed.
#[derive(Debug, serde::Serialize)]
struct Status {
    enabled: bool,
    config_enabled: bool,
    stored_enabled: bool,
    changed_by: Option<String>,
    changed_at: Option<String>,
    reason: Option<String>,
}

impl Status {
    fn from_wire(status: &v1::GetMcpStatusResponse) -> Self {
        Status {
            enabled: status.enabled,
            config_enabled: status.config_enabled,
            stored_enabled: status.stored_enabled,
            changed_by: non_empty(&status.changed_by),
            changed_at: time_text(&status.changed_at),
            reason: non_empty(&status.reason),
        }
    }

    fn text(&self) -> String {
        let state = if self.enabled { "enabled" } else { "disabled" };
        let mut text = format!("MCP: {state}\n");
        if !self.config_enabled {
            text.push_str("  the configuration disables it (mcp.enabled: false)\n");
        }
        let switch = if self.stored_enabled { "on" } else { "off" };
        match (&self.changed_by, &self.changed_at) {
            (Some(by), Some(at)) => text.push_str(&format!("  switch: {switch} (set by {by} at {at})\n")),
            _ => text.push_str(&format!("  switch: {switch} (never set)\n")),
        }
        if let Some(reason) = &self.reason {
            text.push_str(&format!("  reason: {reason}\n"));
        }
        text
    }
}

pub async fn run(args: &McpArgs) -> anyhow::Result<ExitCode> {
    let ops = args.remote.ops()?;
    let format = args.remote.output;
    let status = match &args.command {
        McpCommand::Tools => {
            let listed = call!(ops, list_tools, v1::ListToolsRequest::default());
            let tools: Vec<Tool> = listed.tools.iter().map(Tool::from_wire).collect();
            print!("{}", output::render(format, &tools, || tools_text(&tools))?);
            return Ok(ExitCode::SUCCESS);
        }
        McpCommand::Tool { command } => {
            let (name, enabled) = match command {
                ToolCommand::Enable { name } => (name, true),
                ToolCommand::Disable { name } => (name, false),
            };
            let request = v1::SetToolEnabledRequest { name: name.clone(), enabled, ..Default::default() };
            let answer = call!(ops, set_tool_enabled, request);
            let tool = Tool::from_wire(answer.tool.as_option().unwrap_or(&v1::ToolDefinition::default()));
            let state = if tool.enabled { "enabled" } else { "disabled" };
            print!("{}", output::render(format, &tool, || format!("tool {} {state}\n", tool.name))?);
            return Ok(ExitCode::SUCCESS);
        }
        McpCommand::Calls { run_id, limit, after } => {
            let request = v1::ListToolCallsRequest {
                run_id: run_id.clone(),
                limit: limit.unwrap_or_default(),
                after_id: after.unwrap_or_default(),
                ..Default::default()
            };
            let answer = call!(ops, list_tool_calls, request);
            let calls: Vec<Call> = answer.calls.iter().map(Call::from_wire).collect();
            print!("{}", output::render(format, &calls, || calls_text(&calls, answer.more))?);
            return Ok(ExitCode::SUCCESS);
        }
        McpCommand::Disable { reason } => {
            let request = v1::SetMcpEnabledRequest {
                enabled: false,
                reason: reason.clone().unwrap_or_default(),
                ..Default::default()
            };
            call!(ops, set_mcp_enabled, request).status.as_option().cloned().unwrap_or_default()
        }
        McpCommand::Enable => {
            let request = v1::SetMcpEnabledRequest { enabled: true, ..Default::default() };
            call!(ops, set_mcp_enabled, request).status.as_option().cloned().unwrap_or_default()
        }
        McpCommand::Status => call!(ops, get_mcp_status, v1::GetMcpStatusRequest::default()),
    };
    let status = Status::from_wire(&status);
    print!("{}", output::render(format, &status, || status.text())?);
    Ok(ExitCode::SUCCESS)
}
