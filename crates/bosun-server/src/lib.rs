//! bosun's control plane.
//!
//! [`Server::start`] loads the fleet from the store, starts the background loops and
//! serves AgentService, AdminService, `/healthz`, `/readyz`, `/metrics` and the dashboard
//! (`/ui/`) on one port
//! until [`ServerHandle::shutdown`].
//!
//! Layout:
//! - [`rpc`] handlers: authenticate, validate and convert, then call the operations.
//! - `nodes`, `commands`, `instances`: the operations (registration, health reports,
//!   liveness, status changes, the command lifecycle, instance timeouts), each a function
//!   of the shared [`app::App`], so tests and loops call them directly.
//! - `workloads`: agents' GPU workloads as inventory records (key, digest), handed to
//!   `inventory_agent::sync_node_workloads`, which syncs them as the node's scope of the
//!   `agents` inventory source.
//! - `inventory`: the configured inventory sources, read and synced by the leader.
//! - `drift`: after each sync, the leader's comparison of the declared inventory
//!   (`inventory.declaration`) with the synced one: a `drift` change record when it
//!   changed, and the `bosun_inventory_drift` gauges.
//! - `inventory_services`: the configured services, synced by the leader as bosun's own
//!   `services` source, and a service's members, resolved when it is read.
//! - `fleet`: the in-memory liveness view and the soft-state buffer.
//! - `loops`: timers that run the periodic passes.
//! - `change_follower`: what other replicas on the same database commit, dispatched here.
//! - `ui`: the web dashboard at `/ui/` (server-rendered pages, sign-in, node actions, live node pages).
//! - `watch`: following the change log, for WatchEvents and the dashboard's live pages.
//! - `auth`, `policy`, `metrics`, `observed_store`, `http`, `settings`.
//!
//! **Architecture Invariant:** every change of hard state goes through the store's
//! `commit`, with compare-and-set, before anything answers; the in-memory fleet view is a
//! cache rebuilt from the store at start and on every retention pass. A server killed at
//! any moment loses at most the heartbeats of the last flush interval, which liveness
//! forgives through the start-up grace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{Clock, NodeId};
use bosun_store::{SharedStore, StoreError};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

mod app;
mod auth;
mod auth_limit;
mod change_follower;
mod commands;
mod drift;
mod election;
mod error;
mod exposition;
mod fleet;
mod http;
mod inproc;
mod instances;
mod inventory;
mod inventory_agent;
mod inventory_services;
mod inventory_tasks;
mod loops;
mod mcp;
mod metrics;
mod nodes;
mod notifier;
mod observed_store;
mod policy;
mod pools;
mod remediation;
mod rpc;
mod runs;
mod settings;
mod transport;
mod ui;
mod watch;
mod workloads;

pub use election::{ElectionSettings, Transition};
pub use notifier::RetryPolicy as NotifierRetry;
pub use policy::PolicyLoadError;
pub use pools::{PoolMachines, PoolsConfig};
pub use settings::Settings;
pub use transport::tls::TlsError;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error("cannot load the fleet from the store: {0}")]
    Store(StoreError),
    #[error("cannot serve on {address}: {cause}")]
    Listen { address: String, cause: std::io::Error },
    #[error("cannot set up the notifier: {0}")]
    Notifier(String),
    #[error("cannot set up TLS (api.tls): {0}")]
    Tls(#[from] TlsError),
    #[error("cannot set up the inventory: {0}")]
    Inventory(String),
}

/// A periodic pass that failed (run by hand through [`ServerHandle`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PassError(String);

impl From<error::ApiError> for PassError {
    fn from(error: error::ApiError) -> Self {
        PassError(error.to_string())
    }
}

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Requests still running when the shutdown timeout ran out were cut off.
    pub timed_out: bool,
    /// Heartbeats written by the final flush.
    pub flushed_heartbeats: usize,
}

