//! The content store's interfaces: small traits a caller can take one at a time.
//!
//! As in containerd's `content` package, reading ([`Provider`]), writing ([`Ingester`]),
//! managing committed blobs ([`Manager`]) and managing in-progress ingests
//! ([`IngestManager`]) are separate, so that a component asks only for what it needs.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use oci_spec::image::{Descriptor, Digest};
use tokio::io::AsyncWrite;

use crate::{Filter, Result};

/// Random access to one committed blob whose size is known.
///
/// A [`Provider`] hands these out; [`ReaderAtReader`](crate::ReaderAtReader) turns one into
/// a sequential [`AsyncRead`](tokio::io::AsyncRead). Bytes already in memory make the
/// smallest implementation (the [`Provider`] example builds a whole store around one):
///
/// ```
/// use async_trait::async_trait;
/// use dist_content::{ReaderAt, ReaderAtReader, Result};
/// use tokio::io::AsyncReadExt;
///
/// struct VecReader(Vec<u8>);
///
/// #[async_trait]
/// impl ReaderAt for VecReader {
///     fn size(&self) -> u64 {
///         self.0.len() as u64
///     }
///
///     async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
///         // At or past the end reads nothing; it is not an error.
///         let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
///         let n = buf.len().min(self.0.len() - start);
///         buf[..n].copy_from_slice(&self.0[start..start + n]);
///         Ok(n)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let blob = VecReader(b"hello, world".to_vec());
/// let mut buf = [0u8; 5];
/// assert_eq!(blob.read_at(&mut buf, 7).await?, 5);
/// assert_eq!(&buf, b"world");
/// assert_eq!(blob.read_at(&mut buf, 10).await?, 2); // short read at the end
/// assert_eq!(blob.read_at(&mut buf, 12).await?, 0); // then nothing
///
/// let mut all = String::new();
/// ReaderAtReader::new(Box::new(blob)).read_to_string(&mut all).await?;
/// assert_eq!(all, "hello, world");
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait ReaderAt: Send + Sync {
    /// The blob's size in bytes.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes starting at `offset`; returns how many were read,
    /// `0` only at or past the end.
    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
}

/// Gives read access to committed content.
///
/// Implementing it takes two small types. A store that keeps blobs in memory (for tests, or
/// a cache of manifests) could look like this:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
///
/// use async_trait::async_trait;
/// use dist_content::{Error, Provider, ReaderAt, Result, read_blob};
/// use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
///
/// /// Blobs by digest, shared cheaply with the readers handed out.
/// struct MemoryProvider(HashMap<Digest, Arc<[u8]>>);
///
/// struct MemoryReader(Arc<[u8]>);
///
/// #[async_trait]
/// impl ReaderAt for MemoryReader {
///     fn size(&self) -> u64 {
///         self.0.len() as u64
///     }
///
///     async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
///         let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
///         let n = buf.len().min(self.0.len() - start);
///         buf[..n].copy_from_slice(&self.0[start..start + n]);
///         Ok(n)
///     }
/// }
///
/// #[async_trait]
/// impl Provider for MemoryProvider {
///     async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>> {
///         match self.0.get(desc.digest()) {
///             Some(blob) => Ok(Box::new(MemoryReader(Arc::clone(blob)))),
///             None => Err(Error::NotFound(desc.digest().to_string())),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// // sha256 of the empty string
/// let digest: Digest =
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// let provider = MemoryProvider(HashMap::from([(digest.clone(), Arc::from(&b""[..]))]));
/// let desc = DescriptorBuilder::default()
///     .media_type(MediaType::ImageConfig)
///     .digest(digest)
///     .size(0u64)
///     .build()?;
/// assert!(read_blob(&provider, &desc, 1024).await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Provider: Send + Sync {
    /// Opens the blob named by `desc.digest()`. Fails with `NotFound` when it is absent.
    async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>>;
}

