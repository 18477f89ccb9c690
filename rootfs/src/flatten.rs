//! `apply_flattened`: an image's layers applied straight into one directory, without
//! writing the files a later layer removes.
//!
//! # Design
//!
//! Layers are applied bottom-up, in order, by the same applier as [`apply`](crate::apply)
//! (so the same confinement), with one difference: a regular file that is provably
//! removed by a later layer is not written. Everything else (directories, links,
//! whiteouts, devices) is applied exactly as a one-by-one apply would, so the state after
//! each layer differs from that apply's only in missing files that nothing can see in
//! the end.
//!
//! What later layers remove is read from their headers before anything is applied: the
//! smallest top layers (together at most [`SCAN_SHARE_PERCENT`] of the compressed bytes) are
//! scanned once for their whiteouts, opaque markers and the paths they replace. A scan
//! costs an extra inflate of those layers, which is why only small ones are scanned: an
//! image's last layers typically are small clean-ups and upgrades, and they are what
//! removes a lower layer's files. Knowing less only means skipping less.
//!
//! A file at path `p` in layer `i` is skipped when
//! - no directory above it has ever been a symlink in the layers applied so far (so it
//!   would be written at `p` itself, not through a link), and no symlink was ever written
//!   through another (which would put links where the paths do not say), and
//! - a scanned layer `j > i` has a whiteout of `p` or of a directory above it, a
//!   non-directory at `p` or above it, a directory at `p`, or an opaque marker in a
//!   directory above it that the same layer does not put anything under again.
//!
//! Whichever way the later layer's entry then resolves, it removes the file: either the
//! directories above `p` are still the ones it was written into, and the entry hits
//! `p`, or one of them was replaced, which removed the file already.
//!
//! Skipping still does what writing the file would have done to the rest of the tree: its
//! parent directories are created and whatever was at `p` is removed. Until the later layer
//! removes it, the file is missing where a one-by-one apply has it; only two things can
//! notice. A hardlink to it finds no target and fails; an entry below it (which
//! a one-by-one apply refuses: a file is not a directory) is caught by the filter. Either
//! way the flattened apply starts again as a plain one-by-one apply into the emptied
//! target, so it never returns a tree that differs from one.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;

use dist_content::{Provider, ReaderAt};

use crate::apply::entry::{self, Header, Kind};
use crate::apply::{EntryFilter, apply_filtered, limits, root, stream};
use crate::snapshot::blocking;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    ApplyOptions, DiffId, Error, Layer, Mount, Result, SnapshotKind, Snapshotter, WhiteoutMode,
    chain_ids, copy_mounted, reflink_supported,
};

/// The largest share of an image's compressed bytes, in percent, whose headers
/// [`apply_flattened`] scans ahead of applying: scanning costs an extra inflate of it.
pub const SCAN_SHARE_PERCENT: u64 = 25;

/// Which layers [`apply_flattened_with`] reads the headers of before applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ScanAhead {
    /// The small top layers, together at most [`SCAN_SHARE_PERCENT`] of the compressed bytes
    /// ([`apply_flattened`]'s choice).
    #[default]
    Small,
    /// Every layer but the bottom one: the most skipped, for an extra inflate of all of
    /// them (worth it when most of the image is removed again).
    All,
    /// None: nothing is skipped, a plain one-by-one apply.
    None,
}

/// What [`apply_flattened`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Flattened {
    /// Layers whose headers were scanned ahead (top ones, by index).
    pub scanned: Vec<usize>,
    /// Regular files not written because a later layer removes them.
    pub skipped_files: u64,
    /// Their bytes.
    pub skipped_bytes: u64,
    /// Whether the flattened apply gave up (a hardlink to a skipped file, or an entry
    /// below one) and the layers were applied one by one instead.
    pub fell_back: bool,
}

