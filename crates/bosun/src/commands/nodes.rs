//! `bosun nodes`: list, inspect and act on nodes.

use std::process::ExitCode;

use bosun_api::v1;
use bosun_core::{NodeStatus, RemediationAction};
use clap::{Args, Subcommand};

use super::remote::{Admin, Remote, call};
use crate::output;
use crate::views::node_inventory::{InventoryDoc, NodeInventory, affected_workloads};
use crate::views::{self, BootstrapLogRow, CommandRow, HealthReportRow, NodeRow};

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: NodesCommand,
}

#[derive(Debug, Subcommand)]
enum NodesCommand {
    /// List nodes (every page).
    List(ListArgs),
    /// Show one node with its GPUs, the host or VM it is, and its GPU workloads.
    Get {
        /// The node's id.
        node: String,
    },
    /// Stop scheduling onto a node.
    Cordon(ActionArgs),
    /// Return a cordoned, draining or unhealthy node to service.
    Uncordon(ActionArgs),
    /// Cordon a node and evict its work (printing the GPU workloads it reported).
    Drain(ActionArgs),
    /// Terminate a node: the agent runs its shutdown hook and the node becomes TERMINATED
    /// (printing the GPU workloads it reported).
    Terminate(ActionArgs),
    /// Run a GPU diagnostic on the node.
    Diagnose {
        #[command(flatten)]
        action: ActionArgs,
        /// Which diagnostic: quick, medium or long.
        #[arg(long, default_value = "quick")]
        test: String,
    },
    /// Take a remediation step now, skipping the ladder: reset a GPU, reboot, or replace
    /// (the node leaves service and its pool replaces it within the replacement budget).
    Remediate {
        #[command(flatten)]
        action: ActionArgs,
        /// The step: reset_gpu (needs --gpu), reboot or replace.
        #[arg(long = "action", value_parser = parse_step)]
        step: RemediationAction,
        /// The GPU to reset.
        #[arg(long)]
        gpu: Option<u32>,
    },
    /// Forget a node and its history (TERMINATED nodes; others with --force).
    Delete {
        /// The node's id.
        node: String,
        /// Why: recorded in the change log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Delete a node that is not TERMINATED.
        #[arg(long)]
        force: bool,
    },
    /// Inject a GPU fault into a machine of a fake provider (demos and tests).
    InjectFault(FaultArgs),
    /// A node's health reports, newest first.
    History {
        /// The node's id.
        node: String,
        /// How many reports, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// What bosun's SSH bootstrap ran on a node's machine and what it printed, newest
    /// attempt first (NODE may also be an instance id, for machines that never registered).
    BootstrapLog {
        node: String,
        /// Attempts to show, newest first (at most 50).
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only nodes in this status: active, cordoned, draining, unhealthy, terminating or
    /// terminated (any case; NODE_STATUS_ACTIVE works too).
    #[arg(long, value_parser = parse_status)]
    status: Option<NodeStatus>,
    /// Only nodes of this pool.
    #[arg(long)]
    pool: Option<String>,
    /// Only nodes of this provider (fake, process, lambda, gcp, aws...).
    #[arg(long)]
    provider: Option<String>,
    /// Only nodes in this region.
    #[arg(long)]
    region: Option<String>,
    /// Label selector: key=value terms and bare keys (label present), comma-separated.
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    selector: Option<String>,
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("kind").required(true).multiple(false).args(["xid", "thermal", "ecc", "ecc_dbe", "nvlink"])))]
struct FaultArgs {
    /// The node's id.
    node: String,
    /// An XID error with this code (79: GPU fell off the bus).
    #[arg(long, value_name = "CODE")]
    xid: Option<u32>,
    /// The GPU (every GPU without --gpu) runs this hot.
    #[arg(long, value_name = "CELSIUS")]
    thermal: Option<f64>,
    /// This many corrected (single-bit) ECC errors.
    #[arg(long, value_name = "COUNT")]
    ecc: Option<u64>,
    /// An uncorrectable (double-bit) ECC error.
    #[arg(long)]
    ecc_dbe: bool,
    /// NVLink errors on this link.
    #[arg(long, value_name = "LINK")]
    nvlink: Option<u32>,
    /// The GPU to fault (default 0; for --thermal, every GPU).
    #[arg(long)]
    gpu: Option<u32>,
}

