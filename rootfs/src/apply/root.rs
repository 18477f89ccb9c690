//! Filesystem access confined to a root directory.
//!
//! A parent directory is reached one component at a time from a directory already
//! resolved inside the root, with `openat(O_NOFOLLOW | O_DIRECTORY)`: a plain directory is
//! the only thing such a step can open. A component that is a symlink (or anything but a
//! directory) is resolved instead with `openat2(RESOLVE_IN_ROOT)` from the root, so the
//! kernel follows it (absolute or relative, from this layer or an earlier one) as if the
//! root were `/`. Everything else happens with `*at` calls on a directory descriptor and
//! a single final name component, never following a symlink in that last component.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::entry::RelPath;

/// Deeper parents, or longer ones in bytes, are opened by one `openat2` from the root
/// (which then fails on a path over `PATH_MAX`, as it always did) instead of keeping a
/// descriptor per component.
const MAX_CHAIN: usize = 64;
const PATH_MAX: usize = 4096;

/// One open directory of [`Root`]'s chain.
struct Link {
    /// The path component this link stands for.
    name: OsString,
    fd: OwnedFd,
    /// Whether new entries in it take its group (set-group-ID).
    setgid: bool,
    /// Whether it was reached by following a symlink: the directory then depends on
    /// more than its own ancestors, so any removal drops the whole chain.
    followed: bool,
}

/// The directory a layer is applied into.
pub(crate) struct Root {
    fd: OwnedFd,
    root_setgid: bool,
    /// The open directories along the parent path resolved last: `chain[i]` is what
    /// `path[..=i]` resolves to. Consecutive entries share most of their parents, so an
    /// entry usually costs no lookup at all, and a move to a sibling directory one
    /// `openat`. Only removals can change what a path resolves to; the writer reports
    /// each one ([`Root::removed`], [`Root::forget_cache`]).
    chain: Vec<Link>,
    /// A parent too deep for the chain, opened from the root.
    deep: Option<(RelPath, OwnedFd, bool)>,
}

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

pub(crate) fn join(path: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in path {
        p.push(c);
    }
    if p.as_os_str().is_empty() {
        p.push(".");
    }
    p
}

