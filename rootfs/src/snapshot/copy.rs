//! Copying a snapshot's tree for the native snapshotter, never following symlinks, and
//! sharing file data cheaply where the filesystem allows.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use crate::apply::root;

/// How regular files are shared between a parent and its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Share {
    /// Hardlink files into snapshots prepared for extraction (keys starting with
    /// [`EXTRACT_KEY_PREFIX`](crate::EXTRACT_KEY_PREFIX), which [`apply_layers`](crate::apply_layers)
    /// uses), and reflink or copy into every other snapshot. An extraction snapshot is
    /// written only by [`apply`](crate::apply), which replaces files instead of writing
    /// into them, and is then committed and never changed, so committed layers can share
    /// inodes safely; a snapshot a container runs on is always an independent copy. Makes
    /// a pull's per-layer copy of the parent cost a link per file instead of its data.
    #[default]
    HardlinkExtract,
    /// Reflink (`FICLONE`) where the filesystem supports it, else copy the data. The copy
    /// is independent of its parent whatever is written to it.
    ReflinkOrCopy,
    /// Hardlink unchanged files into the copy. Only safe while nothing writes into a file
    /// in place: [`apply`](crate::apply) never does (it unlinks and recreates), but a
    /// container running on such a snapshot could change its parent through a shared
    /// inode.
    Hardlink,
}

fn open_dir_at(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn ts(st: &Stat) -> Timestamps {
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

fn owner(st: &Stat) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )
}

fn mode(st: &Stat) -> Mode {
    Mode::from_raw_mode(st.st_mode & 0o7777)
}

