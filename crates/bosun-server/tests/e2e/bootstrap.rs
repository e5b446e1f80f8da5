//! SSH bootstrap (issue 14): a pool's setup commands run over SSH on machines whose agent
//! did not start, retried with backoff until the registration timeout, and the logs of what
//! ran, read by node id, instance id or the provider's machine id. The machines' SSH server
//! is russh's, in-process (`ssh_server`); time is the fake clock's.

use std::time::Duration;

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_config::SshConfig;
use bosun_core::instance::InstanceRequest;
use bosun_core::{Actor, BootstrapCommandLog, BootstrapLog, Clock, Instance, InstanceTrigger, PoolSpec};
use bosun_provider::fake::{FakeProvider, FakeSettings};
use bosun_server::PoolMachines;
use bosun_store::{Backend, WriteBatch};
use connectrpc::ErrorCode;

use crate::harness::*;
use crate::ssh_server::{SshServer, key_path};

on_sql_backends!(
    bootstrap_logs_are_found_by_any_id_of_the_machine,
    a_machine_whose_agent_never_starts_is_bootstrapped_over_ssh,
    failed_attempts_are_retried_with_backoff_and_given_up_at_the_registration_timeout,
    refused_keys_are_logged_and_machines_without_an_address_are_left_alone,
);

/// A pool of one fake machine whose agent never starts and whose SSH server is `ssh`.
async fn pool_on(
    backend: Backend,
    ssh: Option<&SshServer>,
    user: &str,
    key: &str,
    commands: &[&str],
) -> Option<(Harness, std::sync::Arc<FakeProvider>)> {
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", 1, 3);
    spec.region = "local".into();
    spec.setup_commands = commands.iter().map(|c| (*c).to_owned()).collect();
    let machines = PoolMachines {
        image: None,
        ssh: SshConfig { user: user.into(), keys: Vec::new(), private_key_path: Some(key_path(key)) },
    };
    let fake = FakeSettings { ssh_address: ssh.map(|s| s.address), ..FakeSettings::default() };
    let (h, cloud) = Harness::start_with_fake_pool_machines(backend, "training", spec, fake, machines).await?;
    cloud.fail_boot_next(1);
    h.server().reconcile_pools().await.expect("provision");
    Some((h, cloud))
}

/// The pool's one instance.
async fn only_instance(h: &Harness) -> v1::Instance {
    let listed = h.root().list_instances(v1::ListInstancesRequest::default()).await.expect("list").into_owned();
    assert_eq!(listed.instances.len(), 1, "{listed:?}");
    listed.instances[0].clone()
}

/// A pool pass, and the bootstrap attempts it started, to the end.
async fn pass(h: &Harness) {
    h.server().reconcile_pools().await.expect("reconcile");
    h.server().bootstrap_settled().await;
}

async fn a_machine_whose_agent_never_starts_is_bootstrapped_over_ssh(backend: Backend) {
    let ssh = SshServer::start("ops", "client_ed25519").await;
    let commands = [
        "echo installing {{.Pool}} as {{.NodeID}} from {{.ControlPlane}}; echo token=$BOSUN_TOKEN; echo warming up >&2",
        "test \"$BOSUN_NODE_ID\" = {{.InstanceID}} && test \"$BOSUN_SERVER\" = {{.ControlPlane}}",
    ];
    let Some((h, _cloud)) = pool_on(backend, Some(&ssh), "ops", "client_ed25519", &commands).await else { return };
    let instance = only_instance(&h).await;
    assert_eq!(instance.state.as_known(), Some(v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION));

    pass(&h).await;
    let found = logs(&h, &instance.instance_id).await.expect("logs");
    assert_eq!(found.len(), 1, "{found:?}");
    let log = &found[0];
    assert!(log.success, "{log:?}");
    assert_eq!((log.node_id.as_str(), log.pool.as_str()), (instance.instance_id.as_str(), "training"));
    assert_eq!(log.commands.len(), 2);
    assert_eq!(log.commands[0].command, commands[0], "stored as configured, placeholders unfilled");
    assert_eq!(
        log.commands[0].stdout,
        format!("installing training as {} from {}\ntoken=***\n", instance.instance_id, h.url()),
        "filled in, and the token scrubbed from the output"
    );
    assert_eq!(log.commands[0].stderr, "warming up\n");
    assert_eq!((log.commands[0].exit_code, log.commands[1].exit_code), (0, 0));

    // One session per command, as the pool's user, the script (token included) on stdin.
    let execs = ssh.execs();
    assert_eq!(execs.len(), 2);
    assert!(execs.iter().all(|e| e.user == "ops" && e.command == "exec \"${SHELL:-/bin/sh}\" -s"), "{execs:?}");
    assert!(execs[0].stdin.contains(&format!("BOSUN_TOKEN={AGENTS}")), "{}", execs[0].stdin);
    assert!(!execs[0].command.contains(AGENTS), "the token is never on a command line");

    // Done: later passes leave the machine alone, and its agent's node finds the log.
    h.clock.advance(Duration::from_secs(60));
    pass(&h).await;
    assert_eq!(ssh.execs().len(), 2, "no second bootstrap");
    h.agent_client()
        .register(&registration(&instance.instance_id), Some(&instance.instance_id))
        .await
        .expect("register");
    assert_eq!(logs(&h, &instance.instance_id).await.expect("logs").len(), 1);
    h.stop().await;
}

