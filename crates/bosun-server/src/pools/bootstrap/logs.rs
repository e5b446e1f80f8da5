//! Reading bootstrap logs for operators.
//!
//! Logs are kept under the instance id the bootstrap told the agent to register as (the
//! `{{.NodeID}}` of the setup commands), which is also the machine's id when its agent never
//! registered. An operator asks with whatever id they have: a node id whose agent chose
//! another (a hostname), an instance id, or a provider's machine id; the instance linked to
//! it is found and both keys are read.

use bosun_core::{BootstrapLog, NodeId};
use bosun_store::StoreError;

use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// The logs of `id`'s machine, newest first, at most `limit`.
pub(crate) async fn bootstrap_logs(app: &App, id: &NodeId, limit: u32) -> ApiResult<Vec<BootstrapLog>> {
    let instance = app.store.instance_for_node(id).await?;
    let node_known = match app.store.node(id).await {
        Ok(_) => true,
        Err(StoreError::NotFound { .. }) => false,
        Err(error) => return Err(error.into()),
    };
    let mut keys = vec![id.clone()];
    if let Some(instance) = &instance
        && let Ok(key) = NodeId::new(instance.id.as_str())
        && !keys.contains(&key)
    {
        keys.push(key);
    }
    let mut logs = Vec::new();
    for key in &keys {
        logs.extend(app.store.bootstrap_logs(key, limit).await?);
    }
    if logs.is_empty() && instance.is_none() && !node_known {
        return Err(ApiError::NotFound(format!("no node, instance or machine {id} is known")));
    }
    logs.sort_by_key(|log| std::cmp::Reverse(log.id));
    logs.dedup_by_key(|log| log.id);
    logs.truncate(limit as usize);
    Ok(logs)
}