/// Options for [`Ingester::writer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriterOpts {
    /// The caller's name for this ingest; a second writer on the same ref waits for nobody:
    /// it fails with `Unavailable` while the first is alive, and resumes after it is gone.
    pub reference: String,
    /// What the content is expected to be, when known. With a digest that is already
    /// committed, `writer` fails with `AlreadyExists` and nothing is written.
    pub expected: Option<Descriptor>,
}

impl WriterOpts {
    /// Options for an ingest under `reference` with no expectation.
    pub fn new(reference: impl Into<String>) -> Self {
        WriterOpts {
            reference: reference.into(),
            expected: None,
        }
    }

    /// Sets the descriptor the content is expected to match.
    pub fn expected(mut self, desc: Descriptor) -> Self {
        self.expected = Some(desc);
        self
    }
}

/// Starts (or resumes) writing content.
///
/// An ingester is also a good place to put policy in front of a store. This one caps the
/// size of what may be written (say, manifests from an untrusted source) and leaves
/// hashing, verification and storage to the [`LocalStore`](crate::LocalStore) it wraps:
///
/// ```
/// # use std::io;
/// # use std::pin::Pin;
/// # use std::sync::{Mutex, MutexGuard, PoisonError};
/// # use std::task::{Context, Poll};
/// # use async_trait::async_trait;
/// # use dist_content::{Error, ErrorKind, IngestManager, Ingester, LocalStore, Manager};
/// # use dist_content::{Result, Status, Writer, WriterOpts};
/// # use oci_spec::image::Digest;
/// # use tokio::io::{AsyncWrite, AsyncWriteExt};
/// struct CappedIngester {
///     store: LocalStore,
///     max: u64,
/// }
///
/// struct CappedWriter {
///     // A `Box<dyn Writer>` is not `Sync`, which `async fn status(&self)` needs.
///     inner: Mutex<Box<dyn Writer>>,
///     store: LocalStore,
///     reference: String,
///     max: u64,
/// }
///
/// #[async_trait]
/// impl Ingester for CappedIngester {
///     async fn writer(&self, opts: WriterOpts) -> Result<Box<dyn Writer>> {
///         if let Some(desc) = opts.expected.as_ref().filter(|d| d.size() > self.max) {
///             let msg = format!("{}: over the cap of {} bytes", desc.digest(), self.max);
///             return Err(Error::InvalidArgument(msg));
///         }
///         let reference = opts.reference.clone();
///         let inner = Mutex::new(self.store.writer(opts).await?);
///         let (store, max) = (self.store.clone(), self.max);
///         Ok(Box::new(CappedWriter { inner, store, reference, max }))
///     }
/// }
///
/// impl CappedWriter {
///     fn inner(&self) -> MutexGuard<'_, Box<dyn Writer>> {
///         self.inner.lock().unwrap_or_else(PoisonError::into_inner)
///     }
///     fn inner_mut(&mut self) -> &mut Box<dyn Writer> {
///         self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
///     }
/// }
///
/// impl AsyncWrite for CappedWriter {
///     fn poll_write(
///         mut self: Pin<&mut Self>,
///         cx: &mut Context<'_>,
///         buf: &[u8],
///     ) -> Poll<io::Result<usize>> {
///         let max = self.max;
///         let inner = self.inner_mut();
///         if inner.offset() + buf.len() as u64 > max {
///             return Poll::Ready(Err(io::Error::other("over the size cap")));
///         }
///         Pin::new(inner).poll_write(cx, buf)
///     }
///     // poll_flush and poll_shutdown forward to the inner writer in the same way.
/// #   fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
/// #       Pin::new(self.inner_mut()).poll_flush(cx)
/// #   }
/// #   fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
/// #       Pin::new(self.inner_mut()).poll_shutdown(cx)
/// #   }
/// }
///
/// #[async_trait]
/// impl Writer for CappedWriter {
///     fn digest(&self) -> Digest {
///         self.inner().digest()
///     }
///     fn offset(&self) -> u64 {
///         self.inner().offset()
///     }
///     async fn status(&self) -> Result<Status> {
///         // The store's view of the ingest, with the bytes the writer still buffers.
///         let mut status = self.store.status(&self.reference).await?;
///         status.offset = self.offset();
///         Ok(status)
///     }
///     async fn truncate(&mut self, size: u64) -> Result<()> {
///         self.inner_mut().truncate(size).await
///     }
///     async fn commit(self: Box<Self>, size: u64, expected: Option<&Digest>) -> Result<()> {
///         let inner = self.inner.into_inner().unwrap_or_else(PoisonError::into_inner);
///         inner.commit(size, expected).await // verifies size and digest
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = CappedIngester { store: LocalStore::open(dir.path())?, max: 8 };
///
/// let mut w = store.writer(WriterOpts::new("fits")).await?;
/// w.write_all(b"small").await?;
/// assert_eq!(w.status().await?.offset, 5);
/// let digest = w.digest();
/// w.commit(5, Some(&digest)).await?;
/// assert_eq!(store.store.info(&digest).await?.size, 5);
///
/// let mut w = store.writer(WriterOpts::new("too-big")).await?;
/// assert!(w.write_all(b"far too large").await.is_err());
///
/// // A commit that claims the wrong size fails, and nothing becomes visible.
/// let mut w = store.writer(WriterOpts::new("short")).await?;
/// w.write_all(b"abc").await?;
/// let digest = w.digest();
/// let err = w.commit(4, Some(&digest)).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
/// assert_eq!(store.store.info(&digest).await.unwrap_err().kind(), ErrorKind::NotFound);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Ingester: Send + Sync {
    /// Opens a writer for `opts.reference`, resuming at the stored offset when a previous
    /// writer left a partial ingest under that ref.
    async fn writer(&self, opts: WriterOpts) -> Result<Box<dyn Writer>>;
}

