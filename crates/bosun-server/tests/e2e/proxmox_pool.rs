//! A pool on the Proxmox provider against the Proxmox mock, through the server: its
//! machines are clones of the mock's template (each task followed to its end), the VM of
//! an instance whose agent registered is linked to that node in the inventory (other VMs
//! and hosts by host name), terminating the node stops and destroys the VM and the
//! inventory marks it gone; a failing clone is the pool's error and takes nothing else
//! with it.

use std::sync::Arc;
use std::time::Duration;

use bosun_agent::ControlPlane;
use bosun_api::v1;
use bosun_config::proxmox::{ProxmoxEndpoint, SecretSource};
use bosun_config::{Config, InventorySource, InventorySourceKind, ProviderConfig};
use bosun_core::{NodeMetadata, NodeRegistration};
use bosun_provider::Provider;
use bosun_provider::proxmox::mock::{MockCluster, MockSpec, StartedTask, TOKEN_ID, TOKEN_SECRET};
use bosun_provider::proxmox::{ProxmoxProvider, TaskPolling};
use bosun_store::Backend;

use crate::harness::*;

on_every_backend!(
    a_proxmox_pool_clones_links_and_destroys_its_vms,
    a_failing_clone_is_the_pools_error_and_leaves_the_rest,
);

const POOL: &str = "pve-gpu";

/// The mock's task status reads 1 ms apart: the provider follows each task as it would
/// every 2 s against a cluster.
const QUICK: TaskPolling = TaskPolling { interval: Duration::from_millis(1), max_polls: 50 };

/// A running mock of two hosts with two GPU VMs, a container and a template on pve1.
struct Cluster {
    mock: MockCluster,
    url: String,
    template: u32,
    /// The token secret the inventory source reads (removed with the cluster).
    secret: tempfile::NamedTempFile,
}

async fn cluster() -> Cluster {
    let mock = MockCluster::generate(&MockSpec { nodes: 2, vms: 2, containers: 1, gpus_per_vm: 1, tasks_per_node: 1 });
    let template = mock.add_template("pve1");
    // Each task reads as running twice before it ends: a provider that did not follow it
    // would not see its end.
    mock.set_task_polls(2);
    let url = mock.spawn().await.expect("mock");
    let secret = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret.path(), TOKEN_SECRET).expect("write secret");
    Cluster { mock, url, template, secret }
}

/// A server with pool `pve-gpu` (min 1, max 3) on provider `pve`, the mock's cluster, and
/// the same cluster as inventory source `pve1`, as an operator configures them.
async fn start(backend: Backend, cluster: &Cluster) -> Option<Harness> {
    let text = format!(
        "providers:\n  pve: {{type: proxmox, url: '{}', token_id: '{TOKEN_ID}', token_secret_env: PVE_TOKEN, \
         template_vmid: {}}}\npools:\n  {POOL}:\n    provider: pve\n    instance_type: pve-a100\n    \
         min_nodes: 1\n    max_nodes: 3\n",
        cluster.url, cluster.template
    );
    let env = |var: &str| (var == "PVE_TOKEN").then(|| TOKEN_SECRET.to_owned());
    let config = Config::from_yaml_str(&text, env).expect("valid config");
    let Some(ProviderConfig::Proxmox(pve)) = config.providers.get("pve") else { panic!("pve is a proxmox provider") };
    let provider = ProxmoxProvider::from_config("pve", pve, env).expect("provider").with_task_polling(QUICK);
    let spec = config.pools.into_iter().find(|(name, _)| name.as_str() == POOL).expect("the pool").1.spec;
    let mut settings = settings();
    settings.inventory_sources = vec![InventorySource {
        name: "pve1".parse().expect("valid"),
        interval: Duration::from_secs(30),
        kind: InventorySourceKind::Proxmox(ProxmoxEndpoint {
            url: cluster.url.parse().expect("url"),
            token_id: TOKEN_ID.to_owned(),
            token_secret: SecretSource::File(cluster.secret.path().to_owned()),
            verify_tls: true,
            ca_file: None,
        }),
    }];
    let providers = vec![("pve".to_owned(), Arc::new(provider) as Arc<dyn Provider>)];
    Harness::start_with_pool_providers_and_settings(backend, POOL, spec, providers, settings).await
}

