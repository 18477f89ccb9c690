//! Making a verified ingest a blob: sync, read-only, rename without replacing.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use oci_spec::image::Digest;

use super::ingest::DATA;
use crate::{Error, Result};

/// Syncs the verified data, makes it read-only and renames it into `blobs/` without ever
/// replacing an existing blob (under `blobs_dir/<alg>/<hex>`); then removes the ingest
/// directory.
pub(super) fn publish(
    file: &File,
    dir: &std::path::Path,
    blobs_dir: &std::path::Path,
    digest: &Digest,
) -> Result<()> {
    let data = dir.join(DATA);
    // `blobs/<alg>/<hex>`: a parsed Digest holds no '/' and no empty component.
    let blobs_dir = &blobs_dir.join(digest.algorithm().as_ref());
    let target = blobs_dir.join(digest.digest());
    file.sync_all()
        .map_err(|e| Error::io(format!("sync {}", data.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", data.display()), e))?;
    let mode = meta.permissions().mode();
    // The blob's mtime is its commit time (what `Info::created_at` reports), as containerd
    // does, rather than the time of the last write.
    file.set_modified(SystemTime::now())
        .map_err(|e| Error::io(format!("set times on {}", data.display()), e))?;
    // Read-only, keeping the read bits the umask allowed at creation.
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o444))
        .map_err(|e| Error::io(format!("chmod {}", data.display()), e))?;
    std::fs::create_dir_all(blobs_dir)
        .map_err(|e| Error::io(format!("create {}", blobs_dir.display()), e))?;
    match rename_noreplace(&data, &target) {
        Ok(()) => {}
        Err(e) => {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
            if e.kind() == io::ErrorKind::AlreadyExists {
                // Someone committed the same content first: theirs stays, ours goes.
                let _ = super::ingest::remove_dir(dir);
                return Err(Error::AlreadyExists(digest.to_string()));
            }
            return Err(Error::io(format!("rename to {}", target.display()), e));
        }
    }
    if let Ok(d) = File::open(blobs_dir) {
        let _ = d.sync_all();
    }
    // The blob is committed: failing to clean up the ingest must not undo that.
    if let Err(e) = super::ingest::remove_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a committed ingest");
    }
    Ok(())
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::EXIST => {
            Err(io::Error::from(io::ErrorKind::AlreadyExists))
        }
        // Filesystems without RENAME_NOREPLACE: a hard link never replaces either.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}
