//! The inventory: records of every kind synced from a source's snapshots (create,
//! unchanged, change, gone, back), a failed source that wipes nothing, one node's
//! workloads synced apart from another's, history in the change log, lists filtered by
//! label selector, services as the records of a config source, and what the store
//! refuses.

use std::time::Duration;

use bosun_core::inventory::{
    Container, ContainerRuntime, Host, InventoryKind, InventoryRecord, InventorySnapshot, MemberKind, PodRef,
    RecordState, Reported, Service, SourceSync, SourceType, Storage, SyncCounts, SyncScope, Usage, Vm, Workload,
};
use bosun_core::{ChangeOp, LabelSelector, Labels, ResourceKind, Revision, SourceName};

use super::{Ctx, E, assert_err, batch, node_id};
use crate::inventory::{InventoryFilter, USAGE_REFRESH};
use crate::query::{ChangeFilter, PageRequest};
use crate::write::WriteOutcome;

fn source() -> SourceName {
    "pve1".parse().expect("valid source")
}

fn reported<T>(key: &str, digest: &str, state: T) -> Reported<T> {
    Reported {
        key: key.to_owned(),
        digest: digest.to_owned(),
        state,
        usage: Usage { cpu: 0.25, memory_used: 1 << 30, ..Usage::default() },
    }
}

fn vm(vmid: u32, host: &str) -> Vm {
    Vm {
        host: host.to_owned(),
        vmid,
        name: format!("train-{vmid}"),
        status: "running".to_owned(),
        template: false,
        cpus: 16,
        memory_total: 64 << 30,
        disk_total: 500 << 30,
        ha_managed: true,
        lock: None,
        config_digest: Some(format!("cfg-{vmid}")),
        gpu_devices: vec!["0000:41:00,pcie=1".to_owned()],
        node_id: None,
        labels: Labels::try_from([("gpu", ""), ("team", "ml")]).expect("labels"),
    }
}

fn snapshot() -> InventorySnapshot {
    let host = |name: &str| Host {
        name: name.to_owned(),
        status: "online".to_owned(),
        cpus: 64,
        memory_total: 512 << 30,
        node_id: None,
    };
    InventorySnapshot {
        hosts: vec![reported("pve-a", "h1", host("pve-a")), reported("pve-b", "h2", host("pve-b"))],
        vms: vec![reported("100", "v100", vm(100, "pve-a")), reported("101", "v101", vm(101, "pve-b"))],
        containers: vec![reported(
            "200",
            "c200",
            Container {
                runtime: ContainerRuntime::Lxc,
                host: "pve-a".to_owned(),
                vmid: Some(200),
                name: "dns".to_owned(),
                hostname: Some("dns.lab".to_owned()),
                os_template: Some("debian-12".to_owned()),
                status: "running".to_owned(),
                template: false,
                cpus: 2,
                memory_total: 2 << 30,
                disk_total: 8 << 30,
                ha_managed: false,
                lock: Some("backup".to_owned()),
                config_digest: None,
                labels: Labels::try_from([("infra", "")]).expect("labels"),
            },
        )],
        storage: vec![reported(
            "ceph",
            "s1",
            Storage {
                name: "ceph".to_owned(),
                storage_type: "rbd".to_owned(),
                content: vec!["images".to_owned(), "rootdir".to_owned()],
                shared: true,
                status: "available".to_owned(),
                total: 10 << 40,
                hosts: vec!["pve-b".to_owned(), "pve-a".to_owned()],
            },
        )],
        workloads: Vec::new(),
        services: Vec::new(),
    }
}

fn sync_of(ctx: &Ctx, snapshot: InventorySnapshot) -> SourceSync {
    SourceSync {
        source: source(),
        source_type: SourceType::Proxmox,
        scope: SyncScope::Source,
        started_at: ctx.now(),
        outcome: Ok(snapshot),
    }
}

async fn sync(ctx: &Ctx, sync: SourceSync) -> SyncCounts {
    let committed = ctx.store.commit(batch("inventory sync").sync_inventory(sync)).await.expect("sync");
    ctx.clock.advance(Duration::from_secs(30));
    match committed.outcomes[0] {
        WriteOutcome::Synced { counts, .. } => counts,
        ref other => panic!("expected a sync outcome, got {other:?}"),
    }
}

