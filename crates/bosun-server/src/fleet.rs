//! The in-memory view of the fleet: every node's liveness, status and health, plus the
//! heartbeats and metric samples not yet written.
//!
//! **Architecture Invariant:** this is a cache the server can rebuild from the store at
//! any time ([`Fleet::load`]); nothing here is the only copy of hard state. Heartbeats
//! are soft state: the newest one per node waits here until the flusher writes it, so a
//! heartbeat costs a map insert, and memory stays bounded by the fleet's size even while
//! the store is down.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bosun_core::{Health, Heartbeat, MetricSample, Node, NodeId, NodeStatus, Revision, Timestamp};

/// What the server knows about one node without asking the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeView {
    /// The newest sign of life: heartbeat or registration, by the server's clock.
    pub last_seen: Timestamp,
    pub last_heartbeat: Option<Timestamp>,
    pub status: NodeStatus,
    pub health: Health,
    /// The node record's revision that `status` and `health` come from: an older read
    /// (a concurrent edit's "before", a snapshot taken before a commit) never overwrites
    /// a newer one.
    pub revision: Revision,
    /// Tells a node apart from an earlier one with the same id (deleted, then registered
    /// again), whose revisions restart at 1.
    pub registered_at: Timestamp,
    /// The deadline of the node's running remediation step, if one runs.
    pub remediation_deadline: Option<Timestamp>,
    /// The pool the node serves, if any (pools never change for a node).
    pub pool: Option<bosun_core::PoolName>,
}

impl NodeView {
    fn of(node: &Node) -> Self {
        Self {
            last_seen: node.last_seen(),
            last_heartbeat: node.last_heartbeat,
            status: node.status,
            health: node.health,
            revision: node.revision,
            registered_at: node.registered_at,
            remediation_deadline: node
                .remediation
                .as_ref()
                .filter(|r| r.state == bosun_core::remediation::StepState::Running)
                .map(|r| r.deadline),
            pool: node.pool.clone(),
        }
    }

    /// Takes `newer`'s status and health if it is at least as recent, and the latest signs
    /// of life of both.
    fn merge(&mut self, newer: NodeView) {
        if newer.registered_at > self.registered_at {
            *self = newer;
            return;
        }
        if newer.registered_at == self.registered_at && newer.revision >= self.revision {
            self.status = newer.status;
            self.health = newer.health;
            self.revision = newer.revision;
            self.remediation_deadline = newer.remediation_deadline;
        }
        self.last_seen = self.last_seen.max(newer.last_seen);
        self.last_heartbeat = self.last_heartbeat.max(newer.last_heartbeat);
    }

    /// Whether liveness judges this node: gone, going or already UNHEALTHY nodes are not.
    pub(crate) fn is_judged(&self) -> bool {
        matches!(self.status, NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining)
    }
}

#[derive(Debug, Default)]
struct Inner {
    nodes: HashMap<NodeId, NodeView>,
    /// When each node was last written into the view, on a counter that [`Fleet::mark`]
    /// reads: a reload forgets only nodes untouched since it began.
    touched: HashMap<NodeId, u64>,
    clock: u64,
    /// Mean GPU utilization of each node's newest heartbeat that carried metrics, for the
    /// autoscalers (soft state: the next heartbeat brings it back after a restart).
    utilization: HashMap<NodeId, f64>,
    /// The newest unwritten heartbeat per node, with its metrics if it carried any.
    pending: HashMap<NodeId, (Timestamp, Option<MetricSample>)>,
    /// Before this time a node's metrics are not kept for the store again (see
    /// [`SAMPLE_INTERVAL`]).
    next_sample: HashMap<NodeId, Timestamp>,
}

impl Inner {
    fn forget(&mut self, id: &NodeId) {
        self.nodes.remove(id);
        self.touched.remove(id);
        self.utilization.remove(id);
        self.pending.remove(id);
        self.next_sample.remove(id);
    }
}

