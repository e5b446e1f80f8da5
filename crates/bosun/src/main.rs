//! `bosun`: one binary for the whole control plane.
//!
//! This crate is the CLI only: argument parsing, output formatting and process plumbing.
//! Behaviour lives in the library crates it calls.
//!
//! Layout:
//! - [`commands::server`] and [`commands::agent`]: the two long-running processes.
//! - [`commands::nodes`], [`commands::node_commands`], [`commands::instances`],
//!   [`commands::events`], [`commands::policy`], [`commands::pools`]: operator commands over AdminService
//!   (`commands::remote` holds what they share: --server, --token, -o, errors).
//! - [`commands::ledger`], [`commands::mcp`] and [`commands::usage`]: operator commands
//!   over OpsService (the ledger; the MCP kill switch; model prices and LLM usage).
//! - [`commands::config`]: configuration checks.
//! - [`commands::sim`]: the simulator and the heartbeat-ingest load generator.
//! - [`commands::db`]: schema migrations, seeding and integrity checks on a store.
//! - [`commands::bench`]: store and policy benchmarks that print one JSON line each.
//! - [`commands::debug`]: hidden helpers for tests (the crash-durability writer).
//! - [`views`]: wire messages as rows (JSON/YAML with snake_case keys, tables).
//! - [`output`]: formats, tables, and progress bars that stay out of logs and pipes.

mod commands;
mod output;
mod views;

