//! [`LocalStore`]: the content store on a local filesystem, in containerd's layout.
//!
//! ```text
//! <root>/blobs/<alg>/<hex>                  committed, verified, read-only blobs
//!                                           (<alg>: sha256, sha384 or sha512)
//! <root>/ingest/<sha256-of-ref>/data        the partial content of an ingest
//! <root>/ingest/<sha256-of-ref>/ref         the ingest's ref
//! <root>/ingest/<sha256-of-ref>/startedat   RFC 3339 start time
//! <root>/ingest/<sha256-of-ref>/updatedat   RFC 3339 time of the last writer activity
//! <root>/ingest/<sha256-of-ref>/total       expected size, when known
//! <root>/ingest/<sha256-of-ref>/lock        flock(2) target (ours; containerd ignores it)
//! <root>/labels/<alg>/<hex>                 blob labels as JSON (ours; containerd ignores it)
//! <root>/leases/                            leases and the collection lock (ours, see `Leases`)
//! ```
//!
//! The `<root>` of containerd's own store is
//! `/var/lib/containerd/io.containerd.content.v1.content`; opening that directory gives
//! read access to everything containerd has fetched.

pub(crate) mod atomic;
mod blobs;
mod closing;
mod follow;
mod ingest;
pub(crate) mod lock;
mod publish;
pub(crate) mod writer;

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use oci_spec::image::Digest;

use self::ingest::{DATA, Meta};
use self::lock::IngestLock;
use self::writer::{LocalWriter, blocking};
use crate::{
    Algorithm, Digester, Error, Filter, IngestManager, Ingester, Result, Status, Writer, WriterOpts,
};

pub use self::blobs::LocalReaderAt;
pub use self::follow::{Follow, FollowError, FollowOptions, FollowReader};