async fn list(ctx: &Ctx, filter: InventoryFilter) -> Vec<InventoryRecord> {
    ctx.store.list_inventory(&filter, &PageRequest::first(100)).await.expect("list").items
}

async fn get(ctx: &Ctx, kind: InventoryKind, key: &str) -> InventoryRecord {
    ctx.store.inventory_record(kind, &source(), key).await.expect("get")
}

async fn history(ctx: &Ctx, kind: ResourceKind, id: &str) -> Vec<(ChangeOp, u64)> {
    let changes = ctx.store.list_changes(&ChangeFilter::resource(kind, id), 100).await.expect("changes");
    changes.into_iter().map(|c| (c.op, c.revision.get())).collect()
}

pub(crate) async fn a_first_sync_creates_every_kind_and_reads_back(ctx: &Ctx) {
    let at = ctx.now();
    let counts = sync(ctx, sync_of(ctx, snapshot())).await;
    assert_eq!(counts, SyncCounts { created: 6, ..SyncCounts::default() });

    let vm = get(ctx, InventoryKind::Vm, "100").await;
    assert_eq!(vm.state, RecordState::Vm(self::vm(100, "pve-a")), "every field round-trips");
    assert_eq!((vm.revision, vm.first_seen, vm.gone_at, vm.digest.as_str()), (Revision::FIRST, at, None, "v100"));
    assert_eq!(vm.usage.memory_used, 1 << 30);
    assert_eq!(vm.id(), "pve1/100");
    let container = get(ctx, InventoryKind::Container, "200").await;
    assert_eq!(container.state, snapshot().containers[0].state.clone().into_state());
    let storage = get(ctx, InventoryKind::Storage, "ceph").await;
    let RecordState::Storage(storage) = storage.state else { panic!("storage") };
    assert_eq!(storage.hosts, ["pve-a", "pve-b"], "the hosts that see it, sorted");
    assert_eq!(list(ctx, InventoryFilter::kind(InventoryKind::Host)).await.len(), 2);

    let on_b = InventoryFilter { host: Some("pve-b".to_owned()), ..InventoryFilter::kind(InventoryKind::Vm) };
    let keys: Vec<String> = list(ctx, on_b).await.into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["101"]);
    let named = InventoryFilter { name: Some("dns".to_owned()), ..InventoryFilter::kind(InventoryKind::Container) };
    assert_eq!(list(ctx, named).await.len(), 1);

    assert_eq!(history(ctx, ResourceKind::Vm, "pve1/100").await, [(ChangeOp::Created, 1)]);
    let sources = ctx.store.inventory_sources().await.expect("sources");
    assert_eq!(sources.len(), 1);
    assert_eq!(
        (sources[0].last_success_at, sources[0].error.as_deref(), sources[0].counts.created),
        (Some(at), None, 6)
    );
    let syncs = ctx.store.inventory_syncs(Some(&source()), 10).await.expect("syncs");
    assert_eq!((syncs.len(), syncs[0].counts.created, syncs[0].error.as_deref()), (1, 6, None));
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
    let missing = ctx.store.inventory_record(InventoryKind::Vm, &source(), "999").await;
    assert_err!(missing, E::NotFound { .. });
}

trait IntoState {
    fn into_state(self) -> RecordState;
}

impl IntoState for Container {
    fn into_state(self) -> RecordState {
        RecordState::Container(self)
    }
}