async fn failed_attempts_are_retried_with_backoff_and_given_up_at_the_registration_timeout(backend: Backend) {
    let ssh = SshServer::start("ubuntu", "client_rsa").await;
    ssh.set_down(true);
    let commands = ["echo step one", "echo broken >&2; exit 3", "echo never"];
    let Some((h, _cloud)) = pool_on(backend, Some(&ssh), "ubuntu", "client_rsa", &commands).await else { return };
    let instance = only_instance(&h).await.instance_id;

    // A machine that does not answer yet is retried after 10 s, 20 s, ... without a log.
    pass(&h).await;
    assert_eq!(ssh.connections(), 1);
    assert!(logs(&h, &instance).await.expect("logs").is_empty(), "nothing to log for a machine still booting");
    h.clock.advance(Duration::from_secs(5));
    pass(&h).await;
    assert_eq!(ssh.connections(), 1, "backing off");
    h.clock.advance(Duration::from_secs(5));
    pass(&h).await;
    assert_eq!(ssh.connections(), 2, "retried after 10 s");

    // Up, with an RSA key, but the second command fails: logged, the third never runs.
    ssh.set_down(false);
    h.clock.advance(Duration::from_secs(19));
    pass(&h).await;
    assert_eq!(ssh.connections(), 2, "the second backoff is 20 s");
    h.clock.advance(Duration::from_secs(1));
    pass(&h).await;
    let found = logs(&h, &instance).await.expect("logs");
    assert_eq!(found.len(), 1);
    assert!(!found[0].success);
    assert_eq!(found[0].error, "setup command 2 of 3 exited with status 3");
    let ran: Vec<(&str, i32, &str)> =
        found[0].commands.iter().map(|c| (c.stdout.as_str(), c.exit_code, c.stderr.as_str())).collect();
    assert_eq!(ran, [("step one\n", 0, ""), ("", 3, "broken\n")]);

    h.clock.advance(Duration::from_secs(39));
    pass(&h).await;
    assert_eq!(logs(&h, &instance).await.expect("logs").len(), 1, "the third backoff is 40 s");
    h.clock.advance(Duration::from_secs(1));
    pass(&h).await;
    assert_eq!(logs(&h, &instance).await.expect("logs").len(), 2);

    // At the registration timeout bosun gives up, says why, and tries no more.
    h.clock.advance(h.settings.instance_registration_timeout);
    pass(&h).await;
    let found = logs(&h, &instance).await.expect("logs");
    assert_eq!(found.len(), 3);
    assert!(found[0].error.starts_with("gave up after 4 attempt(s)"), "{}", found[0].error);
    assert!(found[0].error.ends_with("last error: setup command 2 of 3 exited with status 3"), "{}", found[0].error);
    let connections = ssh.connections();
    h.clock.advance(Duration::from_secs(600));
    pass(&h).await;
    assert_eq!((ssh.connections(), logs(&h, &instance).await.expect("logs").len()), (connections, 3));
    h.server().janitor().await.expect("janitor");
    let request = v1::GetInstanceRequest { instance_id: instance.clone(), ..Default::default() };
    let failed = h.root().get_instance(request).await.expect("get").into_owned().instance.into_option().expect("i");
    assert_eq!(failed.state.as_known(), Some(v1::InstanceState::INSTANCE_STATE_FAILED));
    h.stop().await;
}

async fn refused_keys_are_logged_and_machines_without_an_address_are_left_alone(backend: Backend) {
    let ssh = SshServer::start("ops", "client_ed25519").await;
    let Some((h, _cloud)) = pool_on(backend, Some(&ssh), "root", "client_ed25519", &["true"]).await else { return };
    let instance = only_instance(&h).await.instance_id;
    pass(&h).await;
    let found = logs(&h, &instance).await.expect("logs");
    assert_eq!(found.len(), 1);
    assert!(found[0].error.ends_with("refused user root with the pool's key (is the key installed for that user?)"));
    assert!(ssh.execs().is_empty());
    h.stop().await;

    // A passphrase-protected key cannot be used, and the log says so.
    let Some((h, _cloud)) = pool_on(backend, Some(&ssh), "ops", "client_encrypted", &["true"]).await else { return };
    let instance = only_instance(&h).await.instance_id;
    pass(&h).await;
    let found = logs(&h, &instance).await.expect("logs");
    assert!(found[0].error.contains("is protected by a passphrase"), "{}", found[0].error);
    h.stop().await;

    // The fake provider's machines have no address: nothing is attempted or logged.
    let Some((h, _cloud)) = pool_on(backend, None, "ops", "client_ed25519", &["true"]).await else { return };
    let instance = only_instance(&h).await.instance_id;
    let before = ssh.connections();
    pass(&h).await;
    h.clock.advance(Duration::from_secs(60));
    pass(&h).await;
    assert_eq!(ssh.connections(), before);
    assert!(logs(&h, &instance).await.expect("logs").is_empty());
    h.stop().await;
}

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
