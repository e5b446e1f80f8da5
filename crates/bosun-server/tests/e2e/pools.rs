//! Pools (SPEC 3.6), first slice: min_nodes is reached through the fake provider without
//! over-provisioning while machines boot, and a failing provider is backed off, then used.

use std::time::Duration;

use bosun_api::v1;
use bosun_core::PoolSpec;
use bosun_provider::ProviderError;
use bosun_provider::fake::FakeSettings;
use bosun_store::{Backend, InstanceFilter, PageRequest};

use crate::harness::*;

on_sql_backends!(
    a_pool_reaches_min_nodes_without_over_provisioning,
    a_failing_provider_is_backed_off_then_used,
    a_fatal_xid_leads_to_exactly_one_replacement,
    a_correlated_failure_is_replaced_only_up_to_the_budget,
    a_restart_while_machines_boot_provisions_nothing_twice,
    machines_of_lost_calls_are_adopted_or_terminated,
    pools_are_listed_with_their_decisions_and_demand_drives_the_queue_autoscaler,
    faults_are_injected_into_fake_machines_only,
    a_reactive_pool_grows_on_busy_gpus_from_heartbeats,
    scale_down_drains_the_cordoned_node_first_and_then_terminates,
    an_operator_scales_a_pool_and_the_unhealthy_node_goes_first,
    the_ladder_runs_on_fake_machines_and_ends_in_a_replacement,
    a_restart_with_the_machines_gone_restores_capacity_at_once,
    a_mass_failure_holds_terminations_and_says_why,
);

fn spec(min: u32) -> PoolSpec {
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", min, 10);
    spec.region = "local".into();
    spec
}

async fn instance_states(h: &Harness) -> Vec<v1::InstanceState> {
    let listed = h.root().list_instances(v1::ListInstancesRequest::default()).await.expect("list").into_owned();
    listed.instances.iter().map(|i| i.state.as_known().expect("state")).collect()
}

async fn a_pool_reaches_min_nodes_without_over_provisioning(backend: Backend) {
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(3), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(instance_states(&h).await.len(), 3, "min_nodes without an autoscaling block");
    // Again and again while the machines boot: booting instances count.
    for _ in 0..3 {
        h.server().reconcile_pools().await.expect("reconcile");
    }
    assert_eq!(cloud.live_count(), 3, "nothing provisioned twice");
    let mut states = Vec::new();
    for _ in 0..400 {
        states = instance_states(&h).await;
        if states.iter().all(|s| *s == v1::InstanceState::INSTANCE_STATE_RUNNING) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(states, [v1::InstanceState::INSTANCE_STATE_RUNNING; 3], "each agent registered and linked");
    // The pool's capacity now, before any further pass: three serving, none booting.
    let listed = h.root().list_pools(v1::ListPoolsRequest::default()).await.expect("pools").into_owned();
    let usage = listed.pools[0].usage.as_option().expect("usage").clone();
    assert_eq!((usage.usable, usage.serving, usage.booting, usage.unhealthy), (3, 3, 0, 0));
    let nodes = h.root().list_nodes(v1::ListNodesRequest { pool: "training".into(), ..Default::default() }).await;
    assert_eq!(nodes.expect("nodes").into_owned().nodes.len(), 3);
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 3);
    let pool = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
    let decision = pool.status.last_decision.expect("decision stored");
    assert_eq!((decision.current, decision.target), (3, 3), "{}", decision.reason);
    h.stop().await;
}

