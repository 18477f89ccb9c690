//! Snapshot metadata shared by the local snapshotters, crash-safe and safe across
//! processes.
//!
//! Layout under the snapshotter root:
//! - `lock`: every change takes an exclusive `flock` on it.
//! - `metadata/<sha256(key)>.json`: one record per snapshot, written to a temporary file,
//!   fsynced and renamed into place (then the directory fsynced). A record is the only
//!   thing that makes a snapshot exist.
//! - `snapshots/<id>/`: the data. A directory without a record (a crash mid-prepare) is
//!   invisible and removed by [`Store::cleanup`].

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Info, Kind, Usage};
use crate::{Error, Result};

/// One snapshot's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) parent: Option<String>,
    pub(crate) created_ns: u64,
    pub(crate) updated_ns: u64,
}

impl Record {
    pub(crate) fn info(&self) -> Info {
        let t = |ns: u64| UNIX_EPOCH + Duration::from_nanos(ns);
        Info {
            name: self.key.clone(),
            parent: self.parent.clone(),
            kind: self.kind,
            created: t(self.created_ns),
            updated: t(self.updated_ns),
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.to_string();
    move |e| Error::io(what, e)
}

/// An exclusive lock on the store, released on drop.
pub(crate) struct Lock(#[allow(dead_code)] File);

/// The metadata store.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating) a store under `root`.
    pub(crate) fn open(root: &Path) -> Result<Store> {
        for d in ["metadata", "snapshots"] {
            fs::create_dir_all(root.join(d))
                .map_err(io_err(format!("create {}", root.join(d).display())))?;
        }
        Ok(Store {
            root: root.to_owned(),
        })
    }

    /// Takes the store's exclusive lock (blocking).
    pub(crate) fn lock(&self) -> Result<Lock> {
        let p = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err(format!("open {}", p.display())))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("lock {}", p.display()), e.into()))?;
        Ok(Lock(f))
    }

    /// The data directory of snapshot `id`.
    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(id)
    }

    /// A fresh snapshot id, unique across processes.
    pub(crate) fn new_id() -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        format!(
            "{}-{}-{}",
            now_ns(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("metadata").join(format!(
            "{}.json",
            hex::encode(Sha256::digest(key.as_bytes()))
        ))
    }

    fn read(&self, path: &Path) -> Result<Option<Record>> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::FailedPrecondition(format!(
                    "corrupt snapshot record {}: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    /// Every record, without active records left behind by a commit that crashed after
    /// writing the committed record.
    pub(crate) fn all(&self) -> Result<Vec<Record>> {
        let dir = self.root.join("metadata");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(format!("list {}", dir.display())))? {
            let e = e.map_err(io_err(format!("list {}", dir.display())))?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Some(r) = self.read(&p)?
            {
                out.push(r);
            }
        }
        let committed: std::collections::HashSet<String> = out
            .iter()
            .filter(|r| r.kind == Kind::Committed)
            .map(|r| r.id.clone())
            .collect();
        out.retain(|r| r.kind == Kind::Committed || !committed.contains(&r.id));
        Ok(out)
    }

    /// The record for `key`, if it exists (and is not a stale half-committed one).
    pub(crate) fn get(&self, key: &str) -> Result<Option<Record>> {
        let Some(r) = self.read(&self.record_path(key))? else {
            return Ok(None);
        };
        if r.kind == Kind::Active
            && self
                .all()?
                .iter()
                .any(|o| o.kind == Kind::Committed && o.id == r.id)
        {
            return Ok(None);
        }
        Ok(Some(r))
    }

    /// The record for `key`, or `NotFound`.
    pub(crate) fn must(&self, key: &str) -> Result<Record> {
        self.get(key)?
            .ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    /// Writes `rec` atomically: temp file, fsync, rename, fsync the directory.
    pub(crate) fn put(&self, rec: &Record) -> Result<()> {
        let path = self.record_path(&rec.key);
        let tmp = path.with_extension(format!("tmp-{}", Self::new_id()));
        let body = serde_json::to_vec(rec)
            .map_err(|e| Error::io("encode record", std::io::Error::other(e)))?;
        let mut f = File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io_err(format!("rename {}", path.display())))?;
        self.sync_dir()
    }

    /// Deletes `key`'s record durably.
    pub(crate) fn delete(&self, key: &str) -> Result<()> {
        let path = self.record_path(key);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
        }
    }

    fn sync_dir(&self) -> Result<()> {
        let d = self.root.join("metadata");
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(io_err(format!("sync {}", d.display())))
    }

    /// Creates a snapshot record after `fill` populated its fresh data directory; the
    /// record is written last, so a crash leaves only an invisible directory.
    pub(crate) fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        fill: impl FnOnce(&Path, Option<&Record>) -> Result<()>,
    ) -> Result<Record> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("empty snapshot key".into()));
        }
        let _lock = self.lock()?;
        if self.get(key)?.is_some() {
            return Err(Error::AlreadyExists(key.to_owned()));
        }
        let parent_rec = match parent {
            None => None,
            Some(p) => {
                let r = self.must(p)?;
                if r.kind != Kind::Committed {
                    return Err(Error::FailedPrecondition(format!(
                        "parent {p:?} is not committed"
                    )));
                }
                Some(r)
            }
        };
        let id = Self::new_id();
        let dir = self.dir(&id);
        fs::create_dir(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        if let Err(e) = fill(&dir, parent_rec.as_ref()) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        let now = now_ns();
        let rec = Record {
            key: key.to_owned(),
            id,
            kind,
            parent: parent.map(str::to_owned),
            created_ns: now,
            updated_ns: now,
        };
        self.put(&rec)?;
        Ok(rec)
    }

    /// Commits active `key` as `name`.
    pub(crate) fn commit(&self, name: &str, key: &str) -> Result<()> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("empty snapshot name".into()));
        }
        // Nothing was fsynced while the layer was applied: one syncfs makes all of the
        // snapshot's data durable before its record says it is committed. It can take a
        // while on a disk, so it runs before the store lock is taken.
        if let Some(rec) = self.get(key)? {
            let dir = self.dir(&rec.id);
            let fd = rustix::fs::open(
                &dir,
                rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| Error::io(format!("open {}", dir.display()), e.into()))?;
            rustix::fs::syncfs(&fd)
                .map_err(|e| Error::io(format!("syncfs {}", dir.display()), e.into()))?;
        }
        let _lock = self.lock()?;
        let rec = self.must(key)?;
        if rec.kind != Kind::Active {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is not active"
            )));
        }
        if self.get(name)?.is_some() {
            return Err(Error::AlreadyExists(name.to_owned()));
        }
        let committed = Record {
            key: name.to_owned(),
            kind: Kind::Committed,
            updated_ns: now_ns(),
            ..rec
        };
        // Committed record first: a crash between the two leaves a stale active record
        // that `get`/`all` ignore, never a lost snapshot.
        self.put(&committed)?;
        self.delete(key)
    }

    /// Removes `key` (record first, then data).
    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        let _lock = self.lock()?;
        let rec = self.must(key)?;
        let all = self.all()?;
        if let Some(child) = all.iter().find(|r| r.parent.as_deref() == Some(key)) {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is the parent of {:?}",
                child.key
            )));
        }
        self.delete(key)?;
        if !all.iter().any(|r| r.id == rec.id && r.key != key) {
            let dir = self.dir(&rec.id);
            super::copy::remove_tree(&dir).map_err(io_err(format!("remove {}", dir.display())))?;
        }
        Ok(())
    }

    /// Removes data directories that no record references (left by a crash). Returns how
    /// many were removed.
    pub(crate) fn cleanup(&self) -> Result<usize> {
        let _lock = self.lock()?;
        let mut live = std::collections::HashSet::new();
        let dir = self.root.join("metadata");
        for e in fs::read_dir(&dir).map_err(io_err(format!("list {}", dir.display())))? {
            let p = e.map_err(io_err("list metadata"))?.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Some(r) = self.read(&p)? {
                    live.insert(r.id);
                }
            } else {
                let _ = fs::remove_file(&p); // an unrenamed temporary record
            }
        }
        let mut n = 0;
        let snaps = self.root.join("snapshots");
        for e in fs::read_dir(&snaps).map_err(io_err(format!("list {}", snaps.display())))? {
            let e = e.map_err(io_err("list snapshots"))?;
            if !live.contains(&e.file_name().to_string_lossy().into_owned()) {
                super::copy::remove_tree(&e.path())
                    .map_err(io_err(format!("remove {}", e.path().display())))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The async side every snapshotter on this store shares: each call runs the store's
/// blocking work off the runtime.
impl Store {
    /// [`Snapshotter::stat`](super::Snapshotter::stat).
    pub(crate) async fn stat_async(&self, key: &str) -> Result<Info> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.must(&key).map(|r| r.info())).await
    }

    /// [`Snapshotter::usage`](super::Snapshotter::usage): the snapshot's own `fs` directory.
    pub(crate) async fn usage_async(&self, key: &str) -> Result<Usage> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || {
            let r = store.must(&key)?;
            let (size, inodes) = super::copy::usage(&store.dir(&r.id).join("fs"))
                .map_err(|e| Error::io("usage", e))?;
            Ok(Usage { size, inodes })
        })
        .await
    }

    /// [`Snapshotter::commit`](super::Snapshotter::commit).
    pub(crate) async fn commit_async(&self, name: &str, key: &str) -> Result<()> {
        let (store, name, key) = (self.clone(), name.to_owned(), key.to_owned());
        blocking(move || store.commit(&name, &key)).await
    }

    /// [`Snapshotter::remove`](super::Snapshotter::remove).
    pub(crate) async fn remove_async(&self, key: &str) -> Result<()> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.remove(&key)).await
    }

    /// [`Snapshotter::walk`](super::Snapshotter::walk).
    pub(crate) async fn walk_async(
        &self,
        f: &mut (dyn FnMut(Info) -> Result<()> + Send),
    ) -> Result<()> {
        let store = self.clone();
        for r in blocking(move || store.all()).await? {
            f(r.info())?;
        }
        Ok(())
    }
}

/// Runs blocking snapshot work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::io(
            "snapshot task",
            std::io::Error::other(e.to_string()),
        )),
    }
}
