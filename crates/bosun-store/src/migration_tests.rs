//! Schema management on both SQL backends: reversibility, refusing newer databases,
//! backups before migrating SQLite files, and serialized concurrent migrators.
//!
//! A "newer bosun" is simulated with a migration directory holding this binary's
//! migrations plus one more.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bosun_core::FakeClock;

use crate::open::{ConnectSettings, MigrationSource};
use crate::testing::{TestLocation, test_options};
use crate::{Backend, Database, OpenError, StoreLocation, WriteBatch};

fn migrations_dir(backend: Backend) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend.as_str())
}

/// The newest schema version this binary ships for `backend`.
fn latest(backend: Backend) -> i64 {
    let ups = std::fs::read_dir(migrations_dir(backend))
        .expect("migrations directory")
        .filter(|e| e.as_ref().expect("entry").file_name().to_string_lossy().ends_with(".up.sql"))
        .count();
    i64::try_from(ups).expect("a few migrations")
}

/// This binary's migrations for `backend` up to `version`, in a temporary directory.
fn migrations_up_to(backend: Backend, version: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for entry in std::fs::read_dir(migrations_dir(backend)).expect("migrations directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        let file_version: i64 = name[..4].parse().expect("numbered migration");
        if file_version <= version {
            std::fs::copy(&path, dir.path().join(&name)).expect("copy migration");
        }
    }
    dir
}

/// This binary's migrations for `backend` plus one more (a probe table), as a newer bosun
/// would ship them.
fn newer_migrations(backend: Backend) -> tempfile::TempDir {
    let dir = migrations_up_to(backend, latest(backend));
    let probe = format!("{:04}_probe", latest(backend) + 1);
    std::fs::write(dir.path().join(format!("{probe}.up.sql")), "CREATE TABLE probe (id BIGINT PRIMARY KEY);\n")
        .expect("write migration");
    std::fs::write(dir.path().join(format!("{probe}.down.sql")), "DROP TABLE probe;\n").expect("write migration");
    dir
}

async fn connect_with(location: &StoreLocation, migrations: MigrationSource) -> Database {
    let settings = ConnectSettings { migrations, ..ConnectSettings::default() };
    Database::connect_with(location, &settings).await.expect("connect")
}

async fn up_down_up_gives_identical_schema(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let database = Database::connect(&test.location).await.expect("connect");
    let latest = latest(backend);
    let applied = database.migrate_up().await.expect("up");
    assert_eq!(applied.iter().map(|m| m.version).collect::<Vec<_>>(), (1..=latest).collect::<Vec<_>>());
    let first = database.schema_fingerprint().await.expect("fingerprint");
    assert!(first.iter().any(|line| line.contains("nodes")), "{first:?}");

    let reverted = database.migrate_down(0).await.expect("down");
    assert_eq!(reverted.iter().map(|m| m.version).collect::<Vec<_>>(), (1..=latest).rev().collect::<Vec<_>>());
    assert_eq!(database.status().await.expect("status").current_version(), 0);
    assert!(database.schema_fingerprint().await.expect("fingerprint").is_empty(), "down removes every table");

    database.migrate_up().await.expect("up again");
    assert_eq!(database.schema_fingerprint().await.expect("fingerprint"), first);
    assert!(database.migrate_up().await.expect("idempotent").is_empty());

    // Every step down restores exactly the schema of the version below it.
    for version in (1..latest).rev() {
        let older = migrations_up_to(backend, version);
        let fresh = TestLocation::new(backend).await.expect("same backend");
        let reference = connect_with(&fresh.location, MigrationSource::Directory(older.path().into())).await;
        reference.migrate_up().await.expect("up to the older version");
        let expected = reference.schema_fingerprint().await.expect("fingerprint");
        database.migrate_down(version).await.expect("one step down");
        assert_eq!(database.schema_fingerprint().await.expect("fingerprint"), expected, "version {version}");
    }
    database.migrate_up().await.expect("back up");

    // The same through a newer migration set: latest+1 -> latest restores exactly latest.
    let newer = newer_migrations(backend);
    let database = connect_with(&test.location, MigrationSource::Directory(newer.path().into())).await;
    database.migrate_up().await.expect("up to the newer version");
    database.migrate_down(latest).await.expect("down to this binary's version");
    assert_eq!(database.schema_fingerprint().await.expect("fingerprint"), first);
}

