//! SQLite connections: how they are opened, and the pool of readers.
//!
//! The store talks to SQLite through rusqlite on threads of its own rather than through an
//! async driver: a statement then costs a function call, not a hand-off to another thread
//! and back, which is what lets one writer reach thousands of transactions per second and
//! a 100,000-node list finish in a fraction of a second.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::SqliteDurability;
use crate::error::{Result, StoreError};

/// Page cache per reader connection, in KiB (SQLite's negative `cache_size`): enough to
/// keep the nodes table and its indexes of a large fleet in memory.
pub(crate) const READER_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of the writer, which touches every index of every table it writes.
pub(crate) const WRITER_CACHE_KIB: i64 = 128 * 1024;
/// WAL pages between automatic checkpoints (SQLite's default is 1,000). Each checkpoint
/// copies every page changed since the last one into the database file and syncs it;
/// under a steady write load fewer, larger checkpoints copy a hot page once instead of
/// many times.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 32_000;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// How to open connections to one database file.
#[derive(Debug, Clone)]
pub(crate) struct Opener {
    pub path: PathBuf,
    pub durability: SqliteDurability,
}

impl Opener {
    pub fn open(&self, cache_kib: i64) -> rusqlite::Result<Connection> {
        open(&self.path, self.durability, cache_kib)
    }
}

/// Opens a read-write connection with bosun's settings: WAL, foreign keys, a busy timeout
/// for other processes, and the chosen durability.
pub(crate) fn open(path: &Path, durability: SqliteDurability, cache_kib: i64) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            SqliteDurability::Full => "full",
            SqliteDurability::Normal => "normal",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.pragma_update(None, "temp_store", "memory")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

struct PoolInner {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    size: u32,
}

/// A fixed set of reader connections. Each read runs on Tokio's blocking pool with one
/// connection checked out; WAL lets readers run beside the writer.
#[derive(Clone)]
pub(crate) struct ReaderPool(Arc<PoolInner>);

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPool").field("size", &self.0.size).finish_non_exhaustive()
    }
}

/// A checked-out connection; dropping it (also while unwinding from a panic) puts the
/// connection back.
struct Checkout {
    pool: Arc<PoolInner>,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
    }
}

impl ReaderPool {
    pub fn open(opener: &Opener, size: u32) -> rusqlite::Result<Self> {
        let idle = (0..size).map(|_| opener.open(READER_CACHE_KIB)).collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ReaderPool(Arc::new(PoolInner {
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(size as usize)),
            size,
        })))
    }

    /// Runs `read` on a reader connection.
    pub async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let closed = || StoreError::unavailable("the SQLite store is closed");
        let permit = Arc::clone(&self.0.permits).acquire_owned().await.map_err(|_| closed())?;
        let conn = self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).pop().ok_or_else(closed)?;
        let checkout = Checkout { pool: Arc::clone(&self.0), conn: Some(conn), _permit: permit };
        tokio::task::spawn_blocking(move || {
            let checkout = checkout;
            match &checkout.conn {
                Some(conn) => read(conn),
                None => Err(closed()),
            }
        })
        .await
        .map_err(|e| StoreError::unavailable(format!("a SQLite read failed unexpectedly: {e}")))?
    }

    pub fn size(&self) -> u32 {
        self.0.size
    }

    pub fn idle(&self) -> u32 {
        u32::try_from(self.0.permits.available_permits()).unwrap_or(u32::MAX)
    }

    /// Closes every connection; later reads fail with `Unavailable`.
    pub fn close(&self) {
        self.0.permits.close();
        self.0.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
