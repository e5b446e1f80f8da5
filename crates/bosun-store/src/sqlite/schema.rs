//! Schema management for SQLite through sqlx (its migrator records, checksums and reverts
//! migrations). Used by `open` before the store itself opens its own connections.

use std::path::Path;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// The connection that manages one database file's schema.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePools {
    pub writer: SqlitePool,
}

/// Opens (creating if needed) the database file at `path` for schema management.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePools, sqlx::Error> {
    super::file::create_private(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
    let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    Ok(SqlitePools { writer })
}

/// Applied migrations as `(version, applied at, checksum)`; empty before the first one.
pub(crate) async fn applied_migrations(pool: &SqlitePool) -> Result<Vec<(i64, String, Vec<u8>)>, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
            .fetch_optional(pool)
            .await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT version, CAST(installed_on AS TEXT), checksum FROM schema_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
}

/// Whether the file already holds any table (so a migration would change existing data).
pub(crate) async fn holds_tables(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetch_one(pool).await?;
    Ok(count > 0)
}

/// Writes a consistent copy of the database to `target` (safe while in WAL mode).
pub(crate) async fn vacuum_into(pool: &SqlitePool, target: &Path) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM INTO ?").bind(target.to_string_lossy().into_owned()).execute(pool).await?;
    // A backup holds everything the database does, tokens' effects included: owner only.
    super::file::make_private(target)?;
    Ok(())
}

/// Every schema object except the migrations bookkeeping, as `type name: sql` lines with
/// the SQL normalized (see [`normalize_sql`]).
pub(crate) async fn schema_fingerprint(pool: &SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT IN ('schema_migrations', 'sqlite_sequence') \
         AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY type, name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, name, sql)| format!("{kind} {name}: {}", normalize_sql(&sql.unwrap_or_default(), &name)))
        .collect())
}

/// SQLite keeps each object's SQL as written, and a table rebuilt by a migration
/// (`CREATE TABLE x_new ...; ALTER TABLE x_new RENAME TO x`) keeps the rebuild's text with
/// the name quoted. Comments, layout and that quoting say nothing about the schema, so
/// they are dropped before schemas are compared.
fn normalize_sql(sql: &str, name: &str) -> String {
    let without_comments: Vec<&str> =
        sql.lines().map(|line| line.split_once("--").map_or(line, |(code, _)| code)).collect();
    let collapsed = without_comments.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.replacen(&format!("\"{name}\""), name, 1).replace("( ", "(").replace(" )", ")")
}

#[cfg(test)]
mod tests {
    use super::normalize_sql;

    #[test]
    fn normalized_sql_ignores_comments_layout_and_a_quoted_rebuilt_name() {
        let written = "CREATE TABLE changes (\n    seq INTEGER, -- the order\n    -- why\n    at INTEGER\n) STRICT";
        let rebuilt = "CREATE TABLE \"changes\" (\n    seq INTEGER,\n    at INTEGER\n) STRICT";
        assert_eq!(normalize_sql(written, "changes"), normalize_sql(rebuilt, "changes"));
        assert_eq!(normalize_sql(written, "changes"), "CREATE TABLE changes (seq INTEGER, at INTEGER) STRICT");
        assert_ne!(normalize_sql("CREATE TABLE t (a TEXT)", "t"), normalize_sql("CREATE TABLE t (a INTEGER)", "t"));
    }
}