async fn a_failing_provider_is_backed_off_then_used(backend: Backend) {
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(1), FakeSettings::default()).await
    else {
        return;
    };
    let name = "training".parse().expect("name");
    cloud.fail_next(2, ProviderError::Unavailable { provider: "fake".into(), message: "HTTP 503".into() });
    h.server().reconcile_pools().await.expect("reconcile");
    let pool = h.server().store().pool(&name).await.expect("pool");
    let backoff = pool.status.provider_backoff.get("fake").expect("backed off");
    assert_eq!(backoff.consecutive_failures, 1);
    assert!(backoff.last_error.contains("503"));
    let reason = pool.status.last_decision.expect("decision").reason;
    assert!(reason.contains("could not provision"), "{reason}");

    // Within the backoff nothing is tried.
    h.server().reconcile_pools().await.expect("reconcile");
    let failed = InstanceFilter { states: vec![bosun_core::InstanceState::Failed], ..Default::default() };
    let count = |h: &Harness| {
        let store = h.server().store();
        let filter = failed.clone();
        async move { store.list_instances(&filter, &PageRequest::first(100)).await.expect("list").items.len() }
    };
    assert_eq!(count(&h).await, 1, "one attempt, recorded as a FAILED instance");
    h.clock.advance(Duration::from_secs(31));
    h.server().reconcile_pools().await.expect("reconcile");
    let pool = h.server().store().pool(&name).await.expect("pool");
    assert_eq!(pool.status.provider_backoff["fake"].consecutive_failures, 2, "30 s later: tried, failed again");
    h.clock.advance(Duration::from_secs(59));
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 0, "the 60 s backoff still holds");
    h.clock.advance(Duration::from_secs(2));
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 1, "used once the backoff ran out");
    let pool = h.server().store().pool(&name).await.expect("pool");
    assert!(pool.status.provider_backoff.is_empty(), "a success resets the backoff");
    h.stop().await;
}

/// Waits until every instance of the pool is RUNNING and `count` of them exist.
fn xid(node: &str) -> v1::IssueCommandRequest {
    xid_code(node, 79)
}

