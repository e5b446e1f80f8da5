//! `bosun mcp`: the MCP server's stored kill switch, for every replica at once.

use std::process::ExitCode;

use bosun_api::v1;
use clap::{Args, Subcommand};

use super::remote::{Remote, call};
use crate::output;
use crate::views::time_text;

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
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
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
    let status = match &args.command {
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
    print!("{}", output::render(args.remote.output, &status, || status.text())?);
    Ok(ExitCode::SUCCESS)
}
