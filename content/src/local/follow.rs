//! [`Follow`]: reading a blob of a [`LocalStore`] while it is being ingested, in this
//! process or another one writing into the same root.
//!
//! A follower looks at the files, not at the writer: the ingest's `data` as it grows,
//! the blob once it is committed, and the ingest's lock to tell a live writer from one
//! that is gone. It polls (with a short backoff) because another process's writes send no
//! signal. The last byte of the blob is held back until the blob is visible under its
//! digest, which happens only after the commit verified size and digest; so a reader that
//! reaches the end has read verified content, and one whose ingest is aborted, restarted,
//! abandoned or fails verification gets an error instead of its last byte.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oci_spec::image::{Descriptor, Digest};
use tokio::sync::watch;

use super::ingest::{self, DATA};
use super::writer::blocking;
use super::{LocalStore, lock};
use crate::{Error, ErrorKind, Provider, ReaderAt, Result};

/// How often a waiting follower probes the ingest's lock: the probe briefly holds a shared
/// lock, so it is kept rare.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The largest single read handed to a blocking task.
const MAX_READ: usize = 1 << 20;

/// The first pause of a follower that found no new bytes; it doubles up to
/// [`FollowOptions::max_poll`] and starts again when bytes arrive.
const FIRST_POLL: Duration = Duration::from_millis(1);

/// How a [`Follow`] waits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FollowOptions {
    /// The longest pause between two looks at the files while waiting for bytes.
    pub max_poll: Duration,
    /// How long an ingest may stay without a writer (its lock free, no blob) before the
    /// follower gives up: long enough for another writer to resume it. `None` waits for a
    /// writer until [`Follow::close`], for callers that know a download of every blob
    /// they read will (re)start, such as a pull that fetches and unpacks side by side.
    pub writer_gone_after: Option<Duration>,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            max_poll: Duration::from_millis(20),
            writer_gone_after: Some(Duration::from_secs(2)),
        }
    }
}

impl FollowOptions {
    /// Sets [`max_poll`](Self::max_poll).
    pub fn max_poll(mut self, pause: Duration) -> Self {
        self.max_poll = pause;
        self
    }

    /// Sets [`writer_gone_after`](Self::writer_gone_after).
    pub fn writer_gone_after(mut self, wait: Option<Duration>) -> Self {
        self.writer_gone_after = wait;
        self
    }
}

/// Why a follower stopped before the end of its blob. [`Follow`]'s readers report it
/// through [`Error::other`]; downcast the source to branch on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The ingest disappeared without its blob being committed (aborted or pruned).
    #[error("{0}: the ingest was removed before the blob was committed")]
    Aborted(Digest),
    /// The ingest's data was truncated or replaced under bytes already read, or the blob
    /// was committed from other data than was read (a failed verification empties it).
    #[error("{0}: the ingest restarted under bytes already read")]
    Restarted(Digest),
    /// No writer has held the ingest for [`FollowOptions::writer_gone_after`] (or at a
    /// look after [`Follow::close`]) and the blob is not committed: its writer failed, was
    /// cancelled or died, or the commit failed verification.
    #[error("{0}: the ingest has no writer and the blob was not committed")]
    WriterGone(Digest),
    /// [`Follow::close`] was called and no ingest of the blob had started.
    #[error("{0}: no ingest started before the follow was closed")]
    Closed(Digest),
    /// The ingest under the followed ref expects another digest.
    #[error("{digest}: the ingest under this ref expects {expected}")]
    OtherContent {
        /// The digest followed.
        digest: Digest,
        /// The digest the ingest expects.
        expected: Digest,
    },
    /// The committed blob is shorter than its descriptor says.
    #[error("{0}: the committed blob is shorter than its descriptor")]
    Short(Digest),
}

impl FollowError {
    fn kind(&self) -> ErrorKind {
        match self {
            FollowError::WriterGone(_) | FollowError::Closed(_) => ErrorKind::Unavailable,
            FollowError::Aborted(_) => ErrorKind::NotFound,
            _ => ErrorKind::FailedPrecondition,
        }
    }
}

impl From<FollowError> for Error {
    fn from(e: FollowError) -> Self {
        Error::other(e.kind(), e)
    }
}

