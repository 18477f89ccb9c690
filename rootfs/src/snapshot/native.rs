//! The native snapshotter: every snapshot is a complete directory tree.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use super::copy::Share;
use super::meta::{Record, Store, blocking};
use super::{Info, Kind, Mount, Snapshotter, Usage, copy};
use crate::{Error, Result};

/// A directory per snapshot under a root directory; a prepared snapshot starts as a copy
/// of its parent ([`Share`] says how file data is shared), a view is its committed parent's
/// directory mounted read-only. Works on any filesystem and needs no privileges; costs a
/// walk of the parent tree per layer (a link per file while extracting, by default).
#[derive(Debug, Clone)]
pub struct NativeSnapshotter {
    store: Store,
    share: Share,
}

impl NativeSnapshotter {
    /// Opens (creating) a snapshotter rooted at `root`, sharing files as [`Share::default`]
    /// says: hardlinks while extracting layers, reflink or copy otherwise.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        Ok(NativeSnapshotter {
            store: Store::open(root.as_ref())?,
            share: Share::default(),
        })
    }

    /// Chooses how a prepared snapshot shares its parent's files.
    pub fn with_share(mut self, share: Share) -> Self {
        self.share = share;
        self
    }

    /// Removes data left behind by crashed operations (directories of snapshots whose
    /// record was never written, by a process that is gone); returns how many went.
    /// Snapshots of killed extractions are [`Snapshotter::remove_abandoned`]'s.
    pub async fn cleanup(&self) -> Result<usize> {
        let store = self.store.clone();
        blocking(move || store.cleanup()).await
    }

    fn fs(store: &Store, id: &str) -> PathBuf {
        store.dir(id).join("fs")
    }

    /// The directory a snapshot's mount shows. A view of a committed parent is that
    /// parent's own directory, mounted read-only: a committed snapshot never changes and
    /// cannot be removed while the view exists, so a view costs no copy.
    fn mounted_dir(store: &Store, rec: &Record) -> Result<PathBuf> {
        match (&rec.kind, &rec.parent) {
            (Kind::View, Some(parent)) => Ok(Self::fs(store, &store.must(parent)?.id)),
            _ => Ok(Self::fs(store, &rec.id)),
        }
    }

    async fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>> {
        let (store, key, parent, share) = (
            self.store.clone(),
            key.to_owned(),
            parent.map(str::to_owned),
            self.share,
        );
        blocking(move || {
            let rec = store.create(&key, parent.as_deref(), kind, |dir, parent| {
                let fs = dir.join("fs");
                std::fs::create_dir(&fs)
                    .map_err(|e| Error::io(format!("create {}", fs.display()), e))?;
                if let Some(p) = parent.filter(|_| kind != Kind::View) {
                    let src = Self::fs(&store, &p.id);
                    let hardlink = match share {
                        Share::Hardlink => true,
                        Share::HardlinkExtract => {
                            kind == Kind::Active && key.starts_with(crate::EXTRACT_KEY_PREFIX)
                        }
                        Share::ReflinkOrCopy => false,
                    };
                    copy::copy_tree(&src, &fs, hardlink).map_err(|e| {
                        Error::io(format!("copy {} to {}", src.display(), fs.display()), e)
                    })?;
                } else {
                    std::fs::set_permissions(
                        &fs,
                        std::os::unix::fs::PermissionsExt::from_mode(0o755),
                    )
                    .map_err(|e| Error::io("chmod snapshot", e))?;
                }
                Ok(())
            })?;
            Ok(vec![Mount::bind(
                &Self::mounted_dir(&store, &rec)?,
                kind != Kind::Active,
            )])
        })
        .await
    }
}

#[async_trait]
impl Snapshotter for NativeSnapshotter {
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
            Ok(vec![Mount::bind(
                &Self::mounted_dir(&store, &r)?,
                r.kind != Kind::Active,
            )])
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
}
