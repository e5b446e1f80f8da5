//! `bosun db export|import|copy|backup|restore` end to end: a seeded SQLite store (with an
//! inventory) moved to PostgreSQL and back, backups restored, and the refusals an operator
//! sees.

mod common;

use std::sync::Arc;

use bosun_core::inventory::{Host, InventorySnapshot, Reported, SourceSync, SourceType, Storage, SyncScope, Usage, Vm};
use bosun_core::{Actor, FakeClock};
use bosun_store::testing::{TestLocation, test_options};
use bosun_store::{Backend, StoreLocation, WriteBatch};
use common::{bosun, fails_with_one_line, ok};

fn url(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Sqlite { path } => format!("sqlite://{}", path.display()),
        other => other.to_string(),
    }
}

fn postgres_url(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Postgres { url } => url.to_string(),
        other => url(other),
    }
}

fn reported<T>(key: &str, state: T) -> Reported<T> {
    Reported { key: key.to_owned(), digest: format!("digest-{key}"), state, usage: Usage::default() }
}

/// Syncs an inventory into the store at `location`: a Proxmox source read once (a host, a
/// VM, a storage the host sees), then a failed read, which leaves the source stale.
async fn sync_an_inventory(location: &StoreLocation) {
    let clock = Arc::new(FakeClock::at_default_epoch());
    let store = bosun_store::open_store(location, test_options(clock.clone())).await.expect("open");
    let host = Host { name: "pve-a".into(), status: "online".into(), cpus: 32, memory_total: 1 << 38, node_id: None };
    let vm = Vm {
        host: "pve-a".into(),
        vmid: 100,
        name: "train-100".into(),
        status: "running".into(),
        template: false,
        cpus: 8,
        memory_total: 1 << 35,
        disk_total: 1 << 37,
        ha_managed: false,
        lock: None,
        config_digest: Some("cfg".into()),
        gpu_devices: vec!["0000:41:00".into()],
        node_id: None,
        labels: Default::default(),
    };
    let storage = Storage {
        name: "local".into(),
        storage_type: "dir".into(),
        content: vec!["images".into()],
        shared: false,
        status: "available".into(),
        total: 1 << 40,
        hosts: vec!["pve-a".into()],
    };
    let snapshot = InventorySnapshot {
        hosts: vec![reported("pve-a", host)],
        vms: vec![reported("pve-a/100", vm)],
        storage: vec![reported("pve-a/local", storage)],
        ..InventorySnapshot::default()
    };
    for outcome in [Ok(snapshot), Err("https://pve.example:8006: timed out".to_owned())] {
        use bosun_core::Clock as _;
        let sync = SourceSync {
            source: "pve1".parse().expect("valid"),
            source_type: SourceType::Proxmox,
            scope: SyncScope::Source,
            started_at: clock.now(),
            outcome,
        };
        let batch = WriteBatch::new(Actor::system("inventory"), "sync").sync_inventory(sync);
        store.commit(batch).await.expect("sync");
        clock.advance(std::time::Duration::from_secs(30));
    }
    store.close().await;
}

/// Records two LLM requests (one for an AI session run) and sets the MCP switch in the
/// store at `location`.
async fn record_llm_usage(location: &StoreLocation) {
    use bosun_core::{Clock as _, LlmText, LlmUsage, RunKind, RunStatus, Setting, TaskRun};
    let clock = Arc::new(FakeClock::at_default_epoch());
    let store = bosun_store::open_store(location, test_options(clock.clone())).await.expect("open");
    let batch = || WriteBatch::new(Actor::operator("oncall"), "usage");
    let run = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], clock.now());
    store.commit(batch().create_run(run.clone())).await.expect("a run");
    let mut usage = LlmUsage::new("oncall", "anthropic", "claude-sonnet-4", clock.now());
    usage.run_id = Some(run.id);
    usage.prompt = Some(LlmText::bounded("why is n1 unhealthy?".into(), 1024));
    store.commit(batch().record_llm_usage(usage)).await.expect("usage");
    clock.advance(std::time::Duration::from_secs(1));
    store.commit(batch().record_llm_usage(LlmUsage::new("oncall", "acme", "m", clock.now()))).await.expect("usage");
    let off = Setting::new(Setting::MCP_ENABLED, serde_json::json!({"enabled": false}), "oncall", clock.now());
    store.commit(batch().put_setting(off, None)).await.expect("a setting");
    store.close().await;
}

/// `db check`'s line, without the store's name.
fn check(store: &str) -> String {
    let line = ok(bosun().args(["db", "--store", store, "check"]));
    assert!(line.contains("consistent"), "{line}");
    line[line.find("consistent").expect("consistent")..].to_owned()
}

