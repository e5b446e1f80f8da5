//! Export, import and copy between every ordered pair of backends, and bad input.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_core::inventory::{
    Container, ContainerRuntime, Host, InventoryKind, InventoryRecord, InventorySnapshot, PodRef, RecordState,
    Reported, SourceStatus, SourceSync, SourceType, Storage, SyncCounts, SyncScope, Usage, Vm, Workload,
};
use bosun_core::{
    Actor, BootstrapCommandLog, BootstrapLog, CheckResult, CommandKind, CommandTrigger, Health, HealthReport,
    Heartbeat, NodeTrigger, ResourceKind, Revision, SourceName, StoredPolicy,
};
use tokio::sync::mpsc;

use super::*;
use crate::conformance::{Ctx, batch, node_id, pool};
use crate::inventory::{InventoryFilter, USAGE_REFRESH};
use crate::query::{ChangeFilter, PageRequest};
use crate::write::WriteBatch;
use crate::{Backend, SharedStore};

const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Sqlite, Backend::Postgres];

/// An in-memory file for exports.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("lock").clone()
    }
}

/// Fills a store with every kind of record, with histories: updated revisions, a deleted
/// node (its change records stay), commands with several events, health history,
/// bootstrap logs, heartbeats, the ledger, and an inventory synced several times.
async fn fill(ctx: &Ctx) {
    fill_all_but_inventory(ctx).await;
    fill_inventory(ctx).await;
}

