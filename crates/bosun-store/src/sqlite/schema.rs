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
        .map(|(kind, name, sql)| format!("{kind} {name}: {}", normalize_sql(&sql.unwrap_or_default())))
        .collect())
}

/// SQLite keeps each object's SQL as written, and a table rebuilt by a migration
/// (`CREATE TABLE x_new ...; ALTER TABLE x_new RENAME TO x`) keeps the rebuild's text with
/// the name quoted, as are references to it from other tables. Comments, layout and that
/// quoting say nothing about the schema, so they are dropped before schemas are compared.
fn normalize_sql(sql: &str) -> String {
    let without_comments: Vec<&str> =
        sql.lines().map(|line| line.split_once("--").map_or(line, |(code, _)| code)).collect();
    let collapsed = without_comments.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
    unquote_plain_identifiers(&collapsed).replace("( ", "(").replace(" )", ")")
}

/// `"name"` -> `name` wherever the quoted text is a plain identifier (letters, digits and
/// `_`), which means the same with or without quotes.
fn unquote_plain_identifiers(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('"') {
            Some(close) if close > 0 && after[..close].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                out.push_str(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('"');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_sql;

    #[test]
    fn normalized_sql_ignores_comments_layout_and_a_quoted_rebuilt_name() {
        let written = "CREATE TABLE changes (\n    seq INTEGER, -- the order\n    -- why\n    at INTEGER\n) STRICT";
        let rebuilt = "CREATE TABLE \"changes\" (\n    seq INTEGER,\n    at INTEGER\n) STRICT";
        assert_eq!(normalize_sql(written), normalize_sql(rebuilt));
        assert_eq!(normalize_sql(written), "CREATE TABLE changes (seq INTEGER, at INTEGER) STRICT");
        assert_ne!(normalize_sql("CREATE TABLE t (a TEXT)"), normalize_sql("CREATE TABLE t (a INTEGER)"));
        assert_eq!(
            normalize_sql("CREATE TABLE e (id TEXT REFERENCES \"commands\" (id), note TEXT DEFAULT '\"a b\"')"),
            "CREATE TABLE e (id TEXT REFERENCES commands (id), note TEXT DEFAULT '\"a b\"')"
        );
    }
}
