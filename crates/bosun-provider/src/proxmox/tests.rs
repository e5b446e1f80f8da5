use std::time::Duration;

use super::mock::{MockCluster, MockSpec, TOKEN_ID, TOKEN_SECRET};
use super::*;

async fn cluster(spec: MockSpec) -> (MockCluster, ProxmoxClient) {
    let mock = MockCluster::generate(&spec);
    let url = mock.spawn().await.expect("mock");
    let client = ProxmoxClient::new("pve1", &url, TOKEN_ID, TOKEN_SECRET).expect("client");
    (mock, client)
}

#[tokio::test]
async fn a_snapshot_reads_nodes_guests_configs_storage_and_tasks() {
    let spec = MockSpec { nodes: 2, vms: 3, containers: 4, gpus_per_vm: 2, tasks_per_node: 3 };
    let (mock, client) = cluster(spec).await;
    let snapshot = client.snapshot().await.expect("snapshot");
    assert_eq!(snapshot.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["pve1", "pve2"]);
    assert_eq!((snapshot.vms.len(), snapshot.containers.len(), snapshot.storage.len()), (3, 4, 4));
    let vm = &snapshot.vms[0];
    assert_eq!((vm.kind, vm.vmid, vm.node.as_str(), vm.status.as_str()), (GuestKind::Qemu, 100, "pve1", "running"));
    assert!(vm.ha_managed && vm.memory_total == 137_438_953_472);
    let config = vm.config.as_ref().expect("config read");
    assert_eq!(config.passthrough, ["0000:41:00,pcie=1", "0000:42:00,pcie=1"]);
    assert_eq!(config.digest.len(), 40);
    let container = &snapshot.containers[0];
    assert_eq!(container.kind, GuestKind::Lxc);
    let config = container.config.as_ref().expect("config read");
    assert_eq!((config.hostname.as_deref(), config.os_type.as_deref()), (Some("svc-0"), Some("ubuntu")));
    assert!(config.passthrough.is_empty());
    let ceph: Vec<&PveStorage> = snapshot.storage.iter().filter(|s| s.storage == "ceph").collect();
    assert!(ceph.len() == 2 && ceph.iter().all(|s| s.shared && s.content == ["images"]));
    assert_eq!(snapshot.tasks.len(), 6);
    assert!(snapshot.tasks.iter().all(|t| t.exit_status.as_deref() == Some("OK") && t.ended.is_some()));

    // A changed configuration changes its digest; a destroyed VM is gone from the next read.
    let before = config.digest.clone();
    assert!(mock.reconfigure(container.vmid) && mock.destroy(100));
    let again = client.snapshot().await.expect("snapshot");
    assert_eq!(again.vms.len(), 2);
    let changed = again.containers.iter().find(|c| c.vmid == container.vmid).and_then(|c| c.config.clone());
    assert_ne!(changed.expect("config").digest, before);
}

#[tokio::test]
async fn tasks_are_read_a_page_at_a_time_up_to_the_limit() {
    let (mock, client) =
        cluster(MockSpec { nodes: 1, vms: 0, containers: 0, gpus_per_vm: 0, tasks_per_node: 1_203 }).await;
    let before = mock.calls();
    let tasks = client.node_tasks("pve1", 1_100).await.expect("tasks");
    assert_eq!(tasks.len(), 1_100);
    assert_eq!(mock.calls() - before, 3, "pages of 500, 500 and 100");
    let all = client.node_tasks("pve1", 5_000).await.expect("tasks");
    assert_eq!(all.len(), 1_203, "the last page is short");
    assert!(client.node_tasks("../etc", 10).await.is_err(), "a node name is one path segment");
}

