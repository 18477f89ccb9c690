//! [`export`]: images from a content store as an OCI layout tar with `manifest.json`.

use std::io::Write;
use std::sync::Arc;

use dist_content::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Provider};
use oci_spec::image::Descriptor;
use tokio::runtime::Handle;

use super::docker::{self, Entry};
use super::select::{Keep, Skipped, select};
use super::sync_io::{BlobReader, blocking};
use crate::{Error, ErrorKind, Image, Matcher, PlatformMatcher, Result, read_manifest};

/// Which manifests of a multi-platform image go into the archive.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum PlatformChoice {
    /// Those the store holds completely (the default): an image pulled for one platform
    /// exports that platform; the index is kept as it is and names the others.
    #[default]
    Stored,
    /// Every one the index names; an absent blob fails the export.
    All,
    /// Those for the matcher's platforms (that the store holds).
    Matching(PlatformMatcher),
}

/// Options for [`export`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Which platforms go in.
    pub platforms: PlatformChoice,
    /// Whether to write Docker's `manifest.json` (for `docker load`); on by default.
    pub docker_manifest: bool,
    /// Size limits for the manifests read.
    pub limits: crate::Limits,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            platforms: PlatformChoice::Stored,
            docker_manifest: true,
            limits: crate::Limits::DEFAULT,
        }
    }
}

impl ExportOptions {
    /// Chooses the platforms that go in.
    pub fn with_platforms(mut self, choice: PlatformChoice) -> Self {
        self.platforms = choice;
        self
    }

    /// Writes Docker's `manifest.json`, or not.
    pub fn with_docker_manifest(mut self, yes: bool) -> Self {
        self.docker_manifest = yes;
        self
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportReport {
    /// The blobs written (each once).
    pub blobs: Vec<Descriptor>,
    /// Index entries left out because the store lacks them (with
    /// [`PlatformChoice::Stored`] or [`PlatformChoice::Matching`]).
    pub skipped: Vec<Skipped>,
}

/// Writes `images` (their names and targets; blobs read from `provider`) to `out` as a
/// tar holding an OCI image layout and Docker's `manifest.json`, streaming each blob.
///
/// Each image's `index.json` entry is its target descriptor annotated with
/// `io.containerd.image.name` (the full name) and `org.opencontainers.image.ref.name`
/// (its tag), as `ctr images export` writes it. `manifest.json` lists, per image, the
/// manifest for this host's platform when kept (else the first kept), with the image's
/// familiar name (`busybox:1.36`) when it has a tag.
///
/// `out` is written on the blocking pool; wrap a file, a pipe or stdout. Fails before
/// writing anything when an image is absent or incomplete in the store, and with
/// [`PlatformChoice::All`] when any platform is.
pub async fn export<P, W>(
    provider: Arc<P>,
    images: &[Image],
    out: W,
    opts: &ExportOptions,
) -> Result<ExportReport>
where
    P: Provider + ?Sized + 'static,
    W: Write + Send + 'static,
{
    if images.is_empty() {
        return Err(Error::other(
            ErrorKind::InvalidArgument,
            "no image to export",
        ));
    }
    let keep = match &opts.platforms {
        PlatformChoice::Stored => Keep::Present,
        PlatformChoice::All => Keep::All,
        PlatformChoice::Matching(m) => Keep::Matching(m),
    };
    let mut report = ExportReport::default();
    let mut seen = std::collections::HashSet::new();
    let mut roots = Vec::new();
    let mut entries = Vec::new();
    let host = PlatformMatcher::host();
    for image in images {
        let sel = select(&*provider, &image.target, &keep, &opts.limits)
            .await
            .map_err(|e| in_image(&image.name, e))?;
        for b in &sel.blobs {
            if seen.insert(b.digest().to_string()) {
                report.blobs.push(b.clone());
            }
        }
        report.skipped.extend(sel.skipped);
        roots.push(index_entry(image)?);
        if opts.docker_manifest
            && let Some(entry) =
                docker_entry(&*provider, image, &sel.manifests, &host, &opts.limits).await?
        {
            entries.push(entry);
        }
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::media_types::OCI_INDEX,
        "manifests": roots,
    }))
    .map_err(|e| Error::other(ErrorKind::Io, e))?;
    let docker_manifest = if opts.docker_manifest {
        Some(serde_json::to_vec(&entries).map_err(|e| Error::other(ErrorKind::Io, e))?)
    } else {
        None
    };
    let blobs = report.blobs.clone();
    let handle = Handle::current();
    blocking(move || write_tar(handle, provider, &blobs, &index, docker_manifest, out)).await?;
    Ok(report)
}

fn in_image(name: &str, e: Error) -> Error {
    let kind = e.kind();
    Error::other(
        kind,
        ImageError {
            image: dist_content::elide(name),
            source: e,
        },
    )
}

/// An error about one image of an archive.
#[derive(Debug, thiserror::Error)]
#[error("image {image}")]
struct ImageError {
    image: String,
    #[source]
    source: Error,
}