/// A [`Provider`] that reads blobs of a [`LocalStore`] while they are being ingested,
/// from [`LocalStore::follow`].
///
/// [`reader_at`](Provider::reader_at) never waits: the returned reader waits, in each
/// `read_at`, until the bytes asked for have landed, from the committed blob when it is
/// there, else from the ingest that expects the blob's digest (any ref; see
/// [`Follow::by_ref`] to name one). The blob's last byte is released only once the blob is
/// committed (verified). Cheap to clone; clones share [`close`](Follow::close).
///
/// ```
/// use dist_content::{Ingester, LocalStore, ReaderAtReader, WriterOpts, sha256_of};
/// use oci_spec::image::{DescriptorBuilder, MediaType};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = LocalStore::open(dir.path())?;
/// let data = b"a layer arriving in two parts".to_vec();
/// let desc = DescriptorBuilder::default()
///     .media_type(MediaType::ImageLayerGzip)
///     .digest(sha256_of(&data))
///     .size(data.len() as u64)
///     .build()?;
///
/// // The follower starts before the download does.
/// let follow = store.follow();
/// let reading = {
///     let desc = desc.clone();
///     tokio::spawn(async move {
///         let reader = follow.reader(&desc);
///         let mut out = Vec::new();
///         ReaderAtReader::new(Box::new(reader)).read_to_end(&mut out).await?;
///         Ok::<_, std::io::Error>(out)
///     })
/// };
///
/// let mut writer = store.writer(WriterOpts::new("download").expected(desc.clone())).await?;
/// writer.write_all(&data[..10]).await?;
/// writer.flush().await?;
/// writer.write_all(&data[10..]).await?;
/// writer.commit(desc.size(), Some(desc.digest())).await?;
///
/// assert_eq!(reading.await??, data);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Follow {
    store: LocalStore,
    options: FollowOptions,
    closed: Arc<watch::Sender<bool>>,
}

impl LocalStore {
    /// A [`Provider`] that reads blobs while they are being ingested, with the default
    /// [`FollowOptions`].
    pub fn follow(&self) -> Follow {
        self.follow_with(FollowOptions::default())
    }

