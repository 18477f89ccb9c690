//! [`import`]: an OCI layout tar or a `docker save` archive into a content store.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path};
use std::sync::Arc;

use dist_content::{
    DEFAULT_LOCK_WAIT, Ingester, Lease, Provider, Resource, WriterOpts, open_writer, ref_names,
    write_blob,
};
use oci_spec::image::{Descriptor, Digest, MediaType};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

use super::docker::{self, Entry};
use super::select::{Keep, Skipped, select};
use super::sync_io::{CHUNK, blocking};
use crate::{Error, ErrorKind, Image, ImageStore, Limits, Result, media_types, parse_index};

/// Files outside `blobs/` up to this size are kept in memory (the legacy `docker save`
/// configs and metadata); larger ones stream into the store as they come.
const SMALL_FILE: u64 = 64 << 10;

/// At most this many bytes of small files are kept in memory in all; past it, small files
/// stream into the store like large ones, so an archive of a million tiny files costs disk,
/// not memory.
const SMALL_TOTAL: u64 = 64 << 20;

/// Options for [`import`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// The name to record for a single-image archive, instead of the names it carries
    /// (an archive of several images with a name given is refused).
    pub name: Option<String>,
    /// Size limits for the manifests and indexes read.
    pub limits: Limits,
    /// The lease every blob is attached to before it is written, so a concurrent
    /// `collect_garbage` keeps what the import writes until the names are recorded.
    pub lease: Option<Arc<Lease>>,
}

impl ImportOptions {
    /// Records the (single) image under `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Attaches every blob (and its ingest) to `lease` before writing it.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }
}

/// What [`import`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// The images recorded, with their names.
    pub images: Vec<Image>,
    /// Images the archive holds without a usable name (a bare tag such as skopeo writes,
    /// and no `name` option): their content is stored, no name recorded.
    pub unnamed: Vec<Descriptor>,
    /// Index entries the archive names but lacks (absent platforms, attestations).
    pub skipped: Vec<Skipped>,
    /// How many blobs were written into the store (the rest were there already).
    pub blobs_written: u64,
}

/// Where a file of the archive went.
#[derive(Debug)]
enum File {
    /// Committed to the store.
    Stored { digest: Digest, size: u64 },
    /// Small, kept in memory until it is known whether it is content.
    Small(Vec<u8>),
}

/// What the streaming pass found.
#[derive(Debug, Default)]
struct Scan {
    index: Option<Vec<u8>>,
    docker: Option<Vec<u8>>,
    files: HashMap<String, File>,
    links: HashMap<String, String>,
    written: u64,
    /// Bytes of small files kept in memory.
    small: u64,
}

/// Reads the archive from `input` (an OCI layout tar, or a `docker save` archive with or
/// without an OCI layout inside), streaming each blob into `store`, verified, under its
/// digest; then resolves the images and records their names in `images`.
///
/// Blobs may come before or after `index.json`. An index entry whose blobs the archive
/// lacks (another platform, an attestation) is skipped and reported in
/// [`ImportReport::skipped`]; an image with nothing complete fails the import. Names come
/// from `io.containerd.image.name`, else `org.opencontainers.image.ref.name` when it is a
/// full reference, else `manifest.json`'s `RepoTags`, normalised (`busybox:1` →
/// `docker.io/library/busybox:1`); [`ImportOptions::name`] overrides them for a
/// single-image archive.
///
/// A blob that does not match its name, a truncated tar or a malformed index fails the
/// import: no blob is committed under a wrong digest (each is verified before it becomes
/// visible) and no image is recorded (names are written only after every image checked
/// out). Blobs verified before the failure stay in the store, as after an interrupted
/// pull.
///
/// `input` is read on the blocking pool; pass a file, a pipe or stdin.
pub async fn import<S, I, R>(
    store: Arc<S>,
    images: &I,
    input: R,
    opts: &ImportOptions,
) -> Result<ImportReport>
where
    S: Provider + Ingester + ?Sized + 'static,
    I: ImageStore + ?Sized,
    R: Read + Send + 'static,
{
    let handle = Handle::current();
    let limit = opts.limits.max_manifest_size;
    let scan = {
        let store = Arc::clone(&store);
        let lease = opts.lease.clone();
        blocking(move || scan(&handle, &*store, lease.as_deref(), input, limit)).await?
    };
    let roots = match (&scan.index, &scan.docker) {
        (Some(index), _) => roots_from_index(index)?,
        (None, Some(manifest)) => {
            roots_from_docker(&*store, opts.lease.as_deref(), &scan, manifest).await?
        }
        (None, None) => {
            return Err(Error::Invalid {
                what: "archive".into(),
                reason: "neither index.json nor manifest.json: not an image archive".into(),
            });
        }
    };
    let mut report = ImportReport {
        blobs_written: scan.written,
        ..ImportReport::default()
    };
    let named: Vec<(Option<String>, Descriptor)> = match &opts.name {
        Some(name) if roots.len() == 1 => roots
            .into_iter()
            .map(|(_, d)| Ok((Some(normalize(name)?), d)))
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(Error::Invalid {
                what: "archive".into(),
                reason: format!(
                    "holds {} images: a name can be given only for one",
                    roots.len()
                ),
            });
        }
        None => roots,
    };
    for (_, root) in &named {
        let sel = select(&*store, root, &Keep::Present, &opts.limits).await?;
        report.skipped.extend(sel.skipped);
    }
    for (name, root) in named {
        match name {
            Some(name) => {
                let image = Image::new(name, root).with_limits(opts.limits);
                report.images.push(images.create_or_update(image).await?);
            }
            None => report.unnamed.push(root),
        }
    }
    Ok(report)
}

