//! [`collect_garbage`]: containerd's mark-and-sweep over a root directory's content store,
//! image records, leases and snapshotters, safe while other processes pull into it.
//!
//! The rules are on [`collect_garbage`].

mod mark;
mod snapshots;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use dist_content::{ErrorKind, Leases, RESOURCE_CONTENT, RESOURCE_INGEST, Store};
use dist_images::{ImageStore, Limits};

use crate::{Result, Snapshotter};

/// How long an ingest no lease names may sit untouched before it is collected.
pub const DEFAULT_INGEST_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Options for [`collect_garbage`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// How long a lease whose holder is gone keeps protecting after its last change, when
    /// it has no expiry of its own.
    pub lease_grace: Duration,
    /// How old (since its last write) an unleased, unlocked ingest must be to be removed.
    pub ingest_max_age: Duration,
    /// Size limits for the manifests and indexes parsed when they carry no labels.
    pub limits: Limits,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            lease_grace: dist_content::DEFAULT_LEASE_GRACE,
            ingest_max_age: DEFAULT_INGEST_MAX_AGE,
            limits: Limits::DEFAULT,
        }
    }
}

impl GcOptions {
    /// Only reports, removes nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`GcOptions::lease_grace`].
    pub fn lease_grace(mut self, grace: Duration) -> Self {
        self.lease_grace = grace;
        self
    }

    /// Sets [`GcOptions::ingest_max_age`].
    pub fn ingest_max_age(mut self, age: Duration) -> Self {
        self.ingest_max_age = age;
        self
    }
}

/// What kind of object a [`Removed`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RemovedKind {
    /// A committed blob; the name is its digest.
    Blob,
    /// A partial ingest; the name is its ref.
    Ingest,
    /// A snapshot; the name is its key.
    Snapshot,
    /// An expired lease; the name is its id.
    Lease,
}

/// One object the collector removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removed {
    /// What it is.
    pub kind: RemovedKind,
    /// Its digest, ref, key or id.
    pub name: String,
    /// The snapshotter it was in, for snapshots.
    pub snapshotter: Option<String>,
    /// Bytes it occupied (a snapshot's as its snapshotter's `usage` counts them).
    pub size: u64,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Every removed object, blobs first, then ingests, snapshots and leases.
    pub removed: Vec<Removed>,
    /// The sum of their sizes.
    pub bytes_freed: u64,
    /// How many blobs were kept.
    pub blobs_kept: usize,
    /// How many snapshots were kept.
    pub snapshots_kept: usize,
}

impl GcReport {
    fn push(&mut self, kind: RemovedKind, name: String, snapshotter: Option<&str>, size: u64) {
        self.bytes_freed = self.bytes_freed.saturating_add(size);
        self.removed.push(Removed {
            kind,
            name,
            snapshotter: snapshotter.map(str::to_owned),
            size,
        });
    }
}

/// A snapshotter and the name labels and leases call it by (`native`, `overlayfs`, ...).
pub type NamedSnapshotter<'a> = (&'a str, &'a dyn Snapshotter);

/// What the live leases protect and what the expired ones leave behind.
#[derive(Debug, Default)]
pub(crate) struct LeaseRoots {
    pub(crate) content: HashSet<String>,
    pub(crate) ingests: HashSet<String>,
    /// By snapshotter name.
    pub(crate) snapshots: HashMap<String, HashSet<String>>,
    /// Ingest refs named only by expired leases.
    pub(crate) expired_ingests: HashSet<String>,
    /// Ids of the expired leases.
    pub(crate) expired: Vec<String>,
}