    /// Like [`follow`](Self::follow), with `options`.
    pub fn follow_with(&self, options: FollowOptions) -> Follow {
        Follow {
            store: self.clone(),
            options,
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

/// Which ingest a reader follows.
#[derive(Debug, Clone)]
enum Source {
    /// The ingest under this ref.
    Ref(String),
    /// Any ingest that expects the blob's digest.
    Digest,
}

impl Follow {
    /// Follows `desc`: the committed blob, or the ingest (under any ref) that expects its
    /// digest, waiting for one to appear.
    pub fn reader(&self, desc: &Descriptor) -> FollowReader {
        self.reader_from(desc, Source::Digest)
    }

    /// Follows `desc` through the ingest under `reference`, waiting for it to appear.
    pub fn by_ref(&self, reference: &str, desc: &Descriptor) -> FollowReader {
        self.reader_from(desc, Source::Ref(reference.to_owned()))
    }

    /// Says no new ingest will start (the downloads ended): from now on, readers whose
    /// blob is neither committed nor being ingested fail with [`FollowError::Closed`]
    /// instead of waiting, and readers of an ingest no writer holds fail with
    /// [`FollowError::WriterGone`]. Readers of ingests being written continue.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    fn reader_from(&self, desc: &Descriptor, source: Source) -> FollowReader {
        FollowReader {
            target: Arc::new(Target {
                store: self.store.clone(),
                digest: desc.digest().clone(),
                size: desc.size(),
                source,
            }),
            options: self.options.clone(),
            closed: self.closed.subscribe(),
            state: tokio::sync::Mutex::new(Some(Box::default())),
        }
    }
}

#[async_trait]
impl Provider for Follow {
    async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>> {
        Ok(Box::new(self.reader(desc)))
    }
}

/// What a [`FollowReader`] reads.
#[derive(Debug)]
struct Target {
    store: LocalStore,
    digest: Digest,
    size: u64,
    source: Source,
}

/// Random access to one blob while it is being ingested; see [`Follow`].
///
/// Reads are served in the order they are called; a read waits until at least one byte
/// at its offset may be released.
#[derive(Debug)]
pub struct FollowReader {
    target: Arc<Target>,
    options: FollowOptions,
    closed: watch::Receiver<bool>,
    /// Taken out for each look at the files (done on the blocking pool) and put back;
    /// a read cancelled meanwhile leaves `None`, and the next starts afresh.
    state: tokio::sync::Mutex<Option<Box<State>>>,
}

/// A file being read and its identity.
#[derive(Debug)]
struct Open {
    file: File,
    id: (u64, u64),
}

/// What a follower knows between looks.
#[derive(Debug, Default)]
struct State {
    /// The open data file (ingest or blob).
    file: Option<Open>,
    /// Whether `file` is the committed blob.
    committed: bool,
    /// The ingest directory followed, once found.
    dir: Option<PathBuf>,
    /// Whether the ingest's data was ever seen.
    seen: bool,
    /// The end of the furthest range released so far.
    released: u64,
    /// The data's length at the last look, and when it last grew.
    len: u64,
    grew: Option<Instant>,
    /// When the ingest was first seen without a writer (reset when one holds it).
    no_writer_since: Option<Instant>,
    /// When the lock was last probed.
    probed: Option<Instant>,
    /// Kept between reads: a fresh buffer per read costs as much as the read.
    scratch: Vec<u8>,
}

/// The outcome of one look.
enum Look {
    /// `n` bytes are in the scratch buffer.
    Read(usize),
    /// Nothing to release yet; `grew` when the data grew meanwhile.
    Wait { grew: bool },
}

fn file_id(md: &std::fs::Metadata) -> (u64, u64) {
    (md.dev(), md.ino())
}

fn io_err(what: &str, path: &std::path::Path, e: io::Error) -> Error {
    Error::io(
        format!("{what} {}", crate::Elided(&path.display().to_string())),
        e,
    )
}

impl Target {
    /// Finds the ingest directory to follow; `None` while there is none.
    fn find_dir(&self) -> Result<Option<PathBuf>> {
        match &self.source {
            Source::Ref(reference) => {
                let dir = self.store.ingest_dir(reference);
                Ok(dir.join(DATA).exists().then_some(dir))
            }
            Source::Digest => {
                for dir in ingest::list_dirs(&self.store.ingest_root())? {
                    match ingest::read_expected(&dir) {
                        Ok(Some(d)) if d == self.digest => return Ok(Some(dir)),
                        // Gone meanwhile, or someone else's: look further.
                        _ => continue,
                    }
                }
                Ok(None)
            }
        }
    }

    /// Opens the committed blob into `st` if it is there; `true` when it is.
    fn open_blob(&self, st: &mut State) -> Result<bool> {
        if st.committed {
            return Ok(true);
        }
        let path = self.store.blob_path(&self.digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let md = file.metadata().map_err(|e| io_err("stat", &path, e))?;
        let id = file_id(&md);
        // Bytes released from another file than the one committed were not verified.
        if st.released > 0 && st.file.as_ref().is_some_and(|f| f.id != id) {
            return Err(FollowError::Restarted(self.digest.clone()).into());
        }
        st.file = Some(Open { file, id });
        st.committed = true;
        Ok(true)
    }

    /// Looks at the ingest: opens its data, notes growth, fails on restarts and aborts.
    /// Returns the bytes that may be released (all but the last).
    fn look_ingest(&self, st: &mut State, closed: bool) -> Result<u64> {
        if st.dir.is_none() {
            st.dir = self.find_dir()?;
        }
        let Some(dir) = st.dir.clone() else {
            if closed {
                return Err(FollowError::Closed(self.digest.clone()).into());
            }
            return Ok(0);
        };
        let data = dir.join(DATA);
        let md = match std::fs::metadata(&data) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !st.seen {
                    // Found by digest but removed meanwhile, or not created yet.
                    if matches!(self.source, Source::Digest) {
                        st.dir = None;
                    }
                    return Ok(0);
                }
                // Gone: committed (renamed into blobs first), or aborted.
                if self.open_blob(st)? {
                    return Ok(self.size);
                }
                return Err(FollowError::Aborted(self.digest.clone()).into());
            }
            Err(e) => return Err(io_err("stat", &data, e)),
        };
        if !st.seen
            && let Source::Ref(_) = self.source
            && let Some(expected) = ingest::read_expected(&dir)?
            && expected != self.digest
        {
            return Err(FollowError::OtherContent {
                digest: self.digest.clone(),
                expected,
            }
            .into());
        }
        let id = file_id(&md);
        if st.file.as_ref().is_none_or(|f| f.id != id) {
            if st.released > 0 {
                return Err(FollowError::Restarted(self.digest.clone()).into());
            }
            match File::open(&data) {
                Ok(file) => st.file = Some(Open { file, id }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_err("open", &data, e)),
            }
            st.seen = true;
            st.len = 0;
        }
        let len = md.len();
        if len < st.released {
            return Err(FollowError::Restarted(self.digest.clone()).into());
        }
        if len > st.len || st.grew.is_none() {
            st.grew = Some(Instant::now());
            st.no_writer_since = None;
        }
        st.len = len;
        Ok(len.min(self.size.saturating_sub(1)))
    }

    /// Fails when the ingest has had no writer for `gone_after`.
    fn check_writer(
        &self,
        st: &mut State,
        gone_after: Option<Duration>,
        closed: bool,
    ) -> Result<()> {
        let Some(dir) = &st.dir else {
            return Ok(());
        };
        let idle = st.grew.is_some_and(|t| t.elapsed() >= PROBE_EVERY);
        if !idle || st.probed.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return Ok(());
        }
        st.probed = Some(Instant::now());
        if lock::is_held(dir)? {
            st.no_writer_since = None;
            return Ok(());
        }
        let since = *st.no_writer_since.get_or_insert_with(Instant::now);
        let gone = closed || gone_after.is_some_and(|after| since.elapsed() >= after);
        if gone && !self.open_blob(st)? {
            return Err(FollowError::WriterGone(self.digest.clone()).into());
        }
        Ok(())
    }