/// mimalloc rather than the system allocator: bosun allocates records on one thread and
/// frees them on another all day long (store reads run on blocking threads), a pattern
/// glibc's allocator handles poorly. Measured: listing 100,000 nodes takes half the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bosun_core::inventory::InventoryKind;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// A control plane for GPU and compute fleets.
#[derive(Debug, Parser)]
#[command(
    name = "bosun",
    version,
    about,
    propagate_version = true,
    after_help = "Logging: every command takes --log FILTER (or BOSUN_LOG), e.g. --log debug or \
                  --log bosun_store=debug; the default is info for server and agent, warn otherwise."
)]
struct Cli {
    /// Log filter (see the end of `bosun --help`); kept out of each command's help.
    #[arg(long, global = true, hide = true, env = "BOSUN_LOG", value_name = "FILTER")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane.
    Server(commands::server::ServerArgs),
    /// Run the node agent (one per machine).
    Agent(commands::agent::AgentArgs),
    /// List, inspect and act on nodes.
    Nodes(commands::nodes::NodesArgs),
    /// Commands issued to nodes: list, inspect, cancel, issue.
    Commands(commands::node_commands::CommandsArgs),
    /// Pools: size, scaling decisions, demand.
    Pools(commands::pools::PoolsArgs),
    /// Machines bosun provisioned.
    Instances(commands::instances::InstancesArgs),
    /// The change log: history, audit trail, live changes (--follow).
    Events(commands::events::EventsArgs),
    /// Control-plane replicas on the store and which one leads.
    Replicas(commands::replicas::ReplicasArgs),
    /// Inventory: hypervisor hosts bosun knows of (list, get).
    Hosts(commands::inventory::KindArgs),
    /// Inventory: virtual machines (list, get).
    Vms(commands::inventory::KindArgs),
    /// Inventory: LXC and OCI containers (list, get).
    Containers(commands::inventory::KindArgs),
    /// Inventory: storage and the hosts that see it (list, get).
    Storage(commands::inventory::KindArgs),
    /// Inventory: processes using GPUs on the nodes (list, get).
    Workloads(commands::inventory::KindArgs),
    /// Inventory: the configured services, named groups of VMs, containers or workloads by
    /// label selector (list, get with members).
    Services(commands::inventory::KindArgs),
    /// Inventory sources: their state, a sync now, a record's history.
    Inventory(commands::inventory::InventoryArgs),
    /// Node health history.
    Health(commands::nodes::HealthArgs),
    /// Check, get, set and test the CEL health policy.
    Policy(commands::policy::PolicyArgs),
    /// Runbooks: named steps over bosun's operations.
    Runbooks(commands::ledger::RunbooksArgs),
    /// Runs: what bosun did (runbooks, replacements, scaling), with events and artifacts.
    Runs(commands::ledger::RunsArgs),
    /// The approval policy: which operations wait for a person's approval.
    Approvals(commands::ledger::ApprovalsArgs),
    /// The audit log: every API call that changed something or was refused.
    Audit(commands::ledger::AuditArgs),
    /// The MCP server's kill switch: disable, enable, status.
    Mcp(commands::mcp::McpArgs),
    /// Model prices per million tokens: set from a YAML file, list.
    Pricing(commands::usage::PricingArgs),
    /// What AI agents' LLM requests used and cost, by model, provider, run or actor.
    Usage(commands::usage::UsageArgs),
    /// Check configuration files.
    Config(commands::config::ConfigArgs),
    /// The simulator and load generator.
    Sim(commands::sim::SimArgs),
    /// Manage the store: schema migrations, demo data, integrity checks.
    Db(commands::db::DbArgs),
    /// Measure bosun's hot paths.
    Bench(commands::bench::BenchArgs),
    /// Stand-ins for the systems bosun talks to (a Proxmox VE API), to try bosun without them.
    Dev(commands::dev::DevArgs),
    /// Print bosun's version and platform.
    Version,
    #[command(hide = true)]
    Debug(commands::debug::DebugArgs),
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("--log {filter:?} is not a valid log filter"))?;
    // Colours only on a terminal: logs redirected to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let long_running = matches!(cli.command, Command::Server(_) | Command::Agent(_));
    // Simulated agents retry through every injected failure; their warnings would drown
    // the simulator's output.
    let default_filter = match &cli.command {
        _ if long_running => "info",
        // The control plane's own warnings (nodes timed out, replacements) are what a
        // scenario provokes; the report has them.
        Command::Sim(_) => "warn,bosun_agent=error,bosun_server=error",
        _ => "warn",
    };
    init_logging(cli.log.as_deref().unwrap_or(default_filter))?;
    match &cli.command {
        Command::Server(args) => commands::server::run(args.store.store.as_deref(), args).await,
        Command::Agent(args) => commands::agent::run(args).await,
        Command::Nodes(args) => commands::nodes::run(args).await,
        Command::Commands(args) => commands::node_commands::run(args).await,
        Command::Instances(args) => commands::instances::run(args).await,
        Command::Pools(args) => commands::pools::run(args).await,
        Command::Events(args) => commands::events::run(args).await,
        Command::Replicas(args) => commands::replicas::run(args).await,
        Command::Hosts(args) => commands::inventory::run_kind(InventoryKind::Host, args).await,
        Command::Vms(args) => commands::inventory::run_kind(InventoryKind::Vm, args).await,
        Command::Containers(args) => commands::inventory::run_kind(InventoryKind::Container, args).await,
        Command::Storage(args) => commands::inventory::run_kind(InventoryKind::Storage, args).await,
        Command::Workloads(args) => commands::inventory::run_kind(InventoryKind::Workload, args).await,
        Command::Services(args) => commands::inventory::run_kind(InventoryKind::Service, args).await,
        Command::Inventory(args) => commands::inventory::run(args).await,
        Command::Health(args) => commands::nodes::run_health(args).await,
        Command::Policy(args) => commands::policy::run(args).await,
        Command::Runbooks(args) => commands::ledger::run_runbooks(args).await,
        Command::Runs(args) => commands::ledger::run_runs(args).await,
        Command::Approvals(args) => commands::ledger::run_approvals(args).await,
        Command::Audit(args) => commands::ledger::run_audit(args).await,
        Command::Mcp(args) => commands::mcp::run(args).await,
        Command::Pricing(args) => commands::usage::run_pricing(args).await,
        Command::Usage(args) => commands::usage::run_usage(args).await,
        Command::Config(args) => commands::config::run(args),
        Command::Sim(args) => commands::sim::run(args.store.store.as_deref(), args).await,
        Command::Db(args) => commands::db::run(&args.store.location()?, args).await,
        Command::Bench(args) => commands::bench::run(&args.store.location()?, args.store.chosen(), args).await,
        Command::Dev(args) => commands::dev::run(args).await,
        Command::Version => {
            println!("bosun {} ({} {})", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH);
            Ok(ExitCode::SUCCESS)
        }
        Command::Debug(args) => commands::debug::run(&args.store.location()?, args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
