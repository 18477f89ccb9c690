//! Writing helpers over any [`Ingester`]: copy a stream into a writer and commit it, the way
//! containerd's `content.Copy` and `content.WriteBlob` do.

use oci_spec::image::{Descriptor, Digest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{Error, ErrorKind, Ingester, Result, Writer, WriterOpts};

/// The buffer each copy reads into.
const COPY_BUF: usize = 1 << 20;

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
    let actual = writer.digest();
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
/// ref by skipping what is already stored; returns `Ok` when the blob already exists.
pub async fn write_blob(
    ingester: &(impl Ingester + ?Sized),
    reference: &str,
    desc: &Descriptor,
    mut reader: impl AsyncRead + Unpin,
) -> Result<()> {
    let writer = match ingester
        .writer(WriterOpts::new(reference).expected(desc.clone()))
        .await
    {
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
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::{IngestManager, LocalStore, Manager};

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
}
