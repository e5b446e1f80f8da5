//! Prometheus metrics: what `/metrics` serves.
//!
//! Fleet gauges (nodes by status and health, heartbeat ages) are computed from the
//! in-memory fleet view at scrape time; RPC and store latencies are histograms recorded
//! as requests run; policy evaluations are counted by matched rule. Label values come
//! from closed sets (methods, codes, store operations, rule names of the active policy),
//! never from node ids, so cardinality stays bounded at any fleet size.

use std::sync::Arc;
use std::time::Duration;

use bosun_core::{Health, NodeStatus, RemediationAction, Timestamp};
use connectrpc::interceptor::{StreamRequest, StreamResponse, UnaryRequest, UnaryResponse};
use connectrpc::{ConnectError, Interceptor, Next, NextStream, PayloadStream};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::fleet::Fleet;

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.5, 14))
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    nodes: Family<Labels2, Gauge>,
    heartbeat_age: Family<Labels1, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pending_heartbeats: Gauge,
    rpc_requests: Family<Labels2, Counter>,
    rpc_duration: HistogramFamily<Labels2>,
    store_duration: HistogramFamily<Labels1>,
    store_errors: Family<Labels2, Counter>,
    policy_evaluations: Family<Labels2, Counter>,
    policy_rule_errors: Counter,
    heartbeats: Counter,
    heartbeat_flushes: HistogramFamily<Labels1>,
    xid_events: Family<Labels2, Counter>,
    remediation_steps: Family<Labels1, Counter>,
    notifier_deliveries: Family<Labels2, Counter>,
    pool_usable: Family<Labels1, Gauge>,
    pool_target: Family<Labels1, Gauge>,
    pool_awaiting_replacement: Family<Labels1, Gauge>,
    pool_mass_failure: Family<Labels1, Gauge>,
    connections_open: Gauge,
    connections_rejected: Counter,
    auth_failures: Counter,
    audit_write_failures: Counter,
    run_steps: Family<Labels2, Counter>,
    runs_finished: Family<Labels1, Counter>,
    inventory_syncs: Family<Labels2, Counter>,
    inventory_records: Family<Labels2, Counter>,
    inventory_drift: Family<Labels1, Gauge>,
    auth_throttled: Counter,
    leader: Gauge,
    leader_epoch: Gauge,
    lease_renew_failures: Counter,
    fenced_writes: Counter,
    pool_passes: Counter,
    change_listener_reconnects: Counter,
    requests_waiting: Family<Labels1, Gauge>,
}

/// What one reconcile pass concluded about a pool, for its gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolGauges {
    pub usable: u32,
    pub target: u32,
    pub awaiting_replacement: u32,
    pub mass_failure: bool,
}