/// What [`fill`] writes before the inventory: what a store held before the inventory
/// existed.
async fn fill_all_but_inventory(ctx: &Ctx) {
    let store = &ctx.store;
    store.commit(batch("pool").create_pool(pool("training"))).await.expect("pool");
    let mut training = store.pool(&"training".parse().expect("valid")).await.expect("pool");
    training.status.last_scale_at = Some(ctx.now());
    store.commit(batch("scaled").update_pool(training)).await.expect("update pool");
    let policy = StoredPolicy {
        name: "strict".into(),
        document: "# strict\nmetadata:\n  name: strict\nrules: []\n".into(),
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    store.commit(batch("policy").put_policy(policy)).await.expect("policy");
    // A lease taken over once and renewed.
    let leader: bosun_core::LeaseName = "leader".parse().expect("valid");
    let (a, b): (bosun_core::ReplicaId, bosun_core::ReplicaId) =
        ("a".parse().expect("valid"), "b".parse().expect("valid"));
    store.commit(batch("elect").acquire_lease(leader.clone(), a, None)).await.expect("acquire");
    let seen = store.lease(&leader).await.expect("lease").expect("held").observation();
    store.commit(batch("take over").acquire_lease(leader.clone(), b.clone(), Some(seen))).await.expect("take over");
    let fence = store.lease(&leader).await.expect("lease").expect("held").fence().expect("held");
    store.commit(batch("renew").renew_lease(fence)).await.expect("renew");
    for id in ["n1", "n2", "n3", "gone"] {
        ctx.create_node(id).await;
    }
    let mut n2 = store.node(&node_id("n2")).await.expect("n2");
    n2.apply(NodeTrigger::Cordon, "maintenance\twith a tab\nand a newline \\ backslash", ctx.now()).expect("legal");
    store.commit(batch("cordon").update_node(n2)).await.expect("cordon");
    let instance = ctx.create_instance("i1").await;
    let mut command = ctx.issue_command("n1", CommandKind::Reboot).await;
    for trigger in [CommandTrigger::Deliver, CommandTrigger::Ack] {
        ctx.clock.advance(Duration::from_secs(5));
        command.apply(trigger, ctx.now()).expect("legal");
        store
            .commit(WriteBatch::new(Actor::Node(node_id("n1")), "agent").update_command(command.clone()))
            .await
            .expect("command");
        command = store.command(&command.id).await.expect("command");
    }
    ctx.issue_command("n3", CommandKind::Cordon).await;
    ctx.issue_command("gone", CommandKind::Drain).await;
    for (i, node) in ["n1", "n1", "n3"].into_iter().enumerate() {
        let check = CheckResult {
            name: "gpu".into(),
            status: if i == 1 { Health::Degraded } else { Health::Healthy },
            message: format!("report {i}"),
            details: Default::default(),
        };
        let report = HealthReport::new(node_id(node), ctx.now(), vec![check], vec![]);
        store.commit(batch("health").append_health_report(report)).await.expect("health");
    }
    for (i, node) in ["n1", "never-registered"].into_iter().enumerate() {
        let log = BootstrapLog {
            id: 0,
            node_id: node_id(node),
            instance_id: Some(instance.id.clone()),
            pool: Some("training".parse().expect("valid")),
            started_at: ctx.now(),
            duration_ms: 1200 + i as u64,
            success: i == 0,
            error: if i == 0 { String::new() } else { "exit 1".into() },
            commands: vec![BootstrapCommandLog {
                command: "install-agent".into(),
                stdout: "ok".into(),
                stderr: String::new(),
                exit_code: 0,
                duration_ms: 10,
            }],
        };
        store.commit(batch("bootstrap").append_bootstrap_log(log)).await.expect("bootstrap");
    }
    store.commit(batch("delete").delete_node(node_id("gone"), None)).await.expect("delete");
    fill_ledger(ctx).await;
    fill_usage(ctx).await;
    ctx.clock.advance(Duration::from_secs(1));
    let beats =
        [Heartbeat { node_id: node_id("n1"), at: ctx.now() }, Heartbeat { node_id: node_id("n3"), at: ctx.now() }];
    store.record_heartbeats(&beats).await.expect("heartbeats");
}

fn pve1() -> SourceName {
    "pve1".parse().expect("valid")
}

fn agents() -> SourceName {
    "agents".parse().expect("valid")
}

fn reported<T>(key: &str, digest: &str, state: T) -> Reported<T> {
    let usage =
        Usage { cpu: 0.375, memory_used: 3 << 30, disk_used: 7, net_in: 1 << 40, net_out: 12, uptime_s: 86_400 };
    Reported { key: key.to_owned(), digest: digest.to_owned(), state, usage }
}

/// The Proxmox cluster `pve1` as [`fill_inventory`] last read it, VM 101 `status` (its
/// digest `digest-101`); with `container`, the container it later lost.
fn pve1_snapshot(status: &str, container: bool) -> InventorySnapshot {
    let host = |name: &str, node: Option<&str>| Host {
        name: name.to_owned(),
        status: "online".to_owned(),
        cpus: 64,
        memory_total: 512 << 30,
        node_id: node.map(node_id),
    };
    let vm = |vmid: u32, host: &str, status: &str| Vm {
        host: host.to_owned(),
        vmid,
        name: format!("train-{vmid}"),
        status: status.to_owned(),
        template: vmid == 100,
        cpus: 16,
        memory_total: 64 << 30,
        disk_total: 500 << 30,
        ha_managed: true,
        lock: (vmid == 101).then(|| "backup".to_owned()),
        config_digest: Some(format!("cfg-{vmid}")),
        gpu_devices: vec!["0000:41:00,pcie=1".to_owned(), "0000:42:00".to_owned()],
        node_id: (vmid == 101).then(|| node_id("n2")),
        labels: if vmid == 101 { labels(&[("gpu", ""), ("team", "ml")]) } else { bosun_core::Labels::new() },
    };
    let storage = |name: &str, hosts: &[&str]| Storage {
        name: name.to_owned(),
        storage_type: "rbd".to_owned(),
        content: vec!["images".to_owned(), "rootdir".to_owned()],
        shared: hosts.len() > 1,
        status: "available".to_owned(),
        total: 10 << 40,
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
    };
    let lxc = Container {
        runtime: ContainerRuntime::Lxc,
        host: "pve-a".to_owned(),
        vmid: Some(200),
        name: "dns \"quoted\"\tand tabbed".to_owned(),
        hostname: Some("dns.lab".to_owned()),
        os_template: Some("debian-12".to_owned()),
        status: "running".to_owned(),
        template: false,
        cpus: 2,
        memory_total: 2 << 30,
        disk_total: 8 << 30,
        ha_managed: false,
        lock: None,
        config_digest: None,
        labels: labels(&[("infra", "")]),
    };
    InventorySnapshot {
        hosts: vec![reported("pve-a", "h-a", host("pve-a", None)), reported("pve-b", "h-b", host("pve-b", Some("n1")))],
        vms: vec![
            reported("pve-a/100", "digest-100", vm(100, "pve-a", "stopped")),
            reported("pve-b/101", &format!("digest-101-{status}"), vm(101, "pve-b", status)),
        ],
        containers: if container { vec![reported("pve-a/200", "digest-200", lxc)] } else { Vec::new() },
        storage: vec![
            reported("ceph", "s-ceph", storage("ceph", &["pve-b", "pve-a"])),
            reported("pve-a/local", "s-local", storage("local", &["pve-a"])),
            reported("orphan", "s-none", storage("orphan", &[])),
        ],
        workloads: Vec::new(),
        services: Vec::new(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> bosun_core::Labels {
    let mut labels = bosun_core::Labels::new();
    for (key, value) in pairs {
        labels.insert(*key, *value).expect("a label");
    }
    labels
}

/// The configured services as the server syncs them: one source of type `config`.
fn services_sync(ctx: &Ctx, names: &[&str]) -> SourceSync {
    use bosun_core::inventory::{MemberKind, Service};
    let services = names
        .iter()
        .map(|name| {
            let service = Service::new(
                name.parse().expect("a service name"),
                "team=ml,gpu".parse().expect("a selector"),
                [MemberKind::Vm, MemberKind::Workload].into_iter().collect(),
                Some(format!("the {name} service")),
            )
            .expect("a service");
            reported(name, &format!("svc-{name}"), service)
        })
        .collect();
    SourceSync {
        source: "services".parse().expect("a source name"),
        source_type: SourceType::Config,
        scope: SyncScope::Source,
        started_at: ctx.now(),
        outcome: Ok(InventorySnapshot { services, ..InventorySnapshot::default() }),
    }
}

fn workload(pid: u32, pod: bool) -> Reported<Workload> {
    reported(
        &format!("n1/{pid}@1700000000"),
        &format!("w{pid}"),
        Workload {
            node_id: node_id("n1"),
            gpu_indexes: vec![0, 3],
            pid,
            process_name: "python3".to_owned(),
            container_id: pod.then(|| "0123456789ab".to_owned()),
            pod: pod.then(|| PodRef {
                namespace: Some("ml".to_owned()),
                name: Some("trainer-0".to_owned()),
                uid: "c0ffee00-1111-2222-3333-444455556666".to_owned(),
            }),
            gpu_memory_bytes: 40 << 30,
            started_at: pod.then(|| bosun_core::Timestamp::from_unix_micros(1_700_000_000_000_000)),
        },
    )
}

async fn sync_inventory(ctx: &Ctx, sync: SourceSync) -> (u64, SyncCounts) {
    let committed = ctx.store.commit(batch("inventory").sync_inventory(sync)).await.expect("sync");
    ctx.clock.advance(Duration::from_secs(30));
    match committed.outcomes[0] {
        crate::write::WriteOutcome::Synced { sync_id, counts, .. } => (sync_id, counts),
        ref other => panic!("expected a sync, got {other:?}"),
    }
}

fn pve1_sync(ctx: &Ctx, outcome: Result<InventorySnapshot, String>) -> SourceSync {
    SourceSync {
        source: pve1(),
        source_type: SourceType::Proxmox,
        scope: SyncScope::Source,
        started_at: ctx.now(),
        outcome,
    }
}

fn n1_workloads(ctx: &Ctx, workloads: Vec<Reported<Workload>>) -> SourceSync {
    SourceSync {
        source: agents(),
        source_type: SourceType::Agent,
        scope: SyncScope::Node(node_id("n1")),
        started_at: ctx.now(),
        outcome: Ok(InventorySnapshot { workloads, ..InventorySnapshot::default() }),
    }
}

/// The inventory: `pve1` read three times (a VM changed and a container gone, then a
/// failed read: the source stale, its data kept), and two reports of n1's workloads (one
/// gone in the second), so that there are records of every kind, gone ones, a failed
/// source and sync history.
async fn fill_inventory(ctx: &Ctx) {
    sync_inventory(ctx, pve1_sync(ctx, Ok(pve1_snapshot("running", true)))).await;
    sync_inventory(ctx, n1_workloads(ctx, vec![workload(1234, true), workload(5678, false)])).await;
    ctx.clock.advance(USAGE_REFRESH);
    let (_, counts) = sync_inventory(ctx, pve1_sync(ctx, Ok(pve1_snapshot("stopped", false)))).await;
    assert_eq!((counts.updated, counts.gone), (1, 1));
    let (_, counts) = sync_inventory(ctx, n1_workloads(ctx, vec![workload(1234, true)])).await;
    assert_eq!(counts.gone, 1);
    let (_, counts) =
        sync_inventory(ctx, pve1_sync(ctx, Err("https://pve.example:8006: connection refused".into()))).await;
    assert_eq!(counts, SyncCounts::default());
    // Services (one removed from the configuration: gone) and a drift report, which lives
    // only in the change log.
    sync_inventory(ctx, services_sync(ctx, &["training", "inference"])).await;
    let (_, counts) = sync_inventory(ctx, services_sync(ctx, &["training"])).await;
    assert_eq!(counts.gone, 1);
    let drift = bosun_core::inventory::drift::DriftReport {
        missing: vec![bosun_core::inventory::drift::Missing {
            kind: InventoryKind::Vm,
            source: pve1(),
            vmid: Some(104),
            name: None,
        }],
        ..Default::default()
    };
    ctx.store.commit(batch("drift").record_drift("declaration", drift)).await.expect("drift");
}

/// Every inventory record, as the store lists them.
async fn inventory_of(store: &dyn Store) -> Vec<InventoryRecord> {
    let mut all = Vec::new();
    for kind in InventoryKind::ALL {
        let page = store.list_inventory(&InventoryFilter::kind(*kind), &PageRequest::first(1000)).await.expect("list");
        assert!(page.next.is_none(), "one page");
        all.extend(page.items);
    }
    all
}

/// The inventory as the API shows it: records, sources' status, sync history, and each
/// record's history in the change log.
async fn assert_same_inventory(source: &dyn Store, target: &dyn Store, what: &str) {
    let records = inventory_of(source).await;
    assert_eq!(inventory_of(target).await, records, "{what}: records");
    assert_eq!(target.inventory_sources().await.expect("sources"), source.inventory_sources().await.expect("sources"));
    assert_eq!(
        target.inventory_syncs(None, 100).await.expect("syncs"),
        source.inventory_syncs(None, 100).await.expect("syncs"),
        "{what}: sync history"
    );
    for record in &records {
        let filter = ChangeFilter::resource(record.kind().resource_kind(), record.id());
        let history = source.list_changes(&filter, 100).await.expect("history");
        assert!(!history.is_empty(), "{what}: {} has a history", record.id());
        assert_eq!(target.list_changes(&filter, 100).await.expect("history"), history, "{what}: {}", record.id());
    }
}

/// Syncs a store that was loaded from `source` as its server would go on: the last good
/// read of pve1 again (nothing written), then n1's gone workload back. Ids, revisions and
/// change sequence numbers continue after the loaded ones.
async fn sync_on(target: &Ctx, source: &dyn Store, what: &str) {
    target.clock.set(source_now(source).await + Duration::from_secs(60));
    let before = inventory_of(&*target.store).await;
    let last_sync = source.inventory_syncs(None, 1).await.expect("syncs")[0].id;
    let last_seq = target.store.last_change_seq().await.expect("seq");
    let (id, counts) = sync_inventory(target, pve1_sync(target, Ok(pve1_snapshot("stopped", false)))).await;
    assert_eq!(id, last_sync + 1, "{what}: the sync history goes on");
    assert!(!counts.changed_anything() && counts.unchanged == 7, "{what}: {counts:?}");
    assert_eq!(target.store.last_change_seq().await.expect("seq"), last_seq, "{what}: nothing written");
    let after = inventory_of(&*target.store).await;
    let identity =
        |r: &InventoryRecord| (r.id(), r.state.clone(), r.digest.clone(), r.revision, r.first_seen, r.gone_at);
    assert_eq!(after.iter().map(identity).collect::<Vec<_>>(), before.iter().map(identity).collect::<Vec<_>>());

    let gone = before.iter().find(|r| r.key == "n1/5678@1700000000").expect("the gone workload");
    assert!(gone.gone_at.is_some(), "{what}");
    let (id, counts) =
        sync_inventory(target, n1_workloads(target, vec![workload(1234, true), workload(5678, false)])).await;
    assert_eq!((id, counts.back, counts.unchanged), (last_sync + 2, 1, 1), "{what}");
    let back = target.store.inventory_record(InventoryKind::Workload, &agents(), &gone.key).await.expect("back");
    assert_eq!((back.revision, back.gone_at, back.first_seen), (gone.revision.next(), None, gone.first_seen), "{what}");
    let history = target
        .store
        .list_changes(&ChangeFilter::resource(ResourceKind::Workload, back.id()), 100)
        .await
        .expect("history");
    let seqs: Vec<(u64, u64)> = history.iter().map(|c| (c.seq, c.revision.get())).collect();
    assert_eq!(
        seqs.last().map(|(seq, revision)| (*seq > last_seq, *revision)),
        Some((true, back.revision.get())),
        "{what}"
    );
}

/// The time of the last sync `source` recorded.
async fn source_now(source: &dyn Store) -> bosun_core::Timestamp {
    source.inventory_syncs(None, 1).await.expect("syncs")[0].finished_at
}

/// A runbook, a tool, an approval policy rule, two runs (one with targets, events, an
/// approval, an artifact and a tool call), and audit entries.
async fn fill_ledger(ctx: &Ctx) {
    use bosun_core::{
        Approval, ApprovalDecision, ApprovalId, ApprovalOutcome, ApprovalPolicy, Artifact, AuditEntry, AuditOutcome,
        PolicyDecision, Role, RunEvent, RunEventType, RunKind, RunStatus, Runbook, TaskRun, ToolCall, ToolCallStatus,
        ToolDefinition, ToolRisk,
    };
    let store = &ctx.store;
    let operator = Actor::operator("alice");
    let runbook = Runbook {
        name: "drain-one".parse().expect("valid"),
        description: "Drain\tone node".into(),
        spec: "name: drain-one\nsteps:\n  - drain: {}\n".into(),
        version: 1,
        created_by: operator.clone(),
        created_at: ctx.now(),
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    let tool = ToolDefinition {
        name: "drain_node".parse().expect("valid"),
        description: "Drain a node".into(),
        input_schema: serde_json::json!({"type": "object", "required": ["node_id"]}),
        risk: ToolRisk::Destructive,
        enabled: true,
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    let policy = ApprovalPolicy {
        name: "many-destructive".parse().expect("valid"),
        position: -3,
        description: String::new(),
        condition: "risk == 'destructive' && targets > 5".into(),
        decision: PolicyDecision::RequireApproval { role: Role::Admin },
        updated_at: ctx.now(),
        revision: Revision::FIRST,
    };
    let mut run = TaskRun::new(
        RunKind::Runbook,
        RunStatus::Running,
        operator.clone(),
        vec!["node:n1".parse().expect("valid"), "pool:training".parse().expect("valid")],
        ctx.now(),
    );
    run.runbook = Some(runbook.name.clone());
    run.runbook_version = Some(1);
    run.input = serde_json::json!({"max_parallel": 1});
    let replacement =
        TaskRun::new(RunKind::Replacement, RunStatus::Running, Actor::system("remediation"), vec![], ctx.now());
    store
        .commit(
            batch("ledger")
                .with(crate::write::Write::PutRunbook { runbook: Box::new(runbook), expected: None })
                .with(crate::write::Write::PutTool { tool: Box::new(tool.clone()), expected: None })
                .with(crate::write::Write::PutApprovalPolicy { policy: Box::new(policy), expected: None })
                .create_run(run.clone())
                .create_run(replacement)
                .append_run_event(RunEvent::new(run.id, RunEventType::StepStarted, "drain n1").at_step(0))
                .append_run_event(
                    RunEvent::new(run.id, RunEventType::StepFinished, "drained")
                        .at_step(0)
                        .on("node:n1".parse().expect("valid"))
                        .with_data(serde_json::json!({"seconds": 12})),
                ),
        )
        .await
        .expect("ledger");
    let approval = Approval {
        id: ApprovalId::new_at(ctx.now()),
        run_id: run.id,
        step: Some(0),
        what: "drain n1".into(),
        policy: None,
        required_role: Role::Admin,
        requested_by: operator.clone(),
        requested_at: ctx.now(),
        expires_at: ctx.now() + Duration::from_secs(3600),
        decision: Some(ApprovalDecision {
            outcome: ApprovalOutcome::Approved,
            by: Actor::operator("bob"),
            reason: "ok".into(),
            at: ctx.now(),
        }),
        revision: Revision::FIRST,
    };
    let undecided = Approval { decision: None, ..approval.clone() };
    store.commit(batch("ask").with(crate::write::Write::CreateApproval(Box::new(undecided)))).await.expect("ask");
    let call = ToolCall {
        run_id: run.id,
        tool: tool.name.clone(),
        input: serde_json::json!({"node_id": "n1"}),
        output: Some(serde_json::json!({"status": "DRAINING"})),
        status: ToolCallStatus::Succeeded,
        error: None,
        duration_ms: 7,
        approval_id: Some(approval.id),
    };
    let artifact = Artifact {
        run_id: run.id,
        name: "report.bin".into(),
        media_type: "application/octet-stream".into(),
        content: vec![0, 159, 146, 150, 255, b'\n'],
    };
    store
        .commit(
            batch("decide")
                .with(crate::write::Write::UpdateApproval { approval: Box::new(approval), expected: Revision::FIRST })
                .with(crate::write::Write::RecordToolCall(Box::new(call)))
                .put_artifact(artifact),
        )
        .await
        .expect("decide");
    for (actor, outcome) in [("alice", AuditOutcome::Ok), ("mallory", AuditOutcome::Refused)] {
        let entry = AuditEntry {
            actor: actor.into(),
            role: (outcome == AuditOutcome::Ok).then_some(Role::Operator),
            method: "bosun.v1.AdminService/DrainNode".into(),
            resource: "node:n1".into(),
            outcome,
            code: if outcome == AuditOutcome::Ok { "ok".into() } else { "unauthenticated".into() },
            message: String::new(),
            request_id: format!("req-{actor}"),
            peer: None,
        };
        store.commit(batch("audit").append_audit(entry)).await.expect("audit");
    }
}

/// A price of `acme-large` from `from`.
fn acme_price(from: bosun_core::Timestamp, input: u64) -> bosun_core::Price {
    bosun_core::Price {
        provider: "acme".into(),
        model: "acme-large".into(),
        input_per_mtok_micro_usd: input,
        output_per_mtok_micro_usd: 15_000_000,
        cached_input_per_mtok_micro_usd: Some(300_000),
        effective_from: from,
        effective_to: None,
        updated_by: "alice".into(),
        updated_at: from,
    }
}

/// The texts of the priced request [`fill_usage`] records.
const PROMPT: &str = "why is n1 unhealthy?\n\t\"quoted\" é";
const RESPONSE: &str = "XID 79: the GPU fell off the bus";

/// Prices, LLM usage and a setting: a price of `acme-large` closed by a later one (beside
/// the seeded prices); a request priced by the later one, with its prompt (cut) and
/// response, made for an AI session run; a request of a model without a price (its cost
/// unknown) made for no run; and the MCP switch, set twice (revision 2).
async fn fill_usage(ctx: &Ctx) {
    use bosun_core::{Actor, LlmText, LlmUsage, RunKind, RunStatus, Setting, TaskRun};
    let store = &ctx.store;
    let t0 = ctx.now();
    store.commit(batch("price").put_price(acme_price(t0, 3_000_000))).await.expect("a price");
    let t1 = ctx.clock.advance(Duration::from_secs(60));
    store.commit(batch("cheaper").put_price(acme_price(t1, 2_000_000))).await.expect("a later price");
    let session = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], ctx.now());
    store.commit(batch("session").create_run(session.clone())).await.expect("an AI session");
    ctx.clock.advance(Duration::from_secs(1));
    let mut priced = LlmUsage::new("oncall", "acme", "acme-large", ctx.now());
    priced.run_id = Some(session.id);
    priced.request_id = Some("req-1".into());
    (priced.input_tokens, priced.cached_input_tokens, priced.output_tokens) = (2_000, 1_000, 1_000);
    priced.latency_ms = Some(850);
    priced.prompt = Some(LlmText::bounded(format!("{PROMPT} and more"), PROMPT.len()));
    priced.response = Some(LlmText::bounded(RESPONSE.into(), 1024));
    store.commit(batch("usage").record_llm_usage(priced.clone())).await.expect("priced usage");
    ctx.clock.advance(Duration::from_secs(1));
    let mut unpriced = LlmUsage::new("agent-7", "acme", "acme-unpriced", ctx.now());
    (unpriced.input_tokens, unpriced.output_tokens) = (10, 20);
    store.commit(batch("usage").record_llm_usage(unpriced.clone())).await.expect("unpriced usage");
    for (i, value) in [serde_json::json!({"enabled": true}), serde_json::json!({"enabled": false, "reason": "drill"})]
        .into_iter()
        .enumerate()
    {
        let current = store.setting(Setting::MCP_ENABLED).await.expect("setting").map(|s| s.revision);
        let setting = Setting::new(Setting::MCP_ENABLED, value, format!("admin-{i}"), ctx.now());
        store.commit(batch("switch").put_setting(setting, current)).await.expect("setting");
        ctx.clock.advance(Duration::from_secs(1));
    }
    // What the fixture's assertions rely on.
    let stored = store.llm_usage(&priced.id).await.expect("priced");
    let cost = stored.cost.expect("priced by the later price");
    // (2000 · 2 + 1000 · 0.3 + 1000 · 15) USD / 10^6 = 0.0193 USD.
    assert_eq!((cost.micro_usd, cost.price_from), (19_300, t1));
    assert!(stored.prompt.as_ref().is_some_and(|p| p.truncated && p.text == PROMPT), "{:?}", stored.prompt);
    assert_eq!(store.llm_usage(&unpriced.id).await.expect("unpriced").cost, None);
}

/// Prices, usage and settings as the API shows them, read through the Store methods.
async fn assert_same_usage(source: &dyn Store, target: &dyn Store, what: &str) {
    use bosun_core::{Setting, UsageFilter, UsageGroup};
    assert_eq!(target.pricing(None).await.expect("prices"), source.pricing(None).await.expect("prices"), "{what}");
    let acme: Vec<(bosun_core::Timestamp, Option<bosun_core::Timestamp>)> = target
        .pricing(None)
        .await
        .expect("prices")
        .iter()
        .filter(|p| p.provider == "acme")
        .map(|p| (p.effective_from, p.effective_to))
        .collect();
    assert!(acme.len() == 2 && acme[0].1 == Some(acme[1].0) && acme[1].1.is_none(), "{what}: {acme:?}");
    let since = bosun_core::Timestamp::from_unix_micros(*bosun_core::Timestamp::ACCEPTED_MICROS.start());
    for by in [UsageGroup::Model, UsageGroup::Run] {
        let filter = UsageFilter { since, by };
        let summary = target.usage_summary(&filter).await.expect("summary");
        assert_eq!(summary, source.usage_summary(&filter).await.expect("summary"), "{what}: by {by:?}");
        assert_eq!(summary.iter().map(|r| r.requests).sum::<u64>(), 2, "{what}");
    }
    let (_, records) = contents_of(source).await;
    let usages: Vec<&bosun_core::LlmUsage> = records
        .iter()
        .filter_map(|r| match r {
            Record::LlmUsage(u) => Some(u.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 2, "{what}");
    for usage in usages {
        let moved = target.llm_usage(&usage.id).await.expect("moved");
        assert_eq!(&moved, usage, "{what}: every field, the cost and the price it came from as stored");
    }
    assert_eq!(
        target.setting(Setting::MCP_ENABLED).await.expect("setting"),
        source.setting(Setting::MCP_ENABLED).await.expect("setting"),
        "{what}"
    );
    let setting = target.setting(Setting::MCP_ENABLED).await.expect("setting").expect("moved");
    assert_eq!((setting.revision.get(), setting.updated_by.as_str()), (2, "admin-1"), "{what}");
}

/// Everything a store holds, through its dump.
async fn contents_of(store: &dyn Store) -> (Snapshot, Vec<Record>) {
    let (sink, mut dumped) = mpsc::channel(4);
    let collect = async {
        let mut snapshot = None;
        let mut records = Vec::new();
        while let Some(message) = dumped.recv().await {
            match message {
                DumpMessage::Start(s) => snapshot = Some(s),
                DumpMessage::Records(r) => records.extend(r),
            }
        }
        (snapshot.expect("a snapshot"), records)
    };
    let (dumped, contents) = tokio::join!(store.dump(sink), collect);
    dumped.expect("dump");
    contents
}

async fn export_bytes(store: &dyn Store) -> Vec<u8> {
    let buf = SharedBuf::default();
    export(store, buf.clone(), bosun_core::Timestamp::UNIX_EPOCH, Arc::new(())).await.expect("export");
    buf.bytes()
}

async fn import_bytes(store: &dyn Store, bytes: Vec<u8>, target: Target) -> Result<ImportSummary, TransferError> {
    import(store, std::io::Cursor::new(bytes), target, Arc::new(())).await
}

async fn assert_same(source: &SharedStore, target: &SharedStore, what: &str) {
    let (source_snapshot, source_records) = contents_of(&**source).await;
    let (target_snapshot, target_records) = contents_of(&**target).await;
    assert_eq!(source_records.len(), target_records.len(), "{what}: record counts");
    for (a, b) in source_records.iter().zip(&target_records) {
        assert_eq!(a, b, "{what}");
    }
    assert_eq!(source_snapshot, target_snapshot, "{what}: counts and sequences");
    assert_eq!(target.check_integrity().await.expect("check"), vec![], "{what}: db check");
    assert_eq!(target.last_change_seq().await.expect("seq"), source.last_change_seq().await.expect("seq"), "{what}");
}

#[tokio::test]
async fn export_import_and_copy_between_every_pair_of_backends() {
    for from in BACKENDS {
        let Some(source) = Ctx::open(from).await else { continue };
        fill(&source).await;
        let (snapshot, records) = contents_of(&*source.store).await;
        for kind in RecordKind::ALL {
            assert!(snapshot.counts[&kind] > 0, "{from}: the fixture has no {kind} records");
        }
        assert!(records.iter().any(|r| matches!(r, Record::Node(n) if n.last_heartbeat.is_some())));
        let file = export_bytes(&*source.store).await;
        for to in BACKENDS {
            let Some(imported) = Ctx::open(to).await else { continue };
            let summary = import_bytes(&*imported.store, file.clone(), Target::MustBeEmpty).await.expect("import");
            assert_eq!(summary.records, records.len() as u64);
            let what = format!("export {from} -> import {to}");
            assert_same(&source.store, &imported.store, &what).await;
            assert_same_inventory(&*source.store, &*imported.store, &what).await;
            assert_same_usage(&*source.store, &*imported.store, &what).await;
            sync_on(&imported, &*source.store, &what).await;

            let Some(copied) = Ctx::open(to).await else { continue };
            let summary = copy(&*source.store, &*copied.store, Target::MustBeEmpty, Arc::new(()))
                .await
                .unwrap_or_else(|e| panic!("copy {from} -> {to}: {e}"));
            assert_eq!(summary.counts, snapshot.counts);
            let what = format!("copy {from} -> {to}");
            assert_same(&source.store, &copied.store, &what).await;
            assert_same_inventory(&*source.store, &*copied.store, &what).await;
            assert_same_usage(&*source.store, &*copied.store, &what).await;
            sync_on(&copied, &*source.store, &what).await;

            // The copy goes on where the source left off: no sequence number twice.
            let committed = copied.store.commit(batch("after").create_pool(pool("next"))).await.expect("write");
            assert!(committed.last_change_seq().expect("seq") > source.store.last_change_seq().await.expect("seq"));
        }
    }
}

/// Exports the fixture store as lines of text.
async fn fixture_lines() -> Vec<String> {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    String::from_utf8(export_bytes(&*source.store).await).expect("utf-8").lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

async fn refused(backend: Backend, bytes: Vec<u8>) -> Option<String> {
    let target = Ctx::open(backend).await?;
    let error = import_bytes(&*target.store, bytes, Target::MustBeEmpty).await.expect_err("refused");
    assert_eq!(contents(&*target.store).await.expect("contents"), None, "{backend}: nothing is committed: {error}");
    Some(error.to_string())
}

#[tokio::test]
async fn bad_exports_are_refused_with_their_line_and_nothing_is_committed() {
    let lines = fixture_lines().await;
    let last = lines.len();
    let mut cases: Vec<(&str, Vec<u8>, String)> = Vec::new();
    cases.push(("truncated at a line end", join(&lines[..last - 1]), format!("line {}: the file ends here", last - 1)));
    let mut cut = join(&lines[..last - 1]);
    cut.truncate(cut.len() - 20);
    cases.push(("truncated mid-line", cut, format!("line {}: not a valid record", last - 1)));
    let mut altered = lines.clone();
    altered[last - 1] = altered[last - 1].replacen("\"sha256\":\"", "\"sha256\":\"0", 1);
    let trailer_sum = altered[last - 1].rfind("\"sha256\":\"").expect("file checksum");
    altered[last - 1].replace_range(trailer_sum + 10..trailer_sum + 11, "f");
    cases.push(("altered checksum", join(&altered), format!("line {last}: checksum mismatch")));
    let mut edited = lines.clone();
    let node_line = edited.iter().position(|l| l.starts_with("{\"node\"")).expect("a node");
    edited[node_line] = edited[node_line].replace("us-central1-a", "us-central1-b");
    cases.push(("an edited record", join(&edited), format!("line {last}: checksum mismatch")));
    let mut garbage = lines.clone();
    garbage[2] = "{\"node\": not json".into();
    cases.push(("a bad line", join(&garbage), "line 3: not a valid record".into()));
    let mut reordered = lines.clone();
    reordered.swap(1, node_line);
    cases.push(("out of order", join(&reordered), "line ".into()));
    let mut newer = lines.clone();
    newer[0] = newer[0].replacen("\"schema_version\":", "\"schema_version\":99", 1);
    cases.push(("newer schema", join(&newer), "schema version 99".into()));
    cases.push(("empty", Vec::new(), "line 1: the file is empty".into()));
    cases.push(("not an export", b"hello\n".to_vec(), "line 1: not a bosun export header".into()));
    let mut long = join(&lines[..1]);
    long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
    cases.push(("a line too long", long, "line 2: the line is longer than".into()));
    // Inventory lines a sync could not have written: named by line and field, before any
    // checksum is looked at.
    let line_of = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).expect(prefix);
    for (name, prefix, from, to, problem) in [
        ("a negative CPU", "{\"inventory_record\"", "\"cpu\":0.375", "\"cpu\":-1.0", "invalid host[\"pve-a\"].cpu: -1"),
        (
            "storage hosts out of order",
            "{\"inventory_record\":{\"source\":\"pve1\",\"key\":\"ceph\"",
            "[\"pve-a\",\"pve-b\"]",
            "[\"pve-b\",\"pve-a\"]",
            "invalid storage[\"ceph\"].hosts: must be sorted",
        ),
        ("a sync numbered 0", "{\"inventory_sync\"", "\"id\":1,", "\"id\":0,", "invalid sync 0.id: is 0"),
        (
            "a NUL in a prompt",
            "{\"llm_usage\"",
            "why is n1",
            "why\\u0000is n1",
            "invalid prompt: contains a NUL character",
        ),
        (
            "a price set by no one",
            "{\"price\":{\"provider\":\"acme\"",
            "\"updated_by\":\"alice\"",
            "\"updated_by\":\"\"",
            "invalid updated_by: is required",
        ),
        ("a setting without a name", "{\"setting\"", "\"name\":\"mcp.enabled\"", "\"name\":\"\"", "invalid name"),
    ] {
        let mut edited = lines.clone();
        let at = line_of(prefix);
        assert!(edited[at].contains(from), "{name}: {}", edited[at]);
        edited[at] = edited[at].replacen(from, to, 1);
        cases.push((name, join(&edited), format!("line {}: {problem}", at + 1)));
    }
    let mut after = lines.clone();
    after.push(lines[1].clone());
    cases.push(("data after the trailer", join(&after), format!("line {}: data after the trailer", last + 1)));

    for backend in BACKENDS {
        for (name, bytes, expected) in &cases {
            let Some(message) = refused(backend, bytes.clone()).await else { continue };
            assert!(message.contains(expected.as_str()), "{backend}, {name}: {message}");
        }
    }
}

#[tokio::test]
async fn newer_schema_names_both_versions() {
    let mut lines = fixture_lines().await;
    lines[0] = lines[0].replacen("\"schema_version\":", "\"schema_version\":1", 1);
    let message = refused(Backend::Memory, join(&lines)).await.expect("memory");
    let found = format!("1{}", known_schema_version());
    assert!(message.contains(&format!("schema version {found}")), "{message}");
    assert!(message.contains(&format!("({})", known_schema_version())), "{message}");
}

#[tokio::test]
async fn an_export_of_an_older_schema_is_read_forward() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let text = String::from_utf8(export_bytes(&*source.store).await).expect("utf-8");
    // Schema 1 had no remediation on nodes and no stored policy: strip both, and write the
    // trailer again as a bosun of that time would have.
    let records: Vec<&str> =
        text.lines().skip(1).filter(|l| !l.starts_with("{\"trailer\"") && !l.starts_with("{\"policy\"")).collect();
    let mut header: serde_json::Value = serde_json::from_str(text.lines().next().expect("header")).expect("json");
    header["header"]["schema_version"] = 1.into();
    header["header"]["counts"]["policy"] = 0.into();
    let mut out = Vec::new();
    writeln!(out, "{header}").expect("write");
    let mut digests = Digests::default();
    for line in records {
        let mut value: serde_json::Value = serde_json::from_str(line).expect("json");
        if let Some(node) = value.get_mut("node").and_then(|n| n.get_mut("node")) {
            node.as_object_mut().expect("object").remove("remediation");
        }
        let record: Record = serde_json::from_value(value.clone()).expect("an older record reads");
        let mut canonical = Vec::new();
        format::encode(&record, &mut canonical);
        digests.add(record.kind(), &canonical);
        writeln!(out, "{value}").expect("write");
    }
    let sha256 = hex(&Sha256::digest(&out));
    let trailer = serde_json::json!({"trailer": {"kinds": digests.finish(), "sha256": sha256}});
    writeln!(out, "{trailer}").expect("write");

    let target = Ctx::open(Backend::Sqlite).await.expect("sqlite");
    let summary = import_bytes(&*target.store, out, Target::MustBeEmpty).await.expect("import");
    assert_eq!(summary.schema_version, 1);
    assert_eq!(target.store.counts().await.expect("counts"), source.store.counts().await.expect("counts"));
    assert_eq!(target.store.policy().await.expect("policy"), None);
}

/// The inventory's record kinds, which exports written before them do not name.
const INVENTORY_KINDS: [RecordKind; 3] =
    [RecordKind::InventoryRecord, RecordKind::InventorySource, RecordKind::InventorySync];

#[tokio::test]
async fn an_export_written_before_the_inventory_moved_imports_and_syncs_go_on() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill_all_but_inventory(&source).await;
    let text = String::from_utf8(export_bytes(&*source.store).await).expect("utf-8");
    // As a bosun of that time wrote it: no inventory kinds in the header's counts or the
    // trailer, no inventory sync id among the sequences; the file checksum written again.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    let mut header: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    let mut trailer: serde_json::Value = serde_json::from_str(&lines[last]).expect("json");
    for kind in INVENTORY_KINDS {
        assert_eq!(header["header"]["counts"][kind.as_str()], 0, "{kind}");
        header["header"]["counts"].as_object_mut().expect("counts").remove(kind.as_str());
        trailer["trailer"]["kinds"].as_object_mut().expect("kinds").remove(kind.as_str());
    }
    header["header"]["sequences"].as_object_mut().expect("sequences").remove("inventory_sync_id");
    lines[0] = header.to_string();
    trailer["trailer"]["sha256"] = hex(&Sha256::digest(join(&lines[..last]))).into();
    lines[last] = trailer.to_string();
    let old = join(&lines);

    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        let summary = import_bytes(&*target.store, old.clone(), Target::MustBeEmpty).await.expect("import");
        assert!(INVENTORY_KINDS.iter().all(|kind| !summary.counts.contains_key(kind)), "{backend}");
        assert_same(&source.store, &target.store, &format!("{backend}: an older export")).await;
        target.clock.set(source.now());
        let (id, counts) = sync_inventory(&target, pve1_sync(&target, Ok(pve1_snapshot("running", true)))).await;
        assert_eq!((id, counts.created), (1, 8), "{backend}: the first sync");
        assert_eq!(target.store.check_integrity().await.expect("check"), vec![], "{backend}");
    }
}

#[tokio::test]
async fn a_target_that_holds_only_an_inventory_is_not_empty() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let file = export_bytes(&*source.store).await;
    let (snapshot, records) = contents_of(&*source.store).await;
    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        // A failed read: a source's status and a row of sync history, nothing else.
        sync_inventory(&target, pve1_sync(&target, Err("timed out".into()))).await;
        let before = contents_of(&*target.store).await;
        let error = import_bytes(&*target.store, file.clone(), Target::MustBeEmpty).await.expect_err("refused");
        assert_eq!(error.to_string(), "the store is not empty (1 inventory sources)", "{backend}");
        // The load's own check, in its transaction, sees the inventory's tables too.
        let error = load_records(&*target.store, records.clone(), Some(snapshot.sequences), Target::MustBeEmpty)
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("the store is not empty"), "{backend}: {error}");
        assert_eq!(contents_of(&*target.store).await, before, "{backend}: untouched");

        import_bytes(&*target.store, file.clone(), Target::Replace).await.expect("replace");
        assert_same(&source.store, &target.store, &format!("replace {backend}")).await;
        assert_same_inventory(&*source.store, &*target.store, &format!("replace {backend}")).await;
    }
}

