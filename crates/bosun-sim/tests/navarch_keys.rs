//! Every action, assertion and fleet key of Navarch's scenario format, run end to end
//! against the control plane (reference/navarch.md 9.2), and the pool keys whose effect
//! only a running fleet shows: `health.unhealthy_after`, `health.auto_replace`, `zones`,
//! per-provider `regions` and `instance_type`, pool `labels`, a fake provider's
//! `gpu_count`. Effects are read back from the control plane's store after each run.

mod common;

use bosun_core::{CommandKind, CommandState, Health, InstanceState, NodeId, NodeStatus};
use bosun_sim::scenario::{Action, Scenario};
use bosun_store::{Backend, CommandFilter, InstanceFilter, NodeFilter, PageRequest};
use common::{Finished, inline, run_on};

macro_rules! on_sql_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(bosun_store::Backend::Sqlite);
                }
                #[test]
                fn postgres() {
                    super::$name(bosun_store::Backend::Postgres);
                }
            }
        )+
    };
}

on_sql_backends!(
    every_navarch_action_runs_against_the_control_plane,
    unhealthy_after_one_replaces_at_the_first_unhealthy_report,
    unhealthy_after_two_waits_for_the_second_report,
    unhealthy_after_counts_heartbeat_timeouts_of_a_silent_node,
    auto_replace_off_never_replaces,
    pool_keys_reach_the_machines_and_their_nodes,
);

fn node(id: &str) -> NodeId {
    id.parse().expect("node id")
}

fn assert_passed(report: &bosun_sim::Report) {
    assert!(report.passed, "{:?}\n{}", report.failure, report.to_json());
}

/// Navarch's fleet keys, every action, `assert` without a `failure_type` (a status), and
/// the three assertion types, `node_count` with `target: all` among them.
const ACTIONS: &str = r#"
name: navarch-actions
config:
  server: {startup_grace: 5s, heartbeat_timeout: 9s}
fleet:
  - id: node-1
    provider: gcp
    region: us-central1
    zone: us-central1-a
    instance_type: a3-highgpu-8g
    gpu_count: 4
    gpu_type: NVIDIA A100-SXM4-80GB
    labels: {team: ml, tier: premium}
  - {id: node-2}
  - {id: node-3}
  - {id: node-4}
  - {id: node-5}
  - {id: node-6}
events:
  - {at: 0s, action: start_fleet}
  - {at: 5s, action: assert, target: node-1, params: {expected_status: active}}
  - {at: 6s, action: inject_failure, target: node-1, params: {failure_type: temperature, gpu_index: -1}}
  - {at: 6s, action: wait_for_status, target: node-1, params: {expected_status: unhealthy, timeout: 20s}}
  - {at: 7s, action: inject_failure, target: node-2, params: {failure_type: nvlink_error, gpu_index: 5}}
  - {at: 7s, action: wait_for_status, target: node-2, params: {expected_status: degraded, timeout: 20s}}
  - {at: 7s, action: assert, target: node-2, params: {failure_type: node_status, expected_status: active}}
  - {at: 30s, action: issue_command, target: node-3, params: {command_type: run_diagnostic, command_args: {test: quick, level: 2}}}
  - {at: 30s, action: issue_command, target: node-4, params: {command_type: terminate, command_args: {reason: decommissioned, force: true}}}
  - {at: 30s, action: wait_for_status, target: node-4, params: {expected_status: terminated, timeout: 30s}}
  - {at: 60s, action: stop_fleet, target: node-5}
  - {at: 60s, action: wait_for_status, target: node-5, params: {expected_status: unhealthy, timeout: 30s}}
  - {at: 61s, action: assert, target: node-5, params: {failure_type: health_status, expected_status: healthy}}
  - {at: 100s, action: stop_fleet}
  - {at: 130s, action: log, params: {log_message: every machine is off}}
assertions:
  - {type: node_status, target: node-1, expected: unhealthy}
  - {type: health_status, target: node-1, expected: unhealthy}
  - {type: node_status, target: node-4, expected: terminated}
  - {type: node_count, target: all, expected: "==5"}
  - {type: node_count, target: unhealthy, expected: "==5"}
  - {type: node_count, expected: "==5"}
