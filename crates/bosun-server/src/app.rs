//! The state every handler and loop shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bosun_core::{Clock, NodeId, Timestamp};
use bosun_store::{NodeFilter, SharedStore, StoreError, all_pages, each_page};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::observed_store::{Fatal, ObservedStore, Sight};
use crate::policy::Policies;
use crate::settings::Settings;

#[derive(Debug)]
pub(crate) struct App {
    pub store: SharedStore,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub auth: Authenticator,
    pub fleet: Fleet,
    pub policies: Policies,
    pub metrics: Arc<Metrics>,
    pub sight: Arc<Sight>,
    /// Raised when the server cannot go on (its store was lost).
    pub fatal: Arc<Fatal>,
    /// Woken after every commit this server makes, and when the change follower read
    /// other servers' commits (WatchEvents waits on it).
    pub committed: Arc<Notify>,
    pub waiters: CommandWaiters,
    /// Cancelled when the server shuts down: long polls and watches return at once.
    pub shutdown: CancellationToken,
    /// Pools and their providers, when the server manages any.
    pub pools: Option<crate::pools::PoolsConfig>,
    /// Pool demand reported by schedulers.
    pub demand: crate::pools::DemandBoard,
    /// Machines their providers stopped listing, since when (soft state).
    pub missing_machines: crate::pools::MissingMachines,
    /// Where each machine's SSH bootstrap stands (soft state).
    pub bootstraps: Arc<crate::pools::bootstrap::Bootstraps>,
    /// One pool pass at a time: a background pass and an operator's scale must not both
    /// provision for the same gap.
    pub pool_pass: tokio::sync::Mutex<()>,
    /// Tells a workload scheduler about cordons, uncordons and drains.
    pub notifier: crate::notifier::Notifier,
    /// The API port's TLS, when configured (the interceptors need to know whether agents
    /// must present client certificates).
    pub tls: Option<Arc<crate::transport::tls::ReloadableTls>>,
    /// Failed authentications per peer address.
    pub auth_limit: crate::auth_limit::FailedAuthLimiter,
    /// Whether this replica may do leader-only work.
    pub leadership: Leadership,
    /// The epoch of this replica's last election won: the pool loop watches it and runs at
    /// once when it changes (a watch rather than a notification, so an election made before
    /// the loop subscribed, at start, does not cause a second pass).
    pub elected: tokio::sync::watch::Sender<u64>,
    /// Whether a change follower brings other replicas' commits into the fleet view (a
    /// store that signals its changes: PostgreSQL).
    pub follows_changes: bool,
    /// The runbook executor's cache of the runs it moves on.
    pub executor: crate::runs::Executor,
    /// Whether the MCP tools have their `tool_definitions` rows (set once they do).
    pub mcp_tools_defined: std::sync::atomic::AtomicBool,
    /// Bumped when a run is started or approved: the executor's loop runs at once.
    pub run_wake: tokio::sync::watch::Sender<u64>,
    /// The configured inventory sources.
    pub inventory: crate::inventory::Sources,
    /// The declared inventory, when configured, and its last drift report.
    pub drift: Option<crate::drift::DriftCheck>,
}

/// Who does leader-only work: pool reconciliation, liveness judgement, timeouts,
/// retention.
#[derive(Debug)]
pub(crate) enum Leadership {
    /// The only server there is, without a lease (tests and the simulator).
    Sole,
    /// Elected through the store's leader lease.
    Elected(Arc<crate::election::Elector>),
}

impl App {
    /// True while this replica may do leader-only work.
    pub(crate) fn is_leader(&self) -> bool {
        match &self.leadership {
            Leadership::Sole => true,
            Leadership::Elected(elector) => elector.fence(self.now()).is_some(),
        }
    }

    /// The fence leader-only work carries (none for a sole server).
    pub(crate) fn fence(&self) -> Option<bosun_core::Fence> {
        match &self.leadership {
            Leadership::Sole => None,
            Leadership::Elected(elector) => elector.fence(self.now()),
        }
    }

    /// Runs leader-only `work` if this replica leads, with its writes fenced; `None` if it
    /// does not lead.
    pub(crate) async fn as_leader<F: Future>(&self, work: F) -> Option<F::Output> {
        if !self.is_leader() {
            return None;
        }
        Some(crate::election::with_fence(self.fence(), work).await)
    }

    /// Whether other replicas may share the store (they register nodes and flush
    /// heartbeats this replica's fleet view has not seen).
    pub(crate) fn has_peers(&self) -> bool {
        matches!(&self.leadership, Leadership::Elected(elector) if !elector.exclusive())
    }

    /// True until an elected leader has led for `wait` (a sole server never waits).
    pub(crate) fn newly_elected(&self, wait: std::time::Duration) -> bool {
        match &self.leadership {
            Leadership::Sole => false,
            Leadership::Elected(elector) => {
                let now = self.now();
                elector.leading_since(now).is_none_or(|since| now.saturating_since(since) < wait)
            }
        }
    }
}

