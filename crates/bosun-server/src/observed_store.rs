//! The store as the server uses it: every call timed into `/metrics`, outages noticed so
//! liveness knows when the control plane was blind, and commits announced to watchers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bosun_core::node::Gpu;
use bosun_core::{
    Approval, ApprovalId, ApprovalPolicy, BootstrapLog, ChangeRecord, Clock, Command, CommandEvent, CommandId,
    Heartbeat, Instance, InstanceId, MetricSample, Node, NodeId, Pool, PoolName, RunId, Runbook, RunbookName,
    StoredPolicy, TaskRun, Timestamp, ToolDefinition,
};
use bosun_store::{
    ApprovalFilter, ArtifactInfo, AuditFilter, Backend, ChangeFilter, ChangeSignals, CommandFilter, Committed,
    InstanceFilter, IntegrityFinding, NodeFilter, NodeOrder, Page, PageRequest, PoolStats, Result, RetentionPolicy,
    RetentionReport, RunFilter, Store, StoreCounts, StoreError, StoredAuditEntry, StoredHealthReport, StoredRunEvent,
    StoredToolCall, WriteBatch,
};
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Whether the control plane could see its fleet: false during a store outage and for a
/// grace period after it (and after start), while heartbeats that could not be written
/// or read are still missing from what liveness would judge.
#[derive(Debug)]
pub(crate) struct Sight {
    state: Mutex<SightState>,
    grace: Duration,
}

#[derive(Debug)]
struct SightState {
    blind_until: Timestamp,
    in_outage: bool,
}

impl Sight {
    pub(crate) fn new(started_at: Timestamp, grace: Duration) -> Self {
        Self { state: Mutex::new(SightState { blind_until: started_at + grace, in_outage: false }), grace }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SightState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn store_failed(&self) {
        let mut state = self.lock();
        if !state.in_outage {
            tracing::warn!(
                "the store is unavailable; liveness judges nothing until it is back and a grace period passed"
            );
        }
        state.in_outage = true;
    }

    pub(crate) fn store_ok(&self, now: Timestamp) {
        let mut state = self.lock();
        if state.in_outage {
            state.in_outage = false;
            state.blind_until = state.blind_until.max(now + self.grace);
            tracing::info!(grace = ?self.grace, "the store is reachable again");
        }
    }

    /// True while liveness must not mark anything.
    pub(crate) fn is_blind(&self, now: Timestamp) -> bool {
        let state = self.lock();
        state.in_outage || now < state.blind_until
    }
}

/// A condition the server cannot serve through (its store was lost). The first reason is
/// kept; the server's handle reports it so the process can stop with a non-zero status.
#[derive(Debug, Default)]
pub(crate) struct Fatal {
    raised: tokio_util::sync::CancellationToken,
    reason: std::sync::OnceLock<String>,
}

impl Fatal {
    pub(crate) fn raise(&self, reason: &str) {
        if self.reason.set(reason.to_owned()).is_ok() {
            tracing::error!(reason, "the server cannot go on");
        }
        self.raised.cancel();
    }

