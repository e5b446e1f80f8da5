//! Opening a store: connecting to its database, managing the schema (SPEC 4.5), and
//! handing out a [`Store`](crate::Store).
//!
//! Migrations are versioned, reversible (`NNNN_name.up.sql` / `.down.sql`), kept per
//! backend under `migrations/`, embedded in the binary with checksums, and recorded in the
//! `schema_migrations` table. On PostgreSQL concurrent migrators serialize on an advisory
//! lock; on SQLite a backup copy of an existing file is written before its schema changes.
//! A database migrated by a newer bosun is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};

use crate::location::{LocationError, StoreLocation};
use crate::memory::MemoryStore;
use crate::postgres::{self, PostgresStore};
use crate::sqlite::{self, SqliteDurability, SqlitePools, SqliteStore};
use crate::store::{Backend, SharedStore, StoreOptions};

/// Name of the table recording applied migrations.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// Why a store could not be opened or migrated. Every message is one line that names the
/// store (password redacted) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("cannot open {location}: directory {} does not exist; create it or choose another path", dir.display())]
    MissingDirectory { location: String, dir: PathBuf },
    #[error("cannot connect to {location}: {cause}")]
    Connect { location: String, cause: String },
    #[error(
        "{location} has schema version {database_version}, newer than this bosun binary understands ({binary_version}); \
         run a bosun release at least as new as the one that migrated it"
    )]
    SchemaTooNew { location: String, database_version: i64, binary_version: i64 },
    #[error(
        "{location} has schema version {database_version} but this bosun needs {binary_version}; \
         run `bosun db migrate up` (or start the server without --no-migrate)"
    )]
    SchemaOutdated { location: String, database_version: i64, binary_version: i64 },
    #[error(
        "{location}: migration {version} was changed after it was applied (checksum mismatch); restore the original migration"
    )]
    Modified { location: String, version: i64 },
    #[error("{location}: migration failed: {cause}")]
    Migration { location: String, cause: String },
    #[error("{location}: could not write the backup copy {}: {cause}", path.display())]
    Backup { location: String, path: PathBuf, cause: String },
    #[error("{location} keeps no schema: migrations apply to sqlite:// and postgres:// stores")]
    NoSchema { location: String },
    #[error("{location}: cannot migrate down to version {target}: {problem}")]
    BadTarget { location: String, target: i64, problem: String },
}

/// Where migrations come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MigrationSource {
    /// The migrations compiled into this binary (always, in production).
    #[default]
    Embedded,
    /// A directory of `NNNN_name.up.sql` / `.down.sql` files for this backend: for testing
    /// a migration under development, or for simulating an older or newer bosun.
    Directory(PathBuf),
}

/// How to connect, beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// Most pooled PostgreSQL connections.
    pub postgres_max_connections: u32,
    /// How long to wait for a PostgreSQL connection (also bounds the first connect).
    pub postgres_acquire_timeout: Duration,
    pub sqlite_durability: SqliteDurability,
    pub migrations: MigrationSource,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        Self {
            postgres_max_connections: 16,
            postgres_acquire_timeout: Duration::from_secs(5),
            sqlite_durability: SqliteDurability::Full,
            migrations: MigrationSource::Embedded,
        }
    }
}

/// One migration known to this binary, and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    /// When it was applied (database time, as text), if it was.
    pub applied_at: Option<String>,
}

/// The schema of a database compared with this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Every migration this binary embeds, in version order.
    pub migrations: Vec<MigrationInfo>,
    /// Versions applied to the database that this binary does not know (a newer bosun
    /// migrated it).
    pub unknown_applied: Vec<i64>,
    /// Applied versions whose checksum differs from this binary's.
    pub modified: Vec<i64>,
}

impl MigrationStatus {
    /// The highest applied version (0 for an empty database).
    pub fn current_version(&self) -> i64 {
        let known = self.migrations.iter().filter(|m| m.applied_at.is_some()).map(|m| m.version).max();
        known.into_iter().chain(self.unknown_applied.iter().copied()).max().unwrap_or(0)
    }

    /// The version this binary migrates to.
    pub fn latest_version(&self) -> i64 {
        self.migrations.iter().map(|m| m.version).max().unwrap_or(0)
    }

    pub fn pending(&self) -> Vec<&MigrationInfo> {
        self.migrations.iter().filter(|m| m.applied_at.is_none()).collect()
    }
}

