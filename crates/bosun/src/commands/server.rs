//! `bosun server`: the control plane.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use bosun_agent::ControlPlane;
use bosun_api::AgentClient;
use bosun_config::{Config, ProviderConfig, Role};
use bosun_core::ReplicaId;
use bosun_core::SystemClock;
use bosun_provider::fake::{ControlPlaneFactory, FakeProvider, FakeSettings};
use bosun_provider::{Bootstrap, Provider};
use bosun_server::{ElectionSettings, PoolMachines, PoolsConfig, Server, Settings};
use bosun_store::server_lock::ServerLock;
use bosun_store::{Database, StoreLocation, StoreOptions};
use clap::Args;
use tokio::net::TcpListener;

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub store: super::StoreArg,
    /// Configuration file (Navarch's format plus bosun's sections); defaults apply without one.
    #[arg(long, short, env = "BOSUN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:50051 (default: server.address from the configuration, :50051).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Refuse to start on an out-of-date schema instead of migrating it.
    #[arg(long)]
    no_migrate: bool,
    /// This replica's name among the servers sharing a PostgreSQL store (default: the host
    /// name and a random suffix). Replicas elect one leader through the store.
    #[arg(long, env = "BOSUN_REPLICA_ID", value_name = "ID")]
    replica_id: Option<ReplicaId>,
}

/// Where the server keeps its state: `--store`/`BOSUN_STORE`, then the configuration's
/// `store.url`, then `STORE_TYPE` + `DATABASE_URL`, then the default SQLite file.
fn store_location(flag: Option<&str>, config: &Config) -> anyhow::Result<StoreLocation> {
    let env = |name: &str| std::env::var(name).ok();
    Ok(match (flag, &config.store.url) {
        (Some(url), _) => StoreLocation::select(Some(url), env)?,
        (None, Some(url)) => StoreLocation::parse(url.expose()).context("store.url in the configuration")?,
        (None, None) => StoreLocation::select(None, env)?,
    })
}

pub async fn run(store_flag: Option<&str>, args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let location = store_location(store_flag, &config)?;
    let address = args.listen.clone().unwrap_or_else(|| config.server.listen_address());
    let database = Database::connect(&location).await?;
    // One server per SQLite store, taken before migrations or any pass write to the file
    // (connecting has only opened it and set its journal mode).
    let host = bosun_agent::procfs::detect_metadata().hostname;
    let mut serving_alone = match location.sqlite_path() {
        Some(path) => Some(ServerLock::acquire(path, &format!("pid {} on {host}", std::process::id()))?),
        None => None,
    };
    // The memory store has no schema to migrate: it starts empty and current.
    if args.no_migrate || location.backend() == bosun_store::Backend::Memory {
        database.ensure_current().await?;
    } else {
        let applied = database.migrate_up().await?;
        if !applied.is_empty() {
            tracing::info!(migrations = applied.len(), store = %location, "schema migrated");
        }
    }
    let store = database.into_store(StoreOptions::new(Arc::new(SystemClock))).await?;
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} (in use? choose another with --listen)"))?;
    let local = listener.local_addr().context("reading the listen address")?;
    if let Some(lock) = serving_alone.as_mut()
        && let Err(error) = lock.describe(&format!("pid {} on {host}, listening on {local}", std::process::id()))
    {
        tracing::warn!(%error, path = %lock.path().display(), "cannot describe this server in its lock file");
    }
    let pools = pools_config(&config, &format!("http://127.0.0.1:{}", local.port()))?;
    let mut settings = Settings::from_config(&config);
    let mut election =
        ElectionSettings::new(args.replica_id.clone().unwrap_or_else(ElectionSettings::default_replica_id));
    // A SQLite file has one server (the lock above) and memory one process: the lease is
    // theirs at once, whoever held it before this start.
    election.exclusive = location.backend() != bosun_store::Backend::Postgres;
    // Listening on every interface: the configured external address is where clients
    // reach this replica (`bosun replicas list`).
    if local.ip().is_unspecified() {
        election.advertise = Some(config.server.external_address.clone());
    }
    tracing::info!(replica = %election.replica_id, "replica identity");
    settings.election = Some(election);
    let server = Server::start_with_pools(listener, store, Arc::new(SystemClock), settings, true, pools).await?;
    eprintln!("bosun server listening on {} with store {location}", server.url());
    let failure = tokio::select! {
        () = shutdown_signal() => None,
        reason = server.failed() => Some(reason),
    };
    eprintln!("shutting down: finishing requests and flushing heartbeats");
    let report = server.shutdown().await;
    if let Some(reason) = failure {
        anyhow::bail!("the server stopped: {reason}");
    }
    Ok(if report.timed_out { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The pools of the configuration and the providers they use, or `None` without pools.
/// Fake machines (in this process) and process machines (children of it) register over
/// loopback (`local_url`); cloud machines are told `server.external_address`.
fn pools_config(config: &Config, local_url: &str) -> anyhow::Result<Option<PoolsConfig>> {
    if config.pools.is_empty() {
        return Ok(None);
    }
    let token = config
        .auth
        .tokens
        .iter()
        .find(|t| t.role == Role::Agent && t.node.is_none())
        .map(|t| t.secret.expose().to_owned());
    if token.is_none() && !config.auth.tokens.is_empty() {
        anyhow::bail!(
            "pools need an agent token (auth.tokens with role: agent and no node) for their machines to register"
        );
    }
    let mut providers: std::collections::BTreeMap<String, Arc<dyn Provider>> = std::collections::BTreeMap::new();
    for (name, provider) in &config.providers {
        let built: Arc<dyn Provider> = match provider {
            ProviderConfig::Fake { gpu_count } => {
                let url = local_url.to_owned();
                let token = token.clone();
                let factory: ControlPlaneFactory = Arc::new(move |_| {
                    let client = AgentClient::new(&url, token.clone()).map_err(|e| e.to_string())?;
                    Ok(Arc::new(client) as Arc<dyn ControlPlane>)
                });
                let settings = FakeSettings { gpu_count: *gpu_count, ..FakeSettings::default() };
                Arc::new(FakeProvider::new(name, settings, Arc::new(SystemClock), factory))
            }
            ProviderConfig::Process { gpu_count } => {
                let binary = std::env::current_exe().context("finding the bosun binary for the process provider")?;
                Arc::new(
                    bosun_provider::process::ProcessProvider::new(name, binary, *gpu_count).with_server_url(local_url),
                )
            }
            cloud => Arc::from(
                bosun_provider::cloud::from_config(name, cloud, |var| std::env::var(var).ok())
                    .with_context(|| format!("providers.{name}"))?,
            ),
        };
        providers.insert(name.clone(), built);
    }
    Ok(Some(PoolsConfig {
        pools: config.pool_specs(),
        providers,
        bootstrap: Bootstrap { server_url: config.server.external_address.clone(), token },
        machines: PoolMachines::from_config(config),
    }))
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stop with Ctrl-C");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
