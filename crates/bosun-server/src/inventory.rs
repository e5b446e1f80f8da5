//! The inventory's configured sources (Proxmox VE clusters under `inventory.sources`):
//! the leader reads each one every `interval` and syncs what it read in one transaction
//! (`Write::SyncInventory`). A read that fails (a refused token, a timeout, a malformed
//! answer) is recorded as the source's error: its records stay as last read and nothing
//! is marked gone. The tasks a read shows go to the operations ledger
//! ([`crate::inventory_tasks`]).
//!
//! Before a read is synced, its hosts and VMs are linked to bosun's nodes
//! ([`NodeLinks`]): a VM a pool's Proxmox provider cloned to the node its instance's agent
//! registered as, any other VM and each host to the one node whose host name is its name.

use std::sync::Mutex;
use std::time::Duration;

use bosun_config::{InventorySource, InventorySourceKind, ProviderType};
use bosun_core::inventory::{NodeLinks, ProvisionedVm, SourceSync, SourceType, SyncCounts, SyncScope};
use bosun_core::{Actor, NodeId, SourceName, Timestamp};
use bosun_provider::proxmox::{ProxmoxClient, parse_provider_instance_id};
use bosun_store::{InstanceFilter, NodeFilter, StoreError, WriteBatch, WriteOutcome, each_page};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::inventory_tasks::{self, RecordedTasks};

/// The actor the syncs are recorded under.
const ACTOR: &str = "inventory";
/// How often the loop looks for a source that is due.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// One configured source and when it is next due.
#[derive(Debug)]
pub(crate) struct Source {
    pub name: SourceName,
    pub interval: Duration,
    /// The API's address, for error messages (never carries the secret).
    pub url: String,
    client: ProxmoxClient,
    next_due: Mutex<Option<Timestamp>>,
    /// Its tasks already in the ledger as finished runs.
    tasks: RecordedTasks,
}

/// Every configured source.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub entries: Vec<Source>,
}

