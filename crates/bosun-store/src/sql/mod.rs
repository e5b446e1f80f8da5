//! Helpers shared by the SQL backends: JSON column codecs, error mapping and slow-statement
//! logging. Nothing here knows a particular database.

use std::future::Future;
use std::time::{Duration, Instant};

use bosun_core::ResourceKind;
use serde::Serialize;

use crate::error::StoreError;

/// Encodes a value for a JSON column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Domain types hold only strings, numbers, bools, maps with string keys and
    // sequences: serializing them cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Parses a stored enum or id, naming the column on failure.
pub(crate) fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| StoreError::corrupt(what, e))
}

/// Reads an optional stored value.
pub(crate) fn parse_opt<T: std::str::FromStr>(what: &str, text: Option<&str>) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.map(|t| parse(what, t)).transpose()
}

/// Converts a non-negative stored integer.
pub(crate) fn unsigned<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::corrupt(what, format_args!("{value} is out of range")))
}

/// Maps a driver error to the store's typed errors. `context` names the resource a
/// uniqueness violation is about, when the caller knows it.
pub(crate) fn map_err(error: sqlx::Error, context: Option<(ResourceKind, &str)>) -> StoreError {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => match context {
                    Some((kind, id)) => StoreError::already_exists(kind, id),
                    None => StoreError::invalid("record", format_args!("duplicate key: {message}")),
                },
                ErrorKind::ForeignKeyViolation => {
                    StoreError::invalid("reference", format_args!("refers to a missing record: {message}"))
                }
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    StoreError::invalid("record", format_args!("violates a schema constraint: {message}"))
                }
                _ if is_busy(db.code().as_deref()) => StoreError::unavailable(format!("database busy: {message}")),
                _ if is_bad_value(db.code().as_deref()) => {
                    StoreError::invalid("record", format_args!("holds a value the database cannot store: {message}"))
                }
                _ => StoreError::unavailable(format!("database error: {message}")),
            }
        }
        sqlx::Error::RowNotFound => match context {
            Some((kind, id)) => StoreError::not_found(kind, id),
            None => StoreError::corrupt("row", "expected row is missing"),
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::corrupt("row", error),
        sqlx::Error::PoolClosed => StoreError::unavailable("the store is closed"),
        other => StoreError::unavailable(other.to_string()),
    }
}

/// PostgreSQL data exceptions (class 22: a number out of range, a NUL byte in text, a bad
/// date) and program limits (class 54: a value too large to index): caused by a value in
/// the request, so bad input, never an outage.
fn is_bad_value(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("22") || code.starts_with("54"))
}

/// SQLite busy/locked, PostgreSQL serialization failures and deadlocks: retry later.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "261" | "40001" | "40P01" | "55P03"))
}

/// Logs statements slower than a threshold at WARN, by name only: parameters can carry
/// tokens or personal data and never reach the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlowLog {
    pub threshold: Duration,
}

impl SlowLog {
    pub async fn run<T>(&self, statement: &'static str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = work.await;
        self.observe(statement, started.elapsed());
        result
    }

    /// Records how long `statement` took, warning if that was too long.
    pub fn observe(&self, statement: &'static str, elapsed: Duration) {
        if elapsed >= self.threshold {
            tracing::warn!(statement, elapsed_ms = elapsed.as_millis() as u64, "slow store statement");
        }
    }
}

/// Formats a JSON path selecting one label (`$."gpu"`). Label keys are validated to
/// `[A-Za-z0-9._/-]`, so they never need escaping inside the quotes.
pub(crate) fn label_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

pub(crate) mod ledger_rows;
pub(crate) mod rows;

#[cfg(test)]
mod tests {
    use super::*;

    /// A value the database refuses is the request's fault: `Invalid`, which callers
    /// answer as invalid_argument, never `Unavailable`, which would count as an outage.
    #[tokio::test]
    async fn postgres_value_errors_are_invalid_not_unavailable() {
        use sqlx::Connection as _;
        let Some(url) = crate::testing::postgres_admin_url() else { return };
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        for statement in [
            "SELECT 9223372036854775807::bigint + 1",
            "SELECT 'infinity'::timestamptz + interval '1 day' - '300000-01-01'::timestamptz",
            "SELECT make_date(300000, 1, 1)::timestamptz",
            "SELECT convert_from('\\x00'::bytea, 'UTF8')",
        ] {
            let error = sqlx::query(statement).execute(&mut conn).await.expect_err(statement);
            let mapped = map_err(error, None);
            assert!(matches!(mapped, StoreError::Invalid(_)), "{statement}: {mapped:?}");
        }
    }

    #[test]
    fn sqlite_value_errors_are_invalid_not_unavailable() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        // Larger than SQLITE_MAX_LENGTH.
        let error = conn.query_row("SELECT zeroblob(2000000000)", [], |_| Ok(())).expect_err("too large");
        let mapped = crate::sqlite::map_error(error, None);
        assert!(matches!(mapped, StoreError::Invalid(_)), "{mapped:?}");
    }
}