"#;

fn every_navarch_action_runs_against_the_control_plane(backend: Backend) {
    let scenario = inline(ACTIONS);
    let Some(run) = Finished::seeded(backend, &scenario, 1) else { return };
    assert_passed(&run.report);
    let events = &run.report.events;
    assert!(events.iter().any(|e| e.action == Action::StopFleet && e.detail == "stopped 1 nodes"));
    assert!(events.iter().any(|e| e.action == Action::StopFleet && e.detail == "stopped 6 nodes"));

    run.read(async |store| {
        // The fleet entry's keys reached the registered node.
        let one = store.node(&node("node-1")).await.expect("node-1");
        assert_eq!(
            (one.provider.as_str(), one.region.as_str(), one.zone.as_str(), one.instance_type.as_str()),
            ("gcp", "us-central1", "us-central1-a", "a3-highgpu-8g")
        );
        assert_eq!((one.gpu_count, one.gpu_model.as_str()), (4, "NVIDIA A100-SXM4-80GB"));
        assert_eq!((one.labels.get("team"), one.labels.get("tier")), (Some("ml"), Some("premium")));
        let gpus = store.node_gpus(&node("node-1")).await.expect("gpus");
        assert_eq!(gpus.len(), 4);
        assert!(gpus.iter().all(|g| g.name == "NVIDIA A100-SXM4-80GB"));

        // temperature with gpu_index < 0: a thermal event at 95 C for every GPU.
        let history = store.health_history(&node("node-1"), 100).await.expect("history");
        let hot = history
            .iter()
            .find(|r| r.report.events.iter().any(|e| e.event.event_type == bosun_core::EventType::Thermal))
            .expect("a report with thermal events");
        let mut on: Vec<i32> = hot.report.events.iter().map(|e| e.event.gpu_index).collect();
        on.sort_unstable();
        assert_eq!(on, [0, 1, 2, 3], "one thermal event per GPU");
        for classified in &hot.report.events {
            assert_eq!(classified.event.metrics.get("temperature").map(|t| t.parse::<f64>().ok()), Some(Some(95.0)));
            assert_eq!(classified.verdict.rule.as_deref(), Some("thermal-critical"));
        }
        // nvlink_error: an NVLink event on the GPU asked for, judged degraded.
        let history = store.health_history(&node("node-2"), 100).await.expect("history");
        let nvlink = history
            .iter()
            .flat_map(|r| r.report.events.iter())
            .find(|e| e.event.event_type == bosun_core::EventType::Nvlink)
            .expect("an NVLink event");
        assert_eq!((nvlink.event.gpu_index, nvlink.verdict.health), (5, Health::Degraded));

        // run_diagnostic with command_args: the parameters reach the agent, which answers.
        let page = PageRequest::first(100);
        let filter = |id: &str| CommandFilter { node_id: Some(node(id)), ..CommandFilter::default() };
        let diagnostics = store.list_commands(&filter("node-3"), &page).await.expect("commands").items;
        let diagnostic = diagnostics.iter().find(|c| c.kind == CommandKind::RunDiagnostic).expect("diagnostic");
        assert_eq!(
            diagnostic.parameters,
            [("level".to_owned(), "2".to_owned()), ("test".to_owned(), "quick".to_owned())].into_iter().collect()
        );
        assert_eq!(diagnostic.reason, "scenario navarch-actions");
        assert_eq!(diagnostic.state, CommandState::Succeeded, "{diagnostic:?}");
        assert_eq!(diagnostic.result.get("test").map(String::as_str), Some("quick"));
        // terminate: command_args.reason is the command's reason, as Navarch passed it on.
        let terminates = store.list_commands(&filter("node-4"), &page).await.expect("commands").items;
        let terminate = terminates.iter().find(|c| c.kind == CommandKind::Terminate).expect("terminate");
        assert_eq!(terminate.reason, "decommissioned");
        assert_eq!(terminate.parameters.get("force").map(String::as_str), Some("true"));
        assert_eq!(terminate.state, CommandState::Succeeded);
        let four = store.node(&node("node-4")).await.expect("node-4");
        assert_eq!(four.status, NodeStatus::Terminated);

        // stop_fleet: silent nodes are judged by liveness; their health is what they last said.
        let five = store.node(&node("node-5")).await.expect("node-5");
        assert_eq!((five.status, five.status_reason.as_str()), (NodeStatus::Unhealthy, "heartbeat timeout"));
        assert_eq!(five.health, Health::Healthy);
    });
}