#[tokio::test]
async fn a_non_empty_target_is_refused_before_anything_is_written_unless_replaced() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let file = export_bytes(&*source.store).await;
    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        target.create_node("already-here").await;
        let before = contents_of(&*target.store).await;
        let error = import_bytes(&*target.store, file.clone(), Target::MustBeEmpty).await.expect_err("refused");
        assert!(matches!(error, TransferError::NotEmpty { .. }), "{backend}: {error}");
        assert_eq!(error.to_string(), "the store is not empty (1 nodes, 1 change records)", "{backend}");
        let error = copy(&*source.store, &*target.store, Target::MustBeEmpty, Arc::new(())).await.expect_err("refused");
        assert!(matches!(error, TransferError::NotEmpty { .. }), "{backend}: {error}");
        assert_eq!(contents_of(&*target.store).await, before, "{backend}: untouched");

        copy(&*source.store, &*target.store, Target::Replace, Arc::new(())).await.expect("replace");
        assert_same(&source.store, &target.store, &format!("replace {backend}")).await;
    }
}

#[tokio::test]
async fn an_abandoned_load_writes_nothing() {
    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        let source = Ctx::open(Backend::Memory).await.expect("memory");
        fill(&source).await;
        let (_, records) = contents_of(&*source.store).await;
        let (sink, loaded) = mpsc::channel(4);
        sink.send(LoadMessage::Records(records)).await.expect("send");
        drop(sink);
        let error = target.store.load(loaded, Target::MustBeEmpty).await.expect_err("abandoned");
        assert!(error.to_string().contains("abandoned"), "{backend}: {error}");
        assert_eq!(contents(&*target.store).await.expect("contents"), None, "{backend}");
    }
}