enum Connection {
    Memory,
    Sqlite { pools: SqlitePools, path: PathBuf, durability: SqliteDurability },
    Postgres(sqlx::PgPool),
}

/// The newest schema version this binary's embedded migrations create on `backend`
/// (`None` for the memory store, which keeps no schema).
pub fn embedded_schema_version(backend: Backend) -> Option<i64> {
    let migrator = match backend {
        Backend::Memory => return None,
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.iter().map(|m| m.version).max()
}

/// A connected database whose schema can be inspected and migrated, and which can then be
/// turned into a store.
pub struct Database {
    location: StoreLocation,
    connection: Connection,
    /// `None` for the memory store, which keeps no schema.
    migrator: Option<Migrator>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("location", &self.location).finish_non_exhaustive()
    }
}

async fn migrator(location: &StoreLocation, source: &MigrationSource) -> Result<Option<Migrator>, OpenError> {
    let mut migrator = match (location, source) {
        (StoreLocation::Memory, _) => return Ok(None),
        (StoreLocation::Sqlite { .. }, MigrationSource::Embedded) => sqlx::migrate!("./migrations/sqlite"),
        (StoreLocation::Postgres { .. }, MigrationSource::Embedded) => sqlx::migrate!("./migrations/postgres"),
        (_, MigrationSource::Directory(dir)) => {
            Migrator::new(dir.as_path()).await.map_err(|e| OpenError::Migration {
                location: location.to_string(),
                cause: format!("cannot read migrations from {}: {e}", dir.display()),
            })?
        }
    };
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    Ok(Some(migrator))
}

/// Describes a connection failure in words an operator can act on.
fn describe_connect_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => format!("authentication failed ({})", db.message()),
            Some("3D000") => format!("{}; create it first", db.message()),
            _ => db.message().to_owned(),
        },
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused; is the server running and listening on that host and port?".to_owned()
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for the server; is it reachable?".to_owned(),
        other => other.to_string(),
    }
}

impl Database {
    pub async fn connect(location: &StoreLocation) -> Result<Database, OpenError> {
        Self::connect_with(location, &ConnectSettings::default()).await
    }

    pub async fn connect_with(location: &StoreLocation, settings: &ConnectSettings) -> Result<Database, OpenError> {
        let connect_error =
            |e: sqlx::Error| OpenError::Connect { location: location.to_string(), cause: describe_connect_error(&e) };
        let connection = match location {
            StoreLocation::Memory => Connection::Memory,
            StoreLocation::Sqlite { path } => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                if !dir.is_dir() {
                    return Err(OpenError::MissingDirectory { location: location.to_string(), dir: dir.to_owned() });
                }
                Connection::Sqlite {
                    pools: sqlite::connect(path).await.map_err(connect_error)?,
                    path: path.clone(),
                    durability: settings.sqlite_durability,
                }
            }
            StoreLocation::Postgres { url } => {
                let pool = tokio::time::timeout(
                    settings.postgres_acquire_timeout + Duration::from_secs(1),
                    postgres::connect(url, settings),
                )
                .await
                .map_err(|_| OpenError::Connect {
                    location: location.to_string(),
                    cause: format!(
                        "no answer within {:?}; is the server reachable?",
                        settings.postgres_acquire_timeout
                    ),
                })?
                .map_err(connect_error)?;
                Connection::Postgres(pool)
            }
        };
        let migrator = migrator(location, &settings.migrations).await?;
        Ok(Database { location: location.clone(), connection, migrator })
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    fn no_schema(&self) -> OpenError {
        OpenError::NoSchema { location: self.location.to_string() }
    }

    fn migration_error(&self, error: MigrateError) -> OpenError {
        let location = self.location.to_string();
        match error {
            MigrateError::VersionMissing(version) => {
                OpenError::SchemaTooNew { location, database_version: version, binary_version: self.latest_known() }
            }
            MigrateError::VersionMismatch(version) => OpenError::Modified { location, version },
            other => OpenError::Migration { location, cause: other.to_string() },
        }
    }

    fn latest_known(&self) -> i64 {
        self.migrator.as_ref().map_or(0, |m| m.iter().map(|m| m.version).max().unwrap_or(0))
    }

    fn migrator(&self) -> Result<&Migrator, OpenError> {
        self.migrator.as_ref().ok_or_else(|| self.no_schema())
    }

