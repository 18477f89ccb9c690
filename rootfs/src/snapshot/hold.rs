//! Holds: a `flock` per snapshot id that says a live process is still working on it.
//!
//! A snapshot is held while its data directory is filled (before its record exists), and
//! an active extraction snapshot stays held until it is committed or removed. The kernel
//! drops a process's locks when it dies, so a snapshot that is not held has no owner left:
//! its leftovers can go. Unlike a pid in the key, this works across pid namespaces and
//! cannot mistake a recycled pid for the owner.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Holds kept past the call that took them (active extraction snapshots), by lock path.
/// The lock is only taken around a map insert or remove, never across other work.
static KEPT: Mutex<Option<HashMap<PathBuf, OwnedFd>>> = Mutex::new(None);

/// A taken hold; dropping it releases it (the lock file is removed first).
#[derive(Debug)]
pub(crate) struct Hold {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

impl Hold {
    /// Creates and locks `path`. The lock must be on the file the path names: if a
    /// cleanup removed a stale file between our open and our lock, start again.
    pub(crate) fn take(path: &Path) -> io::Result<Hold> {
        loop {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            rustix::fs::flock(&f, FlockOperation::LockExclusive)?;
            let ours = f.metadata()?;
            match fs::metadata(path) {
                Ok(now) if (now.dev(), now.ino()) == (ours.dev(), ours.ino()) => {
                    return Ok(Hold {
                        path: path.to_owned(),
                        fd: Some(f.into()),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps the hold for as long as this process lives, or until [`release`].
    pub(crate) fn keep(mut self) {
        if let Some(fd) = self.fd.take() {
            let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
            kept.get_or_insert_with(HashMap::new)
                .insert(self.path.clone(), fd);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            // Remove the file while still holding it, so no one locks a file on its way out.
            let _ = fs::remove_file(&self.path);
            drop(fd);
        }
    }
}

/// Releases a hold this process kept on `path` (if any) and removes the lock file.
pub(crate) fn release(path: &Path) {
    let fd = KEPT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .and_then(|m| m.remove(path));
    let _ = fs::remove_file(path);
    drop(fd);
}

/// Whether some live process (this one included) holds `path`. A missing file is not held.
pub(crate) fn is_held(path: &Path) -> io::Result<bool> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(false),
        Err(Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Removes `path` if no one holds it; true when it is gone. Locks it first, so a
/// [`Hold::take`] racing with this either sees its file removed and starts again, or
/// wins and keeps it.
pub(crate) fn remove_if_free(path: &Path) -> io::Result<bool> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            fs::remove_file(path)?;
            Ok(true)
        }
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_seen_until_released_and_a_free_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        assert!(!is_held(&p).unwrap());
        let h = Hold::take(&p).unwrap();
        assert!(is_held(&p).unwrap());
        assert!(!remove_if_free(&p).unwrap());
        h.keep();
        assert!(is_held(&p).unwrap());
        release(&p);
        assert!(!is_held(&p).unwrap());
        assert!(!p.exists());
        drop(Hold::take(&p).unwrap());
        assert!(!p.exists(), "a dropped hold removes its file");
        std::fs::write(&p, b"").unwrap();
        assert!(remove_if_free(&p).unwrap());
        assert!(!p.exists());
    }
}
