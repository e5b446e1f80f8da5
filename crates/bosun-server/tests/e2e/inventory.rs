//! The inventory from a Proxmox VE source (the mock of its API): a first sync with
//! hosts, VMs, containers and storage, a changed configuration digest, a deleted VM, an
//! API outage and a malformed answer that wipe nothing, and the RPCs over them; services
//! whose members are the tagged VMs, following a re-tag, and a changed configuration.

use std::time::Duration;

use bosun_api::v1;
use bosun_config::proxmox::{ProxmoxEndpoint, SecretSource};
use bosun_config::{InventorySource, InventorySourceKind};
use bosun_core::inventory::{MemberKind, Service};
use bosun_provider::proxmox::mock::{MockCluster, MockSpec, TOKEN_ID, TOKEN_SECRET};
use bosun_store::Backend;
use connectrpc::ErrorCode;

use crate::harness::*;

on_every_backend!(a_proxmox_source_syncs_changes_departures_and_outages, services_group_the_vms_their_tags_select);

/// Across a restart: on the SQL backends (a memory store starts empty).
mod across_restarts {
    use super::*;
    on_sql_backends!(a_services_configuration_change_is_synced_at_the_next_start);
}

async fn list(h: &Harness, kind: &str, gone: &str) -> Vec<v1::InventoryRecord> {
    let request = v1::ListInventoryRequest {
        kind: kind.to_owned(),
        gone: gone.to_owned(),
        page_size: 1000,
        ..Default::default()
    };
    h.admin(Some(OPERATOR)).list_inventory(request).await.expect("list").into_owned().records
}

async fn source(h: &Harness) -> v1::InventorySourceStatus {
    let listed = h
        .admin(Some(OPERATOR))
        .list_inventory_sources(v1::ListInventorySourcesRequest::default())
        .await
        .expect("sources")
        .into_owned();
    listed.sources.into_iter().find(|s| s.source == "pve1").expect("pve1 is listed")
}

async fn sync(h: &Harness) {
    let services = usize::from(!h.settings.inventory_services.is_empty());
    assert_eq!(h.server().sync_inventory().await.expect("sync"), 1 + services, "pve1 (and the services)");
    h.clock.advance(Duration::from_secs(30));
}

/// `pve1`, reading `url` with the mock's token from `secret`.
pub(crate) fn proxmox_source(url: &str, secret: &tempfile::NamedTempFile) -> InventorySource {
    InventorySource {
        name: "pve1".parse().expect("valid"),
        interval: Duration::from_secs(30),
        kind: InventorySourceKind::Proxmox(ProxmoxEndpoint {
            url: url.parse().expect("url"),
            token_id: TOKEN_ID.to_owned(),
            token_secret: SecretSource::File(secret.path().to_owned()),
            verify_tls: true,
            ca_file: None,
        }),
    }
}

/// A file holding the mock's token secret.
pub(crate) fn secret_file() -> tempfile::NamedTempFile {
    let secret = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret.path(), TOKEN_SECRET).expect("write secret");
    secret
}