    /// Compares the database's applied migrations with this binary's.
    pub async fn status(&self) -> Result<MigrationStatus, OpenError> {
        let migrator = self.migrator()?;
        let applied: Vec<(i64, String, Vec<u8>)> = match &self.connection {
            Connection::Memory => return Err(self.no_schema()),
            Connection::Sqlite { pools, .. } => sqlite::applied_migrations(&pools.writer).await,
            Connection::Postgres(pool) => postgres::applied_migrations(pool).await,
        }
        .map_err(|e| OpenError::Migration { location: self.location.to_string(), cause: e.to_string() })?;
        let ups: Vec<_> = migrator.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
        let migrations = ups
            .iter()
            .map(|m| MigrationInfo {
                version: m.version,
                description: m.description.to_string(),
                applied_at: applied.iter().find(|(v, _, _)| *v == m.version).map(|(_, at, _)| at.clone()),
            })
            .collect();
        let unknown_applied =
            applied.iter().filter(|(v, _, _)| !ups.iter().any(|m| m.version == *v)).map(|(v, _, _)| *v).collect();
        let modified = applied
            .iter()
            .filter(|(v, _, checksum)| {
                ups.iter().any(|m| m.version == *v && m.checksum.as_ref() != checksum.as_slice())
            })
            .map(|(v, _, _)| *v)
            .collect();
        Ok(MigrationStatus { migrations, unknown_applied, modified })
    }

    /// Refuses databases this binary must not write: migrated by a newer bosun, or with a
    /// migration edited after it was applied.
    fn check_compatible(&self, status: &MigrationStatus) -> Result<(), OpenError> {
        if let Some(&version) = status.unknown_applied.iter().max() {
            return Err(OpenError::SchemaTooNew {
                location: self.location.to_string(),
                database_version: version,
                binary_version: status.latest_version(),
            });
        }
        if let Some(&version) = status.modified.first() {
            return Err(OpenError::Modified { location: self.location.to_string(), version });
        }
        Ok(())
    }

    /// Applies every pending migration and returns the ones applied. On SQLite, a file
    /// that already holds data is first copied to `<file>.bak-v<version>-<time>`.
    pub async fn migrate_up(&self) -> Result<Vec<MigrationInfo>, OpenError> {
        let before = self.status().await?;
        self.check_compatible(&before)?;
        let pending: Vec<MigrationInfo> = before.pending().into_iter().cloned().collect();
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let migrator = self.migrator()?;
        match &self.connection {
            Connection::Memory => return Err(self.no_schema()),
            Connection::Sqlite { pools, path, .. } => {
                if sqlite::holds_tables(&pools.writer).await.unwrap_or(true) {
                    self.backup_sqlite(pools, path, before.current_version()).await?;
                }
                migrator.run(&pools.writer).await.map_err(|e| self.migration_error(e))?;
            }
            Connection::Postgres(pool) => {
                // sqlx serializes concurrent migrators on an advisory lock per database.
                migrator.run(pool).await.map_err(|e| self.migration_error(e))?;
            }
        }
        let after = self.status().await?;
        Ok(pending
            .into_iter()
            .filter(|m| after.migrations.iter().any(|a| a.version == m.version && a.applied_at.is_some()))
            .collect())
    }