async fn a_database_newer_than_the_binary_is_refused(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let newer = newer_migrations(backend);
    connect_with(&test.location, MigrationSource::Directory(newer.path().into())).await.migrate_up().await.expect("up");

    let database = Database::connect(&test.location).await.expect("connect");
    let status = database.status().await.expect("status");
    let latest = latest(backend);
    assert_eq!(status.unknown_applied, [latest + 1]);
    for result in [database.migrate_up().await.map(|_| ()), database.ensure_current().await] {
        let message = match result {
            Err(e @ OpenError::SchemaTooNew { .. }) => e.to_string(),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        };
        let expected = format!(
            "has schema version {}, newer than this bosun binary understands ({latest}); \
             run a bosun release at least as new as the one that migrated it",
            latest + 1
        );
        assert!(message.ends_with(&expected), "{message}");
    }
    assert!(matches!(database.migrate_down(0).await, Err(OpenError::SchemaTooNew { .. })));
}

async fn an_edited_migration_is_refused(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up");
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = migrations_dir(backend);
    for entry in std::fs::read_dir(&source).expect("migrations directory") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if !name.starts_with("0001_") {
            std::fs::copy(source.join(&name), dir.path().join(&name)).expect("copy");
            continue;
        }
        let mut sql = std::fs::read_to_string(source.join(&name)).expect("read");
        sql.push_str("\n-- edited after release\n");
        std::fs::write(dir.path().join(name), sql).expect("write");
    }
    let edited = connect_with(&test.location, MigrationSource::Directory(dir.path().into())).await;
    match edited.ensure_current().await {
        Err(e @ OpenError::Modified { version: 1, .. }) => {
            assert!(e.to_string().contains("migration 1 was changed after it was applied"), "{e}");
        }
        other => panic!("expected Modified, got {other:?}"),
    }
}

/// Version 2 rebuilds SQLite's change log to admit policy records: every record survives,
/// and no sequence number is handed out twice, even past records retention removed. The
/// version-1 records are written as rows: this binary's store speaks only the newest
/// schema.
async fn version_2_keeps_the_change_log_and_its_sequence(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let clock = Arc::new(FakeClock::at_default_epoch());
    let version_1 = migrations_up_to(backend, 1);
    let database = connect_with(&test.location, MigrationSource::Directory(version_1.path().into())).await;
    database.migrate_up().await.expect("up to 1");
    let at = match backend {
        Backend::Postgres => "now()",
        _ => "0",
    };
    for name in ["kept", "gone", "gone"] {
        let insert = format!(
            "INSERT INTO changes (at, kind, resource_id, op, revision, actor, reason, resource) \
             VALUES ({at}, 'node', '{name}', 'created', 1, 'system:test', 'data', '{{}}')"
        );
        database.execute_raw(&insert).await.expect("write a version-1 change record");
    }
    // What retention leaves: the newest records gone, their sequence numbers spent.
    assert_eq!(database.execute_raw("DELETE FROM changes WHERE resource_id = 'gone'").await.expect("delete"), 2);
    database.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up to the latest version");
    let store = database.into_store(test_options(clock.clone())).await.expect("open store");
    let system = || bosun_core::Actor::system("test");
    let policy = bosun_core::StoredPolicy {
        name: "strict".into(),
        document: "rules: []".into(),
        updated_at: bosun_core::Clock::now(clock.as_ref()),
        revision: bosun_core::Revision::FIRST,
    };
    let committed = store.commit(WriteBatch::new(system(), "policy").put_policy(policy)).await.expect("put policy");
    let seqs: Vec<u64> =
        store.list_changes(&crate::ChangeFilter::default(), 10).await.expect("log").iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 4], "record 1 survived; 2 and 3 are never reused");
    assert!(matches!(committed.outcomes[0], crate::WriteOutcome::Resource { change_seq: 4, .. }));

    // Down to 1 forgets the policy and its history, and keeps everything else.
    store.close().await;
    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_down(1).await.expect("down to 1");
    let kinds = database.count_raw("SELECT COUNT(*) FROM changes WHERE kind = 'node'").await.expect("count");
    let all = database.count_raw("SELECT COUNT(*) FROM changes").await.expect("count");
    assert_eq!((kinds, all), (1, 1));
}

