//! Test harness: opens a fresh, migrated store of each backend with a fake clock.
//!
//! PostgreSQL tests create a throw-away database on the server named by
//! `BOSUN_TEST_POSTGRES_URL` (an admin URL; `scripts/test` starts such a server). Without
//! it they are skipped with a message, unless `BOSUN_TEST_REQUIRE_ALL_BACKENDS` or `CI` is
//! set, in which case a missing database is a test failure: CI never skips a backend
//! silently.

use std::sync::Arc;
use std::time::Duration;

use bosun_core::{Clock, FakeClock};

use crate::store::{SampleRetention, SharedStore, StoreOptions};
use crate::{Backend, StoreLocation, open_store};

/// Environment variable holding an admin URL of a PostgreSQL server for tests.
pub const POSTGRES_URL_ENV: &str = "BOSUN_TEST_POSTGRES_URL";

/// A store opened for one test, and whatever keeps its data alive.
pub struct TestStore {
    pub store: SharedStore,
    pub clock: Arc<FakeClock>,
    pub location: StoreLocation,
    /// The memory backend's store itself, so tests can reach under its rules (SQL tests
    /// do that through a connection of their own).
    #[cfg(test)]
    pub(crate) memory: Option<Arc<crate::MemoryStore>>,
    _cleanup: Cleanup,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore").field("location", &self.location).finish()
    }
}

enum Cleanup {
    None,
    TempDir(tempfile::TempDir),
    PostgresDatabase { admin_url: String, name: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::PostgresDatabase { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime guarantee (and possibly while panicking), so
            // the database is dropped from a plain thread with its own small runtime.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    use sqlx::Connection as _;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                    }
                });
            })
            .join();
        }
    }
}

/// The options every test store uses: small history bounds so tests can reach them.
pub fn test_options(clock: Arc<dyn Clock>) -> StoreOptions {
    StoreOptions {
        health_history_per_node: 5,
        bootstrap_logs_per_node: 3,
        samples: SampleRetention { window: Duration::from_secs(60), max_per_node: 6 },
        ..StoreOptions::new(clock)
    }
}

/// True when tests must not skip a backend whose database is missing.
pub fn all_backends_required() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("BOSUN_TEST_REQUIRE_ALL_BACKENDS") || set("CI")
}

/// The PostgreSQL admin URL for tests, or `None` (after saying why) when tests may skip.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if all_backends_required() => panic!(
            "{POSTGRES_URL_ENV} is not set but every backend is required here (CI or \
             BOSUN_TEST_REQUIRE_ALL_BACKENDS); run the suite with scripts/test, which starts PostgreSQL"
        ),
        _ => {
            eprintln!("skipping PostgreSQL test: set {POSTGRES_URL_ENV} or run scripts/test");
            None
        }
    }
}

/// An empty, unmigrated database of one backend, removed when dropped.
pub struct TestLocation {
    pub location: StoreLocation,
    cleanup: Cleanup,
}

impl std::fmt::Debug for TestLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestLocation").field("location", &self.location).finish()
    }
}

impl TestLocation {
    /// A fresh location, or `None` if that backend is unavailable and may be skipped.
    pub async fn new(backend: Backend) -> Option<TestLocation> {
        let (location, cleanup) = match backend {
            Backend::Memory => (StoreLocation::Memory, Cleanup::None),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let path = dir.path().join("bosun.db");
                (StoreLocation::Sqlite { path }, Cleanup::TempDir(dir))
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = create_postgres_database(&admin_url).await;
                let mut url = url::Url::parse(&admin_url).expect("valid admin URL");
                url.set_path(&format!("/{name}"));
                (StoreLocation::Postgres { url }, Cleanup::PostgresDatabase { admin_url, name })
            }
        };
        Some(TestLocation { location, cleanup })
    }

    /// The directory holding a SQLite test database.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match &self.cleanup {
            Cleanup::TempDir(dir) => Some(dir.path()),
            _ => None,
        }
    }
}

impl TestStore {
    /// Opens a fresh, migrated store of `backend`, or `None` if that backend is
    /// unavailable and may be skipped.
    pub async fn open(backend: Backend) -> Option<TestStore> {
        Self::open_with(backend, test_options).await
    }

    pub async fn open_with(
        backend: Backend,
        options: impl FnOnce(Arc<dyn Clock>) -> StoreOptions,
    ) -> Option<TestStore> {
        let clock = Arc::new(FakeClock::at_default_epoch());
        let options = options(clock.clone());
        let TestLocation { location, cleanup } = TestLocation::new(backend).await?;
        #[cfg(test)]
        if backend == Backend::Memory {
            let memory = crate::MemoryStore::shared(options);
            let store: SharedStore = memory.clone();
            return Some(TestStore { store, clock, location, memory: Some(memory), _cleanup: cleanup });
        }
        let store = open_store(&location, options).await.unwrap_or_else(|e| panic!("open {location}: {e}"));
        Some(TestStore {
            store,
            clock,
            location,
            #[cfg(test)]
            memory: None,
            _cleanup: cleanup,
        })
    }
}

/// Terminates every session listening for change signals on the PostgreSQL database at
/// `location`, as a database restart or an administrator would; returns how many.
pub async fn cut_change_listeners(location: &StoreLocation) -> i64 {
    use sqlx::Connection as _;
    let StoreLocation::Postgres { url } = location else {
        panic!("only PostgreSQL stores listen for changes, not {location}");
    };
    let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect to the test database");
    let cut = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(crate::postgres::LISTENER_APPLICATION_NAME)
    .fetch_one(&mut conn)
    .await
    .expect("terminate the listening sessions");
    let _ = conn.close().await;
    cut
}

/// Creates an empty database with a unique name on the server at `admin_url`.
pub async fn create_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection as _;
    let name = format!("bosun_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL server ({POSTGRES_URL_ENV}): {e}"));
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("create a test database");
    name
}
