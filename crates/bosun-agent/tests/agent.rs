//! The agent's life against a recording control plane: registration, heartbeats, health
//! reports, re-registration, network loss and shutdown. All on tokio's paused clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bosun_agent::{AgentConfig, AgentError, AgentOutcome, FakeGpus, Fault, FaultKind, NetworkSwitch, RpcError};
use bosun_core::{CheckResult, EventType, Health};
use support::{Call, FakeControlPlane, HEARTBEAT, Harness, node_id, options};

fn check<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
    results.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no {name} check in {results:?}"))
}

fn statuses(results: &[CheckResult]) -> Vec<(&str, Health)> {
    results.iter().map(|r| (r.name.as_str(), r.status)).collect()
}

fn within(actual: Duration, expected: Duration, jitter: f64) -> bool {
    let (a, e) = (actual.as_secs_f64(), expected.as_secs_f64());
    (e * (1.0 - jitter)..=e * (1.0 + jitter)).contains(&a)
}

#[tokio::test(start_paused = true)]
async fn registers_then_heartbeats_at_once_and_every_interval_with_metrics() {
    let h = Harness::running();
    h.control.wait_for_heartbeats(3).await;

    let calls = h.control.calls();
    let Call::Register { registration, instance_id } = &calls[0].1 else { panic!("registers first: {calls:?}") };
    assert_eq!(registration.node_id, node_id());
    assert_eq!((registration.provider.as_str(), registration.gpus.len()), ("gcp", 8));
    assert_eq!(registration.metadata.agent_version, bosun_agent::procfs::AGENT_VERSION);
    assert_eq!(*instance_id, None);

    let registered = h.control.registrations();
    let beats = h.control.heartbeats();
    assert_eq!(registered.len(), 1);
    assert_eq!(beats[0].0, registered[0], "the first heartbeat follows registration at once");
    assert_eq!(beats[1].0 - beats[0].0, HEARTBEAT);
    assert_eq!(beats[2].0 - beats[1].0, HEARTBEAT);

    let sample = &beats[0].1;
    assert_eq!((sample.node_id.clone(), sample.cpu_percent, sample.memory_percent), (node_id(), 12.5, 40.0));
    assert_eq!(sample.gpus.len(), 8);
    assert!(sample.validate().is_ok(), "{sample:?}");
    assert!(sample.gpus.iter().all(|g| g.power_w > 0.0 && g.memory_used_bytes > 0));

    assert_eq!(h.stop().await, Ok(AgentOutcome::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn registration_retries_transient_errors_with_growing_backoff() {
    let control = FakeControlPlane::new();
    control.fail_register([
        RpcError::Unavailable("connection refused".into()),
        RpcError::Other { code: "deadline_exceeded".into(), message: "slow".into() },
        RpcError::Unavailable("store down".into()),
    ]);
    let h = Harness::start(control, Arc::new(FakeGpus::new(8)), options());
    h.control.wait_for_heartbeats(1).await;

    let attempts = h.control.registrations();
    assert_eq!(attempts.len(), 4);
    for (i, expected) in [1, 2, 4].into_iter().enumerate() {
        let gap = attempts[i + 1] - attempts[i];
        assert!(within(gap, Duration::from_secs(expected), 0.2), "retry {i} after {gap:?}, expected ~{expected}s");
    }
    assert_eq!(h.control.heartbeats()[0].0, attempts[3]);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_refused_registration_stops_the_agent_with_a_clear_error() {
    let cases = [
        (
            RpcError::Unauthenticated("invalid bearer token".into()),
            "the control plane refused to register node node-1: unauthenticated: invalid bearer token; check the \
             agent's token (--token-file)",
        ),
        (
            RpcError::PermissionDenied("role operator".into()),
            "the control plane refused to register node node-1: permission denied: role operator; the agent's token \
             may not register this node",
        ),
        (
            RpcError::InvalidArgument("zone: unknown".into()),
            "the control plane refused to register node node-1: invalid argument: zone: unknown; fix the agent's \
             settings",
        ),
    ];
    for (refusal, message) in cases {
        let control = FakeControlPlane::new();
        control.fail_register([refusal.clone()]);
        let h = Harness::start(control.clone(), Arc::new(FakeGpus::new(8)), options());
        let error = Harness::finish(h.run).await.expect_err("refusal is fatal");
        assert_eq!(error.to_string(), message);
        assert!(matches!(error, AgentError::RegistrationRefused { error, .. } if error == refusal));
        assert_eq!(control.calls().len(), 1, "no retry, no other call");
    }
}

#[tokio::test(start_paused = true)]
async fn settings_the_server_would_reject_fail_before_any_call() {
    let mut bad = options();
    bad.metadata.hostname = "host\u{7}name".into();
    let h = Harness::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8)), bad);
    let error = Harness::finish(h.run).await.expect_err("invalid");
    assert!(matches!(error, AgentError::InvalidRegistration { .. }), "{error}");
    assert!(error.to_string().contains("metadata.hostname"), "{error}");
    assert!(h.control.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn registers_again_when_the_server_no_longer_knows_the_node() {
    let h = Harness::running();
    h.control.wait_for_heartbeats(1).await;
    h.control.fail_heartbeat([RpcError::NotFound("node node-1 not found".into())]);
    h.control
        .wait_for("re-registration and a heartbeat", |cp| cp.registrations().len() == 2 && cp.heartbeats().len() >= 3)
        .await;

    let registered = h.control.registrations();
    let beats = h.control.heartbeats();
    assert_eq!(registered[1], beats[1].0, "registers again as soon as the heartbeat is refused");
    assert_eq!(beats[2].0, registered[1], "and heartbeats at once");
    h.control.wait_for_heartbeats(5).await;
    assert_eq!(h.control.registrations().len(), 2, "once is enough");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn transient_heartbeat_failures_are_retried_and_never_stop_the_agent() {
    let control = FakeControlPlane::new();
    control.fail_heartbeat([
        RpcError::Unavailable("a".into()),
        RpcError::Unavailable("b".into()),
        RpcError::Other { code: "internal".into(), message: "c".into() },
    ]);
    let h = Harness::start(control, Arc::new(FakeGpus::new(8)), options());
    h.control.wait_for_heartbeats(6).await;

    let at: Vec<_> = h.control.heartbeats().into_iter().map(|(at, _)| at).collect();
    for (i, expected) in [500, 1000, 2000].into_iter().enumerate() {
        let gap = at[i + 1] - at[i];
        assert!(within(gap, Duration::from_millis(expected), 0.2), "retry {i} after {gap:?}");
    }
    assert_eq!(at[4] - at[3], HEARTBEAT, "back to the interval after a success");
    assert_eq!(h.control.registrations().len(), 1);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn reports_checks_and_an_injected_xid_exactly_once() {
    let h = Harness::running();
    h.control.wait_for_health_reports(1).await;
    let (results, events) = &h.control.health_reports()[0];
    assert_eq!(statuses(results), [("boot", Health::Healthy), ("nvml", Health::Healthy), ("gpu", Health::Healthy)]);
    assert!(events.is_empty());
    assert!(results.iter().all(|r| r.validate().is_ok()));

    h.gpus.inject(Fault::Xid { gpu: 3, code: 79 }).expect("GPU 3 exists");
    h.control.wait_for_health_reports(4).await;
    let reports = h.control.health_reports();
    let xids: Vec<_> =
        reports.iter().flat_map(|(_, events)| events).filter(|e| e.event_type == EventType::Xid).collect();
    assert_eq!(xids.len(), 1, "{reports:?}");
    assert_eq!(reports[1].1.len(), 1, "in the very next report");
    let xid = xids[0];
    assert_eq!((xid.gpu_index, xid.metrics["xid_code"].as_str()), (3, "79"));
    assert!(xid.validate().is_ok());
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_thermal_fault_reports_every_cycle_until_recovered() {
    let h = Harness::running();
    h.control.wait_for_health_reports(1).await;
    h.gpus.inject(Fault::Thermal { gpu: None, celsius: 95.0 }).expect("valid");
    h.control.wait_for_health_reports(3).await;
    for (results, events) in &h.control.health_reports()[1..3] {
        assert_eq!(events.len(), 8, "one event per GPU per cycle");
        assert!(events.iter().all(|e| e.event_type == EventType::Thermal && e.metrics["temperature"] == "95"));
        let gpu = check(results, "gpu");
        assert_eq!(gpu.status, Health::Degraded);
        assert!(gpu.message.starts_with("GPU 0 at 95 C, GPU 1 at 95 C"), "{}", gpu.message);
    }
    let hot = h.control.heartbeats().last().cloned().expect("heartbeats").1;
    assert!(hot.gpus.iter().all(|g| g.temperature_c == 95.0));

    h.gpus.recover(FaultKind::Thermal);
    h.control.wait_for_health_reports(4).await;
    let (results, events) = h.control.health_reports().pop().expect("reports");
    assert!(events.is_empty());
    assert_eq!(check(&results, "gpu").status, Health::Healthy);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_device_error_makes_the_gpu_check_unhealthy() {
    let h = Harness::running();
    h.gpus.inject(Fault::DeviceError { gpu: 5 }).expect("valid");
    h.control.wait_for_health_reports(1).await;
    let (results, _) = &h.control.health_reports()[0];
    assert_eq!(statuses(results), [("boot", Health::Healthy), ("nvml", Health::Healthy), ("gpu", Health::Unhealthy)]);
    assert_eq!(check(results, "gpu").details["failed_gpus"], "5");
    let beat = &h.control.heartbeats()[0].1;
    assert_eq!(beat.gpus.len(), 7, "the failed GPU has no readings");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_backend_failure_fails_every_check_but_heartbeats_go_on() {
    let h = Harness::running();
    h.control.wait_for_heartbeats(1).await;
    h.gpus.inject(Fault::BackendFailure).expect("valid");
    h.gpus.inject(Fault::Xid { gpu: 0, code: 48 }).expect("valid");
    h.control.wait_for_health_reports(2).await;
    let (results, events) = h.control.health_reports().pop().expect("reports");
    assert_eq!(
        statuses(&results),
        [("boot", Health::Unhealthy), ("nvml", Health::Unhealthy), ("gpu", Health::Unhealthy)]
    );
    assert!(events.is_empty(), "events wait for the backend");
    h.control.wait_for_heartbeats(4).await;
    let beat = h.control.heartbeats().pop().expect("heartbeats").1;
    assert!(beat.gpus.is_empty() && beat.cpu_percent == 12.5);

    h.gpus.recover(FaultKind::BackendFailure);
    h.control.wait_for_health_reports(3).await;
    let (_, events) = h.control.health_reports().pop().expect("reports");
    assert_eq!(events.len(), 1, "the XID queued during the outage arrives after it");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_boot_failure_prevents_registration_until_recovered() {
    let gpus = Arc::new(FakeGpus::new(8));
    gpus.inject(Fault::BootFailure).expect("valid");
    let h = Harness::start(FakeControlPlane::new(), gpus, options());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(h.control.calls().is_empty(), "never registers while the GPUs fail to initialise");

    h.gpus.recover(FaultKind::BootFailure);
    h.control.wait_for_heartbeats(1).await;
    assert_eq!(h.control.registrations().len(), 1);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn events_of_a_failed_report_are_sent_with_the_next_one() {
    let h = Harness::running();
    h.control.wait_for_health_reports(1).await;
    h.control.fail_health([RpcError::Unavailable("network".into())]);
    h.gpus.inject(Fault::EccDoubleBit { gpu: 1 }).expect("valid");
    h.control.wait_for_health_reports(4).await;
    let reports = h.control.health_reports();
    let counts: Vec<usize> = reports.iter().map(|(_, events)| events.len()).collect();
    assert_eq!(counts, [0, 1, 1, 0], "refused once, accepted once, then gone");
    assert_eq!(reports[2].1[0].event_type, EventType::EccDbe);
    h.stop().await.expect("stops cleanly");
}

/// A machine spewing XIDs: more events than a report may carry go as several reports in
/// the same round; more than the agent holds are dropped oldest first and counted in the
/// next report; a report the server refuses as invalid is never sent again.
#[tokio::test(start_paused = true)]
async fn an_xid_storm_is_split_bounded_and_never_resent_when_refused() {
    use bosun_core::health::MAX_REPORT_EVENTS;
    let h = Harness::running();
    h.control.wait_for_health_reports(1).await;
    // 4,500 XIDs between two reports while the server is away (two failed reports).
    h.control.fail_health([RpcError::Unavailable("network".into()), RpcError::Unavailable("network".into())]);
    for i in 0..4_500u32 {
        h.gpus.inject(Fault::Xid { gpu: i % 8, code: 13 }).expect("valid");
        if i == 2_000 {
            h.control.wait_for_health_reports(2).await;
        }
    }
    h.control.wait_for_health_reports(8).await;
    let reports = h.control.health_reports();
    let sizes: Vec<usize> = reports.iter().map(|(_, events)| events.len()).collect();
    assert!(sizes.iter().all(|n| *n <= MAX_REPORT_EVENTS), "{sizes:?}");
    let delivered: usize = reports[3..].iter().map(|(_, events)| events.len()).sum();
    assert_eq!(delivered, 4_000, "the agent holds at most 4,000 and sends them all: {sizes:?}");
    let dropped = reports[3..]
        .iter()
        .flat_map(|(results, _)| results)
        .find(|r| r.name == "events")
        .expect("the dropped count goes with the next accepted report");
    assert_eq!((dropped.status, dropped.details["dropped"].as_str()), (Health::Degraded, "500"));

    // Refused as invalid: dropped and counted, not sent again.
    let before = h.control.health_reports().len();
    h.control.fail_health([RpcError::InvalidArgument("events[0].metrics: bad".into())]);
    h.gpus.inject(Fault::Xid { gpu: 1, code: 48 }).expect("valid");
    h.control.wait_for_health_reports(before + 3).await;
    let later = &h.control.health_reports()[before..];
    let carrying: Vec<usize> = later.iter().map(|(_, events)| events.len()).collect();
    assert_eq!(&carrying[..2], &[1, 0], "sent once, refused, then the round goes on without it: {carrying:?}");
    assert_eq!(check(&later[1].0, "events").details["dropped"], "1");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_every_loop_promptly() {
    let h = Harness::running();
    h.control.wait_for_heartbeats(2).await;
    let control = h.control.clone();
    let made = control.calls().len();
    assert_eq!(h.stop().await, Ok(AgentOutcome::Cancelled));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(control.calls().len(), made, "nothing runs after cancellation");

    let control = FakeControlPlane::new();
    control.fail_register((0..100).map(|_| RpcError::Unavailable("down".into())));
    let h = Harness::start(control, Arc::new(FakeGpus::new(8)), options());
    h.control.wait_for("a few registration attempts", |cp| cp.registrations().len() >= 3).await;
    assert_eq!(h.stop().await, Ok(AgentOutcome::Cancelled), "also while retrying registration");
}

#[tokio::test(start_paused = true)]
async fn a_network_cut_is_survived_and_healed() {
    let control = FakeControlPlane::new();
    let (transport, network) = NetworkSwitch::wrap(control.clone());
    let h = Harness::start_with(control.clone(), transport, Arc::new(FakeGpus::new(8)), options());
    control.wait_for_heartbeats(1).await;

    network.disconnect();
    assert!(!network.is_connected());
    let before = control.heartbeats().len();
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(control.heartbeats().len(), before, "nothing gets through");

    network.reconnect();
    control.wait_for_heartbeats(before + 2).await;
    control.wait_for_health_reports(2).await;
    assert_eq!(control.registrations().len(), 1, "the node was not lost, only unreachable");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn the_server_config_picks_checks_and_cannot_make_loops_spin() {
    let control = FakeControlPlane::with_config(AgentConfig {
        heartbeat_interval: Duration::ZERO,
        health_check_interval: Duration::ZERO,
        command_poll_wait: Duration::ZERO,
        enabled_checks: vec!["gpu".into()],
        inventory_interval: Duration::ZERO,
    });
    let h = Harness::start(control, Arc::new(FakeGpus::new(8)), options());
    h.control.wait_for_heartbeats(4).await;
    let at: Vec<_> = h.control.heartbeats().into_iter().map(|(at, _)| at).collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] == AgentConfig::MIN_INTERVAL), "{at:?}");
    let polls: Vec<_> =
        h.control.calls().into_iter().filter(|(_, c)| matches!(c, Call::Poll)).map(|(at, _)| at).collect();
    assert!(polls.windows(2).all(|w| w[1] - w[0] >= Duration::from_secs(1)), "{polls:?}");
    let reports: Vec<_> = h.control.workload_reports().into_iter().map(|(at, _)| at).collect();
    assert!(reports.windows(2).all(|w| w[1] - w[0] >= AgentConfig::MIN_INTERVAL), "{reports:?}");
    let (results, _) = &h.control.health_reports()[0];
    assert_eq!(statuses(results), [("gpu", Health::Healthy)]);
    h.stop().await.expect("stops cleanly");
}
