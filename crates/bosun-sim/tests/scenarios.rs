//! The scenarios in `scenarios/` and the simulator's own behaviour, under virtual time.
//!
//! Each test builds its own simulation runtime (a paused clock on one thread), so these are
//! plain `#[test]`s. The small scenarios run on SQLite, and the ones that exercise the
//! store hardest also on PostgreSQL (skipped without it, a failure under CI).

mod common;

use std::path::PathBuf;

use bosun_sim::{Pace, RunOptions, Scenario};
use bosun_store::Backend;
use common::{Finished, inline, run_on, run_with};

fn scenario_file(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_passes(backend: Backend, file: &str) {
    let Some(report) = run_on(backend, &scenario_file(file), 7) else { return };
    assert!(
        report.passed,
        "{file} on {backend:?}: {}\n{}",
        report.failure.clone().unwrap_or_default(),
        report.to_json()
    );
    assert!(report.assertions.iter().all(|a| a.passed));
    let errors: u64 = report.rpc.iter().filter(|m| m.method != "PollCommands").map(|m| m.errors).sum();
    assert_eq!(errors, 0, "{file}: agent calls failed: {:?}", report.rpc);
}

macro_rules! scenario_tests {
    ($($name:ident: $file:literal on [$($backend:ident),+];)+) => {
        $(
            mod $name {
                $(
                    #[test]
                    #[allow(non_snake_case)]
                    fn $backend() {
                        super::assert_passes(bosun_store::Backend::$backend, $file);
                    }
                )+
            }
        )+
    };
}

scenario_tests! {
    basic_fleet: "basic-fleet.yaml" on [Sqlite, Postgres];
    cordon_drain: "cordon-drain.yaml" on [Sqlite];
    gpu_failure: "gpu-failure.yaml" on [Sqlite];
    xid_classification: "xid-classification.yaml" on [Sqlite];
    heartbeat_loss: "heartbeat-loss.yaml" on [Sqlite, Postgres];
    gpu_failure_replacement: "gpu-failure-replacement.yaml" on [Sqlite, Postgres];
    provider_outage: "provider-outage.yaml" on [Sqlite];
    replacement_budget: "replacement-budget.yaml" on [Sqlite];
    remediation_ladder: "remediation-ladder.yaml" on [Sqlite, Postgres];
    restart_capacity: "restart-capacity.yaml" on [Sqlite, Postgres];
    ha_failover: "ha-failover.yaml" on [Postgres];
    runbook_under_chaos: "runbook-under-chaos.yaml" on [Sqlite];
}

/// Three replicas on PostgreSQL: the killed leader's lease runs out, a follower takes over
/// within a lease and a renew interval of simulated time, and the fatal XID that struck
/// while nobody led is replaced exactly once.
#[test]
fn a_killed_leader_is_followed_within_the_lease_and_nothing_is_provisioned_twice() {
    let Some(finished) = Finished::seeded(Backend::Postgres, &scenario_file("ha-failover.yaml"), 11) else { return };
    let report = &finished.report;
    assert!(report.passed, "{:?}\n{}", report.failure, report.to_json());
    let replicas = report.replicas.as_ref().expect("a replicas section");
    assert_eq!(replicas.count, 3);
    let [failover] = replicas.failovers.as_slice() else { panic!("one kill_leader: {replicas:?}") };
    assert_eq!(failover.killed, "replica-1", "the first replica leads from the start");
    let new_leader = failover.new_leader.as_deref().expect("a follower took over");
    assert_ne!(new_leader, "replica-1");
    let failover_s = failover.failover_s.expect("measured");
    println!("simulated failover after kill_leader: {failover_s:.1} s");
    assert!((10.0..=12.0).contains(&failover_s), "a whole lease (10 s), at most one renew (2 s) more: {failover_s}");
    let epochs: Vec<u64> = replicas.leaders.iter().map(|l| l.epoch).collect();
    assert!(epochs.windows(2).all(|w| w[1] == w[0] + 1), "one epoch per leader: {epochs:?}");
    // Four machines and one replacement: the fake cloud made five in all.
    let instances = finished.read(async |store| {
        let filter = bosun_store::InstanceFilter::default();
        let filter = &filter;
        bosun_store::all_pages(|page| async move { store.list_instances(filter, &page).await })
            .await
            .expect("instances")
    });
    assert_eq!(instances.len(), 5, "{instances:#?}");
}

#[test]
fn several_replicas_need_postgres() {
    let scenario = inline(
        "name: ha
replicas: 2
",
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(location) = runtime.block_on(bosun_store::testing::TestLocation::new(Backend::Sqlite)) else { return };
    let options = RunOptions { pace: Pace::Virtual, seed: Some(1), ..RunOptions::default() };
    let error = bosun_sim::run_scenario(&scenario, &location.location, &options).expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("replicas: 2 needs a store several servers share"), "{message}");
    assert!(message.contains("postgres://"), "{message}");
}

#[test]
fn scheduled_scaling_follows_its_window() {
    // Two and a half hours of fleet time: one-second steps keep it quick.
    let options =
        RunOptions { pace: Pace::Virtual, seed: Some(1), step: std::time::Duration::from_secs(1), progress: false };
    let report = run_with(Backend::Sqlite, &scenario_file("scheduled-scaling.yaml"), options).expect("sqlite");
    assert!(report.passed, "{:?}", report.failure);
    let decisions = &report.pools["training"];
    assert!(decisions.iter().any(|d| d.target == 5), "scaled up in the window");
    assert_eq!(decisions.last().map(|d| d.target), Some(2), "back to the floor after it");
}

#[test]
fn a_failing_assertion_fails_the_run_and_names_the_assertion() {
    let scenario = inline(
        "name: wrong\nfleet: [{id: node-1}]\nevents: [{at: 0s, action: start_fleet}, {at: 5s, action: wait}]\n\
         assertions:\n  - {type: node_status, target: node-1, expected: unhealthy}\n  - {type: node_count, expected: '==1'}\n",
    );
    let report = run_on(Backend::Sqlite, &scenario, 1).expect("sqlite");
    assert!(!report.passed);
    let failure = report.failure.clone().expect("a reason");
    assert!(failure.contains("assertion node_status node-1 expected unhealthy but was active"), "{failure}");
    assert!(report.assertions[1].passed, "every assertion is still checked");
}

#[test]
fn a_failing_event_stops_the_run_and_names_the_event() {
    let scenario = inline(
        "name: stuck\nfleet: [{id: node-1}]\nevents:\n  - {at: 0s, action: start_fleet}\n  \
         - {at: 1s, action: wait_for_status, target: node-1, params: {expected_status: cordoned, timeout: 5s}}\n  \
         - {at: 30s, action: log, params: {log_message: never}}\n",
    );
    let report = run_on(Backend::Sqlite, &scenario, 1).expect("sqlite");
    let failure = report.failure.clone().expect("failed");
    assert!(failure.contains("wait_for_status node-1 at 1s failed"), "{failure}");
    assert!(failure.contains("did not become cordoned within 5s"), "{failure}");
    assert_eq!(report.events.len(), 2, "the run stopped at the failed event");
    assert!(report.simulated_s < 10.0);
}

#[test]
fn a_boot_failure_keeps_the_agent_from_registering_until_it_is_recovered() {
    let scenario = inline(
        "name: boot\nfleet: [{id: node-1}, {id: node-2}]\nevents:\n  \
         - {at: 0s, action: inject_failure, target: node-2, params: {failure_type: boot_failure}}\n  \
         - {at: 0s, action: start_fleet}\n  \
         - {at: 20s, action: assert, params: {failure_type: node_count, expected_status: '==1'}}\n  \
         - {at: 21s, action: recover_failure, target: node-2}\n  \
         - {at: 21s, action: wait_for_status, target: node-2, params: {expected_status: active, timeout: 2m}}\n\
         assertions: [{type: node_count, expected: '==2'}]\n",
    );
    let report = run_on(Backend::Sqlite, &scenario, 3).expect("sqlite");
    assert!(report.passed, "{:?}", report.failure);
}

#[test]
fn a_machine_that_never_boots_is_failed_and_replaced_by_its_pool() {
    let scenario = inline(
        "name: pool-boot\nconfig:\n  server: {autoscale_interval: 5s, instance_registration_timeout: 30s}\n  \
         providers: {cloud: {type: fake, gpu_count: 8}}\n  \
         pools: {p: {provider: cloud, instance_type: h100-8x, region: sim, min_nodes: 2, max_nodes: 3,\n    \
         health: {unhealthy_after: 2, auto_replace: true}}}\n\
         events:\n  \
         - {at: 5s, action: inject_failure, target: cloud, params: {failure_type: boot_failure, count: 1}}\n  \
         - {at: 10s, action: inject_failure, target: cloud-2, params: {failure_type: xid_error, xid_code: 79}}\n  \
         - {at: 10s, action: wait_for_status, target: cloud-2, params: {expected_status: terminated, timeout: 1m}}\n  \
         - {at: 40s, action: assert, target: 'pool:p', params: {failure_type: node_count, expected_status: '==1'}}\n  \
         - {at: 41s, action: wait_for_status, target: cloud-4, params: {expected_status: active, timeout: 2m}}\n\
         assertions: [{type: node_count, target: 'pool:p', expected: '==2'}]\n",
    );
    let report = run_on(Backend::Sqlite, &scenario, 3).expect("sqlite");
    assert!(report.passed, "{:?}\n{}", report.failure, report.to_json());
    assert!(!report.pools["p"].is_empty(), "the pool's decisions are in the report");
}

const SMALL_STRESS: &str = "
name: small-stress
stress:
  duration: 3m
  metrics_interval: 10s
  fleet_gen:
    total_nodes: 40
    startup: {pattern: linear, duration: 20s, jitter_percent: 10}
  chaos:
    enabled: true
    failure_rate: 300
    failure_types: [{type: xid_error, weight: 60}, {type: temperature, weight: 20}, {type: network, weight: 20}]
    cascading: {enabled: true, probability: 0.3, max_depth: 2, min_delay: 1s, max_delay: 5s, scope: zone, max_affected_percent: 20}
    recovery: {enabled: true, probability: 0.8, mean_time: 30s, std_dev: 10s}
assertions: [{type: node_count, expected: '==40'}]
";

#[test]
fn stress_chaos_is_honoured_at_its_rate_reproducible_from_the_seed_and_reported() {
    let scenario = inline(SMALL_STRESS);
    let first = run_on(Backend::Sqlite, &scenario, 42).expect("sqlite");
    assert!(first.passed, "{:?}", first.failure);
    // 300 per minute per 1000 nodes on 40 nodes: 12 a minute, about 32 over the 160 s
    // after the fleet is up (Navarch's one trial a second would allow at most 180; this
    // checks the rate is applied, not capped or inflated).
    let injected = first.summary.failures_injected;
    assert!((15..=70).contains(&injected), "{injected} failures");
    assert!(first.summary.recoveries > 0);
    assert!(first.timeline.len() >= 18, "a sample every 10 s");
    assert!(first.timeline.iter().any(|s| s.by_status.get("UNHEALTHY").copied().unwrap_or(0) > 0));
    assert!(!first.policy_rule_hits.is_empty(), "rule hits come from the control plane");
    assert!(first.rpc.iter().any(|m| m.method == "Heartbeat" && m.calls > 1000 && m.p99_ms > 0.0));
    let again = run_on(Backend::Sqlite, &scenario, 42).expect("sqlite");
    assert_eq!(first.failures.by_type, again.failures.by_type, "the same seed injects the same failures");
    assert_eq!(first.summary.failures_injected, again.summary.failures_injected);
    let other = run_on(Backend::Sqlite, &scenario, 43).expect("sqlite");
    assert_ne!(
        (first.failures.by_type.clone(), first.summary.failures_injected),
        (other.failures.by_type.clone(), other.summary.failures_injected),
        "another seed, other failures"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    first.write_to(dir.path()).expect("write");
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html");
    for chart in ["Nodes by health", "Failures by type", "Health events by matched rule", "p99 latency by method"] {
        assert!(html.contains(chart), "{chart}");
    }
    assert!(html.matches("<svg").count() >= 6);
    assert!(!html.contains("http://") && !html.contains("https://"), "no network resources");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).expect("json")).expect("valid");
    assert_eq!(json["name"], "small-stress");
}