pub(crate) async fn an_unchanged_sync_writes_no_record_but_moves_last_seen(ctx: &Ctx) {
    sync(ctx, sync_of(ctx, snapshot())).await;
    let before = ctx.store.last_change_seq().await.expect("seq");
    let second_at = ctx.now();
    let mut busier = snapshot();
    busier.vms[0].usage.cpu = 0.9;
    let counts = sync(ctx, sync_of(ctx, busier)).await;
    assert_eq!(counts, SyncCounts { unchanged: 6, ..SyncCounts::default() });
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), before, "no change record");
    let vm = get(ctx, InventoryKind::Vm, "100").await;
    assert_eq!(vm.revision, Revision::FIRST);
    assert_eq!(vm.last_seen, second_at, "seen by the latest sync");
    assert_eq!(vm.usage.cpu, 0.25, "usage is refreshed only every few minutes");

    // Past the refresh interval, usage is rewritten, still without a revision.
    ctx.clock.advance(USAGE_REFRESH);
    let mut busier = snapshot();
    busier.vms[0].usage.cpu = 0.9;
    sync(ctx, sync_of(ctx, busier)).await;
    let vm = get(ctx, InventoryKind::Vm, "100").await;
    assert_eq!((vm.usage.cpu, vm.revision), (0.9, Revision::FIRST));
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), before);
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}

pub(crate) async fn a_changed_record_gets_a_revision_and_a_change_record(ctx: &Ctx) {
    sync(ctx, sync_of(ctx, snapshot())).await;
    let first_seen = get(ctx, InventoryKind::Vm, "100").await.first_seen;
    let mut changed = snapshot();
    changed.vms[0].state.status = "stopped".to_owned();
    changed.vms[0].digest = "v100-stopped".to_owned();
    changed.storage[0].state.hosts.pop();
    changed.storage[0].digest = "s1-smaller".to_owned();
    let counts = sync(ctx, sync_of(ctx, changed)).await;
    assert_eq!(counts, SyncCounts { updated: 2, unchanged: 4, ..SyncCounts::default() });
    let vm = get(ctx, InventoryKind::Vm, "100").await;
    assert_eq!((vm.state.status(), vm.revision.get(), vm.first_seen), ("stopped", 2, first_seen));
    assert_eq!(history(ctx, ResourceKind::Vm, "pve1/100").await, [(ChangeOp::Created, 1), (ChangeOp::Updated, 2)]);
    let RecordState::Storage(storage) = get(ctx, InventoryKind::Storage, "ceph").await.state else { panic!() };
    assert_eq!(storage.hosts, ["pve-b"]);
    let stopped = InventoryFilter { status: Some("stopped".to_owned()), ..InventoryFilter::kind(InventoryKind::Vm) };
    assert_eq!(list(ctx, stopped).await.len(), 1);
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}

pub(crate) async fn a_vanished_record_is_kept_as_gone_and_comes_back(ctx: &Ctx) {
    let first_at = ctx.now();
    sync(ctx, sync_of(ctx, snapshot())).await;
    let second_at = ctx.now();
    sync(ctx, sync_of(ctx, snapshot())).await;
    let gone_at = ctx.now();
    let mut without = snapshot();
    without.vms.remove(0);
    let counts = sync(ctx, sync_of(ctx, without.clone())).await;
    assert_eq!(counts, SyncCounts { gone: 1, unchanged: 5, ..SyncCounts::default() });
    let vm = get(ctx, InventoryKind::Vm, "100").await;
    assert_eq!((vm.gone_at, vm.last_seen, vm.first_seen, vm.revision.get()), (Some(gone_at), second_at, first_at, 2));
    let gone = InventoryFilter { gone: Some(true), ..InventoryFilter::kind(InventoryKind::Vm) };
    assert_eq!(list(ctx, gone).await.len(), 1);
    let present = InventoryFilter { gone: Some(false), ..InventoryFilter::kind(InventoryKind::Vm) };
    assert_eq!(list(ctx, present).await.len(), 1);

    // Still missing: nothing more happens to it.
    let counts = sync(ctx, sync_of(ctx, without)).await;
    assert_eq!(counts, SyncCounts { unchanged: 5, ..SyncCounts::default() });
    assert_eq!(get(ctx, InventoryKind::Vm, "100").await.gone_at, Some(gone_at));

    let back_at = ctx.now();
    let counts = sync(ctx, sync_of(ctx, snapshot())).await;
    assert_eq!(counts, SyncCounts { back: 1, unchanged: 5, ..SyncCounts::default() });
    let vm = get(ctx, InventoryKind::Vm, "100").await;
    assert_eq!((vm.gone_at, vm.last_seen, vm.revision.get()), (None, back_at, 3));
    assert_eq!(
        history(ctx, ResourceKind::Vm, "pve1/100").await,
        [(ChangeOp::Created, 1), (ChangeOp::Updated, 2), (ChangeOp::Updated, 3)]
    );
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}

