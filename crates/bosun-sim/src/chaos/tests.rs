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

/// A running node with the given place in the fleet.
fn node_at(id: &str, provider: &str, region: &str, zone: &str, rack: &str) -> SimNode {
    let spec = NodeSpec {
        id: id.parse().expect("id"),
        provider: provider.into(),
        region: region.into(),
        zone: zone.into(),
        instance_type: "a3-highgpu-8g".into(),
        gpu_count: 8,
        gpu_type: String::new(),
        labels: Labels::try_from([("rack", rack)]).expect("labels"),
        price_per_hour: None,
    };
    let mut node = SimNode::new(spec, 0, Arc::new(SystemClock));
    node.pretend_running();
    node
}

/// 96 nodes: two providers, two regions each with two zones, racks of six.
fn mixed_fleet() -> BTreeMap<NodeId, SimNode> {
    let mut nodes = BTreeMap::new();
    for i in 0..96 {
        let provider = ["gcp", "aws"][i % 2];
        let region = ["us-central1", "europe-west1"][(i / 2) % 2];
        let zone = format!("{region}-{}", ['a', 'b'][(i / 4) % 2]);
        let rack = format!("{zone}-r{}", i / 48);
        let node = node_at(&format!("n-{i:03}"), provider, region, &zone, &rack);
        nodes.insert(node.spec.id.clone(), node);
    }
    nodes
}

/// What places `a` and `b` share.
fn shares(scope: Scope, a: &SimNode, b: &SimNode) -> bool {
    match scope {
        Scope::Rack => a.spec.labels.get("rack") == b.spec.labels.get("rack"),
        Scope::Zone => a.spec.zone == b.spec.zone,
        Scope::Region => a.spec.region == b.spec.region,
        Scope::Provider => a.spec.provider == b.spec.provider,
        Scope::Random | Scope::Percentage => true,
    }
}

/// One cascade from `origin` (no random failures: a rate of 0), run until every hit it
/// schedules came due; returns the nodes it hit.
fn one_cascade(cascading: &str, origin: &str, all: &BTreeMap<NodeId, SimNode>) -> Vec<NodeId> {
    let config = chaos(&format!("    enabled: true\n    failure_rate: 0\n    cascading: {cascading}\n"));
    let mut engine = ChaosEngine::new(config, Startup::default(), 3);
    let live: Vec<&SimNode> = all.values().collect();
    let origin = &all[&origin.parse::<NodeId>().expect("id")];
    let cascade = engine.start_cascade(origin, &live);
    engine.cascade_from(Duration::ZERO, origin, 1, cascade, &live);
    let actions = run(&mut engine, all, 60);
    let hits = injects(&actions, true);
    assert!(hits.iter().all(|(_, f)| *f == FailureType::Gpu(FaultKind::Xid)), "cascades are XIDs: {hits:?}");
    hits.into_iter().map(|(node, _)| node).collect()
}

#[test]
fn each_cascade_scope_keeps_the_cascade_where_it_started() {
    let all = mixed_fleet();
    let origin = &all[&"n-000".parse::<NodeId>().expect("id")];
    for (scope, name) in
        [(Scope::Rack, "rack"), (Scope::Zone, "zone"), (Scope::Region, "region"), (Scope::Provider, "provider")]
    {
        let hits = one_cascade(
            &format!(
                "{{enabled: true, probability: 1.0, max_depth: 4, min_delay: 1s, max_delay: 3s, scope: {name}, max_affected_percent: 100}}"
            ),
            "n-000",
            &all,
        );
        assert!(!hits.is_empty(), "{name}: the cascade hit something");
        for hit in &hits {
            assert!(shares(scope, origin, &all[hit]), "{name}: {hit} is outside n-000's {name}");
        }
        let unique: BTreeSet<&NodeId> = hits.iter().collect();
        assert_eq!(unique.len(), hits.len(), "{name}: no node twice");
        assert!(!hits.contains(&origin.spec.id), "{name}: not the origin again");
    }
    // A random cascade goes anywhere: with the whole fleet allowed it leaves n-000's zone.
    let hits = one_cascade(
        "{enabled: true, probability: 1.0, max_depth: 4, min_delay: 1s, max_delay: 3s, scope: random, max_affected_percent: 100}",
        "n-000",
        &all,
    );
    assert!(hits.iter().any(|hit| !shares(Scope::Zone, origin, &all[hit])), "{hits:?}");
    assert!(hits.iter().any(|hit| !shares(Scope::Provider, origin, &all[hit])), "{hits:?}");
}