fn normalize(name: &str) -> Result<String> {
    dist_reference::normalize(name)
        .map(|r| r.to_string())
        .map_err(|e| Error::other(ErrorKind::InvalidArgument, e))
}

/// The roots of `index.json`, with the names they carry.
fn roots_from_index(bytes: &[u8]) -> Result<Vec<(Option<String>, Descriptor)>> {
    let desc = Descriptor::new(
        MediaType::ImageIndex,
        bytes.len() as u64,
        dist_content::sha256_of(bytes),
    );
    let index = parse_index(&desc, bytes).map_err(|e| in_archive("index.json", e))?;
    let mut out = Vec::new();
    for entry in index.manifests() {
        let (ref_name, image_name) = ref_names(entry);
        let name = match (image_name, ref_name) {
            (Some(full), _) => normalize(full).ok(),
            // A bare tag (`latest`, as skopeo writes it) names no repository.
            (None, Some(r)) if r.contains('/') || r.contains(':') => normalize(r).ok(),
            _ => None,
        };
        out.push((name, entry.clone()));
    }
    Ok(out)
}

/// Builds a Docker schema2 manifest per `manifest.json` entry from the config and layers
/// it names (as containerd's importer does for archives without an OCI index), and
/// stores it.
async fn roots_from_docker<S: Provider + Ingester + ?Sized>(
    store: &S,
    lease: Option<&Lease>,
    scan: &Scan,
    bytes: &[u8],
) -> Result<Vec<(Option<String>, Descriptor)>> {
    let entries: Vec<Entry> = serde_json::from_slice(bytes).map_err(|e| {
        in_archive(
            "manifest.json",
            Error::decode("manifest.json", "manifest", e),
        )
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let config = content(
            store,
            lease,
            scan,
            &entry.config,
            MediaType::from(media_types::DOCKER_CONFIG),
        )
        .await?;
        let mut layers = Vec::with_capacity(entry.layers.len());
        for path in &entry.layers {
            let layer = content(
                store,
                lease,
                scan,
                path,
                MediaType::from(media_types::DOCKER_LAYER),
            )
            .await?;
            let mut magic = [0u8; 4];
            let reader = store.reader_at(&layer).await?;
            let n = reader.read_at(&mut magic, 0).await?;
            let mt = docker::layer_media_type(&magic[..n]);
            layers.push(Descriptor::new(mt, layer.size(), layer.digest().clone()));
        }
        let manifest = serde_json::to_vec(&docker::schema2_manifest(&config, &layers))
            .map_err(|e| Error::other(ErrorKind::Io, e))?;
        let desc = Descriptor::new(
            MediaType::from(media_types::DOCKER_MANIFEST),
            manifest.len() as u64,
            dist_content::sha256_of(&manifest),
        );
        claim(lease, &desc).await?;
        write_blob(
            store,
            &format!("import-{}", desc.digest()),
            &desc,
            &manifest[..],
        )
        .await?;
        if entry.repo_tags.is_empty() {
            out.push((None, desc.clone()));
        }
        for tag in &entry.repo_tags {
            out.push((Some(normalize(tag)?), desc.clone()));
        }
    }
    Ok(out)
}

/// Attaches the blob `desc` (and its ingest) to `lease` before it is written.
async fn claim(lease: Option<&Lease>, desc: &Descriptor) -> Result<()> {
    if let Some(lease) = lease {
        let reference = format!("import-{}", desc.digest());
        lease
            .attach(&[
                Resource::content(desc.digest()),
                Resource::ingest(reference),
            ])
            .await?;
    }
    Ok(())
}

/// The stored descriptor of the archive file at `path` (following symlinks between
/// files), writing it into the store when it was kept in memory.
async fn content<S: Ingester + ?Sized>(
    store: &S,
    lease: Option<&Lease>,
    scan: &Scan,
    path: &str,
    media_type: MediaType,
) -> Result<Descriptor> {
    let mut path = clean(path).unwrap_or_default();
    for _ in 0..16 {
        match scan.links.get(&path) {
            Some(target) => path = target.clone(),
            None => break,
        }
    }
    match scan.files.get(&path) {
        Some(File::Stored { digest, size }) => {
            Ok(Descriptor::new(media_type, *size, digest.clone()))
        }
        Some(File::Small(bytes)) => {
            let desc = Descriptor::new(
                media_type,
                bytes.len() as u64,
                dist_content::sha256_of(bytes),
            );
            claim(lease, &desc).await?;
            write_blob(
                store,
                &format!("import-{}", desc.digest()),
                &desc,
                &bytes[..],
            )
            .await?;
            Ok(desc)
        }
        None => Err(Error::NotFound(format!(
            "archive file {} named by manifest.json",
            dist_content::Elided(&path)
        ))),
    }
}

fn in_archive(what: &str, e: Error) -> Error {
    let kind = e.kind();
    Error::other(
        kind,
        EntryError {
            entry: dist_content::elide(what),
            source: e,
        },
    )
}

/// An error about one entry of an archive.
#[derive(Debug, thiserror::Error)]
#[error("archive entry {entry}")]
struct EntryError {
    entry: String,
    #[source]
    source: Error,
}

/// An archive path made relative and clean (`./a//b` → `a/b`, `a/../b` → `b`); `None`
/// for paths that leave the archive or name nothing.
fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn tar_err(e: std::io::Error) -> Error {
    Error::other(
        ErrorKind::InvalidArgument,
        dist_content::Error::io("read the archive", e),
    )
}

/// The streaming pass, on the blocking pool: every `blobs/<alg>/<hex>` goes into the
/// store under that digest (verified); metadata files are kept; other files go into the
/// store under the digest they hash to, or stay in memory when small.
fn scan<S: Provider + Ingester + ?Sized>(
    handle: &Handle,
    store: &S,
    lease: Option<&Lease>,
    input: impl Read,
    limit: u64,
) -> Result<Scan> {
    let mut out = Scan::default();
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(tar_err)?;
    for entry in entries {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry
            .path()
            .map_err(tar_err)?
            .to_string_lossy()
            .into_owned();
        let Some(path) = clean(&raw) else { continue };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(tar_err)? {
                let target = target.to_string_lossy();
                // Symlinks are relative to the link's directory; hard links to the root.
                let joined = match (kind.is_symlink(), path.rsplit_once('/')) {
                    (true, Some((dir, _))) => format!("{dir}/{target}"),
                    _ => target.into_owned(),
                };
                if let Some(t) = clean(&joined) {
                    out.links.insert(path, t);
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let meta = match path.as_str() {
            "index.json" => Some(&mut out.index),
            "manifest.json" => Some(&mut out.docker),
            _ => None,
        };
        if let Some(slot) = meta {
            *slot = Some(read_small(
                &mut entry,
                size,
                limit.saturating_mul(4),
                &path,
            )?);
            continue;
        }
        if path == "oci-layout" || path == "repositories" {
            continue;
        }
        if let Some(digest) = docker::digest_of_path(&path) {
            if ingest(handle, store, lease, &path, &digest, &mut entry, size)? {
                out.written += 1;
            }
            out.files.insert(path, File::Stored { digest, size });
        } else if size <= SMALL_FILE && out.small.saturating_add(size) <= SMALL_TOTAL {
            let bytes = read_small(&mut entry, size, SMALL_FILE, &path)?;
            out.small = out.small.saturating_add(bytes.len() as u64);
            out.files.insert(path, File::Small(bytes));
        } else {
            let (digest, written) = ingest_unnamed(handle, store, lease, &path, &mut entry, size)?;
            out.written += u64::from(written);
            out.files.insert(path, File::Stored { digest, size });
        }
    }
    Ok(out)
}

fn read_small(entry: &mut impl Read, size: u64, limit: u64, path: &str) -> Result<Vec<u8>> {
    if size > limit {
        return Err(in_archive(
            path,
            Error::Invalid {
                what: path.to_owned(),
                reason: format!("{size} bytes, more than the {limit} allowed"),
            },
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry.take(limit).read_to_end(&mut bytes).map_err(tar_err)?;
    Ok(bytes)
}

/// Streams `size` bytes of `entry` into the store as the blob `digest`; `false` when the
/// store had it already (nothing read).
fn ingest<S: Ingester + ?Sized>(
    handle: &Handle,
    store: &S,
    lease: Option<&Lease>,
    path: &str,
    digest: &Digest,
    entry: &mut impl Read,
    size: u64,
) -> Result<bool> {
    dist_content::Algorithm::of(digest).map_err(|e| in_archive(path, e.into()))?;
    let reference = format!("import-{digest}");
    if let Some(lease) = lease {
        let claim = [
            Resource::content(digest),
            Resource::ingest(reference.clone()),
        ];
        handle
            .block_on(lease.attach(&claim))
            .map_err(|e| in_archive(path, e.into()))?;
    }
    let opts = WriterOpts::new(reference).expected(Descriptor::new(
        MediaType::ImageLayer,
        size,
        digest.clone(),
    ));
    let mut writer = match handle.block_on(open_writer(store, opts, DEFAULT_LOCK_WAIT)) {
        Ok(w) => w,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(in_archive(path, e.into())),
    };
    let wrap = |e: dist_content::Error| in_archive(path, e.into());
    if writer.offset() > 0 {
        handle.block_on(writer.truncate(0)).map_err(wrap)?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let n = entry.read(&mut buf[..want]).map_err(tar_err)?;
        if n == 0 {
            return Err(tar_err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ends early", dist_content::Elided(path)),
            )));
        }
        handle
            .block_on(writer.write_all(&buf[..n]))
            .map_err(|e| wrap(dist_content::Error::io(format!("write {path}"), e)))?;
        left -= n as u64;
    }
    match handle.block_on(writer.commit(size, Some(digest))) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(wrap(e)),
    }
}

/// Streams a large file that is not under `blobs/` into the store under the digest it
/// hashes to (a legacy `docker save` layer).
fn ingest_unnamed<S: Ingester + ?Sized>(
    handle: &Handle,
    store: &S,
    lease: Option<&Lease>,
    path: &str,
    entry: &mut impl Read,
    size: u64,
) -> Result<(Digest, bool)> {
    // Hash while writing, then commit under that digest.
    let reference = format!(
        "import-file-{}",
        dist_content::sha256_of(path.as_bytes()).digest()
    );
    let wrap = |e: dist_content::Error| in_archive(path, e.into());
    if let Some(lease) = lease {
        handle
            .block_on(lease.attach(&[Resource::ingest(reference.clone())]))
            .map_err(wrap)?;
    }
    let mut writer = handle
        .block_on(open_writer(
            store,
            WriterOpts::new(reference),
            DEFAULT_LOCK_WAIT,
        ))
        .map_err(wrap)?;
    if writer.offset() > 0 {
        handle.block_on(writer.truncate(0)).map_err(wrap)?;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = entry.read(&mut buf).map_err(tar_err)?;
        if n == 0 {
            break;
        }
        handle
            .block_on(writer.write_all(&buf[..n]))
            .map_err(|e| wrap(dist_content::Error::io(format!("write {path}"), e)))?;
    }
    if writer.offset() != size {
        return Err(tar_err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} ends early", dist_content::Elided(path)),
        )));
    }
    let digest = handle.block_on(writer.digest()).map_err(wrap)?;
    if let Some(lease) = lease {
        // Known only now, still before the commit makes it visible.
        handle
            .block_on(lease.attach(&[Resource::content(&digest)]))
            .map_err(wrap)?;
    }
    match handle.block_on(writer.commit(size, Some(&digest))) {
        Ok(()) => Ok((digest, true)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((digest, false)),
        Err(e) => Err(wrap(e)),
    }
}
