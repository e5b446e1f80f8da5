//! SSH bootstrap (issue 14): the logs of what bosun ran on a machine, read by node id,
//! instance id or the provider's machine id.

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_core::instance::InstanceRequest;
use bosun_core::{Actor, BootstrapCommandLog, BootstrapLog, Clock, Instance, InstanceTrigger};
use bosun_store::{Backend, WriteBatch};
use connectrpc::ErrorCode;

use crate::harness::*;

on_sql_backends!(bootstrap_logs_are_found_by_any_id_of_the_machine);

async fn provisioned(h: &Harness, id: &str, machine: &str) {
    let request = InstanceRequest {
        id: id.parse().expect("instance id"),
        provider: "fake".into(),
        region: "local".into(),
        zone: "local-a".into(),
        instance_type: "h100-8x".into(),
        pool: Some("training".parse().expect("pool")),
        labels: Default::default(),
    };
    let mut instance = Instance::start_provisioning(request, h.clock.now()).expect("provisioning");
    instance.provider_instance_id = Some(machine.to_owned());
    instance.apply(InstanceTrigger::Provisioned, "provider accepted", h.clock.now()).expect("provisioned");
    let batch = WriteBatch::new(Actor::system("test"), "provisioned").create_instance(instance);
    h.server().store().commit(batch).await.expect("create instance");
}

async fn log(h: &Harness, instance: &str, success: bool) {
    let log = BootstrapLog {
        id: 0,
        node_id: instance.parse().expect("key"),
        instance_id: Some(instance.parse().expect("instance")),
        pool: Some("training".parse().expect("pool")),
        started_at: h.clock.now(),
        duration_ms: 1500,
        success,
        error: if success { String::new() } else { "connection refused".into() },
        commands: vec![BootstrapCommandLog {
            command: "install-agent --server {{.ControlPlane}}".into(),
            stdout: "ok\n".into(),
            stderr: String::new(),
            exit_code: 0,
            duration_ms: 1200,
        }],
    };
    let batch = WriteBatch::new(Actor::system("test"), "bootstrap").append_bootstrap_log(log);
    h.server().store().commit(batch).await.expect("append");
}

async fn logs(h: &Harness, id: &str) -> Result<Vec<v1::BootstrapLog>, (ErrorCode, String)> {
    let request = v1::GetBootstrapLogsRequest { node_id: id.into(), ..Default::default() };
    match h.admin(Some(OPERATOR)).get_bootstrap_logs(request).await {
        Ok(response) => Ok(response.into_owned().logs),
        Err(error) => Err((error.code, error.message.unwrap_or_default())),
    }
}

async fn bootstrap_logs_are_found_by_any_id_of_the_machine(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    provisioned(&h, "i-boot", "machine-1").await;
    log(&h, "i-boot", false).await;
    log(&h, "i-boot", true).await;

    // Before the agent registers: by instance id and by the provider's machine id.
    for id in ["i-boot", "machine-1"] {
        let found = logs(&h, id).await.expect("logs");
        let outcomes: Vec<bool> = found.iter().map(|l| l.success).collect();
        assert_eq!(outcomes, [true, false], "{id}: newest first");
        assert_eq!(found[1].error, "connection refused");
        assert_eq!(found[0].commands[0].command, "install-agent --server {{.ControlPlane}}");
    }

    // The agent registered under its hostname: the node's id finds its machine's logs.
    h.agent_client().register(&registration("gpu-host-7"), Some("i-boot")).await.expect("register");
    assert_eq!(logs(&h, "gpu-host-7").await.expect("logs").len(), 2);

    // A node without a machine has none; an unknown id is not found; bad input is named.
    h.agent_client().register(&registration("hand-made"), None).await.expect("register");
    assert!(logs(&h, "hand-made").await.expect("logs").is_empty());
    let (code, message) = logs(&h, "ghost").await.unwrap_err();
    assert_eq!(code, ErrorCode::NotFound, "{message}");
    assert!(message.contains("ghost"), "{message}");
    let (code, message) = logs(&h, "bad id!").await.unwrap_err();
    assert_eq!(code, ErrorCode::InvalidArgument, "{message}");
    let request = v1::GetBootstrapLogsRequest { node_id: "i-boot".into(), limit: 51, ..Default::default() };
    let error = h.root().get_bootstrap_logs(request).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument);

    // Agents cannot read them.
    let request = v1::GetBootstrapLogsRequest { node_id: "i-boot".into(), ..Default::default() };
    let error = h.admin(Some(AGENTS)).get_bootstrap_logs(request).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::PermissionDenied);
    h.stop().await;
}