/// Collects the garbage of one root: `content` with its `leases`, the image records in
/// `images`, and every snapshotter in `snapshotters` under the name the labels use.
///
/// **Mark.** Roots are the targets of image records, blobs labelled
/// `containerd.io/gc.root` (until their `containerd.io/gc.expire`, if any), and what every
/// live lease names. From a reached blob, its `containerd.io/gc.ref.content*` labels reach
/// more blobs and its `containerd.io/gc.ref.snapshot.<snapshotter>` labels reach
/// snapshots; a manifest or index without reference labels (stored by a tool that does not
/// write them) is parsed instead. Configs and layers are never read. A kept snapshot keeps
/// its parents.
///
/// **Sweep.** Unreached blobs committed before the mark began, ingests that no live lease
/// names and that are older than [`GcOptions::ingest_max_age`] or named by a lease that
/// expired, committed snapshots no one reaches (children before parents), the active
/// snapshots of extractions whose process is gone, and the expired leases themselves.
///
/// **Safety.** The whole run holds the leases' collection lock exclusively; attaching to a
/// lease takes it shared, and writers attach an object before they create it. So an object
/// created by a leased writer either was attached before the mark read the leases (and is
/// kept), or is created after the sweep (and is not seen). Objects committed after the
/// mark began are kept too, whoever wrote them. `docs/architecture.md` has the argument.
///
/// ```
/// use dist_content::LocalStore;
/// use dist_images::FsImageStore;
/// use dist_rootfs::{GcOptions, NamedSnapshotter, NativeSnapshotter, RemovedKind, collect_garbage};
/// use oci_spec::image::{Descriptor, MediaType};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let root = tempfile::tempdir()?;
/// let content = LocalStore::open(root.path().join("content"))?;
/// let images = FsImageStore::open(root.path().join("images"))?;
/// let native = NativeSnapshotter::new(root.path().join("snapshots/native"))?;
/// // A blob no image, root label or lease references.
/// let stray = Descriptor::new(MediaType::ImageLayer, 5, dist_content::sha256_of(b"stray"));
/// dist_content::write_blob(&content, "stray", &stray, &b"stray"[..]).await?;
///
/// let snapshotters: [NamedSnapshotter<'_>; 1] = [("native", &native)];
/// let leases = content.leases()?;
/// let dry = GcOptions::default().dry_run(true);
/// let report = collect_garbage(&content, &leases, &images, &snapshotters, &dry).await?;
/// assert_eq!(report.removed[0].kind, RemovedKind::Blob);
/// assert_eq!(report.bytes_freed, 5);
///
/// collect_garbage(&content, &leases, &images, &snapshotters, &GcOptions::default()).await?;
/// assert!(dist_content::Manager::info(&content, stray.digest()).await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn collect_garbage(
    content: &dyn Store,
    leases: &Leases,
    images: &dyn ImageStore,
    snapshotters: &[NamedSnapshotter<'_>],
    opts: &GcOptions,
) -> Result<GcReport> {
    let lock_leases = leases.clone();
    let _lock = tokio::task::spawn_blocking(move || lock_leases.lock_for_collection())
        .await
        .map_err(|e| crate::Error::io("blocking task", std::io::Error::other(e)))??;
    let started = SystemTime::now();
    // Leases before images: a pull records its image before releasing its lease, so what
    // it made is in one or the other.
    let lease_roots = read_leases(leases, started, opts.lease_grace).await?;
    let blobs = mark::all_blobs(content).await?;
    let marked = mark::mark(content, images, &blobs, &lease_roots, started, opts).await?;

    let mut report = GcReport::default();
    let mut doomed: Vec<_> = blobs
        .iter()
        .filter(|(d, b)| !marked.content.contains(*d) && b.created_at < started)
        .collect();
    doomed.sort_by(|a, b| a.0.cmp(b.0));
    report.blobs_kept = blobs.len() - doomed.len();
    for (digest, blob) in doomed {
        if !opts.dry_run {
            match content.delete(&blob.digest).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        report.push(RemovedKind::Blob, digest.clone(), None, blob.size);
    }
    sweep_ingests(content, &lease_roots, started, opts, &mut report).await?;
    for (name, snapshotter) in snapshotters {
        let keep = marked.snapshots.get(*name);
        let leased = lease_roots.snapshots.get(*name);
        report.snapshots_kept +=
            snapshots::sweep(name, *snapshotter, keep, leased, started, opts, &mut report).await?;
    }
    for id in &lease_roots.expired {
        if !opts.dry_run {
            match leases.delete(id).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        report.push(RemovedKind::Lease, id.clone(), None, 0);
    }
    Ok(report)
}

async fn read_leases(leases: &Leases, now: SystemTime, grace: Duration) -> Result<LeaseRoots> {
    let mut roots = LeaseRoots::default();
    let mut expired_ingests = HashSet::new();
    for lease in leases.list().await? {
        let live = lease.is_live(now, grace);
        if !live {
            roots.expired.push(lease.id.clone());
        }
        for r in lease.resources {
            match (r.kind.as_str(), live) {
                (RESOURCE_INGEST, false) => {
                    expired_ingests.insert(r.id);
                }
                (_, false) => {}
                (RESOURCE_CONTENT, true) => {
                    roots.content.insert(r.id);
                }
                (RESOURCE_INGEST, true) => {
                    roots.ingests.insert(r.id);
                }
                (kind, true) => {
                    if let Some(name) = kind.strip_prefix(dist_content::RESOURCE_SNAPSHOT_PREFIX) {
                        let keys = roots.snapshots.entry(name.to_owned()).or_default();
                        keys.insert(r.id);
                    }
                }
            }
        }
    }
    roots.expired_ingests = expired_ingests
        .into_iter()
        .filter(|r| !roots.ingests.contains(r))
        .collect();
    Ok(roots)
}

async fn sweep_ingests(
    content: &dyn Store,
    leases: &LeaseRoots,
    now: SystemTime,
    opts: &GcOptions,
    report: &mut GcReport,
) -> Result<()> {
    let statuses = content.list_statuses(&dist_content::Filter::all()).await?;
    for status in statuses {
        if leases.ingests.contains(&status.reference) {
            continue;
        }
        let old = now
            .duration_since(status.updated_at)
            .is_ok_and(|age| age > opts.ingest_max_age);
        if !old && !leases.expired_ingests.contains(&status.reference) {
            continue;
        }
        if !opts.dry_run {
            match content.abort(&status.reference).await {
                Ok(()) => {}
                // A writer holds it (it is not garbage), or it just finished.
                Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::NotFound) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        report.push(RemovedKind::Ingest, status.reference, None, status.offset);
    }
    Ok(())
}