#[test]
fn health_status_unhealthy_compares_the_health_not_the_status() {
    // A node gone silent is UNHEALTHY by status with a HEALTHY last report: asserting its
    // health unhealthy must fail (it used to pass by comparing the status).
    let scenario = inline(
        "name: silent\nconfig:\n  server: {startup_grace: 5s, heartbeat_timeout: 9s}\nfleet: [{id: node-1}]\nevents:\n  \
         - {at: 0s, action: start_fleet}\n  - {at: 10s, action: stop_fleet}\n  \
         - {at: 10s, action: wait_for_status, target: node-1, params: {expected_status: unhealthy, timeout: 30s}}\n\
         assertions:\n  - {type: node_status, target: node-1, expected: unhealthy}\n  \
         - {type: health_status, target: node-1, expected: unhealthy}\n  - {type: health_status, target: node-1, expected: healthy}\n",
    );
    let report = run_on(Backend::Sqlite, &scenario, 1).expect("sqlite");
    let outcomes: Vec<(bool, &str)> = report.assertions.iter().map(|a| (a.passed, a.actual.as_str())).collect();
    assert_eq!(outcomes, [(true, "unhealthy"), (false, "healthy"), (true, "healthy")]);
    assert_eq!(
        report.failure.as_deref(),
        Some("assertion health_status node-1 expected unhealthy but was healthy"),
        "{}",
        report.to_json()
    );

    // A status is no health: refused before anything runs.
    let error = Scenario::parse("name: x\nassertions: [{type: health_status, target: n, expected: cordoned}]\n")
        .expect_err("cordoned is a status");
    assert_eq!(error.path.as_deref(), Some("assertions[0].expected"), "{error}");
    assert!(error.message.contains("health_status compares a health"), "{error}");
    let error = Scenario::parse(
        "name: x\nevents: [{at: 1s, action: assert, target: n, params: {failure_type: health_status, expected_status: active}}]\n",
    )
    .expect_err("active is a status");
    assert_eq!(error.path.as_deref(), Some("events[0].params.expected"), "{error}");
}

/// A fake pool of two whose nodes report health every 10 s; XID 79 on `cloud-1` at 20 s,
/// then the run waits for `cloud-1` to be TERMINATED (replaced) and its successor ACTIVE.
fn replacement_after(health: &str) -> String {
    replacement_on(health, "{failure_type: xid_error, xid_code: 79}")
}

/// [`replacement_after`] with `failure` (an `inject_failure`'s params) on `cloud-1`.
fn replacement_on(health: &str, failure: &str) -> String {
    format!(
        "name: replacement\nconfig:\n  server: {{autoscale_interval: 1s, health_check_interval: 10s, heartbeat_timeout: 9s}}\n  \
         providers: {{cloud: {{type: fake}}}}\n  \
         pools: {{p: {{provider: cloud, instance_type: h100-8x, min_nodes: 2, max_nodes: 3, health: {health}}}}}\n\
         events:\n  \
         - {{at: 20s, action: inject_failure, target: cloud-1, params: {failure}}}\n  \
         - {{at: 20s, action: wait_for_status, target: cloud-1, params: {{expected_status: terminated, timeout: 40s}}}}\n  \
         - {{at: 60s, action: wait_for_status, target: cloud-3, params: {{expected_status: active, timeout: 30s}}}}\n\
         assertions: [{{type: node_count, target: 'pool:p', expected: '==2'}}]\n"
    )
}

