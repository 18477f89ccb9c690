//! Cross-process locking of ingest refs.
//!
//! containerd serialises writers of one ref inside its daemon only. We want the same
//! guarantee between independent processes sharing a store directory, so every writer takes
//! an exclusive, non-blocking `flock(2)` on `ingest/<hash-of-ref>/lock`. The kernel drops the
//! lock when the holder exits, even on `SIGKILL`, so a crashed writer never wedges a ref.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::{Error, Result};

/// The name of the lock file inside an ingest directory.
pub(crate) const LOCK_FILE: &str = "lock";

/// How often to retry when the ingest directory is removed under us between `open` and
/// `flock` (a commit or abort finishing at that moment).
const MAX_ATTEMPTS: usize = 16;

/// An exclusive lock on one ingest directory; released on drop (or process exit).
#[derive(Debug)]
pub(crate) struct IngestLock {
    // Held only for its open file description: closing it releases the flock.
    _file: File,
}

impl IngestLock {
    /// Creates `dir` if needed and locks it, failing at once with [`Error::Locked`] when
    /// another writer (in any process) holds it.
    pub(crate) fn acquire(dir: &Path, reference: &str) -> Result<IngestLock> {
        Self::lock(dir, reference, true)
    }

    /// Like [`acquire`](Self::acquire) but never creates the directory: fails with
    /// [`Error::IngestNotFound`] when it is gone.
    pub(crate) fn acquire_existing(dir: &Path, reference: &str) -> Result<IngestLock> {
        Self::lock(dir, reference, false)
    }

    fn lock(dir: &Path, reference: &str, create: bool) -> Result<IngestLock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..MAX_ATTEMPTS {
            if create {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            } else if !dir.is_dir() {
                return Err(Error::IngestNotFound(reference.to_owned()));
            }
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => f,
                // The directory vanished between create_dir_all and open: try again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
            };
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    return Err(Error::Locked(reference.to_owned()));
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("lock {}", path.display()),
                        io::Error::from(e),
                    ));
                }
            }
            // The previous holder may have removed the directory after we opened the file
            // but before we got the lock: then we hold a lock on an unlinked inode that
            // protects nothing. Only a lock on the file still at `path` counts.
            if same_file(&file, &path)? {
                return Ok(IngestLock { _file: file });
            }
        }
        Err(Error::Locked(reference.to_owned()))
    }
}

/// Whether a writer (in any process) holds the ingest in `dir` now. Probes with a shared,
/// non-blocking `flock` that is released at once; a writer opening the ref in that instant
/// sees it busy, which [`open_writer`](crate::open_writer) waits out. `false` when there
/// is no lock file.
pub(crate) fn is_held(dir: &Path) -> Result<bool> {
    is_file_held(&dir.join(LOCK_FILE))
}

/// Whether a process holds an `flock` on the file at `path` (an ingest's or a lease's),
/// probed as [`is_held`] does; `false` when there is no such file.
pub(crate) fn is_file_held(path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        // Closing the file releases the probe's lock.
        Ok(()) => Ok(false),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
        Err(e) => Err(Error::io(
            format!("lock {}", path.display()),
            io::Error::from(e),
        )),
    }
}

fn same_file(file: &File, path: &PathBuf) -> Result<bool> {
    let held = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(held.dev() == now.dev() && held.ino() == now.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("stat {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn second_lock_on_same_dir_is_refused_until_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ingest").join("x");
        let first = IngestLock::acquire(&dir, "r").unwrap();
        let err = IngestLock::acquire(&dir, "r").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        drop(first);
        IngestLock::acquire(&dir, "r").unwrap();
    }

    #[test]
    fn lock_on_a_removed_directory_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("x");
        let first = IngestLock::acquire(&dir, "r").unwrap();
        // Simulate a commit: the holder removes the directory, then releases.
        std::fs::remove_dir_all(&dir).unwrap();
        drop(first);
        let _second = IngestLock::acquire(&dir, "r").unwrap();
        assert!(dir.join(LOCK_FILE).exists());
    }
}