/// A content store in a directory, compatible with containerd's local content store.
///
/// Cheap to clone; clones share the directory. Several processes may use one directory at
/// once: ingest refs are locked with `flock(2)`, blobs appear by atomic rename only after
/// their size and digest were verified, and an existing blob is never replaced. Ingest
/// metadata and labels are replaced atomically (unique temporary file, fsync, rename).
///
/// Every method does its file work on tokio's blocking pool, and a writer hashes and
/// writes on two threads of its own, so no call blocks a runtime worker; only
/// [`open`](LocalStore::open) touches the disk on the caller's thread, once.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// Where ingests and labels live: `root` itself, or a hidden directory of an OCI
    /// layout (whose top level belongs to the layout format).
    state: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) the store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalStore> {
        let root = root.as_ref().to_path_buf();
        for sub in ["blobs", "ingest"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        Ok(LocalStore {
            state: root.clone(),
            root,
        })
    }

    /// A store whose blobs are `<root>/blobs/<alg>/<hex>` and whose ingests and labels live
    /// under `state`, touching nothing on disk: directories appear with the first write.
    /// The [`LayoutStore`](crate::LayoutStore) keeps an OCI layout's top level clean this way.
    pub(crate) fn with_state_dir(root: PathBuf, state: PathBuf) -> LocalStore {
        LocalStore { root, state }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The leases of this store, kept in `<root>/leases` (see [`Leases`](crate::Leases)).
    pub fn leases(&self) -> Result<crate::Leases> {
        crate::Leases::open(self.root.join("leases"))
    }

    /// Where the blob named `digest` lives (whether or not it exists), as the seed's
    /// `dist path` prints it.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        // A parsed Digest holds no '/' and no empty component, so this stays inside root.
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    fn labels_path(&self, digest: &Digest) -> PathBuf {
        self.state
            .join("labels")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    fn ingest_root(&self) -> PathBuf {
        self.state.join("ingest")
    }

    fn ingest_dir(&self, reference: &str) -> PathBuf {
        self.ingest_root().join(ingest::dir_name(reference))
    }

    /// The ingests whose last activity is older than `max_age` (for example abandoned by a
    /// crashed puller).
    pub async fn stale_ingests(&self, max_age: Duration) -> Result<Vec<Status>> {
        closing::wait(&self.ingest_root()).await;
        let store = self.clone();
        blocking(move || store.stale_blocking(max_age)).await
    }

    /// Removes every ingest older than `max_age` that no writer holds, and returns what it
    /// removed. Ingests locked by a live writer are skipped, however old; staleness is
    /// re-checked under the lock, so an ingest resumed meanwhile is kept. Directories a
    /// crashed writer left before recording its ref are removed too (not returned).
    pub async fn prune_stale_ingests(&self, max_age: Duration) -> Result<Vec<Status>> {
        closing::wait(&self.ingest_root()).await;
        let store = self.clone();
        blocking(move || store.prune_blocking(max_age)).await
    }

    fn prune_blocking(&self, max_age: Duration) -> Result<Vec<Status>> {
        let now = SystemTime::now();
        let stale = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age > max_age);
        let mut removed = Vec::new();
        for dir in ingest::list_dirs(&self.ingest_root())? {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            // Taken before locking: creating the lock file would touch it.
            let dir_mtime = std::fs::metadata(&dir).and_then(|m| m.modified());
            let lock = match IngestLock::acquire_existing(&dir, &name) {
                Ok(lock) => lock,
                Err(Error::Locked(_) | Error::IngestNotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let remove = match ingest::read_status(&dir)? {
                Some(status) if stale(status.updated_at) => {
                    removed.push(status);
                    true
                }
                Some(_) => false,
                // No ref: a writer died between creating the directory and describing it.
                None => dir_mtime.is_ok_and(stale),
            };
            if remove {
                ingest::remove_dir(&dir)?;
            }
            drop(lock);
        }
        ingest::remove_leftovers(&self.ingest_root());
        removed.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(removed)
    }

    fn stale_blocking(&self, max_age: Duration) -> Result<Vec<Status>> {
        let now = SystemTime::now();
        Ok(self
            .statuses_blocking(&Filter::all())?
            .into_iter()
            .filter(|s| {
                now.duration_since(s.updated_at)
                    .is_ok_and(|age| age > max_age)
            })
            .collect())
    }

    fn statuses_blocking(&self, filter: &Filter) -> Result<Vec<Status>> {
        let mut out = Vec::new();
        for dir in ingest::list_dirs(&self.ingest_root())? {
            // An ingest committed or aborted while we look is simply gone.
            let status = match ingest::read_status(&dir) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if filter.matches_ref(&status.reference) {
                out.push(status);
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    fn abort_blocking(&self, reference: &str) -> Result<()> {
        let dir = self.ingest_dir(reference);
        if !dir.is_dir() {
            return Err(Error::IngestNotFound(reference.to_owned()));
        }
        let lock = IngestLock::acquire(&dir, reference)?;
        let exists = ingest::read_meta(&dir)?.is_some();
        ingest::remove_dir(&dir)?;
        drop(lock);
        if exists {
            Ok(())
        } else {
            Err(Error::IngestNotFound(reference.to_owned()))
        }
    }

    fn open_writer(&self, opts: WriterOpts) -> Result<LocalWriter> {
        let reference = opts.reference;
        if reference.is_empty() {
            return Err(Error::InvalidArgument("empty ingest ref".into()));
        }
        let (total, expected) = match &opts.expected {
            Some(desc) => (Some(desc.size()), Some(desc.digest().clone())),
            None => (None, None),
        };
        // Refused before touching the disk: a digest we cannot compute can never commit.
        if let Some(d) = &expected {
            Algorithm::of(d)?;
        }
        if let Some(d) = &expected
            && self.blob_path(d).exists()
        {
            return Err(Error::AlreadyExists(d.to_string()));
        }
        let dir = self.ingest_dir(&reference);
        let lock = IngestLock::acquire(&dir, &reference)?;
        let old = ingest::read_meta(&dir)?;
        // Checked again under the lock: a writer we waited for may have just committed it.
        if let Some(d) = &expected
            && self.blob_path(d).exists()
        {
            if old.is_none() {
                // The directory is only the one our lock created: leave nothing behind.
                let _ = ingest::remove_dir(&dir);
            }
            drop(lock);
            return Err(Error::AlreadyExists(d.to_string()));
        }
        if let Some(old) = &old
            && old.reference != reference
        {
            return Err(Error::InvalidArgument(format!(
                "ingest ref {reference:?} collides with {:?}",
                old.reference
            )));
        }
        let data_path = dir.join(DATA);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .map_err(|e| Error::io(format!("open {}", data_path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", data_path.display()), e))?
            .len();
        // Partial data written for different content (another size or digest), or longer
        // than the content can be, is stale: start over rather than keep it.
        let conflicts = old.as_ref().is_some_and(|old| {
            differs(old.total, total) || differs(old.expected.clone(), expected.clone())
        });
        let too_long = total.is_some_and(|t| len > t);
        let keep = if conflicts || too_long || old.is_none() {
            0
        } else {
            len
        };
        if keep != len {
            file.set_len(keep)
                .map_err(|e| Error::io(format!("truncate {}", data_path.display()), e))?;
        }
        let now = SystemTime::now();
        let meta = match old {
            Some(old) if !conflicts => Meta {
                total: total.or(old.total),
                expected: expected.or(old.expected),
                ..old
            },
            _ => Meta {
                reference: reference.clone(),
                total,
                expected,
                started_at: now,
            },
        };
        // The writer hashes with the algorithm of the digest it expects (so a sha512 blob
        // is verified and stored as sha512), and sha256 when it expects none.
        let alg = match &meta.expected {
            Some(d) => Algorithm::of(d)?,
            None => Algorithm::Sha256,
        };
        let hasher = rehash(&file, keep, &data_path, alg)?;
        ingest::write_meta(&dir, &meta)?;
        Ok(LocalWriter {
            blobs_dir: self.root.join("blobs"),
            dir,
            reference,
            lock: Some(lock),
            file: std::sync::Arc::new(file),
            alg,
            hash: writer::HashThread::spawn(hasher)
                .map_err(|e| Error::io("start the ingest's hashing thread", e))?,
            offset: keep,
            total: meta.total,
            expected: meta.expected,
            started_at: meta.started_at,
            updated_at: now,
            buf: Vec::new(),
            spare: Vec::new(),
            writes: writer::WriteThread::spawn()
                .map_err(|e| Error::io("start the ingest's writing thread", e))?,
            inflight: std::collections::VecDeque::new(),
            poisoned: false,
        })
    }
}

fn differs<T: PartialEq>(old: Option<T>, new: Option<T>) -> bool {
    matches!((old, new), (Some(a), Some(b)) if a != b)
}

/// Hashes the first `len` bytes of `file` with `alg`: the digest state a resuming writer
/// continues from. Fails if the file is shorter (it cannot be while we hold the lock).
fn rehash(file: &File, len: u64, path: &Path, alg: Algorithm) -> Result<Digester> {
    let mut hasher = Digester::new(alg);
    let mut reader = io::BufReader::with_capacity(
        1 << 20,
        file.try_clone()
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?,
    );
    std::io::Seek::seek(&mut reader, io::SeekFrom::Start(0))
        .map_err(|e| Error::io(format!("seek {}", path.display()), e))?;
    let mut limited = reader.take(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = limited
            .read(&mut buf)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        return Err(Error::io(
            format!("read {}", path.display()),
            io::Error::from(io::ErrorKind::UnexpectedEof),
        ));
    }
    Ok(hasher)
}

#[async_trait]
impl Ingester for LocalStore {
    async fn writer(&self, opts: WriterOpts) -> Result<Box<dyn Writer>> {
        // A writer of ours on this ref that was just dropped may still be storing its
        // last bytes: wait for it rather than report the ref busy.
        closing::wait(&self.ingest_dir(&opts.reference)).await;
        let store = self.clone();
        let w = blocking(move || store.open_writer(opts)).await?;
        Ok(Box::new(w))
    }
}

#[async_trait]
impl IngestManager for LocalStore {
    async fn status(&self, reference: &str) -> Result<Status> {
        let dir = self.ingest_dir(reference);
        closing::wait(&dir).await;
        let reference = reference.to_owned();
        blocking(move || match ingest::read_status(&dir)? {
            Some(s) if s.reference == reference => Ok(s),
            _ => Err(Error::IngestNotFound(reference)),
        })
        .await
    }

    async fn list_statuses(&self, filter: &Filter) -> Result<Vec<Status>> {
        closing::wait(&self.ingest_root()).await;
        let store = self.clone();
        let filter = filter.clone();
        blocking(move || store.statuses_blocking(&filter)).await
    }

    async fn abort(&self, reference: &str) -> Result<()> {
        closing::wait(&self.ingest_dir(reference)).await;
        let store = self.clone();
        let reference = reference.to_owned();
        blocking(move || store.abort_blocking(&reference)).await
    }
}

#[cfg(test)]
mod tests;
