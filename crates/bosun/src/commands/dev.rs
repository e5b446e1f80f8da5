//! `bosun dev`: stand-ins for the systems bosun talks to, for trying bosun without them.
//!
//! `bosun dev proxmox-mock` serves a generated Proxmox VE cluster's API (hypervisors, GPU
//! VMs, containers, storage, tasks, and a template VM a `proxmox` pool clones) in
//! Proxmox's JSON shapes, with a fixed API token.

use std::process::ExitCode;

use anyhow::Context as _;
use bosun_provider::proxmox::mock::{MockCluster, MockSpec, TOKEN_ID, TOKEN_SECRET};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Serve a generated Proxmox VE cluster's API until interrupted.
    ProxmoxMock {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8006")]
        address: String,
        /// Hypervisors (pve1, pve2...).
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// QEMU VMs, each with GPUs passed through.
        #[arg(long, default_value_t = 12)]
        vms: u32,
        /// LXC containers.
        #[arg(long, default_value_t = 24)]
        containers: u32,
        #[arg(long, default_value_t = 1)]
        gpus_per_vm: u32,
    },
}

/// The largest cluster the mock generates (it lives in memory).
const MAX_GUESTS: u32 = 200_000;

pub async fn run(args: &DevArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DevCommand::ProxmoxMock { address, nodes, vms, containers, gpus_per_vm } => {
            if vms.saturating_add(*containers) > MAX_GUESTS || *nodes == 0 || *nodes > 1_000 || *gpus_per_vm > 16 {
                anyhow::bail!(
                    "--nodes must be 1 to 1000, --vms plus --containers at most {MAX_GUESTS}, --gpus-per-vm at most 16"
                );
            }
            let spec = MockSpec {
                nodes: *nodes,
                vms: *vms,
                containers: *containers,
                gpus_per_vm: *gpus_per_vm,
                ..MockSpec::default()
            };
            let mock = MockCluster::generate(&spec);
            // A pool of the `proxmox` provider needs a template to clone; the first host
            // holds it (the mock, unlike Proxmox, clones it onto any host).
            let template = mock.add_template("pve1");
            let listener =
                tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
            let local = listener.local_addr()?;
            println!("Proxmox VE mock on http://{local} ({nodes} nodes, {vms} VMs, {containers} containers)");
            println!("token_id: \"{TOKEN_ID}\"");
            println!("token secret: {TOKEN_SECRET}");
            println!("template_vmid: {template} (a GPU template on pve1 for a pool of type proxmox)");
            tokio::select! {
                served = mock.serve(listener) => served.context("the mock stopped")?,
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