/// A `fake-fault` command that makes the machine's GPU 3 report XID `code`.
fn xid_code(node: &str, code: u32) -> v1::IssueCommandRequest {
    v1::IssueCommandRequest {
        node_id: node.into(),
        r#type: v1::CommandType::COMMAND_TYPE_CUSTOM.into(),
        custom_name: bosun_agent::FAULT_COMMAND.into(),
        parameters: [
            ("fault".to_owned(), "xid".to_owned()),
            ("code".to_owned(), code.to_string()),
            ("gpu".to_owned(), "3".to_owned()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

/// Injects a fatal XID into `node` and waits until it has been UNHEALTHY for two reports.
async fn break_node(h: &Harness, node: &str) {
    h.root().issue_command(xid(node)).await.expect("inject");
    h.wait_for_node(node, "UNHEALTHY for two reports", |n| {
        status_of(n) == v1::NodeStatus::NODE_STATUS_UNHEALTHY && n.unhealthy_streak >= 2
    })
    .await;
}

async fn a_fatal_xid_leads_to_exactly_one_replacement(backend: Backend) {
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(3), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let first = wait_running(&h, 3).await;
    let victim = first[1].node_id.clone();
    break_node(&h, &victim).await;

    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(status_of(&h.node(&victim).await), v1::NodeStatus::NODE_STATUS_TERMINATED);
    let old = h
        .root()
        .get_instance(v1::GetInstanceRequest { instance_id: first[1].instance_id.clone(), ..Default::default() })
        .await
        .expect("old instance")
        .into_owned();
    assert_eq!(
        old.instance.as_option().expect("instance").state.as_known(),
        Some(v1::InstanceState::INSTANCE_STATE_TERMINATED)
    );
    let now_running = wait_running(&h, 3).await;
    assert!(now_running.iter().all(|i| i.node_id != victim), "the replacement is a new node");
    for _ in 0..3 {
        h.server().reconcile_pools().await.expect("reconcile");
    }
    assert_eq!(cloud.live_count(), 3, "exactly one replacement");
    let all = h.root().list_instances(v1::ListInstancesRequest::default()).await.expect("list").into_owned().instances;
    assert_eq!(all.len(), 4, "three live and the replaced one");

    // The ledger answers why the node was replaced: one run, with what judged it.
    let ops = h.ops(Some(OPERATOR));
    let runs = ops
        .list_runs(v1::ListRunsRequest { target: victim.clone(), ..Default::default() })
        .await
        .expect("runs")
        .into_owned()
        .runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = ops
        .get_run(v1::GetRunRequest { run_id: runs[0].id.clone(), ..Default::default() })
        .await
        .expect("run")
        .into_owned()
        .run
        .into_option()
        .expect("run");
    assert_eq!((run.kind.as_str(), run.status.as_str()), ("replacement", "succeeded"));
    assert!(run.targets.contains(&format!("node:{victim}")) && run.targets.contains(&"pool:training".to_owned()));
    assert_eq!(run.requested_by, "system:pool-reconciler");
    assert!(run.input_json.contains("replaced: node"), "{}", run.input_json);
    let events: Vec<&str> = run.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(events, ["step_started", "step_finished"]);
    assert!(run.finished_at.is_set());
    h.stop().await;
}

async fn a_correlated_failure_is_replaced_only_up_to_the_budget(backend: Backend) {
    // Four nodes, 20 % budget: one replacement per window (at least one is always allowed).
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(4), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let first = wait_running(&h, 4).await;
    for instance in &first[..2] {
        break_node(&h, &instance.node_id).await;
    }
    h.server().reconcile_pools().await.expect("reconcile");
    let unhealthy = v1::ListNodesRequest { status: v1::NodeStatus::NODE_STATUS_UNHEALTHY.into(), ..Default::default() };
    let still = h.root().list_nodes(unhealthy.clone()).await.expect("list").into_owned().nodes;
    assert_eq!(still.len(), 1, "only one replaced within the window");
    let pool = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
    let reason = pool.status.last_decision.expect("decision").reason;
    assert!(reason.contains("replacement budget reached"), "the pool's decision says why: {reason}");
    let events = h
        .root()
        .list_events(v1::ListEventsRequest {
            kind: "pool".into(),
            resource_id: "training".into(),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_owned();
    assert!(
        events.events.iter().any(|e| e.reason.contains("replacement budget reached")),
        "and so does the change log"
    );

    // The budget limits what is taken away, not what is added: both replacements were
    // provisioned in that pass (five RUNNING: two new, two healthy, one waiting).
    assert_eq!(cloud.live_count(), 5, "surge: a replacement for each broken node at once");
    let pool = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
    let decision = pool.status.last_decision.expect("decision");
    assert_eq!(decision.inputs["awaiting_replacement"], "1");
    assert_eq!(decision.conditions.len(), 1, "{:?}", decision.conditions);
    assert_eq!(decision.conditions[0].kind, bosun_core::pool::PoolConditionKind::AwaitingReplacement);
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains("bosun_pool_nodes_awaiting_replacement{pool=\"training\"} 1"), "{metrics}");
    wait_running(&h, 5).await;
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 5, "nothing more is provisioned while the broken node waits");

    // The next window terminates the other broken machine; usable capacity was never short.
    h.clock.advance(pool_window());
    h.server().reconcile_pools().await.expect("reconcile");
    assert!(h.root().list_nodes(unhealthy).await.expect("list").into_owned().nodes.is_empty());
    wait_running(&h, 4).await;
    assert_eq!(cloud.live_count(), 4);
    let decision = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
    assert!(decision.status.last_decision.expect("decision").conditions.is_empty());
    h.stop().await;
}

fn pool_window() -> Duration {
    spec(1).replacement_window + Duration::from_secs(1)
}

async fn a_restart_while_machines_boot_provisions_nothing_twice(backend: Backend) {
    // Machines that take an hour to boot: their agents never register during the test.
    let slow = FakeSettings { boot_delay: Duration::from_secs(3600), ..FakeSettings::default() };
    let Some((mut h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(3), slow).await else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 3);
    h.restart().await;
    for _ in 0..3 {
        h.server().reconcile_pools().await.expect("reconcile after the restart");
    }
    assert_eq!(cloud.live_count(), 3, "the booting machines are known from the store: none provisioned twice");
    let states = instance_states(&h).await;
    assert_eq!(states, [v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION; 3]);
    h.stop().await;
}

async fn machines_of_lost_calls_are_adopted_or_terminated(backend: Backend) {
    use bosun_core::instance::InstanceRequest;
    use bosun_core::{Actor, Clock, Instance, InstanceTrigger};
    use bosun_provider::{Bootstrap, Provider, ProvisionRequest};
    use bosun_store::WriteBatch;

    let slow = FakeSettings { boot_delay: Duration::from_secs(3600), ..FakeSettings::default() };
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(1), slow).await else {
        return;
    };
    // Two provisioning calls whose answers were lost: one recorded PROVISIONING, one
    // recorded FAILED (a timeout), each with a machine the cloud did create.
    let store = h.server().store();
    let mut machines = Vec::new();
    for (id, failed) in [("i-lost-answer", false), ("i-timed-out", true)] {
        let request = InstanceRequest {
            id: id.parse().expect("id"),
            provider: "fake".into(),
            region: "local".into(),
            zone: String::new(),
            instance_type: "h100-8x".into(),
            pool: Some("training".parse().expect("pool")),
            labels: Default::default(),
        };
        let mut instance = Instance::start_provisioning(request, h.clock.now()).expect("provisioning");
        if failed {
            instance.apply(InstanceTrigger::Fail, "provider call timed out", h.clock.now()).expect("fail");
        }
        store.commit(WriteBatch::new(Actor::system("test"), "setup").create_instance(instance)).await.expect("create");
        let provision = ProvisionRequest {
            instance_id: id.parse().expect("id"),
            pool: None,
            instance_type: "h100-8x".into(),
            region: "local".into(),
            zone: String::new(),
            labels: Default::default(),
            bootstrap: Bootstrap { server_url: h.url(), token: None },
            image: None,
            ssh: Default::default(),
        };
        machines.push(cloud.provision(&provision).await.expect("machine").provider_instance_id);
    }
    h.server().reconcile_pools().await.expect("reconcile");
    let adopted = store.instance(&"i-lost-answer".parse().expect("id")).await.expect("instance");
    assert_eq!(adopted.provider_instance_id.as_deref(), Some(machines[0].as_str()), "adopted, not provisioned again");
    assert_eq!(adopted.state, bosun_core::InstanceState::PendingRegistration);
    let failed = store.instance(&"i-timed-out".parse().expect("id")).await.expect("instance");
    assert_eq!(failed.state, bosun_core::InstanceState::Terminated, "the failed instance's machine is terminated");
    let listed = cloud.list().await.expect("list");
    let timed_out = listed.iter().find(|m| m.provider_instance_id == machines[1]).expect("machine");
    assert_eq!(timed_out.state, bosun_provider::ProviderInstanceState::Terminated);
    assert_eq!(cloud.live_count(), 1, "min 1 is met by the adopted machine");

    // Each repair is a drift_repair run: the adoption finished at once, the termination
    // once the provider confirmed it.
    let ops = h.ops(Some(OPERATOR));
    for (instance, repair) in [
        ("i-lost-answer", "adopted a machine whose provisioning call did not return"),
        ("i-timed-out", "terminating the machine of a failed instance"),
    ] {
        let request =
            v1::ListRunsRequest { target: instance.into(), kind: "drift_repair".into(), ..Default::default() };
        let runs = ops.list_runs(request).await.expect("runs").into_owned().runs;
        assert_eq!(runs.len(), 1, "{instance}: {runs:?}");
        assert_eq!(runs[0].status, "succeeded", "{instance}");
        assert!(runs[0].input_json.contains(repair), "{instance}: {}", runs[0].input_json);
    }
    h.stop().await;
}

async fn pools_are_listed_with_their_decisions_and_demand_drives_the_queue_autoscaler(backend: Backend) {
    let mut queue = spec(1);
    queue.max_nodes = 5;
    queue.autoscaling = Some(bosun_core::pool::AutoscalingSpec::Queue { jobs_per_node: 10 });
    let slow = FakeSettings { boot_delay: Duration::from_secs(3600), ..FakeSettings::default() };
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "batch", queue, slow).await else {
        return;
    };
    let demand = |queue_depth| v1::ReportPoolDemandRequest { pool: "batch".into(), queue_depth, ..Default::default() };
    h.root().report_pool_demand(demand(35)).await.expect("report");
    let (code, _) = refused(
        h.root().report_pool_demand(v1::ReportPoolDemandRequest { pool: "nope".into(), ..Default::default() }).await,
    );
    assert_eq!(code, connectrpc::ErrorCode::NotFound);
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 4, "35 queued jobs at 10 per node");

    let pools = h.root().list_pools(v1::ListPoolsRequest::default()).await.expect("list").into_owned().pools;
    assert_eq!(pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["batch"]);
    let pool = h.root().get_pool(v1::GetPoolRequest { name: "batch".into(), ..Default::default() }).await;
    let pool = pool.expect("get").into_owned().pool.as_option().expect("pool").clone();
    assert_eq!(pool.autoscaling, "queue");
    let decision = pool.last_decision.as_option().expect("decision");
    assert_eq!((decision.current, decision.target), (0, 4));
    assert!(decision.reason.contains("provisioned 4"), "{}", decision.reason);
    assert_eq!(decision.inputs.get("booting").map(String::as_str), Some("0"));
    let (code, _) = refused(h.root().get_pool(v1::GetPoolRequest { name: "nope".into(), ..Default::default() }).await);
    assert_eq!(code, connectrpc::ErrorCode::NotFound);
    let (code, message) = refused(h.root().get_pool(v1::GetPoolRequest::default()).await);
    assert_eq!(code, connectrpc::ErrorCode::InvalidArgument, "{message}");
    h.stop().await;
}

async fn faults_are_injected_into_fake_machines_only(backend: Backend) {
    let Some((h, _cloud)) = Harness::start_with_fake_pool(backend, "training", spec(1), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let machine = wait_running(&h, 1).await[0].node_id.clone();
    let inject = |node: &str, fault: &str| v1::InjectFaultRequest {
        node_id: node.into(),
        fault: fault.into(),
        parameters: [("code".to_owned(), "79".to_owned())].into_iter().collect(),
        ..Default::default()
    };
    h.root().inject_fault(inject(&machine, "xid_error")).await.expect("inject into a fake machine");
    h.wait_for_node(&machine, "UNHEALTHY", |n| status_of(n) == v1::NodeStatus::NODE_STATUS_UNHEALTHY).await;

    // A node that is not a fake provider's machine is refused with a clear message.
    bosun_agent::ControlPlane::register(&*h.agent_client(), &registration("real-1"), None).await.expect("register");
    let (code, message) = refused(h.root().inject_fault(inject("real-1", "xid_error")).await);
    assert_eq!(code, connectrpc::ErrorCode::FailedPrecondition);
    assert!(message.contains("not on a fake provider"), "{message}");
    let (code, message) = refused(h.root().inject_fault(inject(&machine, "meteor")).await);
    assert_eq!(code, connectrpc::ErrorCode::InvalidArgument);
    assert!(message.contains("fault"), "{message}");
    h.stop().await;
}

async fn a_reactive_pool_grows_on_busy_gpus_from_heartbeats(backend: Backend) {
    let mut reactive = spec(1);
    reactive.max_nodes = 3;
    reactive.autoscaling = Some(bosun_core::pool::AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 });
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", reactive, FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let machine = wait_running(&h, 1).await[0].node_id.clone();
    cloud.gpus_of(&node_id(&machine)).expect("fake GPUs").set_utilization(Some(95.0));
    // Past the cooldown of the first scale-up; heartbeats (every second) bring the load in.
    h.clock.advance(Duration::from_secs(301));
    for _ in 0..200 {
        h.server().reconcile_pools().await.expect("reconcile");
        if cloud.live_count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cloud.live_count(), 2, "95 % GPU utilization >= scale_up_at 80 %: one more");
    let pool = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
    let decision = pool.status.last_decision.expect("decision");
    assert!(decision.reason.contains("utilization"), "{}", decision.reason);
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 2, "the cooldown holds the next step");
    h.stop().await;
}