/// Version 3 rebuilds SQLite's commands table to admit RESET_GPU: every command keeps its
/// events through the rebuild, both up and down, and nodes keep their remediation step.
async fn version_3_keeps_commands_and_their_events(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let clock = Arc::new(FakeClock::at_default_epoch());
    let store = crate::open_store(&test.location, test_options(clock.clone())).await.expect("open store");
    let system = || bosun_core::Actor::system("test");
    let mut registration = crate::conformance::registration("n1");
    registration.gpus.clear();
    let now = bosun_core::Clock::now(clock.as_ref());
    let mut node = bosun_core::Node::register(&registration, now).expect("node");
    node.remediation = Some(bosun_core::Remediation::start(
        bosun_core::RemediationAction::ResetGpu,
        "XID 94 on GPU 3",
        Some(3),
        None,
        now,
        std::time::Duration::from_secs(600),
    ));
    store.commit(WriteBatch::new(system(), "data").create_node(node, Vec::new())).await.expect("write");
    let request = |kind| bosun_core::command::CommandRequest {
        node_id: "n1".parse().expect("valid"),
        kind,
        parameters: [("gpu".to_owned(), "3".to_owned())].into(),
        reason: "test".into(),
        time_to_live: std::time::Duration::from_secs(600),
    };
    let reboot = bosun_core::Command::issue(request(bosun_core::CommandKind::Reboot), system(), now).expect("command");
    let reset = bosun_core::Command::issue(request(bosun_core::CommandKind::ResetGpu), system(), now).expect("command");
    let (reboot_id, reset_id) = (reboot.id, reset.id);
    store
        .commit(WriteBatch::new(system(), "commands").create_command(reboot).create_command(reset))
        .await
        .expect("write commands");
    assert_eq!(store.command_events(&reboot_id).await.expect("events").len(), 1);
    store.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_down(2).await.expect("down to 2");
    assert_eq!(database.count_raw("SELECT COUNT(*) FROM commands").await.expect("count"), 1, "RESET_GPU is gone");
    assert_eq!(database.count_raw("SELECT COUNT(*) FROM command_events").await.expect("count"), 1);
    database.migrate_up().await.expect("up again");
    let store = database.into_store(test_options(clock)).await.expect("open store");
    assert_eq!(store.command_events(&reboot_id).await.expect("events").len(), 1, "events survive the rebuilds");
    assert!(matches!(store.command(&reset_id).await, Err(crate::StoreError::NotFound { .. })));
    assert_eq!(store.node(&"n1".parse().expect("valid")).await.expect("node").remediation, None);
}

