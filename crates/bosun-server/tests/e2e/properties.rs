//! Arbitrary well-typed requests to every RPC, the same sequence sent to a server on each
//! backend: every request gets the same class of answer (its code) from all of them, and
//! none is a server failure (internal, unknown, a 5xx).
//!
//! Values are drawn where bugs hide: empty, overlong and control-character strings, known
//! and unknown node ids, integers at 0, `i64::MAX`, `i64::MAX + 1` and `u64::MAX`, unknown
//! enum numbers, non-finite floats and times outside the years 0001-9999.

use std::time::Duration;

use bosun_api::v1;
use bosun_store::Backend;
use buffa::{EnumValue, MessageField};
use buffa_types::google::protobuf::Timestamp as WireTimestamp;
use connectrpc::ConnectError;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::harness::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("n1".to_owned()),
        Just("n2".to_owned()),
        Just("training".to_owned()),
        Just("x".repeat(300)),
        Just("bad\u{0}nul".to_owned()),
        Just("0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6071".to_owned()),
        "[a-z0-9.:_-]{1,12}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

fn node() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("n1".to_owned()), 2 => Just("n2".to_owned()), 1 => text()]
}

fn big() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(i64::MAX as u64), Just(i64::MAX as u64 + 1), Just(u64::MAX), any::<u64>()]
}

fn small() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(3), Just(1000), Just(1001), Just(u32::MAX), any::<u32>()]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(50.0), Just(100.5), Just(-1.0), Just(f64::NAN), Just(f64::INFINITY), any::<f64>()]
}

fn enumeration<E: buffa::Enumeration>() -> impl Strategy<Value = EnumValue<E>> {
    prop_oneof![0..12i32, any::<i32>()].prop_map(EnumValue::from)
}

fn time() -> impl Strategy<Value = Option<WireTimestamp>> {
    let seconds =
        prop_oneof![Just(1_767_225_600i64), Just(253_402_300_800), Just(-62_135_596_801), Just(i64::MAX), any::<i64>()];
    let nanos = prop_oneof![Just(0i32), Just(-1), Just(1_000_000_000), any::<i32>()];
    proptest::option::of((seconds, nanos).prop_map(|(seconds, nanos)| WireTimestamp {
        seconds,
        nanos,
        ..Default::default()
    }))
}

fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((text(), text()), 0..3)
}

/// One request to one RPC.
#[derive(Debug, Clone)]
enum Call {
    Register(Box<v1::RegisterRequest>),
    Heartbeat(v1::HeartbeatRequest),
    ReportHealth(v1::ReportHealthRequest),
    PollCommands(v1::PollCommandsRequest),
    AckCommand(v1::AckCommandRequest),
    ReportWorkloads(v1::ReportWorkloadsRequest),
    ListNodes(v1::ListNodesRequest),
    GetNode(v1::GetNodeRequest),
    DeleteNode(v1::DeleteNodeRequest),
    IssueCommand(v1::IssueCommandRequest),
    ListCommands(v1::ListCommandsRequest),
    GetCommand(v1::GetCommandRequest),
    CancelCommand(v1::CancelCommandRequest),
    ListInstances(v1::ListInstancesRequest),
    GetInstance(v1::GetInstanceRequest),
    GetHealthHistory(v1::GetHealthHistoryRequest),
    ListEvents(v1::ListEventsRequest),
    WatchEvents(v1::WatchEventsRequest),
    ListPools,
    GetPool(v1::GetPoolRequest),
    ScalePool(v1::ScalePoolRequest),
    ReportPoolDemand(v1::ReportPoolDemandRequest),
    InjectFault(v1::InjectFaultRequest),
    GetPolicy,
    SetPolicy(v1::SetPolicyRequest),
    TestPolicy(v1::TestPolicyRequest),
}

fn gpu() -> impl Strategy<Value = v1::GpuInfo> {
    (small(), text(), text(), big()).prop_map(|(index, uuid, name, memory_bytes)| v1::GpuInfo {
        index: index % 70,
        uuid,
        name,
        memory_bytes,
        ..Default::default()
    })
}