/// A node's metrics are written to the store at most once per this interval, whatever its
/// heartbeat interval: the store's history is for looking back over minutes (samples a
/// 10 s heartbeat brought each time were a third of the soft-state writes at 100,000 nodes
/// and doubled heartbeat p99 on PostgreSQL). Autoscalers read the newest metrics from
/// memory, every heartbeat.
pub(crate) const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct Fleet {
    inner: Mutex<Inner>,
}

/// Nodes by their latest GPU utilization ([`Fleet::utilization_histogram`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct UtilizationHistogram {
    /// Nodes at 0–10 %, 10–20 %, …, 90–100 %.
    pub tenths: [u64; 10],
    pub without_metrics: u64,
}

/// Heartbeats and samples taken out of the buffer for one flush.
#[derive(Debug, Default)]
pub(crate) struct SoftBatch {
    pub heartbeats: Vec<Heartbeat>,
    pub samples: Vec<MetricSample>,
}

impl SoftBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.heartbeats.is_empty()
    }
}

/// The spread of heartbeat ages across judged nodes, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct AgeSummary {
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Fleet {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section is a few map operations that cannot panic halfway; a
        // poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A point to pass to [`Fleet::load`]: take it before reading the store.
    pub(crate) fn mark(&self) -> u64 {
        let mut inner = self.lock();
        inner.clock += 1;
        inner.clock
    }

    /// Merges a full read of the store, begun at `mark`, into the view. Status and health
    /// newer than the snapshot, and signs of life seen here, stay. A node missing from the
    /// snapshot is forgotten (with its buffered heartbeat) unless it was written here
    /// after `mark`: it registered while the snapshot was read.
    pub(crate) fn load<'a>(&self, nodes: impl IntoIterator<Item = &'a Node>, mark: u64) {
        let mut inner = self.lock();
        let mut listed = std::collections::HashSet::new();
        for node in nodes {
            let view = NodeView::of(node);
            match inner.nodes.entry(node.id.clone()) {
                std::collections::hash_map::Entry::Occupied(mut known) => known.get_mut().merge(view),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(view);
                }
            }
            listed.insert(node.id.clone());
        }
        let Inner { nodes, touched, pending, utilization, .. } = &mut *inner;
        nodes.retain(|id, _| listed.contains(id) || touched.get(id).is_some_and(|&t| t >= mark));
        touched.retain(|id, _| nodes.contains_key(id));
        pending.retain(|id, _| nodes.contains_key(id));
        utilization.retain(|id, _| nodes.contains_key(id));
    }

    /// Records a node as read from or committed to the store.
    pub(crate) fn upsert(&self, node: &Node) {
        let view = NodeView::of(node);
        let mut inner = self.lock();
        match inner.nodes.entry(node.id.clone()) {
            std::collections::hash_map::Entry::Occupied(mut known) => known.get_mut().merge(view),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(view);
            }
        }
        let now = inner.clock;
        inner.touched.insert(node.id.clone(), now);
    }

    pub(crate) fn remove(&self, id: &NodeId) {
        self.lock().forget(id);
    }

    pub(crate) fn get(&self, id: &NodeId) -> Option<NodeView> {
        self.lock().nodes.get(id).cloned()
    }

    /// When the node the fleet knows as `id` registered (for node-token checks, on every
    /// agent call: no copy of the view).
    pub(crate) fn registered_at(&self, id: &NodeId) -> Option<Timestamp> {
        self.lock().nodes.get(id).map(|view| view.registered_at)
    }

    pub(crate) fn contains(&self, id: &NodeId) -> bool {
        self.lock().nodes.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    /// A sign of life that is not a heartbeat (a registration).
    pub(crate) fn seen(&self, id: &NodeId, at: Timestamp) {
        if let Some(view) = self.lock().nodes.get_mut(id) {
            view.last_seen = view.last_seen.max(at);
        }
    }

    /// Takes in signs of life another replica heard (read from the store): the view's
    /// times move forward only, nothing is buffered for a flush, and nodes the view does
    /// not know are left to the change follower, which brings their records.
    pub(crate) fn heard_elsewhere(&self, heartbeats: &[Heartbeat]) {
        let mut inner = self.lock();
        for heartbeat in heartbeats {
            if let Some(view) = inner.nodes.get_mut(&heartbeat.node_id) {
                view.last_seen = view.last_seen.max(heartbeat.at);
                view.last_heartbeat = Some(view.last_heartbeat.map_or(heartbeat.at, |t| t.max(heartbeat.at)));
            }
        }
    }

    /// Forgets a node deleted from the store, unless the view already holds a later
    /// registration under the same id (the deletion was read after it). Returns whether
    /// it forgot the node.
    pub(crate) fn deleted(&self, node: &Node) -> bool {
        let mut inner = self.lock();
        let registered_again = inner.nodes.get(&node.id).is_some_and(|view| view.registered_at > node.registered_at);
        if !registered_again {
            inner.forget(&node.id);
        }
        !registered_again
    }

    /// Buffers a heartbeat. A node unknown here gets its sample back (`Err`), so the caller
    /// can look the node up and try again without copying the sample on every heartbeat.
    pub(crate) fn heartbeat(
        &self,
        id: &NodeId,
        at: Timestamp,
        sample: Option<MetricSample>,
    ) -> Result<(), Option<MetricSample>> {
        let mut inner = self.lock();
        let Some(view) = inner.nodes.get_mut(id) else { return Err(sample) };
        view.last_seen = view.last_seen.max(at);
        view.last_heartbeat = Some(view.last_heartbeat.map_or(at, |t| t.max(at)));
        if let Some(mean) = sample.as_ref().and_then(MetricSample::mean_gpu_utilization) {
            inner.utilization.insert(id.clone(), mean);
        }
        let sample = sample.filter(|_| inner.next_sample.get(id).is_none_or(|next| at >= *next));
        if sample.is_some() {
            inner.next_sample.insert(id.clone(), at + SAMPLE_INTERVAL);
        }
        match inner.pending.entry(id.clone()) {
            // A newer heartbeat without a sample to keep leaves the buffered one in place.
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                let (buffered_at, buffered) = entry.get_mut();
                *buffered_at = (*buffered_at).max(at);
                if sample.is_some() {
                    *buffered = sample;
                }
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert((at, sample));
            }
        }
        Ok(())
    }

    /// Takes every buffered heartbeat and sample for a flush.
    pub(crate) fn take_pending(&self) -> SoftBatch {
        let pending = std::mem::take(&mut self.lock().pending);
        let mut batch =
            SoftBatch { heartbeats: Vec::with_capacity(pending.len()), samples: Vec::with_capacity(pending.len()) };
        for (node_id, (at, sample)) in pending {
            batch.heartbeats.push(Heartbeat { node_id, at });
            batch.samples.extend(sample);
        }
        batch
    }

    /// Puts back a batch whose flush failed, under anything newer that arrived meanwhile.
    pub(crate) fn restore_pending(&self, batch: SoftBatch) {
        let mut inner = self.lock();
        let mut samples: HashMap<NodeId, MetricSample> =
            batch.samples.into_iter().map(|s| (s.node_id.clone(), s)).collect();
        for heartbeat in batch.heartbeats {
            if !inner.nodes.contains_key(&heartbeat.node_id) {
                continue;
            }
            let sample = samples.remove(&heartbeat.node_id);
            inner.pending.entry(heartbeat.node_id).or_insert((heartbeat.at, sample));
        }
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Judged nodes with no sign of life since `cutoff`.
    pub(crate) fn silent_since(&self, cutoff: Timestamp) -> Vec<NodeId> {
        let inner = self.lock();
        let mut silent: Vec<NodeId> = inner
            .nodes
            .iter()
            .filter(|(_, view)| view.is_judged() && view.last_seen < cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        silent.sort();
        silent
    }

    /// Nodes whose running remediation step has outlived its deadline.
    pub(crate) fn overdue_remediations(&self, now: Timestamp) -> Vec<NodeId> {
        let inner = self.lock();
        let mut overdue: Vec<NodeId> = inner
            .nodes
            .iter()
            .filter(|(_, view)| view.remediation_deadline.is_some_and(|deadline| deadline <= now))
            .map(|(id, _)| id.clone())
            .collect();
        overdue.sort();
        overdue
    }

    /// UNHEALTHY nodes with no sign of life since `cutoff`, with their last sign of life.
    pub(crate) fn silent_unhealthy(&self, cutoff: Timestamp) -> Vec<(NodeId, Timestamp)> {
        let inner = self.lock();
        let mut silent: Vec<(NodeId, Timestamp)> = inner
            .nodes
            .iter()
            .filter(|(_, view)| view.status == NodeStatus::Unhealthy && view.last_seen < cutoff)
            .map(|(id, view)| (id.clone(), view.last_seen))
            .collect();
        silent.sort();
        silent
    }

    /// The mean of `nodes`' latest GPU utilization, over those that reported one.
    pub(crate) fn mean_utilization<'a>(&self, nodes: impl IntoIterator<Item = &'a NodeId>) -> Option<f64> {
        let inner = self.lock();
        let (sum, count) = nodes
            .into_iter()
            .filter_map(|id| inner.utilization.get(id))
            .fold((0.0, 0u32), |(sum, count), u| (sum + u, count + 1));
        (count > 0).then(|| sum / f64::from(count))
    }

    /// How many nodes' latest GPU utilization falls in each tenth of 0–100 % (100 % in
    /// the last), and how many nodes in service (ACTIVE, CORDONED, DRAINING) reported none.
    pub(crate) fn utilization_histogram(&self) -> UtilizationHistogram {
        let inner = self.lock();
        let mut histogram = UtilizationHistogram::default();
        for percent in inner.utilization.values() {
            // Percentages are checked to be within 0..=100 when a heartbeat arrives.
            let tenth = (percent / 10.0).floor().clamp(0.0, 9.0) as usize;
            histogram.tenths[tenth] += 1;
        }
        histogram.without_metrics =
            inner.nodes.iter().filter(|(id, view)| view.is_judged() && !inner.utilization.contains_key(*id)).count()
                as u64;
        histogram
    }

    /// How many of `pool`'s nodes are in each status.
    pub(crate) fn pool_statuses(&self, pool: &bosun_core::PoolName) -> HashMap<NodeStatus, u32> {
        let mut counts = HashMap::new();
        for view in self.lock().nodes.values().filter(|view| view.pool.as_ref() == Some(pool)) {
            *counts.entry(view.status).or_default() += 1;
        }
        counts
    }

    pub(crate) fn counts(&self) -> HashMap<(NodeStatus, Health), u64> {
        let mut counts = HashMap::new();
        for view in self.lock().nodes.values() {
            *counts.entry((view.status, view.health)).or_default() += 1;
        }
        counts
    }

    /// How long ago judged nodes were last seen.
    pub(crate) fn heartbeat_ages(&self, now: Timestamp) -> AgeSummary {
        let mut ages: Vec<Duration> = self
            .lock()
            .nodes
            .values()
            .filter(|view| view.is_judged())
            .map(|view| now.saturating_since(view.last_seen))
            .collect();
        if ages.is_empty() {
            return AgeSummary::default();
        }
        ages.sort_unstable();
        let at = |q: f64| bosun_core::stats::percentile(&ages, q).unwrap_or_default();
        AgeSummary { median: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

#[cfg(test)]
mod tests {
    use bosun_core::NodeRegistration;

    use super::*;

    fn node(id: &str, at: Timestamp) -> Node {
        let registration = NodeRegistration {
            node_id: NodeId::new(id).expect("valid id"),
            provider: "fake".into(),
            region: String::new(),
            zone: String::new(),
            instance_type: String::new(),
            pool: None,
            labels: Default::default(),
            gpus: Vec::new(),
            metadata: Default::default(),
        };
        Node::register(&registration, at).expect("new node")
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000)
    }

    #[test]
    fn signs_of_life_heard_elsewhere_move_times_forward_and_are_not_flushed_again() {
        let fleet = Fleet::default();
        fleet.load([&node("a", t(0)), &node("b", t(0))], fleet.mark());
        let a = NodeId::new("a").expect("id");
        fleet.heartbeat(&a, t(9), None).expect("known");
        let _ = fleet.take_pending();
        let heard = |id: &str, at| Heartbeat { node_id: NodeId::new(id).expect("id"), at };
        fleet.heard_elsewhere(&[heard("a", t(4)), heard("b", t(6)), heard("stranger", t(6))]);
        assert_eq!(fleet.get(&a).map(|v| (v.last_seen, v.last_heartbeat)), Some((t(9), Some(t(9)))), "never back");
        let b = fleet.get(&NodeId::new("b").expect("id")).expect("b");
        assert_eq!((b.last_seen, b.last_heartbeat), (t(6), Some(t(6))));
        assert_eq!(fleet.pending_len(), 0, "another replica wrote these already");
        assert_eq!(fleet.len(), 2, "an unknown node comes with its record, not with a heartbeat");
        assert_eq!(fleet.silent_since(t(7)), vec![NodeId::new("b").expect("id")]);
    }

    #[test]
    fn metrics_are_kept_for_the_store_once_per_sample_interval() {
        let fleet = Fleet::default();
        fleet.load([&node("a", t(0))], fleet.mark());
        let a = NodeId::new("a").expect("id");
        let sample = |at: Timestamp| MetricSample {
            node_id: a.clone(),
            at,
            cpu_percent: 10.0,
            memory_percent: 20.0,
            gpus: Vec::new(),
        };
        let kept = |fleet: &Fleet| fleet.take_pending().samples.iter().map(|s| s.at).collect::<Vec<_>>();
        fleet.heartbeat(&a, t(10), Some(sample(t(10)))).expect("known");
        // A newer heartbeat within the interval, with or without metrics, keeps the buffered sample.
        fleet.heartbeat(&a, t(20), Some(sample(t(20)))).expect("known");
        fleet.heartbeat(&a, t(25), None).expect("known");
        let batch = fleet.take_pending();
        assert_eq!(batch.heartbeats.iter().map(|h| h.at).collect::<Vec<_>>(), [t(25)]);
        assert_eq!(batch.samples.iter().map(|s| s.at).collect::<Vec<_>>(), [t(10)]);
        fleet.heartbeat(&a, t(30), Some(sample(t(30)))).expect("known");
        assert!(kept(&fleet).is_empty(), "within 30 s of the last kept one");
        fleet.heartbeat(&a, t(40), Some(sample(t(40)))).expect("known");
        assert_eq!(kept(&fleet), [t(40)]);
    }

    #[test]
    fn utilization_falls_in_tenths_and_nodes_without_metrics_are_counted() {
        let fleet = Fleet::default();
        let ids = ["a", "b", "c", "d", "e"];
        let nodes: Vec<Node> = ids.iter().map(|id| node(id, t(0))).collect();
        fleet.load(nodes.iter(), fleet.mark());
        let report = |id: &str, percents: &[f64]| {
            let id = NodeId::new(id).expect("id");
            let gpus = percents
                .iter()
                .map(|&utilization_percent| bosun_core::GpuSample {
                    index: 0,
                    temperature_c: 40.0,
                    power_w: 300.0,
                    utilization_percent,
                    memory_used_bytes: 0,
                })
                .collect();
            let sample = MetricSample { node_id: id.clone(), at: t(1), cpu_percent: 0.0, memory_percent: 0.0, gpus };
            fleet.heartbeat(&id, t(1), Some(sample)).expect("known");
        };
        report("a", &[0.0, 0.0]);
        report("b", &[9.9]);
        report("c", &[50.0, 70.0]);
        report("d", &[100.0]);
        let histogram = fleet.utilization_histogram();
        assert_eq!(histogram.tenths, [2, 0, 0, 0, 0, 0, 1, 0, 0, 1]);
        assert_eq!(histogram.without_metrics, 1, "e reported none");
    }

    #[test]
    fn a_deletion_read_late_keeps_a_later_registration() {
        let fleet = Fleet::default();
        let first = node("a", t(0));
        fleet.load([&first], fleet.mark());
        let again = node("a", t(50));
        fleet.upsert(&again);
        assert!(!fleet.deleted(&first), "the deleted node registered again since");
        assert_eq!(fleet.registered_at(&first.id), Some(t(50)));
        assert!(fleet.deleted(&again));
        assert!(!fleet.contains(&first.id));
    }

    #[test]
    fn heartbeats_buffer_the_newest_per_node_and_unknown_nodes_are_refused() {
        let fleet = Fleet::default();
        fleet.load([&node("a", t(0)), &node("b", t(0))], fleet.mark());
        assert!(fleet.heartbeat(&NodeId::new("a").expect("id"), t(5), None).is_ok());
        assert!(fleet.heartbeat(&NodeId::new("a").expect("id"), t(7), None).is_ok());
        assert!(fleet.heartbeat(&NodeId::new("zz").expect("id"), t(7), None).is_err());
        let batch = fleet.take_pending();
        assert_eq!(batch.heartbeats.len(), 1);
        assert_eq!(batch.heartbeats[0].at, t(7));
        assert_eq!(fleet.pending_len(), 0);

        // A failed flush goes back, under newer heartbeats.
        assert!(fleet.heartbeat(&NodeId::new("a").expect("id"), t(9), None).is_ok());
        fleet.restore_pending(batch);
        let again = fleet.take_pending();
        assert_eq!(again.heartbeats[0].at, t(9));
    }

    #[test]
    fn silence_is_judged_only_for_live_statuses() {
        let fleet = Fleet::default();
        let mut gone = node("gone", t(0));
        gone.status = NodeStatus::Terminating;
        fleet.load([&node("quiet", t(0)), &node("chatty", t(0)), &gone], fleet.mark());
        fleet.heartbeat(&NodeId::new("chatty").expect("id"), t(100), None).expect("known");
        let silent: Vec<String> = fleet.silent_since(t(50)).iter().map(ToString::to_string).collect();
        assert_eq!(silent, ["quiet"]);
        assert_eq!(fleet.heartbeat_ages(t(100)).max, Duration::from_secs(100));
    }

    #[test]
    fn reload_keeps_newer_signs_of_life() {
        let fleet = Fleet::default();
        let n = node("n", t(0));
        fleet.load([&n], fleet.mark());
        fleet.heartbeat(&n.id, t(30), None).expect("known");
        fleet.load([&n], fleet.mark());
        assert_eq!(fleet.get(&n.id).expect("known").last_seen, t(30));
        fleet.load(std::iter::empty(), fleet.mark());
        assert_eq!(fleet.get(&n.id), None);
        assert_eq!(fleet.pending_len(), 0, "a node gone from the store takes its buffered heartbeat with it");
    }

    #[test]
    fn a_reload_neither_regresses_status_nor_forgets_a_node_registered_meanwhile() {
        let fleet = Fleet::default();
        let old = node("n", t(0));
        let mut newer = old.clone();
        newer.status = NodeStatus::Cordoned;
        newer.revision = newer.revision.next();
        fleet.upsert(&newer);
        // A snapshot read before the cordon committed, and a stale "before" of an edit.
        let mark = fleet.mark();
        let late = node("late", t(5));
        fleet.upsert(&late);
        fleet.load([&old], mark);
        fleet.upsert(&old);
        assert_eq!(fleet.get(&old.id).expect("known").status, NodeStatus::Cordoned);
        assert!(fleet.get(&late.id).is_some(), "registered while the snapshot was read");
    }
}