async fn instances(h: &Harness, states: &[v1::InstanceState]) -> Vec<v1::Instance> {
    let request = v1::ListInstancesRequest {
        states: states.iter().map(|s| (*s).into()).collect(),
        pool: POOL.to_owned(),
        ..Default::default()
    };
    h.root().list_instances(request).await.expect("instances").into_owned().instances
}

/// The vmid in a provider instance id `NODE/VMID/NAME`.
fn vmid(instance: &v1::Instance) -> u32 {
    instance.provider_instance_id.split('/').nth(1).and_then(|v| v.parse().ok()).expect("NODE/VMID/NAME")
}

/// Tasks started since the first `from`, as `(kind, followed to its end, exit status)`.
fn tasks_since(mock: &MockCluster, from: usize) -> Vec<(&'static str, bool, String)> {
    let started: Vec<StartedTask> = mock.started_tasks();
    started[from..].iter().map(|t| (t.kind, t.followed, t.exit_status.clone())).collect()
}

/// A sync of the inventory now, then half a minute later.
async fn sync(h: &Harness) -> v1::InventorySourceStatus {
    assert_eq!(h.server().sync_inventory().await.expect("sync"), 1);
    h.clock.advance(Duration::from_secs(30));
    let listed = h.root().list_inventory_sources(v1::ListInventorySourcesRequest::default()).await.expect("sources");
    listed.into_owned().sources.into_iter().find(|s| s.source == "pve1").expect("pve1 is listed")
}

async fn inventory(h: &Harness, kind: &str, node: &str, gone: &str) -> Vec<v1::InventoryRecord> {
    let request = v1::ListInventoryRequest {
        kind: kind.to_owned(),
        node_id: node.to_owned(),
        gone: gone.to_owned(),
        page_size: 1000,
        ..Default::default()
    };
    h.root().list_inventory(request).await.expect("list").into_owned().records
}

async fn vm_record(h: &Harness, vmid: u32) -> v1::InventoryRecord {
    let get = v1::GetInventoryRequest { kind: "vm".to_owned(), id: format!("pve1/{vmid}"), ..Default::default() };
    h.root().get_inventory(get).await.expect("get").into_owned().record.into_option().expect("the record")
}

/// A node registering with `hostname`: the pool's machine of `instance` if given, else a
/// machine outside any pool.
async fn register(h: &Harness, node: &str, hostname: &str, instance: Option<&str>) {
    let registration = NodeRegistration {
        provider: if instance.is_some() { "pve" } else { "manual" }.to_owned(),
        pool: instance.map(|_| POOL.parse().expect("pool")),
        metadata: NodeMetadata { hostname: hostname.to_owned(), ..NodeMetadata::default() },
        ..registration(node)
    };
    h.agent_client().register(&registration, instance).await.expect("register");
}