fn event() -> impl Strategy<Value = v1::HealthEvent> {
    (time(), any::<i32>(), text(), enumeration(), enumeration(), labels(), text()).prop_map(
        |(timestamp, gpu_index, gpu_uuid, system, event_type, metrics, message)| v1::HealthEvent {
            timestamp: timestamp.map_or_else(MessageField::none, MessageField::some),
            gpu_index: gpu_index % 10,
            gpu_uuid,
            system,
            event_type,
            metrics: metrics.into_iter().collect(),
            message,
            ..Default::default()
        },
    )
}

fn workload() -> impl Strategy<Value = v1::GpuWorkload> {
    (small(), prop::collection::vec(small(), 0..3), text(), text(), prop::option::of(text()), big(), time()).prop_map(
        |(pid, gpu_indexes, process_name, container_id, pod_uid, gpu_memory_bytes, started_at)| v1::GpuWorkload {
            pid,
            gpu_indexes: gpu_indexes.into_iter().map(|i| i % 10).collect(),
            process_name,
            container_id,
            pod: pod_uid.map_or_else(MessageField::none, |uid| {
                MessageField::some(v1::WorkloadPod { uid, ..Default::default() })
            }),
            gpu_memory_bytes,
            started_at: started_at.map_or_else(MessageField::none, MessageField::some),
            ..Default::default()
        },
    )
}