/// Starts servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Serves on `listener` (bind port 0 for tests) until [`ServerHandle::shutdown`].
    /// `background_loops: false` leaves the periodic passes to the caller (tests with a
    /// fake clock drive them through the handle).
    pub async fn start(
        listener: TcpListener,
        store: SharedStore,
        clock: Arc<dyn Clock>,
        settings: Settings,
        background_loops: bool,
    ) -> Result<ServerHandle, StartError> {
        Self::start_with_pools(listener, store, clock, settings, background_loops, None).await
    }

    /// [`Server::start`] managing `pools` through their providers.
    pub async fn start_with_pools(
        listener: TcpListener,
        store: SharedStore,
        clock: Arc<dyn Clock>,
        settings: Settings,
        background_loops: bool,
        pools: Option<PoolsConfig>,
    ) -> Result<ServerHandle, StartError> {
        let local_addr = listener
            .local_addr()
            .map_err(|cause| StartError::Listen { address: "the given listener".to_owned(), cause })?;
        let shutdown = CancellationToken::new();
        let tls = settings.tls.clone().map(transport::tls::ReloadableTls::load).transpose()?.map(Arc::new);
        let mut settings = settings;
        if let Some(election) = settings.election.as_mut()
            && election.advertise.is_none()
        {
            let scheme = if tls.is_some() { "https" } else { "http" };
            election.advertise = Some(format!("{scheme}://{local_addr}"));
        }
        // Before the fleet view is loaded: what other replicas commit after that load
        // reaches the view through the follower.
        let subscription = change_follower::ChangeFollower::subscribe(&store).await.map_err(StartError::Store)?;
        let follows_changes = subscription.is_some();
        let app =
            app::App::start(store, clock, settings, shutdown.clone(), pools, tls.clone(), follows_changes).await?;
        // Every MCP tool has its row before the first `tools/list`.
        if app.settings.mcp.enabled
            && let Err(error) = mcp::tools::ensure_defined(&app).await
        {
            tracing::warn!(%error, "the MCP tools could not be defined in the store; tools/list lists none until they are");
        }
        let mut loops = JoinSet::new();
        // Before serving: a request may wait for what another replica commits next.
        let followed = subscription.map(|subscription| {
            let (follower, followed) = change_follower::ChangeFollower::start(&app, subscription);
            loops.spawn(follower.run());
            followed
        });
        if background_loops {
            // Elect before the first passes run (the pool pass runs at once): a sole server
            // on SQLite leads from its first pass, not one interval later.
            loops::elect(&app).await;
            loops::spawn(&app, &shutdown, &mut loops);
        }
        if let Some(tls) = &tls {
            loops.spawn({
                let watch = Arc::clone(tls).watch(shutdown.clone());
                async move {
                    let _ = watch.await;
                }
            });
        }
        warn_about_plain_http(&app, local_addr);
        let file_limit = transport::raise_file_limit();
        let transport = transport::Transport {
            tls,
            max_connections: transport::effective_max_connections(app.settings.max_connections, file_limit),
            header_read_timeout: app.settings.header_read_timeout,
            idle_timeout: app.settings.idle_timeout,
            max_concurrent_streams: app.settings.max_concurrent_streams,
        };
        let router = http::router(Arc::clone(&app));
        let killed = CancellationToken::new();
        let serving = tokio::spawn(transport::serve(
            listener,
            router,
            transport.clone(),
            Arc::clone(&app.metrics),
            shutdown.clone(),
            killed.clone(),
        ));
        tracing::info!(
            address = %local_addr,
            backend = %app.store.backend(),
            tls = transport.tls.is_some(),
            max_connections = transport.max_connections,
            "bosun server listening"
        );
        Ok(ServerHandle { local_addr, app, shutdown, killed, serving, loops, tls: transport.tls.is_some(), followed })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    app: Arc<app::App>,
    shutdown: CancellationToken,
    /// Drops every connection at once ([`ServerHandle::kill`]).
    killed: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    loops: JoinSet<()>,
    tls: bool,
    /// How far the change follower dispatched the change log, when one runs.
    followed: Option<tokio::sync::watch::Receiver<u64>>,
}

