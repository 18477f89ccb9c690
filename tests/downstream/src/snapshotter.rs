//! [`DirSnapshotter`]: each snapshot a plain directory; records in memory.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use dist::rootfs::copy_mounted;
use dist::rootfs::{Error, Mount, Result, SnapshotInfo, SnapshotKind, Snapshotter, Usage};

#[derive(Debug)]
struct Record {
    info: SnapshotInfo,
    dir: PathBuf,
}

/// Snapshots as directories under `root`: `prepare` and `view` copy the parent's
/// directory, `commit` renames the record. Nothing is shared between snapshots.
#[derive(Debug)]
pub struct DirSnapshotter {
    root: PathBuf,
    next_dir: AtomicU64,
    records: Mutex<HashMap<String, Record>>,
}

impl DirSnapshotter {
    /// A snapshotter keeping its directories under `root` (which must exist).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let (root, next_dir, records) = (root.into(), AtomicU64::new(0), Mutex::default());
        DirSnapshotter {
            root,
            next_dir,
            records,
        }
    }

    fn records(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dir_of(&self, key: &str) -> Result<PathBuf> {
        let dir = self.records().get(key).map(|r| r.dir.clone());
        dir.ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    async fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: SnapshotKind,
    ) -> Result<Vec<Mount>> {
        let parent_dir = {
            let records = self.records();
            if records.contains_key(key) {
                return Err(Error::AlreadyExists(key.to_owned()));
            }
            match parent.map(|p| (p, records.get(p))) {
                None => None,
                Some((_, Some(r))) if r.info.kind == SnapshotKind::Committed => Some(r.dir.clone()),
                Some((p, Some(_))) => {
                    return Err(Error::FailedPrecondition(format!("{p}: not committed")));
                }
                Some((p, None)) => return Err(Error::NotFound(p.to_owned())),
            }
        };
        let dir = self
            .root
            .join(self.next_dir.fetch_add(1, Ordering::Relaxed).to_string());
        tokio::fs::create_dir(&dir)
            .await
            .map_err(|e| Error::io(dir.display().to_string(), e))?;
        if let Some(parent_dir) = parent_dir {
            let target = dir.clone();
            blocking(move || copy_mounted(&[Mount::bind(&parent_dir, true)], &target)).await?;
        }
        let mut info = SnapshotInfo::new(key, kind, SystemTime::now());
        info.parent = parent.map(str::to_owned);
        let mut records = self.records();
        if records.contains_key(key) {
            return Err(Error::AlreadyExists(key.to_owned()));
        }
        records.insert(
            key.to_owned(),
            Record {
                info,
                dir: dir.clone(),
            },
        );
        Ok(vec![Mount::bind(&dir, kind == SnapshotKind::View)])
    }
}

/// Runs blocking file work off the async worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(Error::io("snapshot file work", io::Error::other(e))),
    }
}

#[async_trait]
impl Snapshotter for DirSnapshotter {
    async fn stat(&self, key: &str) -> Result<SnapshotInfo> {
        let info = self.records().get(key).map(|r| r.info.clone());
        info.ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    async fn usage(&self, key: &str) -> Result<Usage> {
        let dir = self.dir_of(key)?;
        blocking(move || {
            let (size, inodes) = du(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
            Ok(Usage::new(size, inodes))
        })
        .await
    }

    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        match self.records().get(key) {
            None => Err(Error::NotFound(key.to_owned())),
            Some(r) if r.info.kind == SnapshotKind::Committed => Err(Error::FailedPrecondition(
                format!("{key}: committed, not mountable"),
            )),
            Some(r) => Ok(vec![Mount::bind(&r.dir, r.info.kind == SnapshotKind::View)]),
        }
    }

    async fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, SnapshotKind::Active).await
    }

    async fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.create(key, parent, SnapshotKind::View).await
    }

    async fn commit(&self, name: &str, key: &str) -> Result<()> {
        let mut records = self.records();
        if records.contains_key(name) {
            return Err(Error::AlreadyExists(name.to_owned()));
        }
        match records.remove(key) {
            Some(mut record) if record.info.kind == SnapshotKind::Active => {
                record.info.name = name.to_owned();
                record.info.kind = SnapshotKind::Committed;
                record.info.updated = SystemTime::now();
                records.insert(name.to_owned(), record);
                Ok(())
            }
            Some(record) => {
                records.insert(key.to_owned(), record); // put back untouched
                Err(Error::FailedPrecondition(format!("{key}: not active")))
            }
            None => Err(Error::NotFound(key.to_owned())),
        }
    }

    async fn remove(&self, key: &str) -> Result<()> {
        let dir = {
            let mut records = self.records();
            if records
                .values()
                .any(|r| r.info.parent.as_deref() == Some(key))
            {
                return Err(Error::FailedPrecondition(format!("{key}: is a parent")));
            }
            records
                .remove(key)
                .ok_or_else(|| Error::NotFound(key.to_owned()))?
                .dir
        };
        let removed = tokio::fs::remove_dir_all(&dir).await;
        removed.map_err(|e| Error::io(dir.display().to_string(), e))
    }

    async fn walk(&self, f: &mut (dyn FnMut(SnapshotInfo) -> Result<()> + Send)) -> Result<()> {
        // Copied out first, so that `f` may call back into the snapshotter.
        let infos: Vec<SnapshotInfo> = self.records().values().map(|r| r.info.clone()).collect();
        infos.into_iter().try_for_each(f)
    }
}

/// Bytes in regular files and inodes under `dir` (a hardlinked file counts per link).
fn du(dir: &Path) -> io::Result<(u64, u64)> {
    let (mut size, mut inodes) = (0u64, 0u64);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let md = entry.metadata()?;
        inodes = inodes.saturating_add(1);
        if md.is_file() {
            size = size.saturating_add(md.len());
        } else if md.is_dir() {
            let (s, i) = du(&entry.path())?;
            (size, inodes) = (size.saturating_add(s), inodes.saturating_add(i));
        }
    }
    Ok((size, inodes))
}