async fn an_unmigrated_database_is_named_outdated(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let database = Database::connect(&test.location).await.expect("connect");
    match database.ensure_current().await {
        Err(e @ OpenError::SchemaOutdated { database_version: 0, binary_version, .. })
            if binary_version == latest(backend) =>
        {
            assert!(e.to_string().contains("run `bosun db migrate up`"), "{e}");
        }
        other => panic!("expected SchemaOutdated, got {other:?}"),
    }
    let beyond = latest(backend) + 1;
    assert!(
        matches!(database.migrate_down(beyond).await, Err(OpenError::BadTarget { target, .. }) if target == beyond)
    );
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("bosun.db.bak-v")))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn sqlite_backs_up_an_existing_file_before_migrating_it() {
    let test = TestLocation::new(Backend::Sqlite).await.expect("sqlite is always available");
    let dir = test.dir().expect("sqlite test dir").to_owned();

    // A fresh file holds nothing worth saving: no backup.
    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up");
    assert!(backups(&dir).is_empty());

    // Put data in it, then migrate it with a newer bosun.
    let clock = Arc::new(FakeClock::at_default_epoch());
    let store = database.into_store(test_options(clock.clone())).await.expect("open store");
    let mut registration = crate::conformance::registration("precious");
    registration.gpus.clear();
    let node = bosun_core::Node::register(&registration, bosun_core::Clock::now(clock.as_ref())).expect("new node");
    store
        .commit(WriteBatch::new(bosun_core::Actor::system("test"), "data").create_node(node, Vec::new()))
        .await
        .expect("write");
    store.close().await;
    let newer = newer_migrations(Backend::Sqlite);
    let database = connect_with(&test.location, MigrationSource::Directory(newer.path().into())).await;
    database.migrate_up().await.expect("up to the newer version");
    database.close().await;

    let written = backups(&dir);
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(name.starts_with(&format!("bosun.db.bak-v{}-", latest(Backend::Sqlite))), "{name}");
    // The copy is a working store at the old version with the old data.
    let backup = Database::connect(&StoreLocation::Sqlite { path: written[0].clone() }).await.expect("open backup");
    backup.ensure_current().await.expect("the backup is at this binary's version");
    let store = backup.into_store(test_options(clock)).await.expect("open backup store");
    assert_eq!(store.node(&"precious".parse().expect("valid")).await.expect("node survived").id.as_str(), "precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_migrators_are_serialized() {
    let Some(test) = TestLocation::new(Backend::Postgres).await else { return };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let location = test.location.clone();
        tasks.push(tokio::spawn(async move {
            let database = Database::connect(&location).await?;
            let result = database.migrate_up().await;
            database.close().await;
            result
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("every concurrent migrator succeeds");
    }
    let database = Database::connect(&test.location).await.expect("connect");
    let status = database.status().await.expect("status");
    assert_eq!(status.current_version(), latest(Backend::Postgres));
    assert!(status.pending().is_empty() && status.unknown_applied.is_empty());
    database.ensure_current().await.expect("current");
}

#[tokio::test]
async fn memory_has_no_schema() {
    let database = Database::connect(&StoreLocation::Memory).await.expect("connect");
    match database.status().await {
        Err(e @ OpenError::NoSchema { .. }) => {
            assert_eq!(
                e.to_string(),
                "memory:// keeps no schema: migrations apply to sqlite:// and postgres:// stores"
            );
        }
        other => panic!("expected NoSchema, got {other:?}"),
    }
    database.ensure_current().await.expect("nothing to check");
}

#[tokio::test]
async fn a_missing_directory_is_named() {
    let location = StoreLocation::parse("sqlite:///nonexistent-bosun-dir/sub/bosun.db").expect("valid url");
    let error = Database::connect(&location).await.expect_err("must fail");
    assert_eq!(
        error.to_string(),
        "cannot open sqlite:///nonexistent-bosun-dir/sub/bosun.db: directory /nonexistent-bosun-dir/sub does not exist; \
         create it or choose another path"
    );
}

/// Version 4 takes a compacted history as it is (no gap findings for numbers retention
/// removed before it existed) and keeps numbering after the last number handed out.
async fn version_4_takes_a_compacted_history_as_it_is(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let clock = Arc::new(FakeClock::at_default_epoch());
    let version_3 = migrations_up_to(backend, 3);
    let database = connect_with(&test.location, MigrationSource::Directory(version_3.path().into())).await;
    database.migrate_up().await.expect("up to 3");
    let at = match backend {
        Backend::Postgres => "now()",
        _ => "0",
    };
    for (name, op) in [("x", "created"), ("x", "deleted"), ("y", "created"), ("y", "deleted")] {
        let insert = format!(
            "INSERT INTO changes (at, kind, resource_id, op, revision, actor, reason, resource) \
             VALUES ({at}, 'pool', '{name}', '{op}', 1, 'system:test', 'data', '{{}}')"
        );
        database.execute_raw(&insert).await.expect("write a version-3 change record");
    }
    // What retention leaves of two pools deleted long ago: their deletes (2 and 4).
    database.execute_raw("DELETE FROM changes WHERE op = 'created'").await.expect("compact");
    database.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up to the latest version");
    let store = database.into_store(test_options(clock.clone())).await.expect("open store");
    assert_eq!(store.check_integrity().await.expect("check"), [], "an old compacted history is no gap");
    let committed = store
        .commit(WriteBatch::new(bosun_core::Actor::system("test"), "pool").create_pool(crate::conformance::pool("p")))
        .await
        .expect("create pool");
    assert!(matches!(committed.outcomes[0], crate::WriteOutcome::Resource { change_seq: 5, .. }));
    assert_eq!(store.last_change_seq().await.expect("last"), 5);
    assert_eq!(store.check_integrity().await.expect("check"), []);
    store.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_down(3).await.expect("down to 3");
    database
        .execute_raw(&format!(
            "INSERT INTO changes (at, kind, resource_id, op, revision, actor, reason, resource) \
         VALUES ({at}, 'pool', 'q', 'created', 1, 'system:test', 'data', '{{}}')"
        ))
        .await
        .expect("version 3 numbers on after the last number handed out");
    assert_eq!(database.count_raw("SELECT MAX(seq) FROM changes").await.expect("max"), 6);
}

/// Every foreign key of the schema is a reference `db check` verifies for orphans.
async fn every_foreign_key_is_checked_for_orphans(backend: Backend) {
    let Some(test) = crate::testing::TestStore::open(backend).await else { return };
    let declared: std::collections::BTreeSet<(String, String)> = match &test.location {
        StoreLocation::Sqlite { path } => {
            let conn = rusqlite::Connection::open(path).expect("open");
            let mut statement = conn
                .prepare(
                    "SELECT m.name, f.\"table\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                     WHERE m.type = 'table'",
                )
                .expect("prepare");
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .expect("query")
                .map(|r| r.expect("row"))
                .collect()
        }
        StoreLocation::Postgres { url } => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect");
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'",
            )
            .fetch_all(&mut conn)
            .await
            .expect("foreign keys");
            rows.into_iter().collect()
        }
        StoreLocation::Memory => unreachable!("an SQL backend"),
    };
    let checked = crate::integrity::Reference::ALL
        .into_iter()
        .map(|r| {
            let (child, parent) = r.tables();
            (child.to_owned(), parent.to_owned())
        })
        .collect();
    assert_eq!(declared, checked, "a foreign key without an orphan check, or a check without a key");
    test.store.close().await;
}

/// Version 7 turns PostgreSQL's change documents and metric samples' GPUs from `jsonb` into
/// `json`: every document reads back as the same value, and going down turns them back.
async fn version_7_keeps_json_documents(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let clock = Arc::new(FakeClock::at_default_epoch());
    let version_6 = migrations_up_to(backend, 6);
    let database = connect_with(&test.location, MigrationSource::Directory(version_6.path().into())).await;
    database.migrate_up().await.expect("up to 6");
    let at = match backend {
        Backend::Postgres => "now()",
        _ => "0",
    };
    let document = r#"{"zeta": 1, "alpha": {"list": [1, 2.5, "x", null, true], "empty": {}}, "text": "a\"b\u00e9"}"#;
    let insert = format!(
        "INSERT INTO changes (seq, at, kind, resource_id, op, revision, actor, reason, resource) \
         VALUES (1, {at}, 'node', 'n1', 'created', 1, 'system:test', 'data', '{document}')"
    );
    database.execute_raw(&insert).await.expect("write a version-6 change record");
    if backend == Backend::Postgres {
        // PostgreSQL draws sequence numbers from `change_log`, which a writer advances.
        database.execute_raw("UPDATE change_log SET last_seq = 1").await.expect("advance the sequence");
    }
    database.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up to the latest version");
    let store = database.into_store(test_options(clock.clone())).await.expect("open store");
    let changes = store.list_changes(&crate::ChangeFilter::default(), 10).await.expect("log");
    let expected: serde_json::Value = serde_json::from_str(document).expect("valid JSON");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].resource, expected, "the document reads back as the value written");
    // A metric sample written at version 7 survives the way down and back up.
    let now = bosun_core::Clock::now(clock.as_ref());
    let mut registration = crate::conformance::registration("n1");
    registration.gpus.clear();
    let node = bosun_core::Node::register(&registration, now).expect("node");
    let system = bosun_core::Actor::system("test");
    store.commit(WriteBatch::new(system, "data").create_node(node.clone(), Vec::new())).await.expect("write");
    let sample = crate::conformance::soft_state::sample(&node.id, now);
    store.record_metric_samples(std::slice::from_ref(&sample)).await.expect("record a sample");
    store.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_down(6).await.expect("down to 6");
    let queries = match backend {
        // Back to jsonb: its operators work on the documents again.
        Backend::Postgres => [
            "SELECT COUNT(*) FROM changes WHERE resource -> 'alpha' -> 'list' ->> 1 = '2.5'",
            "SELECT COUNT(*) FROM metric_samples WHERE (gpus -> 7 ->> 'index')::int = 7",
        ],
        _ => [
            "SELECT COUNT(*) FROM changes WHERE json_extract(resource, '$.alpha.list[1]') = 2.5",
            "SELECT COUNT(*) FROM metric_samples WHERE json_extract(gpus, '$[7].index') = 7",
        ],
    };
    for query in queries {
        assert_eq!(database.count_raw(query).await.expect("count"), 1, "{query}");
    }
    database.migrate_up().await.expect("up again");
    let store = database.into_store(test_options(clock)).await.expect("open store");
    assert_eq!(store.metric_samples(&node.id, now).await.expect("samples"), vec![sample]);
}