pub(crate) async fn a_failed_source_wipes_nothing_and_is_marked_stale(ctx: &Ctx) {
    let ok_at = ctx.now();
    sync(ctx, sync_of(ctx, snapshot())).await;
    let before = ctx.store.last_change_seq().await.expect("seq");
    let failed = SourceSync {
        outcome: Err("GET https://pve.example:8006/api2/json/cluster/resources: 401\nUnauthorized".to_owned()),
        ..sync_of(ctx, InventorySnapshot::default())
    };
    let counts = sync(ctx, failed).await;
    assert_eq!(counts, SyncCounts::default());
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), before);
    let vms = list(ctx, InventoryFilter::kind(InventoryKind::Vm)).await;
    assert!(vms.iter().all(|v| v.gone_at.is_none() && v.last_seen == ok_at), "kept as last read");
    let status = &ctx.store.inventory_sources().await.expect("sources")[0];
    assert!(status.is_stale());
    assert_eq!(
        status.error.as_deref(),
        Some("GET https://pve.example:8006/api2/json/cluster/resources: 401 Unauthorized")
    );
    assert_eq!((status.last_success_at, status.syncs), (Some(ok_at), 2));
    let syncs = ctx.store.inventory_syncs(None, 10).await.expect("syncs");
    assert_eq!(syncs.len(), 2);
    assert!(syncs[0].error.is_some() && syncs[1].error.is_none(), "newest first");

    // The next good read clears the error.
    sync(ctx, sync_of(ctx, snapshot())).await;
    assert!(!ctx.store.inventory_sources().await.expect("sources")[0].is_stale());
}

fn workload(node: &str, pid: u32, gpus: &[u32]) -> Reported<Workload> {
    reported(
        &format!("{node}/{pid}"),
        &format!("w{pid}{gpus:?}"),
        Workload {
            node_id: node_id(node),
            gpu_indexes: gpus.to_vec(),
            pid,
            process_name: "python3".to_owned(),
            container_id: Some("0123456789ab".to_owned()),
            pod: Some(PodRef { namespace: None, name: None, uid: "c0ffee00-1111-2222-3333-444455556666".to_owned() }),
            gpu_memory_bytes: 40 << 30,
            started_at: None,
        },
    )
}

fn node_sync(ctx: &Ctx, node: &str, workloads: Vec<Reported<Workload>>) -> SourceSync {
    SourceSync {
        source: "agents".parse().expect("valid"),
        source_type: SourceType::Agent,
        scope: SyncScope::Node(node_id(node)),
        started_at: ctx.now(),
        outcome: Ok(InventorySnapshot { workloads, ..InventorySnapshot::default() }),
    }
}

pub(crate) async fn each_nodes_workloads_sync_on_their_own(ctx: &Ctx) {
    sync(ctx, node_sync(ctx, "n1", vec![workload("n1", 10, &[0, 1]), workload("n1", 11, &[2])])).await;
    sync(ctx, node_sync(ctx, "n2", vec![workload("n2", 10, &[0])])).await;
    // n1's next report no longer has pid 11; n2's workloads are untouched.
    let counts = sync(ctx, node_sync(ctx, "n1", vec![workload("n1", 10, &[0, 1])])).await;
    assert_eq!(counts, SyncCounts { gone: 1, unchanged: 1, ..SyncCounts::default() });
    let on = |node: &str| InventoryFilter {
        node: Some(node_id(node)),
        gone: Some(false),
        ..InventoryFilter::kind(InventoryKind::Workload)
    };
    let n1 = list(ctx, on("n1")).await;
    assert_eq!(n1.len(), 1);
    let RecordState::Workload(w) = &n1[0].state else { panic!() };
    assert_eq!((w.gpu_indexes.as_slice(), w.gpu_memory_bytes), (&[0, 1][..], 40 << 30));
    assert_eq!(w.pod.as_ref().map(|p| p.uid.len()), Some(36));
    assert_eq!(list(ctx, on("n2")).await.len(), 1);

    // An unchanged agent report is not a history row, but still its node's last report.
    let before = ctx.store.inventory_syncs(None, 100).await.expect("syncs").len();
    sync(ctx, node_sync(ctx, "n2", vec![workload("n2", 10, &[0])])).await;
    assert_eq!(ctx.store.inventory_syncs(None, 100).await.expect("syncs").len(), before);
    let sources = ctx.store.inventory_sources().await.expect("sources");
    assert_eq!(
        sources.iter().map(|s| s.scope.clone()).collect::<Vec<_>>(),
        [SyncScope::Node(node_id("n1")), SyncScope::Node(node_id("n2"))]
    );
    assert_eq!(sources[1].syncs, 2);

    let foreign = node_sync(ctx, "n1", vec![workload("n2", 12, &[0])]);
    let refused = ctx.store.commit(batch("sync").sync_inventory(foreign)).await;
    assert_err!(refused, E::Invalid(_));
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}

