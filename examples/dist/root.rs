//! Where `dist` keeps its state: `--root`, else `$DIST_ROOT`, else `$XDG_DATA_HOME/dist`,
//! else `~/.local/share/dist`; content, snapshots and images live below it.

use std::path::PathBuf;

use dist::content::LocalStore;
use dist::images::{FsImageStore, PlatformMatcher, platforms};
use dist::rootfs::{NativeSnapshotter, OverlaySnapshotter, Snapshotter};

use crate::CmdResult;
use crate::cli::{Global, SnapshotterKind};

/// The tool's state directory and the stores in it.
pub struct Root {
    pub dir: PathBuf,
}

impl Root {
    /// Picks the root directory from the flags and environment.
    pub fn new(global: &Global) -> CmdResult<Root> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = global
            .root
            .clone()
            .or_else(|| env("DIST_ROOT"))
            .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("dist")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/dist")))
            .ok_or("no root directory: pass --root or set DIST_ROOT or HOME")?;
        Ok(Root { dir })
    }

    /// The content store (`<root>/content`).
    pub fn content(&self) -> CmdResult<LocalStore> {
        Ok(LocalStore::open(self.dir.join("content"))?)
    }
}

impl Root {
    /// The image (name) store (`<root>/images`).
    pub fn images(&self) -> CmdResult<FsImageStore> {
        Ok(FsImageStore::open(self.dir.join("images"))?)
    }

    /// The snapshotter `pull` unpacks into (`<root>/snapshots/<kind>`).
    pub fn snapshotter(&self, kind: SnapshotterKind) -> CmdResult<Box<dyn Snapshotter>> {
        let dir = self.dir.join("snapshots");
        Ok(match kind {
            SnapshotterKind::Native => Box::new(NativeSnapshotter::new(dir.join("native"))?),
            SnapshotterKind::Overlay => Box::new(OverlaySnapshotter::new(dir.join("overlay"))?),
        })
    }

    /// The snapshotters a pull has already used (their directories exist), native first.
    pub fn existing_snapshotters(&self) -> CmdResult<Vec<Box<dyn Snapshotter>>> {
        let mut found = Vec::new();
        for (kind, name) in [
            (SnapshotterKind::Native, "native"),
            (SnapshotterKind::Overlay, "overlay"),
        ] {
            if self.dir.join("snapshots").join(name).is_dir() {
                found.push(self.snapshotter(kind)?);
            }
        }
        Ok(found)
    }

    /// The snapshotters whose directories exist, with the names gc labels and leases call
    /// them by.
    pub fn named_snapshotters(&self) -> CmdResult<Vec<(&'static str, Box<dyn Snapshotter>)>> {
        let mut found = Vec::new();
        for kind in [SnapshotterKind::Native, SnapshotterKind::Overlay] {
            let name = snapshotter_name(kind);
            if self.dir.join("snapshots").join(name).is_dir() {
                found.push((name, self.snapshotter(kind)?));
            }
        }
        Ok(found)
    }

    /// The platform matcher from `--platform`, else this host's.
    pub fn matcher(&self, global: &Global) -> CmdResult<PlatformMatcher> {
        Ok(match &global.platform {
            Some(p) => PlatformMatcher::new(&platforms::parse(p)?),
            None => PlatformMatcher::host(),
        })
    }
}

/// The name of a snapshotter in gc labels and leases (and its directory's name).
pub fn snapshotter_name(kind: SnapshotterKind) -> &'static str {
    match kind {
        SnapshotterKind::Native => "native",
        SnapshotterKind::Overlay => "overlay",
    }
}
