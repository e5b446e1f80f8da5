//! `bosun sim`: the simulator and load generator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bosun_core::SystemClock;
use bosun_server::Settings;
use bosun_sim::load::{self, LoadOptions, Target};
use bosun_sim::{Pace, RunOptions, Scenario};
use bosun_store::{Database, StoreLocation, StoreOptions};
use clap::{Args, Subcommand};

use super::remote::parse_duration;

#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub store: super::StoreArg,
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run a scenario (Navarch's format) against the whole control plane with simulated
    /// agents; writes report.json and report.html; exits 1 when an event or assertion fails.
    Run(RunArgs),
    /// Check a scenario file and print what it will do.
    Validate(ValidateArgs),
    /// Heartbeat-ingest benchmark: N agents register, then heartbeat with metrics; prints
    /// one JSON line (nodes, rps, p50_ms, p99_ms, max_ms, errors, server_cpu_pct, server_rss_mb).
    Load(LoadArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Seed for every random choice (overrides the scenario's `stress.seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Run simulated time as fast as the work allows (a 30-minute scenario in seconds).
    #[arg(long, conflicts_with = "time_scale")]
    virtual_time: bool,
    /// Run simulated time at X times real time (default 1: real time).
    #[arg(long, value_name = "X")]
    time_scale: Option<f64>,
    /// Where report.json, report.html and a copy of the scenario go
    /// (default sim-runs/<scenario>-<time>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Simulated time per step of the simulation.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    step: Duration,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// The scenario file.
    scenario: PathBuf,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 10_000)]
    nodes: u32,
    /// How often each agent heartbeats.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// How long heartbeats are measured (after every node registered).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Load a running server instead of starting one in this process.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Agent token, for --server with auth.
    #[arg(long, env = "BOSUN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Control-plane replicas started in this process on the one PostgreSQL store
    /// (--store postgres://...), electing a leader; the load is spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    replicas: u32,
    /// Kill the leading replica (as kill -9 would) this long into the measured phase, and
    /// report the failover (needs --replicas 2 or more).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    kill_leader_at: Option<Duration>,
    #[command(flatten)]
    tls: super::remote::TlsArgs,
}