/// Something counted in a gauge (an open connection, a waiting request) until dropped.
#[derive(Debug)]
pub(crate) struct Counted(Gauge);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("bosun");
        let nodes = Family::<Labels2, Gauge>::default();
        registry.register("nodes", "Nodes by status and health", nodes.clone());
        let heartbeat_age = Family::<Labels1, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "node_heartbeat_age_seconds",
            "Time since judged nodes were last seen: stat median, p99 or max",
            heartbeat_age.clone(),
        );
        let pending_heartbeats = Gauge::default();
        registry.register("heartbeats_pending", "Heartbeats received and not yet written", pending_heartbeats.clone());
        let rpc_requests = Family::<Labels2, Counter>::default();
        registry.register("rpc_requests", "RPCs answered, by method and code", rpc_requests.clone());
        let rpc_duration = HistogramFamily::<Labels2>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("rpc_duration_seconds", "RPC latency, by method and code", rpc_duration.clone());
        let store_duration = HistogramFamily::<Labels1>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "store_operation_duration_seconds",
            "Store call latency, by operation",
            store_duration.clone(),
        );
        let store_errors = Family::<Labels2, Counter>::default();
        registry.register("store_errors", "Failed store calls, by operation and error", store_errors.clone());
        let policy_evaluations = Family::<Labels2, Counter>::default();
        registry.register(
            "policy_evaluations",
            "Health events classified, by matched rule (none: no rule matched) and result",
            policy_evaluations.clone(),
        );
        let policy_rule_errors = Counter::default();
        registry.register("policy_rule_errors", "Rule evaluations that failed on an event", policy_rule_errors.clone());
        let heartbeats = Counter::default();
        registry.register("heartbeats", "Heartbeats accepted", heartbeats.clone());
        let heartbeat_flushes =
            HistogramFamily::<Labels1>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "soft_state_flush_duration_seconds",
            "Time to write buffered heartbeats and samples, by outcome",
            heartbeat_flushes.clone(),
        );
        let xid_events = Family::<Labels2, Counter>::default();
        registry.register(
            "xid_events",
            "XID events reported, by XID (unknown: not in the catalog) and the action the policy gave",
            xid_events.clone(),
        );
        let remediation_steps = Family::<Labels1, Counter>::default();
        registry.register(
            "remediation_steps",
            "Remediation steps started (reset_gpu, reboot, replace), by the ladder or an operator",
            remediation_steps.clone(),
        );
        let notifier_deliveries = Family::<Labels2, Counter>::default();
        registry.register(
            "notifier_deliveries",
            "Cordons, uncordons and drains sent to the webhook notifier, by event and outcome (delivered, given up)",
            notifier_deliveries.clone(),
        );
        let pool_usable = Family::<Labels1, Gauge>::default();
        registry.register(
            "pool_usable_nodes",
            "Usable capacity of each pool at its last pass: ACTIVE nodes plus machines still booting",
            pool_usable.clone(),
        );
        let pool_target = Family::<Labels1, Gauge>::default();
        registry.register("pool_target_nodes", "Each pool's target size at its last pass", pool_target.clone());
        let pool_awaiting_replacement = Family::<Labels1, Gauge>::default();
        registry.register(
            "pool_nodes_awaiting_replacement",
            "UNHEALTHY nodes due for replacement whose termination the replacement budget or the mass-failure \
             guard holds back",
            pool_awaiting_replacement.clone(),
        );
        let pool_mass_failure = Family::<Labels1, Gauge>::default();
        registry.register(
            "pool_mass_failure",
            "1 while a pool's mass-failure guard holds its terminations, else 0",
            pool_mass_failure.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("connections_open", "Connections to the API port being served", connections_open.clone());
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Connections closed on arrival because api.max_connections were open",
            connections_rejected.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused for a missing or wrong bearer token",
            auth_failures.clone(),
        );
        let audit_write_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audited calls whose audit entry could not be written",
            audit_write_failures.clone(),
        );
        let run_steps = Family::<Labels2, Counter>::default();
        registry.register("run_steps", "Runbook steps ended on a node, by step and outcome", run_steps.clone());
        let runs_finished = Family::<Labels1, Counter>::default();
        registry.register("runs_finished", "Runbook runs ended, by status", runs_finished.clone());
        let inventory_syncs = Family::<Labels2, Counter>::default();
        registry.register(
            "inventory_syncs",
            "Syncs of configured inventory sources, by source and outcome (ok, failed)",
            inventory_syncs.clone(),
        );
        let inventory_records = Family::<Labels2, Counter>::default();
        registry.register(
            "inventory_records_synced",
            "Inventory records a sync created, updated, brought back or marked gone, by source and what it did",
            inventory_records.clone(),
        );
        let inventory_drift = Family::<Labels1, Gauge>::default();
        registry.register(
            "inventory_drift",
            "Resources drifting from the declared inventory at this server's last check (the leader checks after \
             each sync), by kind (missing, unexpected, changed); set once a configured declaration was checked",
            inventory_drift.clone(),
        );
        let auth_throttled = Counter::default();
        registry.register(
            "auth_throttled",
            "Requests answered 429 because their peer failed authentication too often",
            auth_throttled.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica leads (holds the leader lease), else 0", leader.clone());
        let leader_epoch = Gauge::default();
        registry.register(
            "leader_epoch",
            "The leader lease's epoch while this replica leads, else 0",
            leader_epoch.clone(),
        );
        let lease_renew_failures = Counter::default();
        registry.register(
            "lease_renew_failures",
            "Renewals of the leader lease that failed (the store did not answer)",
            lease_renew_failures.clone(),
        );
        let fenced_writes = Counter::default();
        registry.register(
            "fenced_writes",
            "Writes of leader-only work refused because this replica's leader epoch was over",
            fenced_writes.clone(),
        );
        let pool_passes = Counter::default();
        registry.register(
            "pool_passes",
            "Pool reconciliation passes this replica completed as the leader (or as the sole server)",
            pool_passes.clone(),
        );
        let change_listener_reconnects = Counter::default();
        registry.register(
            "change_listener_reconnects",
            "Times the store's connection listening for other servers' commits was lost and made again",
            change_listener_reconnects.clone(),
        );
        let requests_waiting = Family::<Labels1, Gauge>::default();
        registry.register(
            "requests_waiting",
            "PollCommands and WatchEvents calls waiting for a commit, by method",
            requests_waiting.clone(),
        );
        Self {
            leader,
            leader_epoch,
            lease_renew_failures,
            fenced_writes,
            pool_passes,
            change_listener_reconnects,
            requests_waiting,
            connections_open,
            connections_rejected,
            auth_failures,
            audit_write_failures,
            run_steps,
            runs_finished,
            inventory_syncs,
            inventory_records,
            inventory_drift,
            auth_throttled,
            registry,
            nodes,
            heartbeat_age,
            pending_heartbeats,
            rpc_requests,
            rpc_duration,
            store_duration,
            store_errors,
            policy_evaluations,
            policy_rule_errors,
            heartbeats,
            heartbeat_flushes,
            xid_events,
            remediation_steps,
            notifier_deliveries,
            pool_usable,
            pool_target,
            pool_awaiting_replacement,
            pool_mass_failure,
        }
    }

    /// Whether this replica leads, and in which epoch.
    pub(crate) fn leadership(&self, epoch: Option<u64>) {
        self.leader.set(i64::from(epoch.is_some()));
        self.leader_epoch.set(epoch.map_or(0, |e| i64::try_from(e).unwrap_or(i64::MAX)));
    }

    pub(crate) fn lease_renew_failed(&self) {
        self.lease_renew_failures.inc();
    }

    pub(crate) fn fenced_write(&self) {
        self.fenced_writes.inc();
    }

    pub(crate) fn pool_pass(&self) {
        self.pool_passes.inc();
    }

    /// Pool passes completed as the leader so far.
    pub(crate) fn pool_passes(&self) -> u64 {
        self.pool_passes.get()
    }

    /// Counts one XID event. Codes outside the catalog share the label `unknown`, so an
    /// agent cannot grow the label set.
    pub(crate) fn xid_event(&self, known_code: Option<u32>, action: RemediationAction) {
        let xid = known_code.map_or_else(|| "unknown".to_owned(), |code| code.to_string());
        self.xid_events.get_or_create(&[("xid", xid), ("action", action.as_str().to_owned())]).inc();
    }

    pub(crate) fn remediation_step(&self, step: RemediationAction) {
        self.remediation_steps.get_or_create(&[("step", step.as_str().to_owned())]).inc();
    }

    pub(crate) fn notifier_delivery(&self, event: &str, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "given_up" };
        self.notifier_deliveries.get_or_create(&[("event", event.to_owned()), ("outcome", outcome.to_owned())]).inc();
    }

    pub(crate) fn pool(&self, pool: &str, gauges: PoolGauges) {
        let labels = [("pool", pool.to_owned())];
        self.pool_usable.get_or_create(&labels).set(i64::from(gauges.usable));
        self.pool_target.get_or_create(&labels).set(i64::from(gauges.target));
        self.pool_awaiting_replacement.get_or_create(&labels).set(i64::from(gauges.awaiting_replacement));
        self.pool_mass_failure.get_or_create(&labels).set(i64::from(gauges.mass_failure));
    }

    pub(crate) fn rpc(&self, method: &str, code: &str, elapsed: Duration) {
        let labels = [("method", method.to_owned()), ("code", code.to_owned())];
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub(crate) fn store_call(&self, operation: &'static str, elapsed: Duration, error: Option<&'static str>) {
        self.store_duration.get_or_create(&[("operation", operation.to_owned())]).observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            self.store_errors.get_or_create(&[("operation", operation.to_owned()), ("error", error.to_owned())]).inc();
        }
    }

    pub(crate) fn policy_evaluation(&self, rule: Option<&str>, result: Health, errors: usize) {
        let labels = [("rule", rule.unwrap_or("none").to_owned()), ("result", result.as_str().to_ascii_lowercase())];
        self.policy_evaluations.get_or_create(&labels).inc();
        if errors > 0 {
            self.policy_rule_errors.inc_by(errors as u64);
        }
    }

    pub(crate) fn connection_opened(&self) -> Counted {
        self.connections_open.inc();
        Counted(self.connections_open.clone())
    }

    /// Counts a long poll or watch of `method` as waiting for a commit until dropped.
    pub(crate) fn waiting(&self, method: &'static str) -> Counted {
        let gauge = self.requests_waiting.get_or_create(&[("method", method.to_owned())]).clone();
        gauge.inc();
        Counted(gauge)
    }

    pub(crate) fn connection_rejected(&self) {
        self.connections_rejected.inc();
    }

    pub(crate) fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub(crate) fn audit_write_failed(&self) {
        self.audit_write_failures.inc();
    }

    /// A runbook step ended on a node (`finished` or `failed`).
    pub(crate) fn run_step(&self, step: &str, finished: bool) {
        let outcome = if finished { "finished" } else { "failed" };
        self.run_steps.get_or_create(&[("step", step.to_owned()), ("outcome", outcome.to_owned())]).inc();
    }

    /// A runbook run ended with `status`.
    pub(crate) fn run_finished(&self, status: &str) {
        self.runs_finished.get_or_create(&[("status", status.to_owned())]).inc();
    }

    /// A configured source was synced (`ok`) or could not be read.
    pub(crate) fn inventory_synced(&self, source: &str, ok: bool, counts: &bosun_core::inventory::SyncCounts) {
        let outcome = if ok { "ok" } else { "failed" };
        self.inventory_syncs.get_or_create(&[("source", source.to_owned()), ("outcome", outcome.to_owned())]).inc();
        for (what, count) in
            [("created", counts.created), ("updated", counts.updated), ("back", counts.back), ("gone", counts.gone)]
        {
            if count > 0 {
                self.inventory_records
                    .get_or_create(&[("source", source.to_owned()), ("change", what.to_owned())])
                    .inc_by(count);
            }
        }
    }

    /// How many resources drift from the declared inventory, as its last check found.
    pub(crate) fn inventory_drift(&self, counts: bosun_core::inventory::drift::DriftCounts) {
        for (kind, count) in
            [("missing", counts.missing), ("unexpected", counts.unexpected), ("changed", counts.changed)]
        {
            self.inventory_drift
                .get_or_create(&[("kind", kind.to_owned())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn auth_throttled(&self) {
        self.auth_throttled.inc();
    }

    pub(crate) fn change_listener_reconnected(&self, times: u64) {
        self.change_listener_reconnects.inc_by(times);
    }

    pub(crate) fn heartbeat(&self) {
        self.heartbeats.inc();
    }

    pub(crate) fn flush(&self, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.heartbeat_flushes.get_or_create(&[("outcome", outcome.to_owned())]).observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition, with fleet gauges computed now.
    pub(crate) fn render(&self, fleet: &Fleet, now: Timestamp) -> String {
        self.nodes.clear();
        for status in NodeStatus::ALL {
            for health in Health::ALL {
                let labels = [("status", status.as_str().to_owned()), ("health", health.as_str().to_owned())];
                self.nodes.get_or_create(&labels).set(0);
            }
        }
        for ((status, health), count) in fleet.counts() {
            let labels = [("status", status.as_str().to_owned()), ("health", health.as_str().to_owned())];
            self.nodes.get_or_create(&labels).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let ages = fleet.heartbeat_ages(now);
        // A gauge per statistic: `quantile` is reserved for summaries.
        for (stat, age) in [("median", ages.median), ("p99", ages.p99), ("max", ages.max)] {
            self.heartbeat_age.get_or_create(&[("stat", stat.to_owned())]).set(age.as_secs_f64());
        }
        self.pending_heartbeats.set(i64::try_from(fleet.pending_len()).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Records every RPC's method, outcome code and latency.
#[derive(Debug)]
pub(crate) struct RpcMetrics(pub Arc<Metrics>);

/// `/bosun.v1.AgentService/Heartbeat` -> `Heartbeat`.
fn method_name(path: Option<&str>) -> String {
    path.and_then(|p| p.rsplit('/').next()).filter(|m| !m.is_empty()).unwrap_or("unknown").to_owned()
}

fn code_of(error: &ConnectError) -> &'static str {
    error.code.as_str()
}

#[connectrpc::async_trait]
impl Interceptor for RpcMetrics {
    async fn intercept_unary(&self, req: UnaryRequest, next: Next<'_>) -> Result<UnaryResponse, ConnectError> {
        let method = method_name(req.ctx.path());
        let started = std::time::Instant::now();
        let response = next.run(req).await;
        let code = response.as_ref().err().map_or("ok", code_of);
        self.0.rpc(&method, code, started.elapsed());
        response
    }

    async fn intercept_streaming(
        &self,
        req: StreamRequest,
        inbound: PayloadStream,
        next: NextStream<'_>,
    ) -> Result<StreamResponse, ConnectError> {
        // A stream is counted when it is established; its lifetime is not a latency.
        let method = method_name(req.ctx.path());
        let started = std::time::Instant::now();
        let response = next.run(req, inbound).await;
        let code = response.as_ref().err().map_or("ok", code_of);
        self.0.rpc(&method, code, started.elapsed());
        response
    }
}
