//! GPU workloads end to end: simulated processes started and ended by command, reported at
//! once, on change and every inventory interval, with failures retried. On tokio's paused
//! clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bosun_agent::{CLEAR_PROCESSES_COMMAND, DeliveredCommand, FakeGpus, FakeProcess, PROCESS_COMMAND, RpcError};
use bosun_core::inventory::Workload;
use bosun_core::{Clock, CommandId, SystemClock};
use support::{FakeControlPlane, HEARTBEAT, Harness, INVENTORY, node_id, options, options_with_fake_commands};

fn command(name: &str, parameters: &[(&str, &str)]) -> DeliveredCommand {
    DeliveredCommand {
        id: CommandId::new_at(SystemClock.now()),
        kind: format!("custom:{name}").parse().expect("valid kind"),
        parameters: parameters.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        deadline: None,
    }
}

/// Runs `command` on the agent and waits for its final acknowledgement.
async fn run(h: &Harness, command: DeliveredCommand) -> String {
    let before = h.control.acks().len();
    h.control.deliver(command);
    h.control.wait_for_acks(before + 2).await;
    let ack = h.control.acks().pop().expect("acknowledged");
    assert_eq!(ack.outcome, bosun_agent::AckOutcome::Succeeded, "{ack:?}");
    ack.message
}

fn pids(workloads: &[Workload]) -> Vec<(u32, Vec<u32>, &str, u64)> {
    workloads.iter().map(|w| (w.pid, w.gpu_indexes.clone(), w.process_name.as_str(), w.gpu_memory_bytes)).collect()
}