#[tokio::test]
async fn a_load_reads_back_its_own_writes_and_rolls_back_unless_told_to_commit() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let (snapshot, records) = contents_of(&*source.store).await;
    for backend in BACKENDS {
        let Some(target) = crate::testing::TestStore::open(backend).await else { continue };
        let migrated = match backend {
            Backend::Postgres => Some(postgres_schema(&target.location).await),
            _ => None,
        };
        for commit in [false, true] {
            let (sink, loaded) = mpsc::channel(4);
            let sending = async {
                // Dropped at the end, without `Commit` unless told: the load's verdict.
                let sink = sink;
                sink.send(LoadMessage::Records(records.clone())).await.expect("send");
                let (readback, mut read_back) = mpsc::channel(4);
                sink.send(LoadMessage::ReadBack(readback)).await.expect("send");
                let mut held = Vec::new();
                while let Some(message) = read_back.recv().await {
                    if let DumpMessage::Records(r) = message {
                        held.extend(r);
                    }
                }
                assert_eq!(held, records, "{backend}: the load reads back what it was sent");
                if commit {
                    sink.send(LoadMessage::Commit(snapshot.sequences)).await.expect("send");
                }
            };
            let (loaded, ()) = tokio::join!(target.store.load(loaded, Target::MustBeEmpty), sending);
            if commit {
                loaded.expect("load");
                assert_same(&source.store, &target.store, &format!("{backend}: read back, then committed")).await;
            } else {
                let error = loaded.expect_err("rolled back");
                assert!(error.to_string().contains("abandoned"), "{backend}: {error}");
                assert_eq!(contents(&*target.store).await.expect("contents"), None, "{backend}");
            }
            if let Some(migrated) = &migrated {
                assert_eq!(&postgres_schema(&target.location).await, migrated, "commit: {commit}");
            }
        }
    }
}

