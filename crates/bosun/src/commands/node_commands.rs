//! `bosun commands`: the commands issued to nodes.

use std::process::ExitCode;

use bosun_api::v1;
use bosun_core::{CommandKind, CommandState};
use clap::{Args, Subcommand};

use super::nodes::parse_param;
use super::remote::parse_duration;
use super::remote::{Remote, call};
use crate::output;
use crate::views::{self, CommandRow};

#[derive(Debug, Args)]
pub struct CommandsArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: CommandsCommand,
}

#[derive(Debug, Subcommand)]
enum CommandsCommand {
    /// List commands in issue order (every page).
    List {
        /// Only this node's commands.
        #[arg(long)]
        node: Option<String>,
        /// Only commands in these states (PENDING, DELIVERED, ACKED, SUCCEEDED, FAILED, EXPIRED, CANCELLED).
        #[arg(long, value_delimiter = ',', value_parser = parse_state)]
        state: Vec<CommandState>,
    },
    /// Show a command and its history.
    Get { command: String },
    /// Cancel a command that has not finished.
    Cancel {
        command: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Issue any command, built-in or custom.
    Issue {
        node: String,
        /// CORDON, UNCORDON, DRAIN, TERMINATE, RUN_DIAGNOSTIC, REBOOT, or custom:<name>.
        #[arg(long = "type", value_parser = parse_kind)]
        kind: CommandKind,
        /// A parameter, key=value (repeatable).
        #[arg(long = "param", short = 'p', value_parser = parse_param)]
        parameters: Vec<(String, String)>,
        #[arg(long, default_value = "")]
        reason: String,
        /// How long the command may wait for delivery and acknowledgement (default: the server's).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
    },
}

fn parse_state(text: &str) -> Result<CommandState, String> {
    text.parse().map_err(|e: bosun_core::ValidationError| e.problem)
}

fn parse_kind(text: &str) -> Result<CommandKind, String> {
    text.parse().map_err(|e: bosun_core::ValidationError| e.problem)
}

pub async fn run(args: &CommandsArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let text = match &args.command {
        CommandsCommand::List { node, state } => {
            let mut commands = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = v1::ListCommandsRequest {
                    node_id: node.clone().unwrap_or_default(),
                    states: state.iter().map(|s| bosun_api::convert::command_state(*s).into()).collect(),
                    page_token,
                    ..Default::default()
                };
                let page = call!(admin, list_commands, request);
                commands.extend(page.commands.iter().map(|c| CommandRow::from_wire(c, &[])));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            output::render(format, &commands, || views::command_table(&commands).render())?
        }
        CommandsCommand::Get { command } => {
            let request = v1::GetCommandRequest { command_id: command.clone(), ..Default::default() };
            let response = call!(admin, get_command, request);
            let row = CommandRow::from_wire(
                response.command.as_option().unwrap_or(&v1::Command::default()),
                &response.events,
            );
            output::render(format, &row, || views::command_detail(&row))?
        }
        CommandsCommand::Cancel { command, reason } => {
            let request =
                v1::CancelCommandRequest { command_id: command.clone(), reason: reason.clone(), ..Default::default() };
            let response = call!(admin, cancel_command, request);
            let row = CommandRow::from_wire(response.command.as_option().unwrap_or(&v1::Command::default()), &[]);
            output::render(format, &row, || format!("command {} {}\n", row.command_id, row.state))?
        }
        CommandsCommand::Issue { node, kind, parameters, reason, ttl } => {
            let (wire, custom_name) = bosun_api::convert::command_type(kind);
            let ttl_seconds = match ttl {
                Some(ttl) => u32::try_from(ttl.as_secs().max(1)).map_err(|_| anyhow::anyhow!("--ttl is too long"))?,
                None => 0,
            };
            let request = v1::IssueCommandRequest {
                node_id: node.clone(),
                r#type: wire.into(),
                custom_name,
                parameters: parameters.iter().cloned().collect(),
                reason: reason.clone(),
                ttl_seconds,
                ..Default::default()
            };
            let response = call!(admin, issue_command, request);
            let row = CommandRow::from_wire(response.command.as_option().unwrap_or(&v1::Command::default()), &[]);
            output::render(format, &row, || {
                format!("{} {}: command {} {}\n", row.kind, row.node_id, row.command_id, row.state)
            })?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