#[tokio::test(start_paused = true)]
async fn workloads_are_reported_at_once_on_change_and_every_interval() {
    let gpus = Arc::new(FakeGpus::new(8).with_seed(1));
    let h = Harness::start(FakeControlPlane::new(), gpus.clone(), options_with_fake_commands(&gpus));
    h.control.wait_for_workload_reports(1).await;
    let registered = h.control.registrations()[0];
    let first = &h.control.workload_reports()[0];
    assert_eq!((first.0, first.1.len()), (registered, 0), "an empty machine says so at once");

    // One process on two GPUs: started on GPU 5 directly, then on GPU 2 by command.
    let on_gpu_5 = FakeProcess { gpu: 5, pid: 4242, name: "train".into(), memory_bytes: 2 << 30 };
    gpus.start_process(on_gpu_5).expect("GPU 5 exists");
    let parameters = [("pid", "4242"), ("gpu", "2"), ("name", "train"), ("memory", "4GiB")];
    assert_eq!(run(&h, command(PROCESS_COMMAND, &parameters)).await, "custom:fake-process done");
    h.control.wait_for_workload_reports(2).await;
    let (at, workloads) = h.control.workload_reports()[1].clone();
    assert!(at - registered <= HEARTBEAT, "a change is reported at the next look, within a heartbeat interval");
    assert_eq!(pids(&workloads), [(4242, vec![2, 5], "train", 6 << 30)]);
    assert_eq!(workloads[0].node_id, node_id());
    assert_eq!((workloads[0].container_id.as_ref(), workloads[0].started_at), (None, None), "simulated");

    // Nothing changes: the same snapshot again after the inventory interval, not before.
    h.control.wait_for_workload_reports(3).await;
    let reports = h.control.workload_reports();
    assert_eq!(reports[2].0 - reports[1].0, INVENTORY);
    assert_eq!(reports[2].1, workloads);

    run(&h, command(CLEAR_PROCESSES_COMMAND, &[])).await;
    h.control.wait_for_workload_reports(4).await;
    let reports = h.control.workload_reports();
    assert!(reports[3].0 - reports[2].0 < INVENTORY);
    assert_eq!(reports[3].1, [], "the process ended");
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn bad_process_commands_fail_with_the_reason() {
    let gpus = Arc::new(FakeGpus::new(2));
    let h = Harness::start(FakeControlPlane::new(), gpus.clone(), options_with_fake_commands(&gpus));
    for (parameters, reason) in [
        (vec![], "parameter pid: is required"),
        (vec![("pid", "1"), ("gpu", "7")], "GPU 7 does not exist: this machine has 2 GPUs"),
    ] {
        let before = h.control.acks().len();
        h.control.deliver(command(PROCESS_COMMAND, &parameters));
        h.control.wait_for_acks(before + 2).await;
        let ack = h.control.acks().pop().expect("acknowledged");
        assert_eq!(ack.outcome, bosun_agent::AckOutcome::Failed);
        assert!(ack.message.contains(reason), "{}", ack.message);
    }
    assert!(gpus.processes().is_empty());
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_failed_report_is_sent_again_at_the_next_look() {
    let control = FakeControlPlane::new();
    control.fail_workloads([
        RpcError::Unavailable("down".into()),
        RpcError::Other { code: "internal".into(), message: "x".into() },
    ]);
    let h = Harness::start(control, Arc::new(FakeGpus::new(8)), options());
    h.control.wait_for_workload_reports(4).await;
    let at: Vec<_> = h.control.workload_reports().into_iter().map(|(at, _)| at).collect();
    assert!(at[1] - at[0] <= HEARTBEAT && at[2] - at[1] <= HEARTBEAT, "retried within a heartbeat interval: {at:?}");
    assert_eq!(at[3] - at[2], INVENTORY, "then, once accepted, every interval: {at:?}");
    assert_eq!(h.control.registrations().len(), 1);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn an_older_server_is_asked_again_only_hourly_and_heartbeats_go_on() {
    let control = FakeControlPlane::new();
    let unimplemented = || RpcError::Other { code: "unimplemented".into(), message: "no such method".into() };
    control.fail_workloads([unimplemented(), unimplemented()]);
    let gpus = Arc::new(FakeGpus::new(8));
    let h = Harness::start(control, gpus.clone(), options_with_fake_commands(&gpus));
    h.control.wait_for_workload_reports(1).await;
    // Changes meanwhile are not sent either.
    run(&h, command(PROCESS_COMMAND, &[("pid", "7")])).await;
    h.control.wait_for_workload_reports(3).await;
    let at: Vec<_> = h.control.workload_reports().into_iter().map(|(at, _)| at).collect();
    let hour = Duration::from_secs(3600);
    assert!(at[1] - at[0] >= hour && at[1] - at[0] < hour + HEARTBEAT, "{at:?}");
    assert!(at[2] - at[1] >= hour && at[2] - at[1] < hour + HEARTBEAT, "{at:?}");
    assert!(h.control.heartbeats().len() > 700, "the agent carried on meanwhile");
    h.control.wait_for_workload_reports(4).await;
    let reports = h.control.workload_reports();
    assert_eq!(reports[3].0 - reports[2].0, INVENTORY, "accepted now: every interval again");
    assert_eq!(pids(&reports[3].1), [(7, vec![0], "python", 1 << 30)]);
    h.stop().await.expect("stops cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_refused_snapshot_waits_for_a_change_and_not_found_registers_again() {
    let control = FakeControlPlane::new();
    control
        .fail_workloads([RpcError::InvalidArgument("workloads[0].pid: bad".into()), RpcError::NotFound("gone".into())]);
    let gpus = Arc::new(FakeGpus::new(8));
    let h = Harness::start(control, gpus.clone(), options_with_fake_commands(&gpus));
    h.control.wait_for_workload_reports(2).await;
    let at: Vec<_> = h.control.workload_reports().into_iter().map(|(at, _)| at).collect();
    assert_eq!(at[1] - at[0], INVENTORY, "the refused snapshot is not sent again until the interval");
    // The second answer was not_found: the agent registers again and reports at once.
    h.control.wait_for_workload_reports(3).await;
    let registrations = h.control.registrations();
    assert_eq!(registrations.len(), 2);
    assert_eq!(h.control.workload_reports()[2].0, registrations[1]);
    h.stop().await.expect("stops cleanly");
}