async fn scale_down_drains_the_cordoned_node_first_and_then_terminates(backend: Backend) {
    let mut queue = spec(1);
    queue.max_nodes = 5;
    queue.autoscaling = Some(bosun_core::pool::AutoscalingSpec::Queue { jobs_per_node: 10 });
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "batch", queue, FakeSettings::default()).await else {
        return;
    };
    let demand = |queue_depth| v1::ReportPoolDemandRequest { pool: "batch".into(), queue_depth, ..Default::default() };
    h.root().report_pool_demand(demand(30)).await.expect("report");
    h.server().reconcile_pools().await.expect("reconcile");
    let running = wait_running(&h, 3).await;
    let cordoned = running[2].node_id.clone();
    let cordon = v1::IssueCommandRequest {
        node_id: cordoned.clone(),
        r#type: v1::CommandType::COMMAND_TYPE_CORDON.into(),
        ..Default::default()
    };
    h.root().issue_command(cordon).await.expect("cordon");

    // Demand falls to one node's worth; past the cooldown the pool shrinks by two.
    h.clock.advance(Duration::from_secs(301));
    h.root().report_pool_demand(demand(5)).await.expect("report");
    h.server().reconcile_pools().await.expect("reconcile");
    let node = h.node(&cordoned).await;
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_DRAINING, "the cordoned node goes first: {node:?}");
    assert_eq!(cloud.live_count(), 3, "nothing is terminated before its drain");

    // The agents drain and acknowledge; the next passes terminate the drained machines.
    let mut live = 3;
    for _ in 0..200 {
        h.server().reconcile_pools().await.expect("reconcile");
        live = cloud.live_count();
        if live == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live, 1, "two machines removed");
    assert_eq!(status_of(&h.node(&cordoned).await), v1::NodeStatus::NODE_STATUS_TERMINATED);
    let drains = h
        .root()
        .list_commands(v1::ListCommandsRequest {
            node_id: cordoned.clone(),
            states: vec![v1::CommandState::COMMAND_STATE_SUCCEEDED.into()],
            ..Default::default()
        })
        .await
        .expect("commands")
        .into_owned()
        .commands;
    assert!(
        drains.iter().any(|c| c.r#type.as_known() == Some(v1::CommandType::COMMAND_TYPE_DRAIN)),
        "drained before it was terminated"
    );
    for _ in 0..3 {
        h.server().reconcile_pools().await.expect("reconcile");
    }
    assert_eq!(cloud.live_count(), 1, "and no flapping back up");
    h.stop().await;
}