/// Seconds from `cloud-1`'s last heartbeat to its instance's termination.
fn silence_until_replacement(run: &Finished) -> f64 {
    run.read(async |store| {
        let last_seen = store.node(&node("cloud-1")).await.expect("cloud-1").last_seen();
        let instances =
            store.list_instances(&InstanceFilter::default(), &PageRequest::first(100)).await.expect("instances").items;
        let replaced = instances
            .iter()
            .find(|i| i.node_id.as_ref() == Some(&node("cloud-1")))
            .and_then(|i| i.terminated_at)
            .expect("cloud-1's instance was terminated");
        replaced.saturating_since(last_seen).as_secs_f64()
    })
}

/// A node gone silent (its network cut) misses one heartbeat timeout (9 s) after another;
/// each counts toward `unhealthy_after` like an UNHEALTHY report.
fn unhealthy_after_counts_heartbeat_timeouts_of_a_silent_node(backend: Backend) {
    let network = "{failure_type: network}";
    let scenario = inline(&replacement_on("{unhealthy_after: 1}", network));
    let Some(run) = Finished::seeded(backend, &scenario, 2) else { return };
    assert_passed(&run.report);
    let one = silence_until_replacement(&run);
    assert!((9.0..=12.0).contains(&one), "replaced at the first timeout: {one} s of silence");

    let scenario = inline(&replacement_on("{unhealthy_after: 2}", network));
    let Some(run) = Finished::seeded(backend, &scenario, 2) else { return };
    assert_passed(&run.report);
    let two = silence_until_replacement(&run);
    assert!((18.0..=21.0).contains(&two), "replaced at the second timeout: {two} s of silence");
}

/// Seconds from `cloud-1`'s first UNHEALTHY health report to its instance's termination,
/// as the control plane recorded them.
fn time_to_replacement(run: &Finished) -> f64 {
    run.read(async |store| {
        let history = store.health_history(&node("cloud-1"), 100).await.expect("history");
        let first = history
            .iter()
            .filter(|r| r.report.health == Health::Unhealthy)
            .map(|r| r.report.received_at)
            .min()
            .expect("an UNHEALTHY report");
        let instances =
            store.list_instances(&InstanceFilter::default(), &PageRequest::first(100)).await.expect("instances").items;
        let replaced = instances
            .iter()
            .find(|i| i.node_id.as_ref() == Some(&node("cloud-1")))
            .and_then(|i| i.terminated_at)
            .expect("cloud-1's instance was terminated");
        replaced.saturating_since(first).as_secs_f64()
    })
}

fn unhealthy_after_one_replaces_at_the_first_unhealthy_report(backend: Backend) {
    let scenario = inline(&replacement_after("{unhealthy_after: 1, auto_replace: true}"));
    let Some(run) = Finished::seeded(backend, &scenario, 2) else { return };
    assert_passed(&run.report);
    let waited = time_to_replacement(&run);
    assert!(waited <= 3.0, "replaced at the next pool pass, not the next report: {waited} s");
}

fn unhealthy_after_two_waits_for_the_second_report(backend: Backend) {
    let scenario = inline(&replacement_after("{unhealthy_after: 2, auto_replace: true}"));
    let Some(run) = Finished::seeded(backend, &scenario, 2) else { return };
    assert_passed(&run.report);
    let waited = time_to_replacement(&run);
    assert!((9.0..=13.0).contains(&waited), "replaced after the second report, 10 s later: {waited} s");
}

