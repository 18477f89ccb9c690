//! [`LocalWriter`]: the [`Writer`] of the local store.
//!
//! The caller's task only copies incoming bytes into 1 MiB chunk buffers. Each full chunk
//! is shared between the writer's hashing thread and its writing thread, which take
//! chunks in stream order as they come. Hashing (the slowest part, and strictly
//! sequential) therefore runs on one thread without pause while writes and copies run
//! beside it, and no chunk waits for a thread to be woken or spawned.
//!
//! Up to [`DEPTH`] chunks may be in flight; a chunk counts as done only once it is both
//! written and hashed, which bounds the hashing queue too. Writes happen in order and none
//! after one failed, so whatever a crash or error leaves in `data` is always a prefix of
//! the stream: a resuming writer can trust the file's length and re-hash it.
//!
//! Nothing here blocks the caller's thread on these threads: the digest is asked for
//! through an async reply, and dropping a writer hands what is left (the buffered bytes,
//! `updatedat`, the lock) to the writing thread, which stores it after the queued chunks
//! and then releases the lock (see [`super::closing`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use async_trait::async_trait;
use oci_spec::image::Digest;
use tokio::io::AsyncWrite;

use super::closing;
use super::ingest::{self, DATA};
use super::lock::IngestLock;
use crate::{Algorithm, Digester, Error, Result, Status, Writer};

/// Bytes gathered before a chunk is handed to the blocking writer.
const CHUNK: usize = 1 << 20;

/// Chunks that may be queued for writing at once: memory per writer stays within
/// `(DEPTH + 1) * CHUNK`.
const DEPTH: usize = 4;

/// A queued chunk: its buffer comes back once it is written and hashed.
type Inflight = tokio::sync::oneshot::Receiver<io::Result<Vec<u8>>>;

enum HashMsg {
    /// Hash this chunk next; say so on the sender once done (and the chunk dropped).
    Chunk(Arc<Vec<u8>>, SyncSender<()>),
    /// Reply with the state after every chunk sent so far.
    Query(tokio::sync::oneshot::Sender<Digester>),
    /// Continue from this state (after a truncate re-hashed the file).
    Reset(Digester),
}

/// The thread hashing one ingest's chunks in stream order; it ends when the writer is
/// dropped.
#[derive(Debug)]
pub(super) struct HashThread(std::sync::mpsc::Sender<HashMsg>);

impl HashThread {
    /// Starts hashing from `state`.
    pub(super) fn spawn(state: Digester) -> io::Result<HashThread> {
        let (tx, rx) = std::sync::mpsc::channel::<HashMsg>();
        std::thread::Builder::new()
            .name("dist-content-hash".into())
            .spawn(move || Self::run(state, &rx))?;
        Ok(HashThread(tx))
    }

    /// The thread's loop: hash chunks in order until the writer is gone.
    fn run(mut state: Digester, rx: &Receiver<HashMsg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                HashMsg::Chunk(chunk, done) => {
                    state.update(chunk.as_slice());
                    drop(chunk);
                    let _ = done.send(());
                }
                HashMsg::Query(reply) => {
                    let _ = reply.send(state.clone());
                }
                HashMsg::Reset(s) => state = s,
            }
        }
    }

    fn send(&self, msg: HashMsg) -> bool {
        self.0.send(msg).is_ok()
    }

    /// Queues `chunk`; the receiver hears once it is hashed (or is dropped if the thread
    /// is gone).
    fn hash(&self, chunk: Arc<Vec<u8>>) -> Receiver<()> {
        let (done, hashed) = sync_channel(1);
        self.send(HashMsg::Chunk(chunk, done));
        hashed
    }

    /// Waits (asynchronously) until every queued chunk is hashed and returns the state;
    /// `None` if the thread is gone.
    async fn current(&self) -> Option<Digester> {
        let (reply, state) = tokio::sync::oneshot::channel();
        if !self.send(HashMsg::Query(reply)) {
            return None;
        }
        state.await.ok()
    }

    fn reset(&self, state: Digester) {
        self.send(HashMsg::Reset(state));
    }
}

