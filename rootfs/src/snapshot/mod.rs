//! Snapshotters: where layers are unpacked, one snapshot per ChainID.
//!
//! As in containerd, a snapshot is *active* (writable, made by [`Snapshotter::prepare`]),
//! a *view* (read-only, [`Snapshotter::view`]) or *committed* (immutable, made from an
//! active one by [`Snapshotter::commit`], usable as a parent). Snapshotters return mount
//! specifications; mounting is the caller's business.

pub(crate) mod copy;
mod hold;
mod meta;
pub(crate) use meta::blocking;
mod native;
mod overlay;
mod probe;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use native::{NativeSnapshotter, Share};
pub use overlay::OverlaySnapshotter;

use crate::{Result, WhiteoutMode};

/// The state of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Kind {
    /// Read-only view of a committed snapshot.
    View,
    /// Writable; becomes committed through [`Snapshotter::commit`].
    Active,
    /// Immutable; may be a parent.
    Committed,
}

/// What is known about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// Its key (active, view) or name (committed).
    pub name: String,
    /// The committed snapshot it is based on.
    pub parent: Option<String>,
    /// Its state.
    pub kind: Kind,
    /// When it was created.
    pub created: SystemTime,
    /// When it last changed state.
    pub updated: SystemTime,
}

impl Info {
    /// A snapshot named `name` in state `kind`, created (and last changed) at `created`,
    /// with no parent; for a [`Snapshotter`] outside this crate to report.
    ///
    /// ```
    /// use std::time::SystemTime;
    ///
    /// use dist_rootfs::{SnapshotInfo, SnapshotKind};
    ///
    /// let info = SnapshotInfo::new("extract-1", SnapshotKind::Active, SystemTime::now())
    ///     .with_parent("sha256:4a1b...");
    /// assert_eq!(info.parent.as_deref(), Some("sha256:4a1b..."));
    /// assert_eq!(info.updated, info.created);
    /// ```
    pub fn new(name: impl Into<String>, kind: Kind, created: SystemTime) -> Self {
        Info {
            name: name.into(),
            parent: None,
            kind,
            created,
            updated: created,
        }
    }

    /// Sets the committed snapshot this one is based on.
    pub fn with_parent(mut self, parent: impl Into<String>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// Sets when it last changed state.
    pub fn with_updated(mut self, updated: SystemTime) -> Self {
        self.updated = updated;
        self
    }
}

/// Disk usage of one snapshot's directory: overlay counts its own upper layer, native (a
/// full copy of its parent) counts the whole tree, parents' files included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Usage {
    /// Bytes in regular files (each inode counted once).
    pub size: u64,
    /// Number of inodes.
    pub inodes: u64,
}

impl Usage {
    /// `size` bytes in `inodes` inodes.
    pub fn new(size: u64, inodes: u64) -> Self {
        Usage { size, inodes }
    }
}

/// How to mount a snapshot, in the shape of a `mount(2)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mount {
    /// Filesystem type: `bind` or `overlay`.
    pub kind: String,
    /// The source: a directory for `bind`, `overlay` for overlay.
    pub source: PathBuf,
    /// Mount options (`rbind`, `ro`, `lowerdir=...`, `upperdir=...`, `workdir=...`).
    pub options: Vec<String>,
}

impl Mount {
    /// A mount of filesystem type `kind` from `source` with `options`, for mounts the other
    /// constructors do not cover.
    pub fn new(kind: impl Into<String>, source: impl Into<PathBuf>, options: Vec<String>) -> Self {
        Mount {
            kind: kind.into(),
            source: source.into(),
            options,
        }
    }

    /// A recursive bind mount of `dir`, read-only when `readonly`: what a snapshot kept as a
    /// plain directory returns.
    ///
    /// ```
    /// use std::path::Path;
    ///
    /// use dist_rootfs::{Mount, WhiteoutMode};
    ///
    /// let active = Mount::bind(Path::new("/snapshots/7/fs"), false);
    /// assert_eq!(active.options, ["rbind", "rw"]);
    /// let target = Mount::apply_target(&[active]);
    /// assert_eq!(target, Some(("/snapshots/7/fs".into(), WhiteoutMode::Remove)));
    /// assert_eq!(Mount::apply_target(&[Mount::bind(Path::new("/s/8/fs"), true)]), None);
    /// ```
    pub fn bind(dir: &Path, readonly: bool) -> Mount {
        let mut options = vec!["rbind".to_owned()];
        options.push(if readonly { "ro" } else { "rw" }.to_owned());
        Mount {
            kind: "bind".into(),
            source: dir.to_owned(),
            options,
        }
    }