    async fn backup_sqlite(&self, pools: &SqlitePools, path: &Path, version: i64) -> Result<(), OpenError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let named = |suffix: &str| {
            let mut backup = path.as_os_str().to_owned();
            backup.push(format!(".bak-v{version}-{stamp}{suffix}"));
            PathBuf::from(backup)
        };
        // A second migration from the same version within the second (up, down, up) keeps
        // the first one's backup and numbers its own.
        let backup = std::iter::once(named(""))
            .chain((2..).map(|n| named(&format!("-{n}"))))
            .find(|candidate| !candidate.exists())
            .expect("an unbounded sequence of names has a free one");
        sqlite::vacuum_into(&pools.writer, &backup).await.map_err(|e| OpenError::Backup {
            location: self.location.to_string(),
            path: backup.clone(),
            cause: e.to_string(),
        })?;
        tracing::info!(backup = %backup.display(), "wrote a backup copy before migrating");
        Ok(())
    }

    /// Reverts migrations newer than `target` and returns the ones reverted.
    pub async fn migrate_down(&self, target: i64) -> Result<Vec<MigrationInfo>, OpenError> {
        let before = self.status().await?;
        self.check_compatible(&before)?;
        if target < 0 || target > before.latest_version() {
            return Err(OpenError::BadTarget {
                location: self.location.to_string(),
                target,
                problem: format!("choose a version between 0 and {}", before.latest_version()),
            });
        }
        let migrator = self.migrator()?;
        match &self.connection {
            Connection::Memory => return Err(self.no_schema()),
            Connection::Sqlite { pools, .. } => migrator.undo(&pools.writer, target).await,
            Connection::Postgres(pool) => migrator.undo(pool, target).await,
        }
        .map_err(|e| self.migration_error(e))?;
        Ok(before.migrations.into_iter().filter(|m| m.applied_at.is_some() && m.version > target).rev().collect())
    }

    /// Reverts every migration, then applies them all again: an empty, current schema.
    pub async fn reset(&self) -> Result<(), OpenError> {
        self.migrate_down(0).await?;
        self.migrate_up().await?;
        Ok(())
    }

    /// Fails unless the schema is exactly what this binary expects.
    pub async fn ensure_current(&self) -> Result<(), OpenError> {
        if matches!(self.connection, Connection::Memory) {
            return Ok(());
        }
        let status = self.status().await?;
        self.check_compatible(&status)?;
        if !status.pending().is_empty() {
            return Err(OpenError::SchemaOutdated {
                location: self.location.to_string(),
                database_version: status.current_version(),
                binary_version: status.latest_version(),
            });
        }
        Ok(())
    }

    /// The store over this database. Call [`Database::ensure_current`] or
    /// [`Database::migrate_up`] first.
    pub async fn into_store(self, options: StoreOptions) -> Result<SharedStore, OpenError> {
        Ok(match self.connection {
            Connection::Memory => Arc::new(MemoryStore::new(options)),
            Connection::Sqlite { pools, path, durability } => {
                // The store opens connections of its own; the schema connection is done.
                pools.writer.close().await;
                let store = SqliteStore::open(&path, durability, options)
                    .map_err(|e| OpenError::Connect { location: self.location.to_string(), cause: e.to_string() })?;
                Arc::new(store)
            }
            Connection::Postgres(pool) => Arc::new(PostgresStore::new(pool, options)),
        })
    }

    /// A description of every table, column and index, for comparing schemas (tests of
    /// up -> down -> up, and `bosun db migrate status --verbose`).
    pub async fn schema_fingerprint(&self) -> Result<Vec<String>, OpenError> {
        match &self.connection {
            Connection::Memory => return Err(self.no_schema()),
            Connection::Sqlite { pools, .. } => sqlite::schema_fingerprint(&pools.writer).await,
            Connection::Postgres(pool) => postgres::schema_fingerprint(pool).await,
        }
        .map_err(|e| OpenError::Migration { location: self.location.to_string(), cause: e.to_string() })
    }

    pub async fn close(&self) {
        match &self.connection {
            Connection::Memory => {}
            Connection::Sqlite { pools, .. } => pools.writer.close().await,
            Connection::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
impl Database {
    /// Runs one statement as it is, for migration tests that must write rows an older
    /// schema holds (this binary's store speaks only the newest schema). Returns the rows
    /// affected.
    pub(crate) async fn execute_raw(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match &self.connection {
            Connection::Memory => Ok(0),
            Connection::Sqlite { pools, .. } => {
                Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pools.writer).await?.rows_affected())
            }
            Connection::Postgres(pool) => {
                Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await?.rows_affected())
            }
        }
    }

    /// The value of a `SELECT COUNT(*) ...`.
    pub(crate) async fn count_raw(&self, sql: &str) -> Result<i64, sqlx::Error> {
        match &self.connection {
            Connection::Memory => Ok(0),
            Connection::Sqlite { pools, .. } => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pools.writer).await
            }
            Connection::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await,
        }
    }
}

/// Connects, applies pending migrations, and returns the store: what the server and tests
/// do by default.
pub async fn open_store(location: &StoreLocation, options: StoreOptions) -> Result<SharedStore, OpenError> {
    let database = Database::connect(location).await?;
    database.migrate_up().await.or_else(|e| match e {
        OpenError::NoSchema { .. } => Ok(Vec::new()),
        other => Err(other),
    })?;
    database.into_store(options).await
}
