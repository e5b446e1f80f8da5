//! Where agents' workload snapshots enter the inventory: each report is its node's scope
//! of the `agents` source, synced in one transaction like any source's snapshot
//! (workloads the report lacks are marked gone; an unchanged report writes only the
//! node's source status).

use bosun_config::inventory::AGENTS_SOURCE;
use bosun_core::inventory::{InventorySnapshot, Reported, SourceSync, SourceType, SyncScope, Workload};
use bosun_core::{Actor, NodeId, SourceName, Timestamp};
use bosun_store::WriteBatch;

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// Syncs `workloads`, the complete snapshot of `node`'s GPU workloads received at `at`,
/// as that node's records of the agents' source: keys the snapshot lacks are gone.
pub(crate) async fn sync_node_workloads(
    app: &App,
    node: &NodeId,
    at: Timestamp,
    workloads: Vec<Reported<Workload>>,
) -> ApiResult<()> {
    let source: SourceName =
        AGENTS_SOURCE.parse().map_err(|_| ApiError::Internal("the agents' source name is invalid".to_owned()))?;
    let sync = SourceSync {
        source,
        source_type: SourceType::Agent,
        scope: SyncScope::Node(node.clone()),
        started_at: at,
        outcome: Ok(InventorySnapshot { workloads, ..InventorySnapshot::default() }),
    };
    let batch = WriteBatch::new(Actor::Node(node.clone()), "GPU workloads reported").sync_inventory(sync);
    app.store.commit(batch).await?;
    Ok(())
}
