//! The overlay snapshotter: each snapshot stores only its own changes; the caller mounts
//! overlayfs with the parents as lower directories.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::meta::{Record, Store, blocking};
use super::{Info, Kind, Mount, Snapshotter, Usage};
use crate::{Error, Result, WhiteoutMode};

/// Upper and work directories per snapshot, parents as `lowerdir`s. Layers are applied
/// straight into the upper directory with overlay-style whiteouts (0/0 character devices
/// and `trusted.overlay.opaque`), which needs root. Mounting is the caller's job.
#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    store: Store,
}

impl OverlaySnapshotter {
    /// Opens (creating) a snapshotter rooted at `root`.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        Ok(OverlaySnapshotter {
            store: Store::open(root.as_ref())?,
        })
    }

    /// Removes data left behind by crashed operations (directories of snapshots whose
    /// record was never written, by a process that is gone); returns how many went.
    /// Snapshots of killed extractions are [`Snapshotter::remove_abandoned`]'s.
    pub async fn cleanup(&self) -> Result<usize> {
        let store = self.store.clone();
        blocking(move || store.cleanup()).await
    }

    /// Whether overlay snapshots work under `dir` (created if missing): on its filesystem
    /// this process can write overlay whiteouts (a 0/0 character device, the
    /// `trusted.overlay.opaque` xattr) and the kernel mounts an overlay that honours them.
    /// Tried in a scratch directory that is removed again; why it fails is logged. Blocks
    /// (file work and a mount): call it from a blocking thread.
    ///
    /// A caller choosing a snapshotter (as containerd picks overlayfs) takes overlay when
    /// this holds and [`NativeSnapshotter`](crate::NativeSnapshotter) otherwise.
    pub fn supported(dir: &Path) -> bool {
        match super::probe::overlay(dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(dir = %dir.display(), error = %e, "overlay snapshots unavailable");
                false
            }
        }
    }

    fn fs(store: &Store, id: &str) -> PathBuf {
        store.dir(id).join("fs")
    }

    /// The mounts for `rec`: a bind of its upper directory when it has no parent, else an
    /// overlay of its ancestors (nearest first) under it.
    fn mounts_for(store: &Store, rec: &Record) -> Result<Vec<Mount>> {
        let mut lowers = Vec::new();
        let mut next = rec.parent.clone();
        while let Some(p) = next {
            let r = store.must(&p)?;
            lowers.push(Self::fs(store, &r.id));
            next = r.parent;
        }
        let dir = store.dir(&rec.id);
        if rec.kind == Kind::Active {
            if lowers.is_empty() {
                return Ok(vec![Mount::bind(&dir.join("fs"), false)]);
            }
            return Ok(vec![Mount {
                kind: "overlay".into(),
                source: PathBuf::from("overlay"),
                options: vec![
                    format!("workdir={}", dir.join("work").display()),
                    format!("upperdir={}", dir.join("fs").display()),
                    format!("lowerdir={}", join(&lowers)),
                ],
            }]);
        }
        // A view: read-only over its parent chain.
        match lowers.len() {
            0 => Ok(vec![Mount::bind(&dir.join("fs"), true)]),
            1 => Ok(vec![Mount::bind(&lowers[0], true)]),
            _ => Ok(vec![Mount {
                kind: "overlay".into(),
                source: PathBuf::from("overlay"),
                options: vec!["ro".into(), format!("lowerdir={}", join(&lowers))],
            }]),
        }
    }

    async fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>> {
        let (store, key, parent) = (
            self.store.clone(),
            key.to_owned(),
            parent.map(str::to_owned),
        );
        blocking(move || {
            let rec = store.create(&key, parent.as_deref(), kind, |dir, _| {
                for d in ["fs", "work"] {
                    let p = dir.join(d);
                    std::fs::create_dir(&p)
                        .map_err(|e| Error::io(format!("create {}", p.display()), e))?;
                }
                std::fs::set_permissions(
                    dir.join("fs"),
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .map_err(|e| Error::io("chmod snapshot", e))
            })?;
            Self::mounts_for(&store, &rec)
        })
        .await
    }
}

fn join(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[async_trait]
impl Snapshotter for OverlaySnapshotter {
    async fn stat(&self, key: &str) -> Result<Info> {
        self.store.stat_async(key).await
    }

    async fn usage(&self, key: &str) -> Result<Usage> {
        self.store.usage_async(key).await
    }

    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let (store, key) = (self.store.clone(), key.to_owned());
        blocking(move || {
            let r = store.must(&key)?;
            Self::mounts_for(&store, &r)
        })
        .await
    }

    async fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::Active).await
    }

    async fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::View).await
    }

    async fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.store.commit_async(name, key).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        self.store.remove_async(key).await
    }

    async fn walk(&self, f: &mut (dyn FnMut(Info) -> Result<()> + Send)) -> Result<()> {
        self.store.walk_async(f).await
    }

    async fn remove_abandoned(&self) -> Result<Vec<String>> {
        self.store.remove_abandoned_async().await
    }

    /// An upper directory never depends on its lowers: a layer is applied into one with
    /// overlay whiteouts before its parent is there.
    fn rebase_whiteouts(&self) -> Option<WhiteoutMode> {
        Some(WhiteoutMode::Overlay)
    }

    async fn commit_onto(&self, name: &str, key: &str, parent: Option<&str>) -> Result<()> {
        self.store.commit_onto_async(name, key, parent).await
    }
}