/// An open ingest: write bytes, then [`commit`](Writer::commit).
///
/// Dropping a writer without committing releases its lock and keeps the partial data, so a
/// later writer on the same ref resumes where this one stopped.
///
/// The [`Ingester`] example implements both traits: a writer that forwards to another
/// store's writer and refuses bytes past a size cap.
#[async_trait]
pub trait Writer: AsyncWrite + Send + Unpin {
    /// The digest of everything written so far (including data resumed from disk).
    fn digest(&self) -> Digest;

    /// How many bytes have been written so far (the resume offset for the next byte).
    fn offset(&self) -> u64;

    /// The ingest's current status.
    async fn status(&self) -> Result<Status>;

    /// Discards everything after `size` bytes (only `0` is required to be supported), so
    /// the caller can restart from there.
    async fn truncate(&mut self, size: u64) -> Result<()>;

    /// Verifies that exactly `size` bytes were written and, when given, that they hash to
    /// `expected`; then syncs and makes the blob visible atomically. On a mismatch the
    /// blob is not visible and the error is `FailedPrecondition`; when the blob was already
    /// committed meanwhile, `AlreadyExists`.
    ///
    /// After a `FailedPrecondition` the ingest is kept exactly as written (in
    /// [`LocalStore`](crate::LocalStore)): a new writer on the same ref resumes it, and can
    /// [`truncate`](Writer::truncate) it or have it [`abort`](IngestManager::abort)ed.
    /// After `AlreadyExists` the ingest is removed and the existing blob left untouched.
    async fn commit(self: Box<Self>, size: u64, expected: Option<&Digest>) -> Result<()>;
}

/// The state of an in-progress ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The ingest's ref.
    pub reference: String,
    /// Bytes written so far.
    pub offset: u64,
    /// The expected total size, when the writer was told.
    pub total: Option<u64>,
    /// The expected digest, when the writer was told.
    pub expected: Option<Digest>,
    /// When the ingest started.
    pub started_at: SystemTime,
    /// When data was last written.
    pub updated_at: SystemTime,
}