#[test]
fn max_affected_percent_reads_ten_as_ten_percent_like_a_fraction_of_point_one() {
    let all = fleet(101);
    let live: Vec<&SimNode> = all.values().collect();
    let origin = live[0];
    let budget = |percent: &str| {
        let config = chaos(&format!(
            "    enabled: true\n    cascading: {{enabled: true, probability: 1.0, scope: zone, max_affected_percent: {percent}}}\n"
        ));
        let mut engine = ChaosEngine::new(config, Startup::default(), 1);
        let cascade = engine.start_cascade(origin, &live);
        engine.cascades[&cascade].remaining
    };
    // 100 other nodes in the zone.
    assert_eq!(budget("10"), 10);
    assert_eq!(budget("0.1"), 10);
    assert_eq!(budget("25"), 25);
    assert_eq!(budget("0.25"), 25);
    assert_eq!(budget("0.001"), 1, "at least one");
    let hits = one_cascade(
        "{enabled: true, probability: 1.0, max_depth: 10, min_delay: 1s, max_delay: 2s, scope: zone, max_affected_percent: 10}",
        "node-000",
        &all,
    );
    assert!(!hits.is_empty() && hits.len() <= 10, "{} hits", hits.len());
}

#[test]
fn without_distributions_chaos_injects_navarchs_default_xids() {
    let all = fleet(50);
    let config = chaos("    enabled: true\n    failure_rate: 6000\n");
    assert!(config.xid_distribution.is_empty() && config.failure_types.is_empty());
    let mut engine = ChaosEngine::new(config, Startup::default(), 9);
    let actions = run(&mut engine, &all, 30);
    let mut codes = BTreeSet::new();
    let mut count = 0;
    for action in &actions {
        if let ChaosAction::Inject { failure, xid, .. } = action {
            assert_eq!(*failure, FailureType::Gpu(FaultKind::Xid), "failure_types defaults to xid_error");
            let code = xid.expect("an XID failure draws a code");
            assert!(DEFAULT_XIDS.contains(&code), "{code} is not one of Navarch's default XIDs");
            codes.insert(code);
            count += 1;
        }
    }
    // 6000 per minute per 1000 nodes on 50 nodes: 5 a second.
    assert_eq!(count, 150);
    assert!(codes.len() >= 10, "the default mix is uniform over 13 codes: {codes:?}");
}

