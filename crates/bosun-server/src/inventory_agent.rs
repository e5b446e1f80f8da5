//! Where agents' workload snapshots enter the inventory.
//!
//! PLACEHOLDER: the inventory's store and sync are being built separately; until they are
//! merged, [`sync_node_workloads`] accepts every snapshot and keeps nothing.

use bosun_core::inventory::{Reported, Workload};
use bosun_core::{NodeId, Timestamp};

use crate::app::App;
use crate::error::ApiResult;

/// Syncs `workloads`, the complete snapshot of `node`'s GPU workloads received at `at`,
/// as that node's records of the agents' source: keys the snapshot lacks are gone.
///
/// PLACEHOLDER: logs the snapshot at debug and returns `Ok(())`; the body becomes the
/// store sync.
pub(crate) async fn sync_node_workloads(
    _app: &App,
    node: &NodeId,
    at: Timestamp,
    workloads: Vec<Reported<Workload>>,
) -> ApiResult<()> {
    tracing::debug!(%node, %at, workloads = workloads.len(), "workload snapshot received (not stored yet)");
    Ok(())
}