#[tokio::test]
async fn refusals_outages_timeouts_and_malformed_answers_are_errors_without_the_secret() {
    let (mock, client) = cluster(MockSpec::default()).await;
    let url = mock.spawn().await.expect("mock");

    let wrong = ProxmoxClient::new("pve1", &url, TOKEN_ID, "not-the-secret").expect("client");
    let error = wrong.snapshot().await.expect_err("refused");
    assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
    assert!(error.to_string().contains("HTTP 401") && !error.to_string().contains("not-the-secret"), "{error}");

    mock.set_outage(Some(503));
    let error = client.snapshot().await.expect_err("outage");
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
    mock.set_outage(None);

    mock.set_malformed(true);
    let error = client.cluster_resources().await.expect_err("malformed");
    assert!(error.to_string().contains("GET /cluster/resources"), "{error}");
    mock.set_malformed(false);

    mock.set_delay(Some(Duration::from_millis(500)));
    let impatient = client.clone().with_timeout(Duration::from_millis(50));
    let error = impatient.cluster_resources().await.expect_err("timeout");
    assert!(error.to_string().contains("timed out"), "{error}");
    mock.set_delay(None);
    assert!(client.snapshot().await.is_ok(), "the cluster answers again");
    // A configuration Proxmox cannot give (here: a VM's, asked as a container's) is an error.
    let (vmid, rows) = (100, client.cluster_resources().await.expect("resources"));
    assert!(rows.vms.iter().any(|v| v.vmid == vmid));
    assert!(client.guest_config(GuestKind::Lxc, "pve1", vmid).await.is_err(), "a VM is not a container");
}

#[test]
fn entries_without_their_keys_are_refused_naming_what_is_missing() {
    let read = |row: serde_json::Value| wire::Resource::read(&row).err().unwrap_or_default();
    assert_eq!(read(serde_json::json!({"type": "qemu", "node": "pve1"})), "vmid is missing");
    assert_eq!(read(serde_json::json!({"type": "lxc", "vmid": 101})), "node is missing");
    assert_eq!(read(serde_json::json!({"vmid": 101})), "type is missing");
    assert!(read(serde_json::json!({"type": "qemu", "node": "n", "vmid": 100, "maxmem": "lots"})).contains("maxmem"));
    assert!(read(serde_json::json!([1])).contains("not an object"));
    // Proxmox's loose types are read: numbers as strings, flags as 0/1.
    let row = serde_json::json!({"type": "qemu", "node": "pve1", "vmid": "105", "maxmem": "1024", "template": 1});
    let Ok(wire::Resource::Guest(guest)) = wire::Resource::read(&row) else { panic!("a guest") };
    assert_eq!((guest.vmid, guest.memory_total, guest.template), (105, 1024, true));
    assert!(GuestConfig::read(&serde_json::json!({"cores": 2})).is_err(), "no digest");
    assert!(ProxmoxClient::new("p", "http://127.0.0.1:1", "no-realm", "s").is_err());
    assert!(ProxmoxClient::new("p", "ftp://host", TOKEN_ID, "s").is_err());
}

fn endpoint(url: &str, secret: bosun_config::SecretSource) -> bosun_config::ProxmoxEndpoint {
    bosun_config::ProxmoxEndpoint {
        url: url.parse().expect("url"),
        token_id: TOKEN_ID.to_owned(),
        token_secret: secret,
        verify_tls: true,
        ca_file: None,
    }
}

#[tokio::test]
async fn an_endpoint_reads_its_secret_from_the_environment_or_a_file_and_names_where_it_looked() {
    use bosun_config::SecretSource;
    let mock = MockCluster::generate(&MockSpec { nodes: 1, vms: 1, containers: 0, gpus_per_vm: 0, tasks_per_node: 0 });
    let url = mock.spawn().await.expect("mock");
    let env = |variable: &str| match variable {
        "PVE_TOKEN" => Some(format!(" {TOKEN_SECRET}\n")),
        "EMPTY" => Some("  ".to_owned()),
        "SPACED" => Some("two words".to_owned()),
        _ => None,
    };
    let from_env =
        ProxmoxClient::from_endpoint_with_env("pve1", &endpoint(&url, SecretSource::Env("PVE_TOKEN".into())), env)
            .expect("client");
    assert_eq!(from_env.cluster_resources().await.expect("resources").vms.len(), 1);

    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("pve-token");
    std::fs::write(&file, format!("{TOKEN_SECRET}\n")).expect("write");
    let from_file = ProxmoxClient::from_endpoint("pve1", &endpoint(&url, SecretSource::File(file))).expect("client");
    assert_eq!(from_file.cluster_resources().await.expect("resources").vms.len(), 1);
    assert!(!format!("{from_file:?}").contains(TOKEN_SECRET), "Debug shows no secret");

    let missing = dir.path().join("missing");
    let cases = [
        (SecretSource::Env("UNSET".into()), "set the environment variable UNSET (token_secret_env)".to_owned()),
        (SecretSource::Env("EMPTY".into()), "the environment variable EMPTY is empty".to_owned()),
        (SecretSource::Env("SPACED".into()), "the environment variable SPACED holds spaces".to_owned()),
        (
            SecretSource::File(missing.clone()),
            format!("cannot read the file {} (token_secret_file)", missing.display()),
        ),
    ];
    for (source, expected) in cases {
        let error = ProxmoxClient::from_endpoint_with_env("pve1", &endpoint(&url, source), env).expect_err("refused");
        assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
        assert!(error.to_string().contains(&expected), "expected {expected:?} in {error}");
        assert!(!error.to_string().contains("two words"), "{error}");
    }
}

