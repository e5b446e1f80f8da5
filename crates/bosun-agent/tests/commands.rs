//! Commands end to end: polled, run once, acknowledged as accepted and then finished.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_agent::{AckOutcome, AgentOutcome, CommandAck, DeliveredCommand, FakeGpus, Fault, Hook, HookContext};
use bosun_core::{Clock, CommandId, SystemClock};
use support::{FakeControlPlane, Harness, options};

fn command(kind: &str, parameters: &[(&str, &str)]) -> DeliveredCommand {
    DeliveredCommand {
        id: CommandId::new_at(SystemClock.now()),
        kind: kind.parse().expect("valid kind"),
        parameters: parameters.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        deadline: None,
    }
}

fn outcomes(acks: &[CommandAck]) -> Vec<(AckOutcome, &str)> {
    acks.iter().map(|a| (a.outcome, a.message.as_str())).collect()
}

/// A hook that appends `name` to `log` and returns `output`.
fn recording(log: &Arc<Mutex<Vec<String>>>, name: &str, output: &str) -> Hook {
    let (log, name, output) = (log.clone(), name.to_owned(), output.to_owned());
    Hook::function(move |_: HookContext| {
        let (log, name, output) = (log.clone(), name.clone(), output.clone());
        async move {
            log.lock().expect("unpoisoned").push(name);
            Ok(output)
        }
    })
}

/// Delivers `command` and waits for `acks` more acknowledgements.
async fn run(h: &Harness, command: DeliveredCommand, acks: usize) -> Vec<CommandAck> {
    let before = h.control.acks().len();
    h.control.deliver(command);
    h.control.wait_for_acks(before + acks).await;
    h.control.acks().split_off(before)
}

#[tokio::test(start_paused = true)]
async fn cordon_and_uncordon_are_accepted_then_succeed_and_set_the_local_flag() {
    let h = Harness::running();
    let cordon = command("CORDON", &[]);
    let acks = run(&h, cordon.clone(), 2).await;
    assert_eq!(outcomes(&acks), [(AckOutcome::Accepted, "started"), (AckOutcome::Succeeded, "cordoned")]);
    assert!(acks.iter().all(|a| a.command_id == cordon.id));
    assert!(h.flags.is_cordoned());

    let acks = run(&h, command("UNCORDON", &[]), 2).await;
    assert_eq!(acks[1].outcome, AckOutcome::Succeeded);
    assert!(!h.flags.is_cordoned());
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_command_runs_once_and_is_acknowledged_again() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut opts = options();
    opts.hooks.custom.insert(
        "flash-bios".into(),
        Hook::function(move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok("flashed".to_owned())
            }
        }),
    );
    let h = Harness::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8)), opts);
    let flash = command("custom:flash-bios", &[]);
    let first = run(&h, flash.clone(), 2).await;
    assert_eq!(
        outcomes(&first),
        [(AckOutcome::Accepted, "started"), (AckOutcome::Succeeded, "custom:flash-bios done")]
    );
    assert_eq!(first[1].details["custom.output"], "flashed");

    let again = run(&h, flash.clone(), 1).await;
    assert_eq!(again[0], first[1], "the remembered result, not a second run");
    h.control.deliver(flash.clone());
    h.control.deliver(flash);
    h.control.wait_for_acks(5).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn terminate_drains_runs_the_shutdown_hook_then_ends_the_run() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut opts = options();
    opts.hooks.drain = Some(recording(&log, "drain", "evicted 3 jobs"));
    opts.hooks.shutdown = Some(recording(&log, "shutdown", "poweroff scheduled"));
    let h = Harness::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8)), opts);
    h.control.wait_for_heartbeats(1).await;
    h.control.deliver(command("TERMINATE", &[]));

    let outcome = Harness::finish(h.run).await;
    assert_eq!(outcome, Ok(AgentOutcome::Terminated));
    assert_eq!(*log.lock().expect("unpoisoned"), ["drain", "shutdown"]);
    let acks = h.control.acks();
    assert_eq!(
        outcomes(&acks),
        [(AckOutcome::Accepted, "started"), (AckOutcome::Succeeded, "drained and shut down; the agent is stopping")]
    );
    assert_eq!(acks[1].details["drain.output"], "evicted 3 jobs");
    assert_eq!(acks[1].details["shutdown.output"], "poweroff scheduled");
    assert!(h.flags.is_cordoned() && h.flags.is_draining());
}

#[tokio::test(start_paused = true)]
async fn terminate_refuses_after_a_failed_drain_unless_forced() {
    let mut opts = options();
    opts.hooks.drain = Some(Hook::function(|_| async { Err("job 17 will not stop".to_owned()) }));
    let h = Harness::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8)), opts);
    let acks = run(&h, command("TERMINATE", &[]), 2).await;
    assert_eq!(
        outcomes(&acks)[1],
        (
            AckOutcome::Failed,
            "not terminating: drain hook failed: job 17 will not stop (set force=true to terminate anyway)"
        )
    );
    assert!(!h.run.is_finished(), "the agent goes on");

    h.control.deliver(command("TERMINATE", &[("force", "true")]));
    assert_eq!(Harness::finish(h.run).await, Ok(AgentOutcome::Terminated));
    let last = h.control.acks().pop().expect("acks");
    assert_eq!(
        (last.outcome, last.message.as_str()),
        (AckOutcome::Succeeded, "drained; no shutdown hook configured; the agent is stopping")
    );
    assert_eq!(last.details["drain.error"], "drain hook failed: job 17 will not stop");
}