/// One chunk for the writing thread.
struct WriteJob {
    file: Arc<File>,
    buf: Arc<Vec<u8>>,
    pos: u64,
    hashed: Receiver<()>,
    done: tokio::sync::oneshot::Sender<io::Result<Vec<u8>>>,
}

enum WriteMsg {
    Job(WriteJob),
    /// Accept writes again after a failure (a truncate re-read the file).
    Reset,
    /// The writer was dropped: store the rest, then release the ingest.
    Close(Close),
}

/// What a dropped writer leaves to its writing thread.
struct Close {
    file: Arc<File>,
    /// Accepted bytes never dispatched, to be written at `pos` unless a write failed.
    buf: Vec<u8>,
    pos: u64,
    /// The writer saw a failed write: `buf` would leave a hole, so it is not written.
    poisoned: bool,
    dir: PathBuf,
    reference: String,
    lock: IngestLock,
    /// Dropped last, once the lock is released.
    closing: closing::Closing,
}

impl Close {
    /// Runs on the writing thread after every queued chunk, so `data` stays a prefix of
    /// the stream; best effort, as a drop cannot report errors.
    fn finish(self, failed: bool) {
        if !failed
            && !self.poisoned
            && !self.buf.is_empty()
            && let Err(e) = self.file.write_all_at(&self.buf, self.pos)
        {
            tracing::warn!(reference = %self.reference, error = %e,
                "could not save buffered ingest data");
        }
        if let Err(e) = ingest::touch_updated(&self.dir, SystemTime::now()) {
            tracing::debug!(reference = %self.reference, error = %e, "could not record updatedat");
        }
        drop(self.lock);
        drop(self.closing);
    }
}

/// The thread writing one ingest's chunks to `data` in stream order, never one after a
/// failed one (so `data` is always a prefix of the stream); it ends when the writer is
/// dropped.
#[derive(Debug)]
pub(super) struct WriteThread(std::sync::mpsc::Sender<WriteMsg>);

impl WriteThread {
    pub(super) fn spawn() -> io::Result<WriteThread> {
        let (tx, rx) = std::sync::mpsc::channel::<WriteMsg>();
        std::thread::Builder::new()
            .name("dist-content-write".into())
            .spawn(move || {
                let mut failed = false;
                while let Ok(msg) = rx.recv() {
                    let job = match msg {
                        WriteMsg::Job(job) => job,
                        WriteMsg::Reset => {
                            failed = false;
                            continue;
                        }
                        WriteMsg::Close(close) => {
                            close.finish(failed);
                            continue;
                        }
                    };
                    let res = if failed {
                        Err(io::Error::other("an earlier chunk of this ingest failed"))
                    } else {
                        job.file.write_all_at(&job.buf, job.pos)
                    };
                    failed |= res.is_err();
                    // Done once hashed too (the hashing thread drops its share first), so
                    // at most DEPTH chunks wait for hashing; then the buffer is reused.
                    let res = res.and_then(|()| {
                        job.hashed
                            .recv()
                            .map_err(|_| io::Error::other("the ingest's hashing thread stopped"))
                    });
                    let buf = job.buf;
                    let _ = job
                        .done
                        .send(res.map(|()| Arc::try_unwrap(buf).unwrap_or_default()));
                }
            })?;
        Ok(WriteThread(tx))
    }

    /// Queues `msg`. If the thread is gone the message is dropped: a job's receiver then
    /// reports an error, a close releases the lock at once.
    fn send(&self, msg: WriteMsg) -> bool {
        self.0.send(msg).is_ok()
    }
}

