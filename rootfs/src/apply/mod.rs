//! `apply`: one layer onto a directory, streaming, with its DiffID computed on the way.
//!
//! Three stages: the calling thread reads and inflates; a second thread hashes and parses
//! the tar; a third does every filesystem operation. They talk through bounded queues of
//! decoded chunks and of batched entry headers and data, so memory stays bounded
//! whatever the layer's size.

pub(crate) mod entry;
pub(crate) mod limits;
mod metadata;
pub(crate) mod root;
pub(crate) mod stream;
mod writer;

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) use limits::Exceeded;
pub use limits::{Limit, MAX_PAX_RECORDS, MAX_SPECIAL_HEADER, MAX_XATTRS};
pub use stream::{Compression, GZIP_INFLATE, decompress};

use crate::{DiffId, Error, IdMap, Result};
use entry::{Header, Kind};
use writer::Applier;
pub(crate) use writer::EntryFilter;

/// How whiteout entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhiteoutMode {
    /// Apply them: `.wh.<name>` removes `<name>`, `.wh..wh..opq` empties the directory of
    /// what lower layers put there. For a directory holding the whole flattened tree.
    #[default]
    Remove,
    /// Record them the way overlayfs reads them: a 0/0 character device for a removed
    /// name and `trusted.overlay.opaque=y` on an opaque directory. For an overlay upper
    /// directory (needs privileges to create devices and `trusted.*` xattrs).
    Overlay,
}

/// Options for [`apply`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// How to write whiteouts.
    pub whiteouts: WhiteoutMode,
    /// Set each entry's uid/gid (default: when running as root). Without it everything is
    /// owned by the caller, as rootless unpackers do.
    pub same_owner: bool,
    /// Maps layer ids to host ids before chown (for user namespaces).
    pub id_map: Option<IdMap>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::Remove,
            same_owner: rustix::process::geteuid().is_root(),
            id_map: None,
        }
    }
}

impl ApplyOptions {
    /// Sets how whiteouts are written.
    pub fn whiteouts(mut self, mode: WhiteoutMode) -> Self {
        self.whiteouts = mode;
        self
    }

    /// Sets whether entries get their recorded owners.
    pub fn same_owner(mut self, yes: bool) -> Self {
        self.same_owner = yes;
        self
    }