/// A target that alters what it is given, for a copy to catch: a trigger on `table` that
/// changes each row as it is written.
struct Tamper {
    table: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    /// What the copy's error names.
    finding: &'static str,
}

const TAMPERS: [Tamper; 2] = [
    Tamper {
        table: "nodes",
        sqlite: "UPDATE nodes SET status_reason = 'tampered' WHERE node_id = NEW.node_id",
        postgres: "NEW.status_reason := 'tampered'",
        finding: "node: the 3 records stored differ",
    },
    // A change's document travels as text and is compared in canonical form: a store that
    // spells it differently is fine (the every-pair test), one that alters it is not.
    Tamper {
        table: "changes",
        sqlite: "UPDATE changes SET resource = json_set(resource, '$.tampered', 1) WHERE seq = NEW.seq",
        postgres: "NEW.resource := (NEW.resource::jsonb || '{\"tampered\": 1}')::json",
        finding: "change: the",
    },
];

#[tokio::test]
async fn a_copy_whose_target_holds_something_else_fails_and_leaves_the_target_empty() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    for tamper in &TAMPERS {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(target) = crate::testing::TestStore::open(backend).await else { continue };
            let Tamper { table, sqlite, postgres, finding } = tamper;
            match &target.location {
                crate::StoreLocation::Sqlite { path } => {
                    rusqlite::Connection::open(path)
                        .expect("open")
                        .execute_batch(&format!("CREATE TRIGGER tamper AFTER INSERT ON {table} BEGIN {sqlite}; END;"))
                        .expect("trigger");
                }
                crate::StoreLocation::Postgres { url } => {
                    use sqlx::Connection as _;
                    let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS \
                         $$ BEGIN {postgres}; RETURN NEW; END $$; \
                         CREATE TRIGGER tamper BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION tamper();"
                    )))
                    .execute(&mut conn)
                    .await
                    .expect("trigger");
                }
                other => panic!("{other} has no SQL"),
            }
            let error =
                copy(&*source.store, &*target.store, Target::MustBeEmpty, Arc::new(())).await.expect_err("mismatch");
            assert!(matches!(&error, TransferError::Mismatch(m) if m.contains(finding)), "{backend}, {table}: {error}");
            assert_eq!(contents(&*target.store).await.expect("contents"), None, "{backend}: rolled back");
        }
    }
}