/// Navarch's stress guide's keys that its cascading-failures and 5000-node-extreme files
/// use: correlated failures and template prices. A cascade with certainty at every depth
/// stays within its share of the zone, correlations fire, and the run finishes.
const CORRELATED_STRESS: &str = "
name: correlated-stress
stress:
  duration: 2m
  metrics_interval: 10s
  fleet_gen:
    total_nodes: 60
    templates:
      - {name: nvlink, weight: 1, gpu_count: 8, instance_type: a3-megagpu-8g, price_per_hour: 32.0}
    regions: {us-central1: 1}
    zones: {us-central1: [us-central1-a]}
    startup: {pattern: instant}
  chaos:
    enabled: true
    failure_rate: 200
    xid_distribution: {74: 1, 13: 1}
    failure_types: [{type: xid_error, weight: 70}, {type: temperature, weight: 30}]
    cascading: {enabled: true, probability: 1.0, max_depth: 6, min_delay: 500ms, max_delay: 2s, scope: zone, max_affected_percent: 0.3}
    recovery: {enabled: true, probability: 0.5, mean_time: 30s, std_dev: 10s}
    correlated_failures:
      - {name: nvlink-cascade, trigger: '74', response: xid_error, probability: 1.0, delay: 1s, scope: same_node}
      - {name: thermal-propagation, trigger: temperature, response: temperature, probability: 1.0, delay: 2s, scope: same_rack}
