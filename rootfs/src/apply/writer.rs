//! The applier: turns entry headers and file data into filesystem changes with the layer
//! semantics (replace, whiteout, opaque) and deferred directory metadata.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::entry::{Header, Kind, RelPath, display};
use super::metadata::{self, Finish, ctx, errno_ctx, stat_times, times};
use super::root::{self, Root};
use super::{ApplyOptions, WhiteoutMode};
use crate::{Error, Result, idmap};

/// The xattr overlayfs reads to hide a lower directory's contents.
pub(crate) const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// A file whose data is still arriving.
struct OpenFile {
    file: File,
    header: Header,
    /// The owner to set, when it differs from the creator's.
    owner: Option<(u32, u32)>,
    /// Whether the mode still needs setting.
    finish: Finish,
}

/// A set of paths inside the root, each stored as one `/`-joined byte string: a layer with
/// many files marks every path, and a vector of components per path cost about five
/// times the memory.
#[derive(Default)]
struct PathSet(HashSet<Box<[u8]>>);

impl PathSet {
    fn key(path: &[OsString]) -> Vec<u8> {
        let len = path
            .iter()
            .map(|c| c.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        let mut key = Vec::with_capacity(len);
        for (i, c) in path.iter().enumerate() {
            if i > 0 {
                key.push(b'/');
            }
            key.extend_from_slice(c.as_encoded_bytes());
        }
        key
    }

    /// Adds `path`; false if it was there already.
    fn insert(&mut self, path: &[OsString]) -> bool {
        // The key is built at its exact length, so boxing it does not reallocate.
        self.0.insert(Self::key(path).into_boxed_slice())
    }

    fn contains(&self, path: &[OsString]) -> bool {
        self.0.contains(Self::key(path).as_slice())
    }
}

/// Directory metadata applied after the directory's contents. The path is kept joined
/// (one allocation, not one per component): a layer can hold tens of thousands of
/// directories.
struct DeferredDir {
    path: PathBuf,
    depth: usize,
    mode: u32,
    mtime: (i64, u32),
}

impl DeferredDir {
    fn new(h: &Header) -> Self {
        DeferredDir {
            path: root::join(&h.path),
            depth: h.path.len(),
            mode: h.mode,
            mtime: h.mtime,
        }
    }

    /// The path for messages, as [`display`] shows an entry's.
    fn shown(&self) -> String {
        let p = self.path.to_string_lossy();
        let p = if p == "." { "" } else { &p };
        dist_content::elide(&format!("/{p}"))
    }
}

/// Decides, per entry that creates something, whether the applier skips writing it
/// (the flattened apply's hook: an entry a later layer removes). Sees every such entry
/// of the layer, in order; an error stops the layer.
pub(crate) trait EntryFilter {
    /// True to skip `h`; only ever asked for entries that create something.
    fn skip(&mut self, h: &Header) -> Result<bool>;
}

/// Applies one layer's entries, in archive order, inside a [`Root`].
pub(crate) struct Applier<'o> {
    root: Root,
    opts: &'o ApplyOptions,
    filter: Option<&'o mut (dyn EntryFilter + Send)>,
    /// Every path this layer created or touched (and their ancestors), so an opaque marker
    /// removes only what lower layers put there.
    ours: PathSet,
    dirs: Vec<DeferredDir>,
    open: Option<OpenFile>,
    /// The (uid, gid) new inodes get: a chown to it is skipped.
    creator: (u32, u32),
    /// The process umask, when known: files whose mode it leaves intact are created with
    /// their final mode.
    umask: Option<u32>,
}

impl<'o> Applier<'o> {
    /// Opens `dir` as the root to apply into.
    pub(crate) fn new(dir: &Path, opts: &'o ApplyOptions) -> Result<Self> {
        let root =
            Root::open(dir).map_err(|e| Error::io(format!("open root {}", dir.display()), e))?;
        Ok(Applier {
            root,
            opts,
            filter: None,
            ours: PathSet::default(),
            dirs: Vec::new(),
            open: None,
            creator: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            umask: metadata::current_umask(),
        })
    }