/// The keys, unique constraints, foreign keys and indexes of a PostgreSQL store, as its
/// catalog lists them.
async fn postgres_schema(location: &crate::StoreLocation) -> Vec<String> {
    use sqlx::Connection as _;
    let crate::StoreLocation::Postgres { url } = location else { panic!("{location} is not PostgreSQL") };
    let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect");
    sqlx::query_scalar(
        "SELECT format('constraint %s.%s: %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE connamespace = current_schema()::regnamespace \
         UNION ALL \
         SELECT format('index %s: %s', indexrelid::regclass, pg_get_indexdef(indexrelid)) \
         FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid \
         WHERE relnamespace = current_schema()::regnamespace \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the catalog")
}

/// A dump's records but the seeded prices, which a load that brings no prices leaves in
/// place (they are the target's).
fn without_seeded_prices(records: Vec<Record>) -> Vec<Record> {
    let seeded = crate::usage::seed_prices();
    records.into_iter().filter(|r| !matches!(r, Record::Price(p) if seeded.contains(p))).collect()
}

/// Loads `records` into `target` and commits, or, without `commit`, abandons the load.
async fn load_records(
    target: &dyn Store,
    records: Vec<Record>,
    commit: Option<Sequences>,
    mode: Target,
) -> Result<(), StoreError> {
    let (sink, loaded) = mpsc::channel(4);
    let sending = async move {
        sink.send(LoadMessage::Records(records)).await.map_err(|_| load_abandoned())?;
        if let Some(sequences) = commit {
            sink.send(LoadMessage::Commit(sequences)).await.map_err(|_| load_abandoned())?;
        }
        Ok::<(), StoreError>(())
    };
    let (loaded, _) = tokio::join!(target.load(loaded, mode), sending);
    loaded
}

