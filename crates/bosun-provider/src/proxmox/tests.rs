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
