//! The database file itself: created private, and checked to still be the file at its
//! path.
//!
//! An open SQLite connection keeps writing to its file descriptor after the file is
//! deleted or replaced: every acknowledged write then lands in an unlinked inode, and a
//! restart opens an empty (or another) database. The store records the file's device and
//! inode when it opens and checks them before every write; once they differ it refuses
//! all writes with [`StoreError::Lost`].

use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Creates the database file readable and writable by its owner alone, if it does not
/// exist yet. SQLite would create it 0644 (less the umask); its WAL and shared-memory
/// files take the database file's permissions.
pub(crate) fn create_private(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            if let Ok(metadata) = std::fs::metadata(path)
                && metadata.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
                    "the database file is readable by other users; chmod 600 it"
                );
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Restricts a file bosun wrote (such as a backup copy) to its owner.
pub(crate) fn make_private(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Which file a path named when the store opened it.
#[derive(Debug, Clone)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    pub(crate) fn of(path: &Path) -> io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        Ok(Self { path: path.to_owned(), device: metadata.dev(), inode: metadata.ino() })
    }

    /// `Err(Lost)` unless the path still names the file that was opened.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let now = match std::fs::metadata(&self.path) {
            Ok(metadata) if (metadata.dev(), metadata.ino()) == (self.device, self.inode) => return Ok(()),
            Ok(_) => "was replaced by another file",
            Err(error) if error.kind() == io::ErrorKind::NotFound => "was deleted",
            Err(_) => "can no longer be examined",
        };
        Err(StoreError::Lost {
            message: format!(
                "the database file {} {now} while the store had it open; writes are refused rather than acknowledged \
                 into a file nobody will read again. Restore the file (or start on a new one) and restart bosun",
                self.path.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_are_private_and_identity_notices_deletion_and_replacement() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bosun.db");
        create_private(&path).expect("create");
        assert_eq!(std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o600);
        create_private(&path).expect("an existing file is left alone");

        let identity = FileIdentity::of(&path).expect("identity");
        assert!(identity.check().is_ok());
        let moved = dir.path().join("moved.db");
        std::fs::rename(&path, &moved).expect("move");
        assert!(identity.check().unwrap_err().to_string().contains("was deleted"));
        std::fs::write(&path, b"").expect("another file");
        assert!(identity.check().unwrap_err().to_string().contains("was replaced"));
    }
}

#[cfg(test)]
mod store_tests {
    use std::os::unix::fs::PermissionsExt;

    use bosun_core::Clock as _;

    use crate::conformance::{RegisterExt, batch, new_node};
    use crate::testing::TestStore;
    use crate::{Backend, StoreError, StoreLocation};

    /// A database file deleted under a running store: every write is refused with `Lost`
    /// (before: acknowledged into the unlinked file, and a restart found an empty store).
    #[tokio::test]
    async fn a_deleted_or_replaced_database_file_refuses_writes() {
        let test = TestStore::open(Backend::Sqlite).await.expect("sqlite");
        let StoreLocation::Sqlite { path } = test.location.clone() else { panic!("a SQLite location") };
        assert_eq!(std::fs::metadata(&path).expect("file").permissions().mode() & 0o777, 0o600, "created private");
        let now = test.clock.now();
        test.store.commit(batch("register").register(new_node("n1", now))).await.expect("written");
        test.store.check_writable().await.expect("writable");

        std::fs::remove_file(&path).expect("delete the database");
        let lost = test.store.commit(batch("register").register(new_node("n2", now))).await.unwrap_err();
        assert!(matches!(lost, StoreError::Lost { .. }), "{lost:?}");
        assert!(lost.to_string().contains("was deleted"), "{lost}");
        assert!(matches!(test.store.check_writable().await, Err(StoreError::Lost { .. })));
        assert!(matches!(test.store.record_heartbeats(&[]).await, Ok(0)), "nothing to write, nothing refused");

        // Another file at the path is not the one the store opened either.
        std::fs::write(&path, b"").expect("replace");
        let lost = test.store.commit(batch("register").register(new_node("n3", now))).await.unwrap_err();
        assert!(lost.to_string().contains("was replaced"), "{lost}");
    }
}