#[tokio::test]
async fn a_postgres_load_puts_back_exactly_the_keys_indexes_and_foreign_keys_it_set_aside() {
    let Some(target) = crate::testing::TestStore::open(Backend::Postgres).await else { return };
    let migrated = postgres_schema(&target.location).await;
    for expected in ["PRIMARY KEY (node_id)", "FOREIGN KEY (node_id) REFERENCES nodes(node_id)", "USING gin"] {
        assert!(migrated.iter().any(|line| line.contains(expected)), "no {expected} in {migrated:#?}");
    }
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let (snapshot, records) = contents_of(&*source.store).await;
    let store = &*target.store;

    let error = load_records(store, records.clone(), None, Target::MustBeEmpty).await.expect_err("abandoned");
    assert!(error.to_string().contains("abandoned"), "{error}");
    assert_eq!(postgres_schema(&target.location).await, migrated, "after an abandoned load");

    // Commands and health reports of nodes that are not there: refused when the foreign
    // keys are checked, at the very end.
    let orphans: Vec<Record> = records.iter().filter(|r| !matches!(r, Record::Node(_))).cloned().collect();
    let error = load_records(store, orphans, Some(snapshot.sequences), Target::MustBeEmpty).await.expect_err("refused");
    assert!(error.to_string().contains("refers to a missing record"), "{error}");
    assert_eq!(postgres_schema(&target.location).await, migrated, "after a load that broke a foreign key");

    let mut twice = records.clone();
    twice.extend(records.iter().filter(|r| matches!(r, Record::Node(_))).cloned());
    let error = load_records(store, twice, Some(snapshot.sequences), Target::MustBeEmpty).await.expect_err("refused");
    assert!(error.to_string().contains("duplicate key"), "{error}");
    assert_eq!(postgres_schema(&target.location).await, migrated, "after a load that broke a key");
    assert_eq!(contents(store).await.expect("contents"), None, "nothing was written");

    for mode in [Target::MustBeEmpty, Target::Replace] {
        load_records(store, records.clone(), Some(snapshot.sequences), mode).await.expect("load");
        assert_eq!(postgres_schema(&target.location).await, migrated, "after a {mode:?} load");
        assert_same(&source.store, &target.store, &format!("{mode:?} load")).await;
    }
}

#[tokio::test]
async fn a_postgres_dump_pages_through_nodes_with_and_without_gpus_and_heartbeats() {
    let Some(target) = Ctx::open(Backend::Postgres).await else { return };
    // More nodes than a dump's page holds, so that GPUs and heartbeats meet page bounds.
    let records: Vec<Record> = (0..2_500)
        .map(|i| {
            let id = format!("paged-{i:05}");
            let node = crate::conformance::new_node(&id, target.now());
            let gpus = if i % 3 == 0 { Vec::new() } else { crate::conformance::registration(&id).gpus };
            let last_heartbeat = (i % 2 == 0).then(|| target.now());
            Record::Node(Box::new(NodeRecord { node, gpus, last_heartbeat }))
        })
        .collect();
    load_records(&*target.store, records.clone(), Some(Sequences::default()), Target::MustBeEmpty).await.expect("load");
    let (snapshot, dumped) = contents_of(&*target.store).await;
    assert_eq!(snapshot.counts[&RecordKind::Node], 2_500);
    assert!(without_seeded_prices(dumped) == records, "the dump differs from what was loaded");
}

#[tokio::test]
async fn a_dump_pages_through_inventory_records_in_key_order_with_their_hosts() {
    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        let at = target.now();
        // More storage records and sources than a PostgreSQL dump's page holds, so that
        // hosts meet page bounds; keys whose byte order is not a locale's order.
        let sources: Vec<SourceName> =
            ["pve1", "pve10", "pve2", "PVE"].iter().map(|s| s.parse().expect("valid")).collect();
        let mut storage = Vec::new();
        for i in 0..2_400 {
            let source = sources[i % sources.len()].clone();
            let key = match i % 5 {
                0 => format!("b/{i}"),
                1 => format!("B-{i}"),
                2 => format!("é{i}"),
                3 => format!("b-{i}"),
                _ => format!("a b/{i}"),
            };
            let hosts = (0..i % 3).map(|h| format!("host-{h}")).collect();
            let state = RecordState::Storage(Storage {
                name: key.clone(),
                storage_type: "dir".to_owned(),
                content: vec!["images".to_owned()],
                shared: i % 2 == 0,
                status: "available".to_owned(),
                total: i as u64,
                hosts,
            });
            storage.push(InventoryRecord {
                source,
                key,
                state,
                digest: format!("d{i}"),
                usage: Usage::default(),
                usage_at: at,
                first_seen: at,
                last_seen: at,
                gone_at: (i % 7 == 0).then_some(at),
                revision: Revision::FIRST,
            });
        }
        storage.sort_by(|a, b| (a.source.as_str(), a.key.as_bytes()).cmp(&(b.source.as_str(), b.key.as_bytes())));
        let mut statuses: Vec<SourceStatus> = (0..2_100)
            .map(|i| SourceStatus {
                source: agents(),
                source_type: SourceType::Agent,
                scope: SyncScope::Node(node_id(&format!("node-{i}"))),
                last_sync_at: at,
                last_success_at: Some(at),
                error: None,
                counts: SyncCounts::default(),
                syncs: 1,
            })
            .collect();
        statuses.sort_by(|a, b| a.scope.as_stored().cmp(b.scope.as_stored()));
        let records: Vec<Record> = storage
            .into_iter()
            .map(|r| Record::InventoryRecord(Box::new(r)))
            .chain(statuses.into_iter().map(|s| Record::InventorySource(Box::new(s))))
            .collect();
        load_records(&*target.store, records.clone(), Some(Sequences::default()), Target::MustBeEmpty)
            .await
            .expect("load");
        let (snapshot, dumped) = contents_of(&*target.store).await;
        assert_eq!(
            (snapshot.counts[&RecordKind::InventoryRecord], snapshot.counts[&RecordKind::InventorySource]),
            (2_400, 2_100),
            "{backend}"
        );
        assert!(without_seeded_prices(dumped) == records, "{backend}: the dump differs from what was loaded");
    }
}

#[test]
fn thousands_separates_groups() {
    let cases = [(0, "0"), (999, "999"), (1_000, "1,000"), (1_234_567, "1,234,567")];
    for (n, text) in cases {
        assert_eq!(thousands(n), text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_taken_under_write_load_restores_clean_everywhere() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let source = crate::testing::TestStore::open(Backend::Sqlite).await.expect("sqlite");
    let path = source.location.sqlite_path().expect("a file").to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let (started, mut enough) = mpsc::channel::<()>(1);
    let load = {
        let (store, clock, stop, written) = (source.store.clone(), source.clock.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                use bosun_core::Clock as _;
                let node = crate::conformance::new_node(&format!("load-{i:05}"), clock.now());
                let gpus = crate::conformance::registration(node.id.as_str()).gpus;
                store.commit(batch("load").create_node(node, gpus)).await.expect("write under load");
                let beat = Heartbeat { node_id: node_id(&format!("load-{i:05}")), at: clock.now() };
                store.record_heartbeats(&[beat]).await.expect("heartbeat");
                i += 1;
                written.store(i, Ordering::Relaxed);
                if i == 50 {
                    let _ = started.try_send(());
                }
            }
        })
    };
    enough.recv().await.expect("the load started");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("backup.db");
    let pages = sqlite_backup(&path, &out).await.expect("backup");
    let during = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");
    assert!(pages > 0);
    assert!(written.load(Ordering::Relaxed) >= during);
    assert_eq!(std::fs::metadata(&out).expect("backup").permissions().mode() & 0o777, 0o600);
    assert!(is_sqlite_file(&std::fs::read(&out).expect("read")[..16]));

    let backup_location = crate::StoreLocation::Sqlite { path: out.clone() };
    let backup = crate::open_store(&backup_location, crate::testing::test_options(source.clock.clone()))
        .await
        .expect("open the backup");
    assert_eq!(backup.check_integrity().await.expect("check"), vec![]);
    let nodes = backup.counts().await.expect("counts").nodes;
    assert!(nodes >= 50, "the backup holds {nodes} nodes");
    for to in BACKENDS {
        let Some(restored) = Ctx::open(to).await else { continue };
        copy(&*backup, &*restored.store, Target::MustBeEmpty, Arc::new(())).await.expect("restore");
        assert_same(&backup, &restored.store, &format!("restore into {to}")).await;
    }
    let error = sqlite_backup(&path, &out).await.expect_err("never overwrites");
    assert!(error.to_string().contains("cannot create"), "{error}");
}

