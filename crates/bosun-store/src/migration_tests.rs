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

/// This binary's migrations for `backend` plus `0002_probe`, in a temporary directory.
fn newer_migrations(backend: Backend) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend.as_str());
    for entry in std::fs::read_dir(&source).expect("migrations directory") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("file name"))).expect("copy migration");
    }
    std::fs::write(dir.path().join("0002_probe.up.sql"), "CREATE TABLE probe (id BIGINT PRIMARY KEY);\n")
        .expect("write migration");
    std::fs::write(dir.path().join("0002_probe.down.sql"), "DROP TABLE probe;\n").expect("write migration");
    dir
}

async fn connect_with(location: &StoreLocation, migrations: MigrationSource) -> Database {
    let settings = ConnectSettings { migrations, ..ConnectSettings::default() };
    Database::connect_with(location, &settings).await.expect("connect")
}

async fn up_down_up_gives_identical_schema(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let database = Database::connect(&test.location).await.expect("connect");
    let applied = database.migrate_up().await.expect("up");
    assert_eq!(applied.iter().map(|m| m.version).collect::<Vec<_>>(), [1]);
    let first = database.schema_fingerprint().await.expect("fingerprint");
    assert!(first.iter().any(|line| line.contains("nodes")), "{first:?}");

    let reverted = database.migrate_down(0).await.expect("down");
    assert_eq!(reverted.iter().map(|m| m.version).collect::<Vec<_>>(), [1]);
    assert_eq!(database.status().await.expect("status").current_version(), 0);
    assert!(database.schema_fingerprint().await.expect("fingerprint").is_empty(), "down removes every table");

    database.migrate_up().await.expect("up again");
    assert_eq!(database.schema_fingerprint().await.expect("fingerprint"), first);
    assert!(database.migrate_up().await.expect("idempotent").is_empty());

    // The same through a newer migration set: 2 -> 1 restores exactly version 1.
    let newer = newer_migrations(backend);
    let database = connect_with(&test.location, MigrationSource::Directory(newer.path().into())).await;
    database.migrate_up().await.expect("up to 2");
    database.migrate_down(1).await.expect("down to 1");
    assert_eq!(database.schema_fingerprint().await.expect("fingerprint"), first);
}

async fn a_database_newer_than_the_binary_is_refused(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let newer = newer_migrations(backend);
    connect_with(&test.location, MigrationSource::Directory(newer.path().into())).await.migrate_up().await.expect("up");

    let database = Database::connect(&test.location).await.expect("connect");
    let status = database.status().await.expect("status");
    assert_eq!(status.unknown_applied, [2]);
    for result in [database.migrate_up().await.map(|_| ()), database.ensure_current().await] {
        let message = match result {
            Err(e @ OpenError::SchemaTooNew { .. }) => e.to_string(),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        };
        assert!(
            message.ends_with(
                "has schema version 2, newer than this bosun binary understands (1); \
                 run a bosun release at least as new as the one that migrated it"
            ),
            "{message}"
        );
    }
    assert!(matches!(database.migrate_down(0).await, Err(OpenError::SchemaTooNew { .. })));
}

async fn an_edited_migration_is_refused(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let database = Database::connect(&test.location).await.expect("connect");
    database.migrate_up().await.expect("up");
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend.as_str());
    for name in ["0001_initial.up.sql", "0001_initial.down.sql"] {
        let mut sql = std::fs::read_to_string(source.join(name)).expect("read");
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

async fn an_unmigrated_database_is_named_outdated(backend: Backend) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let database = Database::connect(&test.location).await.expect("connect");
    match database.ensure_current().await {
        Err(e @ OpenError::SchemaOutdated { database_version: 0, binary_version: 1, .. }) => {
            assert!(e.to_string().contains("run `bosun db migrate up`"), "{e}");
        }
        other => panic!("expected SchemaOutdated, got {other:?}"),
    }
    assert!(matches!(database.migrate_down(7).await, Err(OpenError::BadTarget { target: 7, .. })));
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
    database.migrate_up().await.expect("up to 2");
    database.close().await;

    let written = backups(&dir);
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(name.starts_with("bosun.db.bak-v1-"), "{name}");
    // The copy is a working store at the old version with the old data.
    let backup = Database::connect(&StoreLocation::Sqlite { path: written[0].clone() }).await.expect("open backup");
    backup.ensure_current().await.expect("the backup is at version 1");
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
    assert_eq!(status.current_version(), 1);
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
);
