use super::*;

fn error_of(text: &str) -> ScenarioError {
    Scenario::parse(text).expect_err("should be refused")
}

#[test]
fn navarch_scenarios_parse_with_every_action() {
    let text = r#"
name: everything
description: every key Navarch knows
fleet:
  - {id: node-1, provider: gcp, region: us-central1, zone: us-central1-a, instance_type: a3-highgpu-8g,
     gpu_count: 8, gpu_type: "NVIDIA H100 80GB HBM3", labels: {team: ml}}
events:
  - {at: 0s, action: start_fleet}
  - {at: 1s, action: inject_failure, target: node-1, params: {failure_type: xid_error, xid_code: 79, gpu_index: 3, message: bus}}
  - {at: 1s, action: inject_failure, target: node-1, params: {failure_type: network}}
  - {at: 2s, action: recover_failure, target: node-1}
  - {at: 3s, action: issue_command, target: node-1, params: {command_type: run_diagnostic, command_args: {level: 2}}}
  - {at: 4s, action: wait_for_status, target: node-1, params: {expected_status: active, timeout: 10s}}
  - {at: 5s, action: wait}
  - {at: 5s, action: log, params: {log_message: hello}}
  - {at: 6s, action: assert, target: node-1, params: {failure_type: health_status, expected_status: healthy}}
  - {at: 7s, action: stop_fleet}
assertions:
  - {type: node_status, target: node-1, expected: active}
  - {type: "", target: node-1, expected: active}
  - {type: node_count, expected: 800}
"#;
    let scenario = Scenario::parse(text).expect("parses");
    assert_eq!(scenario.events.len(), 10);
    assert_eq!(scenario.assertions[1].kind, AssertionKind::NodeStatus);
    let timeline: Vec<Action> = scenario.timeline().iter().map(|e| e.action).collect();
    assert_eq!(timeline[1], Action::InjectFailure, "equal times keep file order");
    assert_eq!(timeline[2], Action::InjectFailure);
    assert_eq!(timeline[6], Action::Wait);
    assert_eq!(timeline[7], Action::Log);
}

#[test]
fn unknown_keys_are_errors_naming_their_path() {
    let e = error_of("name: x\nevents:\n  - {at: 1s, action: wait, params: {xid: 79}}\n");
    assert_eq!(e.path.as_deref(), Some("events[0].params.xid"), "{e}");
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("unknown key `xid`"), "{e}");
    let e = error_of("name: x\nstress:\n  duration: 1m\n  correlated_failures: {}\n  fleet_gen: {total_nodes: 1}\n");
    assert!(e.to_string().contains("correlated_failures"), "{e}");
}

#[test]
fn meaning_is_checked_before_anything_runs() {
    for (text, path, words) in [
        ("name: ''\n", "name", "needs a name"),
        ("name: x\nfleet: [{id: a}, {id: a}]\n", "fleet[1].id", "listed twice"),
        (
            "name: x\nevents: [{at: 1s, action: inject_failure, target: a, params: {failure_type: lava}}]\n",
            "events[0].params.failure_type",
            "unknown failure type",
        ),
        (
            "name: x\nevents: [{at: 1s, action: inject_failure, params: {failure_type: network}}]\n",
            "events[0].target",
            "needs the node",
        ),
        (
            "name: x\nevents: [{at: 1s, action: issue_command, target: a, params: {command_type: reboot-now}}]\n",
            "events[0].params.command_type",
            "unknown command",
        ),
        (
            "name: x\nevents: [{at: 1s, action: wait_for_status, target: a, params: {expected_status: sleepy}}]\n",
            "events[0].params.expected_status",
            "unknown status",
        ),
        ("name: x\nevents: [{at: 1s, action: scale_pool, target: p}]\n", "events[0].params.count", "new size"),
        (
            "name: x\nevents: [{at: 1s, action: apply_runbook, params: {runbook: \"name: r\\nsteps: [{reboot: {}}]\"}}]\n",
            "events[0].params.runbook",
            "unknown key",
        ),
        ("name: x\nevents: [{at: 1s, action: start_run}]\n", "events[0].target", "the runbook to run"),
        (
            "name: x\nevents: [{at: 1s, action: wait_for_run, target: r, params: {expected_status: done}}]\n",
            "events[0].params.expected_status",
            "done",
        ),
        (
            "name: x\nassertions: [{type: run_status, target: r, expected: finished}]\n",
            "assertions[0].expected",
            "finished",
        ),
        ("name: x\nassertions: [{type: node_count, expected: lots}]\n", "assertions[0].expected", "not a node count"),
        ("name: x\nstress: {fleet_gen: {total_nodes: 0}}\n", "stress.fleet_gen.total_nodes", "at least 1"),
        (
            "name: x\nstress: {fleet_gen: {total_nodes: 5}, chaos: {failure_rate: -1}}\n",
            "stress.chaos.failure_rate",
            ">= 0",
        ),
        (
            "name: x\nstress: {fleet_gen: {total_nodes: 5}, report_file: /tmp/report.json}\n",
            "stress.report_file",
            "inside the run's --out directory",
        ),
        (
            "name: x\nstress: {fleet_gen: {total_nodes: 5}, html_report_file: ../report.html}\n",
            "stress.html_report_file",
            "relative file name",
        ),
    ] {
        let e = error_of(text);
        assert_eq!(e.path.as_deref(), Some(path), "{text}: {e}");
        assert!(e.to_string().contains(words), "{text}: {e}");
    }
    let e = error_of("name: x\nevents: [{at: 5, action: wait}]\n");
    assert!(e.to_string().contains("needs a unit"), "{e}");
}