impl FaultArgs {
    fn request(&self) -> anyhow::Result<v1::InjectFaultRequest> {
        let (fault, parameters): (&str, Vec<(&str, String)>) =
            match (self.xid, self.thermal, self.ecc, self.ecc_dbe, self.nvlink) {
                (Some(code), ..) => ("xid_error", vec![("code", code.to_string())]),
                (_, Some(celsius), ..) => ("temperature", vec![("celsius", celsius.to_string())]),
                (_, _, Some(count), ..) => ("ecc_sbe", vec![("count", count.to_string())]),
                (_, _, _, true, _) => ("memory_error", vec![]),
                (_, _, _, _, Some(link)) => ("nvlink_error", vec![("link", link.to_string())]),
                _ => anyhow::bail!("choose a fault: --xid, --thermal, --ecc, --ecc-dbe or --nvlink"),
            };
        Ok(v1::InjectFaultRequest {
            node_id: self.node.clone(),
            fault: fault.to_owned(),
            gpu: self.gpu,
            parameters: parameters.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ..Default::default()
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct ActionArgs {
    /// The node's id.
    pub node: String,
    /// Why: recorded with the command and in the change log.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// A node status in any case, with or without the wire's `NODE_STATUS_` prefix.
fn parse_status(text: &str) -> Result<NodeStatus, String> {
    let upper = text.trim().to_ascii_uppercase();
    let word = upper.strip_prefix("NODE_STATUS_").unwrap_or(&upper);
    word.parse().map_err(|_| {
        format!("{text:?} is not a node status; use active, cordoned, draining, unhealthy, terminating or terminated")
    })
}

fn parse_step(text: &str) -> Result<RemediationAction, String> {
    let step: RemediationAction = text.parse().map_err(|e: bosun_core::ValidationError| e.problem)?;
    if step.acts_on_machine() {
        Ok(step)
    } else {
        Err(format!("{step} is not a remediation step; use reset_gpu, reboot or replace"))
    }
}

pub async fn run(args: &NodesArgs) -> anyhow::Result<ExitCode> {
    let admin = args.remote.admin()?;
    let format = args.remote.output;
    let text = match &args.command {
        NodesCommand::List(list) => {
            let nodes: Vec<NodeRow> = list_all(&admin, list).await?.iter().map(NodeRow::from_wire).collect();
            output::render(format, &nodes, || {
                if nodes.is_empty() { "No nodes found.\n".to_owned() } else { views::node_table(&nodes).render() }
            })?
        }
        NodesCommand::Get { node } => {
            let request = v1::GetNodeRequest { node_id: node.clone(), ..Default::default() };
            let response = call!(admin, get_node, request);
            let node = NodeRow::from_wire(response.node.as_option().unwrap_or(&v1::Node::default()));
            let inventory = match node_inventory(&admin, &node.node_id).await {
                Ok(inventory) => Some(inventory),
                Err(why) => {
                    eprintln!("note: {why}; the node's host, VM and GPU workloads are not shown");
                    None
                }
            };
            let detail = NodeDetail { node, inventory };
            output::render(format, &detail, || views::node_detail(&detail.node, detail.inventory.as_ref()))?
        }
        NodesCommand::Cordon(action) => issue(&admin, format, action, v1::CommandType::COMMAND_TYPE_CORDON, []).await?,
        NodesCommand::Uncordon(action) => {
            warn_if_unhealthy(&admin, &action.node).await;
            issue(&admin, format, action, v1::CommandType::COMMAND_TYPE_UNCORDON, []).await?
        }
        NodesCommand::Drain(action) => {
            issue_affecting_workloads(&admin, format, action, v1::CommandType::COMMAND_TYPE_DRAIN).await?
        }
        NodesCommand::Terminate(action) => {
            issue_affecting_workloads(&admin, format, action, v1::CommandType::COMMAND_TYPE_TERMINATE).await?
        }
        NodesCommand::Diagnose { action, test } => {
            let params = [("test".to_owned(), test.clone())];
            issue(&admin, format, action, v1::CommandType::COMMAND_TYPE_RUN_DIAGNOSTIC, params).await?
        }
        NodesCommand::Remediate { action, step, gpu } => {
            let request = v1::RemediateNodeRequest {
                node_id: action.node.clone(),
                action: bosun_api::convert::remediation_action(*step).into(),
                gpu_index: *gpu,
                reason: action.reason.clone(),
                ..Default::default()
            };
            let response = call!(admin, remediate_node, request);
            let node = NodeRow::from_wire(response.node.as_option().unwrap_or(&v1::Node::default()));
            output::render(format, &node, || match &response.command_id {
                Some(command) => format!("{step} {}: command {command}\n", node.node_id),
                None => format!(
                    "{step} {}: {} ({})\n",
                    node.node_id,
                    node.status,
                    node.status_reason.as_deref().unwrap_or("-")
                ),
            })?
        }
        NodesCommand::Delete { node, reason, force } => {
            let request = v1::DeleteNodeRequest {
                node_id: node.clone(),
                reason: reason.clone(),
                force: *force,
                ..Default::default()
            };
            let _deleted = call!(admin, delete_node, request);
            format!("node {node} deleted\n")
        }
        NodesCommand::InjectFault(fault) => {
            let response = call!(admin, inject_fault, fault.request()?);
            let command = CommandRow::from_wire(response.command.as_option().unwrap_or(&v1::Command::default()), &[]);
            output::render(format, &command, || {
                format!("fault sent to {}: command {} {}\n", command.node_id, command.command_id, command.state)
            })?
        }
        NodesCommand::History { node, limit } => {
            let request = v1::GetHealthHistoryRequest { node_id: node.clone(), limit: *limit, ..Default::default() };
            let response = call!(admin, get_health_history, request);
            let reports: Vec<HealthReportRow> = response.reports.iter().map(HealthReportRow::from_wire).collect();
            output::render(format, &reports, || views::health_table(&reports).render())?
        }
        NodesCommand::BootstrapLog { node, limit } => {
            let request = v1::GetBootstrapLogsRequest { node_id: node.clone(), limit: *limit, ..Default::default() };
            let response = call!(admin, get_bootstrap_logs, request);
            let logs: Vec<BootstrapLogRow> = response.logs.iter().map(BootstrapLogRow::from_wire).collect();
            output::render(format, &logs, || views::bootstrap_logs(node, &logs))?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Uncordoning returns a node to service whatever its health: say so when its last
/// report was UNHEALTHY, or when it has not been heard from lately (as Navarch's CLI
/// does), before doing it.
async fn warn_if_unhealthy(admin: &Admin, node: &str) {
    let request = v1::GetNodeRequest { node_id: node.to_owned(), ..Default::default() };
    // The uncordon itself reports a missing node or an unreachable server.
    let Ok(response) = admin.servers.call(|client| client.get_node(request.clone())).await else { return };
    let Some(found) = response.into_owned().node.into_option() else { return };
    if found.health.as_known() == Some(v1::HealthStatus::HEALTH_STATUS_UNHEALTHY) {
        eprintln!(
            "warning: node {node} is UNHEALTHY by its last health report; uncordoning returns it to service, \
             and its next report judges it again"
        );
    }
    let silent_for = found
        .last_heartbeat
        .as_option()
        .and_then(|at| bosun_api::convert::from_timestamp("last_heartbeat", at).ok())
        .map(|last| bosun_core::Clock::now(&bosun_core::SystemClock).saturating_since(last));
    if silent_for.is_none_or(|silent| silent > std::time::Duration::from_secs(120)) {
        eprintln!("warning: node {node} has not sent a heartbeat for over two minutes; it may be offline");
    }
}

async fn list_all(admin: &Admin, list: &ListArgs) -> anyhow::Result<Vec<v1::Node>> {
    let status = list.status.map_or(v1::NodeStatus::NODE_STATUS_UNSPECIFIED, bosun_api::convert::node_status);
    let mut nodes = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = v1::ListNodesRequest {
            status: status.into(),
            pool: list.pool.clone().unwrap_or_default(),
            provider: list.provider.clone().unwrap_or_default(),
            region: list.region.clone().unwrap_or_default(),
            label_selector: list.selector.clone().unwrap_or_default(),
            page_size: 0,
            page_token,
            ..Default::default()
        };
        let page = call!(admin, list_nodes, request);
        nodes.extend(page.nodes);
        if page.next_page_token.is_empty() {
            return Ok(nodes);
        }
        page_token = page.next_page_token;
    }
}

/// Issues a command and prints it (in a table, one line saying what happened).
pub(crate) async fn issue<const N: usize>(
    admin: &Admin,
    format: output::Format,
    action: &ActionArgs,
    kind: v1::CommandType,
    parameters: [(String, String); N],
) -> anyhow::Result<String> {
    let command = send_command(admin, action, kind, parameters).await?;
    output::render(format, &command, || command_line(&command))
}

async fn send_command<const N: usize>(
    admin: &Admin,
    action: &ActionArgs,
    kind: v1::CommandType,
    parameters: [(String, String); N],
) -> anyhow::Result<CommandRow> {
    let request = v1::IssueCommandRequest {
        node_id: action.node.clone(),
        r#type: kind.into(),
        parameters: parameters.into_iter().collect(),
        reason: action.reason.clone(),
        ..Default::default()
    };
    let response = call!(admin, issue_command, request);
    Ok(CommandRow::from_wire(response.command.as_option().unwrap_or(&v1::Command::default()), &[]))
}

fn command_line(command: &CommandRow) -> String {
    format!("{} {}: command {} {}\n", command.kind, command.node_id, command.command_id, command.state)
}

/// `nodes get`: the node's fields, and what the inventory knows of it (`null` when it
/// could not be read).
#[derive(Debug, serde::Serialize)]
struct NodeDetail {
    #[serde(flatten)]
    node: NodeRow,
    inventory: Option<NodeInventory>,
}

/// A drain or terminate as printed: the command, and the GPU workloads it affects (`null`
/// when the inventory could not be read).
#[derive(Debug, serde::Serialize)]
struct IssuedWithWorkloads {
    #[serde(flatten)]
    command: CommandRow,
    workloads: Option<Vec<InventoryDoc>>,
}

/// Issues a drain or terminate and prints the GPU workloads it affects: those the node
/// last reported, read before the command goes out (its agent may act on it at once).
async fn issue_affecting_workloads(
    admin: &Admin,
    format: output::Format,
    action: &ActionArgs,
    kind: v1::CommandType,
) -> anyhow::Result<String> {
    let workloads = inventory_records(admin, "workload", &action.node).await;
    let command = send_command(admin, action, kind, []).await?;
    // Said only once the command went out: a refused command is the one error to print.
    let workloads = match workloads {
        Ok(workloads) => Some(workloads),
        Err(why) => {
            eprintln!("note: {why}; the GPU workloads {} affects are not shown", command.kind);
            None
        }
    };
    let issued = IssuedWithWorkloads { command, workloads };
    output::render(format, &issued, || {
        let mut text = command_line(&issued.command);
        if let Some(workloads) = &issued.workloads {
            text.push_str(&affected_workloads(&issued.command.node_id, workloads));
        }
        text
    })
}

/// What the inventory knows of `node`: the host it is, the VM it runs in and its GPU
/// workloads, none of them gone. `Err` says why it could not be read (a server older than
/// the inventory answers `unimplemented`).
async fn node_inventory(admin: &Admin, node: &str) -> Result<NodeInventory, String> {
    let host = inventory_records(admin, "host", node).await?.into_iter().next();
    let vm = inventory_records(admin, "vm", node).await?.into_iter().next();
    let workloads = inventory_records(admin, "workload", node).await?;
    Ok(NodeInventory { host, vm, workloads })
}

/// The records of `kind` that are, or run on, `node` and are not gone (every page).
async fn inventory_records(admin: &Admin, kind: &str, node: &str) -> Result<Vec<InventoryDoc>, String> {
    let mut docs = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = v1::ListInventoryRequest {
            kind: kind.to_owned(),
            node_id: node.to_owned(),
            gone: "false".to_owned(),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        let page = admin
            .servers
            .call(|client| client.list_inventory(request.clone()))
            .await
            .map_err(|e| format!("the inventory could not be read: {}", admin.explain(e)))?
            .into_owned();
        for record in &page.records {
            docs.push(InventoryDoc::from_wire(record).map_err(|e| e.to_string())?);
        }
        if page.next_page_token.is_empty() {
            return Ok(docs);
        }
        page_token = page.next_page_token;
    }
}

/// Parses `key=value` command parameters.
pub(crate) fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// `bosun health`: node health as the control plane judged it.
#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: HealthCommand,
}

#[derive(Debug, Subcommand)]
enum HealthCommand {
    /// A node's health reports, newest first, with the rule that classified each event.
    History {
        node: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub async fn run_health(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let HealthCommand::History { node, limit } = &args.command;
    let nodes =
        NodesArgs { remote: args.remote.clone(), command: NodesCommand::History { node: node.clone(), limit: *limit } };
    run(&nodes).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        fault: FaultArgs,
    }

    #[test]
    fn inject_fault_flags_choose_exactly_one_fault() {
        let parse =
            |args: &[&str]| Wrapper::try_parse_from(std::iter::once("inject-fault").chain(args.iter().copied()));
        let xid = parse(&["n1", "--xid", "79", "--gpu", "3"]).expect("valid").fault.request().expect("request");
        assert_eq!(
            (xid.fault.as_str(), xid.gpu, xid.parameters.get("code").map(String::as_str)),
            ("xid_error", Some(3), Some("79"))
        );
        let hot = parse(&["n1", "--thermal", "96"]).expect("valid").fault.request().expect("request");
        assert_eq!(hot.fault, "temperature");
        assert_eq!(parse(&["n1", "--ecc-dbe"]).expect("valid").fault.request().expect("request").fault, "memory_error");
        assert!(parse(&["n1"]).is_err(), "a fault is required");
        assert!(parse(&["n1", "--xid", "79", "--nvlink", "2"]).is_err(), "one fault at a time");
    }
}
