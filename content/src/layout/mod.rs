//! [`LayoutStore`]: a content store over an [OCI image layout] directory.
//!
//! ```text
//! <dir>/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! <dir>/index.json                 the root index: one descriptor per tagged image
//! <dir>/blobs/<alg>/<hex>          committed, verified blobs
//! <dir>/.dist/ingest/…, labels/…   ours: in-progress ingests and blob labels (created on
//!                                  first use; tools that read layouts ignore it)
//! ```
//!
//! Tags are the `org.opencontainers.image.ref.name` annotation of an `index.json` entry,
//! as skopeo, umoci and containerd write them. Blobs are written exactly as in a
//! [`LocalStore`] (verified, then renamed into place), so a layout written by
//! skopeo (`skopeo copy … oci:DIR:tag`), umoci or an extracted `ctr images export` opens
//! as a store, and what this store writes those tools read.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod index;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use oci_spec::image::{Descriptor, Digest};

use crate::local::writer::blocking;
use crate::{
    Error, Filter, Info, IngestManager, Ingester, LabelMerge, LocalStore, Manager, Provider,
    ReaderAt, Result, Status, Writer, WriterOpts,
};

pub use self::index::ref_names;

/// The file that marks a directory as an OCI image layout.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's root index.
pub const INDEX_FILE: &str = "index.json";
/// The layout version this store writes (and the only one the spec defines).
pub const LAYOUT_VERSION: &str = "1.0.0";
/// The annotation that carries a tag in `index.json` (OCI's name for it).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd's export adds with the full image name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The hidden directory under the layout that holds this store's ingests and labels.
const STATE_DIR: &str = ".dist";

/// A content store whose blobs are an OCI image layout's `blobs/` and whose names are
/// the tags in its `index.json`.
///
/// It is a full [`Store`](crate::Store): reading and writing blobs behave as in
/// [`LocalStore`] (size and digest verified before a blob becomes visible, partial
/// ingests resumable, `flock(2)` per ingest ref). [`tag`](LayoutStore::tag) and
/// [`untag`](LayoutStore::untag) rewrite `index.json` atomically (temporary file, fsync,
/// rename) while holding an exclusive `flock` on the layout directory, so concurrent
/// taggers in several processes never lose each other's entries. Cheap to clone.
///
/// ```
/// use dist_content::{LayoutStore, write_blob};
/// use oci_spec::image::{Descriptor, MediaType};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let layout = LayoutStore::create(dir.path())?;
/// let manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
/// let digest = dist_content::sha256_of(manifest);
/// let desc = Descriptor::new(MediaType::ImageManifest, manifest.len() as u64, digest);
/// write_blob(&layout, "m", &desc, &manifest[..]).await?;
/// layout.tag("v1", &desc).await?;
/// assert_eq!(layout.resolve("v1").await?.digest(), desc.digest());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LayoutStore {
    dir: PathBuf,
    local: LocalStore,
}

impl LayoutStore {
    /// Opens the layout at `dir`, creating the directory, `oci-layout` and an empty
    /// `index.json` when they are missing. Fails with `InvalidArgument` when `oci-layout`
    /// names another version. Touches the disk on the caller's thread, once.
    pub fn create(dir: impl AsRef<Path>) -> Result<LayoutStore> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("blobs"))
            .map_err(|e| Error::io(format!("create {}", dir.join("blobs").display()), e))?;
        index::init(&dir)?;
        Ok(Self::at(dir))
    }

    /// Opens an existing layout without writing anything: `NotFound` when `dir` has no
    /// `oci-layout` file, `InvalidArgument` when it names another version. For reading a
    /// layout another tool wrote (it may be read-only); writes create the store's hidden
    /// state directory on first use.
    pub fn open(dir: impl AsRef<Path>) -> Result<LayoutStore> {
        let dir = dir.as_ref().to_path_buf();
        index::check_version(&dir)?;
        Ok(Self::at(dir))
    }

    fn at(dir: PathBuf) -> LayoutStore {
        let local = LocalStore::with_state_dir(dir.clone(), dir.join(STATE_DIR));
        LayoutStore { dir, local }
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob named `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.local.blob_path(digest)
    }

    /// Every entry of `index.json`, in file order.
    pub async fn entries(&self) -> Result<Vec<Descriptor>> {
        let dir = self.dir.clone();
        blocking(move || index::read_entries(&dir)).await
    }

    /// The descriptor tagged `name`: the entry whose `org.opencontainers.image.ref.name`
    /// is `name`, else the one whose `io.containerd.image.name` is `name`. With an empty
    /// `name`, the only entry when there is exactly one (as skopeo resolves `oci:DIR`).
    /// `NotFound` when nothing matches, `InvalidArgument` when an empty name is ambiguous.
    pub async fn resolve(&self, name: &str) -> Result<Descriptor> {
        let entries = self.entries().await?;
        index::resolve(&entries, name, &self.dir)
    }

    /// Points tag `name` at `desc`: adds an `index.json` entry annotated with `name`
    /// (keeping `desc`'s other annotations) and drops any other entry with that tag.
    /// Atomic and serialised across processes.
    pub async fn tag(&self, name: &str, desc: &Descriptor) -> Result<()> {
        index::check_tag(name)?;
        let dir = self.dir.clone();
        let name = name.to_owned();
        let desc = desc.clone();
        blocking(move || index::update(&dir, |entries| index::set_tag(entries, &name, desc))).await
    }

    /// Removes the entries tagged `name`; `NotFound` when there is none.
    pub async fn untag(&self, name: &str) -> Result<()> {
        let dir = self.dir.clone();
        let name = name.to_owned();
        blocking(move || index::update(&dir, |entries| index::remove_tag(entries, &name))).await
    }
}

#[async_trait]
impl Provider for LayoutStore {
    async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>> {
        self.local.reader_at(desc).await
    }
}

#[async_trait]
impl Ingester for LayoutStore {
    async fn writer(&self, opts: WriterOpts) -> Result<Box<dyn Writer>> {
        self.local.writer(opts).await
    }
}

#[async_trait]
impl Manager for LayoutStore {
    async fn info(&self, digest: &Digest) -> Result<Info> {
        self.local.info(digest).await
    }

    async fn update_labels(
        &self,
        digest: &Digest,
        labels: HashMap<String, String>,
    ) -> Result<Info> {
        self.local.update_labels(digest, labels).await
    }

    async fn add_labels(&self, digest: &Digest, labels: HashMap<String, String>) -> Result<Info> {
        self.local.add_labels(digest, labels).await
    }

    async fn merge_label(&self, digest: &Digest, key: &str, merge: LabelMerge) -> Result<Info> {
        self.local.merge_label(digest, key, merge).await
    }

    async fn walk(
        &self,
        filter: &Filter,
        f: &mut (dyn FnMut(Info) -> Result<()> + Send),
    ) -> Result<()> {
        self.local.walk(filter, f).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.local.delete(digest).await
    }
}

#[async_trait]
impl IngestManager for LayoutStore {
    async fn status(&self, reference: &str) -> Result<Status> {
        self.local.status(reference).await
    }

    async fn list_statuses(&self, filter: &Filter) -> Result<Vec<Status>> {
        self.local.list_statuses(filter).await
    }

    async fn abort(&self, reference: &str) -> Result<()> {
        self.local.abort(reference).await
    }
}

#[cfg(test)]
mod tests;