pub(crate) async fn what_the_store_cannot_hold_is_refused_and_nothing_is_written(ctx: &Ctx) {
    type Spoil = Box<dyn Fn(&mut InventorySnapshot)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("duplicate key", Box::new(|s| s.vms.push(s.vms[0].clone()))),
        ("NUL in a name", Box::new(|s| s.vms[0].state.name = "a\0b".to_owned())),
        ("a size above the storable", Box::new(|s| s.vms[0].state.memory_total = u64::MAX)),
        ("an empty key", Box::new(|s| s.hosts[0].key = String::new())),
        ("a negative cpu", Box::new(|s| s.hosts[0].usage.cpu = -1.0)),
        ("a NaN cpu", Box::new(|s| s.hosts[0].usage.cpu = f64::NAN)),
    ];
    for (what, spoil) in cases {
        let mut bad = snapshot();
        spoil(&mut bad);
        let refused = ctx.store.commit(batch("sync").sync_inventory(sync_of(ctx, bad))).await;
        let message = assert_err!(refused, E::Invalid(_));
        assert!(!message.is_empty(), "{what}");
    }
    assert!(list(ctx, InventoryFilter::kind(InventoryKind::Vm)).await.is_empty());
    assert!(ctx.store.inventory_sources().await.expect("sources").is_empty());
    // A whole source's snapshot cannot carry workloads: they belong to one node's scope.
    let mut with_workloads = snapshot();
    with_workloads.workloads.push(workload("n1", 10, &[0]));
    let refused = ctx.store.commit(batch("sync").sync_inventory(sync_of(ctx, with_workloads))).await;
    assert_err!(refused, E::Invalid(_));
    // Agents report per node, other sources as a whole.
    let whole_agent = SourceSync { source_type: SourceType::Agent, ..sync_of(ctx, snapshot()) };
    let refused = ctx.store.commit(batch("sync").sync_inventory(whole_agent)).await;
    assert_err!(refused, E::Invalid(_));
    let proxmox_node = SourceSync { source_type: SourceType::Proxmox, ..node_sync(ctx, "n1", vec![]) };
    let refused = ctx.store.commit(batch("sync").sync_inventory(proxmox_node)).await;
    assert_err!(refused, E::Invalid(_));
}

