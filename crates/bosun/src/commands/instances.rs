//! `bosun instances`: the machines bosun provisioned, from request to termination.

use std::process::ExitCode;

use bosun_api::v1;
use bosun_core::InstanceState;
use clap::{Args, Subcommand};

use super::remote::{Remote, call};
use crate::output;
use crate::views::{self, InstanceRow};

#[derive(Debug, Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: InstancesCommand,
}

#[derive(Debug, Subcommand)]
enum InstancesCommand {
    /// List instances (every page).
    List {
        /// Only instances in these states (PROVISIONING, PENDING_REGISTRATION, RUNNING, TERMINATING, TERMINATED, FAILED).
        #[arg(long, value_delimiter = ',', value_parser = parse_state)]
        state: Vec<InstanceState>,
        #[arg(long)]
        pool: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
    /// Show one instance.
    Get { instance: String },
}

fn parse_state(text: &str) -> Result<InstanceState, String> {
    text.parse().map_err(|e: bosun_core::ValidationError| e.problem)
}

pub async fn run(args: &InstancesArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let text = match &args.command {
        InstancesCommand::List { state, pool, provider, node } => {
            let mut instances = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = v1::ListInstancesRequest {
                    states: state.iter().map(|s| bosun_api::convert::instance_state(*s).into()).collect(),
                    pool: pool.clone().unwrap_or_default(),
                    provider: provider.clone().unwrap_or_default(),
                    node_id: node.clone().unwrap_or_default(),
                    page_token,
                    ..Default::default()
                };
                let page = call!(admin, list_instances, request);
                instances.extend(page.instances.iter().map(InstanceRow::from_wire));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            output::render(format, &instances, || views::instance_table(&instances).render())?
        }
        InstancesCommand::Get { instance } => {
            let request = v1::GetInstanceRequest { instance_id: instance.clone(), ..Default::default() };
            let response = call!(admin, get_instance, request);
            let row = InstanceRow::from_wire(response.instance.as_option().unwrap_or(&v1::Instance::default()));
            output::render(format, &row, || views::instance_table(std::slice::from_ref(&row)).render())?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