/// Version 11 gives the workloads already stored the labels their record derives
/// (`Workload::labels`): a selector finds them before their agent reports again.
async fn version_11_gives_stored_workloads_their_labels(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let clock = Arc::new(FakeClock::at_default_epoch());
    let version_9 = migrations_up_to(backend, 9);
    let database = connect_with(&test.location, MigrationSource::Directory(version_9.path().into())).await;
    database.migrate_up().await.expect("up to 9");
    let at = match backend {
        Backend::Postgres => "now()",
        _ => "0",
    };
    // A process in a pod's container; one without a name, whose pod namespace comes
    // without a UID (a row the record reads without its pod).
    for (key, name, container, namespace, pod, uid) in
        [("n1/10", "'python3'", "'abc'", "'ml'", "'train-0'", "'u1'"), ("n1/11", "''", "NULL", "'ml'", "NULL", "NULL")]
    {
        let insert = format!(
            "INSERT INTO workloads (source, key, scope, digest, cpu, memory_used, disk_used, net_in, net_out, \
             uptime_s, usage_at, first_seen, last_seen, gone_at, revision, node_id, gpu_indexes, pid, process_name, \
             container_id, pod_namespace, pod_name, pod_uid, gpu_memory_bytes, started_at) VALUES ('agents', '{key}', \
             'n1', 'd', 0, 0, 0, 0, 0, 0, {at}, {at}, {at}, NULL, 1, 'n1', '[0]', 10, {name}, {container}, \
             {namespace}, {pod}, {uid}, 0, NULL)"
        );
        database.execute_raw(&insert).await.expect("write a version-9 workload");
    }
    database.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up to the latest version");
    let store = database.into_store(test_options(clock)).await.expect("open store");
    let keys = |selector: &str| {
        let filter = crate::inventory::InventoryFilter {
            labels: Some(selector.parse().expect("selector")),
            ..crate::inventory::InventoryFilter::kind(bosun_core::inventory::InventoryKind::Workload)
        };
        let store = store.clone();
        async move {
            let page = store.list_inventory(&filter, &crate::PageRequest::first(10)).await.expect("list");
            page.items.into_iter().map(|r| r.key).collect::<Vec<_>>()
        }
    };
    assert_eq!(keys("process=python3,container=abc,namespace=ml,pod=train-0").await, ["n1/10"]);
    assert_eq!(keys("namespace").await, ["n1/10"], "a namespace without its pod's UID is no label");
    assert_eq!(keys("process").await, ["n1/10"], "no name, no label");
    store.close().await;
}

