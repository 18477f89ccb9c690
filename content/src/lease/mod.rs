//! Leases: named, expiring claims on content, ingests and snapshots, kept under the store's
//! root so that they work across processes without a daemon.
//!
//! A pull (push, import, unpack) creates a [`Lease`], attaches every object it is about to
//! create *before* creating it, and deletes the lease when the objects are reachable from
//! an image record (or when it gives up). The garbage collector keeps whatever a live lease
//! names. The resource types are containerd's: `content` (a digest), `ingests` (an ingest
//! ref) and `snapshots/<snapshotter>` (a snapshot key).
//!
//! Layout under `<content root>/leases/`:
//!
//! ```text
//! gc.lock                     flock: shared while attaching, exclusive while collecting
//! <sha256-of-id>/lease.json   {"id": ..., "created_at": RFC 3339, "labels": {...}}
//! <sha256-of-id>/resources    one JSON line per attached resource: ["content", "sha256:..."]
//! <sha256-of-id>/lock         flock(2) held by the live holder
//! ```
//!
//! A lease is *live* while its holder (the process that created it, through its [`Lease`]
//! handle) holds its lock; after that, until its `containerd.io/gc.expire` label (when it
//! has one) or, without one, for a grace period after its last change. A lease that is
//! not live protects nothing and the collector deletes it: a process killed mid-pull
//! leaves nothing pinned for longer than the grace period.

mod files;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oci_spec::image::Digest;

use crate::local::writer::blocking;
use crate::{Error, Result};

/// Label naming when a lease (or a root) stops protecting anything, RFC 3339.
pub const LABEL_GC_EXPIRE: &str = "containerd.io/gc.expire";

/// Resource type of committed content; the id is a digest.
pub const RESOURCE_CONTENT: &str = "content";
/// Resource type of an ingest; the id is the ingest ref.
pub const RESOURCE_INGEST: &str = "ingests";
/// Prefix of the resource type of a snapshot: `snapshots/<snapshotter>`; the id is a key.
pub const RESOURCE_SNAPSHOT_PREFIX: &str = "snapshots/";

/// How long an unheld lease without an expiry keeps protecting after its last change,
/// unless the collector is told otherwise.
pub const DEFAULT_LEASE_GRACE: Duration = Duration::from_secs(5 * 60);

/// One object a lease protects, named as containerd names lease resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Resource {
    /// `content`, `ingests` or `snapshots/<snapshotter>`.
    pub kind: String,
    /// A digest, an ingest ref or a snapshot key.
    pub id: String,
}

impl Resource {
    /// A resource of type `kind` named `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Resource {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// Committed content (or content about to be committed) with this digest.
    pub fn content(digest: &Digest) -> Self {
        Resource::new(RESOURCE_CONTENT, digest.to_string())
    }

    /// The ingest under `reference`.
    pub fn ingest(reference: impl Into<String>) -> Self {
        Resource::new(RESOURCE_INGEST, reference)
    }

    /// The snapshot `key` of the snapshotter named `snapshotter`.
    pub fn snapshot(snapshotter: &str, key: impl Into<String>) -> Self {
        Resource::new(format!("{RESOURCE_SNAPSHOT_PREFIX}{snapshotter}"), key)
    }
}

/// What [`Leases::create`] records.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LeaseOptions {
    /// The lease's name; a unique one is made up when `None`.
    pub id: Option<String>,
    /// Labels; [`LABEL_GC_EXPIRE`] among them makes the lease outlive its holder until
    /// then.
    pub labels: HashMap<String, String>,
}

impl LeaseOptions {
    /// Options for a lease named `id`.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Makes the lease protect until `at` even after its holder is gone (as containerd's
    /// expiring leases).
    pub fn with_expire(mut self, at: SystemTime) -> Self {
        let text = humantime::format_rfc3339_nanos(at).to_string();
        self.labels.insert(LABEL_GC_EXPIRE.to_owned(), text);
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// What is known about a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseInfo {
    /// Its name.
    pub id: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was created or last had a resource attached.
    pub updated_at: SystemTime,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Whether a live process holds it now.
    pub held: bool,
    /// What it protects, in the order attached (duplicates removed).
    pub resources: Vec<Resource>,
}

impl LeaseInfo {
    /// The time its [`LABEL_GC_EXPIRE`] label names, when it has a valid one.
    pub fn expire(&self) -> Option<SystemTime> {
        parse_expire(&self.labels)
    }