/// What is known about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// When the blob was committed.
    pub created_at: SystemTime,
    /// When the blob or its labels last changed.
    pub updated_at: SystemTime,
    /// Caller-defined labels (for example garbage-collection references).
    pub labels: HashMap<String, String>,
}

/// Manages committed blobs.
///
/// Wrapping another store's manager is the usual way to add policy. This view shows only
/// the blobs labelled `team=<name>`, as if each team had a store of its own:
///
/// ```
/// # use std::collections::HashMap;
/// # use async_trait::async_trait;
/// # use dist_content::{Error, ErrorKind, Filter, Info, LocalStore, Manager, Result};
/// # use dist_content::write_blob;
/// # use oci_spec::image::{Descriptor, Digest, MediaType};
/// # use sha2::{Digest as _, Sha256};
/// struct TeamView<M> {
///     inner: M,
///     team: String,
/// }
///
/// #[async_trait]
/// impl<M: Manager> Manager for TeamView<M> {
///     async fn info(&self, digest: &Digest) -> Result<Info> {
///         let info = self.inner.info(digest).await?;
///         match info.labels.get("team") {
///             Some(team) if *team == self.team => Ok(info),
///             _ => Err(Error::NotFound(digest.to_string())),
///         }
///     }
///
///     async fn update_labels(&self, digest: &Digest, mut labels: HashMap<String, String>)
///     -> Result<Info> {
///         self.info(digest).await?;
///         labels.insert("team".into(), self.team.clone()); // a team keeps what it has
///         self.inner.update_labels(digest, labels).await
///     }
///
///     async fn walk(
///         &self,
///         filter: &Filter,
///         f: &mut (dyn FnMut(Info) -> Result<()> + Send),
///     ) -> Result<()> {
///         let mut filter = filter.clone();
///         filter.labels.push(("team".into(), Some(self.team.clone())));
///         self.inner.walk(&filter, f).await
///     }
///
///     async fn delete(&self, digest: &Digest) -> Result<()> {
///         self.info(digest).await?;
///         self.inner.delete(digest).await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = LocalStore::open(dir.path())?;
/// # let put = async |data: &'static [u8]| -> Result<Digest> {
/// #     let digest: Digest = format!("sha256:{}", hex::encode(Sha256::digest(data)))
/// #         .parse()
/// #         .map_err(|e| Error::InvalidArgument(format!("{e}")))?;
/// #     let desc = Descriptor::new(MediaType::ImageLayer, data.len() as u64, digest.clone());
/// #     write_blob(&store, "put", &desc, data).await?;
/// #     Ok(digest)
/// # };
/// let (ours, theirs) = (put(b"ours").await?, put(b"theirs").await?); // write two blobs
/// let view = TeamView { inner: store.clone(), team: "web".into() };
/// view.inner.update_labels(&ours, HashMap::from([("team".into(), "web".into())])).await?;
///
/// let mut seen = Vec::new();
/// view.walk(&Filter::all(), &mut |info| {
///     seen.push(info.digest);
///     Ok(())
/// })
/// .await?;
/// assert_eq!(seen, [ours.clone()]);
/// assert_eq!(view.delete(&theirs).await.unwrap_err().kind(), ErrorKind::NotFound);
/// assert!(store.info(&theirs).await.is_ok()); // untouched
/// view.delete(&ours).await?;
/// assert_eq!(store.info(&ours).await.unwrap_err().kind(), ErrorKind::NotFound);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Manager: Send + Sync {
    /// Information about one blob; `NotFound` when absent.
    async fn info(&self, digest: &Digest) -> Result<Info>;

    /// Replaces the labels of a blob (the only mutable field) and returns the new info.
    async fn update_labels(&self, digest: &Digest, labels: HashMap<String, String>)
    -> Result<Info>;

    /// Calls `f` for every committed blob that matches `filter`.
    async fn walk(
        &self,
        filter: &Filter,
        f: &mut (dyn FnMut(Info) -> Result<()> + Send),
    ) -> Result<()>;

    /// Removes a blob; `NotFound` when absent.
    async fn delete(&self, digest: &Digest) -> Result<()>;
}