pub async fn run(store_flag: Option<&str>, args: &SimArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        SimCommand::Load(load) => run_load(store_flag, load).await,
        SimCommand::Run(run) => run_scenario(store_flag, run).await,
        SimCommand::Validate(validate) => {
            let scenario = read_scenario(&validate.scenario)?;
            print!("{}", describe(&scenario));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_scenario(path: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Scenario::parse(&text).with_context(|| format!("{} is not a valid scenario", path.display()))
}

fn describe(scenario: &Scenario) -> String {
    let mut out = format!(
        "scenario {}: {} fleet nodes, {} events, {} assertions",
        scenario.name,
        scenario.fleet.len(),
        scenario.events.len(),
        scenario.assertions.len()
    );
    if let Some(stress) = &scenario.stress {
        let nodes = stress.fleet_gen.as_ref().map_or(0, |f| f.total_nodes);
        let rate = stress.chaos.as_ref().filter(|c| c.enabled).map_or(0.0, |c| c.failure_rate);
        out.push_str(&format!("; stress: {nodes} generated nodes, {rate} failures/min/1000 nodes"));
    }
    if scenario.config.is_some() {
        out.push_str("; with a control-plane config");
    }
    if scenario.replicas > 1 {
        out.push_str(&format!("; {} control-plane replicas", scenario.replicas));
    }
    out.push('\n');
    for event in scenario.timeline() {
        let line = format!("  {:>8} {} {}", bosun_config::duration::format(event.at.0), event.action, event.target);
        let params = event.params.describe();
        if params.is_empty() {
            out.push_str(line.trim_end());
        } else {
            out.push_str(&format!("{} {}", line.trim_end(), params.join(" ")));
        }
        out.push('\n');
    }
    out
}

async fn run_scenario(store_flag: Option<&str>, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = read_scenario(&args.scenario)?;
    let pace = match (args.virtual_time, args.time_scale) {
        (true, _) => Pace::Virtual,
        (false, Some(x)) if x.is_finite() && x > 0.0 => Pace::Scaled(x),
        (false, Some(x)) => anyhow::bail!("--time-scale {x} must be a number above 0"),
        (false, None) => Pace::Scaled(1.0),
    };
    if args.step.is_zero() {
        anyhow::bail!("--step must be above 0");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    // A fresh store: the default is a scratch SQLite file, never ./bosun.db.
    let location = match store_flag {
        Some(url) => StoreLocation::select(Some(url), |name| std::env::var(name).ok())?,
        None => StoreLocation::Sqlite { path: scratch.path().join("sim.db") },
    };
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => {
            let stem = args.scenario.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario");
            // 2026-11-23T101500: sortable and free of characters file systems dislike.
            let now: String =
                bosun_core::Clock::now(&SystemClock).to_rfc3339().chars().take(19).filter(|c| *c != ':').collect();
            PathBuf::from("sim-runs").join(format!("{stem}-{now}"))
        }
    };
    let options = RunOptions { pace, seed: args.seed, step: args.step, progress: true };
    // The simulation owns its runtime (a paused clock on one thread): run it on a thread
    // of its own, outside this one.
    let report = {
        let scenario = scenario.clone();
        std::thread::Builder::new()
            .name("bosun-sim".into())
            .spawn(move || run_scenario_blocking(&scenario, &location, &options))
            .context("starting the simulation thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the simulation panicked"))??
    };
    report.write_to(&out).with_context(|| format!("writing the report to {}", out.display()))?;
    std::fs::copy(&args.scenario, out.join("scenario.yaml")).ok();
    if let Some(stress) = &scenario.stress {
        // The scenario's own report names land in the run's directory (relative names, as
        // Navarch's scenarios write them) so that a run never writes outside --out.
        if let Some(path) = &stress.report_file {
            let path = out.join(path);
            std::fs::write(&path, report.to_json())
                .with_context(|| format!("writing stress.report_file {}", path.display()))?;
        }
        if let Some(path) = &stress.html_report_file {
            let path = out.join(path);
            std::fs::copy(out.join("report.html"), &path)
                .with_context(|| format!("writing stress.html_report_file {}", path.display()))?;
        }
        if stress.log_file.is_some() {
            eprintln!("note: stress.log_file is not written; use --log debug and redirect stderr");
        }
    }
    print!("{}", bosun_sim::report::console_summary(&report));
    println!("  report: {}", out.join("report.html").display());
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_scenario_blocking(
    scenario: &Scenario,
    location: &StoreLocation,
    options: &RunOptions,
) -> anyhow::Result<bosun_sim::Report> {
    Ok(bosun_sim::run_scenario(scenario, location, options)?)
}

async fn run_load(store_flag: Option<&str>, load: &LoadArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        nodes: load.nodes,
        heartbeat_interval: load.heartbeat_interval,
        duration: load.duration,
        concurrency: load.concurrency,
        connections: load.connections,
        token: load.token.clone(),
        tls: load.tls.client_tls(),
        kill_leader_at: load.kill_leader_at,
    };
    if load.kill_leader_at.is_some() && load.replicas < 2 {
        anyhow::bail!(
            "--kill-leader-at needs --replicas 2 or more: killing the only server leaves nothing to fail over to"
        );
    }
    if load.kill_leader_at.is_some_and(|at| at >= load.duration) {
        anyhow::bail!(
            "--kill-leader-at must fall inside the measured phase (--duration {})",
            bosun_config::duration::format(load.duration)
        );
    }
    if load.server.is_some() && load.replicas > 1 {
        anyhow::bail!("--replicas starts servers in this process; it cannot be combined with --server");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let target = match &load.server {
        Some(url) => Target::Remote { url: url.clone() },
        None => {
            // A fresh store: the default is a scratch SQLite file, never ./bosun.db.
            let location = match store_flag {
                Some(url) => StoreLocation::select(Some(url), |name| std::env::var(name).ok())?,
                None => StoreLocation::Sqlite { path: scratch.path().join("load.db") },
            };
            if load.replicas > 1 && location.backend() != bosun_store::Backend::Postgres {
                anyhow::bail!(
                    "--replicas {} needs a store several servers share: --store postgres://... ({} serves one server)",
                    load.replicas,
                    location.backend()
                );
            }
            // One store (a connection pool) per replica, as separate processes would have.
            let mut stores = Vec::new();
            for _ in 0..load.replicas {
                let database = Database::connect(&location).await?;
                database.migrate_up().await?;
                stores.push(database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?);
            }
            if stores[0].counts().await?.nodes > 0 {
                anyhow::bail!("{location} already holds nodes; load an empty store");
            }
            let mut settings = Settings::default();
            settings.heartbeat_interval = load.heartbeat_interval;
            // Registration of a large fleet takes a while: nobody is judged meanwhile.
            settings.heartbeat_timeout = settings.heartbeat_timeout.max(load.heartbeat_interval * 3);
            Target::InProcess { stores, settings: Box::new(settings) }
        }
    };
    let report = load::run(&options, target).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}