    /// Whether the lease protects its resources at `now`: while held; else until its
    /// expiry, or (without one) until `grace` after its last change.
    pub fn is_live(&self, now: SystemTime, grace: Duration) -> bool {
        if self.held {
            return true;
        }
        let until = match self.expire() {
            Some(t) => t,
            None => self
                .updated_at
                .checked_add(grace)
                .unwrap_or(self.updated_at),
        };
        now < until
    }
}

/// The time a [`LABEL_GC_EXPIRE`] label names; `None` when absent or not RFC 3339.
pub fn parse_expire(labels: &HashMap<String, String>) -> Option<SystemTime> {
    let text = labels.get(LABEL_GC_EXPIRE)?;
    humantime::parse_rfc3339_weak(text.trim()).ok()
}

/// The leases of one store: create, list, attach to and delete them.
///
/// Cheap to clone. Every method does its file work on tokio's blocking pool.
///
/// ```
/// use dist_content::{LocalStore, Resource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let leases = LocalStore::open(dir.path())?.leases()?;
/// let lease = leases.create(Default::default()).await?;
/// let digest = dist_content::sha256_of(b"{}");
/// lease.attach(&[Resource::content(&digest)]).await?; // before writing the blob
/// let listed = leases.list().await?;
/// assert!(listed[0].held);
/// assert_eq!(listed[0].resources, [Resource::content(&digest)]);
/// lease.release().await?; // the blob is reachable from an image record by now
/// assert!(leases.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

impl Leases {
    /// Opens (creating) the leases kept in `dir`; [`LocalStore::leases`] passes
    /// `<content root>/leases`.
    ///
    /// [`LocalStore::leases`]: crate::LocalStore::leases
    pub fn open(dir: impl AsRef<Path>) -> Result<Leases> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        Ok(Leases { dir })
    }

    /// The directory the leases live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a lease held by the returned handle (in this process) until it is released
    /// or dropped. `AlreadyExists` when a lease of that id exists.
    pub async fn create(&self, opts: LeaseOptions) -> Result<Lease> {
        let leases = self.clone();
        blocking(move || files::create(&leases.dir, opts)).await
    }

    /// Every lease, sorted by id. A lease whose record cannot be read is logged and left
    /// out.
    pub async fn list(&self) -> Result<Vec<LeaseInfo>> {
        let dir = self.dir.clone();
        blocking(move || files::list(&dir)).await
    }

    /// Information about one lease; `NotFound` when there is none.
    pub async fn get(&self, id: &str) -> Result<LeaseInfo> {
        let (dir, id) = (self.dir.clone(), id.to_owned());
        blocking(move || files::read(&files::lease_dir(&dir, &id))?.ok_or(Error::NotFound(id)))
            .await
    }

    /// Adds resources to the lease `id` (held by any process, or by none), under the
    /// shared collection lock: a collection that starts afterwards sees them, and one in
    /// progress finishes first. Attach an object before creating it.
    pub async fn attach(&self, id: &str, resources: &[Resource]) -> Result<()> {
        let (dir, id, resources) = (self.dir.clone(), id.to_owned(), resources.to_vec());
        blocking(move || files::attach(&dir, &id, &resources)).await
    }

    /// Deletes the lease `id`, whoever holds it; what it protected becomes collectable.
    /// `NotFound` when there is none.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let (dir, id) = (self.dir.clone(), id.to_owned());
        blocking(move || files::delete(&dir, &id)).await
    }

    /// Takes the collection lock exclusively (blocking): no lease changes until the guard
    /// is dropped. For a garbage collector, around its mark and sweep; call it from a
    /// blocking thread.
    pub fn lock_for_collection(&self) -> Result<CollectionLock> {
        files::gc_lock(&self.dir, true).map(CollectionLock)
    }
}

/// The exclusive collection lock ([`Leases::lock_for_collection`]); released on drop.
#[derive(Debug)]
pub struct CollectionLock(#[allow(dead_code)] std::fs::File);

/// A lease this process holds: it stays live while this handle exists.
///
/// Dropping it releases the hold but keeps the record: the lease then protects for the
/// grace period (or until its expiry). [`release`](Lease::release) deletes it.
#[derive(Debug)]
pub struct Lease {
    id: String,
    leases: Leases,
    // Held only for its open file description: closing it releases the flock.
    _lock: std::fs::File,
}

impl Lease {
    /// The lease's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store's leases this one belongs to.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Adds resources to this lease ([`Leases::attach`]).
    pub async fn attach(&self, resources: &[Resource]) -> Result<()> {
        self.leases.attach(&self.id, resources).await
    }

    /// Deletes the lease: the work it protected is done (or abandoned).
    pub async fn release(self) -> Result<()> {
        let leases = self.leases.clone();
        let id = self.id.clone();
        let result = leases.delete(&id).await;
        drop(self);
        match result {
            Err(Error::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}