/// An open ingest in a [`LocalStore`](super::LocalStore). Holds the ref's lock until it is
/// committed or dropped.
#[derive(Debug)]
pub(crate) struct LocalWriter {
    pub(super) blobs_dir: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) reference: String,
    pub(super) lock: Option<IngestLock>,
    pub(super) file: Arc<File>,
    /// Hashes every dispatched chunk (not `buf`).
    pub(super) hash: HashThread,
    /// The algorithm `hash` computes: the expected digest's, else sha256.
    pub(super) alg: Algorithm,
    /// Bytes accepted so far (in `buf`, queued, or written).
    pub(super) offset: u64,
    pub(super) total: Option<u64>,
    pub(super) expected: Option<Digest>,
    pub(super) started_at: SystemTime,
    pub(super) updated_at: SystemTime,
    /// Accepted bytes not yet handed to the blocking writer; they end at `offset`.
    pub(super) buf: Vec<u8>,
    /// Buffers returned by finished writes, reused for the next chunks.
    pub(super) spare: Vec<Vec<u8>>,
    /// Writes chunks to `data` in order.
    pub(super) writes: WriteThread,
    /// Queued chunks, oldest first.
    pub(super) inflight: VecDeque<Inflight>,
    /// Set when a write to `data` failed: from then on `offset` and the hash describe bytes
    /// that are not all on disk, so every further write or commit fails until
    /// [`Writer::truncate`] re-reads the file (or a new writer resumes from it).
    pub(super) poisoned: bool,
}