#[test]
fn an_unreadable_or_invalid_ca_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").expect("write");
    let missing = dir.path().join("missing.pem");
    let env = |_: &str| Some(TOKEN_SECRET.to_owned());
    let cases = [
        (missing.clone(), format!("cannot read the CA file {}", missing.display())),
        (garbage.clone(), format!("the CA file {} holds no PEM certificate", garbage.display())),
        (broken.clone(), format!("cannot set up TLS with the CA file {}", broken.display())),
    ];
    for (file, expected) in cases {
        let mut with_ca = endpoint("https://pve.example:8006", bosun_config::SecretSource::Env("T".into()));
        with_ca.ca_file = Some(file);
        let error = ProxmoxClient::from_endpoint_with_env("pve1", &with_ca, env).expect_err("refused");
        assert!(matches!(error, ProviderError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains(&expected), "expected {expected:?} in {error}");
    }
}

/// The mock behind TLS with a certificate for 127.0.0.1 signed by a CA of the test's own.
struct TlsMock {
    url: String,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn tls_mock(mock: &MockCluster) -> TlsMock {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::pem::PemObject as _;

    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "pve test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params").signed_by(&key, &ca).expect("sign");
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca_file = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");

    let chain = vec![leaf.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("address"));
    let tls = TlsListener { tcp: listener, acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)) };
    let router = mock.router();
    tokio::spawn(async move { axum::serve(tls, router).await });
    TlsMock { url, ca_file, _dir: dir }
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else { continue };
            // A client that refuses the certificate ends its handshake; wait for the next.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test]
async fn tls_is_checked_against_the_system_roots_plus_a_ca_file_unless_verify_tls_is_off() {
    let mock = MockCluster::generate(&MockSpec { nodes: 1, vms: 2, containers: 0, gpus_per_vm: 0, tasks_per_node: 0 });
    let tls = tls_mock(&mock).await;
    let env = |_: &str| Some(TOKEN_SECRET.to_owned());
    let mut config = endpoint(&tls.url, bosun_config::SecretSource::Env("T".into()));

    // The system's roots do not know the cluster's CA.
    match ProxmoxClient::from_endpoint_with_env("pve1", &config, env) {
        Ok(client) => {
            let error = client.cluster_resources().await.expect_err("an unknown CA");
            assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
            assert!(error.to_string().contains("certificate"), "{error}");
        }
        // A machine without CA certificates cannot build the default verifier at all.
        Err(error) => assert!(error.to_string().contains("CA certificates"), "{error}"),
    }

    config.ca_file = Some(tls.ca_file.clone());
    let trusting = ProxmoxClient::from_endpoint_with_env("pve1", &config, env).expect("client");
    assert_eq!(trusting.cluster_resources().await.expect("the CA file is trusted").vms.len(), 2);

    config.ca_file = None;
    config.verify_tls = false;
    let careless = ProxmoxClient::from_endpoint_with_env("pve1", &config, env).expect("client");
    assert_eq!(careless.cluster_resources().await.expect("any certificate").vms.len(), 2);
}

const QUICK: TaskPolling = TaskPolling { interval: Duration::from_millis(1), max_polls: 20 };