fn call() -> impl Strategy<Value = Call> {
    let agent = prop_oneof![
        (node(), text(), text(), labels(), prop::collection::vec(gpu(), 0..3), text()).prop_map(
            |(node_id, provider, pool, labels, gpus, instance_id)| Call::Register(Box::new(v1::RegisterRequest {
                node_id,
                provider,
                pool,
                labels: labels.into_iter().collect(),
                gpus,
                instance_id,
                ..Default::default()
            }))
        ),
        (node(), float(), float(), float(), big()).prop_map(|(node_id, cpu, temperature, utilization, memory_used)| {
            Call::Heartbeat(v1::HeartbeatRequest {
                node_id,
                metrics: MessageField::some(v1::NodeMetrics {
                    cpu_usage_percent: cpu,
                    memory_usage_percent: 10.0,
                    gpu_metrics: vec![v1::GpuMetrics {
                        temperature,
                        utilization_percent: utilization,
                        memory_used,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            })
        }),
        (node(), prop::collection::vec(event(), 0..3), text(), enumeration()).prop_map(
            |(node_id, events, name, status)| {
                Call::ReportHealth(v1::ReportHealthRequest {
                    node_id,
                    events,
                    results: vec![v1::HealthCheckResult { check_name: name, status, ..Default::default() }],
                    ..Default::default()
                })
            }
        ),
        (node(), small()).prop_map(|(node_id, wait_seconds)| Call::PollCommands(v1::PollCommandsRequest {
            node_id,
            wait_seconds,
            ..Default::default()
        })),
        (node(), text(), enumeration(), text(), labels()).prop_map(
            |(node_id, command_id, outcome, message, details)| {
                Call::AckCommand(v1::AckCommandRequest {
                    node_id,
                    command_id,
                    outcome,
                    message,
                    details: details.into_iter().collect(),
                    ..Default::default()
                })
            }
        ),
        (node(), prop::collection::vec(workload(), 0..3)).prop_map(|(node_id, workloads)| {
            Call::ReportWorkloads(v1::ReportWorkloadsRequest { node_id, workloads, ..Default::default() })
        }),
    ];
    let reads = prop_oneof![
        (enumeration(), text(), text(), small(), text()).prop_map(
            |(status, pool, label_selector, page_size, page_token)| {
                Call::ListNodes(v1::ListNodesRequest {
                    status,
                    pool,
                    label_selector,
                    page_size,
                    page_token,
                    ..Default::default()
                })
            }
        ),
        node().prop_map(|node_id| Call::GetNode(v1::GetNodeRequest { node_id, ..Default::default() })),
        (node(), prop::collection::vec(enumeration(), 0..2), small()).prop_map(|(node_id, states, page_size)| {
            Call::ListCommands(v1::ListCommandsRequest { node_id, states, page_size, ..Default::default() })
        }),
        text().prop_map(|command_id| Call::GetCommand(v1::GetCommandRequest { command_id, ..Default::default() })),
        (prop::collection::vec(enumeration(), 0..2), text(), small()).prop_map(|(states, pool, page_size)| {
            Call::ListInstances(v1::ListInstancesRequest { states, pool, page_size, ..Default::default() })
        }),
        text().prop_map(|instance_id| Call::GetInstance(v1::GetInstanceRequest { instance_id, ..Default::default() })),
        (node(), small()).prop_map(|(node_id, limit)| {
            Call::GetHealthHistory(v1::GetHealthHistoryRequest { node_id, limit, ..Default::default() })
        }),
        (big(), text(), text(), text(), small()).prop_map(|(after_seq, kind, resource_id, actor, limit)| {
            Call::ListEvents(v1::ListEventsRequest { after_seq, kind, resource_id, actor, limit, ..Default::default() })
        }),
        (big(), text(), any::<bool>()).prop_map(|(after_seq, kind, from_now)| {
            Call::WatchEvents(v1::WatchEventsRequest { after_seq, kind, from_now, ..Default::default() })
        }),
        Just(Call::ListPools),
        text().prop_map(|name| Call::GetPool(v1::GetPoolRequest { name, ..Default::default() })),
        Just(Call::GetPolicy),
    ];
    let writes = prop_oneof![
        (node(), any::<bool>(), text()).prop_map(|(node_id, force, reason)| {
            Call::DeleteNode(v1::DeleteNodeRequest { node_id, force, reason, ..Default::default() })
        }),
        (node(), enumeration(), text(), labels(), small(), text()).prop_map(
            |(node_id, r#type, custom_name, parameters, ttl_seconds, reason)| Call::IssueCommand(
                v1::IssueCommandRequest {
                    node_id,
                    r#type,
                    custom_name,
                    parameters: parameters.into_iter().collect(),
                    ttl_seconds,
                    reason,
                    ..Default::default()
                }
            )
        ),
        (text(), text()).prop_map(|(command_id, reason)| {
            Call::CancelCommand(v1::CancelCommandRequest { command_id, reason, ..Default::default() })
        }),
        (text(), small()).prop_map(|(name, target)| Call::ScalePool(v1::ScalePoolRequest {
            name,
            target,
            ..Default::default()
        })),
        (text(), small(), small()).prop_map(|(pool, pending_jobs, queue_depth)| {
            Call::ReportPoolDemand(v1::ReportPoolDemandRequest {
                pool,
                pending_jobs,
                queue_depth,
                ..Default::default()
            })
        }),
        (node(), text(), proptest::option::of(small()), labels()).prop_map(|(node_id, fault, gpu, parameters)| {
            Call::InjectFault(v1::InjectFaultRequest {
                node_id,
                fault,
                gpu,
                parameters: parameters.into_iter().collect(),
                ..Default::default()
            })
        }),
        prop_oneof![
            text(),
            Just("rules:\n  - {name: r, condition: 'event.gpu_index > 2', result: degraded}\n".to_owned())
        ]
        .prop_map(|yaml| Call::SetPolicy(v1::SetPolicyRequest { yaml, ..Default::default() })),
        (text(), prop::collection::vec(event(), 0..3)).prop_map(|(yaml, events)| {
            Call::TestPolicy(v1::TestPolicyRequest { yaml, events, ..Default::default() })
        }),
    ];
    prop_oneof![3 => agent, 3 => reads, 2 => writes]
}

/// The class of an answer: `ok`, or the error's code.
async fn answer(h: &Harness, call: &Call) -> String {
    fn class<T>(result: Result<T, ConnectError>) -> String {
        match result {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.code.as_str().to_owned(),
        }
    }
    let admin = h.root();
    let agent = h.raw_agent(Some(ADMIN));
    match call.clone() {
        Call::Register(r) => class(agent.register_node(*r).await),
        Call::Heartbeat(r) => class(agent.heartbeat(r).await),
        Call::ReportHealth(r) => class(agent.report_health(r).await),
        Call::PollCommands(r) => class(agent.poll_commands(r).await),
        Call::AckCommand(r) => class(agent.ack_command(r).await),
        Call::ReportWorkloads(r) => class(agent.report_workloads(r).await),
        Call::ListNodes(r) => class(admin.list_nodes(r).await),
        Call::GetNode(r) => class(admin.get_node(r).await),
        Call::DeleteNode(r) => class(admin.delete_node(r).await),
        Call::IssueCommand(r) => class(admin.issue_command(r).await),
        Call::ListCommands(r) => class(admin.list_commands(r).await),
        Call::GetCommand(r) => class(admin.get_command(r).await),
        Call::CancelCommand(r) => class(admin.cancel_command(r).await),
        Call::ListInstances(r) => class(admin.list_instances(r).await),
        Call::GetInstance(r) => class(admin.get_instance(r).await),
        Call::GetHealthHistory(r) => class(admin.get_health_history(r).await),
        Call::ListEvents(r) => class(admin.list_events(r).await),
        Call::WatchEvents(r) => match admin.watch_events(r).await {
            Err(error) => error.code.as_str().to_owned(),
            // A valid watch stays open: its first answer, or quiet.
            Ok(mut stream) => match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
                Ok(Err(error)) => error.code.as_str().to_owned(),
                Ok(Ok(_)) | Err(_) => "open".to_owned(),
            },
        },
        Call::ListPools => class(admin.list_pools(v1::ListPoolsRequest::default()).await),
        Call::GetPool(r) => class(admin.get_pool(r).await),
        Call::ScalePool(r) => class(admin.scale_pool(r).await),
        Call::ReportPoolDemand(r) => class(admin.report_pool_demand(r).await),
        Call::InjectFault(r) => class(admin.inject_fault(r).await),
        Call::GetPolicy => class(admin.get_policy(v1::GetPolicyRequest::default()).await),
        Call::SetPolicy(r) => class(admin.set_policy(r).await),
        Call::TestPolicy(r) => class(admin.test_policy(r).await),
    }
}

const FAILURES: &[&str] = &["internal", "unknown", "data_loss", "unimplemented", "unavailable"];

#[test]
fn every_backend_answers_arbitrary_requests_alike_and_never_fails() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let servers = runtime.block_on(async {
        let mut servers = Vec::new();
        for backend in [Backend::Memory, Backend::Sqlite, Backend::Postgres] {
            let mut settings = settings();
            settings.command_poll_wait = Duration::from_millis(10);
            if let Some(h) = Harness::start_with(backend, settings).await {
                servers.push((backend, h));
            }
        }
        servers
    });
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24);
    // proptest's runner is synchronous: each case blocks on the async calls, and a failing
    // sequence shrinks like any other. Its strategy trees are deep: a thread with room.
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(64 * 1024 * 1024)
            .spawn_scoped(scope, || {
                // Nothing to persist: the sequences are not tied to a source file.
                let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
                let strategy = prop::collection::vec(call(), 1..10);
                let sent = std::sync::atomic::AtomicUsize::new(0);
                let result = runner.run(&strategy, |calls| {
                    runtime.block_on(async {
                        for call in &calls {
                            let mut answers = Vec::new();
                            for (backend, h) in &servers {
                                answers.push((*backend, Box::pin(answer(h, call)).await));
                            }
                            let first = answers[0].1.clone();
                            if FAILURES.contains(&first.as_str()) {
                                return Err(TestCaseError::fail(format!("{call:?} failed: {answers:?}")));
                            }
                            if answers.iter().any(|(_, a)| *a != first) {
                                return Err(TestCaseError::fail(format!("backends disagree on {call:?}: {answers:?}")));
                            }
                        }
                        Ok(())
                    })?;
                    sent.fetch_add(calls.len(), std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                });
                result.map(|()| sent.into_inner())
            })
            .expect("thread")
            .join()
            .expect("no panic")
    });
    match outcome {
        Ok(sent) => eprintln!("{sent} requests on {} backends answered alike", servers.len()),
        Err(failure) => panic!("{failure}"),
    }
    runtime.block_on(async {
        for (_, h) in servers {
            h.stop().await;
        }
    });
}