/// Bearer tokens over plain HTTP can be read by anyone on the network path: say so when
/// the server has tokens, no TLS, and listens beyond loopback.
fn warn_about_plain_http(app: &app::App, address: SocketAddr) {
    if app.settings.tls.is_none() && !app.auth.is_open() && !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "serving bearer tokens over plain HTTP on a non-loopback address: anyone on the network path can read \
             them; configure api.tls (cert_file, key_file)"
        );
    }
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<address>` (or `https://`), for clients.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops the server as `kill -9` stops its process, for failover tests and the
    /// simulator: connections drop at once, loops stop mid-pass, buffered heartbeats are
    /// lost and the leader lease is not released (a follower waits it out). The store is
    /// left as the crash left it; its connections close when the last handler lets go.
    pub async fn kill(mut self) {
        self.killed.cancel();
        // Long polls and watches waiting on this server return at once (a dead process
        // answers nothing; their connections are gone anyway).
        self.shutdown.cancel();
        self.serving.abort();
        self.loops.abort_all();
        let _ = (&mut self.serving).await;
        while self.loops.join_next().await.is_some() {}
        tracing::info!("bosun server killed");
    }

    /// Stops accepting requests, lets in-flight ones finish (long polls and watches return
    /// at once) for at most the shutdown timeout, stops the loops, writes the buffered
    /// heartbeats and closes the store.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.shutdown.cancel();
        let timeout = self.app.settings.shutdown_timeout;
        let timed_out = match tokio::time::timeout(timeout, &mut self.serving).await {
            Ok(Ok(Ok(()))) => false,
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "the listener failed while shutting down");
                false
            }
            Ok(Err(join)) => {
                tracing::error!(error = %join, "the HTTP server task failed");
                false
            }
            Err(_) => {
                tracing::warn!(timeout = ?timeout, "requests still running at the shutdown timeout were cut off");
                self.serving.abort();
                true
            }
        };
        while self.loops.join_next().await.is_some() {}
        let flushed_heartbeats = match loops::flush_soft_state(&self.app).await {
            Ok(count) => count,
            Err(error) => {
                tracing::error!(%error, "the final heartbeat flush failed; liveness forgives the gap at the next start");
                0
            }
        };
        // Last: the leader's work of this epoch is written; a follower takes over at its
        // next look instead of waiting out the lease.
        if let app::Leadership::Elected(elector) = &self.app.leadership {
            elector.release(&self.app.store).await;
        }
        self.app.store.close().await;
        tracing::info!(flushed_heartbeats, "bosun server stopped");
        ShutdownReport { timed_out, flushed_heartbeats }
    }

    /// Resolves, with the reason, when the server cannot go on: its store was lost (the
    /// SQLite file deleted or replaced). The caller should shut it down and exit non-zero.
    pub async fn failed(&self) -> String {
        self.app.fatal.wait().await
    }

    /// Re-reads the TLS certificate, key and client CA now (as SIGHUP does). Without TLS
    /// there is nothing to reload.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.app.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Writes buffered heartbeats and metric samples now. Returns how many heartbeats.
    pub async fn flush(&self) -> Result<usize, PassError> {
        Ok(loops::flush_soft_state(&self.app).await?)
    }

    /// One election step (tests drive elections with a fake clock); `None` for a sole
    /// server.
    pub async fn elect(&self) -> Option<Transition> {
        loops::elect(&self.app).await
    }

    /// How long until this follower may take over the lease it watches (its election loop
    /// looks again exactly then); `None` when it leads, watches nothing, or is a sole server.
    pub fn takeover_due_in(&self) -> Option<std::time::Duration> {
        loops::takeover_due_in(&self.app)
    }

    /// Whether this replica may do leader-only work now.
    pub fn is_leader(&self) -> bool {
        self.app.is_leader()
    }

    /// Pool reconciliation passes this server has run as the leader (`bosun_pool_passes_total`).
    pub fn pool_passes(&self) -> u64 {
        self.app.metrics.pool_passes()
    }

    /// Judges liveness now, if this replica leads. Returns the nodes marked UNHEALTHY.
    pub async fn judge_liveness(&self) -> Result<Vec<NodeId>, PassError> {
        Ok(self.app.as_leader(nodes::judge_liveness(&self.app)).await.unwrap_or(Ok(Vec::new()))?)
    }

    /// Expires commands, fails unregistered instances and re-reads the stored policy now.
    pub async fn janitor(&self) -> Result<(), PassError> {
        Ok(loops::janitor(&self.app).await?)
    }

    /// Waits until this server has acted on every change up to sequence number `seq`,
    /// whichever server committed it (woken long polls and watches, re-read the policy).
    /// At once on a store only this server writes to (memory, SQLite), where every commit
    /// is its own and acted on as it is made; at once on shutdown.
    pub async fn followed_through(&self, seq: u64) {
        let Some(followed) = &self.followed else { return };
        let mut followed = followed.clone();
        tokio::select! {
            _ = followed.wait_for(|through| *through >= seq) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Reconciles every pool now (when this replica leads).
    pub async fn reconcile_pools(&self) -> Result<(), PassError> {
        Ok(self.app.as_leader(pools::reconcile_all(&self.app)).await.unwrap_or(Ok(()))?)
    }

    /// Waits until the SSH bootstrap attempts started by past pool passes have finished.
    pub async fn bootstrap_settled(&self) {
        self.app.bootstraps.settled().await;
    }

    /// Moves every active runbook run on now (when this replica leads). Returns how many
    /// runs were active.
    pub async fn advance_runs(&self) -> Result<usize, PassError> {
        Ok(self.app.as_leader(runs::executor::advance_all(&self.app)).await.unwrap_or(Ok(0))?)
    }

    /// Syncs every configured inventory source now, due or not, and the configured
    /// services (when this replica leads). Returns how many sources were read, the
    /// services' counting when synced; a source that could not be read counts, with its
    /// error recorded in the store.
    pub async fn sync_inventory(&self) -> Result<usize, PassError> {
        let app = &self.app;
        let work = async {
            for source in &app.inventory.entries {
                inventory::sync_source(app, source).await?;
            }
            let services = inventory_services::sync(app).await?;
            Ok::<_, error::ApiError>(app.inventory.entries.len() + usize::from(services.is_some()))
        };
        Ok(app.as_leader(work).await.unwrap_or(Ok(0))?)
    }

    /// Applies retention and re-reads the fleet now.
    pub async fn retention(&self) -> Result<(), PassError> {
        Ok(loops::retention(&self.app).await?)
    }

    /// The store the server writes through (for embedders and tests that seed records the
    /// API does not create, such as instances before the pools reconciler exists).
    pub fn store(&self) -> SharedStore {
        std::sync::Arc::clone(&self.app.store)
    }

    /// The shutdown timeout, so callers can bound their own wait.
    pub fn shutdown_timeout(&self) -> Duration {
        self.app.settings.shutdown_timeout
    }
}