/// Manages in-progress ingests.
///
/// Refs are the caller's to choose, so a prefix makes a namespace. This manager sees only
/// the ingests of one pull, whose refs that pull starts with `pull-<id>/`:
///
/// ```
/// # use async_trait::async_trait;
/// # use dist_content::{ErrorKind, Filter, IngestManager, Ingester, LocalStore, Result};
/// # use dist_content::{Status, WriterOpts};
/// # use tokio::io::AsyncWriteExt;
/// struct PullIngests<S> {
///     store: S,
///     prefix: String,
/// }
///
/// #[async_trait]
/// impl<S: IngestManager> IngestManager for PullIngests<S> {
///     async fn status(&self, reference: &str) -> Result<Status> {
///         self.store.status(&format!("{}{reference}", self.prefix)).await
///     }
///
///     async fn list_statuses(&self, filter: &Filter) -> Result<Vec<Status>> {
///         let mut filter = filter.clone();
///         let narrower = filter.ref_prefix.take().unwrap_or_default();
///         filter.ref_prefix = Some(format!("{}{narrower}", self.prefix));
///         self.store.list_statuses(&filter).await
///     }
///
///     async fn abort(&self, reference: &str) -> Result<()> {
///         self.store.abort(&format!("{}{reference}", self.prefix)).await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = LocalStore::open(dir.path())?;
/// for (reference, data) in [("pull-1/config", &b"{}"[..]), ("pull-2/config", b"{ }")] {
///     let mut w = store.writer(WriterOpts::new(reference)).await?;
///     w.write_all(data).await?;
///     w.flush().await?; // then drop it: the partial ingest stays
/// }
/// let pull1 = PullIngests { store: store.clone(), prefix: "pull-1/".into() };
///
/// let statuses = pull1.list_statuses(&Filter::all()).await?;
/// assert_eq!(statuses.len(), 1);
/// assert_eq!(statuses[0].reference, "pull-1/config");
/// assert_eq!(pull1.status("config").await?.offset, 2);
///
/// pull1.abort("config").await?;
/// assert_eq!(pull1.status("config").await.unwrap_err().kind(), ErrorKind::NotFound);
/// assert_eq!(store.status("pull-2/config").await?.offset, 3); // other pulls untouched
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait IngestManager: Send + Sync {
    /// The status of the ingest under `reference`; `NotFound` when there is none.
    async fn status(&self, reference: &str) -> Result<Status>;

    /// The statuses of every ingest that matches `filter`.
    async fn list_statuses(&self, filter: &Filter) -> Result<Vec<Status>>;

    /// Removes the ingest under `reference` and its partial data; `NotFound` when there is
    /// none, `Unavailable` while a writer holds it.
    async fn abort(&self, reference: &str) -> Result<()>;
}

/// Everything a content store offers, for callers that want the whole store.
///
/// Nothing to implement: any type with the four traits is a `Store`, so ask for
/// `impl Store` (or `dyn Store`) where a function needs all of them:
///
/// ```
/// use dist_content::{Filter, LocalStore, Result, Store};
///
/// async fn blob_count(store: &impl Store) -> Result<usize> {
///     let mut n = 0;
///     store
///         .walk(&Filter::all(), &mut |_| {
///             n += 1;
///             Ok(())
///         })
///         .await?;
///     Ok(n)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// assert_eq!(blob_count(&LocalStore::open(dir.path())?).await?, 0);
/// # Ok(())
/// # }
/// ```
pub trait Store: Provider + Ingester + Manager + IngestManager {}

impl<T: Provider + Ingester + Manager + IngestManager + ?Sized> Store for T {}
