//! What the remediation targets ask of a run (graded remediation, surge), measured from
//! the control plane's answers against the failures the simulator injected:
//!
//! - **wrong replacements**: nodes the control plane took out of service (UNHEALTHY, or
//!   terminated as `replaced:`) although every failure injected into them was an
//!   application-class XID;
//! - **time below min usable capacity**, per pool: the longest stretch in which booting
//!   machines plus nodes in service were fewer than `min_nodes`, beside the time a machine
//!   takes to boot (provisioning to its agent registering);
//! - **time to replacement**: from an XID the catalog answers with `replace`, injected into
//!   a pool machine, to a newer node of that pool serving (ACTIVE), matched in order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bosun_api::{convert, v1};
use bosun_core::xid::XidCatalog;
use bosun_core::{NodeStatus, RemediationAction, Timestamp};
use serde::Serialize;

/// Nodes named in the report at most (the count is complete).
const NAMED: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct RemediationReport {
    pub wrong_replacements: u64,
    /// The first few of them.
    pub wrong_replacement_nodes: Vec<String>,
    /// Steps the control plane started, by step, from its `bosun_remediation_steps_total`.
    pub steps: BTreeMap<String, u64>,
    /// XIDs the catalog answers with `replace`, injected into pool machines.
    pub replace_class_failures: u64,
    /// How many of them were followed by a replacement serving, and how long that took.
    pub replacements_measured: u64,
    pub time_to_replacement_p50_s: Option<f64>,
    pub time_to_replacement_max_s: Option<f64>,
    pub pools: BTreeMap<String, PoolCapacity>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolCapacity {
    pub min_nodes: u32,
    /// The longest stretch with fewer usable machines than `min_nodes`, in seconds of
    /// simulated time, as sampled.
    pub longest_below_min_s: f64,
    pub total_below_min_s: f64,
    /// The longest a machine of the pool took from provisioning to serving.
    pub boot_s: f64,
}

#[derive(Debug, Default)]
struct NodeFaults {
    /// Every failure injected so far was an application-class XID.
    application_only: bool,
}

#[derive(Debug, Default)]
struct PoolTrack {
    min_nodes: u32,
    below_since: Option<f64>,
    longest: f64,
    total: f64,
    boot: f64,
}

/// Collects the measurements as the run samples the control plane.
#[derive(Debug, Default)]
pub(crate) struct RemediationTracker {
    faults: BTreeMap<String, NodeFaults>,
    wrong: BTreeSet<String>,
    /// Replace-class XIDs on pool machines not yet followed by a replacement: when, and
    /// the node (its pool is read when the node is next seen).
    pending: VecDeque<(Timestamp, String)>,
    replace_class: u64,
    /// Nodes already counted as someone's replacement.
    claimed: BTreeSet<String>,
    latencies: Vec<f64>,
    pools: BTreeMap<String, PoolTrack>,
}

impl RemediationTracker {
    /// Records a failure the simulator injected into `node` at `at`; `pool_machine` when
    /// the node is a fake-provider machine of a pool.
    pub(crate) fn injected(&mut self, node: &str, xid: Option<u32>, at: Timestamp, pool_machine: bool) {
        let action = xid.map(|code| XidCatalog::builtin().action(code));
        let application = action == Some(RemediationAction::RestartApp);
        let faults = self.faults.entry(node.to_owned()).or_insert(NodeFaults { application_only: true });
        faults.application_only &= application;
        if pool_machine && action == Some(RemediationAction::Replace) {
            self.replace_class += 1;
            self.pending.push_back((at, node.to_owned()));
        }
    }

    /// Reads one sample of the control plane: every node (TERMINATED ones included), the
    /// pools' live instances and the pools.
    pub(crate) fn observe(&mut self, t_s: f64, nodes: &[v1::Node], instances: &[v1::Instance], pools: &[v1::Pool]) {
        let status = |n: &v1::Node| convert::node_status_filter("status", n.status).ok().flatten();
        for node in nodes {
            let taken_out = match status(node) {
                Some(NodeStatus::Unhealthy) => true,
                Some(NodeStatus::Terminated | NodeStatus::Terminating) => node.status_reason.starts_with("replaced: "),
                _ => false,
            };
            if taken_out && self.faults.get(&node.node_id).is_some_and(|f| f.application_only) {
                self.wrong.insert(node.node_id.clone());
            }
        }
        self.match_replacements(nodes);
        self.track_capacity(t_s, nodes, instances, pools);
    }

    fn match_replacements(&mut self, nodes: &[v1::Node]) {
        let pool_of: BTreeMap<&str, &str> = nodes.iter().map(|n| (n.node_id.as_str(), n.pool.as_str())).collect();
        let mut still = VecDeque::new();
        while let Some((at, failed)) = self.pending.pop_front() {
            let Some(pool) = pool_of.get(failed.as_str()).filter(|p| !p.is_empty()) else {
                still.push_back((at, failed));
                continue;
            };
            let replacement = nodes
                .iter()
                .filter(|n| n.pool == *pool && n.node_id != failed && !self.claimed.contains(&n.node_id))
                .filter(|n| convert::node_status_filter("status", n.status).ok().flatten() == Some(NodeStatus::Active))
                .filter_map(|n| n.registered_at.as_option().map(|r| (convert::from_timestamp(r), n)))
                .filter(|(registered, _)| *registered > at)
                .min_by_key(|(registered, _)| *registered);
            match replacement {
                Some((registered, node)) => {
                    self.claimed.insert(node.node_id.clone());
                    self.latencies.push(registered.saturating_since(at).as_secs_f64());
                }
                None => still.push_back((at, failed)),
            }
        }
        self.pending = still;
    }

    fn track_capacity(&mut self, t_s: f64, nodes: &[v1::Node], instances: &[v1::Instance], pools: &[v1::Pool]) {
        let serving: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| {
                matches!(
                    convert::node_status_filter("status", n.status).ok().flatten(),
                    Some(NodeStatus::Active | NodeStatus::Cordoned | NodeStatus::Draining)
                )
            })
            .map(|n| n.node_id.as_str())
            .collect();
        for pool in pools {
            let mut usable = 0u32;
            for instance in instances.iter().filter(|i| i.pool == pool.name) {
                let state =
                    convert::instance_states_from("state", &[instance.state]).ok().and_then(|s| s.first().copied());
                let live = match state {
                    Some(bosun_core::InstanceState::Provisioning | bosun_core::InstanceState::PendingRegistration) => {
                        true
                    }
                    Some(bosun_core::InstanceState::Running) => serving.contains(instance.node_id.as_str()),
                    _ => false,
                };
                usable += u32::from(live);
            }
            let track = self.pools.entry(pool.name.clone()).or_default();
            track.min_nodes = pool.min_nodes;
            for instance in instances.iter().filter(|i| i.pool == pool.name) {
                if let (Some(created), Some(ready)) = (instance.created_at.as_option(), instance.ready_at.as_option()) {
                    let boot = convert::from_timestamp(ready).saturating_since(convert::from_timestamp(created));
                    track.boot = track.boot.max(boot.as_secs_f64());
                }
            }
            if usable < pool.min_nodes {
                let since = *track.below_since.get_or_insert(t_s);
                track.longest = track.longest.max(t_s - since);
            } else if let Some(since) = track.below_since.take() {
                track.longest = track.longest.max(t_s - since);
                track.total += t_s - since;
            }
        }
    }

    pub(crate) fn finish(mut self, t_s: f64, steps: BTreeMap<String, u64>) -> RemediationReport {
        for track in self.pools.values_mut() {
            if let Some(since) = track.below_since.take() {
                track.longest = track.longest.max(t_s - since);
                track.total += t_s - since;
            }
        }
        let mut latencies = self.latencies.clone();
        latencies.sort_by(f64::total_cmp);
        RemediationReport {
            wrong_replacements: self.wrong.len() as u64,
            wrong_replacement_nodes: self.wrong.iter().take(NAMED).cloned().collect(),
            steps,
            replace_class_failures: self.replace_class,
            replacements_measured: latencies.len() as u64,
            time_to_replacement_p50_s: bosun_core::stats::percentile(&latencies, 0.5),
            time_to_replacement_max_s: latencies.last().copied(),
            pools: self
                .pools
                .into_iter()
                .map(|(name, t)| {
                    let capacity = PoolCapacity {
                        min_nodes: t.min_nodes,
                        longest_below_min_s: t.longest,
                        total_below_min_s: t.total,
                        boot_s: t.boot,
                    };
                    (name, capacity)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, pool: &str, status: v1::NodeStatus, registered_s: i64, reason: &str) -> v1::Node {
        v1::Node {
            node_id: id.into(),
            pool: pool.into(),
            status: status.into(),
            status_reason: reason.into(),
            registered_at: buffa::MessageField::some(convert::timestamp(at(registered_s))),
            ..Default::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000)
    }

    #[test]
    fn application_faults_that_take_a_node_out_are_wrong_replacements() {
        let mut tracker = RemediationTracker::default();
        tracker.injected("app", Some(13), at(1), false);
        tracker.injected("mixed", Some(13), at(1), false);
        tracker.injected("mixed", Some(79), at(2), false);
        let nodes = [
            node("app", "", v1::NodeStatus::NODE_STATUS_UNHEALTHY, 0, "health report"),
            node("mixed", "", v1::NodeStatus::NODE_STATUS_UNHEALTHY, 0, "health report"),
        ];
        tracker.observe(10.0, &nodes, &[], &[]);
        let report = tracker.finish(10.0, BTreeMap::new());
        assert_eq!((report.wrong_replacements, report.wrong_replacement_nodes), (1, vec!["app".to_owned()]));
    }

    #[test]
    fn a_replacement_is_the_next_newer_active_node_of_the_pool() {
        let mut tracker = RemediationTracker::default();
        tracker.injected("p-1", Some(79), at(100), true);
        tracker.injected("p-2", Some(94), at(100), true);
        let nodes = [
            node("p-1", "p", v1::NodeStatus::NODE_STATUS_UNHEALTHY, 0, "fatal"),
            node("p-2", "p", v1::NodeStatus::NODE_STATUS_ACTIVE, 0, ""),
            node("p-3", "p", v1::NodeStatus::NODE_STATUS_ACTIVE, 130, ""),
        ];
        tracker.observe(140.0, &nodes, &[], &[]);
        let report = tracker.finish(140.0, BTreeMap::new());
        assert_eq!(report.replace_class_failures, 1, "XID 94 is reset, not replaced");
        assert_eq!((report.replacements_measured, report.time_to_replacement_max_s), (1, Some(30.0)));
    }

    #[test]
    fn time_below_min_is_measured_between_samples() {
        let mut tracker = RemediationTracker::default();
        let pool = v1::Pool { name: "p".into(), min_nodes: 2, ..Default::default() };
        let running = |id: &str| v1::Instance {
            pool: "p".into(),
            node_id: id.into(),
            state: v1::InstanceState::INSTANCE_STATE_RUNNING.into(),
            ..Default::default()
        };
        let instances = [running("a"), running("b")];
        let active = |id: &str| node(id, "p", v1::NodeStatus::NODE_STATUS_ACTIVE, 0, "");
        let sick = node("b", "p", v1::NodeStatus::NODE_STATUS_UNHEALTHY, 0, "");
        tracker.observe(0.0, &[active("a"), active("b")], &instances, std::slice::from_ref(&pool));
        tracker.observe(5.0, &[active("a"), sick.clone()], &instances, std::slice::from_ref(&pool));
        tracker.observe(10.0, &[active("a"), sick], &instances, std::slice::from_ref(&pool));
        tracker.observe(15.0, &[active("a"), active("b")], &instances, std::slice::from_ref(&pool));
        let report = tracker.finish(15.0, BTreeMap::new());
        let p = &report.pools["p"];
        assert_eq!((p.longest_below_min_s, p.total_below_min_s, p.min_nodes), (10.0, 10.0, 2));
    }
}
