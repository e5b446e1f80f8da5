//! One `bosun server` per SQLite file.
//!
//! Several replicas elect one leader through the store's lease, which is what PostgreSQL
//! serves them for; a SQLite file has one writer and lives on one machine, so several
//! servers on it would only contend for its lock. A server on a SQLite store therefore holds an exclusive lock on `<file>.server-lock` for its lifetime
//! (an OS file lock: released by the kernel when the process ends, however it ends, so a
//! crash never leaves a stale lock), and writes who holds it into the file for the next
//! one's error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// The lock a running server holds; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct ServerLock {
    file: File,
    path: PathBuf,
}

/// Why a server cannot take the lock.
#[derive(Debug, thiserror::Error)]
pub enum ServerLockError {
    #[error(
        "another bosun server ({holder}) already serves the SQLite store {store}; one server per SQLite file: stop \
         the other one or use another --store (several replicas share a PostgreSQL store, postgres://...)"
    )]
    Held { store: PathBuf, holder: String },
    #[error("cannot lock {path} to serve the SQLite store alone: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
}

impl ServerLock {
    /// The lock file for the SQLite store at `database`: next to the file it names after
    /// symbolic links are followed, so two paths to one file share one lock.
    pub fn path_for(database: &Path) -> PathBuf {
        let database = std::fs::canonicalize(database).unwrap_or_else(|_| database.to_owned());
        let mut name = database.into_os_string();
        name.push(".server-lock");
        PathBuf::from(name)
    }

    /// Takes the lock for the SQLite store at `database`, describing this server as
    /// `holder` (e.g. `pid 4242 on gpu-ctl-1, listening on 10.0.0.5:50051`).
    pub fn acquire(database: &Path, holder: &str) -> Result<Self, ServerLockError> {
        let path = Self::path_for(database);
        let io = |cause| ServerLockError::Io { path: path.clone(), cause };
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Bounded: a holder line is short; anything else is not ours.
                let _ = (&file).take(1024).read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "holder unknown".to_owned(),
                    line => line.to_owned(),
                };
                return Err(ServerLockError::Held { store: database.to_owned(), holder });
            }
            Err(TryLockError::Error(cause)) => return Err(io(cause)),
        }
        let mut lock = Self { file, path: path.clone() };
        lock.describe(holder).map_err(io)?;
        Ok(lock)
    }

    /// Replaces the description of the holder (once the server knows its bound address).
    pub fn describe(&mut self, holder: &str) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(format!("{holder}\n").as_bytes())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ServerLock {
    fn drop(&mut self) {
        // Unlocking happens when the file closes anyway; emptying it keeps a stopped
        // server's description from being shown for the next holder that crashes early.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_is_refused_naming_the_store_and_the_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("bosun.db");
        let first = ServerLock::acquire(&database, "pid 1 on ctl-a").expect("first server");
        assert_eq!(first.path(), dir.path().join("bosun.db.server-lock"));

        let error = ServerLock::acquire(&database, "pid 2 on ctl-b").unwrap_err().to_string();
        assert!(error.contains("(pid 1 on ctl-a)"), "{error}");
        assert!(error.contains(&database.display().to_string()), "{error}");
        assert!(error.contains("stop the other one"), "{error}");
        assert!(error.contains("several replicas share a PostgreSQL store"), "{error}");

        drop(first);
        let mut again = ServerLock::acquire(&database, "pid 3 on ctl-c").expect("free once the first stops");
        assert_eq!(std::fs::read_to_string(again.path()).expect("lock file"), "pid 3 on ctl-c\n");
        again.describe("pid 3 on ctl-c, address 127.0.0.1:41000").expect("describe");
        assert_eq!(
            std::fs::read_to_string(again.path()).expect("lock file"),
            "pid 3 on ctl-c, address 127.0.0.1:41000\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_to_the_file_is_the_same_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("bosun.db");
        std::fs::write(&database, b"").expect("database file");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&database, &link).expect("symlink");
        let _first = ServerLock::acquire(&database, "first").expect("first");
        let error = ServerLock::acquire(&link, "second").unwrap_err().to_string();
        assert!(error.contains("(first)"), "{error}");
    }

    #[test]
    fn another_store_is_another_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _a = ServerLock::acquire(&dir.path().join("a.db"), "a").expect("a");
        let _b = ServerLock::acquire(&dir.path().join("b.db"), "b").expect("b");
    }
}