fn auto_replace_off_never_replaces(backend: Backend) {
    let mut text = replacement_after("{unhealthy_after: 1, auto_replace: false}");
    // No termination and no successor: keep the failure, then look five minutes later.
    let start = text
        .find("  - {at: 20s, action: wait_for_status, target: cloud-1, params: {expected_status: terminated")
        .expect("event");
    let end = text.find("assertions:").expect("assertions");
    text.replace_range(
        start..end,
        "  - {at: 5m, action: assert, target: cloud-1, params: {expected_status: unhealthy}}\n",
    );
    let text = text.replace("expected: '==2'", "expected: '==2'}, {type: node_count, target: all, expected: '==2'");
    let scenario = inline(&text);
    let Some(run) = Finished::seeded(backend, &scenario, 2) else { return };
    assert_passed(&run.report);
    run.read(async |store| {
        let instances =
            store.list_instances(&InstanceFilter::default(), &PageRequest::first(100)).await.expect("instances").items;
        assert_eq!(instances.len(), 2, "no replacement was provisioned: {instances:?}");
        assert!(instances.iter().all(|i| i.state == InstanceState::Running), "none terminated: {instances:?}");
        let one = store.node(&node("cloud-1")).await.expect("cloud-1");
        assert_eq!(one.status, NodeStatus::Unhealthy);
        assert!(one.unhealthy_streak >= 20, "UNHEALTHY for many reports: {}", one.unhealthy_streak);
    });
    let decisions = &run.report.pools["p"];
    assert!(decisions.iter().all(|d| d.target == 2 && !d.reason.contains("replac")), "{decisions:?}");
}

/// Two fake providers: `east` (4 GPUs a machine) first, with its own region and
/// instance type; `west` (2 GPUs) second, taking the pool's. The pool's zone and labels
/// go to every machine. `east` goes down before the pool grows, so the third machine
/// comes from `west`.
const POOL_KEYS: &str = r#"
name: pool-keys
config:
  server: {autoscale_interval: 2s}
  providers:
    east: {type: fake, gpu_count: 4}
    west: {type: fake, gpu_count: 2}
  pools:
    p:
      providers:
        - {name: east, priority: 1, regions: [eu-2], instance_type: east-4x}
        - {name: west, priority: 2}
      instance_type: h100-8x
      region: eu-1
      zones: [eu-1c, eu-1d]
      min_nodes: 2
      max_nodes: 3
      labels: {team: research}
events:
  - {at: 10s, action: inject_failure, target: east, params: {failure_type: provider_outage}}
  - {at: 10s, action: scale_pool, target: p, params: {count: 3}}
  - {at: 10s, action: wait_for_status, target: west-1, params: {expected_status: active, timeout: 30s}}
assertions:
  - {type: node_count, target: 'pool:p', expected: '==3'}
"#;

fn pool_keys_reach_the_machines_and_their_nodes(backend: Backend) {
    let scenario = inline(POOL_KEYS);
    let Some(run) = Finished::seeded(backend, &scenario, 3) else { return };
    assert_passed(&run.report);
    run.read(async |store| {
        let nodes = store.list_nodes(&NodeFilter::default(), &PageRequest::first(100)).await.expect("nodes").items;
        let place = |n: &bosun_core::Node| {
            (n.provider.clone(), n.region.clone(), n.zone.clone(), n.instance_type.clone(), n.gpu_count)
        };
        let mut places: Vec<_> = nodes.iter().map(place).collect();
        places.sort();
        let east = ("east".to_owned(), "eu-2".to_owned(), "eu-1c".to_owned(), "east-4x".to_owned(), 4);
        let west = ("west".to_owned(), "eu-1".to_owned(), "eu-1c".to_owned(), "h100-8x".to_owned(), 2);
        assert_eq!(places, [east.clone(), east, west], "provider region and type, else the pool's; the first zone");
        for n in &nodes {
            assert_eq!(n.pool.as_ref().map(|p| p.as_str()), Some("p"));
            assert_eq!((n.labels.get("team"), n.labels.get("pool")), (Some("research"), Some("p")), "{}", n.id);
        }
        let instances =
            store.list_instances(&InstanceFilter::default(), &PageRequest::first(100)).await.expect("instances").items;
        let running: Vec<_> = instances.iter().filter(|i| i.state == InstanceState::Running).collect();
        assert_eq!(running.len(), 3, "{instances:?}");
        for instance in running {
            assert_eq!(instance.zone, "eu-1c");
            assert_eq!(instance.labels.get("team"), Some("research"));
            let expected = if instance.provider == "east" { ("eu-2", "east-4x") } else { ("eu-1", "h100-8x") };
            assert_eq!((instance.region.as_str(), instance.instance_type.as_str()), expected);
        }
    });
}