    /// Sets an id mapping (implies `same_owner`).
    pub fn id_map(mut self, map: IdMap) -> Self {
        self.id_map = Some(map);
        self.same_owner = true;
        self
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// The SHA-256 of the whole uncompressed stream: compare it with the image config.
    pub diff_id: DiffId,
    /// The uncompressed size in bytes.
    pub size: u64,
    /// The compression the stream used, read from its magic bytes (never `Unknown`).
    pub compression: Compression,
}

/// Data chunks are at most this big.
const CHUNK: usize = 256 * 1024;
/// Batches in flight between the parse and write stages.
const QUEUE: usize = 4;
/// A batch is sent once it holds this many bytes of data or this many messages.
const BATCH_BYTES: usize = 1024 * 1024;
const BATCH_LEN: usize = 256;
/// Decoded chunks in flight between the inflate and parse stages.
const RAW_QUEUE: usize = 8;
/// Data buffers kept for reuse between the applier and the parser (at most 256 KiB each).
const SPARE_BUFFERS: usize = 16;

enum Msg {
    Begin(Box<Header>),
    Data(Vec<u8>),
    Finish,
}

/// Applies one layer (plain, gzip or zstd tar, detected from its first bytes) onto `root`,
/// which must exist. Blocking: call it from a blocking thread, or use [`apply_async`].
///
/// Every path is resolved inside `root` as if it were `/`; an entry that would reach
/// outside is kept inside or rejected. On error `root` is left partly applied: discard it.
pub fn apply<R: Read>(reader: R, root: &Path, options: &ApplyOptions) -> Result<Applied> {
    apply_filtered(reader, root, options, None)
}

/// [`apply`] asking `filter` which created entries to skip (the flattened apply).
pub(crate) fn apply_filtered<'a, R: Read>(
    reader: R,
    root: &Path,
    options: &'a ApplyOptions,
    filter: Option<&'a mut (dyn EntryFilter + Send)>,
) -> Result<Applied> {
    let (input, compression) = stream::detect(reader)?;
    let applier = Applier::new(root, options)?.with_filter(filter);
    std::thread::scope(|s| {
        // Three stages: inflate (here, so `reader` need not be `Send`) | hash + parse |
        // filesystem writes.
        let (raw_tx, raw_rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(RAW_QUEUE);
        let (raw_spare_tx, raw_spare_rx) = mpsc::channel::<Vec<u8>>();
        let (tx, rx) = mpsc::sync_channel::<Vec<Msg>>(QUEUE);
        let (spare_tx, spare_rx) = mpsc::sync_channel::<Vec<u8>>(SPARE_BUFFERS);
        let writer = std::thread::Builder::new()
            .name("dist-rootfs-apply".into())
            .spawn_scoped(s, move || write_entries(applier, rx, spare_tx))
            .map_err(|e| Error::io("spawn applier thread", e))?;
        let parser = std::thread::Builder::new()
            .name("dist-rootfs-parse".into())
            .spawn_scoped(s, move || {
                let chunks = stream::ChunkReader::new(raw_rx, raw_spare_tx);
                // Returning drops the chunk receiver, which stops the inflate stage early.
                read_entries(chunks, &tx, &spare_rx)
            })
            .map_err(|e| Error::io("spawn parser thread", e))?;
        stream::inflate(input, compression, CHUNK, &raw_tx, &raw_spare_rx);
        drop(raw_tx);
        let panicked = |what: &str| Error::io(what, io::Error::other("panicked"));
        let parsed = parser.join().map_err(|_| panicked("parser thread"));
        let written = writer.join().map_err(|_| panicked("applier thread"));
        // A writer failure makes the parser stop with a closed queue: report the cause.
        written??;
        let (diff_id, size) = parsed??;
        Ok(Applied {
            diff_id,
            size,
            compression,
        })
    })
}

fn write_entries(
    mut applier: Applier<'_>,
    rx: mpsc::Receiver<Vec<Msg>>,
    spare: mpsc::SyncSender<Vec<u8>>,
) -> Result<()> {
    while let Ok(batch) = rx.recv() {
        for msg in batch {
            match msg {
                Msg::Begin(h) => applier.begin(*h)?,
                Msg::Data(buf) => {
                    applier.data(&buf)?;
                    // A full pool drops the buffer: the pool must not grow with the
                    // number of entries in flight at the busiest moment.
                    let _ = spare.try_send(buf);
                }
                Msg::Finish => return applier.finish(),
            }
        }
    }
    // The reader stopped early (its error is reported); leave the tree as it is.
    Ok(())
}

/// Groups messages so the two threads hand over work (and wake each other) once per
/// batch instead of once per entry.
struct Batcher<'a> {
    tx: &'a mpsc::SyncSender<Vec<Msg>>,
    batch: Vec<Msg>,
    bytes: usize,
}

impl Batcher<'_> {
    fn push(&mut self, msg: Msg) -> Result<()> {
        // Count what a buffer holds on to, not what it carries: recycled buffers keep
        // their capacity, and counting lengths would let a batch of small files pin
        // hundreds of 256 KiB buffers.
        self.bytes += match &msg {
            Msg::Data(b) => b.capacity(),
            _ => 512,
        };
        self.batch.push(msg);
        if self.bytes >= BATCH_BYTES || self.batch.len() >= BATCH_LEN {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_LEN));
        self.bytes = 0;
        self.tx
            .send(batch)
            .map_err(|_| Error::io("applier", io::Error::other("applier stopped")))
    }
}

