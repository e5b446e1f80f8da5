//! Online backups of a SQLite store through SQLite's backup API, safe while a server
//! writes to it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, StoreError};

/// Copies the database at `source` into a new file `out` (mode 0600), page by page from
/// one read transaction: a consistent snapshot of the last committed state, taken beside a
/// running writer (WAL lets the writer go on meanwhile). Returns the pages copied.
pub(crate) fn online_backup(source: &Path, out: &Path) -> Result<u64> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| StoreError::unavailable(format!("{what}: {e}"));
    if !source.exists() {
        return Err(StoreError::unavailable(format!("{} does not exist", source.display())));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| unavailable(&format!("cannot create {}", out.display()), &e))?;
    super::file::make_private(out).map_err(|e| unavailable(&format!("cannot protect {}", out.display()), &e))?;
    let copy = || -> rusqlite::Result<u64> {
        let from =
            Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        from.busy_timeout(std::time::Duration::from_secs(30))?;
        let mut to = Connection::open(out)?;
        let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
        // All pages in one step: one read transaction, so writers elsewhere never make the
        // backup start over (they would after every commit if it went step by step).
        backup.step(-1)?;
        Ok(u64::try_from(backup.progress().pagecount).unwrap_or(0))
    };
    copy().map_err(|e| {
        let _ = std::fs::remove_file(out);
        unavailable(&format!("backing up {}", source.display()), &e)
    })
}
