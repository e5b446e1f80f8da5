//! `bosun agent`: the node agent, on NVML or on fake GPUs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use bosun_agent::{
    Agent, AgentOptions, AgentOutcome, FakeGpus, GpuSource, Nvml, ProcessTable, fault_hooks, process_hooks,
};
use bosun_api::AgentClient;
use bosun_core::{Labels, NodeId, PoolName, SystemClock};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::remote::DEFAULT_SERVER;
use super::server::shutdown_signal;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The bosun server; several servers separated by commas (the agent stays on one that
    /// answers and moves to the next when that one fails).
    #[arg(long, env = "BOSUN_SERVER", default_value = DEFAULT_SERVER, value_name = "URL[,URL...]")]
    server: String,
    /// This node's id (default: the hostname).
    #[arg(long, env = "BOSUN_NODE_ID")]
    node_id: Option<String>,
    /// Agent token for registration. Prefer --token-file or BOSUN_TOKEN: a command-line
    /// argument is visible to every user of the machine.
    #[arg(long, env = "BOSUN_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the agent token from this file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: super::remote::TlsArgs,
    /// Where the node token the server hands out is kept, so a restarted agent can register
    /// its node again (default: $XDG_STATE_HOME/bosun/agent or ~/.local/state/bosun/agent).
    #[arg(long, env = "BOSUN_AGENT_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Simulate N GPUs instead of reading NVML; faults can then be injected with the
    /// custom command `fake-fault` (bosun commands issue NODE --type custom:fake-fault -p fault=xid -p code=79),
    /// and GPU processes started with `fake-process` (-p pid=4242 -p gpu=0 -p name=train -p memory=8GiB) and
    /// ended with `fake-process-clear` (-p pid=4242, or every process without it).
    #[arg(long, value_name = "N")]
    fake_gpus: Option<u32>,
    #[arg(long, default_value = "")]
    provider: String,
    #[arg(long, default_value = "")]
    region: String,
    #[arg(long, default_value = "")]
    zone: String,
    #[arg(long, default_value = "")]
    instance_type: String,
    #[arg(long)]
    pool: Option<String>,
    /// bosun's instance id, when the provider passed one to this machine.
    #[arg(long, env = "BOSUN_INSTANCE_ID")]
    instance_id: Option<String>,
    /// A node label, key=value (repeatable).
    #[arg(long = "label", value_parser = super::nodes::parse_param)]
    labels: Vec<(String, String)>,
}

fn node_id(args: &AgentArgs) -> anyhow::Result<NodeId> {
    let id = match &args.node_id {
        Some(id) => id.clone(),
        None => bosun_agent::procfs::detect_metadata().hostname,
    };
    id.parse().with_context(|| format!("{id:?} cannot be a node id; pass --node-id"))
}

pub async fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    let node_id = node_id(args)?;
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => {
            if args.token.is_some() && std::env::var("BOSUN_TOKEN").ok() != args.token {
                tracing::warn!(
                    "--token is visible to every user of this machine (ps, /proc); use --token-file or BOSUN_TOKEN"
                );
            }
            args.token.clone()
        }
    };
    let mut client = AgentClient::with_tls(&args.server, token, &args.tls.client_tls())?;
    match args.state_dir.clone().or_else(default_state_dir) {
        Some(dir) => client = client.with_state_dir(dir),
        None => tracing::warn!("no state directory (set --state-dir): the node token is not kept across restarts"),
    }
    let client = Arc::new(client);
    let mut options = AgentOptions::new(node_id.clone());
    options.provider = args.provider.clone();
    options.region = args.region.clone();
    options.zone = args.zone.clone();
    options.instance_type = args.instance_type.clone();
    options.pool = args.pool.as_deref().map(str::parse::<PoolName>).transpose().context("--pool")?;
    let mut labels = Labels::new();
    for (key, value) in &args.labels {
        labels.insert(key.clone(), value.clone()).context("--label")?;
    }
    options.labels = labels;
    options.instance_id = args.instance_id.clone();
    let detected = bosun_agent::procfs::detect_metadata();
    options.metadata = bosun_core::NodeMetadata { agent_version: options.metadata.agent_version.clone(), ..detected };
    let gpus: Arc<dyn GpuSource> = match args.fake_gpus {
        Some(count) => {
            let fake = Arc::new(FakeGpus::new(count).with_seed(seed(&node_id)));
            options.hooks.custom.extend(fault_hooks(&fake));
            options.hooks.custom.extend(process_hooks(&fake));
            // Simulated processes' pids name no process of this machine.
            options.processes = ProcessTable::Simulated;
            fake
        }
        None => Arc::new(
            Nvml::open(Arc::new(SystemClock))
                .await
                .context("cannot use NVML (no NVIDIA driver here?); run with --fake-gpus N to simulate GPUs")?,
        ),
    };
    let shutdown = CancellationToken::new();
    let agent = Agent::new(options, gpus, client);
    let running = tokio::spawn(agent.run(shutdown.clone()));
    tokio::pin!(running);
    eprintln!("bosun agent for node {node_id} talking to {}", args.server);
    let outcome = tokio::select! {
        result = &mut running => result,
        () = shutdown_signal() => {
            shutdown.cancel();
            running.await
        }
    };
    match outcome.context("the agent task failed")?? {
        AgentOutcome::Cancelled => eprintln!("agent stopped"),
        AgentOutcome::Terminated => eprintln!("node {node_id} terminated by the control plane; agent exiting"),
    }
    Ok(ExitCode::SUCCESS)
}

fn default_state_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state"),
    };
    Some(base.join("bosun").join("agent"))
}

/// A stable seed per node, so a node's fake GPUs keep their UUIDs across restarts.
fn seed(node: &NodeId) -> u64 {
    node.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