/// The `index.json` entry of one image: its target, named as containerd names it.
fn index_entry(image: &Image) -> Result<serde_json::Value> {
    let mut desc = image.target.clone();
    let mut annotations = desc.annotations().clone().unwrap_or_default();
    annotations.insert(ANNOTATION_IMAGE_NAME.into(), image.name.clone());
    let tag = match dist_reference::normalize(&image.name) {
        Ok(r) => r.tag().map(str::to_owned),
        Err(_) => Some(image.name.clone()),
    };
    if let Some(tag) = tag {
        annotations.insert(ANNOTATION_REF_NAME.into(), tag);
    }
    desc.set_annotations(Some(annotations));
    serde_json::to_value(&desc).map_err(|e| Error::other(ErrorKind::Io, e))
}

/// The `manifest.json` entry of one image, when it has a manifest kept.
async fn docker_entry<P: Provider + ?Sized>(
    provider: &P,
    image: &Image,
    manifests: &[Descriptor],
    host: &PlatformMatcher,
    limits: &crate::Limits,
) -> Result<Option<Entry>> {
    let chosen = manifests
        .iter()
        .filter(|d| !is_attestation(d))
        .min_by_key(|d| match d.platform() {
            Some(p) => host.rank(p).unwrap_or(usize::MAX),
            None => 0,
        });
    let Some(desc) = chosen else {
        return Ok(None);
    };
    let manifest = read_manifest(provider, desc, limits).await?;
    let repo_tags = match dist_reference::normalize(&image.name) {
        Ok(r) if r.tag().is_some() => vec![dist_reference::familiar_string(&r)],
        _ => Vec::new(),
    };
    Ok(Some(Entry {
        config: docker::blob_path(manifest.config().digest()),
        repo_tags,
        layers: manifest
            .layers()
            .iter()
            .map(|l| docker::blob_path(l.digest()))
            .collect(),
    }))
}

fn is_attestation(desc: &Descriptor) -> bool {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(super::ANNOTATION_REFERENCE_TYPE))
        .is_some_and(|v| v == super::ATTESTATION_MANIFEST)
}

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if dir { 0o755 } else { 0o444 });
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    // `append_data` sets the path (a GNU long name past 100 bytes, as for sha512
    // digests) and the checksum.
    h
}

fn io_err(context: &str, e: std::io::Error) -> Error {
    Error::other(
        ErrorKind::Io,
        dist_content::Error::io(context.to_owned(), e),
    )
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    path: &str,
    size: u64,
    dir: bool,
    data: impl std::io::Read,
) -> Result<()> {
    let mut h = header(size, dir);
    tar.append_data(&mut h, path, data)
        .map_err(|e| io_err(&format!("write {path} into the archive"), e))
}

fn write_tar<P: Provider + ?Sized>(
    handle: Handle,
    provider: Arc<P>,
    blobs: &[Descriptor],
    index: &[u8],
    docker_manifest: Option<Vec<u8>>,
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let layout = format!(
        r#"{{"imageLayoutVersion":"{}"}}"#,
        dist_content::LAYOUT_VERSION
    );
    append(
        &mut tar,
        dist_content::OCI_LAYOUT_FILE,
        layout.len() as u64,
        false,
        layout.as_bytes(),
    )?;
    append(&mut tar, "blobs/", 0, true, std::io::empty())?;
    let mut algs = std::collections::BTreeSet::new();
    for desc in blobs {
        let alg = desc.digest().algorithm().to_string();
        if algs.insert(alg.clone()) {
            append(
                &mut tar,
                &format!("blobs/{alg}/"),
                0,
                true,
                std::io::empty(),
            )?;
        }
        let reader = handle.block_on(provider.reader_at(desc))?;
        if reader.size() != desc.size() {
            return Err(Error::Invalid {
                what: desc.digest().to_string(),
                reason: format!(
                    "stored blob holds {} bytes, descriptor says {}",
                    reader.size(),
                    desc.size()
                ),
            });
        }
        // `tar` copies through an 8 KiB buffer; reading the store in 1 MiB steps instead
        // keeps the number of store reads (each a blocking-pool hop) per blob small.
        let data = std::io::BufReader::with_capacity(
            super::sync_io::CHUNK,
            BlobReader {
                handle: handle.clone(),
                reader,
                offset: 0,
                size: desc.size(),
            },
        );
        append(
            &mut tar,
            &docker::blob_path(desc.digest()),
            desc.size(),
            false,
            data,
        )?;
    }
    append(
        &mut tar,
        dist_content::INDEX_FILE,
        index.len() as u64,
        false,
        index,
    )?;
    if let Some(m) = &docker_manifest {
        append(
            &mut tar,
            super::DOCKER_MANIFEST_FILE,
            m.len() as u64,
            false,
            &m[..],
        )?;
    }
    let mut out = tar
        .into_inner()
        .map_err(|e| io_err("finish the archive", e))?;
    out.flush().map_err(|e| io_err("flush the archive", e))
}
