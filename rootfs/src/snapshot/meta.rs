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
//! - `locks/<id>`: the [hold](super::hold) of a process still working on snapshot `id`:
//!   filling its directory (before the record exists, without the store lock), or
//!   extracting a layer into it. Cleanup leaves held snapshots alone.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::hold::{self, Hold};
use super::{Info, Kind, Usage};
use crate::{EXTRACT_KEY_PREFIX, Error, Result};

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
        for d in ["metadata", "snapshots", "locks"] {
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

    /// The lock file of snapshot `id`'s hold.
    fn hold_path(&self, id: &str) -> PathBuf {
        self.root.join("locks").join(id)
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("metadata").join(format!(
            "{}.json",
            dist_content::sha256_of(key.as_bytes()).digest()
        ))
    }

    fn read(&self, path: &Path) -> Result<Option<Record>> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| Error::CorruptRecord {
                    path: path.display().to_string(),
                    source,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    /// Every record that can be read, and how many could not: one corrupt record is
    /// reported (a warning) and skipped, so it does not hide every other snapshot.
    fn scan(&self) -> Result<(Vec<Record>, usize)> {
        let dir = self.root.join("metadata");
        let mut out = Vec::new();
        let mut corrupt = 0;
        for e in fs::read_dir(&dir).map_err(io_err(format!("list {}", dir.display())))? {
            let e = e.map_err(io_err(format!("list {}", dir.display())))?;
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match self.read(&p) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e @ Error::CorruptRecord { .. }) => {
                    tracing::warn!(error = %e, "skipping a corrupt snapshot record");
                    corrupt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, corrupt))
    }

    /// Every readable record, without active records left behind by a commit that crashed
    /// after writing the committed record. Corrupt records are skipped with a warning.
    pub(crate) fn all(&self) -> Result<Vec<Record>> {
        let (mut out, _) = self.scan()?;
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

    /// `parent`'s record, which must be committed.
    fn committed_parent(&self, parent: Option<&str>) -> Result<Option<Record>> {
        let Some(p) = parent else {
            return Ok(None);
        };
        let r = self.must(p)?;
        if r.kind != Kind::Committed {
            return Err(Error::FailedPrecondition(format!(
                "parent {p:?} is not committed"
            )));
        }
        Ok(Some(r))
    }

    /// Creates a snapshot record after `fill` populated its fresh data directory; the
    /// record is written last, so a crash leaves only an invisible directory.
    ///
    /// `fill` (a copy of the parent's tree, for the native snapshotter) runs without the
    /// store lock, in a directory of its own that the new snapshot's hold protects from
    /// cleanup; the lock is taken after it, to check that the key is still free and the
    /// parent still the one copied, and to write the record. An active extraction
    /// snapshot stays held by this process until it is committed or removed.
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
        // Checked first to fail before any copy, and again under the lock.
        if self.get(key)?.is_some() {
            return Err(Error::AlreadyExists(key.to_owned()));
        }
        let parent_rec = self.committed_parent(parent)?;
        let id = Self::new_id();
        let hold_path = self.hold_path(&id);
        let hold =
            Hold::take(&hold_path).map_err(io_err(format!("lock {}", hold_path.display())))?;
        let dir = self.dir(&id);
        fs::create_dir(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let recorded = fill(&dir, parent_rec.as_ref()).and_then(|()| {
            let _lock = self.lock()?;
            if self.get(key)?.is_some() {
                return Err(Error::AlreadyExists(key.to_owned()));
            }
            let now_parent = self.committed_parent(parent)?;
            if now_parent.map(|r| r.id) != parent_rec.as_ref().map(|r| r.id.clone()) {
                return Err(Error::FailedPrecondition(format!(
                    "parent {parent:?} was replaced while it was copied"
                )));
            }
            let now = now_ns();
            let rec = Record {
                key: key.to_owned(),
                id: id.clone(),
                kind,
                parent: parent.map(str::to_owned),
                created_ns: now,
                updated_ns: now,
            };
            self.put(&rec)?;
            Ok(rec)
        });
        match recorded {
            Ok(rec) => {
                if kind == Kind::Active && key.starts_with(EXTRACT_KEY_PREFIX) {
                    hold.keep();
                }
                Ok(rec)
            }
            Err(e) => {
                let _ = super::copy::remove_tree(&dir);
                drop(hold);
                Err(e)
            }
        }
    }

    /// Commits active `key` as `name`.
    pub(crate) fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.commit_with(name, key, None)
    }

    /// Commits active `key`, prepared with no parent, as `name` on top of committed
    /// `parent`: the record gets the parent, the data stays where it is.
    pub(crate) fn commit_onto(&self, name: &str, key: &str, parent: Option<&str>) -> Result<()> {
        self.commit_with(name, key, Some(parent))
    }

    /// Commits active `key` as `name`; with `onto`, gives the committed snapshot that
    /// parent (`key` must have none).
    fn commit_with(&self, name: &str, key: &str, onto: Option<Option<&str>>) -> Result<()> {
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
        let parent = match onto {
            None => rec.parent.clone(),
            Some(parent) => {
                if let Some(p) = &rec.parent {
                    return Err(Error::FailedPrecondition(format!(
                        "snapshot {key:?} was prepared on {p:?}: only a snapshot without a \
                         parent is committed onto one"
                    )));
                }
                self.committed_parent(parent)?;
                parent.map(str::to_owned)
            }
        };
        let committed = Record {
            key: name.to_owned(),
            kind: Kind::Committed,
            updated_ns: now_ns(),
            parent,
            ..rec
        };
        // Committed record first: a crash between the two leaves a stale active record
        // that `get`/`all` ignore, never a lost snapshot.
        let id = committed.id.clone();
        self.put(&committed)?;
        self.delete(key)?;
        hold::release(&self.hold_path(&id));
        Ok(())
    }

    /// Removes `key` (record first, then data).
    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        let _lock = self.lock()?;
        self.remove_locked(key)
    }

    fn remove_locked(&self, key: &str) -> Result<()> {
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
            hold::release(&self.hold_path(&rec.id));
        }
        Ok(())
    }

    /// Removes the active extraction snapshots no live process holds (their extraction
    /// was killed) and returns their keys.
    pub(crate) fn remove_abandoned(&self) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let mut removed = Vec::new();
        for rec in self.all()? {
            if rec.kind != Kind::Active || !rec.key.starts_with(EXTRACT_KEY_PREFIX) {
                continue;
            }
            let path = self.hold_path(&rec.id);
            if hold::is_held(&path).map_err(io_err(format!("check {}", path.display())))? {
                continue;
            }
            tracing::info!(key = %rec.key, "removing the snapshot of an abandoned extraction");
            self.remove_locked(&rec.key)?;
            removed.push(rec.key);
        }
        Ok(removed)
    }

    /// Removes data directories that no record references (left by a crash). Returns how
    /// many were removed.
    pub(crate) fn cleanup(&self) -> Result<usize> {
        let _lock = self.lock()?;
        let dir = self.root.join("metadata");
        for e in fs::read_dir(&dir).map_err(io_err(format!("list {}", dir.display())))? {
            let p = e.map_err(io_err("list metadata"))?.path();
            if p.extension().is_none_or(|x| x != "json") {
                let _ = fs::remove_file(&p); // an unrenamed temporary record
            }
        }
        let (records, corrupt) = self.scan()?;
        if corrupt > 0 {
            // Whose data is whose cannot be told: removing nothing is the safe side.
            tracing::warn!(
                corrupt,
                "corrupt snapshot records: leaving unreferenced snapshot data in place"
            );
            return Ok(0);
        }
        let live: std::collections::HashSet<String> = records.into_iter().map(|r| r.id).collect();
        let mut n = 0;
        let snaps = self.root.join("snapshots");
        for e in fs::read_dir(&snaps).map_err(io_err(format!("list {}", snaps.display())))? {
            let e = e.map_err(io_err("list snapshots"))?;
            let id = e.file_name().to_string_lossy().into_owned();
            if live.contains(&id) {
                continue;
            }
            // A held directory is being filled by a live process: its record is to come.
            let lock = self.hold_path(&id);
            if !hold::remove_if_free(&lock).map_err(io_err(format!("check {}", lock.display())))? {
                continue;
            }
            super::copy::remove_tree(&e.path())
                .map_err(io_err(format!("remove {}", e.path().display())))?;
            n += 1;
        }
        // Lock files whose snapshot is gone (a process died between the two removals).
        let locks = self.root.join("locks");
        for e in fs::read_dir(&locks).map_err(io_err(format!("list {}", locks.display())))? {
            let e = e.map_err(io_err("list locks"))?;
            let id = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&id) && !self.dir(&id).exists() {
                let _ = hold::remove_if_free(&e.path());
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

    /// [`Snapshotter::commit_onto`](super::Snapshotter::commit_onto).
    pub(crate) async fn commit_onto_async(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<()> {
        let (store, name, key) = (self.clone(), name.to_owned(), key.to_owned());
        let parent = parent.map(str::to_owned);
        blocking(move || store.commit_onto(&name, &key, parent.as_deref())).await
    }

    /// [`Snapshotter::remove`](super::Snapshotter::remove).
    pub(crate) async fn remove_async(&self, key: &str) -> Result<()> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.remove(&key)).await
    }

    /// [`Snapshotter::remove_abandoned`](super::Snapshotter::remove_abandoned).
    pub(crate) async fn remove_abandoned_async(&self) -> Result<Vec<String>> {
        let store = self.clone();
        blocking(move || store.remove_abandoned()).await
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
        Err(e) => Err(Error::io("snapshot task", std::io::Error::other(e))),
    }
}
