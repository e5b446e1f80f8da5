//! The provider against the mock cluster over HTTP on 127.0.0.1.

use std::time::Duration;

use super::*;
use crate::mock::{provision_request, proxmox_config};
use crate::proxmox::mock::{MockCluster, MockSpec, TOKEN_ID, TOKEN_SECRET};

const QUICK: TaskPolling = TaskPolling { interval: Duration::from_millis(1), max_polls: 20 };

/// Two hosts with two running GPU VMs and a container each (vmids 100 to 105), and a
/// template on pve1.
async fn cluster() -> (MockCluster, String, u32) {
    let mock = MockCluster::generate(&MockSpec { nodes: 2, vms: 4, containers: 2, gpus_per_vm: 1, tasks_per_node: 1 });
    let template = mock.add_template("pve1");
    let url = mock.spawn().await.expect("mock");
    (mock, url, template)
}

fn provider(url: &str, template: u32, extra: &str, secret: &str) -> ProxmoxProvider {
    let entry = format!(
        "{{type: proxmox, url: '{url}', token_id: '{TOKEN_ID}', token_secret_env: PVE_TOKEN, \
         template_vmid: {template}{extra}}}"
    );
    let secret = secret.to_owned();
    ProxmoxProvider::from_config("gpu", &proxmox_config(&entry), move |var| {
        (var == "PVE_TOKEN").then(|| secret.clone())
    })
    .expect("provider")
    .with_task_polling(QUICK)
}

fn vmid_of(provisioned: &Provisioned) -> u32 {
    let mut parts = provisioned.provider_instance_id.split('/');
    parts.nth(1).and_then(|vmid| vmid.parse().ok()).expect("NODE/VMID/NAME")
}

#[tokio::test]
async fn a_machine_is_cloned_listed_and_terminated() {
    let (mock, url, template) = cluster().await;
    let pve = provider(&url, template, ", storage: ceph, full_clone: true", TOKEN_SECRET);
    assert_eq!((pve.name(), pve.kind()), ("gpu", ProviderType::Proxmox));
    assert!(pve.list().await.expect("list").is_empty(), "the generated VMs are not bosun's");

    mock.set_task_polls(2);
    let provisioned = pve.provision(&provision_request("i-0abc", "pve-a100", "", "")).await.expect("provisioned");
    let vmid = vmid_of(&provisioned);
    assert_eq!(provisioned.provider_instance_id, format!("pve1/{vmid}/i-0abc"));
    assert_eq!((provisioned.region.as_str(), provisioned.zone.as_str()), ("", "pve1"));
    assert_eq!(mock.guest(vmid), Some(("pve1".to_owned(), "running".to_owned())));
    let client = ProxmoxClient::new("pve", &url, TOKEN_ID, TOKEN_SECRET).expect("client");
    let config = client.guest_config(super::super::GuestKind::Qemu, "pve1", vmid).await.expect("config");
    assert_eq!(config.passthrough, ["mapping=gpu,pcie=1"], "the template's GPU");

    // The started VM's memory is used now, so the next clone goes to the host with more free.
    let second = pve.provision(&provision_request("i-0def", "pve-a100", "", "")).await.expect("provisioned");
    assert_eq!(second.zone, "pve2");

    let listed = pve.list().await.expect("list");
    let mut ids: Vec<(Option<String>, ProviderInstanceState, String)> =
        listed.iter().map(|m| (m.instance_id.as_ref().map(ToString::to_string), m.state, m.zone.clone())).collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ids,
        [
            (Some("i-0abc".into()), ProviderInstanceState::Running, "pve1".into()),
            (Some("i-0def".into()), ProviderInstanceState::Running, "pve2".into()),
        ]
    );
    assert!(listed.iter().any(|m| m.provider_instance_id == provisioned.provider_instance_id));
    assert!(listed.iter().all(|m| m.ssh_address.is_none() && m.instance_type.is_empty()));

    pve.terminate(&provisioned.provider_instance_id).await.expect("terminated");
    assert_eq!(mock.guest(vmid), None, "stopped, then destroyed");
    pve.terminate(&provisioned.provider_instance_id).await.expect("terminating it again is done already");
    let left: Vec<String> = pve.list().await.expect("list").into_iter().map(|m| m.provider_instance_id).collect();
    assert_eq!(left, [second.provider_instance_id]);
}

#[tokio::test]
async fn a_destroyed_vm_is_terminated_already_and_its_reused_vmid_is_left_alone() {
    let (mock, url, template) = cluster().await;
    let pve = provider(&url, template, "", TOKEN_SECRET);
    let first = pve.provision(&provision_request("i-first", "t", "", "")).await.expect("provisioned");
    let vmid = vmid_of(&first);
    assert!(mock.destroy(vmid), "destroyed outside bosun");
    pve.terminate(&first.provider_instance_id).await.expect("already gone is success");

    // Proxmox hands the freed vmid out again: terminating the old machine leaves the new one.
    let second = pve.provision(&provision_request("i-second", "t", "", "")).await.expect("provisioned");
    assert_eq!(vmid_of(&second), vmid);
    pve.terminate(&first.provider_instance_id).await.expect("the old machine is gone");
    assert_eq!(mock.guest(vmid).map(|(_, status)| status).as_deref(), Some("running"), "the new one lives");

    // A stopped VM is destroyed without a stop.
    let stopped = client(&url).stop_vm(&second.zone, vmid).await.expect("stop");
    client(&url).wait_for_task(&stopped, "stop", QUICK).await.expect("stopped");
    assert_eq!(
        pve.list().await.expect("list").iter().map(|m| m.state).collect::<Vec<_>>(),
        [ProviderInstanceState::Pending]
    );
    pve.terminate(&second.provider_instance_id).await.expect("terminated");
    assert_eq!(mock.guest(vmid), None);

    for bad in ["", "pve1/104", "pve1/x/i-1", "pve1/99/i-1", "../104/i-1", "pve1/104/not an id"] {
        let error = pve.terminate(bad).await.expect_err("not bosun's id");
        assert!(matches!(error, ProviderError::Invalid { .. }), "{bad}: {error}");
    }
}

