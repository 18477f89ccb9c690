//! Whether overlay snapshots can work on a filesystem: tried, not guessed from the kernel
//! version or the uid, since what decides it (device nodes and `trusted.*` xattrs on that
//! filesystem, overlay mounts in this namespace) varies with the mount and the sandbox.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::Path;

use rustix::fs::{CWD, FileType, Mode, XattrFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use super::meta::Store;

/// Builds a lower directory with a file and a directory holding a file, an upper one that
/// whites out the file and makes the directory opaque, mounts the overlay of the two under
/// a scratch directory in `dir` and checks that both are hidden; removes it all again.
pub(crate) fn overlay(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let scratch = dir.join(format!(".overlay-probe-{}", Store::new_id()));
    fs::create_dir(&scratch)?;
    let tried = try_overlay(&scratch);
    let removed = super::copy::remove_tree(&scratch);
    tried.and(removed)
}

fn try_overlay(scratch: &Path) -> io::Result<()> {
    let [lower, upper, work, merged] =
        ["lower", "upper", "work", "merged"].map(|d| scratch.join(d));
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d)?;
    }
    fs::write(lower.join("gone"), b"")?;
    fs::create_dir(lower.join("dir"))?;
    fs::write(lower.join("dir/hidden"), b"")?;
    rustix::fs::mknodat(
        CWD,
        upper.join("gone"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("creating a whiteout device: {e}")))?;
    fs::create_dir(upper.join("dir"))?;
    rustix::fs::setxattr(
        upper.join("dir"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .map_err(|e| io::Error::new(e.kind(), format!("setting trusted.overlay.opaque: {e}")))?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = CString::new(data).map_err(io::Error::other)?;
    rustix::mount::mount("overlay", &merged, "overlay", MountFlags::empty(), &*data)
        .map_err(|e| io::Error::new(e.kind(), format!("mounting an overlay: {e}")))?;
    let hidden = |p: &str| match fs::symlink_metadata(merged.join(p)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(io::Error::other(format!("the overlay shows {p}"))),
    };
    let checked = hidden("gone").and_then(|()| hidden("dir/hidden"));
    let unmounted = rustix::mount::unmount(&merged, UnmountFlags::DETACH).map_err(io::Error::from);
    checked.and(unmounted)
}
