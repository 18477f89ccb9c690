//! Snapshotters: where layers are unpacked, one snapshot per ChainID.
//!
//! As in containerd, a snapshot is *active* (writable, made by [`Snapshotter::prepare`]),
//! a *view* (read-only, [`Snapshotter::view`]) or *committed* (immutable, made from an
//! active one by [`Snapshotter::commit`], usable as a parent). Snapshotters return mount
//! specifications; mounting is the caller's business.

pub(crate) mod copy;
mod meta;
mod native;
mod overlay;

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

/// Disk usage of one snapshot's own data (not its parents').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Usage {
    /// Bytes in regular files (each inode counted once).
    pub size: u64,
    /// Number of inodes.
    pub inodes: u64,
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

    fn bind(dir: &Path, readonly: bool) -> Mount {
        let mut options = vec!["rbind".to_owned()];
        options.push(if readonly { "ro" } else { "rw" }.to_owned());
        Mount {
            kind: "bind".into(),
            source: dir.to_owned(),
            options,
        }
    }
}

/// Manages snapshots. Keys and names share one namespace.
///
/// A new storage scheme implements every method; adding behaviour to an existing one is a
/// wrapper that forwards. This one counts calls, say to check that
/// [`apply_layers`](crate::apply_layers) skips layers that are already unpacked:
///
/// ```
/// # use std::collections::BTreeMap;
/// # use std::sync::{Mutex, PoisonError};
/// # use async_trait::async_trait;
/// # use dist_rootfs::{Mount, NativeSnapshotter, Result, SnapshotInfo, SnapshotKind};
/// # use dist_rootfs::{Snapshotter, Usage};
/// struct Counting<S> {
///     inner: S,
///     calls: Mutex<BTreeMap<&'static str, usize>>,
/// }
///
/// impl<S> Counting<S> {
///     fn count(&self, op: &'static str) {
///         let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
///         *calls.entry(op).or_default() += 1;
///     }
/// }
///
/// #[async_trait]
/// impl<S: Snapshotter> Snapshotter for Counting<S> {
///     async fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
///         self.count("prepare");
///         self.inner.prepare(key, parent).await
///     }
///
///     async fn commit(&self, name: &str, key: &str) -> Result<()> {
///         self.count("commit");
///         self.inner.commit(name, key).await
///     }
///
///     // stat, usage, mounts, view, remove and walk count and forward the same way.
/// #   async fn stat(&self, key: &str) -> Result<SnapshotInfo> {
/// #       self.count("stat");
/// #       self.inner.stat(key).await
/// #   }
/// #   async fn usage(&self, key: &str) -> Result<Usage> {
/// #       self.count("usage");
/// #       self.inner.usage(key).await
/// #   }
/// #   async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
/// #       self.count("mounts");
/// #       self.inner.mounts(key).await
/// #   }
/// #   async fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
/// #       self.count("view");
/// #       self.inner.view(key, parent).await
/// #   }
/// #   async fn remove(&self, key: &str) -> Result<()> {
/// #       self.count("remove");
/// #       self.inner.remove(key).await
/// #   }
/// #   async fn walk(&self, f: &mut (dyn FnMut(SnapshotInfo) -> Result<()> + Send)) -> Result<()> {
/// #       self.count("walk");
/// #       self.inner.walk(f).await
/// #   }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let inner = NativeSnapshotter::new(dir.path())?;
/// let snapshotter = Counting { inner, calls: Mutex::default() };
///
/// // Unpack into an active snapshot, then commit it under its ChainID.
/// let mounts = snapshotter.prepare("extract-1", None).await?;
/// let (target, _whiteouts) = Mount::apply_target(&mounts).ok_or("not writable")?;
/// std::fs::write(target.join("hello"), "world")?;
/// snapshotter.commit("layer-1", "extract-1").await?;
///
/// let view = snapshotter.view("look", Some("layer-1")).await?;
/// assert_eq!(std::fs::read_to_string(view[0].source.join("hello"))?, "world");
/// assert_eq!(snapshotter.stat("layer-1").await?.kind, SnapshotKind::Committed);
/// let mut names = Vec::new();
/// snapshotter
///     .walk(&mut |info| {
///         names.push(info.name);
///         Ok(())
///     })
///     .await?;
/// assert_eq!(names.len(), 2); // the committed layer and the view
///
/// let calls = snapshotter.calls.into_inner()?;
/// assert_eq!(calls.get("prepare"), Some(&1));
/// assert_eq!(calls.values().sum::<usize>(), 5);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Snapshotter: Send + Sync {
    /// Information about a snapshot; `NotFound` when absent.
    async fn stat(&self, key: &str) -> Result<Info>;

    /// Disk usage of a snapshot's own data.
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
}