    /// One look at the files, on the blocking pool.
    fn look(
        &self,
        st: &mut State,
        offset: u64,
        want: usize,
        closed: bool,
        opts: &FollowOptions,
    ) -> Result<Look> {
        let before = st.len;
        let limit = if self.open_blob(st)? {
            self.size
        } else {
            self.look_ingest(st, closed)?
        };
        let grew = st.len > before;
        if offset < limit {
            let want = want.min(usize::try_from(limit - offset).unwrap_or(usize::MAX));
            let Some(open) = &st.file else {
                return Ok(Look::Wait { grew });
            };
            st.scratch.resize(want, 0);
            let n = open
                .file
                .read_at(&mut st.scratch[..want], offset)
                .map_err(|e| Error::io(format!("read {}", self.digest), e))?;
            if n > 0 {
                st.released = st.released.max(offset.saturating_add(n as u64));
                return Ok(Look::Read(n));
            }
            if st.committed {
                return Err(FollowError::Short(self.digest.clone()).into());
            }
        }
        if !st.committed && st.seen && !grew {
            self.check_writer(st, opts.writer_gone_after, closed)?;
            if st.committed {
                return Ok(Look::Wait { grew: true });
            }
        }
        Ok(Look::Wait { grew })
    }
}

#[async_trait]
impl ReaderAt for FollowReader {
    fn size(&self) -> u64 {
        self.target.size
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.target.size || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(MAX_READ);
        let mut guard = self.state.lock().await;
        let mut pause = FIRST_POLL;
        loop {
            let mut st = guard.take().unwrap_or_default();
            let target = Arc::clone(&self.target);
            let closed = *self.closed.borrow();
            let opts = self.options.clone();
            let (st, look) = blocking(move || {
                let look = target.look(&mut st, offset, want, closed, &opts);
                Ok((st, look))
            })
            .await?;
            match look {
                Ok(Look::Read(n)) => {
                    buf[..n].copy_from_slice(&st.scratch[..n]);
                    *guard = Some(st);
                    return Ok(n);
                }
                Ok(Look::Wait { grew }) => {
                    *guard = Some(st);
                    pause = if grew {
                        FIRST_POLL
                    } else {
                        (pause * 2).min(self.options.max_poll)
                    };
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    *guard = Some(st);
                    return Err(e);
                }
            }
        }
    }
}