pub(crate) async fn inventory_lists_page_by_source_and_key(ctx: &Ctx) {
    let mut big = snapshot();
    big.vms = (1000..1025).map(|id| reported(&id.to_string(), "v", vm(id, "pve-a"))).collect();
    sync(ctx, sync_of(ctx, big)).await;
    let other = SourceSync { source: "pve0".parse().expect("valid"), ..sync_of(ctx, snapshot()) };
    sync(ctx, other).await;
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10);
    loop {
        let got = ctx.store.list_inventory(&InventoryFilter::kind(InventoryKind::Vm), &page).await.expect("list");
        seen.extend(got.items.iter().map(InventoryRecord::id));
        match got.next {
            Some(cursor) => page = PageRequest::after(10, cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 27);
    assert_eq!(&seen[..3], ["pve0/100", "pve0/101", "pve1/1000"]);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    let by_source =
        InventoryFilter { source: Some("pve0".parse().expect("valid")), ..InventoryFilter::kind(InventoryKind::Vm) };
    assert_eq!(list(ctx, by_source).await.len(), 2);
    let no_host = InventoryFilter { host: Some("x".to_owned()), ..InventoryFilter::kind(InventoryKind::Storage) };
    let refused = ctx.store.list_inventory(&no_host, &PageRequest::first(10)).await;
    assert_err!(refused, E::Invalid(_));
}

pub(crate) async fn retention_prunes_old_sync_records_and_keeps_the_records(ctx: &Ctx) {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    sync(ctx, sync_of(ctx, snapshot())).await;
    ctx.clock.advance(31 * DAY);
    sync(ctx, sync_of(ctx, snapshot())).await;
    let policy = crate::RetentionPolicy::default();
    let report = ctx.store.apply_retention(&policy).await.expect("retention");
    assert_eq!(report.inventory_syncs_deleted, 1, "only the sync older than 30 days");
    let syncs = ctx.store.inventory_syncs(Some(&source()), 10).await.expect("syncs");
    assert_eq!(syncs.len(), 1);
    assert_eq!(syncs[0].counts.unchanged, 6, "the recent sync stays");
    assert_eq!(list(ctx, InventoryFilter::kind(InventoryKind::Vm)).await.len(), 2, "records are never pruned");
    assert_eq!(history(ctx, ResourceKind::Vm, "pve1/100").await, [(ChangeOp::Created, 1)]);
    let status = &ctx.store.inventory_sources().await.expect("sources")[0];
    assert_eq!(status.syncs, 2, "the source's status still counts every sync");
}

pub(crate) async fn drift_reports_live_in_the_change_log_with_growing_revisions(ctx: &Ctx) {
    use bosun_core::inventory::drift::{DriftReport, Missing};
    let missing = DriftReport {
        missing: vec![Missing { kind: InventoryKind::Vm, source: source(), vmid: Some(104), name: None }],
        ..DriftReport::default()
    };
    let first = ctx.store.commit(batch("drift").record_drift("declaration", missing.clone())).await.expect("record");
    assert!(matches!(first.outcomes[0], WriteOutcome::Resource { revision, .. } if revision == Revision::FIRST));
    ctx.store.commit(batch("drift").record_drift("declaration", DriftReport::default())).await.expect("record");
    assert_eq!(
        history(ctx, ResourceKind::Drift, "declaration").await,
        [(ChangeOp::Created, 1), (ChangeOp::Updated, 2)]
    );
    let changes =
        ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Drift, "declaration"), 10).await.expect("changes");
    assert_eq!(serde_json::from_value::<DriftReport>(changes[0].resource.clone()).expect("a report"), missing);
    // The log is the report's only home: `db check` expects no row for it.
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());

    // Retention keeps the latest record, so the revisions go on from it.
    ctx.clock.advance(Duration::from_secs(8 * 24 * 3600));
    ctx.store
        .apply_retention(&crate::RetentionPolicy {
            changes_older_than: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .expect("retention");
    assert_eq!(history(ctx, ResourceKind::Drift, "declaration").await, [(ChangeOp::Updated, 2)]);
    ctx.store.commit(batch("drift").record_drift("declaration", missing)).await.expect("record");
    assert_eq!(
        history(ctx, ResourceKind::Drift, "declaration").await,
        [(ChangeOp::Updated, 2), (ChangeOp::Updated, 3)]
    );
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());

    let bad = ctx.store.commit(batch("drift").record_drift("has space", DriftReport::default())).await;
    assert_err!(bad, E::Invalid(_));
}

fn selector(text: &str) -> LabelSelector {
    text.parse().expect("selector")
}