/// Prices, usage and a setting that no fixture has: a price of another provider, a request
/// of its model made for a run of the store's own, and a setting of another name.
async fn fill_other_usage(ctx: &Ctx) {
    use bosun_core::{Actor, LlmUsage, RunKind, RunStatus, Setting, TaskRun};
    let store = &ctx.store;
    let price = bosun_core::Price { provider: "other".into(), model: "m".into(), ..acme_price(ctx.now(), 1) };
    store.commit(batch("price").put_price(price)).await.expect("a price");
    let run = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("bob"), vec![], ctx.now());
    store.commit(batch("session").create_run(run.clone())).await.expect("a run");
    let mut usage = LlmUsage::new("bob", "other", "m", ctx.now());
    usage.run_id = Some(run.id);
    usage.input_tokens = 1_000_000;
    store.commit(batch("usage").record_llm_usage(usage)).await.expect("usage");
    let setting = Setting::new("other.switch", serde_json::json!(1), "bob", ctx.now());
    store.commit(batch("setting").put_setting(setting, None)).await.expect("a setting");
}

/// The kinds exports written before prices, usage and settings moved do not name.
const USAGE_KINDS: [RecordKind; 3] = [RecordKind::Price, RecordKind::LlmUsage, RecordKind::Setting];

#[tokio::test]
async fn a_replacing_load_ends_with_exactly_the_dumps_prices_usage_and_settings() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let file = export_bytes(&*source.store).await;
    for backend in BACKENDS {
        for by_copy in [false, true] {
            let Some(target) = Ctx::open(backend).await else { continue };
            fill_other_usage(&target).await;
            let what = format!("{backend}, {}", if by_copy { "copy" } else { "import" });
            if by_copy {
                copy(&*source.store, &*target.store, Target::Replace, Arc::new(())).await.expect("replace");
            } else {
                import_bytes(&*target.store, file.clone(), Target::Replace).await.expect("replace");
            }
            assert_same(&source.store, &target.store, &what).await;
            assert_same_usage(&*source.store, &*target.store, &what).await;
            let prices = target.store.pricing(None).await.expect("prices");
            assert!(prices.iter().all(|p| p.provider != "other"), "{what}: the target's own price is gone");
            assert_eq!(target.store.setting("other.switch").await.expect("setting"), None, "{what}");
        }
    }
}

#[tokio::test]
async fn a_target_that_holds_only_llm_usage_or_a_setting_is_not_empty() {
    use bosun_core::{LlmUsage, Setting};
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let file = export_bytes(&*source.store).await;
    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        let usage = LlmUsage::new("bob", "other", "m", target.now());
        target.store.commit(batch("usage").record_llm_usage(usage)).await.expect("usage");
        let before = contents_of(&*target.store).await;
        let error = import_bytes(&*target.store, file.clone(), Target::MustBeEmpty).await.expect_err("refused");
        assert_eq!(error.to_string(), "the store is not empty (1 LLM requests)", "{backend}");
        assert_eq!(contents_of(&*target.store).await, before, "{backend}: untouched");

        let Some(target) = Ctx::open(backend).await else { continue };
        let setting = Setting::new(Setting::MCP_ENABLED, serde_json::json!({"enabled": false}), "bob", target.now());
        target.store.commit(batch("switch").put_setting(setting, None)).await.expect("a setting");
        let before = contents_of(&*target.store).await;
        // The first look lists no settings: the load's own check, in its transaction, refuses.
        let error = import_bytes(&*target.store, file.clone(), Target::MustBeEmpty).await.expect_err("refused");
        assert!(matches!(&error, TransferError::NotEmpty { contents } if contents.contains("settings")), "{error}");
        let error = copy(&*source.store, &*target.store, Target::MustBeEmpty, Arc::new(())).await.expect_err("refused");
        assert!(matches!(&error, TransferError::NotEmpty { contents } if contents.contains("settings")), "{error}");
        assert_eq!(contents_of(&*target.store).await, before, "{backend}: untouched");
    }
}

#[tokio::test]
async fn an_export_written_before_prices_usage_and_settings_moved_imports_and_keeps_the_targets_prices() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let text = String::from_utf8(export_bytes(&*source.store).await).expect("utf-8");
    // As a bosun of that time wrote it: none of these kinds' lines, counts or digests; the
    // file checksum written again.
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| USAGE_KINDS.iter().all(|kind| !l.starts_with(&format!("{{\"{kind}\":"))))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), text.lines().count() - 11, "8 prices, 2 requests and a setting left out");
    let last = lines.len() - 1;
    let mut header: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    let mut trailer: serde_json::Value = serde_json::from_str(&lines[last]).expect("json");
    for kind in USAGE_KINDS {
        header["header"]["counts"].as_object_mut().expect("counts").remove(kind.as_str());
        trailer["trailer"]["kinds"].as_object_mut().expect("kinds").remove(kind.as_str());
    }
    lines[0] = header.to_string();
    trailer["trailer"]["sha256"] = hex(&Sha256::digest(join(&lines[..last]))).into();
    lines[last] = trailer.to_string();
    let old = join(&lines);

    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        let summary = import_bytes(&*target.store, old.clone(), Target::MustBeEmpty).await.expect("import");
        assert!(USAGE_KINDS.iter().all(|kind| !summary.counts.contains_key(kind)), "{backend}");
        assert_eq!(target.store.pricing(None).await.expect("prices"), crate::usage::seed_prices(), "{backend}");
        assert_eq!(target.store.setting(bosun_core::Setting::MCP_ENABLED).await.expect("setting"), None);
        let (_, records) = contents_of(&*target.store).await;
        assert!(!records.iter().any(|r| matches!(r, Record::LlmUsage(_) | Record::Setting(_))), "{backend}");
        assert_eq!(target.store.check_integrity().await.expect("check"), vec![], "{backend}");

        // Replacing a store's contents with it keeps that store's prices, as they are.
        let Some(target) = Ctx::open(backend).await else { continue };
        fill_other_usage(&target).await;
        let prices = target.store.pricing(None).await.expect("prices");
        import_bytes(&*target.store, old.clone(), Target::Replace).await.expect("replace");
        assert_eq!(target.store.pricing(None).await.expect("prices"), prices, "{backend}");
        assert_eq!(target.store.setting("other.switch").await.expect("setting"), None, "{backend}: replaced");
        let (_, records) = contents_of(&*target.store).await;
        assert!(!records.iter().any(|r| matches!(r, Record::LlmUsage(_))), "{backend}: usage replaced by none");
    }
}

#[tokio::test]
async fn a_usage_record_naming_a_missing_run_is_refused_and_nothing_is_written() {
    let source = Ctx::open(Backend::Memory).await.expect("memory");
    fill(&source).await;
    let (snapshot, mut records) = contents_of(&*source.store).await;
    let ghost = bosun_core::RunId::new_at(source.now());
    for record in &mut records {
        if let Record::LlmUsage(usage) = record
            && usage.run_id.is_some()
        {
            usage.run_id = Some(ghost);
        }
    }
    for backend in BACKENDS {
        let Some(target) = Ctx::open(backend).await else { continue };
        let error = load_records(&*target.store, records.clone(), Some(snapshot.sequences), Target::MustBeEmpty)
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("refers to"), "{backend}: {error}");
        assert_eq!(contents(&*target.store).await.expect("contents"), None, "{backend}: nothing written");
        assert_eq!(target.store.pricing(None).await.expect("prices"), crate::usage::seed_prices(), "{backend}");
    }
}
