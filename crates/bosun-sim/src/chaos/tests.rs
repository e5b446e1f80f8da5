use std::sync::Arc;

use bosun_core::{Labels, SystemClock};

use super::*;
use crate::agents::NodeSpec;
use crate::scenario::Scenario;

/// `count` running nodes in one zone.
fn fleet(count: usize) -> BTreeMap<NodeId, SimNode> {
    (0..count)
        .map(|i| {
            let spec = NodeSpec {
                id: format!("node-{i:03}").parse().expect("id"),
                provider: "gcp".into(),
                region: "us-central1".into(),
                zone: "us-central1-a".into(),
                instance_type: "a3-highgpu-8g".into(),
                gpu_count: 8,
                gpu_type: String::new(),
                labels: Labels::new(),
                price_per_hour: None,
            };
            let mut node = SimNode::new(spec, i as u64, Arc::new(SystemClock));
            node.pretend_running();
            (node.spec.id.clone(), node)
        })
        .collect()
}

fn chaos(yaml: &str) -> Chaos {
    let text = format!(
        "name: t\nstress:\n  fleet_gen: {{total_nodes: 1, templates: [{{name: a, weight: 1, gpu_count: 8}}]}}\n  chaos:\n{yaml}"
    );
    let scenario = Scenario::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    scenario.stress.and_then(|s| s.chaos).expect("chaos")
}

/// Runs the engine second by second up to `until` seconds.
fn run(engine: &mut ChaosEngine, all: &BTreeMap<NodeId, SimNode>, until: u64) -> Vec<ChaosAction> {
    let live: Vec<&SimNode> = all.values().collect();
    (1..=until).flat_map(|s| engine.tick(Duration::from_secs(s), &live, all)).collect()
}

fn injects(actions: &[ChaosAction], cascading: bool) -> Vec<(NodeId, FailureType)> {
    actions
        .iter()
        .filter_map(|a| match a {
            ChaosAction::Inject { node, failure, cascading: c, .. } if *c == cascading => {
                Some((node.clone(), *failure))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_correlated_failure_follows_its_trigger_on_the_same_node() {
    let all = fleet(20);
    let rules = "    correlated_failures:\n      - {name: nvlink, trigger: '74', response: temperature, probability: 1.0, delay: 2s, scope: same_node}\n";
    let config = chaos(&format!(
        "    enabled: true\n    failure_rate: 3000\n    xid_distribution: {{74: 1}}\n    failure_types: [{{type: xid_error, weight: 1}}]\n{rules}"
    ));
    let mut engine = ChaosEngine::new(config, Startup::default(), 7);
    let first = run(&mut engine, &all, 10);
    let live: Vec<&SimNode> = all.values().collect();
    // Two more seconds: every correlated failure of the first ten has come due.
    let later: Vec<ChaosAction> = (11..=12).flat_map(|s| engine.tick(Duration::from_secs(s), &live, &all)).collect();
    let roots = injects(&first, false);
    let correlated: Vec<_> = injects(&first, true).into_iter().chain(injects(&later, true)).collect();
    assert!(!roots.is_empty());
    assert_eq!(correlated.len(), roots.len(), "probability 1: one for each XID 74");
    assert!(correlated.iter().all(|(_, f)| *f == FailureType::Gpu(FaultKind::Thermal)));
    let mut on_roots: Vec<&NodeId> = roots.iter().map(|r| &r.0).collect();
    let mut on_correlated: Vec<&NodeId> = correlated.iter().map(|c| &c.0).collect();
    on_roots.sort();
    on_correlated.sort();
    assert_eq!(on_roots, on_correlated, "on the node that failed");
}

#[test]
fn a_cascade_stays_within_its_share_of_the_scope_however_likely() {
    let all = fleet(100);
    let config = chaos(
        "    enabled: true\n    failure_rate: 600\n    failure_types: [{type: xid_error, weight: 1}]\n    \
         cascading: {enabled: true, probability: 1.0, max_depth: 10, min_delay: 1s, max_delay: 2s, scope: zone, max_affected_percent: 0.3}\n",
    );
    let mut engine = ChaosEngine::new(config, Startup::default(), 11);
    let actions = run(&mut engine, &all, 30);
    let roots = injects(&actions, false).len();
    let hits = injects(&actions, true).len();
    // Each cascade hits at most 30 % of the 99 other nodes, whatever its depth.
    assert!(roots > 0 && hits <= roots * 29, "{roots} roots, {hits} cascade hits");
    assert!(engine.cascades.len() <= roots, "finished cascades are forgotten");
}