/// Version 12 widens the run kinds, which SQLite does by rebuilding `task_runs` and every
/// table that references it. Runs and their targets, events, artifacts, approvals and tool
/// calls survive both rebuilds (down and up again) with their references and the tool
/// calls' id sequence; the append-only trigger is back; going down turns the runs of the AI
/// kinds, which an older bosun cannot read, into external runs.
async fn version_12_keeps_runs_and_their_dependents(backend: Backend) {
    use bosun_core::{
        Actor, Approval, ApprovalId, Artifact, Revision, Role, RunEvent, RunEventType, RunKind, RunStatus, TaskRun,
        ToolCall, ToolCallStatus,
    };
    let Some(test) = TestLocation::new(backend).await else { return };
    let clock = Arc::new(FakeClock::at_default_epoch());
    let store = crate::open_store(&test.location, test_options(clock.clone())).await.expect("open store");
    let now = bosun_core::Clock::now(clock.as_ref());
    let batch = || WriteBatch::new(Actor::system("test"), "data");
    let node = "node:n1".parse().expect("target");
    let run = TaskRun::new(RunKind::External, RunStatus::Running, Actor::operator("alice"), vec![node], now);
    let session = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], now);
    let approval = Approval {
        id: ApprovalId::new_at(now),
        run_id: run.id,
        step: Some(0),
        what: "terminate n1".into(),
        policy: None,
        required_role: Role::Admin,
        requested_by: run.requested_by.clone(),
        requested_at: now,
        expires_at: now + std::time::Duration::from_secs(3600),
        decision: None,
        revision: Revision::FIRST,
    };
    let call = |run: &TaskRun, approval_id| ToolCall {
        run_id: run.id,
        tool: "cordon_node".parse().expect("tool name"),
        input: serde_json::json!({"node_id": "n1"}),
        output: None,
        status: ToolCallStatus::AwaitingApproval,
        error: None,
        duration_ms: 3,
        approval_id,
    };
    let artifact = Artifact {
        run_id: run.id,
        name: "report.txt".into(),
        media_type: "text/plain".into(),
        content: b"ok".to_vec(),
    };
    store
        .commit(
            batch()
                .create_run(run.clone())
                .create_run(session.clone())
                .append_run_event(RunEvent::new(run.id, RunEventType::Log, "started"))
                .append_run_event(RunEvent::new(session.id, RunEventType::Log, "session opened"))
                .put_artifact(artifact)
                .with(crate::Write::CreateApproval(Box::new(approval.clone())))
                .with(crate::Write::RecordToolCall(Box::new(call(&run, Some(approval.id)))))
                .with(crate::Write::RecordToolCall(Box::new(call(&run, None))))
                .with(crate::Write::RecordToolCall(Box::new(call(&session, None)))),
        )
        .await
        .expect("write the ledger");
    store.close().await;

    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_down(11).await.expect("down to 11");
    for (table, rows) in [
        ("task_runs", 2),
        ("task_run_targets", 1),
        ("task_events", 2),
        ("artifacts", 1),
        ("approvals", 1),
        ("tool_call_records", 3),
        ("task_runs WHERE kind = 'external'", 2),
    ] {
        let count = database.count_raw(&format!("SELECT COUNT(*) FROM {table}")).await.expect("count");
        assert_eq!(count, rows, "{table} at version 11");
    }
    database.migrate_up().await.expect("up again");
    assert!(
        database.execute_raw("UPDATE task_events SET message = 'rewritten'").await.is_err(),
        "run events stay append-only"
    );
    let store = database.into_store(test_options(clock)).await.expect("open store");
    assert_eq!(store.run(&run.id).await.expect("run").targets.len(), 1);
    assert_eq!(store.run_events(&run.id, 0, 10).await.expect("events").len(), 1);
    assert_eq!(store.artifacts(&run.id).await.expect("artifacts").len(), 1);
    assert_eq!(store.approval(&approval.id).await.expect("approval").run_id, run.id);
    assert_eq!(store.run(&session.id).await.expect("the session").kind, RunKind::External);
    let ids: Vec<u64> = store.tool_calls(&run.id, 0, 1000).await.expect("calls").iter().map(|c| c.id).collect();
    assert_eq!(ids, [1, 2]);
    let again = TaskRun::new(RunKind::AiSession, RunStatus::Running, Actor::operator("oncall"), vec![], now);
    store
        .commit(batch().create_run(again.clone()).with(crate::Write::RecordToolCall(Box::new(call(&again, None)))))
        .await
        .expect("an AI session again");
    let ids: Vec<u64> = store.tool_calls(&again.id, 0, 1000).await.expect("calls").iter().map(|c| c.id).collect();
    assert_eq!(ids, [4], "tool call ids go on after the last one handed out");
    assert_eq!(store.check_integrity().await.expect("check"), [], "every reference holds");
    store.close().await;
}

macro_rules! on_sql_backends {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::Backend::Postgres).await;
                }
            )+
        }
    };
}

on_sql_backends!(
    up_down_up_gives_identical_schema,
    a_database_newer_than_the_binary_is_refused,
    an_edited_migration_is_refused,
    an_unmigrated_database_is_named_outdated,
    version_2_keeps_the_change_log_and_its_sequence,
    version_3_keeps_commands_and_their_events,
    version_4_takes_a_compacted_history_as_it_is,
    version_7_keeps_json_documents,
    version_11_gives_stored_workloads_their_labels,
    version_12_keeps_runs_and_their_dependents,
    every_foreign_key_is_checked_for_orphans,
);
