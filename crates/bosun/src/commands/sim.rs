//! `bosun sim`: the simulator and load generator.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bosun_core::SystemClock;
use bosun_server::Settings;
use bosun_sim::load::{self, LoadOptions, Target};
use bosun_store::{Database, StoreLocation, StoreOptions};
use clap::{Args, Subcommand};

use super::remote::parse_duration;

#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Heartbeat-ingest benchmark: N agents register, then heartbeat with metrics; prints
    /// one JSON line (nodes, rps, p50_ms, p99_ms, max_ms, errors, server_cpu_pct, server_rss_mb).
    Load(LoadArgs),
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[arg(long, default_value_t = 10_000)]
    nodes: u32,
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
}

pub async fn run(store_flag: Option<&str>, args: &SimArgs) -> anyhow::Result<ExitCode> {
    let SimCommand::Load(load) = &args.command;
    let options = LoadOptions {
        nodes: load.nodes,
        heartbeat_interval: load.heartbeat_interval,
        duration: load.duration,
        concurrency: load.concurrency,
        connections: load.connections,
        token: load.token.clone(),
    };
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let target = match &load.server {
        Some(url) => Target::Remote { url: url.clone() },
        None => {
            // A fresh store: the default is a scratch SQLite file, never ./bosun.db.
            let location = match store_flag {
                Some(url) => StoreLocation::select(Some(url), |name| std::env::var(name).ok())?,
                None => StoreLocation::Sqlite { path: scratch.path().join("load.db") },
            };
            let database = Database::connect(&location).await?;
            database.migrate_up().await?;
            let store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
            if store.counts().await?.nodes > 0 {
                anyhow::bail!("{location} already holds nodes; load an empty store");
            }
            let mut settings = Settings::default();
            settings.heartbeat_interval = load.heartbeat_interval;
            // Registration of a large fleet takes a while: nobody is judged meanwhile.
            settings.heartbeat_timeout = settings.heartbeat_timeout.max(load.heartbeat_interval * 3);
            Target::InProcess { store, settings: Box::new(settings) }
        }
    };
    let report = load::run(&options, target).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}