async fn a_proxmox_source_syncs_changes_departures_and_outages(backend: Backend) {
    let mock = MockCluster::generate(&MockSpec { nodes: 3, vms: 6, containers: 4, gpus_per_vm: 2, tasks_per_node: 2 });
    let url = mock.spawn().await.expect("mock");
    let secret = secret_file();
    let mut settings = settings();
    settings.inventory_sources = vec![proxmox_source(&url, &secret)];
    let Some(h) = Harness::start_with(backend, settings).await else { return };

    // Configured but not read yet: listed, never synced.
    assert!(source(&h).await.last_sync_at.as_option().is_none());
    sync(&h).await;
    let vms = list(&h, "vm", "").await;
    assert_eq!((vms.len(), list(&h, "container", "").await.len(), list(&h, "host", "").await.len()), (6, 4, 3));
    assert!(!list(&h, "storage", "").await.is_empty());
    let vm: serde_json::Value = serde_json::from_str(&vms[0].json).expect("json");
    assert_eq!(vm["source"], "pve1");
    assert_eq!(vm["gpu_devices"].as_array().map(Vec::len), Some(2), "{vm}");
    assert!(vm["vmid"].as_u64().is_some() && vm["host"].is_string() && vm["gone_at"].is_null(), "{vm}");
    let status = source(&h).await;
    assert_eq!((status.r#type.as_str(), status.error.as_str(), status.syncs), ("proxmox", "", 1));
    assert!(status.created >= 13, "{status:?}");

    // The nodes' tasks are runs of the ledger, recorded once however often they are read.
    let external = |h: &Harness| {
        let ops = h.ops(Some(OPERATOR));
        async move {
            let request = v1::ListRunsRequest { kind: "external".to_owned(), page_size: 100, ..Default::default() };
            ops.list_runs(request).await.expect("runs").into_owned().runs
        }
    };
    let runs = external(&h).await;
    assert_eq!(runs.len(), 6, "two finished tasks on each of three nodes");
    assert!(runs.iter().all(|r| r.status == "succeeded" && r.input_json.contains("vzdump")), "{runs:?}");
    let running = mock.push_task("pve2", "qmmigrate", 105, None);
    mock.push_task("pve3", "qmstart", 106, Some("start failed: no memory"));
    sync(&h).await;
    let runs = external(&h).await;
    assert_eq!(runs.len(), 8);
    let run_of = |upid: &str| runs.iter().find(|r| r.input_json.contains(upid)).cloned().expect("the task's run");
    assert_eq!(run_of(&running).status, "running");
    let failed = runs.iter().find(|r| r.status == "failed").expect("the failed task");
    assert_eq!(failed.error, "start failed: no memory");
    assert!(mock.end_task(&running, "OK"));
    sync(&h).await;
    sync(&h).await;
    let runs = external(&h).await;
    assert_eq!(runs.len(), 8, "no task is recorded twice");
    let ended = runs.iter().find(|r| r.input_json.contains(&running)).expect("the migration's run");
    assert_eq!((ended.status.as_str(), ended.revision), ("succeeded", 2));

    // A changed configuration and a deleted VM.
    let vmids = mock.vmids();
    assert!(mock.reconfigure(vmids[0]) && mock.destroy(vmids[1]));
    sync(&h).await;
    let status = source(&h).await;
    assert_eq!((status.updated, status.gone, status.created), (1, 1, 0), "{status:?}");
    let changed = format!("pve1/{}", vmids[0]);
    let get = v1::GetInventoryRequest { kind: "vm".to_owned(), id: changed.clone(), ..Default::default() };
    let record = h.admin(Some(OPERATOR)).get_inventory(get).await.expect("get").into_owned();
    assert_eq!(record.record.as_option().map(|r| r.revision), Some(2));
    let history =
        v1::ListEventsRequest { kind: "vm".to_owned(), resource_id: changed, limit: 100, ..Default::default() };
    let events = h.admin(Some(OPERATOR)).list_events(history).await.expect("history").into_owned().events;
    assert_eq!(events.len(), 2, "created, then updated");
    let gone = list(&h, "vm", "true").await;
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].key, vmids[1].to_string());
    assert!(gone[0].gone_at.as_option().is_some());

    // An outage and a malformed answer: the source is stale, nothing else changes.
    for (outage, malformed) in [(Some(503), false), (None, true)] {
        mock.set_outage(outage);
        mock.set_malformed(malformed);
        sync(&h).await;
        let status = source(&h).await;
        assert!(status.error.contains(&url), "the error names the API: {status:?}");
        assert!(!status.error.contains(TOKEN_SECRET));
        assert_eq!((list(&h, "vm", "false").await.len(), list(&h, "vm", "true").await.len()), (5, 1));
    }
    mock.set_malformed(false);
    sync(&h).await;
    assert!(source(&h).await.error.is_empty());

    // An answer that reads but that the store refuses (a name with a NUL) is an error of
    // the source too, not of the sync loop: stale, with why, nothing changed.
    assert!(mock.rename(vmids[2], "bad\u{0}name"));
    sync(&h).await;
    let status = source(&h).await;
    assert!(status.error.contains("cannot be stored") && status.error.contains(&url), "{status:?}");
    assert_eq!((list(&h, "vm", "false").await.len(), list(&h, "vm", "true").await.len()), (5, 1));
    assert!(mock.rename(vmids[2], "fine"));
    sync(&h).await;
    assert!(source(&h).await.error.is_empty());

    // Bad requests name what is wrong.
    let unknown = v1::SyncInventoryRequest { source: "pve9".to_owned(), ..Default::default() };
    let error = h.admin(Some(OPERATOR)).sync_inventory(unknown).await.expect_err("unknown source");
    assert_eq!(error.code, ErrorCode::NotFound);
    assert!(error.message.as_deref().unwrap_or_default().contains("pve1"), "{error:?}");
    let no_services = v1::SyncInventoryRequest { source: "services".to_owned(), ..Default::default() };
    let error = h.admin(Some(OPERATOR)).sync_inventory(no_services).await.expect_err("no services configured");
    assert_eq!(error.code, ErrorCode::NotFound);
    assert!(error.message.as_deref().unwrap_or_default().contains("inventory.services"), "{error:?}");
    let bad_kind = v1::ListInventoryRequest { kind: "planet".to_owned(), ..Default::default() };
    let error = h.admin(Some(OPERATOR)).list_inventory(bad_kind).await.expect_err("bad kind");
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    let no_host = v1::ListInventoryRequest { kind: "storage".to_owned(), host: "x".to_owned(), ..Default::default() };
    let error = h.admin(Some(OPERATOR)).list_inventory(no_host).await.expect_err("storage has no host");
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    // The sync history, newest first, failed reads included.
    let history = v1::ListInventorySyncsRequest { source: "pve1".to_owned(), limit: 100, ..Default::default() };
    let syncs = h.admin(Some(OPERATOR)).list_inventory_syncs(history).await.expect("syncs").into_owned().syncs;
    assert!(syncs.len() >= 8, "{syncs:?}");
    assert!(syncs.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert!(syncs.iter().any(|s| s.error.contains(&url)), "a failed read is in the history");
    assert!(syncs.last().is_some_and(|first| first.created >= 13 && first.error.is_empty()), "{syncs:?}");
    let too_many = v1::ListInventorySyncsRequest { limit: 5000, ..Default::default() };
    let error = h.admin(Some(OPERATOR)).list_inventory_syncs(too_many).await.expect_err("limit");
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    // A sync now through the API, as an operator.
    let now = v1::SyncInventoryRequest::default();
    let synced = h.admin(Some(OPERATOR)).sync_inventory(now).await.expect("sync now").into_owned();
    assert_eq!(synced.sources.len(), 1);
}

/// A service as the configuration declares it.
fn service(name: &str, selector: &str, kinds: &[MemberKind]) -> Service {
    let kinds = kinds.iter().copied().collect();
    Service::new(name.parse().expect("name"), selector.parse().expect("selector"), kinds, None).expect("service")
}

/// A service's members (their ids) and member count.
async fn members(h: &Harness, name: &str) -> (Vec<String>, u64) {
    let request = v1::GetInventoryRequest { kind: "service".to_owned(), id: name.to_owned(), ..Default::default() };
    let got = h.admin(Some(OPERATOR)).get_inventory(request).await.expect("get service").into_owned();
    (got.members.iter().map(|m| m.id.clone()).collect(), got.member_count)
}

async fn vms_selected(h: &Harness, selector: &str) -> Vec<String> {
    let request = v1::ListInventoryRequest {
        kind: "vm".to_owned(),
        label_selector: selector.to_owned(),
        gone: "false".to_owned(),
        ..Default::default()
    };
    let listed = h.admin(Some(OPERATOR)).list_inventory(request).await.expect("list").into_owned();
    listed.records.into_iter().map(|r| r.id).collect()
}

async fn services_group_the_vms_their_tags_select(backend: Backend) {
    // VMs 100 and 102 are tagged gpu;training, 101 and 103 gpu;inference; containers infra.
    let mock = MockCluster::generate(&MockSpec { nodes: 2, vms: 4, containers: 2, gpus_per_vm: 1, tasks_per_node: 0 });
    let url = mock.spawn().await.expect("mock");
    let secret = secret_file();
    let mut settings = settings();
    settings.inventory_sources = vec![proxmox_source(&url, &secret)];
    settings.inventory_services = vec![
        service("training", "training", &[MemberKind::Vm]),
        service("gpus", "gpu", MemberKind::ALL),
        service("infra", "infra", &[MemberKind::Container, MemberKind::Workload]),
    ];
    let Some(h) = Harness::start_with(backend, settings).await else { return };
    assert_eq!(h.server().sync_inventory().await.expect("sync"), 2, "pve1 and the services");
    h.clock.advance(Duration::from_secs(30));

    let services = list(&h, "service", "").await;
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gpus", "infra", "training"]);
    let training: serde_json::Value = serde_json::from_str(&services[2].json).expect("json");
    assert_eq!(
        (training["selector"].as_str(), training["kinds"].clone()),
        (Some("training"), serde_json::json!(["vm"]))
    );
    assert_eq!(services[2].id, "services/training");
    assert_eq!(members(&h, "training").await, (vec!["pve1/100".to_owned(), "pve1/102".to_owned()], 2));
    assert_eq!(members(&h, "gpus").await.1, 4);
    assert_eq!(members(&h, "services/infra").await.1, 2, "by SOURCE/KEY too");
    let vm: serde_json::Value = serde_json::from_str(&list(&h, "vm", "").await[0].json).expect("json");
    assert_eq!(vm["labels"], serde_json::json!({"gpu": "", "training": ""}), "tags are labels with empty values");
    assert_eq!(vms_selected(&h, "inference").await, ["pve1/101", "pve1/103"]);
    assert_eq!(vms_selected(&h, "gpu,training").await, ["pve1/100", "pve1/102"]);
    let sources = h
        .admin(Some(OPERATOR))
        .list_inventory_sources(v1::ListInventorySourcesRequest::default())
        .await
        .expect("sources")
        .into_owned();
    let line = sources.sources.iter().find(|s| s.source == "services").expect("the services' source is listed");
    assert_eq!((line.r#type.as_str(), line.configured, line.created), ("config", true, 3));

    // A re-tag is an update of the VM, and membership follows at the next sync.
    assert!(mock.set_tags(101, "gpu;training") && mock.set_tags(100, "gpu"));
    sync(&h).await;
    assert_eq!(members(&h, "training").await, (vec!["pve1/101".to_owned(), "pve1/102".to_owned()], 2));
    let get = v1::GetInventoryRequest { kind: "vm".to_owned(), id: "pve1/101".to_owned(), ..Default::default() };
    let record = h.admin(Some(OPERATOR)).get_inventory(get).await.expect("get").into_owned();
    assert_eq!(record.record.as_option().map(|r| r.revision), Some(2));
    assert!(record.members.is_empty() && record.member_count == 0, "only a service has members");
    // A VM gone from its source is no member.
    assert!(mock.destroy(102));
    sync(&h).await;
    assert_eq!(members(&h, "training").await, (vec!["pve1/101".to_owned()], 1));

    // A selector the store cannot use is refused, naming the field.
    for (kind, selector) in [("vm", "bad key"), ("vm", "=x"), ("host", "gpu")] {
        let request = v1::ListInventoryRequest {
            kind: kind.to_owned(),
            label_selector: selector.to_owned(),
            ..Default::default()
        };
        let error = h.admin(Some(OPERATOR)).list_inventory(request).await.expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{kind} {selector}");
        let message = error.message.unwrap_or_default();
        assert!(message.contains("label_selector") || message.contains("labels"), "{message}");
    }
}

async fn a_services_configuration_change_is_synced_at_the_next_start(backend: Backend) {
    let mut settings = settings();
    settings.inventory_services =
        vec![service("training", "training", &[MemberKind::Vm]), service("infra", "infra", MemberKind::ALL)];
    let Some(mut h) = Harness::start_with(backend, settings).await else { return };
    assert_eq!(h.server().sync_inventory().await.expect("sync"), 1);
    h.clock.advance(Duration::from_secs(30));

    // The next start's configuration: training selects more narrowly, infra is gone.
    h.settings.inventory_services = vec![service("training", "gpu,training", &[MemberKind::Vm])];
    h.restart().await;
    h.server().sync_inventory().await.expect("sync");
    let present = list(&h, "service", "false").await;
    assert_eq!(present.len(), 1);
    let training: serde_json::Value = serde_json::from_str(&present[0].json).expect("json");
    assert_eq!((training["selector"].as_str(), present[0].revision), (Some("gpu,training"), 2));
    let gone = list(&h, "service", "true").await;
    assert_eq!(gone.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["services/infra"]);
    let history = v1::ListEventsRequest {
        kind: "service".to_owned(),
        resource_id: "services/training".to_owned(),
        limit: 100,
        ..Default::default()
    };
    let events = h.admin(Some(OPERATOR)).list_events(history).await.expect("history").into_owned().events;
    assert_eq!(events.len(), 2, "created, then updated");

    // Syncing the same configuration again changes nothing.
    h.server().sync_inventory().await.expect("sync");
    assert_eq!(list(&h, "service", "false").await[0].revision, 2);
}