#[test]
fn node_counts_compare_as_written_and_a_bare_number_is_a_floor() {
    let c = |t: &str| t.parse::<CountExpectation>().expect(t);
    assert!(c("==3").holds(3) && !c("==3").holds(4));
    assert!(c("800").holds(1000) && !c("800").holds(799));
    assert!(c("<= 2").holds(2) && c(">1").holds(2) && c("<1").holds(0));
}

#[test]
fn event_parameters_are_described_as_written() {
    let scenario = Scenario::parse(
        "name: x\nevents:\n  - {at: 1s, action: inject_failure, target: n, params: {failure_type: xid_error, xid_code: 79, gpu_index: 3}}\n  \
         - {at: 2s, action: issue_command, target: n, params: {command_type: run_diagnostic, command_args: {test: quick}}}\n  \
         - {at: 3s, action: wait_for_status, target: n, params: {expected_status: unhealthy, timeout: 30s}}\n  - {at: 4s, action: wait}\n",
    )
    .expect("parses");
    let described: Vec<Vec<String>> = scenario.events.iter().map(|e| e.params.describe()).collect();
    assert_eq!(described[0], ["failure_type=xid_error", "xid_code=79", "gpu_index=3"]);
    assert_eq!(described[1], ["command_type=run_diagnostic", "command_args.test=quick"]);
    assert_eq!(described[2], ["expected_status=unhealthy", "timeout=30s"]);
    assert!(described[3].is_empty());
}

#[test]
fn replicas_and_their_actions_are_checked_before_anything_runs() {
    let scenario = Scenario::parse(
        "name: ha\nreplicas: 3\nevents:\n  - {at: 1s, action: kill_leader}\n  \
         - {at: 2s, action: restart_replica, target: replica-3}\n",
    )
    .expect("parses");
    assert_eq!(scenario.replicas, 3);
    assert_eq!(Scenario::parse("name: one\n").expect("parses").replicas, 1, "one server by default");

    let cases = [
        ("name: x\nreplicas: 0\n", "replicas", "at least one"),
        ("name: x\nreplicas: 10\n", "replicas", "at most"),
        ("name: x\nevents: [{at: 1s, action: kill_leader}]\n", "events[0].action", "replicas: 2 or more"),
        (
            "name: x\nreplicas: 2\nevents: [{at: 1s, action: restart_replica, target: replica-3}]\n",
            "events[0].target",
            "replica-1 to replica-2",
        ),
        (
            "name: x\nreplicas: 2\nevents: [{at: 1s, action: restart_replica}]\n",
            "events[0].target",
            "restart_replica needs a replica",
        ),
        (
            "name: x\nreplicas: 2\nevents: [{at: 1s, action: restart_server}]\n",
            "events[0].action",
            "use restart_replica",
        ),
    ];
    for (text, path, message) in cases {
        let error = error_of(text);
        assert_eq!(error.path.as_deref(), Some(path), "{text}: {error}");
        assert!(error.message.contains(message), "{text}: {error}");
    }
}