impl App {
    pub(crate) async fn start(
        store: SharedStore,
        clock: Arc<dyn Clock>,
        settings: Settings,
        shutdown: CancellationToken,
        pools: Option<crate::pools::PoolsConfig>,
        tls: Option<Arc<crate::transport::tls::ReloadableTls>>,
        follows_changes: bool,
    ) -> Result<Arc<App>, crate::StartError> {
        let metrics = Arc::new(Metrics::new());
        let now = clock.now();
        let sight = Arc::new(Sight::new(now, settings.startup_grace));
        let committed = Arc::new(Notify::new());
        let fatal = Arc::new(Fatal::default());
        let store: SharedStore = Arc::new(ObservedStore::new(
            store,
            Arc::clone(&metrics),
            Arc::clone(&sight),
            Arc::clone(&clock),
            Arc::clone(&committed),
            Arc::clone(&fatal),
        ));
        let policies = Policies::load(settings.health_policy.clone(), &store).await?;
        let auth = Authenticator::new(settings.auth.clone());
        if auth.is_open() {
            tracing::warn!("no auth tokens are configured: every caller may do everything (configure auth.tokens)");
        }
        let shared_agent_tokens =
            settings.auth.tokens.iter().any(|t| t.role == bosun_config::Role::Agent && t.node.is_none());
        if shared_agent_tokens && !auth.guards_reregistration() {
            tracing::warn!(
                "node tokens derive from the shared agent token: whoever holds it can act for any node; \
                 set auth.node_token_key so a registered node alone can act for itself"
            );
        }
        let notifier = crate::notifier::Notifier::new(&settings.notifier, settings.notifier_retry)
            .map_err(crate::StartError::Notifier)?;
        let inventory =
            crate::inventory::Sources::new(&settings.inventory_sources).map_err(crate::StartError::Inventory)?;
        let declaration = settings.inventory_declaration.clone();
        let leadership = match &settings.election {
            None => Leadership::Sole,
            Some(election) => {
                Leadership::Elected(Arc::new(crate::election::Elector::new(election.clone(), clock.now())))
            }
        };
        let app = Arc::new(App {
            store,
            clock: Arc::clone(&clock),
            auth,
            fleet: Fleet::default(),
            policies,
            metrics,
            sight,
            fatal,
            committed,
            waiters: CommandWaiters::default(),
            shutdown,
            settings,
            pools,
            demand: crate::pools::DemandBoard::default(),
            missing_machines: crate::pools::MissingMachines::default(),
            bootstraps: Arc::default(),
            pool_pass: tokio::sync::Mutex::new(()),
            notifier,
            tls,
            auth_limit: crate::auth_limit::FailedAuthLimiter::new(Arc::clone(&clock)),
            leadership,
            elected: tokio::sync::watch::Sender::new(0),
            follows_changes,
            executor: crate::runs::Executor::default(),
            mcp_tools_defined: std::sync::atomic::AtomicBool::new(false),
            run_wake: tokio::sync::watch::Sender::new(0),
            inventory,
            drift: declaration.map(crate::drift::DriftCheck::new),
        });
        app.reload_fleet().await.map_err(crate::StartError::Store)?;
        tracing::info!(nodes = app.fleet.len(), "fleet loaded");
        if let Some(pools) = &app.pools {
            crate::pools::sync_specs(&app, pools).await.map_err(crate::StartError::Store)?;
        }
        Ok(app)
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Re-reads every node into the fleet view.
    pub(crate) async fn reload_fleet(&self) -> Result<(), StoreError> {
        let mark = self.fleet.mark();
        let filter = &NodeFilter::default();
        let store = &self.store;
        let nodes = all_pages(|page| async move { store.list_nodes(filter, &page).await }).await?;
        self.fleet.load(&nodes, mark);
        Ok(())
    }

    /// Brings in what other replicas wrote to the store: the signs of life they heard,
    /// and (when no change follower brings them) their node records.
    pub(crate) async fn learn_from_peers(&self) -> Result<(), StoreError> {
        if self.follows_changes { self.refresh_liveness().await } else { self.reload_fleet().await }
    }

    /// Takes in the signs of life every replica wrote to the store: with peers, a node
    /// that heartbeats to another replica is heard here only this way. Reads (node, time)
    /// pairs a page at a time, not whole nodes: at 100,000 nodes on PostgreSQL a reload of
    /// the fleet took 1.3-2 s of the machine's cores, every liveness pass, and delayed
    /// heartbeats meanwhile. Node records themselves arrive through the change follower.
    async fn refresh_liveness(&self) -> Result<(), StoreError> {
        let store = &self.store;
        // A page at a time: the view's lock is held for one page of lookups, not the fleet's.
        each_page(|page| async move { store.list_heartbeats(&page).await }, |heard| self.fleet.heard_elsewhere(&heard))
            .await
    }
}

/// Per-node wake-ups for long-polling agents.
#[derive(Debug, Default)]
pub(crate) struct CommandWaiters {
    nodes: Mutex<HashMap<NodeId, Arc<Notify>>>,
}

impl CommandWaiters {
    pub(crate) fn get(&self, node: &NodeId) -> Arc<Notify> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(nodes.entry(node.clone()).or_default())
    }

    /// Wakes the node's waiting poll, if any.
    pub(crate) fn wake(&self, node: &NodeId) {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = nodes.get(node) {
            notify.notify_waiters();
        }
    }

    pub(crate) fn forget(&self, node: &NodeId) {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
    }
}