impl LocalWriter {
    /// Waits until at most `keep` chunk writes are queued, taking finished buffers back.
    fn poll_inflight(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<io::Result<()>> {
        loop {
            if self.poisoned {
                return Poll::Ready(Err(io::Error::other(
                    "an earlier write to this ingest failed; truncate or reopen it",
                )));
            }
            if self.inflight.len() <= keep {
                return Poll::Ready(Ok(()));
            }
            let Some(handle) = self.inflight.front_mut() else {
                return Poll::Ready(Ok(()));
            };
            let res = ready!(Pin::new(handle).poll(cx));
            self.inflight.pop_front();
            match res.map_err(io::Error::other).and_then(|r| r) {
                Ok(mut buf) => {
                    buf.clear();
                    self.spare.push(buf);
                }
                Err(e) => {
                    self.poisoned = true;
                    self.buf.clear();
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Waits for every queued write, whatever its outcome (used before truncating).
    async fn drain(&mut self) {
        while let Some(handle) = self.inflight.pop_front() {
            if !matches!(handle.await, Ok(Ok(_))) {
                self.poisoned = true;
            }
        }
    }

    /// Hands `buf` to the hashing and writing threads.
    fn dispatch(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let buf = Arc::new(std::mem::replace(&mut self.buf, next));
        let pos = self.offset - buf.len() as u64;
        let hashed = self.hash.hash(Arc::clone(&buf));
        let (done, finished) = tokio::sync::oneshot::channel();
        self.writes.send(WriteMsg::Job(WriteJob {
            file: Arc::clone(&self.file),
            buf,
            pos,
            hashed,
            done,
        }));
        self.inflight.push_back(finished);
    }

    fn status_now(&self) -> Status {
        Status {
            reference: self.reference.clone(),
            offset: self.offset,
            total: self.total,
            expected: self.expected.clone(),
            started_at: self.started_at,
            updated_at: self.updated_at,
        }
    }

    /// Writes whatever is buffered and waits for it, so `data` holds `offset` bytes.
    async fn flush_all(&mut self) -> Result<()> {
        futures::future::poll_fn(|cx| Pin::new(&mut *self).poll_flush(cx))
            .await
            .map_err(|e| Error::io(format!("write ingest {:?}", self.reference), e))
    }

    async fn check(&self, size: u64, expected: Option<&Digest>) -> Result<Digest> {
        for want in [Some(size), self.total].into_iter().flatten() {
            if want != self.offset {
                return Err(Error::SizeMismatch {
                    what: self.reference.clone(),
                    expected: want,
                    actual: self.offset,
                });
            }
        }
        let actual = self.digest().await?;
        let wanted: Vec<&Digest> = [expected, self.expected.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        for want in &wanted {
            let alg = Algorithm::of(want)?;
            // A commit may name the blob by another algorithm than the one the writer
            // hashed with: the stored data is hashed again with that one.
            let got = if alg == self.alg {
                actual.clone()
            } else {
                let file = Arc::clone(&self.file);
                let path = self.dir.join(DATA);
                let len = self.offset;
                blocking(move || super::rehash(&file, len, &path, alg))
                    .await?
                    .finish()
            };
            if **want != got {
                return Err(Error::DigestMismatch {
                    what: self.reference.clone(),
                    expected: want.to_string(),
                    actual: got.to_string(),
                });
            }
        }
        // The blob is named by the digest the commit gave, else the writer's, else ours.
        Ok(wanted.first().map_or(actual, |d| (*d).clone()))
    }
}

impl AsyncWrite for LocalWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.poisoned || this.buf.len() >= CHUNK {
            ready!(this.poll_inflight(cx, DEPTH - 1))?;
            this.dispatch();
        }
        let n = data.len().min(CHUNK - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        this.offset += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.buf.is_empty() {
                ready!(this.poll_inflight(cx, 0))?;
                this.updated_at = SystemTime::now();
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_inflight(cx, DEPTH - 1))?;
            this.dispatch();
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[async_trait]
impl Writer for LocalWriter {
    /// Waits, without blocking the thread, for queued hashing (at most [`DEPTH`] chunks)
    /// to catch up, then adds the bytes not yet dispatched.
    async fn digest(&self) -> Result<Digest> {
        let Some(mut state) = self.hash.current().await else {
            return Err(Error::io(
                format!("hash ingest {:?}", self.reference),
                io::Error::other("the ingest's hashing thread stopped"),
            ));
        };
        state.update(&self.buf);
        Ok(state.finish())
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    async fn status(&self) -> Result<Status> {
        Ok(self.status_now())
    }

    async fn truncate(&mut self, size: u64) -> Result<()> {
        // After a failed write, only what reached the file counts; otherwise make
        // everything accepted reach it first.
        if let Err(e) = self.flush_all().await
            && !self.poisoned
        {
            return Err(e);
        }
        self.drain().await;
        self.writes.send(WriteMsg::Reset);
        let file = Arc::clone(&self.file);
        let path = self.dir.join(DATA);
        let alg = self.alg;
        let reference = self.reference.clone();
        let hasher = blocking(move || {
            let on_disk = file
                .metadata()
                .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
                .len();
            if size > on_disk {
                return Err(Error::InvalidArgument(format!(
                    "ingest {reference:?}: cannot truncate to {size}, only {on_disk} bytes stored"
                )));
            }
            file.set_len(size)
                .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
            super::rehash(&file, size, &path, alg)
        })
        .await?;
        self.hash.reset(hasher);
        self.offset = size;
        self.poisoned = false;
        self.updated_at = SystemTime::now();
        Ok(())
    }

    async fn commit(mut self: Box<Self>, size: u64, expected: Option<&Digest>) -> Result<()> {
        self.flush_all().await?;
        let digest = self.check(size, expected).await?;
        let lock = self.lock.take();
        let file = Arc::clone(&self.file);
        let dir = self.dir.clone();
        let blobs_dir = self.blobs_dir.clone();
        blocking(move || {
            let res = super::publish::publish(&file, &dir, &blobs_dir, &digest);
            drop(lock);
            res
        })
        .await
    }
}

impl Drop for LocalWriter {
    /// Keeps the partial data for a resuming writer without blocking this thread: the
    /// writing thread stores the buffered bytes after every queued chunk, records
    /// `updatedat`, and only then releases the lock, so no write of ours can land in
    /// `data` once another writer holds the ref.
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else {
            return; // committed: nothing left to store or release
        };
        let buf = std::mem::take(&mut self.buf);
        let close = Close {
            file: Arc::clone(&self.file),
            pos: self.offset - buf.len() as u64,
            buf,
            // A chunk seen failing (or lost) means `buf` would not extend `data`.
            poisoned: self.poisoned,
            dir: self.dir.clone(),
            reference: std::mem::take(&mut self.reference),
            lock,
            closing: closing::begin(&self.dir),
        };
        // Finished chunks the writer never collected are fine to forget: the writing
        // thread handles them in order before the close.
        if !self.writes.send(WriteMsg::Close(close)) {
            tracing::warn!(dir = %self.dir.display(),
                "the ingest's writing thread is gone; buffered data was not saved");
        }
    }
}

/// Runs blocking filesystem work off the async threads (the crate's one helper for it).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io("blocking task", io::Error::other(e)))?
}

#[cfg(test)]
mod tests;