/// Applies `layers` (bottom first) into `target`, an existing empty directory, as
/// [`apply`](crate::apply) would one after the other with [`WhiteoutMode::Remove`], but
/// without writing the regular files a later layer removes (see the module's design
/// notes for which). Each layer is read from `provider` and its DiffID checked;
/// `options.whiteouts` is ignored (always `Remove`).
///
/// The result is the same tree a one-by-one apply gives, for every input: when a skipped
/// file turns out to be needed (a hardlink to it), the target is emptied and the layers
/// are applied one by one instead ([`Flattened::fell_back`]).
///
/// On error (a DiffID mismatch included) the target is left partly applied, like
/// [`apply`](crate::apply) leaves it: the directory is the caller's, so it is neither
/// removed nor emptied; discard its contents.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use dist_rootfs::{ApplyOptions, Layer, apply_flattened};
/// use oci_spec::image::{DescriptorBuilder, MediaType};
///
/// // Two layers: the first writes a big file, the second deletes it.
/// let tar = |f: &dyn Fn(&mut tar::Builder<Vec<u8>>)| {
///     let mut b = tar::Builder::new(Vec::new());
///     f(&mut b);
///     b.into_inner().unwrap()
/// };
/// let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
///     let mut h = tar::Header::new_gnu();
///     h.set_size(data.len() as u64);
///     h.set_mode(0o644);
///     b.append_data(&mut h, name, data).unwrap();
/// };
/// let bottom = tar(&|b| {
///     file(b, "big", &[7; 100_000]);
///     file(b, "kept", b"kept");
/// });
/// let top = tar(&|b| file(b, ".wh.big", b""));
///
/// let dir = tempfile::tempdir()?;
/// let store = dist_content::LocalStore::open(dir.path().join("content"))?;
/// let mut layers = Vec::new();
/// for t in [bottom, top] {
///     let digest = dist_content::sha256_of(&t);
///     let blob = DescriptorBuilder::default()
///         .media_type(MediaType::ImageLayer)
///         .digest(digest.clone())
///         .size(t.len() as u64)
///         .build()?;
///     dist_content::write_blob(&store, "layer", &blob, &t[..]).await?;
///     layers.push(Layer { diff_id: digest, blob });
/// }
///
/// let target = dir.path().join("rootfs");
/// std::fs::create_dir(&target)?;
/// let done = apply_flattened(&layers, &store, &target, ApplyOptions::default()).await?;
/// assert_eq!((done.skipped_files, done.skipped_bytes), (1, 100_000));
/// assert!(!target.join("big").exists());
/// assert_eq!(std::fs::read(target.join("kept"))?, b"kept");
/// # Ok(())
/// # }
/// ```
pub async fn apply_flattened(
    layers: &[Layer],
    provider: &dyn Provider,
    target: &Path,
    options: ApplyOptions,
) -> Result<Flattened> {
    apply_flattened_with(layers, provider, target, options, ScanAhead::Small).await
}

/// [`apply_flattened`] with a choice of which layers to scan ahead.
pub async fn apply_flattened_with(
    layers: &[Layer],
    provider: &dyn Provider,
    target: &Path,
    options: ApplyOptions,
    scan_ahead: ScanAhead,
) -> Result<Flattened> {
    let options = options.whiteouts(WhiteoutMode::Remove);
    ensure_empty(target)?;
    let scanned = scan_plan(layers, scan_ahead);
    let mut jobs = Vec::new();
    for &j in &scanned {
        let reader = BlobReader::new(provider.reader_at(&layers[j].blob).await?);
        let expected = layers[j].diff_id.clone();
        jobs.push(tokio::task::spawn_blocking(move || {
            scan(reader, j, &expected)
        }));
    }
    let mut removals = Removals::default();
    for job in jobs {
        // A layer that cannot be scanned (or is not what its DiffID says) tells nothing;
        // applying it reports why.
        if let Ok(Some(layer)) = job.await {
            removals.merge(layer);
        }
    }
    let mut filter = Box::new(Filter::new(removals));
    let mut done = Flattened {
        scanned,
        ..Flattened::default()
    };
    for (i, layer) in layers.iter().enumerate() {
        filter.layer = i;
        let reader = BlobReader::new(provider.reader_at(&layer.blob).await?);
        let (target_dir, opts) = (target.to_path_buf(), options.clone());
        let (f, applied) = blocking(move || {
            let mut f = filter;
            let applied = apply_filtered(reader, &target_dir, &opts, Some(&mut *f));
            Ok((f, applied))
        })
        .await?;
        filter = f;
        done.skipped_files = filter.skipped_files;
        done.skipped_bytes = filter.skipped_bytes;
        let applied = match applied {
            Ok(a) => a,
            Err(e) if filter.skipped_files > 0 && may_be_ours(&e) => {
                tracing::debug!(error = %e, "flattened apply needs a skipped file; applying one by one");
                clear(target)?;
                sequential(layers, provider, target, &options).await?;
                done.fell_back = true;
                return Ok(done);
            }
            Err(e) => return Err(e),
        };
        check_diff_id(layer, &applied.diff_id)?;
    }
    Ok(done)
}