fn copy_xattrs(src: impl AsFd, dst: impl AsFd, skip_overlay: bool) -> io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(&src, &mut names[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(Errno::RANGE) => {
            names = vec![0u8; 65536];
            rustix::fs::flistxattr(&src, &mut names[..])?
        }
        Err(e) => return Err(e.into()),
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if skip_overlay && name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let name = <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name);
        let mut val = vec![0u8; 65536];
        let len = rustix::fs::fgetxattr(&src, name, &mut val[..])?;
        match rustix::fs::fsetxattr(&dst, name, &val[..len], XattrFlags::empty()) {
            Ok(()) | Err(Errno::PERM | Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_data(src: &File, dst: &File, len: u64) -> io::Result<()> {
    if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(src, None, dst, None, chunk) {
            Ok(0) => break,
            Ok(n) => left -= n as u64,
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                let mut s = src;
                let mut d = dst;
                io::copy(&mut s, &mut d)?;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copies everything inside `src` into the existing empty directory `dst`, preserving
/// types, owners, modes, times, xattrs and hardlinks between files.
/// With `hardlink`, regular files are linked instead of copied where the filesystem allows.
pub(crate) fn copy_tree(src: &Path, dst: &Path, hardlink: bool) -> io::Result<()> {
    let src_root = open_dir(src)?;
    let dst_root = open_dir(dst)?;
    let top = rustix::fs::fstat(&src_root)?;
    with_copier(dst_root.try_clone()?, hardlink, false, |copier| {
        // A plain copy is the merge of a single layer.
        let srcs = [src_root];
        copier.merge(&srcs, &dst_root, Path::new(""))?;
        copier.dir_metadata(&srcs[0], &dst_root, &top)
    })
}

pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Copies single entries into one destination tree, remembering which source inodes it
/// copied so hardlinked files stay hardlinked. The walk (creating names, in order) stays
/// on the caller's thread; each regular file's data and metadata go to worker threads,
/// so copying large files uses every core instead of one.
pub(crate) struct Copier<'a> {
    dst_root: OwnedFd,
    links: HashMap<(u64, u64), PathBuf>,
    hardlink: bool,
    /// The sources are overlay layers: whiteouts and opaque directories hide what is
    /// below them, and `trusted.overlay.*` xattrs are bookkeeping, not part of the tree.
    overlay: bool,
    jobs: mpsc::SyncSender<FileJob>,
    failed: &'a Mutex<Option<io::Error>>,
}

/// A created regular file still to be filled: data, owner, xattrs, mode, times.
struct FileJob {
    src: File,
    dst: File,
    stat: Stat,
}

impl FileJob {
    fn run(self, overlay: bool) -> io::Result<()> {
        let st = &self.stat;
        copy_data(&self.src, &self.dst, u64::try_from(st.st_size).unwrap_or(0))?;
        let (u, g) = owner(st);
        rustix::fs::fchown(&self.dst, u, g)?;
        copy_xattrs(&self.src, &self.dst, overlay)?;
        rustix::fs::fchmod(&self.dst, mode(st))?;
        rustix::fs::futimens(&self.dst, &ts(st))?;
        Ok(())
    }
}

/// File jobs queued between the walk and the workers.
const QUEUED_FILES: usize = 64;

/// Runs `walk` with a [`Copier`] into the tree rooted at `dst_root` (from overlay layers
/// when `overlay`), with worker threads filling the files it creates; returns once every
/// file is complete, with the first error of the walk or of any worker.
pub(crate) fn with_copier(
    dst_root: OwnedFd,
    hardlink: bool,
    overlay: bool,
    walk: impl FnOnce(&mut Copier<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let (tx, rx) = mpsc::sync_channel::<FileJob>(QUEUED_FILES);
    let rx = Mutex::new(rx);
    let failed = Mutex::new(None);
    let walked = std::thread::scope(|s| {
        for _ in 0..workers {
            std::thread::Builder::new()
                .name("dist-rootfs-copy".into())
                .spawn_scoped(s, || {
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = job else { return };
                        if let Err(e) = job.run(overlay) {
                            failed
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(e);
                        }
                    }
                })?;
        }
        let mut copier = Copier {
            dst_root,
            links: HashMap::new(),
            hardlink,
            overlay,
            jobs: tx,
            failed: &failed,
        };
        walk(&mut copier)
        // Dropping the copier closes the queue; the scope waits for the workers.
    });
    walked?;
    match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Copier<'_> {
    /// Gives directory `dst` the owner, xattrs, mode and times `src` (stat `st`) has.
    /// Call it after the directory's contents are in place (they change its mtime).
    pub(crate) fn dir_metadata(&self, src: &OwnedFd, dst: &OwnedFd, st: &Stat) -> io::Result<()> {
        let (u, g) = owner(st);
        rustix::fs::fchown(dst, u, g)?;
        copy_xattrs(src, dst, self.overlay)?;
        rustix::fs::fchmod(dst, mode(st))?;
        rustix::fs::futimens(dst, &ts(st))?;
        Ok(())
    }

    /// Copies the merge of `srcs` (the same directory in each layer, top first) into
    /// `dst`; `rel` is its path below the destination root. The highest layer holding a
    /// name decides what it is; with `overlay`, a whiteout (a 0/0 character device) hides
    /// the name below it and an opaque directory everything below it, as the kernel's
    /// overlayfs shows them.
    pub(crate) fn merge(&mut self, srcs: &[OwnedFd], dst: &OwnedFd, rel: &Path) -> io::Result<()> {
        let mut seen: HashSet<OsString> = HashSet::new();
        for (i, src) in srcs.iter().enumerate() {
            for name in root::list(src.as_fd())? {
                if srcs.len() > 1 && !seen.insert(name.clone()) {
                    continue;
                }
                let st = rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW)?;
                if self.overlay && is_whiteout(&st) {
                    continue;
                }
                let rel = rel.join(&name);
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.entry(src, &name, &st, dst, rel)?;
                    continue;
                }
                let mut dirs = vec![open_dir_at(src, &name)?];
                if !(self.overlay && is_opaque(&dirs[0])) {
                    for lower in &srcs[i + 1..] {
                        match root::lstat(lower.as_fd(), &name)? {
                            None => continue,
                            Some(l) if root::is_dir(&l) => {
                                let fd = open_dir_at(lower, &name)?;
                                let opaque = self.overlay && is_opaque(&fd);
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
                self.merge(&dirs, &d, &rel)?;
                self.dir_metadata(&dirs[0], &d, &st)?;
            }
        }
        Ok(())
    }

    /// Copies the non-directory `name` (stat `st`) of `src` into `dst` as `name`; `rel` is
    /// its path below the destination root. Sockets are skipped.
    fn entry(
        &mut self,
        src: &OwnedFd,
        name: &OsStr,
        st: &Stat,
        dst: &OwnedFd,
        rel: PathBuf,
    ) -> io::Result<()> {
        let ft = FileType::from_raw_mode(st.st_mode);
        let (u, g) = owner(st);
        match ft {
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1
                    && let Some(first) = self.links.get(&key)
                {
                    let (fname, fparent) = (
                        first.file_name().unwrap_or_default(),
                        first.parent().unwrap_or(Path::new("")),
                    );
                    let pfd = rustix::fs::openat2(
                        &self.dst_root,
                        if fparent.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            fparent
                        },
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                    )?;
                    rustix::fs::linkat(&pfd, fname, dst, name, AtFlags::empty())?;
                    return Ok(());
                }
                if self.hardlink {
                    match rustix::fs::linkat(src, name, dst, name, AtFlags::empty()) {
                        Ok(()) => return Ok(()),
                        Err(Errno::MLINK | Errno::XDEV | Errno::PERM) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(e) = self
                    .failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                {
                    return Err(e);
                }
                let s = File::from(rustix::fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?);
                let d = File::from(rustix::fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?);
                let job = FileJob {
                    src: s,
                    dst: d,
                    stat: *st,
                };
                self.jobs
                    .send(job)
                    .map_err(|_| io::Error::other("file copy workers stopped"))?;
                if st.st_nlink > 1 {
                    self.links.insert(key, rel);
                }
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
                rustix::fs::chownat(dst, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::utimensat(dst, name, &ts(st), AtFlags::SYMLINK_NOFOLLOW)?;
            }
            FileType::Socket => {}
            _ => {
                rustix::fs::mknodat(dst, name, ft, Mode::from_raw_mode(0o600), st.st_rdev)?;
                rustix::fs::chownat(dst, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::chmodat(dst, name, mode(st), AtFlags::empty())?;
                rustix::fs::utimensat(dst, name, &ts(st), AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }
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

/// Removes `path` and everything below it without following symlinks.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::other("cannot remove a root path"));
    };
    let p = rustix::fs::open(
        parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    root::remove_all(p.as_fd(), name)
}

/// Size of regular files (each inode once) and inode count under `path`.
pub(crate) fn usage(path: &Path) -> io::Result<(u64, u64)> {
    let mut seen = std::collections::HashSet::new();
    let (mut size, mut inodes) = (0u64, 0u64);
    let mut work = vec![rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?];
    while let Some(dir) = work.pop() {
        for name in root::list(dir.as_fd())? {
            let st = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            if !seen.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            inodes += 1;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => work.push(open_dir_at(&dir, &name)?),
                FileType::RegularFile => size += u64::try_from(st.st_size).unwrap_or(0),
                _ => {}
            }
        }
    }
    Ok((size, inodes))
}