";

#[test]
fn correlated_failures_fire_cascades_stay_bounded_and_the_fleet_has_a_cost() {
    let scenario = inline(CORRELATED_STRESS);
    let report = run_on(Backend::Sqlite, &scenario, 5).expect("sqlite");
    assert!(report.passed, "{:?}", report.failure);
    let s = &report.summary;
    let roots = s.failures_injected - s.cascading_failures;
    assert!(roots > 0 && s.cascading_failures > 0, "{s:?}");
    // Each root may cascade to 30 % of the 59 other nodes (17), and it and each hit may set
    // off one correlated failure: never more, however likely.
    assert!(s.cascading_failures <= roots * (17 * 2 + 1), "{s:?}");
    // 60 machines at $32/h for the two minutes they ran: $64.
    let cost = s.estimated_cost_usd.expect("priced templates");
    assert!((cost - 64.0).abs() < 1.0, "{cost}");

    let invalid = Scenario::parse(&CORRELATED_STRESS.replace("trigger: temperature", "trigger: meteor"))
        .expect_err("unknown trigger");
    assert!(invalid.to_string().contains("stress.chaos.correlated_failures[1].trigger"), "{invalid}");
    let invalid = Scenario::parse(&CORRELATED_STRESS.replace("price_per_hour: 32.0", "price_per_hour: -1"))
        .expect_err("negative price");
    assert!(invalid.to_string().contains("price_per_hour"), "{invalid}");
}
