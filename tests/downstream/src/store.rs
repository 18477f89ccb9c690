//! [`MemoryStore`]: committed blobs in a map, ingests buffered in their writers.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use dist::content::{Error, Ingester, Provider, ReaderAt, Result, Status, Writer, WriterOpts};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use tokio::io::AsyncWrite;

use crate::digest_of;

/// A content store in memory; clones share the blobs.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    blobs: Arc<Mutex<HashMap<Digest, Arc<[u8]>>>>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, Arc<[u8]>>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The committed blob `digest`, if any.
    pub fn get(&self, digest: &Digest) -> Option<Arc<[u8]>> {
        self.lock().get(digest).cloned()
    }

    /// How many blobs are committed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no blob is committed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct BlobReader(Arc<[u8]>);

#[async_trait]
impl ReaderAt for BlobReader {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

#[async_trait]
impl Provider for MemoryStore {
    async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>> {
        match self.get(desc.digest()) {
            Some(blob) => Ok(Box::new(BlobReader(blob))),
            None => Err(Error::NotFound(desc.digest().to_string())),
        }
    }
}

#[async_trait]
impl Ingester for MemoryStore {
    async fn writer(&self, opts: WriterOpts) -> Result<Box<dyn Writer>> {
        let mut status = Status::new(opts.reference, 0, SystemTime::now());
        if let Some(desc) = opts.expected {
            if self.lock().contains_key(desc.digest()) {
                return Err(Error::AlreadyExists(desc.digest().to_string()));
            }
            status = status
                .with_total(desc.size())
                .with_expected(desc.digest().clone());
        }
        let store = self.clone();
        Ok(Box::new(MemoryWriter {
            store,
            status,
            data: Vec::new(),
        }))
    }
}

/// An ingest: the bytes are hashed at commit, with the expected digest's algorithm.
struct MemoryWriter {
    store: MemoryStore,
    status: Status,
    data: Vec<u8>,
}

impl AsyncWrite for MemoryWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.data.extend_from_slice(buf);
        self.status.offset = self.data.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Writer for MemoryWriter {
    async fn digest(&self) -> Result<Digest> {
        let alg = self.status.expected.as_ref().map(|d| d.algorithm().clone());
        let alg = alg.unwrap_or(DigestAlgorithm::Sha256);
        digest_of(&alg, &self.data)
            .ok_or_else(|| Error::InvalidArgument(format!("cannot hash with {alg}")))
    }

    fn offset(&self) -> u64 {
        self.data.len() as u64
    }

    async fn status(&self) -> Result<Status> {
        Ok(self.status.clone())
    }

    async fn truncate(&mut self, size: u64) -> Result<()> {
        let keep = usize::try_from(size).ok().filter(|&n| n <= self.data.len());
        let keep = keep.ok_or_else(|| Error::InvalidArgument(format!("{size}: past the end")))?;
        self.data.truncate(keep);
        self.status.offset = size;
        Ok(())
    }

    async fn commit(self: Box<Self>, size: u64, expected: Option<&Digest>) -> Result<()> {
        let what = self.status.reference.clone();
        if self.offset() != size {
            let actual = self.offset();
            return Err(Error::SizeMismatch {
                what,
                expected: size,
                actual,
            });
        }
        // The caller's digest and the one the writer was opened with must both hold.
        for want in expected.into_iter().chain(self.status.expected.as_ref()) {
            let actual = digest_of(want.algorithm(), &self.data);
            if actual.as_ref() != Some(want) {
                let actual = actual.map_or_else(|| "unknown".to_owned(), |d| d.to_string());
                let expected = want.to_string();
                return Err(Error::DigestMismatch {
                    what,
                    expected,
                    actual,
                });
            }
        }
        let digest = match expected.or(self.status.expected.as_ref()) {
            Some(d) => d.clone(),
            None => self.digest().await?,
        };
        let mut blobs = self.store.lock();
        if blobs.contains_key(&digest) {
            return Err(Error::AlreadyExists(digest.to_string()));
        }
        blobs.insert(digest, self.data.into());
        Ok(())
    }
}