#[tokio::test]
async fn a_vm_is_cloned_started_stopped_and_destroyed_following_each_task() {
    let (mock, client) = cluster(MockSpec { nodes: 2, vms: 2, containers: 0, gpus_per_vm: 1, tasks_per_node: 0 }).await;
    let template = mock.add_template("pve1");
    mock.set_task_polls(3);
    let vmid = client.next_vmid().await.expect("next vmid");
    assert_eq!(vmid, 102, "the lowest free vmid");
    let clone = CloneVm {
        newid: vmid,
        name: "bosun-i-1",
        description: "bosun instance i-1",
        target: Some("pve2"),
        storage: Some("ceph"),
        full: Some(true),
    };
    let upid = client.clone_vm("pve1", template, &clone).await.expect("clone accepted");
    assert!(upid.starts_with("UPID:pve1:") && upid.contains(&format!(":qmclone:{template}:{TOKEN_ID}:")), "{upid}");
    let running = client.task_status(&upid).await.expect("status");
    assert_eq!(running, TaskStatus { running: true, exit_status: None });
    client.wait_for_task(&upid, "clone", QUICK).await.expect("the clone finishes");
    assert_eq!(mock.guest(vmid), Some(("pve2".to_owned(), "stopped".to_owned())));
    let config = client.guest_config(GuestKind::Qemu, "pve2", vmid).await.expect("config");
    assert_eq!(config.passthrough, ["mapping=gpu,pcie=1"], "the template's GPU comes along");

    let memory_used = |snapshot: &Snapshot| snapshot.nodes.iter().find(|n| n.name == "pve2").map(|n| n.memory_used);
    let before = memory_used(&client.cluster_resources().await.expect("resources"));
    let started = client.start_vm("pve2", vmid).await.expect("start");
    client.wait_for_task(&started, "start", QUICK).await.expect("started");
    assert_eq!(mock.guest(vmid).map(|(_, status)| status).as_deref(), Some("running"));
    let after = memory_used(&client.cluster_resources().await.expect("resources"));
    assert_eq!(after.zip(before).map(|(a, b)| a - b), Some(17_179_869_184), "a running VM's memory is used");

    // Proxmox refuses to destroy a running VM, in its reason phrase.
    let error = client.destroy_vm("pve2", vmid).await.expect_err("running");
    assert!(error.to_string().contains("HTTP 500 VM 102 is running - destroy failed"), "{error}");
    let stopped = client.stop_vm("pve2", vmid).await.expect("stop");
    client.wait_for_task(&stopped, "stop", QUICK).await.expect("stopped");
    let destroyed = client.destroy_vm("pve2", vmid).await.expect("destroy");
    client.wait_for_task(&destroyed, "destroy", QUICK).await.expect("destroyed");
    assert_eq!(mock.guest(vmid), None);
    let error = client.start_vm("pve2", vmid).await.expect_err("gone");
    assert!(error.to_string().contains("Configuration file 'nodes/pve2/qemu/102.conf' does not exist"), "{error}");
}

#[tokio::test]
async fn a_task_that_fails_or_outlasts_its_polls_is_an_error_naming_its_upid() {
    let (mock, client) = cluster(MockSpec { nodes: 1, vms: 0, containers: 0, gpus_per_vm: 0, tasks_per_node: 0 }).await;
    let template = mock.add_template("pve1");
    let clone = CloneVm { newid: 100, name: "c", description: "", target: None, storage: None, full: None };

    mock.fail_clones(Some("clone failed: lvcreate 'pve/vm-100-disk-0' error: insufficient free space"));
    let upid = client.clone_vm("pve1", template, &clone).await.expect("accepted");
    let error = client.wait_for_task(&upid, "clone 9000", QUICK).await.expect_err("failed");
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains(&format!("clone 9000: task {upid} failed: clone failed: lvcreate")), "{error}");
    assert_eq!(mock.guest(100), None, "a failed clone leaves nothing");
    mock.fail_clones(None);

    mock.set_task_polls(10);
    let upid = client.clone_vm("pve1", template, &clone).await.expect("accepted");
    let patience = TaskPolling { interval: Duration::from_millis(1), max_polls: 3 };
    let error = client.wait_for_task(&upid, "clone 9000", patience).await.expect_err("still running");
    assert!(error.to_string().contains(&format!("task {upid} still runs after 3 status reads")), "{error}");

    let taken = client.clone_vm("pve1", template, &clone).await.expect_err("vmid 100 exists now");
    assert!(taken.to_string().contains("unable to create VM 100: config file already exists"), "{taken}");
    for bad in ["", "UPID:", "UPID:../x:1", "UPID:pve1:1/../../x", "task-1"] {
        let error = client.task_status(bad).await.expect_err("not a UPID");
        assert!(matches!(error, ProviderError::Invalid { .. }), "{bad}: {error}");
    }
}