impl Sources {
    /// Connects a client to each source; a secret that cannot be read stops the start,
    /// naming where it was looked for.
    pub fn new(configured: &[InventorySource]) -> Result<Self, String> {
        let entries = configured
            .iter()
            .map(|source| {
                let InventorySourceKind::Proxmox(endpoint) = &source.kind;
                let client = ProxmoxClient::from_endpoint(source.name.as_str(), endpoint)
                    .map_err(|e| format!("inventory source {}: {e}", source.name))?;
                Ok(Source {
                    name: source.name.clone(),
                    interval: source.interval,
                    url: endpoint.url.to_string(),
                    client,
                    next_due: Mutex::new(None),
                    tasks: RecordedTasks::default(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { entries })
    }

    pub fn get(&self, name: &SourceName) -> Option<&Source> {
        self.entries.iter().find(|s| s.name == *name)
    }
}

/// What one sync did, or why the source could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synced {
    pub counts: SyncCounts,
    pub error: Option<String>,
}

/// Syncs every source whose interval has passed (leader work). Returns how many ran.
pub(crate) async fn sync_due(app: &App) -> ApiResult<usize> {
    let mut ran = 0;
    for source in &app.inventory.entries {
        let now = app.now();
        let due = source.next_due.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|at| at <= now);
        if due {
            sync_source(app, source).await?;
            ran += 1;
        }
    }
    Ok(ran)
}

/// Reads `source` once and syncs what it read; a failed read is recorded as the
/// source's error. Errors only when the store cannot record the outcome.
pub(crate) async fn sync_source(app: &App, source: &Source) -> ApiResult<Synced> {
    let started_at = app.now();
    let read = source.client.snapshot().await;
    // Whatever happens below, the source is next read one interval from now: a source
    // whose answer cannot be stored must not be read again every tick.
    *source.next_due.lock().unwrap_or_else(|p| p.into_inner()) = Some(started_at + source.interval);
    let mut tasks = Vec::new();
    let outcome = match read {
        // Links read after the cluster, so a node registered meanwhile is linked now; a
        // store that cannot be read fails the sync (unlinked records would be rewritten).
        Ok(snapshot) => {
            let records = snapshot.to_inventory(&node_links(app).await?);
            tasks = snapshot.tasks;
            Ok(records)
        }
        // One line naming the API; the client's errors never carry the token's secret.
        Err(error) => Err(format!("{}: {}", source.url, error).replace(['\n', '\r'], " ")),
    };
    if let Err(reason) = &outcome {
        tracing::warn!(source = %source.name, "inventory source not read: {reason}");
    }
    let mut error = outcome.as_ref().err().cloned();
    let sync = SourceSync {
        source: source.name.clone(),
        source_type: SourceType::Proxmox,
        scope: SyncScope::Source,
        started_at,
        outcome,
    };
    let reason = format!("sync of inventory source {}", source.name);
    let batch = WriteBatch::new(Actor::system(ACTOR), reason.clone()).sync_inventory(sync);
    let committed = match app.store.commit(batch).await {
        // The answer was read but holds what the store refuses (a key twice, a value too
        // large): the source is marked stale with why, and nothing else changes.
        Err(refused @ (StoreError::Invalid(_) | StoreError::TooLarge { .. })) => {
            let why = format!("{}: the answer cannot be stored: {refused}", source.url).replace(['\n', '\r'], " ");
            tracing::warn!(source = %source.name, "inventory source not synced: {why}");
            error = Some(why.clone());
            let failed = SourceSync {
                source: source.name.clone(),
                source_type: SourceType::Proxmox,
                scope: SyncScope::Source,
                started_at,
                outcome: Err(why),
            };
            app.store.commit(WriteBatch::new(Actor::system(ACTOR), reason).sync_inventory(failed)).await?
        }
        other => other?,
    };
    if error.is_none() {
        inventory_tasks::record(app, &source.name, &source.tasks, &tasks).await?;
    }
    app.committed.notify_waiters();
    match committed.outcomes.first() {
        Some(WriteOutcome::Synced { counts, .. }) => {
            app.metrics.inventory_synced(source.name.as_str(), error.is_none(), counts);
            if error.is_none() {
                crate::drift::after_sync(app, &source.name).await;
            }
            Ok(Synced { counts: *counts, error })
        }
        _ => Err(ApiError::Internal("an inventory sync committed without its outcome".to_owned())),
    }
}

/// What the fleet says about which node each host and VM is: every node's host name,
/// and the VMs the pools' Proxmox providers cloned with their instances' nodes. One
/// listing of the nodes and one of each Proxmox provider's instances per sync, whatever
/// the number of VMs.
async fn node_links(app: &App) -> ApiResult<NodeLinks> {
    let store = &app.store;
    let mut nodes: Vec<(NodeId, String)> = Vec::new();
    let all = NodeFilter::default();
    each_page(
        |page| {
            let all = &all;
            async move { store.list_nodes(all, &page).await }
        },
        |page| nodes.extend(page.into_iter().map(|node| (node.id, node.metadata.hostname))),
    )
    .await?;
    let mut provisioned = Vec::new();
    let proxmox: Vec<String> = app
        .pools
        .iter()
        .flat_map(|pools| pools.providers.iter())
        .filter(|(_, provider)| provider.kind() == ProviderType::Proxmox)
        .map(|(name, _)| name.clone())
        .collect();
    for name in proxmox {
        let filter = InstanceFilter { provider: Some(name), ..Default::default() };
        each_page(
            |page| {
                let filter = &filter;
                async move { store.list_instances(filter, &page).await }
            },
            |page| {
                provisioned.extend(page.into_iter().filter_map(|instance| {
                    let (vmid, vm) = parse_provider_instance_id(instance.provider_instance_id.as_deref()?)?;
                    Some(ProvisionedVm { vmid, name: vm.to_owned(), node: instance.node_id? })
                }));
            },
        )
        .await?;
    }
    Ok(NodeLinks::new(nodes.iter().map(|(node, hostname)| (node, hostname.as_str())), provisioned))
}