pub(crate) async fn lists_filter_by_labels_in_the_query(ctx: &Ctx) {
    // 30 VMs: every third has the tag gpu, every fifth team=ml as well; none team=ops.
    let mut many = snapshot();
    many.vms = (1000..1030)
        .map(|id| {
            let mut labels = Labels::new();
            if id % 3 == 0 {
                labels.insert("gpu", "").expect("label");
            }
            if id % 5 == 0 {
                labels.insert("team", "ml").expect("label");
            }
            reported(&id.to_string(), &format!("v{id}"), Vm { labels, ..vm(id, "pve-a") })
        })
        .collect();
    sync(ctx, sync_of(ctx, many)).await;
    let vms = |text: &str| InventoryFilter { labels: Some(selector(text)), ..InventoryFilter::kind(InventoryKind::Vm) };
    let expected = |keep: fn(u32) -> bool| (1000..1030).filter(move |id| keep(*id)).map(|id| format!("pve1/{id}"));

    // The filter is in the query: every page but the last is full.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(4);
    loop {
        let got = ctx.store.list_inventory(&vms("gpu"), &page).await.expect("list");
        if got.next.is_some() {
            assert_eq!(got.items.len(), 4, "a full page");
        }
        seen.extend(got.items.iter().map(InventoryRecord::id));
        match got.next {
            Some(cursor) => page = PageRequest::after(4, cursor),
            None => break,
        }
    }
    assert_eq!(seen, expected(|id| id % 3 == 0).collect::<Vec<_>>(), "a bare key is a presence test");
    let ml: Vec<String> = list(ctx, vms("team=ml,gpu")).await.iter().map(InventoryRecord::id).collect();
    assert_eq!(ml, expected(|id| id % 15 == 0).collect::<Vec<_>>(), "every term must match");
    assert!(list(ctx, vms("team=ops")).await.is_empty());
    assert!(list(ctx, vms("gpu=yes")).await.is_empty(), "a tag's value is empty, not any value");
    assert_eq!(list(ctx, vms("gpu=")).await.len(), 10, "the empty value is a value");
    assert_eq!(ctx.store.count_inventory(&vms("gpu")).await.expect("count"), 10);
    assert_eq!(ctx.store.count_inventory(&vms("team=ml")).await.expect("count"), 6);
    let present_gpu = InventoryFilter { gone: Some(false), ..vms("gpu") };
    assert_eq!(ctx.store.count_inventory(&present_gpu).await.expect("count"), 10);
    let containers =
        InventoryFilter { labels: Some(selector("infra")), ..InventoryFilter::kind(InventoryKind::Container) };
    assert_eq!(list(ctx, containers).await.len(), 1);

    // A workload's labels are derived from what its agent reported.
    let mut in_pod = workload("n1", 10, &[0]);
    in_pod.state.pod =
        Some(PodRef { namespace: Some("ml".to_owned()), name: Some("train-0".to_owned()), uid: "u1".to_owned() });
    let other = Reported {
        state: Workload { process_name: "sshd".to_owned(), ..workload("n1", 11, &[1]).state },
        ..workload("n1", 11, &[1])
    };
    sync(ctx, node_sync(ctx, "n1", vec![in_pod, other])).await;
    let workloads =
        |text: &str| InventoryFilter { labels: Some(selector(text)), ..InventoryFilter::kind(InventoryKind::Workload) };
    let keys = |records: Vec<InventoryRecord>| records.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(keys(list(ctx, workloads("process=python3")).await), ["n1/10"]);
    assert_eq!(keys(list(ctx, workloads("namespace=ml,pod=train-0,container=0123456789ab")).await), ["n1/10"]);
    assert_eq!(keys(list(ctx, workloads("container")).await), ["n1/10", "n1/11"]);
    assert_eq!(ctx.store.count_inventory(&workloads("process=sshd")).await.expect("count"), 1);

    // Hosts, storage and services have no labels to filter by.
    for kind in [InventoryKind::Host, InventoryKind::Storage, InventoryKind::Service] {
        let filter = InventoryFilter { labels: Some(selector("gpu")), ..InventoryFilter::kind(kind) };
        assert_err!(ctx.store.list_inventory(&filter, &PageRequest::first(10)).await, E::Invalid(_));
        assert_err!(ctx.store.count_inventory(&filter).await, E::Invalid(_));
    }
}