async fn an_operator_scales_a_pool_and_the_unhealthy_node_goes_first(backend: Backend) {
    let mut manual = spec(1);
    manual.max_nodes = 4;
    manual.health.auto_replace = false;
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "manual", manual, FakeSettings::default()).await
    else {
        return;
    };
    let scale = |target| v1::ScalePoolRequest { name: "manual".into(), target, ..Default::default() };
    let scaled = h.root().scale_pool(scale(3)).await.expect("scale").into_owned();
    let decision = scaled.decision.as_option().expect("decision");
    assert!(decision.reason.starts_with("scaled by operator:root"), "{}", decision.reason);
    assert_eq!(cloud.live_count(), 3);
    let (code, message) = refused(h.root().scale_pool(scale(5)).await);
    assert_eq!(code, connectrpc::ErrorCode::InvalidArgument);
    assert!(message.contains("target") && message.contains("1..=4"), "{message}");
    let (code, _) = refused(
        h.root().scale_pool(v1::ScalePoolRequest { name: "other".into(), target: 1, ..Default::default() }).await,
    );
    assert_eq!(code, connectrpc::ErrorCode::NotFound);

    let running = wait_running(&h, 3).await;
    let sick = running[0].node_id.clone();
    break_node(&h, &sick).await;
    h.root().scale_pool(scale(2)).await.expect("scale down");
    assert_eq!(
        status_of(&h.node(&sick).await),
        v1::NodeStatus::NODE_STATUS_DRAINING,
        "the UNHEALTHY node is the first victim"
    );
    for _ in 0..200 {
        h.server().reconcile_pools().await.expect("reconcile");
        if cloud.live_count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cloud.live_count(), 2);
    assert_eq!(status_of(&h.node(&sick).await), v1::NodeStatus::NODE_STATUS_TERMINATED);

    // Each pass that changed the pool's size is a scale run, attributed to whoever asked.
    let ops = h.ops(Some(OPERATOR));
    let request = v1::ListRunsRequest { kind: "scale".into(), target: "manual".into(), ..Default::default() };
    let runs = ops.list_runs(request).await.expect("runs").into_owned().runs;
    let seen: Vec<(&str, &str)> = runs.iter().map(|r| (r.requested_by.as_str(), r.status.as_str())).collect();
    assert!(seen.contains(&("operator:root", "succeeded")), "{seen:?}");
    let mut messages = Vec::new();
    for run in runs.iter().filter(|r| r.requested_by == "operator:root") {
        let got = ops.get_run(v1::GetRunRequest { run_id: run.id.clone(), ..Default::default() }).await.expect("run");
        let run = got.into_owned().run.into_option().expect("run");
        messages.extend(run.events.into_iter().map(|e| e.message));
    }
    for expected in ["provisioning 3 machine(s): 0 -> 3", "draining 1 node(s) for removal: 3 -> 2"] {
        assert!(messages.iter().any(|m| m == expected), "{expected:?} in {messages:?}");
    }
    h.stop().await;
}