#[tokio::test]
async fn export_import_copy_backup_and_restore_through_the_cli() {
    let source = TestLocation::new(Backend::Sqlite).await.expect("sqlite");
    let dir = source.dir().expect("dir").to_owned();
    let store = url(&source.location);
    ok(bosun().args(["db", "--store", &store, "migrate", "up"]));
    ok(bosun().args(["db", "--store", &store, "seed", "--nodes", "40"]));
    sync_an_inventory(&source.location).await;
    record_llm_usage(&source.location).await;
    let seeded = check(&store);
    // Every kind the export, import and copy lines must name, prices (the seeded six),
    // usage and the setting among them.
    let kinds = ["3 inventory_record", "1 inventory_source", "2 inventory_sync", "6 price", "2 llm_usage", "1 setting"];

    // Export to a file, import into a new SQLite file.
    let file = dir.join("fleet.jsonl");
    let line = ok(bosun().args(["db", "--store", &store, "export", "--out", file.to_str().expect("utf-8")]));
    assert!(line.contains("exported") && line.contains("40 node"), "{line}");
    for kind in kinds {
        assert!(line.contains(kind), "{kind}: {line}");
    }
    let imported = format!("sqlite://{}", dir.join("imported.db").display());
    let line = ok(bosun().args(["db", "--store", &imported, "import", file.to_str().expect("utf-8")]));
    assert!(line.contains("imported"), "{line}");
    for kind in kinds {
        assert!(line.contains(kind), "{kind}: {line}");
    }
    assert_eq!(check(&imported), seeded);

    // Import again: refused, nothing written; --force replaces.
    let line = fails_with_one_line(bosun().args(["db", "--store", &imported, "import", file.to_str().expect("utf-8")]));
    assert!(line.contains("is not empty (40 nodes") && line.contains("pass --force"), "{line}");
    ok(bosun().args(["db", "--store", &imported, "import", "--force", file.to_str().expect("utf-8")]));
    assert_eq!(check(&imported), seeded);

    // A truncated file names its line.
    let text = std::fs::read_to_string(&file).expect("read");
    let lines = text.lines().count();
    let truncated = dir.join("truncated.jsonl");
    std::fs::write(&truncated, text.lines().take(lines - 1).collect::<Vec<_>>().join("\n") + "\n").expect("write");
    let fresh = format!("sqlite://{}", dir.join("fresh.db").display());
    let line =
        fails_with_one_line(bosun().args(["db", "--store", &fresh, "import", truncated.to_str().expect("utf-8")]));
    assert!(line.contains(&format!("line {}: the file ends here", lines - 1)), "{line}");
    assert!(line.contains("nothing was imported"), "{line}");

    // Copy SQLite -> PostgreSQL -> SQLite.
    if let Some(postgres) = TestLocation::new(Backend::Postgres).await {
        let pg = postgres_url(&postgres.location);
        let line = ok(bosun().args(["db", "copy", "--from", &store, "--to", &pg]));
        assert!(line.contains("verified"), "{line}");
        for kind in kinds {
            assert!(line.contains(kind), "{kind}: {line}");
        }
        assert_eq!(check(&pg), seeded);
        let line = fails_with_one_line(bosun().args(["db", "copy", "--from", &store, "--to", &pg]));
        assert!(line.contains("is not empty") && line.contains("--force"), "{line}");
        let back = format!("sqlite://{}", dir.join("back.db").display());
        ok(bosun().args(["db", "copy", "--from", &pg, "--to", &back]));
        assert_eq!(check(&back), seeded);
        // A PostgreSQL backup is an export; restore imports it.
        let pg_backup = dir.join("pg-backup.jsonl");
        ok(bosun().args(["db", "--store", &pg, "backup", "--out", pg_backup.to_str().expect("utf-8")]));
        let restored = format!("sqlite://{}", dir.join("from-pg.db").display());
        ok(bosun().args(["db", "--store", &restored, "restore", pg_backup.to_str().expect("utf-8")]));
        assert_eq!(check(&restored), seeded);
    }

    // A SQLite backup through the online backup API, restored into a new store.
    let backup = dir.join("backup.db");
    let line = ok(bosun().args(["db", "--store", &store, "backup", "--out", backup.to_str().expect("utf-8")]));
    assert!(line.contains("SQLite online backup"), "{line}");
    let line = fails_with_one_line(bosun().args([
        "db",
        "--store",
        &store,
        "backup",
        "--out",
        backup.to_str().expect("utf-8"),
    ]));
    assert!(line.contains("already exists"), "{line}");
    let restored = format!("sqlite://{}", dir.join("restored.db").display());
    let before = std::fs::read(&backup).expect("backup");
    ok(bosun().args(["db", "--store", &restored, "restore", backup.to_str().expect("utf-8")]));
    assert_eq!(check(&restored), seeded);
    assert!(std::fs::read(&backup).expect("backup") == before, "restoring leaves the backup file as it was");
    assert!(!dir.join("backup.db-wal").exists(), "and puts no WAL file beside it");
}
