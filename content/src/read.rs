//! Reading helpers over any [`Provider`]: a bounded, verified full read for small blobs
//! (manifests, configs) and a streaming [`AsyncRead`] for large ones (layers).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use oci_spec::image::Descriptor;
use tokio::io::{AsyncRead, ReadBuf};

use crate::digest::Hasher;
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
    let mut hasher = Hasher::for_digest(digest)?;
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

type ReadFuture = Pin<Box<dyn Future<Output = (Box<dyn ReaderAt>, Vec<u8>, Result<usize>)> + Send>>;

enum State {
    Idle(Box<dyn ReaderAt>, Vec<u8>),
    Reading(ReadFuture),
    Broken,
}

/// Adapts a [`ReaderAt`] into a sequential [`AsyncRead`], reading ahead in large chunks
/// whatever size of buffer the caller polls with.
pub struct ReaderAtReader {
    state: State,
    /// Position of the next `read_at`.
    pos: u64,
    /// Bytes read but not yet handed out: `buf[start..end]` of the idle buffer.
    start: usize,
    end: usize,
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
            state: State::Idle(ra, vec![0u8; READ_CHUNK]),
            pos: offset,
            start: 0,
            end: 0,
        }
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
            match std::mem::replace(&mut this.state, State::Broken) {
                State::Idle(ra, buf) => {
                    if this.start < this.end {
                        let n = (this.end - this.start).min(out.remaining());
                        out.put_slice(&buf[this.start..this.start + n]);
                        this.start += n;
                        this.state = State::Idle(ra, buf);
                        return Poll::Ready(Ok(()));
                    }
                    if this.pos >= ra.size() || out.remaining() == 0 {
                        this.state = State::Idle(ra, buf);
                        return Poll::Ready(Ok(()));
                    }
                    let pos = this.pos;
                    this.state = State::Reading(Box::pin(async move {
                        let mut buf = buf;
                        let res = ra.read_at(&mut buf, pos).await;
                        (ra, buf, res)
                    }));
                }
                State::Reading(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = State::Reading(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((ra, buf, res)) => {
                        let n = match res {
                            Ok(n) => n,
                            Err(e) => {
                                this.state = State::Idle(ra, buf);
                                return Poll::Ready(Err(io::Error::other(e)));
                            }
                        };
                        if n == 0 {
                            // The blob is shorter than its size said: report, don't spin.
                            this.state = State::Idle(ra, buf);
                            return Poll::Ready(Err(io::Error::from(io::ErrorKind::UnexpectedEof)));
                        }
                        this.pos += n as u64;
                        this.start = 0;
                        this.end = n;
                        this.state = State::Idle(ra, buf);
                    }
                },
                State::Broken => {
                    return Poll::Ready(Err(io::Error::other("reader used after a panic")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use oci_spec::image::{DescriptorBuilder, Digest, MediaType};
    use sha2::{Digest as _, Sha256};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{ErrorKind, Ingester, LocalStore, WriterOpts};

    fn desc_of(data: &[u8]) -> Descriptor {
        let digest: Digest = format!("sha256:{}", hex::encode(Sha256::digest(data)))
            .parse()
            .unwrap();
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
