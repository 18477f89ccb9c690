//! Entry metadata: owner, xattrs, mode and times, applied in the one safe order (chown
//! clears setuid bits and file capabilities, so it comes first; mode after).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::entry::Header;
use super::root;
use crate::Error;
use crate::Result;

pub(super) fn ctx(h: &Header, what: &str) -> impl FnOnce(io::Error) -> Error {
    let entry = h.name.clone();
    let what = what.to_owned();
    move |e| Error::io(format!("entry {entry:?}: {what}"), e)
}

pub(super) fn errno_ctx(h: &Header, what: &str) -> impl FnOnce(Errno) -> Error {
    let f = ctx(h, what);
    move |e| f(e.into())
}

pub(super) fn times(mtime: (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.0,
        tv_nsec: i64::from(mtime.1),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

pub(super) fn stat_times(st: &rustix::fs::Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// What [`fd_metadata`] sets besides owner and xattrs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Finish {
    /// Nothing (directories: mode and times come after their contents).
    Deferred,
    /// Times only: the inode was created with its final mode.
    Times,
    /// Mode and times.
    ModeAndTimes,
}

/// Owner, xattrs, then mode and times as `finish` says, through a descriptor. Order
/// matters: chown clears setuid bits and file capabilities.
pub(super) fn fd_metadata(
    fd: &impl AsFd,
    h: &Header,
    owner: Option<(u32, u32)>,
    finish: Finish,
) -> Result<()> {
    if let Some((u, g)) = owner {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(u)),
            Some(rustix::fs::Gid::from_raw(g)),
        )
        .map_err(errno_ctx(h, "chown"))?;
    }
    for (k, v) in &h.xattrs {
        if skip_xattr(h, k) {
            continue;
        }
        let r = rustix::fs::fsetxattr(fd, k.as_os_str(), v, XattrFlags::empty());
        xattr_result(h, k, r)?;
    }
    if finish == Finish::ModeAndTimes {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(h.mode)).map_err(errno_ctx(h, "chmod"))?;
    }
    if finish != Finish::Deferred {
        rustix::fs::futimens(fd, &times(h.mtime)).map_err(errno_ctx(h, "set times"))?;
    }
    Ok(())
}

/// The process umask, read without changing it (`/proc/self/status`, Linux 4.7+).
pub(super) fn current_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// The same for symlinks and special files, by name in their directory without
/// following the final component.
pub(super) fn at_metadata(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    h: &Header,
    owner: Option<(u32, u32)>,
    chmod: bool,
) -> Result<()> {
    if let Some((u, g)) = owner {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(u)),
            Some(rustix::fs::Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno_ctx(h, "chown"))?;
    }
    if !h.xattrs.is_empty() {
        let p = root::proc_path(dir, name);
        for (k, v) in &h.xattrs {
            if skip_xattr(h, k) {
                continue;
            }
            let r = rustix::fs::lsetxattr(&p, k.as_os_str(), v, XattrFlags::empty());
            xattr_result(h, k, r)?;
        }
    }
    if chmod {
        // Only special files get here; they were just created by mknodat, so the name
        // is not a symlink (fchmodat cannot refuse to follow one on Linux).
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(h.mode), AtFlags::empty())
            .map_err(errno_ctx(h, "chmod"))?;
    }
    rustix::fs::utimensat(dir, name, &times(h.mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(errno_ctx(h, "set times"))
}

/// An xattr name for messages: it comes from the layer and can be long.
fn elided(name: &OsStr) -> String {
    dist_content::elide(&name.to_string_lossy())
}

fn skip_xattr(h: &Header, name: &OsStr) -> bool {
    // overlayfs reads these (`user.*` with the `userxattr` mount option): a layer must not
    // be able to mark directories opaque or redirect lookups in another snapshot.
    let n = name.as_bytes();
    if n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.") {
        tracing::warn!(entry = %h.name, xattr = %elided(name), "ignoring overlayfs xattr from the layer");
        return true;
    }
    false
}

fn xattr_result(h: &Header, name: &OsStr, r: rustix::io::Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => {
            tracing::warn!(entry = %h.name, xattr = %elided(name), "xattr not supported or not permitted here; skipped");
            Ok(())
        }
        Err(e) => Err(errno_ctx(h, &format!("set xattr {:?}", elided(name)))(e)),
    }
}