fn remediation_of(node: &v1::Node) -> Option<(v1::RemediationAction, String)> {
    node.remediation.as_option().map(|r| (r.step.as_known().expect("known step"), r.state.clone()))
}

/// On real (fake) machines: an application XID costs nothing; a hardware XID the catalog
/// answers with a GPU reset is reset by the agent, its recurrence rebooted, and its second
/// recurrence replaced through the pool, which provisions the replacement at once.
async fn the_ladder_runs_on_fake_machines_and_ends_in_a_replacement(backend: Backend) {
    use v1::RemediationAction as Step;
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(2), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let running = wait_running(&h, 2).await;
    let victim = running[0].node_id.clone();

    h.root().issue_command(xid_code(&victim, 13)).await.expect("inject");
    h.wait_for_node(&victim, "DEGRADED", |n| health_of(n) == v1::HealthStatus::HEALTH_STATUS_DEGRADED).await;
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 2, "no machine replaced for an application fault");
    assert_eq!(remediation_of(&h.node(&victim).await), None);

    for (round, step) in [(1, Step::REMEDIATION_ACTION_RESET_GPU), (2, Step::REMEDIATION_ACTION_REBOOT)] {
        h.root().issue_command(xid_code(&victim, 94)).await.expect("inject");
        h.wait_for_node(&victim, &format!("{step:?} done (round {round})"), |n| {
            remediation_of(n) == Some((step, "succeeded".to_owned()))
        })
        .await;
        assert_eq!(status_of(&h.node(&victim).await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    }
    h.root().issue_command(xid_code(&victim, 94)).await.expect("inject");
    let node = h
        .wait_for_node(&victim, "taken out for replacement", |n| {
            remediation_of(n).is_some_and(|(step, _)| step == Step::REMEDIATION_ACTION_REPLACE)
        })
        .await;
    assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_UNHEALTHY);

    // The pool replaces it at once, without waiting for more reports.
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(status_of(&h.node(&victim).await), v1::NodeStatus::NODE_STATUS_TERMINATED);
    let running = wait_running(&h, 2).await;
    assert!(running.iter().all(|i| i.node_id != victim));
    assert_eq!(cloud.live_count(), 2);
    h.stop().await;
}