fn client(url: &str) -> ProxmoxClient {
    ProxmoxClient::new("pve", url, TOKEN_ID, TOKEN_SECRET).expect("client")
}

#[tokio::test]
async fn a_clone_that_fails_is_an_error_naming_its_task_and_exit_status() {
    let (mock, url, template) = cluster().await;
    let pve = provider(&url, template, "", TOKEN_SECRET);
    mock.fail_clones(Some("clone failed: storage 'local-lvm' is full"));
    let error = pve.provision(&provision_request("i-0abc", "t", "", "")).await.expect_err("failed");
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error}");
    let message = error.to_string();
    let vmid = 106;
    let expected = format!("proxmox gpu: temporarily unavailable: clone VM {template} as {vmid} (i-0abc) onto pve1: ");
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("task UPID:pve1:") && message.contains(":qmclone:9000:"), "{message}");
    assert!(message.ends_with("failed: clone failed: storage 'local-lvm' is full"), "{message}");
    assert!(pve.list().await.expect("list").is_empty());
    assert_eq!(mock.guest(vmid), None);

    mock.fail_clones(None);
    mock.refuse_config_changes(true);
    let error = pve.provision(&provision_request("i-0abc", "t", "", "")).await.expect_err("no tag");
    assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
    let refusal = format!(
        "PUT /nodes/pve1/qemu/{vmid}/config: HTTP 403 Permission check failed (/vms/{vmid}, VM.Config.Options)"
    );
    assert!(error.to_string().contains(&refusal), "{error}");
    assert_eq!(mock.guest(vmid), None, "an untagged clone is destroyed again");
}

#[tokio::test]
async fn without_a_host_with_room_provisioning_is_a_capacity_error() {
    let (mock, url, template) = cluster().await;
    mock.set_host_full("pve1", true);
    mock.set_host_full("pve2", true);
    let pve = provider(&url, template, "", TOKEN_SECRET);
    let error = pve.provision(&provision_request("i-0abc", "t", "", "")).await.expect_err("full");
    assert!(matches!(error, ProviderError::Capacity { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "proxmox gpu: no capacity: no host has room for a clone of VM {template} (16384 MiB of memory, 8 CPUs): \
             pve1 has 0 MiB of memory free; pve2 has 0 MiB of memory free"
        )
    );

    // Only the listed hosts count.
    mock.set_host_full("pve1", false);
    let pinned = provider(&url, template, ", hosts: [pve2, pve9]", TOKEN_SECRET);
    let error = pinned.provision(&provision_request("i-0abc", "t", "", "")).await.expect_err("full");
    assert!(matches!(error, ProviderError::Capacity { .. }), "{error}");
    assert!(
        error.to_string().ends_with(": pve9 is not a node of the cluster; pve2 has 0 MiB of memory free"),
        "{error}"
    );
    let anywhere = pve.provision(&provision_request("i-0abc", "t", "", "")).await.expect("pve1 has room");
    assert_eq!(anywhere.zone, "pve1");
    assert!(pve.list().await.expect("list").len() == 1, "nothing was cloned for the refusals");

    let missing = provider(&url, 4242, "", TOKEN_SECRET);
    let error = missing.provision(&provision_request("i-0abc", "t", "", "")).await.expect_err("no template");
    assert!(matches!(error, ProviderError::Invalid { .. }), "{error}");
    assert!(error.to_string().ends_with("the cluster has no VM 4242 to clone (template_vmid)"), "{error}");
    let error = pve.provision(&provision_request("i_0abc", "t", "", "")).await.expect_err("not a DNS name");
    assert!(matches!(error, ProviderError::Invalid { .. }), "{error}");
}

#[tokio::test]
async fn a_refused_token_is_unauthorized_and_never_shown() {
    let (_mock, url, template) = cluster().await;
    let wrong = provider(&url, template, "", "not-the-secret");
    let error = wrong.provision(&provision_request("i-0abc", "t", "", "")).await.expect_err("refused");
    assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
    assert!(error.to_string().contains("HTTP 401") && !error.to_string().contains("not-the-secret"), "{error}");
    for error in [wrong.list().await.expect_err("refused"), wrong.terminate("pve1/104/i-1").await.expect_err("refused")]
    {
        assert!(matches!(error, ProviderError::Unauthorized { .. }), "{error}");
    }
    assert!(!format!("{wrong:?}").contains("not-the-secret"));
    assert_eq!(
        wrong.credential_source(),
        "the API token bosun@pve!inventory with its secret in the environment variable PVE_TOKEN"
    );
    let unset = ProxmoxProvider::from_config(
        "gpu",
        &proxmox_config(&format!(
            "{{type: proxmox, url: '{url}', token_id: '{TOKEN_ID}', token_secret_env: PVE_TOKEN, template_vmid: 9000}}"
        )),
        |_| None,
    )
    .expect_err("no secret");
    assert!(matches!(unset, ProviderError::Unauthorized { .. }), "{unset}");
    assert!(unset.to_string().contains("set the environment variable PVE_TOKEN"), "{unset}");
}