fn read_entries<S: stream::Hashed>(
    mut stream: S,
    tx: &mpsc::SyncSender<Vec<Msg>>,
    spare: &mpsc::Receiver<Vec<u8>>,
) -> Result<(DiffId, u64)> {
    let mut out = Batcher {
        tx,
        batch: Vec::with_capacity(BATCH_LEN),
        bytes: 0,
    };
    // `last` is an elided entry name: it only goes into messages.
    let mut last = String::from("start of archive");
    {
        // The guard refuses oversized special headers before the tar crate reads them.
        let mut archive = tar::Archive::new(limits::HeaderGuard::new(&mut stream));
        let entries = archive
            .entries()
            .map_err(|e| Error::corrupt(last.clone(), e))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::corrupt(format!("entry after {last:?}"), e))?;
            let Some(h) = entry::parse(&mut entry)? else {
                continue;
            };
            last.clone_from(&h.name);
            let is_file = h.kind == Kind::File;
            let mut remaining = h.size;
            out.push(Msg::Begin(Box::new(h)))?;
            while is_file && remaining > 0 {
                let n = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
                let mut buf = spare.try_recv().unwrap_or_default();
                buf.resize(n, 0);
                entry
                    .read_exact(&mut buf)
                    .map_err(|e| Error::corrupt(format!("data of {last:?}"), e))?;
                remaining -= n as u64;
                out.push(Msg::Data(buf))?;
            }
        }
    }
    let done = stream::drain(stream)?;
    out.push(Msg::Finish)?;
    out.flush()?;
    Ok(done)
}

/// [`apply`] for async callers: reads `reader` on the current task and applies on a
/// blocking thread. `root` must exist.
pub async fn apply_async<R>(mut reader: R, root: &Path, options: ApplyOptions) -> Result<Applied>
where
    R: AsyncRead + Unpin + Send,
{
    let (tx, spare, job) = spawn_blocking_apply(root, options);
    let pump = async move {
        loop {
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.clear();
            match (&mut reader).take(CHUNK as u64).read_to_end(&mut buf).await {
                Ok(0) => break,
                Ok(_) => {
                    if tx.send(Ok(buf)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    };
    let ((), res) = tokio::join!(pump, job);
    res
}

/// Sender of raw layer bytes into a blocking [`apply`] running on the tokio blocking pool.
pub(crate) type ChunkSender = tokio::sync::mpsc::Sender<io::Result<Vec<u8>>>;

/// Chunks the blocking [`apply`] has consumed, for the sender to fill again instead of
/// allocating (and zeroing) a new buffer per chunk.
pub(crate) type SpareChunks = mpsc::Receiver<Vec<u8>>;

/// Chunks kept for reuse between the sender and the applier.
const SPARE_CHUNKS: usize = 8;

/// Starts [`apply`] on a blocking thread, fed through the returned sender; dropping the
/// sender is end of input.
pub(crate) fn spawn_blocking_apply(
    root: &Path,
    options: ApplyOptions,
) -> (
    ChunkSender,
    SpareChunks,
    impl std::future::Future<Output = Result<Applied>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(8);
    let (spare_tx, spare_rx) = mpsc::sync_channel(SPARE_CHUNKS);
    let root = root.to_owned();
    let handle = tokio::task::spawn_blocking(move || {
        apply(
            ChannelReader {
                rx,
                spare: spare_tx,
                cur: Vec::new(),
                pos: 0,
            },
            &root,
            &options,
        )
    });
    let fut = async move {
        match handle.await {
            Ok(r) => r,
            Err(e) => Err(Error::io("apply task", io::Error::other(e))),
        }
    };
    (tx, spare_rx, fut)
}

/// Blocking `Read` over chunks sent from async code.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    spare: mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    let done = std::mem::replace(&mut self.cur, chunk);
                    // A full pool (a sender that does not reuse) drops the buffer.
                    let _ = self.spare.try_send(done);
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