    /// An overlay mount of `lowers` (topmost first, at least one), writable through
    /// `upper` with `work` as overlayfs's scratch directory (on the same filesystem) when
    /// `writable` is `Some((upper, work))`, read-only when it is `None`.
    ///
    /// ```
    /// use std::path::{Path, PathBuf};
    ///
    /// use dist_rootfs::{Mount, WhiteoutMode};
    ///
    /// let lowers = [PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")];
    /// let upper = (Path::new("/s/3/fs"), Path::new("/s/3/work"));
    /// let active = Mount::overlay(&lowers, Some(upper));
    /// assert!(active.options.contains(&"lowerdir=/s/2/fs:/s/1/fs".to_owned()));
    /// let target = Mount::apply_target(&[active]);
    /// assert_eq!(target, Some(("/s/3/fs".into(), WhiteoutMode::Overlay)));
    ///
    /// let view = Mount::overlay(&lowers, None);
    /// assert_eq!(view.options, ["ro", "lowerdir=/s/2/fs:/s/1/fs"]);
    /// ```
    pub fn overlay(lowers: &[PathBuf], writable: Option<(&Path, &Path)>) -> Mount {
        let lowerdir = lowers
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut options = match writable {
            Some((upper, work)) => vec![
                format!("workdir={}", work.display()),
                format!("upperdir={}", upper.display()),
            ],
            None => vec!["ro".to_owned()],
        };
        options.push(format!("lowerdir={lowerdir}"));
        Mount {
            kind: "overlay".into(),
            source: PathBuf::from("overlay"),
            options,
        }
    }

    /// Where a layer for this (active) mount is written without mounting it, and how its
    /// whiteouts must be written: a bind mount's source with whiteouts applied, or an
    /// overlay's upper directory with overlay-style whiteouts. `None` for read-only mounts.
    pub fn apply_target(mounts: &[Mount]) -> Option<(PathBuf, WhiteoutMode)> {
        let m = mounts.first()?;
        if m.options.iter().any(|o| o == "ro") {
            return None;
        }
        match m.kind.as_str() {
            "bind" => Some((m.source.clone(), WhiteoutMode::Remove)),
            "overlay" => m
                .options
                .iter()
                .find_map(|o| o.strip_prefix("upperdir="))
                .map(|u| (PathBuf::from(u), WhiteoutMode::Overlay)),
            _ => None,
        }
    }
}

