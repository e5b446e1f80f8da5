//! bosun's control plane.
//!
//! [`Server::start`] loads the fleet from the store, starts the background loops and
//! serves AgentService, AdminService, `/healthz`, `/readyz` and `/metrics` on one port
//! until [`ServerHandle::shutdown`].
//!
//! Layout:
//! - [`rpc`] handlers: authenticate, validate and convert, then call the operations.
//! - `nodes`, `commands`, `instances`: the operations (registration, health reports,
//!   liveness, status changes, the command lifecycle, instance timeouts), each a function
//!   of the shared [`app::App`], so tests and loops call them directly.
//! - `fleet`: the in-memory liveness view and the soft-state buffer.
//! - `loops`: timers that run the periodic passes.
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
mod commands;
mod error;
mod exposition;
mod fleet;
mod http;
mod instances;
mod loops;
mod metrics;
mod nodes;
mod notifier;
mod observed_store;
mod policy;
mod pools;
mod remediation;
mod rpc;
mod settings;

pub use notifier::RetryPolicy as NotifierRetry;
pub use policy::PolicyLoadError;
pub use pools::{AlwaysLeader, Leadership, PoolMachines, PoolsConfig};
pub use settings::Settings;

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
        let app = app::App::start(store, clock, settings, shutdown.clone(), pools).await?;
        let mut loops = JoinSet::new();
        if background_loops {
            loops::spawn(&app, &shutdown, &mut loops);
        }
        let router = http::router(Arc::clone(&app));
        // TCP_NODELAY: a response written in more than one segment (HTTP/2 headers, data,
        // trailers) otherwise waits for the client's delayed ACK, 40 ms on Linux, on every
        // call whose answer spans segments (measured by the simulator: ReportHealth p50
        // 43 ms before, under 1 ms after).
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
        let stop = shutdown.clone();
        let serving =
            tokio::spawn(
                async move { axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await },
            );
        tracing::info!(address = %local_addr, backend = %app.store.backend(), "bosun server listening");
        Ok(ServerHandle { local_addr, app, shutdown, serving, loops })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    app: Arc<app::App>,
    shutdown: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    loops: JoinSet<()>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<address>`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
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
        self.app.store.close().await;
        tracing::info!(flushed_heartbeats, "bosun server stopped");
        ShutdownReport { timed_out, flushed_heartbeats }
    }

    /// Writes buffered heartbeats and metric samples now. Returns how many heartbeats.
    pub async fn flush(&self) -> Result<usize, PassError> {
        Ok(loops::flush_soft_state(&self.app).await?)
    }

    /// Judges liveness now. Returns the nodes marked UNHEALTHY.
    pub async fn judge_liveness(&self) -> Result<Vec<NodeId>, PassError> {
        Ok(nodes::judge_liveness(&self.app).await?)
    }

    /// Expires commands, fails unregistered instances and re-reads the stored policy now.
    pub async fn janitor(&self) -> Result<(), PassError> {
        Ok(loops::janitor(&self.app).await?)
    }

    /// Reconciles every pool now (when this replica leads).
    pub async fn reconcile_pools(&self) -> Result<(), PassError> {
        Ok(pools::reconcile_all(&self.app).await?)
    }

    /// Waits until the SSH bootstrap attempts started by past pool passes have finished.
    pub async fn bootstrap_settled(&self) {
        self.app.bootstraps.settled().await;
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