#[tokio::test(start_paused = true)]
async fn commands_without_a_handler_and_builtin_defaults() {
    let h = Harness::running();
    let cases = [
        (command("custom:flash-bios", &[]), AckOutcome::Failed, "no handler for custom:flash-bios"),
        (command("REBOOT", &[]), AckOutcome::Succeeded, "rebooted (simulated): every fault cleared"),
        (command("RESET_GPU", &[("gpu", "3")]), AckOutcome::Succeeded, "GPU 3 reset"),
        (command("RESET_GPU", &[("gpu", "9")]), AckOutcome::Failed, "GPU 9 does not exist: this machine has 8 GPUs"),
        (command("RESET_GPU", &[]), AckOutcome::Failed, "RESET_GPU needs the parameter gpu=<index>"),
        (command("DRAIN", &[]), AckOutcome::Succeeded, "nothing to drain: no drain hook configured"),
        (
            command("DRAIN", &[("timeout", "soon")]),
            AckOutcome::Failed,
            "invalid timeout parameter \"soon\": expected seconds such as 300, 90s, 5m or 1h",
        ),
        (command("RUN_DIAGNOSTIC", &[("test", "quick")]), AckOutcome::Succeeded, "quick: all 8 GPUs passed"),
        (command("RUN_DIAGNOSTIC", &[]), AckOutcome::Succeeded, "all: all 8 GPUs passed"),
    ];
    for (command, outcome, message) in cases {
        let kind = command.kind.to_string();
        let acks = run(&h, command, 2).await;
        assert_eq!(outcomes(&acks), [(AckOutcome::Accepted, "started"), (outcome, message)], "{kind}");
    }
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn diagnostics_fail_while_faults_are_active() {
    let h = Harness::running();
    h.gpus.inject(Fault::DeviceError { gpu: 2 }).expect("valid");
    let acks = run(&h, command("RUN_DIAGNOSTIC", &[("test", "quick")]), 2).await;
    assert_eq!(outcomes(&acks)[1], (AckOutcome::Failed, "quick: 1 active fault(s)"));
    let details = &acks[1].details;
    assert_eq!(
        (details["test"].as_str(), details["failed_gpus"].as_str(), details["faults"].as_str()),
        ("quick", "2", "device error on GPU 2")
    );
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_drain_hook_is_bounded_by_the_command_timeout() {
    let mut opts = options();
    opts.hooks.drain = Some(Hook::function(|_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok("never".to_owned())
    }));
    opts.hooks.reboot =
        Some(Hook::function(|ctx: HookContext| async move { Ok(format!("rebooting {}", ctx.node_id)) }));
    let h = Harness::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8)), opts);
    let started = tokio::time::Instant::now();
    let acks = run(&h, command("DRAIN", &[("timeout", "5s")]), 2).await;
    assert_eq!(outcomes(&acks)[1], (AckOutcome::Failed, "drain hook failed: timed out after 5s"));
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(h.flags.is_draining());

    let acks = run(&h, command("REBOOT", &[]), 2).await;
    assert_eq!(outcomes(&acks)[1], (AckOutcome::Succeeded, "reboot started"));
    assert_eq!(acks[1].details["reboot.output"], "rebooting node-1");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn an_expired_command_is_not_started() {
    let h = Harness::running();
    let mut late = command("CORDON", &[]);
    late.deadline = Some(SystemClock.now() - Duration::from_secs(60));
    let acks = run(&h, late, 1).await;
    assert_eq!(outcomes(&acks), [(AckOutcome::Failed, "deadline passed before the agent could start it")]);
    assert!(!h.flags.is_cordoned());
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_a_running_hook() {
    let mut opts = options();
    opts.hooks.custom.insert(
        "burn-in".into(),
        Hook::function(|_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok("done".to_owned())
        }),
    );
    let h = Harness::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8)), opts);
    let acks = run(&h, command("custom:burn-in", &[]), 1).await;
    assert_eq!(acks[0].outcome, AckOutcome::Accepted);
    let control = h.control.clone();
    assert_eq!(h.stop().await, Ok(AgentOutcome::Cancelled));
    assert_eq!(control.acks().len(), 1, "no result for an abandoned command");
}

/// Remediation steps on fake machines: a GPU reset ends that GPU's faults, a simulated
/// reboot ends every fault but a boot failure.
#[tokio::test(start_paused = true)]
async fn reset_gpu_and_reboot_clear_fake_faults() {
    use bosun_core::fault::Fault;
    let h = Harness::running();
    h.gpus.inject(Fault::Thermal { gpu: Some(3), celsius: 97.0 }).expect("inject");
    h.gpus.inject(Fault::DeviceError { gpu: 5 }).expect("inject");
    let acks = run(&h, command("RESET_GPU", &[("gpu", "3")]), 2).await;
    assert_eq!(outcomes(&acks)[1], (AckOutcome::Succeeded, "GPU 3 reset"));
    assert_eq!(h.gpus.active_faults(), [Fault::DeviceError { gpu: 5 }], "only GPU 3's fault ended");
    let acks = run(&h, command("REBOOT", &[]), 2).await;
    assert_eq!(outcomes(&acks)[1], (AckOutcome::Succeeded, "rebooted (simulated): every fault cleared"));
    assert!(h.gpus.active_faults().is_empty());

    h.gpus.inject(Fault::BackendFailure).expect("inject");
    let acks = run(&h, command("RESET_GPU", &[("gpu", "1")]), 2).await;
    assert_eq!(
        outcomes(&acks)[1],
        (AckOutcome::Failed, "cannot reset GPU 1: GPU backend failed: NVML call failed: Unknown Error (injected)")
    );
    h.stop().await.expect("stops cleanly");
}
