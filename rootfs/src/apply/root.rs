//! Filesystem access confined to a root directory.
//!
//! Every path is opened with `openat2(RESOLVE_IN_ROOT)`, so the kernel resolves `..` and
//! symlinks (absolute or relative, from this layer or an earlier one) as if the root were
//! `/`. Everything else happens with `*at` calls on a directory descriptor and a single
//! final name component, never following a symlink in that last component.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::entry::RelPath;

/// The directory a layer is applied into.
pub(crate) struct Root {
    fd: OwnedFd,
    /// The parent directory most recently opened, reused for consecutive entries in one
    /// directory; dropped whenever anything is removed, since that may change resolution.
    cache: Option<(RelPath, OwnedFd, bool)>,
}

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn join(path: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in path {
        p.push(c);
    }
    if p.as_os_str().is_empty() {
        p.push(".");
    }
    p
}

impl Root {
    /// Opens `dir` as the root.
    pub(crate) fn open(dir: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd, cache: None })
    }

    /// Opens the directory at `path`, following symlinks inside the root (also in the
    /// final component when `follow`).
    pub(crate) fn open_dir(&self, path: &[OsString], follow: bool) -> io::Result<OwnedFd> {
        let mut flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        Ok(rustix::fs::openat2(
            &self.fd,
            join(path),
            flags,
            Mode::empty(),
            resolve(),
        )?)
    }

    /// Drops the cached parent directory (after removals that may have detached it).
    pub(crate) fn forget_cache(&mut self) {
        self.cache = None;
    }

    /// The directory `path`, creating missing components (mode 0755, as tar does) when
    /// `create`, with whether it is setgid (new entries then take its group). `Ok(None)`
    /// when it is missing and `create` is false.
    pub(crate) fn dir(
        &mut self,
        path: &[OsString],
        create: bool,
    ) -> io::Result<Option<(BorrowedFd<'_>, bool)>> {
        let hit = matches!(&self.cache, Some((p, _, _)) if p.as_slice() == path);
        if !hit {
            let fd = match self.open_dir(path, true) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    self.create_dirs(path)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let setgid = rustix::fs::fstat(&fd)?.st_mode & 0o2000 != 0;
            self.cache = Some((path.to_vec(), fd, setgid));
        }
        Ok(self
            .cache
            .as_ref()
            .map(|(_, fd, setgid)| (fd.as_fd(), *setgid)))
    }

    fn create_dirs(&self, path: &[OsString]) -> io::Result<OwnedFd> {
        let mut parent = self.open_dir(&[], true)?;
        for i in 0..path.len() {
            match self.open_dir(&path[..=i], true) {
                Ok(fd) => parent = fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&parent, &path[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    parent = self.open_dir(&path[..=i], true)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(parent)
    }
}

/// `lstat` of `name` in `dir`; `None` when absent.
pub(crate) fn lstat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a `stat` result is a directory.
pub(crate) fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Removes `name` from `dir` and, when it is a directory, everything below it. Iterative,
/// so an adversarially deep tree cannot overflow the stack; never follows symlinks.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    struct Level {
        fd: OwnedFd,
        names: Vec<(OsString, bool)>,
    }
    let open = |parent: BorrowedFd<'_>, name: &OsStr| -> io::Result<Level> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::read_from(&fd)? {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let is_dir = ent.file_type() == FileType::Directory;
            names.push((
                <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n).to_owned(),
                is_dir,
            ));
        }
        Ok(Level { fd, names })
    };
    let mut stack: Vec<(Level, OsString)> = vec![(open(dir, name)?, name.to_owned())];
    while let Some((level, _)) = stack.last_mut() {
        match level.names.pop() {
            Some((child, true)) => {
                let next = open(level.fd.as_fd(), &child)?;
                stack.push((next, child));
                continue;
            }
            Some((child, false)) => {
                match rustix::fs::unlinkat(&level.fd, &child, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            None => {}
        }
        let Some((_done, done_name)) = stack.pop() else {
            break;
        };
        let parent = match stack.last() {
            Some((l, _)) => l.fd.as_fd(),
            None => dir,
        };
        match rustix::fs::unlinkat(parent, &done_name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Lists the names in a directory (without `.` and `..`).
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n).to_owned());
        }
    }
    Ok(names)
}

/// A path through `/proc/self/fd` naming `name` inside the directory `dir`, for the few
/// calls (`lsetxattr` on symlinks and devices) that have no `*at` form. The final
/// component is not followed by `l*` calls.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}