/// Applies `layers` one by one, each checked against its DiffID.
async fn sequential(
    layers: &[Layer],
    provider: &dyn Provider,
    target: &Path,
    options: &ApplyOptions,
) -> Result<()> {
    for layer in layers {
        let reader = BlobReader::new(provider.reader_at(&layer.blob).await?);
        let (target_dir, opts) = (target.to_path_buf(), options.clone());
        let applied = blocking(move || apply_filtered(reader, &target_dir, &opts, None)).await?;
        check_diff_id(layer, &applied.diff_id)?;
    }
    Ok(())
}

fn check_diff_id(layer: &Layer, actual: &DiffId) -> Result<()> {
    if *actual != layer.diff_id {
        return Err(Error::DiffIdMismatch {
            blob: layer.blob.digest().to_string(),
            expected: layer.diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Whether an error could come from a skipped file (everything but a bad stream, a bad
/// blob read and a refused header, which a one-by-one apply meets the same way).
fn may_be_ours(e: &Error) -> bool {
    !matches!(
        e,
        Error::Corrupt { .. }
            | Error::LimitExceeded { .. }
            | Error::DiffIdMismatch { .. }
            | Error::Content(_)
    )
}

fn ensure_empty(target: &Path) -> Result<()> {
    let mut entries = std::fs::read_dir(target)
        .map_err(|e| Error::io(format!("open {}", target.display()), e))?;
    if entries.next().is_some() {
        return Err(Error::InvalidArgument(format!(
            "{}: the target of a flattened apply must be empty",
            target.display()
        )));
    }
    Ok(())
}

/// Removes everything inside `target` (which was empty when the apply started).
fn clear(target: &Path) -> Result<()> {
    let what = || format!("empty {}", target.display());
    let dir = crate::snapshot::copy::open_dir(target).map_err(|e| Error::io(what(), e))?;
    for name in root::list(dir.as_fd()).map_err(|e| Error::io(what(), e))? {
        root::remove_all(dir.as_fd(), &name).map_err(|e| Error::io(what(), e))?;
    }
    Ok(())
}

/// The layers to scan ahead: from the top down (never the bottom one, which nothing is
/// below), every layer that still fits in the scan budget.
fn scan_plan(layers: &[Layer], scan_ahead: ScanAhead) -> Vec<usize> {
    let size = |l: &Layer| l.blob.size();
    let total: u64 = layers.iter().map(size).sum();
    let budget = match scan_ahead {
        ScanAhead::Small => total / 100 * SCAN_SHARE_PERCENT,
        ScanAhead::All => u64::MAX,
        ScanAhead::None => return Vec::new(),
    };
    let mut used = 0u64;
    let mut plan = Vec::new();
    for j in (1..layers.len()).rev() {
        let s = size(&layers[j]);
        if used.saturating_add(s) <= budget {
            used += s;
            plan.push(j);
        }
    }
    plan
}

/// A layer blob as a blocking reader, for a blocking thread: the store's synchronous read
/// where it has one, else its async read driven to completion.
struct BlobReader {
    reader: Box<dyn ReaderAt>,
    offset: u64,
    handle: tokio::runtime::Handle,
}

impl BlobReader {
    fn new(reader: Box<dyn ReaderAt>) -> Self {
        BlobReader {
            reader,
            offset: 0,
            handle: tokio::runtime::Handle::current(),
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.reader.read_at_blocking(buf, self.offset) {
            Some(r) => r,
            None => self.handle.block_on(self.reader.read_at(buf, self.offset)),
        }
        .map_err(io::Error::other)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// A path inside the root as one `/`-joined byte string; its ancestors are its prefixes
/// that end before a `/`.
fn key(path: &[OsString]) -> Vec<u8> {
    let mut k = Vec::with_capacity(path.iter().map(|c| c.len() + 1).sum());
    for (i, c) in path.iter().enumerate() {
        if i > 0 {
            k.push(b'/');
        }
        k.extend_from_slice(c.as_encoded_bytes());
    }
    k
}

/// The keys of `k`'s ancestors, the root (`""`) first, then `k` itself.
fn prefixes(k: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::once(&k[..0])
        .chain(
            k.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'/')
                .map(move |(i, _)| &k[..i]),
        )
        .chain((!k.is_empty()).then_some(k))
}

/// The strict ancestors of `k` (not the root, which is never a link or a file).
fn strict_ancestors(k: &[u8]) -> impl Iterator<Item = &[u8]> {
    k.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &k[..i])
}

/// What scanned layers do at one path.
#[derive(Debug, Default, Clone)]
struct AtPath {
    /// The highest layer with a whiteout or a non-directory here: nothing below survives.
    gone: Option<usize>,
    /// The highest layer with a directory here: a file here does not survive.
    dir: Option<usize>,
    /// Layers with an opaque marker here.
    opaque: Vec<usize>,
}

/// Everything the scanned layers remove, and, for layers with opaque markers, every path
/// they name (an opaque marker keeps what its own layer puts under it).
#[derive(Debug, Default)]
struct Removals {
    at: HashMap<Box<[u8]>, AtPath>,
    named: HashMap<usize, HashSet<Box<[u8]>>>,
}

/// One scanned layer.
struct Scanned {
    layer: usize,
    at: Vec<(Vec<u8>, Kind)>,
    named: HashSet<Box<[u8]>>,
    opaque: bool,
}

impl Removals {
    fn merge(&mut self, s: Scanned) {
        for (k, kind) in s.at {
            let e = self.at.entry(k.into_boxed_slice()).or_default();
            let max = |o: Option<usize>| Some(o.map_or(s.layer, |l| l.max(s.layer)));
            match kind {
                Kind::Dir => e.dir = max(e.dir),
                Kind::Opaque => e.opaque.push(s.layer),
                _ => e.gone = max(e.gone),
            }
        }
        if s.opaque {
            self.named.insert(s.layer, s.named);
        }
    }

    /// Whether a file at `k` written by layer `i` is removed by a scanned later layer.
    fn removes_file(&self, k: &[u8], i: usize) -> bool {
        if self.at.is_empty() {
            return false;
        }
        let all: Vec<&[u8]> = prefixes(k).collect();
        for (d, p) in all.iter().enumerate() {
            let Some(at) = self.at.get(*p) else { continue };
            if at.gone.is_some_and(|j| j > i) {
                return true;
            }
            if d + 1 == all.len() && at.dir.is_some_and(|j| j > i) {
                return true;
            }
            if let Some(child) = all.get(d + 1) {
                for &j in &at.opaque {
                    let keeps = self.named.get(&j).is_some_and(|n| n.contains(*child));
                    if j > i && !keeps {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// Reads one layer's headers: what it removes at which paths. `None` when the stream is
/// not the layer `expected` names (or cannot be read): an unverified scan tells nothing.
fn scan<R: Read>(reader: R, layer: usize, expected: &DiffId) -> Option<Scanned> {
    let (input, compression) = stream::detect(reader).ok()?;
    let mut s = stream::hashed(stream::decoder(input, compression).ok()?);
    let mut out = Scanned {
        layer,
        at: Vec::new(),
        named: HashSet::new(),
        opaque: false,
    };
    {
        let mut archive = tar::Archive::new(limits::HeaderGuard::new(&mut s));
        for e in archive.entries().ok()? {
            let mut e = e.ok()?;
            let Some(h) = entry::parse(&mut e).ok()? else {
                continue;
            };
            let k = key(&h.path);
            // Deepest first: once a prefix is known, so are its ancestors.
            let ps: Vec<&[u8]> = prefixes(&k).collect();
            for p in ps.into_iter().rev() {
                if !out.named.insert(p.into()) {
                    break;
                }
            }
            match &h.kind {
                Kind::Hardlink(t) if *t == h.path => continue,
                // Without privileges a device entry may create nothing.
                Kind::Char(..) | Kind::Block(..) => continue,
                Kind::Opaque => out.opaque = true,
                _ => {}
            }
            // A non-directory naming the root is skipped by the applier; an opaque
            // root is a real marker.
            if !h.path.is_empty() || h.kind == Kind::Opaque {
                out.at.push((k, h.kind));
            }
        }
    }
    let (digest, _) = stream::drain(s).ok()?;
    (digest == *expected).then_some(out)
}

/// The flattened apply's [`EntryFilter`]: skips files a scanned later layer removes, and
/// stops (so the apply starts again one by one) when a skipped file would have mattered.
struct Filter {
    layer: usize,
    removals: Removals,
    /// Every path a symlink (or a hardlink that may be one) was written at.
    symlinks: HashSet<Box<[u8]>>,
    /// A link was written through a link: paths no longer say where things are.
    aliased: bool,
    /// Skipped files, until something is written at their path.
    skipped: HashSet<Box<[u8]>>,
    skipped_files: u64,
    skipped_bytes: u64,
}

impl Filter {
    fn new(removals: Removals) -> Self {
        Filter {
            layer: 0,
            removals,
            symlinks: HashSet::new(),
            aliased: false,
            skipped: HashSet::new(),
            skipped_files: 0,
            skipped_bytes: 0,
        }
    }

    fn through_symlink(&self, k: &[u8]) -> bool {
        !self.symlinks.is_empty() && strict_ancestors(k).any(|a| self.symlinks.contains(a))
    }
}

impl EntryFilter for Filter {
    fn skip(&mut self, h: &Header) -> Result<bool> {
        let k = key(&h.path);
        if !self.skipped.is_empty() {
            if strict_ancestors(&k).any(|a| self.skipped.contains(a)) {
                return Err(Error::entry(
                    &h.name,
                    "below a file the flattened apply skipped",
                ));
            }
            self.skipped.remove(k.as_slice());
        }
        match &h.kind {
            Kind::Symlink(_) => {
                self.aliased |= self.through_symlink(&k);
                self.symlinks.insert(k.into_boxed_slice());
                Ok(false)
            }
            Kind::Hardlink(t) => {
                let tk = key(t);
                if self.symlinks.contains(tk.as_slice()) || self.through_symlink(&tk) {
                    self.aliased |= self.through_symlink(&k);
                    self.symlinks.insert(k.into_boxed_slice());
                }
                Ok(false)
            }
            Kind::File
                if !self.aliased
                    && !self.through_symlink(&k)
                    && self.removals.removes_file(&k, self.layer) =>
            {
                self.skipped_files += 1;
                self.skipped_bytes += h.size;
                self.skipped.insert(k.into_boxed_slice());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// How [`unpack`] filled its target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unpacked {
    /// Reflinked from the committed snapshot: no file data copied or inflated.
    Reflink,
    /// Copied from the committed snapshot (no reflink between it and the target).
    Copy,
    /// Applied from the layer blobs with [`apply_flattened`] (no committed snapshot).
    Flattened(Flattened),
}

/// Whether, without reflinks, copying an unpacked snapshot beats a flattened apply from
/// the blobs: copying reads and writes each surviving byte once, while applying must
/// inflate and hash every layer again. Measured on the e2e image (1.29 GB of tar, ~1 GB
/// surviving) on tmpfs, 3 alternating runs: the copy took 1.6-1.8 s, the flattened apply
/// 4.6-5.5 s (docs/performance.md).
const COPY_WITHOUT_REFLINK: bool = true;

/// Fills `target` (an existing empty directory) with the flattened root filesystem of
/// `layers` (bottom first), the cheapest way the target allows:
/// - when one of `snapshotters` has the top ChainID committed (a pull unpacked it) and the
///   target is on the snapshot's filesystem and that filesystem reflinks
///   ([`reflink_supported`](crate::reflink_supported)): a reflink copy of the snapshot
///   through a read-only view ([`copy_mounted`](crate::copy_mounted));
/// - with a committed snapshot but no reflinks: a plain copy of it, which measured about
///   three times faster than inflating the layers again;
/// - otherwise [`apply_flattened`] from `provider`, which checks every DiffID.
///
/// `options` apply to the flattened apply; a copy keeps the snapshot's owners. On error
/// the target is left partly filled: it is the caller's directory, discard its contents.
pub async fn unpack(
    layers: &[Layer],
    snapshotters: &[&dyn Snapshotter],
    provider: &dyn Provider,
    target: &Path,
    options: ApplyOptions,
) -> Result<Unpacked> {
    ensure_empty(target)?;
    let diff_ids: Vec<DiffId> = layers.iter().map(|l| l.diff_id.clone()).collect();
    if let Some(top) = chain_ids(&diff_ids).pop() {
        for sn in snapshotters {
            match sn.stat(top.as_ref()).await {
                Ok(info) if info.kind == SnapshotKind::Committed => {}
                _ => continue,
            }
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let key = format!(
                "unpack-{}-{}-{top}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let mounts = sn.view(&key, Some(top.as_ref())).await?;
            let dst = target.to_path_buf();
            let copied = blocking(move || -> Result<Option<Unpacked>> {
                let reflink = mount_dir(&mounts).is_some_and(|src| reflink_supported(&src, &dst));
                if !reflink && !COPY_WITHOUT_REFLINK {
                    return Ok(None);
                }
                copy_mounted(&mounts, &dst)?;
                Ok(Some(if reflink {
                    Unpacked::Reflink
                } else {
                    Unpacked::Copy
                }))
            })
            .await;
            sn.remove(&key).await?;
            if let Some(done) = copied? {
                return Ok(done);
            }
            break;
        }
    }
    apply_flattened(layers, provider, target, options)
        .await
        .map(Unpacked::Flattened)
}

/// A directory a snapshot's mount shows files from (the source of a bind mount, the
/// upper or first lower directory of an overlay).
fn mount_dir(mounts: &[Mount]) -> Option<std::path::PathBuf> {
    let m = mounts.first()?;
    if m.kind == "bind" {
        return Some(m.source.clone());
    }
    let option = |key: &str| m.options.iter().find_map(|o| o.strip_prefix(key));
    option("upperdir=")
        .or_else(|| option("lowerdir=").and_then(|l| l.split(':').next()))
        .map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_run_from_the_root_to_the_path() {
        let p: Vec<&[u8]> = prefixes(b"a/b/c").collect();
        assert_eq!(p, [&b""[..], b"a", b"a/b", b"a/b/c"]);
        let p: Vec<&[u8]> = prefixes(b"").collect();
        assert_eq!(p, [&b""[..]]);
        let s: Vec<&[u8]> = strict_ancestors(b"a/b/c").collect();
        assert_eq!(s, [&b"a"[..], b"a/b"]);
    }

    #[test]
    fn the_scan_budget_takes_small_top_layers_and_never_the_bottom() {
        let layer = |size: u64| Layer {
            diff_id: dist_content::sha256_of(b""),
            blob: oci_spec::image::DescriptorBuilder::default()
                .media_type(oci_spec::image::MediaType::ImageLayerGzip)
                .digest(dist_content::sha256_of(b""))
                .size(size)
                .build()
                .unwrap_or_else(|_| unreachable!()),
        };
        let layers = [layer(300), layer(600), layer(10), layer(90)];
        assert_eq!(scan_plan(&layers, ScanAhead::Small), [3, 2]);
        assert_eq!(scan_plan(&layers, ScanAhead::All), [3, 2, 1]);
        assert!(scan_plan(&layers, ScanAhead::None).is_empty());
        assert!(scan_plan(&layers[..1], ScanAhead::All).is_empty());
    }

    #[test]
    fn a_removal_counts_only_from_a_higher_layer() {
        let mut r = Removals::default();
        r.merge(Scanned {
            layer: 2,
            at: vec![
                (b"a/b".to_vec(), Kind::Whiteout),
                (b"d".to_vec(), Kind::Dir),
            ],
            named: HashSet::new(),
            opaque: false,
        });
        assert!(r.removes_file(b"a/b", 1));
        assert!(r.removes_file(b"a/b/c", 0));
        assert!(!r.removes_file(b"a/b", 2));
        assert!(!r.removes_file(b"a/bc", 1));
        assert!(r.removes_file(b"d", 1), "a directory replaces a file");
        assert!(!r.removes_file(b"d/x", 1), "but merges with a directory");
    }
}
