//! `copy_mounted`: the tree a snapshot's mounts show, copied into a plain directory
//! without mounting anything (no privileges, no mount namespace).

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Stat};

use crate::apply::root;
use crate::snapshot::copy::{Copier, open_dir, open_dir_at, with_copier};
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
    let layers = layer_dirs(mounts)?;
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
    with_copier(root, false, srcs.len() > 1, |copier| {
        merge(copier, &srcs, &dst, Path::new(""))?;
        copier.dir_metadata(&srcs[0], &dst, &top)
    })
    .map_err(io(format!("copy into {}", target.display())))
}

/// The directories a mount stacks, top first.
fn layer_dirs(mounts: &[Mount]) -> Result<Vec<PathBuf>> {
    let [m] = mounts else {
        return Err(Error::InvalidArgument(format!(
            "expected one mount, got {}",
            mounts.len()
        )));
    };
    match m.kind.as_str() {
        "bind" => Ok(vec![m.source.clone()]),
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
            Ok(dirs)
        }
        other => Err(Error::InvalidArgument(format!(
            "cannot copy a {other:?} mount"
        ))),
    }
}

/// Copies the merge of `srcs` (the same directory in each layer, top first) into `dst`.
fn merge(copier: &mut Copier<'_>, srcs: &[OwnedFd], dst: &OwnedFd, rel: &Path) -> io::Result<()> {
    let mut seen: HashSet<OsString> = HashSet::new();
    for (i, src) in srcs.iter().enumerate() {
        for name in root::list(src.as_fd())? {
            // The highest layer holding a name decides what it is, whiteouts included.
            if !seen.insert(name.clone()) {
                continue;
            }
            let st = rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            if is_whiteout(&st) {
                continue;
            }
            let rel = rel.join(&name);
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                copier.entry(src, &name, &st, dst, rel)?;
                continue;
            }
            let mut dirs = vec![open_dir_at(src, &name)?];
            if !is_opaque(&dirs[0]) {
                for lower in &srcs[i + 1..] {
                    match root::lstat(lower.as_fd(), &name)? {
                        None => continue,
                        Some(l) if root::is_dir(&l) => {
                            let fd = open_dir_at(lower, &name)?;
                            let opaque = is_opaque(&fd);
                            dirs.push(fd);
                            if opaque {
                                break;
                            }
                        }
                        // A file or whiteout here hides this name in every lower layer.
                        Some(_) => break,
                    }
                }
            }
            rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700))?;
            let d = open_dir_at(dst, &name)?;
            merge(copier, &dirs, &d, &rel)?;
            copier.dir_metadata(&dirs[0], &d, &st)?;
        }
    }
    Ok(())
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let mut val = [0u8; 2];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut val),
        Ok(1) if val[0] == b'y'
    )
}