/// Opens the directory `name` inside `dir` without following a symlink.
fn open_child(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn is_setgid(fd: impl AsFd) -> io::Result<bool> {
    Ok(rustix::fs::fstat(fd)?.st_mode & 0o2000 != 0)
}

impl Root {
    /// Opens `dir` as the root.
    pub(crate) fn open(dir: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let root_setgid = is_setgid(&fd)?;
        Ok(Root {
            fd,
            root_setgid,
            chain: Vec::new(),
            deep: None,
        })
    }

    /// Opens the directory at `path`, following symlinks inside the root (also in the
    /// final component when `follow`).
    pub(crate) fn open_dir(&self, path: &[OsString], follow: bool) -> io::Result<OwnedFd> {
        self.open_dir_at(&join(path), follow)
    }

    /// [`Self::open_dir`] of a path already joined (`.` for the root).
    pub(crate) fn open_dir_at(&self, path: &Path, follow: bool) -> io::Result<OwnedFd> {
        let mut flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        Ok(rustix::fs::openat2(
            &self.fd,
            path,
            flags,
            Mode::empty(),
            resolve(),
        )?)
    }

    /// Drops every cached directory (after removals that may have detached any of them).
    pub(crate) fn forget_cache(&mut self) {
        self.chain.clear();
        self.deep = None;
    }

    /// Reports that a name was removed from the directory `parent` (one the chain may
    /// hold). Directories below it may be gone; one reached through a symlink may have
    /// depended on what was removed.
    pub(crate) fn removed(&mut self, parent: &[OsString]) {
        if self.chain.iter().any(|l| l.followed) {
            self.chain.clear();
        } else {
            let keep = self
                .chain
                .iter()
                .zip(parent)
                .take_while(|(l, c)| l.name == **c)
                .count();
            self.chain.truncate(keep);
        }
        self.deep = None;
    }

    /// Hands over `fd`, the directory `name` just created (or found to be a directory)
    /// in `parent`, so entries inside it need no lookup. Dropped unless `parent` is
    /// where the chain ends.
    pub(crate) fn adopt(&mut self, parent: &[OsString], name: &OsStr, fd: OwnedFd, setgid: bool) {
        let at_parent = self.deep.is_none()
            && self.chain.len() == parent.len()
            && parent.len() < MAX_CHAIN
            && self.chain.iter().zip(parent).all(|(l, c)| l.name == *c);
        if at_parent {
            self.chain.push(Link {
                name: name.to_owned(),
                fd,
                setgid,
                followed: false,
            });
        }
    }

    /// The directory `path`, creating missing components (mode 0755, as tar does) when
    /// `create`, with whether it is setgid (new entries then take its group). `Ok(None)`
    /// when it is missing and `create` is false.
    pub(crate) fn dir(
        &mut self,
        path: &[OsString],
        create: bool,
    ) -> io::Result<Option<(BorrowedFd<'_>, bool)>> {
        let bytes = path.iter().map(|c| c.len() + 1).sum::<usize>();
        if path.len() > MAX_CHAIN || bytes >= PATH_MAX {
            return self.deep_dir(path, create);
        }
        self.deep = None;
        let keep = self
            .chain
            .iter()
            .zip(path)
            .take_while(|(l, c)| l.name == **c)
            .count();
        self.chain.truncate(keep);
        for i in keep..path.len() {
            let (parent, parent_setgid) = match self.chain.last() {
                Some(l) => (l.fd.as_fd(), l.setgid),
                None => (self.fd.as_fd(), self.root_setgid),
            };
            let name = &path[i];
            let (fd, setgid, followed) = match open_child(parent, name) {
                Ok(fd) => {
                    let setgid = is_setgid(&fd)?;
                    (fd, setgid, false)
                }
                Err(Errno::NOENT) if !create => return Ok(None),
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                        // A new directory inherits the set-group-ID bit of its parent.
                        Ok(()) => (open_child(parent, name)?, parent_setgid, false),
                        Err(Errno::EXIST) => match self.follow(&path[..=i], create)? {
                            Some(l) => l,
                            None => return Ok(None),
                        },
                        Err(e) => return Err(e.into()),
                    }
                }
                // A symlink (ELOOP, or ENOTDIR with O_DIRECTORY) or not a directory at
                // all: resolve the whole prefix from the root, following symlinks.
                Err(Errno::LOOP | Errno::NOTDIR) => match self.follow(&path[..=i], create)? {
                    Some(l) => l,
                    None => return Ok(None),
                },
                Err(e) => return Err(e.into()),
            };
            self.chain.push(Link {
                name: name.clone(),
                fd,
                setgid,
                followed,
            });
        }
        let (fd, setgid) = match self.chain.last() {
            Some(l) => (l.fd.as_fd(), l.setgid),
            None => (self.fd.as_fd(), self.root_setgid),
        };
        Ok(Some((fd, setgid)))
    }

    /// Opens `prefix` from the root, following symlinks inside it: a component the chain
    /// could not step into. A dangling symlink is missing (an error when `create`, as
    /// nothing can be created through it).
    fn follow(
        &self,
        prefix: &[OsString],
        create: bool,
    ) -> io::Result<Option<(OwnedFd, bool, bool)>> {
        match self.open_dir(prefix, true) {
            Ok(fd) => {
                let setgid = is_setgid(&fd)?;
                Ok(Some((fd, setgid, true)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Root::dir`] for a parent too deep or long for the chain: one `openat2` of the
    /// whole path, kept until the next call.
    fn deep_dir(
        &mut self,
        path: &[OsString],
        create: bool,
    ) -> io::Result<Option<(BorrowedFd<'_>, bool)>> {
        let hit = matches!(&self.deep, Some((p, _, _)) if p.as_slice() == path);
        if !hit {
            self.chain.clear();
            let fd = match self.open_dir(path, true) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    self.create_dirs(path)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let setgid = is_setgid(&fd)?;
            self.deep = Some((path.to_vec(), fd, setgid));
        }
        Ok(self
            .deep
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