async fn a_proxmox_pool_clones_links_and_destroys_its_vms(backend: Backend) {
    let cluster = cluster().await;
    let Some(h) = start(backend, &cluster).await else { return };
    let mock = &cluster.mock;

    // min_nodes 1: one clone of the template, started, each task followed to its end.
    h.server().reconcile_pools().await.expect("reconcile");
    let pending = instances(&h, &[v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION]).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let instance = pending[0].clone();
    let vmid = vmid(&instance);
    let (host, status) = mock.guest(vmid).expect("the clone exists");
    assert_eq!(status, "running");
    assert_eq!(instance.provider_instance_id, format!("{host}/{vmid}/{}", instance.instance_id));
    assert_eq!(
        tasks_since(mock, 0),
        [("qmclone", true, "OK".to_owned()), ("qmstart", true, "OK".to_owned())],
        "clone, then start, each followed"
    );

    // Synced before any agent registered: the clone is a VM of no node.
    let first = sync(&h).await;
    assert!(first.error.is_empty(), "{first:?}");
    let record = vm_record(&h, vmid).await;
    assert_eq!((record.name.as_str(), record.node_id.as_str()), (instance.instance_id.as_str(), ""));
    assert_eq!(record.revision, 1);

    // The clone's agent registers for its instance under an id and host name of its own;
    // another agent's host name is a generated VM's name (in other case), a third's is a
    // hypervisor's.
    register(&h, "gpu-a", "not-the-vm-name", Some(&instance.instance_id)).await;
    register(&h, "guest-0", "GPU-VM-0", None).await;
    register(&h, "hv-2", "pve2", None).await;
    let running = instances(&h, &[v1::InstanceState::INSTANCE_STATE_RUNNING]).await;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].node_id, "gpu-a");

    let linked = sync(&h).await;
    assert_eq!((linked.created, linked.updated, linked.gone), (0, 3, 0), "{linked:?}");
    let record = vm_record(&h, vmid).await;
    assert_eq!((record.node_id.as_str(), record.revision), ("gpu-a", 2), "linked by its instance");
    let doc: serde_json::Value = serde_json::from_str(&record.json).expect("json");
    assert_eq!(doc["node_id"], "gpu-a", "{doc}");
    let history = v1::ListEventsRequest {
        kind: "vm".to_owned(),
        resource_id: format!("pve1/{vmid}"),
        limit: 100,
        ..Default::default()
    };
    let events = h.root().list_events(history).await.expect("history").into_owned().events;
    assert_eq!(events.len(), 2, "created, then linked");
    // The node filters (`bosun vms list --node`, `bosun hosts list --node`) find them.
    let of_gpu_a: Vec<String> = inventory(&h, "vm", "gpu-a", "").await.into_iter().map(|r| r.key).collect();
    assert_eq!(of_gpu_a, [vmid.to_string()]);
    let of_guest: Vec<String> = inventory(&h, "vm", "guest-0", "").await.into_iter().map(|r| r.name).collect();
    assert_eq!(of_guest, ["gpu-vm-0"], "linked by host name, case aside");
    let hosts: Vec<String> = inventory(&h, "host", "hv-2", "").await.into_iter().map(|r| r.key).collect();
    assert_eq!(hosts, ["pve2"]);
    assert!(inventory(&h, "vm", "hv-2", "").await.is_empty());

    // Unchanged links write nothing.
    let again = sync(&h).await;
    assert_eq!((again.created, again.updated, again.gone), (0, 0, 0), "{again:?}");
    assert_eq!(vm_record(&h, vmid).await.revision, 2);

    // Terminating the node: the pool terminates its instance, the VM is stopped and
    // destroyed (each task followed), the inventory marks it gone with its last link. The
    // hosts are full meanwhile, so the pool's replacement waits (below: it takes the vmid
    // the VM left, as Proxmox hands out the lowest free one).
    mock.set_host_full("pve1", true);
    mock.set_host_full("pve2", true);
    let tasks_before = mock.started_tasks().len();
    let terminate = v1::IssueCommandRequest {
        node_id: "gpu-a".to_owned(),
        r#type: v1::CommandType::COMMAND_TYPE_TERMINATE.into(),
        reason: "decommission".to_owned(),
        ..Default::default()
    };
    h.root().issue_command(terminate).await.expect("terminate");
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(mock.guest(vmid), None, "stopped and destroyed");
    assert_eq!(
        tasks_since(mock, tasks_before),
        [("qmstop", true, "OK".to_owned()), ("qmdestroy", true, "OK".to_owned())],
        "stop, then destroy, each followed"
    );
    assert_eq!(status_of(&h.node("gpu-a").await), v1::NodeStatus::NODE_STATUS_TERMINATED);
    let gone = sync(&h).await;
    assert_eq!((gone.created, gone.updated, gone.gone), (0, 0, 1), "{gone:?}");
    let record = vm_record(&h, vmid).await;
    assert!(record.gone_at.as_option().is_some(), "{record:?}");
    assert_eq!(record.node_id, "gpu-a", "kept as it last was");
    let gone_of_gpu_a: Vec<String> = inventory(&h, "vm", "gpu-a", "true").await.into_iter().map(|r| r.key).collect();
    assert_eq!(gone_of_gpu_a, [vmid.to_string()]);

    // Room again: the replacement is cloned under the freed vmid, so the record comes back
    // as the new VM, linked to no node until its agent registers.
    mock.set_host_full("pve1", false);
    mock.set_host_full("pve2", false);
    h.clock.advance(Duration::from_secs(31));
    h.server().reconcile_pools().await.expect("reconcile");
    let replacement = instances(&h, &[v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION]).await;
    assert_eq!(replacement.len(), 1, "{replacement:?}");
    assert_eq!(self::vmid(&replacement[0]), vmid);
    let back = sync(&h).await;
    assert_eq!((back.created, back.back, back.gone), (0, 1, 0), "{back:?}");
    let record = vm_record(&h, vmid).await;
    assert_eq!((record.name.as_str(), record.node_id.as_str()), (replacement[0].instance_id.as_str(), ""));
    assert!(record.gone_at.as_option().is_none());
    h.stop().await;
}