    /// Consults `filter` before each entry that creates something.
    pub(crate) fn with_filter(mut self, filter: Option<&'o mut (dyn EntryFilter + Send)>) -> Self {
        self.filter = filter;
        self
    }

    /// Starts an entry; a regular file then receives its data through [`Self::data`].
    pub(crate) fn begin(&mut self, h: Header) -> Result<()> {
        self.close_file()?;
        match &h.kind {
            Kind::Whiteout => self.whiteout(&h),
            Kind::Opaque => self.opaque(&h),
            _ if h.path.is_empty() => {
                if h.kind == Kind::Dir {
                    self.directory(&h)
                } else {
                    tracing::warn!(entry = %h.name, "skipping non-directory entry naming the root");
                    Ok(())
                }
            }
            _ => {
                if let Some(f) = self.filter.as_deref_mut()
                    && f.skip(&h)?
                {
                    return self.skip(&h);
                }
                self.create(h)
            }
        }
    }

    /// What creating `h` does besides writing it: its owner is checked, it counts as this
    /// layer's (for opaque markers), its parents are created and whatever is at its path
    /// is removed. Its data then goes nowhere.
    fn skip(&mut self, h: &Header) -> Result<()> {
        self.owner(h)?;
        self.mark_ours(&h.path);
        let Some((name, parent_path)) = h.path.split_last() else {
            return Ok(());
        };
        let (parent, _) = self
            .root
            .dir(parent_path, true)
            .map_err(ctx(h, "create parent directories"))?
            .ok_or_else(|| Error::entry(&h.name, "parent directory missing"))?;
        match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(Errno::ISDIR | Errno::PERM) => {
                root::remove_all(parent, name).map_err(ctx(h, "replace existing"))?;
                self.root.forget_cache();
                Ok(())
            }
            Err(e) => Err(errno_ctx(h, "replace existing")(e)),
        }
    }

    /// Appends data to the regular file being written.
    pub(crate) fn data(&mut self, buf: &[u8]) -> Result<()> {
        if let Some(f) = &mut self.open {
            f.file.write_all(buf).map_err(ctx(&f.header, "write"))?;
        }
        Ok(())
    }

    /// Ends the layer: finishes the last file, then sets directory modes and mtimes,
    /// deepest first, so writing children never disturbs them.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.close_file()?;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.depth));
        for d in dirs {
            let fd = match self.root.open_dir_at(&d.path, false) {
                Ok(fd) => fd,
                // Replaced by a non-directory or removed later in this layer.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ELOOP | libc::ENOTDIR | libc::ENOENT)
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(Error::io(format!("directory {}", d.shown()), e)),
            };
            let what = || format!("directory {}", d.shown());
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode))
                .map_err(|e| Error::io(what(), e.into()))?;
            rustix::fs::futimens(&fd, &times(d.mtime)).map_err(|e| Error::io(what(), e.into()))?;
        }
        Ok(())
    }

    fn mark_ours(&mut self, path: &[OsString]) {
        // Only an opaque marker applied by removal reads the set: an overlay layer's
        // directory starts empty, so it never needs it (and a big layer's set is tens of MB).
        if self.opts.whiteouts == WhiteoutMode::Overlay {
            return;
        }
        // Ancestors of a marked path are always marked: stop at the first one found.
        for end in (1..=path.len()).rev() {
            if !self.ours.insert(&path[..end]) {
                break;
            }
        }
    }

    fn owner(&self, h: &Header) -> Result<Option<(u32, u32)>> {
        if !self.opts.same_owner {
            return Ok(None);
        }
        idmap::owner(self.opts.id_map.as_ref(), h.uid, h.gid, &h.name).map(Some)
    }

    fn create(&mut self, h: Header) -> Result<()> {
        let owner = self.owner(&h)?;
        self.mark_ours(&h.path);
        let (name, parent_path) = match h.path.split_last() {
            Some(x) => x,
            None => return Ok(()),
        };
        // Resolve a hardlink's source before anything at the destination changes.
        let link_src = match &h.kind {
            Kind::Hardlink(target) if *target == h.path => {
                tracing::debug!(entry = %h.name, "hardlink to itself: nothing to do");
                return Ok(());
            }
            Kind::Hardlink(target) => Some(self.hardlink_source(&h, target)?),
            _ => None,
        };
        let (parent, parent_setgid) = self
            .root
            .dir(parent_path, true)
            .map_err(ctx(&h, "create parent directories"))?
            .ok_or_else(|| Error::entry(&h.name, "parent directory missing"))?;
        // New inodes already belong to us; skip the chown when that is what the entry wants.
        let owner = owner.filter(|o| *o != self.creator || parent_setgid);
        // Create first and replace only on EEXIST: one syscall for the common case. A
        // removal is reported to the root once the entry is done with `parent`.
        let removed = Cell::new(false);
        let replacing =
            |what: &str, make: &mut dyn FnMut() -> rustix::io::Result<()>| -> Result<()> {
                match make() {
                    Err(Errno::EXIST) => {
                        removed.set(true);
                        root::remove_all(parent, name).map_err(ctx(&h, "replace existing"))?;
                        make().map_err(errno_ctx(&h, what))
                    }
                    r => r.map_err(errno_ctx(&h, what)),
                }
            };
        let made_dir = match &h.kind {
            Kind::File => {
                // Create with the final mode when the umask keeps it intact and no special
                // bit (which a chown would clear) is involved: saves an fchmod per file.
                let exact = self
                    .umask
                    .is_some_and(|u| h.mode & 0o7000 == 0 && h.mode & u == 0);
                let create_mode = if exact { h.mode } else { 0o600 };
                let mut fd = None;
                replacing("create file", &mut || {
                    fd = Some(rustix::fs::openat(
                        parent,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(create_mode),
                    )?);
                    Ok(())
                })?;
                let fd = fd.ok_or_else(|| Error::entry(&h.name, "create file"))?;
                if removed.get() {
                    self.root.removed(parent_path);
                }
                self.open = Some(OpenFile {
                    file: File::from(fd),
                    header: h,
                    owner,
                    finish: if exact {
                        Finish::Times
                    } else {
                        Finish::ModeAndTimes
                    },
                });
                return Ok(());
            }
            Kind::Dir => {
                // Whether the directory is new: it then has the parent's set-group-ID bit
                // (its own mode comes at the end), so no stat is needed to know it.
                let created = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => {
                        let st = root::lstat(parent, name).map_err(ctx(&h, "lstat"))?;
                        let is_dir = st.is_some_and(|st| root::is_dir(&st));
                        if !is_dir {
                            removed.set(true);
                            root::remove_all(parent, name).map_err(ctx(&h, "replace existing"))?;
                            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                                .map_err(errno_ctx(&h, "mkdir"))?;
                        }
                        !is_dir
                    }
                    Err(e) => return Err(errno_ctx(&h, "mkdir")(e)),
                };
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_ctx(&h, "open directory"))?;
                metadata::fd_metadata(&fd, &h, owner, Finish::Deferred)?;
                self.dirs.push(DeferredDir::new(&h));
                let setgid = if created {
                    parent_setgid
                } else {
                    rustix::fs::fstat(&fd)
                        .map_err(errno_ctx(&h, "stat directory"))?
                        .st_mode
                        & 0o2000
                        != 0
                };
                Some((fd, setgid))
            }
            Kind::Symlink(target) => {
                replacing("symlink", &mut || {
                    rustix::fs::symlinkat(target.as_os_str(), parent, name)
                })?;
                metadata::at_metadata(parent, name, &h, owner, false)?;
                None
            }
            Kind::Hardlink(_) => {
                let (src_dir, src_name) =
                    link_src.ok_or_else(|| Error::entry(&h.name, "hardlink source"))?;
                replacing("hardlink", &mut || {
                    rustix::fs::linkat(&src_dir, &src_name, parent, name, AtFlags::empty())
                })?;
                None
            }
            Kind::Fifo | Kind::Char(..) | Kind::Block(..) => {
                let (ft, dev) = match h.kind {
                    Kind::Char(ma, mi) => (FileType::CharacterDevice, rustix::fs::makedev(ma, mi)),
                    Kind::Block(ma, mi) => (FileType::BlockDevice, rustix::fs::makedev(ma, mi)),
                    _ => (FileType::Fifo, 0),
                };
                let mut made = Ok(());
                replacing("mknod", &mut || {
                    made = rustix::fs::mknodat(parent, name, ft, Mode::from_raw_mode(0o600), dev);
                    match made {
                        Err(Errno::PERM) => Ok(()),
                        r => r,
                    }
                })?;
                match made {
                    Ok(()) => metadata::at_metadata(parent, name, &h, owner, true)?,
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        tracing::info!(entry = %h.name, "skipping device node: not privileged to create it");
                    }
                    Err(e) => return Err(errno_ctx(&h, "mknod")(e)),
                }
                None
            }
            Kind::Whiteout | Kind::Opaque => None,
        };
        if removed.get() {
            self.root.removed(parent_path);
        }
        // The next entries are most likely inside a new directory: keep it open for them.
        if let Some((fd, setgid)) = made_dir {
            self.root.adopt(parent_path, name, fd, setgid);
        }
        Ok(())
    }

    /// Opens the directory holding a hardlink's target (resolved inside the root) and checks
    /// the target exists and is not a directory.
    fn hardlink_source(&self, h: &Header, target: &RelPath) -> Result<(OwnedFd, OsString)> {
        let (tname, tparent) = target
            .split_last()
            .ok_or_else(|| Error::entry(&h.name, "hardlink to the root"))?;
        let missing = || {
            Error::entry(
                &h.name,
                format!(
                    "hardlink target {} does not exist in the root",
                    display(target)
                ),
            )
        };
        let dir = match self.root.open_dir(tparent, true) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                return Err(missing());
            }
            Err(e) => return Err(ctx(h, "open hardlink target directory")(e)),
        };
        match root::lstat(dir.as_fd(), tname).map_err(ctx(h, "lstat hardlink target"))? {
            None => Err(missing()),
            Some(st) if root::is_dir(&st) => Err(Error::entry(&h.name, "hardlink to a directory")),
            Some(_) => Ok((dir, tname.clone())),
        }
    }

    fn close_file(&mut self) -> Result<()> {
        if let Some(f) = self.open.take() {
            metadata::fd_metadata(&f.file, &f.header, f.owner, f.finish)?;
        }
        Ok(())
    }

    fn directory(&mut self, h: &Header) -> Result<()> {
        let owner = self.owner(h)?;
        let fd = self
            .root
            .open_dir(&h.path, false)
            .map_err(ctx(h, "open directory"))?;
        metadata::fd_metadata(&fd, h, owner, Finish::Deferred)?;
        self.dirs.push(DeferredDir::new(h));
        Ok(())
    }

    fn whiteout(&mut self, h: &Header) -> Result<()> {
        let Some((name, parent_path)) = h.path.split_last() else {
            return Err(Error::entry(&h.name, "whiteout of the root"));
        };
        match self.opts.whiteouts {
            WhiteoutMode::Remove => {
                let parent = match self.root.dir(parent_path, false) {
                    Ok(Some((fd, _))) => fd,
                    // A missing or non-directory parent has nothing to remove.
                    Ok(None) => return Ok(()),
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                        return Ok(());
                    }
                    Err(e) => return Err(ctx(h, "open whiteout parent")(e)),
                };
                // Removing a name changes the directory's times; a whiteout should not.
                let st = rustix::fs::fstat(parent).map_err(errno_ctx(h, "stat whiteout parent"))?;
                root::remove_all(parent, name).map_err(ctx(h, "whiteout"))?;
                rustix::fs::futimens(parent, &stat_times(&st))
                    .map_err(errno_ctx(h, "restore parent times"))?;
                self.root.removed(parent_path);
                Ok(())
            }
            WhiteoutMode::Overlay => {
                self.mark_ours(&h.path);
                let (parent, _) = self
                    .root
                    .dir(parent_path, true)
                    .map_err(ctx(h, "create parent directories"))?
                    .ok_or_else(|| Error::entry(&h.name, "parent directory missing"))?;
                root::remove_all(parent, name).map_err(ctx(h, "replace existing"))?;
                let made = rustix::fs::mknodat(
                    parent,
                    name,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(errno_ctx(h, "create overlay whiteout"));
                self.root.removed(parent_path);
                made
            }
        }
    }

    fn opaque(&mut self, h: &Header) -> Result<()> {
        match self.opts.whiteouts {
            WhiteoutMode::Remove => {
                // Breadth-first over this layer's directories below the opaque one: remove
                // every child this layer did not itself create.
                let mut work: Vec<RelPath> = vec![h.path.clone()];
                while let Some(dir) = work.pop() {
                    let fd = match self.root.open_dir(&dir, false) {
                        Ok(fd) => fd,
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                            ) =>
                        {
                            continue;
                        }
                        Err(e) => return Err(ctx(h, "open opaque directory")(e)),
                    };
                    for child in root::list(fd.as_fd()).map_err(ctx(h, "list opaque directory"))? {
                        let mut p = dir.clone();
                        p.push(child.clone());
                        if !self.ours.contains(&p) {
                            root::remove_all(fd.as_fd(), &child)
                                .map_err(ctx(h, "opaque removal"))?;
                        } else if root::lstat(fd.as_fd(), &child)
                            .map_err(ctx(h, "lstat"))?
                            .is_some_and(|s| root::is_dir(&s))
                        {
                            work.push(p);
                        }
                    }
                }
                self.root.forget_cache();
                Ok(())
            }
            WhiteoutMode::Overlay => {
                self.mark_ours(&h.path);
                let (dir, _) = self
                    .root
                    .dir(&h.path, true)
                    .map_err(ctx(h, "create opaque directory"))?
                    .ok_or_else(|| Error::entry(&h.name, "opaque directory missing"))?;
                rustix::fs::fsetxattr(dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(errno_ctx(h, "set overlay opaque xattr"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::entry::Kind;

    fn header(path: &str, kind: Kind) -> Header {
        Header {
            name: path.into(),
            path: path.split('/').map(OsString::from).collect(),
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            kind,
            uid: 0,
            gid: 0,
            mtime: (0, 0),
            xattrs: Vec::new(),
            size: 0,
        }
    }

    /// The record of created paths is only read by an opaque marker applied by removal;
    /// an overlay layer of many files must not pay for it (memory grew with its entries).
    #[test]
    fn only_a_removing_applier_records_the_paths_it_creates() {
        for (mode, recorded) in [(WhiteoutMode::Remove, 2), (WhiteoutMode::Overlay, 0)] {
            let dir = tempfile::tempdir().unwrap();
            let opts = ApplyOptions::default().whiteouts(mode).same_owner(false);
            let mut applier = Applier::new(dir.path(), &opts).unwrap();
            applier.begin(header("etc", Kind::Dir)).unwrap();
            applier.begin(header("etc/hosts", Kind::File)).unwrap();
            assert_eq!(applier.ours.0.len(), recorded, "{mode:?}");
            applier.finish().unwrap();
            assert!(dir.path().join("etc/hosts").is_file());
        }
    }
}