/// Manages snapshots. Keys and names share one namespace.
///
/// A storage scheme of one's own keeps a record per snapshot and hands out mounts. This toy
/// keeps its records in memory and each snapshot's files in a directory of its own, built
/// by copying its parent's (as [`NativeSnapshotter`] does, which also keeps its records on
/// disk and spares the copy for views):
///
/// ```
/// use std::collections::HashMap;
/// use std::path::{Path, PathBuf};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::{Mutex, MutexGuard, PoisonError};
/// use std::time::SystemTime;
///
/// use async_trait::async_trait;
/// use dist_rootfs::{Error, Mount, Result, SnapshotInfo, SnapshotKind, Snapshotter, Usage};
/// use dist_rootfs::copy_mounted;
///
/// struct Record {
///     info: SnapshotInfo,
///     dir: PathBuf,
/// }
///
/// struct DirSnapshotter {
///     root: PathBuf,
///     next_dir: AtomicU64,
///     records: Mutex<HashMap<String, Record>>,
/// }
///
/// impl DirSnapshotter {
///     fn records(&self) -> MutexGuard<'_, HashMap<String, Record>> {
///         self.records.lock().unwrap_or_else(PoisonError::into_inner)
///     }
///
///     // The file work below blocks; a real snapshotter runs it in `spawn_blocking`.
///     fn create(&self, key: &str, parent: Option<&str>, kind: SnapshotKind)
///     -> Result<Vec<Mount>> {
///         let mut records = self.records();
///         if records.contains_key(key) {
///             return Err(Error::AlreadyExists(key.to_owned()));
///         }
///         let parent_dir = match parent.map(|p| (p, records.get(p))) {
///             None => None,
///             Some((_, Some(r))) if r.info.kind == SnapshotKind::Committed => Some(&r.dir),
///             Some((p, Some(_))) => {
///                 return Err(Error::FailedPrecondition(format!("{p}: not committed")));
///             }
///             Some((p, None)) => return Err(Error::NotFound(p.to_owned())),
///         };
///         let dir = self.root.join(self.next_dir.fetch_add(1, Ordering::Relaxed).to_string());
///         std::fs::create_dir(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
///         if let Some(parent_dir) = parent_dir {
///             copy_mounted(&[Mount::bind(parent_dir, true)], &dir)?;
///         }
///         let mut info = SnapshotInfo::new(key, kind, SystemTime::now());
///         info.parent = parent.map(str::to_owned);
///         records.insert(key.to_owned(), Record { info, dir: dir.clone() });
///         Ok(vec![Mount::bind(&dir, kind == SnapshotKind::View)])
///     }
/// }
///
/// #[async_trait]
/// impl Snapshotter for DirSnapshotter {
///     async fn stat(&self, key: &str) -> Result<SnapshotInfo> {
///         let info = self.records().get(key).map(|r| r.info.clone());
///         info.ok_or_else(|| Error::NotFound(key.to_owned()))
///     }
///
///     async fn usage(&self, key: &str) -> Result<Usage> {
///         let dir = self.records().get(key).map(|r| r.dir.clone());
///         let dir = dir.ok_or_else(|| Error::NotFound(key.to_owned()))?;
///         let (size, inodes) = du(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
///         Ok(Usage::new(size, inodes))
///     }
///
///     async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
///         match self.records().get(key) {
///             None => Err(Error::NotFound(key.to_owned())),
///             Some(r) if r.info.kind == SnapshotKind::Committed => {
///                 Err(Error::FailedPrecondition(format!("{key}: committed, not mountable")))
///             }
///             Some(r) => Ok(vec![Mount::bind(&r.dir, r.info.kind == SnapshotKind::View)]),
///         }
///     }
///
///     async fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
///         self.create(key, parent, SnapshotKind::Active)
///     }
///
///     async fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
///         self.create(key, parent, SnapshotKind::View)
///     }
///
///     async fn commit(&self, name: &str, key: &str) -> Result<()> {
///         let mut records = self.records();
///         if records.contains_key(name) {
///             return Err(Error::AlreadyExists(name.to_owned()));
///         }
///         match records.remove(key) {
///             Some(mut record) if record.info.kind == SnapshotKind::Active => {
///                 record.info.name = name.to_owned();
///                 record.info.kind = SnapshotKind::Committed;
///                 record.info.updated = SystemTime::now();
///                 records.insert(name.to_owned(), record);
///                 Ok(())
///             }
///             Some(record) => {
///                 records.insert(key.to_owned(), record); // put back untouched
///                 Err(Error::FailedPrecondition(format!("{key}: not active")))
///             }
///             None => Err(Error::NotFound(key.to_owned())),
///         }
///     }
///
///     async fn remove(&self, key: &str) -> Result<()> {
///         let mut records = self.records();
///         if records.values().any(|r| r.info.parent.as_deref() == Some(key)) {
///             return Err(Error::FailedPrecondition(format!("{key}: is a parent")));
///         }
///         let record = records.remove(key).ok_or_else(|| Error::NotFound(key.to_owned()))?;
///         let dir = record.dir;
///         std::fs::remove_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))
///     }
///
///     async fn walk(&self, f: &mut (dyn FnMut(SnapshotInfo) -> Result<()> + Send))
///     -> Result<()> {
///         // Copy the records out first, so that `f` may call back into the snapshotter.
///         let infos: Vec<SnapshotInfo> =
///             self.records().values().map(|r| r.info.clone()).collect();
///         infos.into_iter().try_for_each(f)
///     }
/// }
///
/// /// Bytes in regular files and number of inodes under `dir` (a hardlinked file counts
/// /// once per link here).
/// fn du(dir: &Path) -> std::io::Result<(u64, u64)> {
///     let (mut size, mut inodes) = (0, 0);
///     for entry in std::fs::read_dir(dir)? {
///         let entry = entry?;
///         let md = entry.metadata()?; // of the entry itself, not a symlink's target
///         inodes += 1;
///         if md.is_file() {
///             size += md.len();
///         } else if md.is_dir() {
///             let (s, i) = du(&entry.path())?;
///             (size, inodes) = (size + s, inodes + i);
///         }
///     }
///     Ok((size, inodes))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let snapshotter = DirSnapshotter {
///     root: dir.path().to_owned(),
///     next_dir: AtomicU64::new(0),
///     records: Mutex::default(),
/// };
///
/// // Unpack into an active snapshot, then commit it under its ChainID.
/// let mounts = snapshotter.prepare("extract-1", None).await?;
/// let (target, _whiteouts) = Mount::apply_target(&mounts).ok_or("not writable")?;
/// std::fs::write(target.join("hello"), "world")?;
/// snapshotter.commit("layer-1", "extract-1").await?;
/// assert_eq!(snapshotter.stat("layer-1").await?.kind, SnapshotKind::Committed);
/// assert_eq!(snapshotter.usage("layer-1").await?, Usage::new(5, 1));
///
/// // A view sees the layer's files through a read-only bind mount.
/// let view = snapshotter.view("look", Some("layer-1")).await?;
/// assert!(Mount::apply_target(&view).is_none());
/// assert_eq!(std::fs::read_to_string(view[0].source.join("hello"))?, "world");
/// assert_eq!(snapshotter.stat("look").await?.parent.as_deref(), Some("layer-1"));
///
/// let mut names = Vec::new();
/// snapshotter
///     .walk(&mut |info| {
///         names.push(info.name);
///         Ok(())
///     })
///     .await?;
/// names.sort();
/// assert_eq!(names, ["layer-1", "look"]);
///
/// // A parent stays while something is built on it.
/// assert!(snapshotter.remove("layer-1").await.is_err());
/// snapshotter.remove("look").await?;
/// snapshotter.remove("layer-1").await?;
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Snapshotter: Send + Sync {
    /// Information about a snapshot; `NotFound` when absent.
    async fn stat(&self, key: &str) -> Result<Info>;

    /// Disk usage of a snapshot's directory (the whole tree for native, see [`Usage`]).
    async fn usage(&self, key: &str) -> Result<Usage>;

    /// The mounts of an active snapshot or view.
    async fn mounts(&self, key: &str) -> Result<Vec<Mount>>;

    /// Creates an active snapshot on top of committed `parent` (empty when `None`).
    async fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;

    /// Creates a read-only view of committed `parent`.
    async fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;

    /// Turns active snapshot `key` into committed snapshot `name`; `key` is gone after.
    async fn commit(&self, name: &str, key: &str) -> Result<()>;

    /// Removes a snapshot that no other snapshot has as parent.
    async fn remove(&self, key: &str) -> Result<()>;

    /// Calls `f` for every snapshot.
    async fn walk(&self, f: &mut (dyn FnMut(Info) -> Result<()> + Send)) -> Result<()>;

    /// Removes the active snapshots of extractions whose process is gone (keys starting
    /// with [`EXTRACT_KEY_PREFIX`](crate::EXTRACT_KEY_PREFIX), prepared by a pull that was
    /// killed) and returns their keys; their layers are applied again by the next pull.
    ///
    /// The local snapshotters tell by a lock the extracting process holds from `prepare`
    /// to `commit` or `remove`, which the kernel drops when it dies; this works across pid
    /// namespaces. The default, for snapshotters that cannot tell, removes nothing.
    async fn remove_abandoned(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Whether a layer can be applied before its parent is committed, and how its
    /// whiteouts are then written. `Some(mode)` promises that a snapshot prepared with no
    /// parent keeps only the layer's own changes (whiteouts written as `mode` says) and
    /// that [`commit_onto`](Snapshotter::commit_onto) may then put it on its parent; the
    /// overlay snapshotter, whose layers are independent directories, says
    /// `Some(WhiteoutMode::Overlay)`. [`apply_layers`](crate::apply_layers) then applies
    /// all layers of a chain at once and commits them in order. `None` (the default): each
    /// layer is applied on its committed parent, one after another.
    fn rebase_whiteouts(&self) -> Option<WhiteoutMode> {
        None
    }

    /// Commits active snapshot `key`, prepared with no parent, as `name` on top of
    /// committed `parent` (containerd calls this a rebase); `key` is gone after. Only for
    /// snapshotters whose [`rebase_whiteouts`](Snapshotter::rebase_whiteouts) is `Some`:
    /// the default refuses with `FailedPrecondition`.
    async fn commit_onto(&self, name: &str, key: &str, parent: Option<&str>) -> Result<()> {
        let _ = (name, parent);
        Err(crate::Error::FailedPrecondition(format!(
            "snapshot {key:?}: this snapshotter cannot commit a snapshot onto a parent"
        )))
    }
}
