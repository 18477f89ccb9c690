//! Reading helpers over any [`Provider`]: a bounded, verified full read for small blobs
//! (manifests, configs) and a streaming [`AsyncRead`] for large ones (layers).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use oci_spec::image::Descriptor;
use tokio::io::{AsyncRead, ReadBuf};

use crate::digest::Digester;
use crate::{Error, Provider, ReaderAt, Result};

/// Reads the whole blob `desc` names, refusing blobs larger than `max_size`, and checks the
/// bytes against the descriptor's size and digest.
///
/// Meant for manifests, indexes and configs, whose raw bytes the caller must keep (parsing
/// and re-serialising could change their digest). Layers should be streamed with
/// [`reader`] instead.
pub async fn read_blob(
    provider: &(impl Provider + ?Sized),
    desc: &Descriptor,
    max_size: u64,
) -> Result<Vec<u8>> {
    let digest = desc.digest();
    if desc.size() > max_size {
        return Err(Error::InvalidArgument(format!(
            "{digest}: size {} exceeds the limit of {max_size} bytes",
            desc.size()
        )));
    }
    let mut hasher = Digester::for_digest(digest)?;
    let ra = provider.reader_at(desc).await?;
    if ra.size() != desc.size() {
        return Err(Error::SizeMismatch {
            what: digest.to_string(),
            expected: desc.size(),
            actual: ra.size(),
        });
    }
    let len = usize::try_from(desc.size())
        .map_err(|_| Error::InvalidArgument(format!("{digest}: too large for memory")))?;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = ra.read_at(&mut buf[filled..], filled as u64).await?;
        if n == 0 {
            return Err(Error::SizeMismatch {
                what: digest.to_string(),
                expected: desc.size(),
                actual: filled as u64,
            });
        }
        filled += n;
    }
    hasher.update(&buf);
    let actual = hasher.finish();
    if actual != *digest {
        return Err(Error::DigestMismatch {
            what: digest.to_string(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(buf)
}

/// Opens the blob `desc` names as a sequential [`AsyncRead`] (no verification: the store
/// verified it at commit).
pub async fn reader(
    provider: &(impl Provider + ?Sized),
    desc: &Descriptor,
) -> Result<ReaderAtReader> {
    Ok(ReaderAtReader::new(provider.reader_at(desc).await?))
}

/// How much one underlying `read_at` asks for.
const READ_CHUNK: usize = 1 << 20;

type ReadFuture = Pin<Box<dyn Future<Output = (Vec<u8>, Result<usize>)> + Send>>;

/// The read after the one being handed out.
enum Ahead {
    /// None in flight; a spare buffer for the next one.
    Idle(Vec<u8>),
    /// In flight (its work started when it was first polled).
    Reading(ReadFuture),
    /// Finished before it was needed.
    Done(Vec<u8>, Result<usize>),
}

/// Adapts a [`ReaderAt`] into a sequential [`AsyncRead`], reading 1 MiB chunks whatever
/// size of buffer the caller polls with, and keeping the next chunk's read in flight while
/// the caller consumes the current one (so a caller that hashes or decompresses overlaps
/// with the reading).
pub struct ReaderAtReader {
    ra: std::sync::Arc<dyn ReaderAt>,
    /// Offset of the next `read_at` to start.
    pos: u64,
    /// Bytes read but not yet handed out: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    ahead: Ahead,
}

impl std::fmt::Debug for ReaderAtReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderAtReader")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl ReaderAtReader {
    /// Reads `ra` from its first byte.
    pub fn new(ra: Box<dyn ReaderAt>) -> Self {
        Self::at(ra, 0)
    }

    /// Reads `ra` from `offset` (for example to resume a copy).
    pub fn at(ra: Box<dyn ReaderAt>, offset: u64) -> Self {
        ReaderAtReader {
            ra: ra.into(),
            pos: offset,
            buf: Vec::new(),
            start: 0,
            end: 0,
            ahead: Ahead::Idle(vec![0u8; READ_CHUNK]),
        }
    }

    /// Starts the read at `pos` (if there is anything left) and polls it once, so work a
    /// `ReaderAt` hands to another thread starts now.
    fn start_ahead(&mut self, cx: &mut Context<'_>) {
        let Ahead::Idle(mut buf) = std::mem::replace(&mut self.ahead, Ahead::Idle(Vec::new()))
        else {
            return;
        };
        if self.pos >= self.ra.size() {
            self.ahead = Ahead::Idle(buf);
            return;
        }
        buf.resize(READ_CHUNK, 0);
        let (ra, pos) = (std::sync::Arc::clone(&self.ra), self.pos);
        let mut fut: ReadFuture = Box::pin(async move {
            let res = ra.read_at(&mut buf, pos).await;
            (buf, res)
        });
        self.ahead = match fut.as_mut().poll(cx) {
            Poll::Ready((buf, res)) => Ahead::Done(buf, res),
            Poll::Pending => Ahead::Reading(fut),
        };
    }
}

impl AsyncRead for ReaderAtReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.start < this.end {
                let n = (this.end - this.start).min(out.remaining());
                out.put_slice(&this.buf[this.start..this.start + n]);
                this.start += n;
                return Poll::Ready(Ok(()));
            }
            if out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.ahead, Ahead::Idle(_)) {
                if this.pos >= this.ra.size() {
                    return Poll::Ready(Ok(()));
                }
                this.start_ahead(cx);
            }
            let (buf, res) = match std::mem::replace(&mut this.ahead, Ahead::Idle(Vec::new())) {
                Ahead::Done(buf, res) => (buf, res),
                Ahead::Reading(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Ready(done) => done,
                    Poll::Pending => {
                        this.ahead = Ahead::Reading(fut);
                        return Poll::Pending;
                    }
                },
                Ahead::Idle(buf) => {
                    this.ahead = Ahead::Idle(buf);
                    return Poll::Ready(Ok(()));
                }
            };
            let n = match res {
                Ok(0) => {
                    // The blob is shorter than its size said: report, don't spin.
                    this.ahead = Ahead::Idle(buf);
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::UnexpectedEof)));
                }
                Ok(n) => n,
                Err(e) => {
                    this.ahead = Ahead::Idle(buf);
                    return Poll::Ready(Err(io::Error::other(e)));
                }
            };
            // The finished buffer is handed out; the one just emptied carries the next read.
            let spare = std::mem::replace(&mut this.buf, buf);
            this.pos += n as u64;
            this.start = 0;
            this.end = n;
            this.ahead = Ahead::Idle(spare);
            this.start_ahead(cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use oci_spec::image::{DescriptorBuilder, Digest, MediaType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{ErrorKind, Ingester, LocalStore, WriterOpts};

    fn desc_of(data: &[u8]) -> Descriptor {
        let digest: Digest = crate::sha256_of(data);
        DescriptorBuilder::default()
            .media_type(MediaType::ImageLayer)
            .digest(digest)
            .size(data.len() as u64)
            .build()
            .unwrap()
    }

    async fn store_with(data: &[u8]) -> (tempfile::TempDir, LocalStore, Descriptor) {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let desc = desc_of(data);
        let mut w = store.writer(WriterOpts::new("r")).await.unwrap();
        w.write_all(data).await.unwrap();
        w.commit(data.len() as u64, Some(desc.digest()))
            .await
            .unwrap();
        (tmp, store, desc)
    }

    #[tokio::test]
    async fn reader_streams_a_blob_larger_than_its_read_ahead() {
        let data: Vec<u8> = (0..(READ_CHUNK * 3 + 777))
            .map(|i| (i % 253) as u8)
            .collect();
        let (_tmp, store, desc) = store_with(&data).await;
        let mut r = reader(&store, &desc).await.unwrap();
        let mut back = Vec::new();
        let mut small = [0u8; 1000];
        loop {
            let n = r.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&small[..n]);
        }
        assert!(back == data, "streamed bytes differ");
    }

    #[tokio::test]
    async fn reader_follows_short_reads_and_reports_a_blob_shorter_than_its_size() {
        /// Answers at most 1000 bytes per call, and claims 10 bytes more than it has.
        struct Stingy(Vec<u8>);
        #[async_trait::async_trait]
        impl ReaderAt for Stingy {
            fn size(&self) -> u64 {
                self.0.len() as u64 + 10
            }
            async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
                let start = (offset as usize).min(self.0.len());
                let n = buf.len().min(1000).min(self.0.len() - start);
                buf[..n].copy_from_slice(&self.0[start..start + n]);
                Ok(n)
            }
        }
        let data: Vec<u8> = (0..5555u32).map(|i| (i % 251) as u8).collect();
        let mut r = ReaderAtReader::new(Box::new(Stingy(data.clone())));
        let mut got = vec![0u8; data.len()];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data);
        let err = r.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn reader_at_an_offset_starts_there() {
        let data = b"0123456789";
        let (_tmp, store, desc) = store_with(data).await;
        let mut r = ReaderAtReader::at(store.reader_at(&desc).await.unwrap(), 4);
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "456789");
    }

    #[tokio::test]
    async fn read_blob_refuses_blobs_over_the_limit() {
        let (_tmp, store, desc) = store_with(b"too big for the limit").await;
        let err = read_blob(&store, &desc, 4).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn read_blob_detects_a_corrupted_blob() {
        let data = b"original content";
        let (_tmp, store, desc) = store_with(data).await;
        let path = store.blob_path(desc.digest());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&path, b"tampered content").unwrap();
        let err = read_blob(&store, &desc, 100).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        std::fs::write(&path, b"short").unwrap();
        let err = read_blob(&store, &desc, 100).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    }
}