async fn a_failing_clone_is_the_pools_error_and_leaves_the_rest(backend: Backend) {
    let cluster = cluster().await;
    let Some(h) = start(backend, &cluster).await else { return };
    let mock = &cluster.mock;
    h.server().reconcile_pools().await.expect("reconcile");
    let first = instances(&h, &[]).await;
    assert_eq!(first.len(), 1);
    register(&h, "gpu-a", "gpu-a", Some(&first[0].instance_id)).await;
    let first_vmid = vmid(&first[0]);
    let vms_before = mock.vmids().len();

    // A second machine, whose clone task fails: the pool says why, the provider is backed
    // off, and the first machine, its node and the inventory are as they were.
    mock.fail_clones(Some("clone failed: storage 'local-lvm' is full"));
    let tasks_before = mock.started_tasks().len();
    let scale = v1::ScalePoolRequest { name: POOL.to_owned(), target: 2, ..Default::default() };
    let scaled = h.root().scale_pool(scale.clone()).await.expect("scale").into_owned();
    let reason = scaled.decision.as_option().expect("decision").reason.clone();
    assert!(reason.contains("could not provision"), "{reason}");
    let pool = h.server().store().pool(&POOL.parse().expect("name")).await.expect("pool");
    let backoff = pool.status.provider_backoff.get("pve").expect("pve is backed off");
    assert!(backoff.last_error.contains("storage 'local-lvm' is full"), "{}", backoff.last_error);
    assert!(backoff.last_error.contains("qmclone"), "the error names the task: {}", backoff.last_error);
    assert_eq!(
        tasks_since(mock, tasks_before),
        [("qmclone", true, "clone failed: storage 'local-lvm' is full".to_owned())]
    );
    assert_eq!(mock.vmids().len(), vms_before, "the failed clone created nothing");
    let failed = instances(&h, &[v1::InstanceState::INSTANCE_STATE_FAILED]).await;
    assert_eq!(failed.len(), 1, "the attempt is recorded as a FAILED instance");
    assert_eq!(mock.guest(first_vmid).map(|(_, status)| status).as_deref(), Some("running"));
    assert_eq!(status_of(&h.node("gpu-a").await), v1::NodeStatus::NODE_STATUS_ACTIVE);
    let synced = sync(&h).await;
    assert!(synced.error.is_empty(), "{synced:?}");
    assert_eq!(vm_record(&h, first_vmid).await.node_id, "gpu-a");

    // Once clones work again and the backoff ran out, the pool grows.
    mock.fail_clones(None);
    h.clock.advance(Duration::from_secs(31));
    h.server().reconcile_pools().await.expect("reconcile");
    let live = instances(
        &h,
        &[v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION, v1::InstanceState::INSTANCE_STATE_RUNNING],
    )
    .await;
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live.iter().all(|i| mock.guest(vmid(i)).is_some()));
    h.stop().await;
}
