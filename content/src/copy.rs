//! Writing helpers over any [`Ingester`]: open a writer waiting out a busy ref, copy a
//! stream into it and commit it, the way containerd's `content.OpenWriter`,
//! `content.Copy` and `content.WriteBlob` do.

use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use oci_spec::image::{Descriptor, Digest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{Error, ErrorKind, Ingester, Result, Writer, WriterOpts};

/// The buffer each copy reads into.
const COPY_BUF: usize = 1 << 20;

/// How long [`write_blob`] waits for another writer of the same ref.
///
/// The usual holder is a concurrent download of the same content (the seed's
/// `xargs -P10` pipeline, two pulls sharing a layer), which either finishes or fails within
/// the fetcher's own 30 s stall limits; a minute covers that with room to spare, while a
/// holder that is wedged (a stopped process, a hung disk) cannot park a daemon's task
/// forever. containerd's `OpenWriter` waits as long as its context allows; pass a longer
/// bound to [`open_writer`] to get closer to that.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// The first and the largest pause between attempts of [`open_writer`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Opens a writer like [`Ingester::writer`], but while the ref is held by another writer
/// (`Unavailable`) retries with jittered exponential backoff (10 ms doubling to 0.5 s) for
/// up to `wait`, as containerd's `content.OpenWriter` does. The waiting is asynchronous:
/// no thread is blocked. Other errors, `AlreadyExists` included, return at once; after
/// `wait` the last `Unavailable` error is returned.
///
/// ```
/// use std::time::Duration;
///
/// use dist_content::{Ingester, LocalStore, WriterOpts, open_writer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = LocalStore::open(dir.path())?;
/// let first = store.writer(WriterOpts::new("layer")).await?;
/// // Busy: a bounded wait gives up with `Unavailable`.
/// let busy = open_writer(&store, WriterOpts::new("layer"), Duration::from_millis(50)).await;
/// assert!(busy.is_err());
/// drop(first);
/// // Free again: the next writer gets it (and resumes the first one's data).
/// open_writer(&store, WriterOpts::new("layer"), Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
pub async fn open_writer(
    ingester: &(impl Ingester + ?Sized),
    opts: WriterOpts,
    wait: Duration,
) -> Result<Box<dyn Writer>> {
    let start = Instant::now();
    let jitter = std::collections::hash_map::RandomState::new();
    let mut pause = FIRST_PAUSE;
    let mut attempt = 0u64;
    loop {
        let err = match ingester.writer(opts.clone()).await {
            Err(e) if e.kind() == ErrorKind::Unavailable => e,
            other => return other,
        };
        let waited = start.elapsed();
        if waited >= wait {
            tracing::debug!(reference = %crate::Elided(&opts.reference), ?waited,
                "ingest ref still busy, giving up");
            return Err(err);
        }
        // Between half and all of `pause`, so that waiters spread out.
        attempt += 1;
        let half = pause / 2;
        let spread = u32::try_from(half.as_micros()).unwrap_or(u32::MAX).max(1);
        let extra = u32::try_from(jitter.hash_one(attempt) % u64::from(spread)).unwrap_or(0);
        let sleep = (half + Duration::from_micros(u64::from(extra))).min(wait - waited);
        tracing::trace!(reference = %crate::Elided(&opts.reference), ?sleep, "ingest ref busy");
        tokio::time::sleep(sleep).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Copies `reader` into `writer` and commits it as `size` bytes hashing to `expected`.
///
/// `reader` must yield the content starting at `writer.offset()` (the resume point; a
/// fetcher asks the registry for that range). A commit that finds the blob already present
/// counts as success, as in containerd. Fails with `FailedPrecondition` when the reader
/// yields more or fewer bytes than `size` (the ingest is kept, for a later writer to
/// resume) or bytes that do not hash to `expected` (the ingest is emptied, so a retry
/// starts from the first byte rather than trusting the bad data).
pub async fn copy(
    mut writer: Box<dyn Writer>,
    reader: impl AsyncRead + Unpin,
    size: u64,
    expected: &Digest,
) -> Result<()> {
    let offset = writer.offset();
    let what = || expected.to_string();
    if offset > size {
        return Err(Error::SizeMismatch {
            what: what(),
            expected: size,
            actual: offset,
        });
    }
    let mut limited = reader.take(size - offset);
    let mut buf = vec![0u8; COPY_BUF];
    let mut copied = offset;
    loop {
        let n = limited
            .read(&mut buf)
            .await
            .map_err(|e| Error::io(format!("read content for {}", what()), e))?;
        if n == 0 {
            break;
        }
        writer
            .write_all(&buf[..n])
            .await
            .map_err(|e| Error::io(format!("write content for {}", what()), e))?;
        copied += n as u64;
    }
    let mut reader = limited.into_inner();
    if copied == size {
        let extra = reader
            .read(&mut buf[..1])
            .await
            .map_err(|e| Error::io(format!("read content for {}", what()), e))?;
        if extra > 0 {
            return Err(Error::SizeMismatch {
                what: what(),
                expected: size,
                actual: size + extra as u64,
            });
        }
    }
    let actual = writer.digest().await?;
    if copied == size && actual != *expected {
        // Right length, wrong bytes (typically a resumed prefix written from other data):
        // drop them, so that a retry starts clean instead of failing the same way forever.
        writer.truncate(0).await?;
        return Err(Error::DigestMismatch {
            what: what(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    match writer.commit(size, Some(expected)).await {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Writes the blob `desc` describes under `reference`, reading it from `reader` (which
/// yields the content from its first byte). Resumes a partial ingest left under the same
/// ref by skipping what is already stored; returns `Ok` when the blob already exists
/// (containerd's `WriteBlob`), also when it appeared while this call waited up to
/// [`DEFAULT_LOCK_WAIT`] for another writer of the same ref. For another bound, call
/// [`open_writer`] and [`copy`] (which is all this does).
pub async fn write_blob(
    ingester: &(impl Ingester + ?Sized),
    reference: &str,
    desc: &Descriptor,
    mut reader: impl AsyncRead + Unpin,
) -> Result<()> {
    let opts = WriterOpts::new(reference).expected(desc.clone());
    let writer = match open_writer(ingester, opts, DEFAULT_LOCK_WAIT).await {
        Ok(w) => w,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    let skip = writer.offset();
    let skipped = tokio::io::copy(&mut (&mut reader).take(skip), &mut tokio::io::sink())
        .await
        .map_err(|e| Error::io(format!("skip resumed content of {}", desc.digest()), e))?;
    if skipped != skip {
        return Err(Error::SizeMismatch {
            what: desc.digest().to_string(),
            expected: desc.size(),
            actual: skipped,
        });
    }
    copy(writer, reader, desc.size(), desc.digest()).await
}

#[cfg(test)]
mod tests {
    use oci_spec::image::{DescriptorBuilder, MediaType};

    use super::*;
    use crate::{IngestManager, LocalStore, Manager};

    fn desc_of(data: &[u8]) -> Descriptor {
        let digest: Digest = crate::sha256_of(data);
        DescriptorBuilder::default()
            .media_type(MediaType::ImageLayer)
            .digest(digest)
            .size(data.len() as u64)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn copy_refuses_a_reader_longer_than_the_size_and_commits_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let desc = desc_of(b"12345");
        let w = store.writer(WriterOpts::new("long")).await.unwrap();
        let err = copy(w, &b"123456"[..], 5, desc.digest()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(
            store.info(desc.digest()).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(store.status("long").await.unwrap().offset, 5);
    }

    #[tokio::test]
    async fn write_blob_resumes_by_skipping_what_is_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let data = b"resumable content";
        let desc = desc_of(data);
        let mut w = store
            .writer(WriterOpts::new("res").expected(desc.clone()))
            .await
            .unwrap();
        w.write_all(&data[..9]).await.unwrap();
        drop(w);
        write_blob(&store, "res", &desc, &data[..]).await.unwrap();
        assert_eq!(store.info(desc.digest()).await.unwrap().size, 17);
        // And once more: the blob exists, nothing to do.
        write_blob(&store, "res", &desc, &data[..]).await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_resumed_prefix_is_discarded_so_the_retry_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let data = b"the real content";
        let desc = desc_of(data);
        // Someone left other bytes under the same ref, with no expectation recorded.
        let mut w = store.writer(WriterOpts::new("shared")).await.unwrap();
        w.write_all(b"WRONG").await.unwrap();
        drop(w);
        let err = write_blob(&store, "shared", &desc, &data[..])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(store.status("shared").await.unwrap().offset, 0);
        write_blob(&store, "shared", &desc, &data[..])
            .await
            .unwrap();
        assert_eq!(store.info(desc.digest()).await.unwrap().size, 16);
    }

    #[tokio::test]
    async fn write_blob_waits_for_a_writer_of_the_same_ref_then_finds_the_blob_committed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let data: &'static [u8] = b"shared by two ingests";
        let desc = desc_of(data);
        let opts = WriterOpts::new("same").expected(desc.clone());
        let mut first = store.writer(opts).await.unwrap();
        first.write_all(&data[..5]).await.unwrap();
        let second = tokio::spawn({
            let (store, desc) = (store.clone(), desc.clone());
            async move { write_blob(&store, "same", &desc, data).await }
        });
        // Let the second find the ref busy (it succeeds however the two interleave).
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.write_all(&data[5..]).await.unwrap();
        first
            .commit(desc.size(), Some(desc.digest()))
            .await
            .unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(store.info(desc.digest()).await.unwrap().size, desc.size());
        assert!(
            store
                .list_statuses(&crate::Filter::all())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn open_writer_gives_up_with_unavailable_after_its_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let _held = store.writer(WriterOpts::new("held")).await.unwrap();
        let wait = Duration::from_millis(200);
        let err = open_writer(&store, WriterOpts::new("held"), wait)
            .await
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::Unavailable));
    }

    #[tokio::test]
    async fn open_writer_reports_committed_content_at_once_and_write_blob_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let data = b"already here";
        let desc = desc_of(data);
        write_blob(&store, "a", &desc, &data[..]).await.unwrap();
        let opts = WriterOpts::new("b").expected(desc.clone());
        let err = open_writer(&store, opts, DEFAULT_LOCK_WAIT)
            .await
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::AlreadyExists));
        // Nothing is read from a reader that would fail: the blob is there.
        write_blob(&store, "b", &desc, &b"not the content"[..])
            .await
            .unwrap();
        assert!(
            store
                .list_statuses(&crate::Filter::all())
                .await
                .unwrap()
                .is_empty()
        );
    }
}