#[test]
fn failure_types_and_xids_follow_their_weights() {
    let all = fleet(100);
    let config = chaos(
        "    enabled: true\n    failure_rate: 6000\n    xid_distribution: {79: 3, 13: 1}\n    \
         failure_types: [{type: xid_error, weight: 1}, {type: nvlink_error, weight: 1}]\n",
    );
    let mut engine = ChaosEngine::new(config, Startup::default(), 2);
    let actions = run(&mut engine, &all, 60);
    let (mut xid79, mut xid13, mut nvlink) = (0u32, 0u32, 0u32);
    for action in &actions {
        match action {
            ChaosAction::Inject { failure: FailureType::Gpu(FaultKind::Xid), xid: Some(79), .. } => xid79 += 1,
            ChaosAction::Inject { failure: FailureType::Gpu(FaultKind::Xid), xid: Some(13), .. } => xid13 += 1,
            ChaosAction::Inject { failure: FailureType::Gpu(FaultKind::Nvlink), xid: None, .. } => nvlink += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // 600 failures: about 300 NVLink, and XIDs 79 and 13 at 3:1.
    assert_eq!(xid79 + xid13 + nvlink, 600);
    assert!((240..=360).contains(&nvlink), "{nvlink}");
    assert!(xid79 > 2 * xid13 && xid13 > 0, "{xid79} vs {xid13}");
}

/// Whether a node is in an outage's scope.
type InScope = fn(&SimNode) -> bool;

#[test]
fn scheduled_outages_hit_their_scope_for_their_duration() {
    let all = mixed_fleet();
    let config = chaos(
        "    enabled: true\n    scheduled_outages:\n      \
         - {name: zone-down, start_time: 10s, duration: 5s, scope: zone, target: us-central1-a, failure_type: network}\n      \
         - {name: region-hot, start_time: 20s, duration: 5s, scope: region, target: europe-west1, failure_type: temperature}\n      \
         - {name: aws-xids, start_time: 30s, duration: 5s, scope: provider, target: aws, failure_type: xid_error}\n      \
         - {name: some, start_time: 40s, duration: 5s, scope: percentage, target: '50%', failure_type: memory_error}\n",
    );
    let mut engine = ChaosEngine::new(config, Startup::default(), 4);
    let live: Vec<&SimNode> = all.values().collect();
    let at = |engine: &mut ChaosEngine, s: u64| engine.tick(Duration::from_secs(s), &live, &all);
    assert!(at(&mut engine, 9).is_empty(), "nothing before the first start_time");

    let expectations: [(u64, &str, FailureType, InScope); 3] = [
        (10, "zone-down", FailureType::Network, |n| n.spec.zone == "us-central1-a"),
        (20, "region-hot", FailureType::Gpu(FaultKind::Thermal), |n| n.spec.region == "europe-west1"),
        (30, "aws-xids", FailureType::Gpu(FaultKind::Xid), |n| n.spec.provider == "aws"),
    ];
    for (start, name, failure, in_scope) in expectations {
        let started = at(&mut engine, start);
        assert!(started.contains(&ChaosAction::OutageStarted { name: name.into() }), "{name}: {started:?}");
        let hit: BTreeSet<NodeId> = injects(&started, false)
            .into_iter()
            .map(|(node, f)| {
                assert_eq!(f, failure, "{name}");
                node
            })
            .collect();
        let expected: BTreeSet<NodeId> = live.iter().filter(|n| in_scope(n)).map(|n| n.spec.id.clone()).collect();
        assert_eq!(hit, expected, "{name}: exactly its scope");
        if failure == FailureType::Gpu(FaultKind::Xid) {
            assert!(started.iter().all(|a| !matches!(a, ChaosAction::Inject { xid, .. } if *xid != Some(79))));
        }
        assert!(at(&mut engine, start + 4).is_empty(), "{name}: nothing more while it lasts");
        let ended = at(&mut engine, start + 5);
        let recovered: BTreeSet<NodeId> = ended
            .iter()
            .map(|a| match a {
                ChaosAction::Recover { node, failure: None } => node.clone(),
                other => panic!("{name}: expected recoveries only, got {other:?}"),
            })
            .collect();
        assert_eq!(recovered, expected, "{name}: every node recovers after the duration");
    }
    let started = at(&mut engine, 40);
    let hit = injects(&started, false).len();
    assert!((28..=68).contains(&hit), "50% of 96 nodes, drawn per node: {hit}");
    assert!(injects(&started, false).iter().all(|(_, f)| *f == FailureType::Gpu(FaultKind::EccDoubleBit)));
}

#[test]
fn a_percentage_outage_needs_a_number_as_its_target() {
    let text = |target: &str| {
        format!(
            "name: t\nstress:\n  fleet_gen: {{total_nodes: 1}}\n  chaos:\n    scheduled_outages:\n      \
             - {{name: o, start_time: 1s, duration: 1s, scope: percentage, target: '{target}', failure_type: network}}\n"
        )
    };
    for good in ["10", "10%", "2.5"] {
        Scenario::parse(&text(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in ["ten", "", "%"] {
        let error = Scenario::parse(&text(bad)).expect_err(bad);
        assert_eq!(error.path.as_deref(), Some("stress.chaos.scheduled_outages[0].target"), "{bad}: {error}");
        assert!(error.message.contains("such as 10 or 10%"), "{error}");
    }
    let error =
        Scenario::parse(&text("10").replace("failure_type: network", "failure_type: meteor")).expect_err("type");
    assert_eq!(error.path.as_deref(), Some("stress.chaos.scheduled_outages[0].failure_type"), "{error}");
}

#[test]
fn correlated_failures_land_in_their_scope() {
    let all = mixed_fleet();
    let rules = |scope: &str| {
        chaos(&format!(
            "    enabled: true\n    failure_rate: 600\n    failure_types: [{{type: temperature, weight: 1}}]\n    \
             correlated_failures:\n      - {{name: r, trigger: temperature, response: xid_error, probability: 1.0, delay: 1s, scope: {scope}}}\n"
        ))
    };
    let live: Vec<&SimNode> = all.values().collect();
    for scope in ["same_zone", "random"] {
        let mut engine = ChaosEngine::new(rules(scope), Startup::default(), 5);
        // Step by step, so each correlated failure can be matched to the root before it.
        let mut left_zone = false;
        let mut pending: Vec<NodeId> = Vec::new();
        for s in 1..=40 {
            let actions = engine.tick(Duration::from_secs(s), &live, &all);
            for (node, failure) in injects(&actions, true) {
                assert_eq!(failure, FailureType::Gpu(FaultKind::Xid), "the response type");
                let origins: Vec<&NodeId> = pending.iter().collect();
                let same_zone = origins.iter().any(|o| all[*o].spec.zone == all[&node].spec.zone);
                if scope == "same_zone" {
                    assert!(same_zone, "{node} is in none of the zones of {origins:?}");
                    assert!(!origins.contains(&&node) || origins.len() > 1, "not the node that failed");
                } else if !same_zone {
                    left_zone = true;
                }
            }
            // A rule's delay is 1 s: the roots of this second set off next second's.
            pending = injects(&actions, false).into_iter().map(|(node, _)| node).collect();
        }
        if scope == "random" {
            assert!(left_zone, "a random correlation may land anywhere");
        }
    }
}

#[test]
fn replace_fatal_boots_a_successor_after_the_replacement_cold_start() {
    let node: NodeId = "gcp-us-central1-h100-0007".parse().expect("id");
    let config =
        chaos("    enabled: true\n    recovery: {enabled: true, replace_fatal: true, replace_cold_start: 45s}\n");
    let mut engine = ChaosEngine::new(config, Startup::default(), 1);
    let all = fleet(1);
    let live: Vec<&SimNode> = all.values().collect();
    engine.replace_later(&node, Duration::from_secs(100));
    engine.replace_later(&node, Duration::from_secs(101));
    assert!(engine.tick(Duration::from_secs(144), &live, &all).is_empty(), "not before the cold start");
    let replaced = engine.tick(Duration::from_secs(145), &live, &all);
    let successor: NodeId = "gcp-us-central1-h100-0007-gen1".parse().expect("id");
    assert_eq!(replaced, [ChaosAction::Replace { old: node.clone(), new: successor.clone() }], "once per node");
    engine.replace_later(&successor, Duration::from_secs(200));
    let again = engine.tick(Duration::from_secs(245), &live, &all);
    let third: NodeId = "gcp-us-central1-h100-0007-gen2".parse().expect("id");
    assert_eq!(again, [ChaosAction::Replace { old: successor, new: third }]);

    // Without replace_cold_start the fleet's cold start applies, else 30 to 60 s.
    let cold = Startup {
        cold_start_min: Some(crate::scenario::SimDuration(Duration::from_secs(5))),
        cold_start_max: Some(crate::scenario::SimDuration(Duration::from_secs(6))),
        ..Startup::default()
    };
    let config = chaos("    enabled: true\n    recovery: {enabled: true, replace_fatal: true}\n");
    let mut engine = ChaosEngine::new(config.clone(), cold, 1);
    engine.replace_later(&node, Duration::ZERO);
    assert!(engine.tick(Duration::from_secs(4), &live, &all).is_empty());
    assert_eq!(engine.tick(Duration::from_secs(6), &live, &all).len(), 1, "within the fleet's 5-6 s cold start");
    let mut engine = ChaosEngine::new(config, Startup::default(), 1);
    engine.replace_later(&node, Duration::ZERO);
    assert!(engine.tick(Duration::from_secs(29), &live, &all).is_empty());
    assert_eq!(engine.tick(Duration::from_secs(60), &live, &all).len(), 1, "within 30 to 60 s");

    // Without replace_fatal nothing is replaced.
    let config = chaos("    enabled: true\n    recovery: {enabled: true, probability: 0.5}\n");
    let mut engine = ChaosEngine::new(config, Startup::default(), 1);
    engine.replace_later(&node, Duration::ZERO);
    assert!(engine.tick(Duration::from_secs(3600), &live, &all).is_empty());
}

#[test]
fn the_same_seed_draws_the_same_failures_in_the_same_order() {
    let all = mixed_fleet();
    let config = chaos(
        "    enabled: true\n    failure_rate: 3000\n    xid_distribution: {79: 1, 13: 1, 74: 1}\n    \
         failure_types: [{type: xid_error, weight: 2}, {type: temperature, weight: 1}, {type: nvlink_error, weight: 1}]\n    \
         cascading: {enabled: true, probability: 0.5, max_depth: 3, min_delay: 1s, max_delay: 5s, scope: zone, max_affected_percent: 10}\n    \
         recovery: {enabled: true, probability: 0.5, mean_time: 10s, std_dev: 3s}\n    \
         correlated_failures:\n      - {name: c, trigger: '74', response: temperature, probability: 0.5, delay: 2s, scope: same_zone}\n",
    );
    let actions = |seed: u64| {
        let mut engine = ChaosEngine::new(config.clone(), Startup::default(), seed);
        let live: Vec<&SimNode> = all.values().collect();
        (1..=60).map(|s| engine.tick(Duration::from_secs(s), &live, &all)).collect::<Vec<_>>()
    };
    let first = actions(21);
    let kinds = |a: &[Vec<ChaosAction>]| {
        let flat: Vec<&ChaosAction> = a.iter().flatten().collect();
        let count = |f: fn(&ChaosAction) -> bool| flat.iter().filter(|a| f(a)).count();
        (
            count(|a| matches!(a, ChaosAction::Inject { cascading: false, .. })),
            count(|a| matches!(a, ChaosAction::Inject { cascading: true, .. })),
            count(|a| matches!(a, ChaosAction::Recover { .. })),
        )
    };
    let (roots, cascades, recoveries) = kinds(&first);
    assert!(
        roots > 50 && cascades > 0 && recoveries > 0,
        "{roots} roots, {cascades} cascade hits, {recoveries} recoveries"
    );
    // Second by second, the same nodes, failures, XIDs and recoveries.
    assert_eq!(first, actions(21), "the same seed, the same sequence");
    assert_ne!(first, actions(22), "another seed, another sequence");
}