/// The quick start's restart: the fake machines died with the old process. The pool
/// provisions replacements for all of them at once (max_nodes allows it), terminates
/// nothing while they are merely silent (three of three at once: the mass-failure guard),
/// and writes the lost machines off once their provider has not listed them for the
/// grace, which costs no replacement budget.
async fn a_restart_with_the_machines_gone_restores_capacity_at_once(backend: Backend) {
    let mut quickstart = spec(3);
    quickstart.max_nodes = 6;
    let Some((mut h, old_cloud)) =
        Harness::start_with_fake_pool(backend, "demo", quickstart, FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let before: Vec<String> = wait_running(&h, 3).await.into_iter().map(|i| i.node_id).collect();
    let cloud = h.restart_with_fresh_provider(&old_cloud, FakeSettings::default()).await;
    assert_eq!(old_cloud.live_count(), 0);

    // Past the start-up grace and a heartbeat timeout the silent nodes are UNHEALTHY.
    h.clock.advance(h.settings.startup_grace + h.settings.heartbeat_timeout + Duration::from_secs(1));
    h.server().judge_liveness().await.expect("liveness");
    for node in &before {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_UNHEALTHY);
    }
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 3, "three replacements provisioned in one pass");
    let name = "demo".parse().expect("name");
    let decision = h.server().store().pool(&name).await.expect("pool").status.last_decision.expect("decision");
    assert_eq!((decision.current, decision.target), (0, 3), "{}", decision.reason);
    assert!(decision.reason.contains("provisioned 3"), "{}", decision.reason);
    for node in &before {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "nothing terminated");
    }
    // The old instances are still RUNNING in the store (nobody has seen them go yet).
    let replacements: Vec<String> =
        wait_running(&h, 6).await.into_iter().map(|i| i.node_id).filter(|n| !before.contains(n)).collect();
    assert_eq!(replacements.len(), 3, "new machines, new node ids: {replacements:?}");

    // The old machines are not listed by any provider: written off after the grace.
    h.clock.advance(h.settings.lost_machine_grace + Duration::from_secs(1));
    h.server().reconcile_pools().await.expect("reconcile");
    for node in &before {
        let node = h.node(node).await;
        assert_eq!(status_of(&node), v1::NodeStatus::NODE_STATUS_TERMINATED);
        assert!(node.status_reason.starts_with("machine lost"), "{}", node.status_reason);
    }
    let replaced = h
        .server()
        .store()
        .list_instances(&InstanceFilter::default(), &PageRequest::first(100))
        .await
        .expect("instances")
        .items
        .into_iter()
        .filter(|i| i.status_message.starts_with("replaced: "))
        .count();
    assert_eq!(replaced, 0, "writing off lost machines spends no replacement budget");
    let decision = h.server().store().pool(&name).await.expect("pool").status.last_decision.expect("decision");
    assert_eq!((decision.current, decision.target), (3, 3), "{}", decision.reason);
    assert!(decision.conditions.is_empty(), "{:?}", decision.conditions);
    assert_eq!(cloud.live_count(), 3);
    h.stop().await;
}

