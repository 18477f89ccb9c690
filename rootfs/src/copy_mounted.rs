//! `copy_mounted`: the tree a snapshot's mounts show, copied into a plain directory
//! without mounting anything (no privileges, no mount namespace).

use std::io;
use std::path::{Path, PathBuf};

use crate::snapshot::copy::{open_dir, with_copier};
use crate::{Error, Mount, Result};

/// Copies the file tree that `mounts` (from [`Snapshotter::view`](crate::Snapshotter::view),
/// [`Snapshotter::mounts`](crate::Snapshotter::mounts) or
/// [`Snapshotter::prepare`](crate::Snapshotter::prepare)) would show into `target`, an
/// existing empty directory, without mounting them. Blocking.
///
/// A bind mount is copied as it is. An overlay mount is merged the way overlayfs would:
/// the upper directory over each `lowerdir` in order, a whiteout (a 0/0 character device)
/// hiding the name below it, an opaque directory (`trusted.overlay.opaque=y`) hiding
/// everything below it, so only what the merged view shows is ever copied. Owners, modes,
/// times, xattrs (except overlay's own) and hardlinks are kept; the copy shares nothing
/// with the snapshot, so writing into it never changes the snapshot.
///
/// Turning an unpacked snapshot into a directory this way costs a file copy instead of
/// decompressing and applying every layer again.
pub fn copy_mounted(mounts: &[Mount], target: &Path) -> Result<()> {
    let (layers, overlay) = layer_dirs(mounts)?;
    let io = |what: String| move |e: io::Error| Error::io(what, e);
    let dst = open_dir(target).map_err(io(format!("open {}", target.display())))?;
    let srcs = layers
        .iter()
        .map(|l| open_dir(l).map_err(io(format!("open {}", l.display()))))
        .collect::<Result<Vec<_>>>()?;
    let top = rustix::fs::fstat(&srcs[0])
        .map_err(|e| Error::io(format!("stat {}", layers[0].display()), e.into()))?;
    let root = dst
        .try_clone()
        .map_err(io(format!("open {}", target.display())))?;
    with_copier(root, false, overlay, |copier| {
        copier.merge(&srcs, &dst, Path::new(""))?;
        copier.dir_metadata(&srcs[0], &dst, &top)
    })
    .map_err(io(format!("copy into {}", target.display())))
}

/// The directories a mount stacks, top first, and whether they are overlay layers.
fn layer_dirs(mounts: &[Mount]) -> Result<(Vec<PathBuf>, bool)> {
    let [m] = mounts else {
        return Err(Error::InvalidArgument(format!(
            "expected one mount, got {}",
            mounts.len()
        )));
    };
    match m.kind.as_str() {
        "bind" => Ok((vec![m.source.clone()], false)),
        "overlay" => {
            let option = |key: &str| m.options.iter().find_map(|o| o.strip_prefix(key));
            let mut dirs: Vec<PathBuf> =
                option("upperdir=").map(PathBuf::from).into_iter().collect();
            dirs.extend(
                option("lowerdir=")
                    .unwrap_or_default()
                    .split(':')
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from),
            );
            if dirs.is_empty() {
                return Err(Error::InvalidArgument(
                    "overlay mount without upperdir or lowerdir".into(),
                ));
            }
            Ok((dirs, true))
        }
        other => Err(Error::InvalidArgument(format!(
            "cannot copy a {other:?} mount"
        ))),
    }
}

/// Whether files under `src` can be reflinked (`FICLONE`) into `target`: both on one
/// filesystem, and that filesystem shares extents (XFS with reflink, btrfs, bcachefs).
/// A cheap probe: a stat of each, and a one-byte clone between two unnamed files in
/// `target` that vanish when closed. Blocking.
pub fn reflink_supported(src: &Path, target: &Path) -> bool {
    let probe = || -> io::Result<bool> {
        let s = rustix::fs::stat(src)?;
        let t = rustix::fs::stat(target)?;
        if s.st_dev != t.st_dev {
            return Ok(false);
        }
        let tmp = || {
            rustix::fs::open(
                target,
                rustix::fs::OFlags::TMPFILE
                    | rustix::fs::OFlags::RDWR
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o600),
            )
        };
        let (a, b) = (tmp()?, tmp()?);
        rustix::io::write(&a, b"x")?;
        Ok(rustix::fs::ioctl_ficlone(&b, &a).is_ok())
    };
    probe().unwrap_or(false)
}