fn service(name: &str, selector_text: &str, kinds: &[MemberKind]) -> Reported<Service> {
    let state = Service::new(
        name.parse().expect("name"),
        selector(selector_text),
        kinds.iter().copied().collect(),
        Some(format!("the {name} service")),
    )
    .expect("service");
    reported(name, &format!("{selector_text}/{kinds:?}"), state)
}

fn services_sync(ctx: &Ctx, services: Vec<Reported<Service>>) -> SourceSync {
    SourceSync {
        source: "services".parse().expect("valid"),
        source_type: SourceType::Config,
        scope: SyncScope::Source,
        started_at: ctx.now(),
        outcome: Ok(InventorySnapshot { services, ..InventorySnapshot::default() }),
    }
}

pub(crate) async fn services_sync_as_the_records_of_a_config_source(ctx: &Ctx) {
    let training = || service("training", "team=ml,gpu", &[MemberKind::Vm, MemberKind::Workload]);
    let dns = || service("dns", "infra", &[MemberKind::Container]);
    let counts = sync(ctx, services_sync(ctx, vec![training(), dns()])).await;
    assert_eq!(counts, SyncCounts { created: 2, ..SyncCounts::default() });
    let got = ctx.store.inventory_record(InventoryKind::Service, &"services".parse().expect("valid"), "training").await;
    let got = got.expect("get");
    assert_eq!(got.state, RecordState::Service(training().state), "every field round-trips");
    assert_eq!(
        (got.id(), got.revision, got.state.status()),
        ("services/training".to_owned(), Revision::FIRST, "configured")
    );
    let sources = ctx.store.inventory_sources().await.expect("sources");
    assert_eq!((sources[0].source.as_str(), sources[0].source_type), ("services", SourceType::Config));

    // The same configuration again (a restart, another leader): nothing is written.
    let before = ctx.store.last_change_seq().await.expect("seq");
    let counts = sync(ctx, services_sync(ctx, vec![dns(), training()])).await;
    assert_eq!(counts, SyncCounts { unchanged: 2, ..SyncCounts::default() });
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), before);

    // A changed selector is an update with history; a service no longer configured is gone.
    let retrained = service("training", "team=ml", &[MemberKind::Vm]);
    let counts = sync(ctx, services_sync(ctx, vec![retrained.clone()])).await;
    assert_eq!(counts, SyncCounts { updated: 1, gone: 1, ..SyncCounts::default() });
    let services = list(ctx, InventoryFilter::kind(InventoryKind::Service)).await;
    let by_key = |key: &str| services.iter().find(|s| s.key == key).expect("listed").clone();
    assert_eq!((by_key("training").revision.get(), by_key("training").gone_at), (2, None));
    assert_eq!(by_key("training").state, RecordState::Service(retrained.state));
    assert!(by_key("dns").gone_at.is_some());
    assert_eq!(
        history(ctx, ResourceKind::Service, "services/training").await,
        [(ChangeOp::Created, 1), (ChangeOp::Updated, 2)]
    );
    let named = InventoryFilter { name: Some("dns".to_owned()), ..InventoryFilter::kind(InventoryKind::Service) };
    assert_eq!(list(ctx, named).await.len(), 1);
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());

    // Only a config source reports services, and nothing else; a service's key is its name.
    let mut mixed = snapshot();
    mixed.services.push(dns());
    let refused = ctx.store.commit(batch("sync").sync_inventory(sync_of(ctx, mixed))).await;
    assert_err!(refused, E::Invalid(_));
    let mut with_vm = services_sync(ctx, vec![dns()]);
    if let Ok(snapshot) = &mut with_vm.outcome {
        snapshot.vms.push(reported("100", "v", vm(100, "pve-a")));
    }
    assert_err!(ctx.store.commit(batch("sync").sync_inventory(with_vm)).await, E::Invalid(_));
    let renamed = Reported { key: "other".to_owned(), ..dns() };
    let refused = ctx.store.commit(batch("sync").sync_inventory(services_sync(ctx, vec![renamed]))).await;
    assert_err!(refused, E::Invalid(_));
    let status = ctx.store.inventory_sources().await.expect("sources");
    assert_eq!(status.len(), 1, "nothing refused was recorded");
}