    /// Resolves with the reason once something fatal happened.
    pub(crate) async fn wait(&self) -> String {
        self.raised.cancelled().await;
        self.reason.get().cloned().unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct ObservedStore {
    inner: bosun_store::SharedStore,
    metrics: Arc<Metrics>,
    sight: Arc<Sight>,
    fatal: Arc<Fatal>,
    clock: Arc<dyn Clock>,
    /// Woken after every successful commit (for WatchEvents).
    committed: Arc<Notify>,
}

impl ObservedStore {
    pub(crate) fn new(
        inner: bosun_store::SharedStore,
        metrics: Arc<Metrics>,
        sight: Arc<Sight>,
        clock: Arc<dyn Clock>,
        committed: Arc<Notify>,
        fatal: Arc<Fatal>,
    ) -> Self {
        Self { inner, metrics, sight, fatal, clock, committed }
    }

    async fn observe<T>(&self, operation: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        let error = result.as_ref().err().map(StoreError::metric_label);
        self.metrics.store_call(operation, started.elapsed(), error);
        match &result {
            // Only an outage blinds liveness: an error caused by a value is the caller's.
            Err(StoreError::Unavailable { .. }) => self.sight.store_failed(),
            Err(StoreError::Lost { message }) => {
                self.sight.store_failed();
                self.fatal.raise(message);
            }
            _ => self.sight.store_ok(self.clock.now()),
        }
        result
    }
}

#[async_trait]
impl Store for ObservedStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn commit(&self, mut batch: WriteBatch) -> Result<Committed> {
        // Leader-only work runs inside `election::with_fence`: its writes carry the epoch.
        if batch.fence.is_none() {
            batch.fence = crate::election::current_fence();
        }
        let committed = match self.observe("commit", self.inner.commit(batch)).await {
            Ok(committed) => committed,
            Err(error @ StoreError::Fenced { .. }) => {
                self.metrics.fenced_write();
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        self.committed.notify_waiters();
        Ok(committed)
    }

    async fn node(&self, id: &NodeId) -> Result<Node> {
        self.observe("node", self.inner.node(id)).await
    }

    async fn node_gpus(&self, id: &NodeId) -> Result<Vec<Gpu>> {
        self.observe("node_gpus", self.inner.node_gpus(id)).await
    }

    async fn list_nodes_in(&self, order: NodeOrder, filter: &NodeFilter, page: &PageRequest) -> Result<Page<Node>> {
        self.observe("list_nodes", self.inner.list_nodes_in(order, filter, page)).await
    }

    async fn instance(&self, id: &InstanceId) -> Result<Instance> {
        self.observe("instance", self.inner.instance(id)).await
    }

    async fn list_instances(&self, filter: &InstanceFilter, page: &PageRequest) -> Result<Page<Instance>> {
        self.observe("list_instances", self.inner.list_instances(filter, page)).await
    }

    async fn instance_for_node(&self, node: &NodeId) -> Result<Option<Instance>> {
        self.observe("instance_for_node", self.inner.instance_for_node(node)).await
    }

    async fn command(&self, id: &CommandId) -> Result<Command> {
        self.observe("command", self.inner.command(id)).await
    }

    async fn list_commands(&self, filter: &CommandFilter, page: &PageRequest) -> Result<Page<Command>> {
        self.observe("list_commands", self.inner.list_commands(filter, page)).await
    }

    async fn command_events(&self, id: &CommandId) -> Result<Vec<CommandEvent>> {
        self.observe("command_events", self.inner.command_events(id)).await
    }

    async fn pool(&self, name: &PoolName) -> Result<Pool> {
        self.observe("pool", self.inner.pool(name)).await
    }

    async fn list_pools(&self) -> Result<Vec<Pool>> {
        self.observe("list_pools", self.inner.list_pools()).await
    }

    async fn policy(&self) -> Result<Option<StoredPolicy>> {
        self.observe("policy", self.inner.policy()).await
    }

    async fn lease(&self, name: &bosun_core::LeaseName) -> Result<Option<bosun_core::Lease>> {
        self.observe("lease", self.inner.lease(name)).await
    }

    async fn record_replica(&self, replica: &bosun_core::ReplicaPresence, forget_before: Timestamp) -> Result<()> {
        self.observe("record_replica", self.inner.record_replica(replica, forget_before)).await
    }

    async fn list_replicas(&self) -> Result<Vec<bosun_core::ReplicaPresence>> {
        self.observe("list_replicas", self.inner.list_replicas()).await
    }

    async fn health_history(&self, node: &NodeId, limit: u32) -> Result<Vec<StoredHealthReport>> {
        self.observe("health_history", self.inner.health_history(node, limit)).await
    }

    async fn bootstrap_logs(&self, node: &NodeId, limit: u32) -> Result<Vec<BootstrapLog>> {
        self.observe("bootstrap_logs", self.inner.bootstrap_logs(node, limit)).await
    }

    async fn list_changes(&self, filter: &ChangeFilter, limit: u32) -> Result<Vec<ChangeRecord>> {
        self.observe("list_changes", self.inner.list_changes(filter, limit)).await
    }

    async fn last_change_seq(&self) -> Result<u64> {
        self.observe("last_change_seq", self.inner.last_change_seq()).await
    }

    async fn change_signals(&self) -> Option<ChangeSignals> {
        self.inner.change_signals().await
    }

    async fn runbook(&self, name: &RunbookName) -> Result<Runbook> {
        self.observe("runbook", self.inner.runbook(name)).await
    }

    async fn list_runbooks(&self, page: &PageRequest) -> Result<Page<Runbook>> {
        self.observe("list_runbooks", self.inner.list_runbooks(page)).await
    }

    async fn run(&self, id: &RunId) -> Result<TaskRun> {
        self.observe("run", self.inner.run(id)).await
    }

    async fn list_runs(&self, filter: &RunFilter, page: &PageRequest) -> Result<Page<TaskRun>> {
        self.observe("list_runs", self.inner.list_runs(filter, page)).await
    }

    async fn run_events(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredRunEvent>> {
        self.observe("run_events", self.inner.run_events(run, after, limit)).await
    }

    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactInfo>> {
        self.observe("artifacts", self.inner.artifacts(run)).await
    }

    async fn artifact(&self, run: &RunId, name: &str) -> Result<(ArtifactInfo, Vec<u8>)> {
        self.observe("artifact", self.inner.artifact(run, name)).await
    }

    async fn tools(&self) -> Result<Vec<ToolDefinition>> {
        self.observe("tools", self.inner.tools()).await
    }

    async fn pricing(&self, current_at: Option<Timestamp>) -> Result<Vec<bosun_core::Price>> {
        self.observe("pricing", self.inner.pricing(current_at)).await
    }

    async fn llm_usage(&self, id: &bosun_core::LlmUsageId) -> Result<bosun_core::LlmUsage> {
        self.observe("llm_usage", self.inner.llm_usage(id)).await
    }

    async fn usage_summary(&self, filter: &bosun_core::UsageFilter) -> Result<Vec<bosun_core::UsageRow>> {
        self.observe("usage_summary", self.inner.usage_summary(filter)).await
    }

    async fn setting(&self, name: &str) -> Result<Option<bosun_core::Setting>> {
        self.observe("setting", self.inner.setting(name)).await
    }

    async fn tool_calls(&self, run: &RunId, after: u64, limit: u32) -> Result<Vec<StoredToolCall>> {
        self.observe("tool_calls", self.inner.tool_calls(run, after, limit)).await
    }

    async fn approval_policies(&self) -> Result<Vec<ApprovalPolicy>> {
        self.observe("approval_policies", self.inner.approval_policies()).await
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Approval> {
        self.observe("approval", self.inner.approval(id)).await
    }

    async fn list_approvals(&self, filter: &ApprovalFilter, limit: u32) -> Result<Vec<Approval>> {
        self.observe("list_approvals", self.inner.list_approvals(filter, limit)).await
    }

    async fn list_audit(&self, filter: &AuditFilter, after: u64, limit: u32) -> Result<Vec<StoredAuditEntry>> {
        self.observe("list_audit", self.inner.list_audit(filter, after, limit)).await
    }

    async fn list_inventory(
        &self,
        filter: &bosun_store::inventory::InventoryFilter,
        page: &PageRequest,
    ) -> Result<Page<bosun_core::inventory::InventoryRecord>> {
        self.observe("list_inventory", self.inner.list_inventory(filter, page)).await
    }

    async fn count_inventory(&self, filter: &bosun_store::inventory::InventoryFilter) -> Result<u64> {
        self.observe("count_inventory", self.inner.count_inventory(filter)).await
    }

    async fn inventory_record(
        &self,
        kind: bosun_core::inventory::InventoryKind,
        source: &bosun_core::SourceName,
        key: &str,
    ) -> Result<bosun_core::inventory::InventoryRecord> {
        self.observe("inventory_record", self.inner.inventory_record(kind, source, key)).await
    }

    async fn inventory_sources(&self) -> Result<Vec<bosun_core::inventory::SourceStatus>> {
        self.observe("inventory_sources", self.inner.inventory_sources()).await
    }

    async fn inventory_syncs(
        &self,
        source: Option<&bosun_core::SourceName>,
        limit: u32,
    ) -> Result<Vec<bosun_core::inventory::SyncRecord>> {
        self.observe("inventory_syncs", self.inner.inventory_syncs(source, limit)).await
    }

    async fn record_heartbeats(&self, batch: &[Heartbeat]) -> Result<u64> {
        self.observe("record_heartbeats", self.inner.record_heartbeats(batch)).await
    }

    async fn list_heartbeats(&self, page: &PageRequest) -> Result<Page<Heartbeat>> {
        self.observe("list_heartbeats", self.inner.list_heartbeats(page)).await
    }

    async fn record_metric_samples(&self, batch: &[MetricSample]) -> Result<u64> {
        self.observe("record_metric_samples", self.inner.record_metric_samples(batch)).await
    }

    async fn metric_samples(&self, node: &NodeId, since: Timestamp) -> Result<Vec<MetricSample>> {
        self.observe("metric_samples", self.inner.metric_samples(node, since)).await
    }

    async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        self.observe("apply_retention", self.inner.apply_retention(policy)).await
    }

    async fn check_integrity(&self) -> Result<Vec<IntegrityFinding>> {
        self.observe("check_integrity", self.inner.check_integrity()).await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.observe("counts", self.inner.counts()).await
    }

    async fn checkpoint(&self) -> Result<()> {
        self.observe("checkpoint", self.inner.checkpoint()).await
    }

    async fn dump(&self, sink: tokio::sync::mpsc::Sender<bosun_store::transfer::DumpMessage>) -> Result<()> {
        self.observe("dump", self.inner.dump(sink)).await
    }

    async fn load(
        &self,
        source: tokio::sync::mpsc::Receiver<bosun_store::transfer::LoadMessage>,
        target: bosun_store::transfer::Target,
    ) -> Result<()> {
        self.observe("load", self.inner.load(source, target)).await
    }

    async fn ping(&self) -> Result<()> {
        self.observe("ping", self.inner.ping()).await
    }

    async fn check_writable(&self) -> Result<()> {
        self.observe("check_writable", self.inner.check_writable()).await
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        self.observe("schema_version", self.inner.schema_version()).await
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        self.inner.pool_stats()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sight_is_lost_during_an_outage_and_for_a_grace_period_after_it() {
        let t = |s: i64| Timestamp::from_unix_micros(s * 1_000_000);
        let sight = Sight::new(t(0), Duration::from_secs(90));
        assert!(sight.is_blind(t(89)), "blind for the grace period after start");
        assert!(!sight.is_blind(t(90)));
        sight.store_failed();
        assert!(sight.is_blind(t(500)), "blind while the store is down");
        sight.store_ok(t(600));
        assert!(sight.is_blind(t(689)) && !sight.is_blind(t(690)), "and for a grace period after");
    }
}