/// Navarch's stress file keys for the seed: `stress.seed` decides when no seed is given,
/// and a given one (`--seed`) overrides it.
const SEEDED: &str = "
name: seeded
stress:
  duration: 1m
  seed: 4242
  fleet_gen:
    total_nodes: 12
    startup: {pattern: instant}
  chaos:
    enabled: true
    failure_rate: 2000
    failure_types: [{type: xid_error, weight: 1}, {type: nvlink_error, weight: 1}]
";

#[test]
fn the_seed_comes_from_the_scenario_unless_one_is_given() {
    use bosun_sim::{Pace, RunOptions};
    let scenario = inline(SEEDED);
    let unseeded = RunOptions { pace: Pace::Virtual, seed: None, ..RunOptions::default() };
    let first = common::run_with(Backend::Sqlite, &scenario, unseeded.clone()).expect("sqlite");
    let again = common::run_with(Backend::Sqlite, &scenario, unseeded).expect("sqlite");
    assert_eq!((first.seed, again.seed), (4242, 4242));
    assert!(first.summary.failures_injected > 0);
    assert_eq!(first.failures.by_type, again.failures.by_type, "the scenario's seed reproduces the run");
    assert_eq!(
        first.failures.by_xid.iter().map(|x| (x.code, x.count)).collect::<Vec<_>>(),
        again.failures.by_xid.iter().map(|x| (x.code, x.count)).collect::<Vec<_>>()
    );
    let overridden = run_on(Backend::Sqlite, &scenario, 7).expect("sqlite");
    assert_eq!(overridden.seed, 7);
    assert_ne!(
        (overridden.failures.by_type.clone(), overridden.summary.failures_injected),
        (first.failures.by_type.clone(), first.summary.failures_injected),
        "another seed, another run"
    );
}

/// Keys and actions Navarch's READMEs document that its parser rejected or ignored, and
/// shapes bosun refuses on purpose: each is an error naming the key before anything runs.
#[test]
fn what_bosun_refuses_on_purpose_is_named() {
    let fleet = "  fleet_gen: {total_nodes: 1}\n";
    let cases = [
        (
            "name: x\nevents: [{at: 1s, action: inject_xid, target: n}]\n",
            "events[0].action",
            "unknown variant `inject_xid`",
        ),
        (
            "name: x\nevents: [{at: 1s, action: assert_node_unhealthy, target: n}]\n",
            "events[0].action",
            "unknown variant `assert_node_unhealthy`",
        ),
        (
            &format!("name: x\nstress:\n{fleet}  chaos: {{enabled: true, burst_probability: 0.1}}\n"),
            "stress.chaos.burst_probability",
            "unknown key `burst_probability`",
        ),
        (
            &format!("name: x\nstress:\n{fleet}  chaos:\n    xid_distribution: [{{code: 79, weight: 1}}]\n"),
            "stress.chaos.xid_distribution",
            "invalid type: sequence, expected a map",
        ),
        ("name: x\nstress: {duration: 1m}\n", "stress.fleet_gen", "stress mode needs fleet_gen"),
        (
            &format!("name: x\nstress:\n{fleet}  chaos:\n    failure_types: [{{type: provider_outage, weight: 1}}]\n"),
            "stress.chaos.failure_types[0].type",
            "provider_outage is an event for pools",
        ),
        (
            "name: x\nconfig:\n  providers: {lambda: {type: lambda}}\n",
            "config.providers.lambda.type",
            "is lambda; the simulator runs fake providers only",
        ),
        ("name: x\nconfig:\n  server: {grpc_port: 50051}\n", "config.server.grpc_port", "unknown key"),
    ];
    for (text, path, words) in cases {
        let error = Scenario::parse(text).expect_err(text);
        assert_eq!(error.path.as_deref(), Some(path), "{text}: {error}");
        assert!(error.to_string().contains(words), "{text}: {error}");
    }
}