/// Three of five nodes fail at once: likelier a bad policy or a shared cause than three
/// broken machines. Terminations stop, capacity is still restored, the pool says why; the
/// guard lifts once an operator has dealt with enough of them.
async fn a_mass_failure_holds_terminations_and_says_why(backend: Backend) {
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(5), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    let running = wait_running(&h, 5).await;
    let broken: Vec<String> = running[..3].iter().map(|i| i.node_id.clone()).collect();
    for node in &broken {
        break_node(&h, node).await;
    }
    h.server().reconcile_pools().await.expect("reconcile");
    for node in &broken {
        assert_eq!(status_of(&h.node(node).await), v1::NodeStatus::NODE_STATUS_UNHEALTHY, "not terminated");
    }
    assert_eq!(cloud.live_count(), 8, "the five machines stay and three replacements come");
    let name = "training".parse().expect("name");
    let decision = h.server().store().pool(&name).await.expect("pool").status.last_decision.expect("decision");
    let guard = decision
        .conditions
        .iter()
        .find(|c| c.kind == bosun_core::pool::PoolConditionKind::MassFailure)
        .expect("a mass-failure condition");
    assert!(guard.message.contains("3 of 5 nodes are UNHEALTHY"), "{}", guard.message);
    assert!(decision.reason.contains("no machine is terminated"), "{}", decision.reason);
    let events = h
        .root()
        .list_events(v1::ListEventsRequest {
            kind: "pool".into(),
            resource_id: "training".into(),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_owned();
    assert!(events.events.iter().any(|e| e.reason.contains("mass failure")), "the change log tells the operator");
    let metrics = h.get_text("/metrics").await;
    assert!(metrics.contains("bosun_pool_mass_failure{pool=\"training\"} 1"), "{metrics}");
    assert!(metrics.contains("bosun_pool_nodes_awaiting_replacement{pool=\"training\"} 3"), "{metrics}");

    // Later passes hold too, however long ago the nodes failed.
    h.clock.advance(pool_window());
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 8);

    // The operator terminates one: two of five left, not more than half; the guard lifts
    // and the budget takes over (one replacement per window).
    let terminate = v1::IssueCommandRequest {
        node_id: broken[0].clone(),
        r#type: v1::CommandType::COMMAND_TYPE_TERMINATE.into(),
        ..Default::default()
    };
    h.root().issue_command(terminate).await.expect("terminate");
    h.server().reconcile_pools().await.expect("reconcile");
    let decision = h.server().store().pool(&name).await.expect("pool").status.last_decision.expect("decision");
    assert!(
        decision.conditions.iter().all(|c| c.kind != bosun_core::pool::PoolConditionKind::MassFailure),
        "{:?}",
        decision.conditions
    );
    let unhealthy = v1::ListNodesRequest { status: v1::NodeStatus::NODE_STATUS_UNHEALTHY.into(), ..Default::default() };
    assert_eq!(h.root().list_nodes(unhealthy).await.expect("list").into_owned().nodes.len(), 1, "one replaced");
    h.stop().await;
}
